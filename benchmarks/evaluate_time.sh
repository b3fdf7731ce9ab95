#!/usr/bin/env bash
# Benchmark: the evaluate stage's wall time, a git revision (A) against the working tree (B).
#   bash benchmarks/evaluate_time.sh BASE_REV [ROUNDS] [WORK_DIR]
# Both run `python stages/evaluate.py` on this checkout's outputs/ (dataset, split, model), each
# from its own copy of the code, interleaved A B A B ... on one machine, so that the machine's
# drift hits both; prints each pair and the ratio B / A with its spread.
set -euo pipefail
base=${1:?usage: evaluate_time.sh BASE_REV [ROUNDS] [WORK_DIR]}
rounds=${2:-3}
source=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
root=${3:-/tmp/evaluate-time}; rm -rf "$root"; mkdir -p "$root/a" "$root/b"
git -C "$source" archive "$base" | tar -x -C "$root/a"
git -C "$source" ls-files -co --exclude-standard -z | (cd "$source" && xargs -0 cp --parents -t "$root/b")
for side in a b; do cp -r "$source/outputs" "$root/$side/outputs"; done
times=()
for round in $(seq "$rounds"); do
  for side in a b; do
    start=$(date +%s.%N)
    (cd "$root/$side" && PYTHONPATH=src python stages/evaluate.py > "$root/$side.log" 2>&1)
    times+=("$(echo "$(date +%s.%N) - $start" | bc)")
  done
  echo "round $round: A ${times[-2]} s, B ${times[-1]} s"
done
python - "${times[@]}" <<'PY'
import statistics, sys
times = list(map(float, sys.argv[1:]))
ratios = [b / a for a, b in zip(times[::2], times[1::2])]
print(f"A median {statistics.median(times[::2]):.1f} s, B median {statistics.median(times[1::2]):.1f} s; "
      f"ratio B/A per round {', '.join(f'{r:.2f}' for r in ratios)}; "
      f"median {statistics.median(ratios):.2f}, range {min(ratios):.2f}-{max(ratios):.2f}")
PY
