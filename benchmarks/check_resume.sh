#!/usr/bin/env bash
# Resume check on a real dataset: train once uninterrupted; train again, kill the process (SIGKILL, as a
# lost machine would) as soon as its resume state after the first epoch exists, resume it with --resume,
# and compare the two test results line by line.
#
#   bash benchmarks/check_resume.sh                                   # SASRec, ml-100k, 2 epochs
#   bash benchmarks/check_resume.sh --model=GRU4Rec --dataset=ml-100k --epochs=3
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
ARGS=("$@")
[ ${#ARGS[@]} -eq 0 ] && ARGS=(--model=SASRec --dataset=ml-100k --epochs=2)
ARGS+=(--show_progress=False)
MODEL=$(printf '%s\n' "${ARGS[@]}" | sed -n 's/^--model=//p')
OUT=$(mktemp -d)
test_block() { grep -A40 "test result" "$1" | sed 's/^.*INFO  //' | grep -E "^ *[a-z@_0-9]+ +-?[0-9.]+$"; }

echo "uninterrupted run ..."
$PY run_recbole_gen.py "${ARGS[@]}" > "$OUT/full.log" 2>&1

before=$(ls saved/"$MODEL"-*-resume.pth 2>/dev/null | sort || true)
echo "interrupted run ..."
$PY run_recbole_gen.py "${ARGS[@]}" > "$OUT/stopped.log" 2>&1 &
pid=$!
state=""
while [ -z "$state" ]; do
  kill -0 $pid 2>/dev/null || { echo "the run ended before writing a resume state: $OUT/stopped.log"; exit 1; }
  state=$(comm -13 <(echo "$before") <(ls saved/"$MODEL"-*-resume.pth 2>/dev/null | sort) | head -1)
  sleep 1
done
kill -KILL $pid; wait $pid 2>/dev/null || true
echo "killed after its first validation; resume state: $state"

echo "resumed run ..."
$PY run_recbole_gen.py "${ARGS[@]}" --resume="${state%-resume.pth}.pth" > "$OUT/resumed.log" 2>&1
grep "Resuming" "$OUT/resumed.log" | sed 's/^.*INFO  //'
test_block "$OUT/full.log" > "$OUT/full.txt"
test_block "$OUT/resumed.log" > "$OUT/resumed.txt"
[ -s "$OUT/full.txt" ] || { echo "no test result in $OUT/full.log"; exit 1; }
if diff "$OUT/full.txt" "$OUT/resumed.txt"; then
  echo "identical test results ($(wc -l < "$OUT/full.txt") metrics; logs in $OUT):"; cat "$OUT/full.txt"
else
  echo "DIFFERENT (logs in $OUT)"; exit 1
fi
