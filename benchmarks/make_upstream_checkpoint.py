"""Write a random-weight upstream ALIGNN-FF checkpoint with upstream's own code.

Run with the side virtualenv that holds upstream ``alignn``::

    /work/upvenv/bin/python benchmarks/make_upstream_checkpoint.py OUT_DIR

Writes ``OUT_DIR/config.json`` + ``OUT_DIR/best_model.pt`` in upstream's
published layout. The configuration is the ALIGNN-FF baseline of the peers
table: ``alignn_atomwise_pure``, 2 ALIGNN + 2 GCN layers, hidden 64,
embedding 64, 92-d CGCNN atom features, ``pure_torch`` graphs (cutoff 5 Å,
max_neighbors 12, three_body_cutoff 3.5 Å). Weights are upstream's seeded
initialisation (speed does not depend on them); alignn-ase loads the same
folder with ``load_model``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from alignn.models.alignn_atomwise_pure import ALIGNNAtomWisePure, ALIGNNAtomWisePureConfig

GRAPH = dict(
    neighbor_strategy="pure_torch",
    cutoff=5.0,
    max_neighbors=12,
    use_canonize=True,
    atom_features="cgcnn",
    three_body_cutoff=3.5,
)
MODEL = dict(
    alignn_layers=2,
    gcn_layers=2,
    hidden_features=64,
    embedding_features=64,
    atom_input_features=92,
    stresswise_weight=0.1,
)


def main(out: Path) -> None:
    torch.manual_seed(0)
    cfg = ALIGNNAtomWisePureConfig(name="alignn_atomwise_pure", **MODEL)
    model = ALIGNNAtomWisePure(cfg)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({**GRAPH, "model": cfg.model_dump()}, indent=2) + "\n")
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out / "best_model.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
