"""Benchmark: parse and split the full official ChestX-ray14 label table on one core.

Usage: python benchmarks/split_official_table.py [path/to/Data_Entry_2017_v2020.csv(.gz)]
Default path: ../shared/data/nih-metadata/Data_Entry_2017_v2020.csv.gz. Target: <= 2 s.
"""
import os

# One core, as the target says; set before NumPy loads its thread pool.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

from chestxray.data.split import (  # noqa: E402
    check_no_leakage, split_patients, split_positive_patients,
)
from chestxray.nih.labels import parse_findings  # noqa: E402

DEFAULT_TABLE = (Path(__file__).resolve().parents[2] / "shared" / "data" / "nih-metadata"
                 / "Data_Entry_2017_v2020.csv.gz")


def main():
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_TABLE
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    table = pd.read_csv(path)
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        parse_findings(table["Finding Labels"])
        splits = split_patients(table, 0.2, 0.1, seed=42, min_positive_patients=25)
        check_no_leakage(table["Patient ID"], splits)
        timings.append(time.perf_counter() - start)
    positives = split_positive_patients(table, splits)
    print(f"{len(table):,} rows, {table['Patient ID'].nunique():,} patients: label parsing + "
          f"patient split + leakage gate in {min(timings):.2f} s (best of 3, one core)")
    print(f"fewest positive patients of any class per split: {positives.min().to_dict()}")


if __name__ == "__main__":
    main()
