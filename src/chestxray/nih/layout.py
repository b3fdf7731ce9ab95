"""Read and write dataset folders in the NIH ChestX-ray14 layout.

A dataset folder (the download stage's output) holds:

* ``Data_Entry_2017_v2020.csv`` -- the label table, official columns;
* ``BBox_List_2017.csv`` -- optional, the box table in the official format,
  boxes in the 1024x1024 release space;
* ``images/`` -- the PNGs named by ``Image Index``; or, for sources referenced in
  place, ``images_dir.txt`` holding the absolute paths of the image folders, one per line
  (one ``images/``, or the ``images_NNN/images`` folders of NIH's archives and Kaggle's copy).

Which image files are accepted is :mod:`chestxray.nih.image_files`' business.
"""
import os
from pathlib import Path

import numpy as np
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


def _not_utf8(path, what, error):
    """The :class:`LabelTableError` of a ``what`` file that ``error`` could not decode."""
    return LabelTableError(f"{path}: cannot read {what} (not UTF-8 text: {error.reason} at "
                           f"byte {error.start}); save it as UTF-8")


def read_text(path, what):
    """The text of the UTF-8 file ``path`` (a ``what``); one LabelTableError line if it is not."""
    try:
        return Path(path).read_bytes().decode()
    except UnicodeDecodeError as error:
        raise _not_utf8(path, what, error) from error


def read_csv(path, what, **options):
    """``pd.read_csv(path, **options)``; a file that cannot be read or parsed is one
    :class:`LabelTableError` line naming ``path`` and ``what`` it should hold."""
    try:
        return pd.read_csv(path, **options)
    except UnicodeDecodeError as error:
        raise _not_utf8(path, what, error) from error
    except OSError as error:
        raise LabelTableError(f"{path}: cannot read {what} ({error.strerror})") from error
    except ValueError as error:  # pandas' ParserError and EmptyDataError (a 0-byte file)
        # pandas' messages may end in a newline or span lines.
        raise LabelTableError(f"{path}: cannot read {what} ({' '.join(str(error).split())})") \
            from error


def invalid_patient_ids(ids):
    """Mask of the ``Patient ID`` cells (text, NaN for empty) that are not whole numbers.

    NIH's IDs are 1..30805. A whole number is written in digits, at most 18 so
    that it fits int64: '2.7' would otherwise be truncated to 2 and '1e400' is
    infinite. Returns a bool ndarray.
    """
    digits = ids.fillna("").astype(str).str.strip().str.fullmatch("[0-9]{1,18}")
    return ~digits.to_numpy(dtype=bool)


def _patient_id_problem(ids, path):
    """The message for the first invalid ``Patient ID`` cell of ``ids``, or None."""
    invalid = invalid_patient_ids(ids)
    if not invalid.any():
        return None
    row = int(np.flatnonzero(invalid)[0])
    value = "" if pd.isna(ids.iloc[row]) else str(ids.iloc[row])
    if pd.isna(pd.to_numeric(value, errors="coerce")):
        return f"{path}: non-numeric Patient ID {value!r} in row {row}"
    return (f"{path}: Patient ID {value!r} in row {row} is not a whole number of at most 18 "
            f"digits")


