"""download: acquire a dataset in NIH ChestX-ray14 layout (source chosen in params)."""
from chestxray.acquire.manifest import write_manifest
from chestxray.acquire.sources import acquire
from chestxray.core.params import load_params
from chestxray.core.paths import DATASET_DIR, DATASET_MANIFEST, EMBEDDED_DATA_DIR
from chestxray.core.stage import run_stage


def main():
    params = load_params("download")
    summary = acquire(params["download"], DATASET_DIR, EMBEDDED_DATA_DIR)
    write_manifest(DATASET_DIR, DATASET_MANIFEST)
    print(f"{summary}; manifest {DATASET_MANIFEST}")


if __name__ == "__main__":
    run_stage(main)
