#!/usr/bin/env bash
# The GPU checks, on a machine whose python3 has a CUDA build of torch (a lent GPU machine):
#
#   benchmarks/run_on_gpu.sh tests     OUT_DIR [SITE_ZIP]   # tests/test_cuda.py: GPU numbers equal the CPU's
#   benchmarks/run_on_gpu.sh benchmark OUT_DIR [SITE_ZIP]   # run_benchmark.py --device cuda, peers included
#   benchmarks/run_on_gpu.sh profile   OUT_DIR [SITE_ZIP]   # profile_call.py: where a GPU call's time goes
#
# SITE_ZIP: a zip of the packages that python3 lacks there (ase, vesin, phonopy, ...; for the peers upstream
# alignn, chgnet, sevenn and what they import), unpacked onto PYTHONPATH; benchmarks/README.md says how it was
# made. The repository runs from its source tree; the same-weights checkpoint is written beforehand with the
# side venv (make_upstream_checkpoint.py) into gpu_carry/.
set -uo pipefail
what=${1:?tests, benchmark or profile}
mkdir -p "${2:?output folder}"
out=$(realpath "$2")
site_zip=${3:+$(realpath "$3")}
cd "$(dirname "$0")/.."
if [ -n "$site_zip" ]; then
    # unpacked once per machine, again when the zip changes (a warm machine keeps /tmp between calls)
    stamp=$(cksum < "$site_zip")
    if [ "$(cat /tmp/site/.stamp 2>/dev/null)" != "$stamp" ]; then
        rm -rf /tmp/site && python3 -m zipfile -e "$site_zip" /tmp/site && echo "$stamp" > /tmp/site/.stamp
    fi
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# the shipped potentials are the package data alignn_ase.potentials of an installed alignn-ase
[ -e alignn_ase/potentials ] || ln -s ../potentials alignn_ase/potentials
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv > "$out/gpu.txt" 2>&1
python3 -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name(0))" \
    | tee -a "$out/gpu.txt"
case $what in
tests)
    timeout "${TEST_TIMEOUT:-250}" python3 -m pytest -v -p no:cacheprovider -rs tests/test_cuda.py 2>&1 \
        | tee "$out/test_cuda.log"
    ;;
benchmark)
    PYTHONUNBUFFERED=1 timeout "${BENCH_TIMEOUT:-520}" python3 benchmarks/run_benchmark.py --side-python python3 \
        --checkpoint gpu_carry/upstream_alignn_ff_2_2_64 --device cuda --threads 4 --rounds 3 --max-atoms 64000 \
        --capacity 30 40 50 60 --capacity-budget-s 45 --out "$out" 2>&1 | tee "$out/benchmark_cuda.log"
    ;;
profile)
    timeout "${PROFILE_TIMEOUT:-120}" python3 benchmarks/profile_call.py --device cuda --out "$out" 2>&1 \
        | grep -v '^USDT:' | tee "$out/profile_cuda.log"
    ;;
*)
    echo "unknown check $what" >&2
    exit 2
    ;;
esac
