#!/bin/bash
# Label every part v5 was trained on (base, extra, layered, broad, molecules), two workers per part (the second
# walks the chunks from the end); resumable: rerun it and each part continues at its first unfinished chunk.
#   nohup scripts/distill/label_all.sh > /work/label_all.log 2>&1 &
# DATA (default /work) holds distill/ and distill_<part>/; PYTHON is the teacher venv's interpreter.
set -u
cd "$(dirname "$0")/../.."
DATA=${DATA:-/work}
PYTHON=${PYTHON:-/work/upvenv/bin/python}
export MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736 OMP_NUM_THREADS=1
for part in base extra layered broad molecules; do
  out=$DATA/distill; [ "$part" != base ] && out=$DATA/distill_$part
  mkdir -p "$out"
  echo "$(date -u +%T) start $part"
  nice -n 10 "$PYTHON" scripts/distill/generate.py --part $part --out "$out" > "$out/generate.log" 2>&1 &
  sleep 20
  nice -n 10 "$PYTHON" scripts/distill/generate.py --part $part --out "$out" --reverse > "$out/generate_reverse.log" 2>&1 &
  wait
  echo "$(date -u +%T) done $part"
done
