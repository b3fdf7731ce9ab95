"""Read and write dataset folders in the NIH ChestX-ray14 layout.

A dataset folder (the download stage's output) holds:

* ``Data_Entry_2017_v2020.csv`` -- the label table, official columns;
* ``BBox_List_2017.csv`` -- optional, the box table in the official format,
  boxes in the 1024x1024 release space;
* ``images/`` -- the PNGs named by ``Image Index``; or, for sources referenced in
  place, ``images_dir.txt`` holding the absolute path of the image folder.
"""
from pathlib import Path

import pandas as pd

from chestxray.core.atomic import atomic_write
from chestxray.core.errors import PipelineError
from chestxray.nih.labels import (
    BOX_LABEL_ALIASES, BOX_TABLE_COLUMNS, BOX_TABLE_HEADER, FINDINGS, LABEL_TABLE_COLUMNS,
    parse_findings,
)

LABEL_TABLE = "Data_Entry_2017_v2020.csv"
BOX_TABLE = "BBox_List_2017.csv"
IMAGES = "images"
IMAGES_POINTER = "images_dir.txt"
# NIH's official split, image names one per line (optional).
TEST_LIST = "test_list.txt"
SPLIT_LISTS = ("train_val_list.txt", TEST_LIST)
# NIH released 1024x1024 PNGs; the box table's coordinates live in that space.
RELEASE_SIZE = 1024


class LabelTableError(PipelineError, ValueError):
    """A label or box table that does not follow the NIH schema."""


def read_label_table(path):
    """Read and validate an NIH label table.

    Returns a DataFrame with ``LABEL_TABLE_COLUMNS``; ``Patient ID`` is int64.
    Raises :class:`LabelTableError` naming the file and the problem.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype={"Image Index": str, "Finding Labels": str})
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise LabelTableError(f"{path}: cannot read label table ({error})") from error
    # Some exports (the 2017 file) end each row with a trailing comma.
    table = table.loc[:, ~table.columns.str.startswith("Unnamed")]
    missing = [c for c in LABEL_TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise LabelTableError(f"{path}: missing columns {missing}; expected {list(LABEL_TABLE_COLUMNS)}")
    duplicated = table["Image Index"][table["Image Index"].duplicated()]
    if len(duplicated):
        raise LabelTableError(f"{path}: duplicate Image Index {duplicated.iloc[0]!r} "
                              f"({len(duplicated)} duplicates)")
    patient = pd.to_numeric(table["Patient ID"], errors="coerce")
    if patient.isna().any():
        row = int(patient.isna().to_numpy().argmax())
        raise LabelTableError(f"{path}: non-numeric Patient ID {table['Patient ID'].iloc[row]!r} "
                              f"in row {row}")
    table["Patient ID"] = patient.astype("int64")
    try:
        parse_findings(table["Finding Labels"])
    except ValueError as error:
        raise LabelTableError(f"{path}: {error}") from error
    return table[list(LABEL_TABLE_COLUMNS)]


def write_label_table(table, path):
    """Write ``table`` (``LABEL_TABLE_COLUMNS``) as NIH does, atomically."""
    with atomic_write(path, "w") as handle:
        table[list(LABEL_TABLE_COLUMNS)].to_csv(handle, index=False, lineterminator="\n")


def read_box_table(path):
    """Read an official-format box table.

    Returns a DataFrame with columns Image Index, Finding Label, x, y, w, h
    (float64, release space); ``Infiltrate`` is renamed ``Infiltration``.
    """
    path = Path(path)
    try:
        boxes = pd.read_csv(path, header=0, names=list(BOX_TABLE_COLUMNS), usecols=range(6))
    except (OSError, pd.errors.ParserError, ValueError) as error:
        raise LabelTableError(f"{path}: cannot read box table ({error})") from error
    boxes["Finding Label"] = boxes["Finding Label"].replace(BOX_LABEL_ALIASES)
    unknown = sorted(set(boxes["Finding Label"]) - set(FINDINGS))
    if unknown:
        raise LabelTableError(f"{path}: unknown finding {unknown[0]!r} in box table")
    coordinates = boxes[["x", "y", "w", "h"]].apply(pd.to_numeric, errors="coerce")
    if coordinates.isna().any().any():
        raise LabelTableError(f"{path}: non-numeric box coordinates")
    boxes[["x", "y", "w", "h"]] = coordinates
    return boxes


def write_box_table(boxes, path):
    """Write boxes (``BOX_TABLE_COLUMNS``) under the official header, atomically."""
    with atomic_write(path, "w") as handle:
        handle.write(BOX_TABLE_HEADER + "\n")
        boxes[list(BOX_TABLE_COLUMNS)].to_csv(handle, index=False, header=False,
                                              lineterminator="\n")


def images_dir(dataset_dir):
    """The folder holding a dataset's PNGs: ``images/`` or the referenced path."""
    dataset_dir = Path(dataset_dir)
    pointer = dataset_dir / IMAGES_POINTER
    if pointer.exists():
        return Path(pointer.read_text().strip())
    return dataset_dir / IMAGES


def read_dataset(dataset_dir):
    """Label table of a dataset folder with an absolute ``path`` column per image."""
    dataset_dir = Path(dataset_dir)
    table = read_label_table(dataset_dir / LABEL_TABLE)
    root = images_dir(dataset_dir).resolve()
    return table.assign(path=[str(root / name) for name in table["Image Index"]])


def read_dataset_boxes(dataset_dir):
    """A dataset's box table, or an empty one when the source has no boxes."""
    path = Path(dataset_dir) / BOX_TABLE
    if path.exists():
        return read_box_table(path)
    return pd.DataFrame(columns=list(BOX_TABLE_COLUMNS))
