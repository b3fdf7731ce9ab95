#!/usr/bin/env bash
# Benchmark: the pull-request report against one `dvc repro`.
#   bash benchmarks/pr_report_time.sh [WORK_DIR]
# A: the README's main command in a fresh clone; B: the pull-request report for a train param
# change in another fresh clone (empty DVC cache, no remote: the CI case). Same machine, back to back.
set -euo pipefail
source=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
root=${1:-/tmp/pr-report-time}; rm -rf "$root"; mkdir "$root"; cd "$root"
stamp() { date +%s.%N; }
git clone -q "$source" a && cd a
t0=$(stamp)
python3 -m venv .venv && . .venv/bin/activate && pip install -q --require-hashes -r requirements.txt && pip install -q --no-deps --no-build-isolation -e .
t1=$(stamp)
dvc repro --pull > "$root"/repro.log 2>&1
t2=$(stamp)
git status --short > "$root"/status.txt
cd "$root" && git clone -q "$source" b && cd b
git checkout -q -b lr
python - <<'PY'
import yaml
p = yaml.safe_load(open("params.yaml")); p["train"]["lr"] = 0.002
open("params.yaml", "w").write(yaml.safe_dump(p, sort_keys=False))
PY
git -c user.name=t -c user.email=t@t commit -qam "train.lr 0.002"
t3=$(stamp)
.ci/pr-report main "$root"/plots > "$root"/report.md 2> "$root"/report.log
t4=$(stamp)
python - "$t0" "$t1" "$t2" "$t3" "$t4" <<'PY'
import sys
t0, t1, t2, t3, t4 = map(float, sys.argv[1:])
print(f"install {t1-t0:.0f} s; dvc repro --pull {t2-t1:.0f} s; pr-report {t4-t3:.0f} s; "
      f"ratio pr-report / dvc repro {((t4-t3)/(t2-t1)):.2f}; "
      f"ratio with the install on both sides {((t1-t0+t4-t3)/(t2-t0)):.2f}")
PY
