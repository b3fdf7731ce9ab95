"""Fuzz the pipeline's three input doors with a large budget (tests/fuzz_harness.py).

Usage: python benchmarks/fuzz.py --cases N [--seed S] [--save DIR]

Splits N cases over ten rows: fuzzed params.yaml, label tables and images, each through the
stages that read them (download with the local source, split, stats, predict), plus a pure
check that every PNG the download stage accepts decodes as training decodes it. A case fails
when it breaks the property of tests/fuzz_harness.py (a traceback, not exactly one final
`error:` line, a file changed or left behind). Prints cases tried and failures per row, the
first failures of each row, the wall time and the machine; exits 1 if any case failed.
``--save DIR`` writes each failing case's files there for reproducing it.
"""
import argparse
import collections
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import fuzz_harness as harness  # noqa: E402

ROWS = [("params", target) for target in ("download", "split", "stats")] + \
       [("table", target) for target in ("download", "split", "stats")] + \
       [("image", target) for target in ("download", "stats", "predict", "decode")]


def strategy_of(kind, target, template):
    """The hypothesis strategy of one row: :class:`fuzz_harness.Case` objects, or image
    bytes for the decode check."""
    if kind == "params":
        return harness.params_cases((target,))
    if kind == "table":
        return harness.table_cases((target,))
    if target == "decode":
        return harness.image_files()
    return harness.image_cases(harness.train_images(template), (target,))


def fuzz_row(kind, target, cases, random_seed, folders, save):
    """Run ``cases`` cases of one row; returns (cases run, [(description, case)] failures)."""
    template, base, model, scratch = folders
    failures, count = [], [0]

    @seed(random_seed)
    @settings(max_examples=cases, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def run(data):
        drawn = data.draw(strategy_of(kind, target, template))
        count[0] += 1
        if target == "decode":
            problems, files = harness.decode_agreement(drawn, scratch), {"fuzzed.png": drawn}
        else:
            outcome, problems = harness.run_case(drawn, template, base, model_path=model)
            problems = [f"{problem} | stderr ends {outcome.stderr[-300:]!r}"
                        for problem in problems]
            files = drawn.files
        if problems:  # recorded, not raised: hypothesis goes on generating
            failures.append(problems[0])
            if save:
                folder = Path(save) / f"{kind}-{target}-{len(failures)}"
                for relative, content in files.items():
                    (folder / relative).parent.mkdir(parents=True, exist_ok=True)
                    (folder / relative).write_bytes(content)

    run()
    return count[0], failures


def machine():
    """One line: CPU model, cores, OS, Python."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                  .splitlines() if line.startswith("model name")), platform.processor())
    return (f"{model}, {len(os.sched_getaffinity(0))} cores, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}")


def main():
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--cases", type=int, required=True, help="total cases, all rows")
    arguments.add_argument("--seed", type=int, default=0, help="hypothesis seed (default 0)")
    arguments.add_argument("--save", help="folder for the files of failing cases")
    options = arguments.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        folders = (harness.make_template(work / "template"), work, harness.saved_model(work),
                   work)
        print(f"{'input':7} {'through':9} {'cases':>7} {'failures':>9} {'seconds':>8}")
        totals = collections.Counter()
        for kind, target in ROWS:
            row_start = time.perf_counter()
            share = options.cases // len(ROWS) + (ROWS.index((kind, target))
                                                 < options.cases % len(ROWS))
            count, failures = fuzz_row(kind, target, share, options.seed, folders, options.save)
            totals.update(cases=count, failures=len(failures))
            print(f"{kind:7} {target:9} {count:7d} {len(failures):9d} "
                  f"{time.perf_counter() - row_start:8.1f}", flush=True)
            for problem in list(dict.fromkeys(failures))[:3]:  # the first distinct ones
                print(f"    {problem[:400]}")
    print(f"total: {totals['cases']} cases, {totals['failures']} failures in "
          f"{time.perf_counter() - start:.0f} s (seed {options.seed}) on {machine()}")
    return 1 if totals["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
