"""Write ``alignn_ase/data/cgcnn_features.json`` from jarvis-tools' CGCNN table.

The 92-d CGCNN atom features (Xie & Grossman, PRL 2018) are what upstream
ALIGNN feeds its ``atom_features="cgcnn"`` models. alignn-ase ships them as
package data so jarvis-tools is not a run-time dependency. Run this once in a
side virtualenv that has jarvis-tools (``pip install jarvis-tools``).
"""

import json
from pathlib import Path

from ase.data import chemical_symbols
from jarvis.core.specie import get_node_attributes

table = {}
for z in range(1, 101):  # upstream's table stops at Z = 100
    symbol = chemical_symbols[z]
    feat = [float(x) for x in get_node_attributes(symbol, atom_features="cgcnn")]
    assert len(feat) == 92, (symbol, len(feat))
    table[symbol] = feat

out = Path(__file__).resolve().parents[1] / "alignn_ase" / "data" / "cgcnn_features.json"
out.write_text(json.dumps(table, separators=(",", ":")) + "\n")
print(f"wrote {len(table)} elements to {out}")
