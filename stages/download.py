"""download: acquire a dataset in NIH ChestX-ray14 layout (source chosen in params)."""
from chestxray.acquire.sources import acquire
from chestxray.core.params import load_params
from chestxray.core.paths import DATASET_DIR, EMBEDDED_DATA_DIR
from chestxray.core.stage import run_stage


def main():
    params = load_params("download")
    print(acquire(params["download"], DATASET_DIR, EMBEDDED_DATA_DIR))


if __name__ == "__main__":
    run_stage(main)
