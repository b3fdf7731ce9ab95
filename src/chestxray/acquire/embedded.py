"""The embedded default dataset: a synthetic study kept in ``data/``, rendered on demand.

``data/`` (tracked by ``data.dvc``) holds the study as three small tables: the
NIH label table, the NIH box table and the per-image anatomy table. The
download stage renders them into PNG radiographs at ``download.image_size``, so
git stays small and the same study can be rendered at 64 px for CPU runs or
320 px for GPU runs.

Regenerate the study (only when changing the generator on purpose)::

    python -m chestxray.acquire.embedded --out data --patients 700 --seed 2017
"""
import argparse
import ctypes
import os
import signal
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
from PIL import Image
from tqdm import tqdm

from chestxray.acquire.cohort import sample_study
from chestxray.acquire.phantom import render_radiograph
from chestxray.core.atomic import atomic_directory, atomic_write
from chestxray.nih import layout

ANATOMY_TABLE = "anatomy.csv"


def write_study(data_dir, n_patients, seed, min_positive_patients):
    """Sample the study and write its three tables into ``data_dir``."""
    labels, boxes, anatomy = sample_study(n_patients, seed, min_positive_patients)
    data_dir = Path(data_dir)
    layout.write_label_table(labels, data_dir / layout.LABEL_TABLE)
    layout.write_box_table(boxes, data_dir / layout.BOX_TABLE)
    with atomic_write(data_dir / ANATOMY_TABLE, "w") as handle:
        anatomy.to_csv(handle, index=False, float_format="%.5f", lineterminator="\n")
    return labels, boxes


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _start_render_worker(parent):
    """Render workers end with the stage, and leave Ctrl-C to it.

    A killed stage must not leave them waiting forever. Ctrl-C reaches the whole process
    group: the stage turns it into one line and shuts the pool down, while a worker would
    print a KeyboardInterrupt traceback from wherever it was waiting.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    prctl = getattr(ctypes.CDLL(None), "prctl", None)  # Linux only
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the stage died before prctl took effect
        os._exit(1)


def _render_one(job):
    name, anatomy, boxes, size, out_dir = job
    pixels = render_radiograph(anatomy, boxes, size, seed=zlib.crc32(name.encode()))
    Image.fromarray(pixels).save(Path(out_dir) / name, optimize=False)


def render_dataset(data_dir, out_dir, image_size):
    """Render the study in ``data_dir`` into an NIH-layout folder ``out_dir``.

    Output images are 8-bit gray PNGs of ``image_size`` x ``image_size``;
    the folder appears only once every image is written.
    Returns a one-line summary.
    """
    data_dir = Path(data_dir)
    labels = layout.read_label_table(data_dir / layout.LABEL_TABLE)
    boxes = layout.read_box_table(data_dir / layout.BOX_TABLE)
    anatomy = pd.read_csv(data_dir / ANATOMY_TABLE).set_index("Image Index")
    boxes_by_image = {
        name: list(group[["Finding Label", "x", "y", "w", "h"]].itertuples(index=False, name=None))
        for name, group in boxes.groupby("Image Index")}
    with atomic_directory(out_dir) as staging:
        (staging / layout.IMAGES).mkdir()
        jobs = [(name, anatomy.loc[name].to_dict(), boxes_by_image.get(name, []),
                 image_size, staging / layout.IMAGES) for name in labels["Image Index"]]
        with ProcessPoolExecutor(max_workers=os.cpu_count(), initializer=_start_render_worker,
                                 initargs=(os.getpid(),)) as pool:
            for _ in tqdm(pool.map(_render_one, jobs, chunksize=32), total=len(jobs),
                          desc="render", unit="img", mininterval=2):
                pass
        layout.write_label_table(labels, staging / layout.LABEL_TABLE)
        layout.write_box_table(boxes, staging / layout.BOX_TABLE)
    return (f"rendered {len(labels)} embedded images of {labels['Patient ID'].nunique()} patients "
            f"at {image_size}px with {len(boxes)} boxes into {out_dir}")


def main():
    parser = argparse.ArgumentParser(description="Write the embedded study's tables.")
    parser.add_argument("--out", default="data")
    parser.add_argument("--patients", type=int, default=700)
    parser.add_argument("--seed", type=int, default=2017)
    parser.add_argument("--min-positive-patients", type=int, default=12)
    args = parser.parse_args()
    labels, boxes = write_study(args.out, args.patients, args.seed, args.min_positive_patients)
    print(f"wrote a study of {len(labels)} images, {args.patients} patients and "
          f"{len(boxes)} boxes into {args.out}")


if __name__ == "__main__":
    main()
