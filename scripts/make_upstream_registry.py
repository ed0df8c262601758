"""Write ``alignn_ase/data/upstream_models.json``: the names and download addresses of upstream ALIGNN's
published models, from the registries the ``alignn`` package ships.

Three upstream registries, all Figshare zips of ``config.json`` + ``best_model.pt``:

- ``alignn/pretrained.py`` ``ALIGNN2_MODELS`` (ALIGNN 2.0 models; with target, unit, test MAE, description);
- ``alignn/ff/all_models_alignn_atomwise.json`` (ALIGNN-FF force fields and atomwise property models);
- ``alignn/ff/all_models_alignn.json`` (the original ALIGNN property models, ``jv_*``, ``qm9_*``, ...).

alignn-ase reads the written JSON at run time, so ``alignn`` is not a run-time dependency. Run this in a side
virtualenv that has ``alignn`` (``pip install alignn``); re-run it when upstream publishes models.
"""

import json
from importlib.metadata import version
from pathlib import Path

import alignn
from alignn.pretrained import ALIGNN2_MODELS

FIELDS = ("description", "target", "unit", "test_mae")
root = Path(alignn.__file__).parent
models: dict[str, dict] = {}
for name, meta in sorted(ALIGNN2_MODELS.items()):
    models[name] = {"url": meta["url"], "registry": "alignn/pretrained.py",
                    **{k: meta[k] for k in FIELDS if meta.get(k) not in (None, "")}}
for file in ("all_models_alignn_atomwise.json", "all_models_alignn.json"):
    for name, url in sorted(json.loads((root / "ff" / file).read_text()).items()):
        assert name not in models, f"{name} is in two upstream registries"
        models[name] = {"url": url, "registry": f"alignn/ff/{file}"}

out = Path(__file__).resolve().parents[1] / "alignn_ase" / "data" / "upstream_models.json"
out.write_text(json.dumps({"source": f"alignn {version('alignn')}", "models": models}, indent=1) + "\n")
print(f"wrote {len(models)} models to {out}")
