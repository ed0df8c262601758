#!/usr/bin/env bash
# Build what benchmarks/run_on_gpu.sh needs on a GPU machine whose python3 (3.12, with CUDA torch) has no
# network: gpu_carry/site.zip (the packages that machine lacks, as cp312 wheels unpacked, for alignn-ase and
# for the peers: upstream alignn, chgnet, sevenn) and gpu_carry/upstream_alignn_ff_2_2_64 (the same-weights
# checkpoint). Versions are the project venv's and the side venv's, so both machines run the same code.
#
#   benchmarks/make_gpu_site.sh [PROJECT_VENV_PYTHON] [SIDE_VENV_PYTHON]
#
# To stay under the device tool's 64 MiB, pretrained weights the benchmark does not load (SevenNet's other
# models, CHGNet 0.2.0 and r2SCAN) and SevenNet's D3 sources are left out. gpu_carry/ is ignored by git.
set -euo pipefail
ours=${1:-/work/venv/bin/python}
side=${2:-/work/upvenv/bin/python}
cd "$(dirname "$0")/.."
OURS="ase vesin phonopy phonors spglib symfc seekpath"
PEERS="alignn jarvis-tools pydantic pydantic_core pydantic-settings python-dotenv annotated-types typing-inspection
xmltodict lmdb chgnet pymatgen pymatgen-core monty ruamel.yaml uncertainties palettable orjson sevenn braceexpand
matscipy"
work=$(mktemp -d)
pins() { # NAME==VERSION of each package as installed for interpreter $1
    local py=$1; shift
    for p in "$@"; do echo "$p==$("$py" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$p")"; done
}
platforms=""
for tag in manylinux1 manylinux2014 manylinux_2_17 manylinux_2_24 manylinux_2_27 manylinux_2_28 manylinux_2_31 manylinux_2_34; do
    platforms="$platforms --platform ${tag}_x86_64"
done
# shellcheck disable=SC2086  # word splitting of the package lists and platforms is intended
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $platforms \
    -d "$work/wheels" $(pins "$ours" $OURS) $(pins "$side" $PEERS)
mkdir -p "$work/site"
for w in "$work"/wheels/*.whl; do python3 -m zipfile -e "$w" "$work/site"; done
site_packages=$("$side" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
cp "$site_packages/nvidia_smi.py" "$work/site/"  # chgnet imports it; nvidia-ml-py3 ships no wheel
cd "$work/site"
rm -rf sevenn/pretrained_potentials/SevenNet_0__22May2024 sevenn/pretrained_potentials/SevenNet_MF_0 \
    sevenn/pretrained_potentials/SevenNet_l3i5 sevenn/pair_e3gnn sevenn/pair_d3*.so \
    chgnet/pretrained/0.2.0 chgnet/pretrained/r2scan pymatgen/symmetry/symm_data_magnetic.sqlite
find . -name __pycache__ -prune -exec rm -rf {} +
cd - > /dev/null
mkdir -p gpu_carry
rm -f gpu_carry/site.zip
(cd "$work/site" && python3 -m zipfile -c "$OLDPWD/gpu_carry/site.zip" .)
"$side" benchmarks/make_upstream_checkpoint.py gpu_carry/upstream_alignn_ff_2_2_64
rm -rf "$work"
du -sh gpu_carry/site.zip
