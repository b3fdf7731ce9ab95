"""download: acquire a dataset in NIH ChestX-ray14 layout (source chosen in params)."""
import logging
from pathlib import Path

from chestxray.params import load_params
from chestxray.sources import acquire
from chestxray.stage import run_stage

DATA_DIR = Path("data")
DATASET_DIR = Path("outputs/dataset")


def main():
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    params = load_params("download")
    print(acquire(params["download"], DATASET_DIR, DATA_DIR))


if __name__ == "__main__":
    run_stage(main)