def read_label_table(path):
    """Read and validate an NIH label table.

    Returns a DataFrame with ``LABEL_TABLE_COLUMNS``; ``Patient ID`` is int64,
    ``Image Index`` and ``Finding Labels`` are text. Raises
    :class:`LabelTableError` naming the file and the problem.
    """
    path = Path(path)
    text = {"Image Index": str, "Finding Labels": str, "Patient ID": str}
    table = read_csv(path, "label table", dtype=text)
    # Some exports (the 2017 file) end each row with a trailing comma.
    table = table.loc[:, ~table.columns.str.startswith("Unnamed")]
    missing = [c for c in LABEL_TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise LabelTableError(f"{path}: missing columns {missing}; "
                              f"expected {list(LABEL_TABLE_COLUMNS)}")
    # Empty cells are NaN: shown as '' in messages, never as a float.
    table[["Image Index", "Finding Labels"]] = table[["Image Index", "Finding Labels"]].fillna("")
    duplicated = table["Image Index"][table["Image Index"].duplicated()]
    if len(duplicated):
        raise LabelTableError(f"{path}: duplicate Image Index {duplicated.iloc[0]!r} "
                              f"({len(duplicated)} duplicates)")
    problem = _patient_id_problem(table["Patient ID"], path)
    if problem:
        raise LabelTableError(problem)
    table["Patient ID"] = table["Patient ID"].str.strip().astype("int64")
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
    boxes = read_csv(path, "box table", header=0, names=list(BOX_TABLE_COLUMNS), usecols=range(6),
                     dtype={"Image Index": str, "Finding Label": str})
    labels = boxes["Finding Label"].fillna("").replace(BOX_LABEL_ALIASES)
    boxes["Finding Label"] = labels
    unknown = sorted(set(labels) - set(FINDINGS))
    if unknown:
        raise LabelTableError(f"{path}: unknown finding {unknown[0]!r} in box table")
    coordinates = boxes[["x", "y", "w", "h"]].apply(pd.to_numeric, errors="coerce")
    if not np.isfinite(coordinates.to_numpy(dtype=np.float64)).all():
        raise LabelTableError(f"{path}: non-numeric or infinite box coordinates")
    boxes[["x", "y", "w", "h"]] = coordinates.astype(np.float64)
    return boxes


def write_box_table(boxes, path):
    """Write boxes (``BOX_TABLE_COLUMNS``) under the official header, atomically."""
    with atomic_write(path, "w") as handle:
        handle.write(BOX_TABLE_HEADER + "\n")
        boxes[list(BOX_TABLE_COLUMNS)].to_csv(handle, index=False, header=False,
                                              lineterminator="\n")


def image_folders(dataset_dir):
    """The folders holding a dataset's PNGs, a list of Paths: ``[images/]``, or the folders
    ``images_dir.txt`` names."""
    dataset_dir = Path(dataset_dir)
    pointer = dataset_dir / IMAGES_POINTER
    if pointer.exists():
        return [Path(line) for line in pointer.read_text().splitlines() if line.strip()]
    return [dataset_dir / IMAGES]


def _folder_of_each_image(folders, names):
    """``{name: folder}`` for each of ``names`` found directly in one of ``folders``; the
    first folder for a name found in none (reading it then fails naming that path)."""
    if len(folders) == 1:
        return dict.fromkeys(names, folders[0])
    wanted, found = set(names), {}
    for folder in folders:
        with os.scandir(folder) as entries:
            found.update((entry.name, folder) for entry in entries if entry.name in wanted)
    return {name: found.get(name, folders[0]) for name in names}


def _is_file_name(name):
    """Whether ``name`` is a plain file name, not empty and not a path ('../x.png', '/x.png')."""
    return name not in ("", ".", "..") and not any(character in name for character in "/\\\0")


def read_dataset(dataset_dir):
    """Label table of a dataset folder with an absolute ``path`` column per image.

    Every ``Image Index`` must be a file name inside an image folder: a path in
    it would read a file elsewhere.
    """
    dataset_dir = Path(dataset_dir)
    table = read_label_table(dataset_dir / LABEL_TABLE)
    folders = [folder.resolve() for folder in image_folders(dataset_dir)]
    for row, name in enumerate(table["Image Index"]):
        if not _is_file_name(name):
            raise LabelTableError(f"{dataset_dir / LABEL_TABLE}: Image Index {name!r} in row "
                                  f"{row} is not a file name in {folders[0]}")
    folder_of = _folder_of_each_image(folders, table["Image Index"])
    return table.assign(path=[str(folder_of[name] / name) for name in table["Image Index"]])


def read_dataset_boxes(dataset_dir):
    """A dataset's box table, or an empty one when the source has no boxes."""
    path = Path(dataset_dir) / BOX_TABLE
    if path.exists():
        return read_box_table(path)
    return pd.DataFrame(columns=list(BOX_TABLE_COLUMNS))

