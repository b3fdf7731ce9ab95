"""Check a source's tables against its images before anything is written.

Every real source is checked the same way: the label table's schema and rows,
then rows against images. ``download.on_invalid`` decides whether a problem
stops the stage (``stop``) or the bad rows and images are left out with a
logged count (``skip``).
"""
import hashlib
import logging
from typing import NamedTuple

import numpy as np
import pandas as pd
from tqdm import tqdm

from chestxray.core.errors import PipelineError
from chestxray.nih.image_files import ImageError, open_image
from chestxray.nih.labels import FINDINGS, LABEL_TABLE_COLUMNS, NO_FINDING, parse_findings
from chestxray.nih.layout import (
    BOX_TABLE, LABEL_TABLE, SPLIT_LISTS, LabelTableError, invalid_patient_ids, read_box_table,
    read_csv, read_label_table, read_text, write_box_table, write_label_table,
)

log = logging.getLogger(__name__)


class InvalidDatasetError(PipelineError, ValueError):
    """A source whose tables and images disagree; the message names the file and problem."""


class Report(NamedTuple):
    """What a source produced: the written label table and what was left out."""
    table: pd.DataFrame
    boxes: int
    skipped_rows: int
    unused_images: list  # sorted names of images with no kept row


def invalid_rows(raw):
    """Masks of the rows :func:`read_label_table` refuses, by reason.

    ``raw`` is the label table read as text (every cell a str). Returns
    ``{reason: bool ndarray of shape (n_rows,)}``.
    """
    known = set(FINDINGS) | {NO_FINDING}
    empty = (raw["Finding Labels"].str.strip() == "").to_numpy()
    unknown = raw["Finding Labels"].str.split("|").map(lambda names: not set(names) <= known)
    return {
        "empty Finding Labels": empty,
        # dtype bool: a table without rows maps to an object column.
        "unknown finding": unknown.to_numpy(dtype=bool) & ~empty,
        # Not only non-numeric: '2.7' and '1e400' too (the reason's name predates them).
        "non-numeric Patient ID": invalid_patient_ids(raw["Patient ID"]),
        # Which copy of a duplicated row is right cannot be told: all are dropped.
        "duplicate Image Index": raw["Image Index"].duplicated(keep=False).to_numpy(),
    }


def _screened_table(path, scratch):
    """Read the label table at ``path`` leaving out invalid rows (skip mode).

    Returns (validated DataFrame, number of rows left out, set of the Image
    Index values of those rows). The kept rows are written to ``scratch`` and
    read back with :func:`read_label_table`, so they pass exactly the reader
    later stages use.
    """
    raw = read_csv(path, "label table", dtype=str, keep_default_na=False)
    missing = [column for column in LABEL_TABLE_COLUMNS if column not in raw.columns]
    if missing:
        raise LabelTableError(f"{path}: missing columns {missing}; rows cannot be skipped "
                              f"without them")
    bad = np.zeros(len(raw), dtype=bool)
    for reason, mask in invalid_rows(raw).items():
        if mask.any():
            first = int(np.flatnonzero(mask)[0])
            log.warning("%s: skipping %d rows with %s (first: row %d, %r)", path, mask.sum(),
                        reason, first, raw["Image Index"].iloc[first])
        bad |= mask
    write_label_table(raw[~bad], scratch)
    return read_label_table(scratch), int(bad.sum()), set(raw["Image Index"][bad])


def _unreadable(path, digests=None):
    """Why ``path`` cannot be a dataset image (one line naming it), or None.

    The whole PNG is decoded, as training will: a file truncated or damaged
    inside its pixel data stops here, not in the middle of training. With
    ``digests`` (a dict), a readable image's SHA-256 is recorded under its name.
    """
    try:
        with open_image(path, formats=("PNG",)):
            pass
    except ImageError as error:
        return str(error)
    if digests is not None:
        # Read again just after decoding: from the page cache, not the disk.
        digests[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return None


def _handle(problem, on_invalid):
    """Raise ``problem`` (a one-line message) in stop mode; log it in skip mode."""
    if on_invalid == "stop":
        raise InvalidDatasetError(f"{problem}; download.on_invalid: skip leaves them out")
    log.warning("skipping: %s", problem)


def _first(names):
    return repr(min(map(str, names)))


def check_against_images(table, images, on_invalid, *, table_path, origin, partial=False,
                         invalid_names=frozenset(), digests=None):
    """Keep the rows of ``table`` whose image is present and readable.

    ``images`` maps file names to Paths; ``origin`` names where they came from
    in messages. With ``partial`` (a subset of the NIH archives) rows without
    an image are expected and dropped without complaint. ``invalid_names``
    had rows already left out as invalid: their images are not reported again.
    ``digests``, when given, receives ``{name: SHA-256}`` of the readable images.
    Returns
    (kept rows, rows left out as invalid, sorted names of images without a kept row).
    """
    present = table["Image Index"].isin(images.keys()).to_numpy()
    missing = table["Image Index"][~present]
    if partial:
        log.info("%s: keeping the %d of %d rows whose image is in the archives downloaded",
                 table_path, present.sum(), len(table))
    elif len(missing):
        _handle(f"{table_path}: {len(missing)} rows name images missing from {origin} "
                f"(first: {_first(missing)})", on_invalid)
    table = table[present]
    checks = tqdm(table["Image Index"], desc="check images", unit="img", mininterval=2)
    unreadable = {name: why for name in checks if (why := _unreadable(images[name], digests))}
    if unreadable:
        name = min(unreadable)
        _handle(f"{unreadable[name]}; {len(unreadable)} unusable images in {origin}", on_invalid)
    without_row = set(images) - set(table["Image Index"]) - invalid_names
    if without_row:
        _handle(f"{origin}: {len(without_row)} images have no row in {table_path} "
                f"(first: {_first(without_row)})", on_invalid)
    kept = table[~table["Image Index"].isin(unreadable.keys())]
    skipped = (0 if partial else len(missing)) + len(unreadable)
    return kept, skipped, sorted(set(images) - set(kept["Image Index"]))


def _write_split_lists(root, staging, names):
    """Copy ``train_val_list.txt``/``test_list.txt`` from ``root``, keeping ``names`` only."""
    for list_name in SPLIT_LISTS:
        path = root / list_name
        if not path.is_file():
            continue
        listed = [line.strip() for line in read_text(path, "image list").splitlines()
                  if line.strip()]
        kept = [name for name in listed if name in names]
        if len(kept) < len(listed):
            log.info("%s: %d of %d listed images are not in the dataset; left out",
                     path, len(listed) - len(kept), len(listed))
        (staging / list_name).write_text("".join(f"{name}\n" for name in kept))


def _warn_about_absent_findings(table, table_path):
    """Log the findings no image of ``table`` shows.

    The model cannot learn such a class and its AUC is undefined; a dataset
    without any finding is refused by the split stage
    (:func:`chestxray.data.split.split_patients`), which must stay out of
    this stage's code.
    """
    absent = [name for name, shown in
              zip(FINDINGS, parse_findings(table["Finding Labels"]).any(axis=0)) if not shown]
    if len(absent) == len(FINDINGS):
        log.warning("%s: no image shows any finding (all are %r): the split stage will refuse "
                    "this dataset, no classifier can be trained on it", table_path, NO_FINDING)
    elif absent:
        log.warning("%s: no image shows %s: the model cannot learn them, and their AUC is "
                    "undefined", table_path, ", ".join(absent))


def write_tables(root, images, staging, on_invalid, *, origin, partial=False, digests=None):
    """Check the tables in ``root`` against ``images`` and write them into ``staging``.

    ``root`` holds the label table and optionally the box table and the split
    lists; ``images`` maps file names to Paths; ``digests`` is passed to
    :func:`check_against_images`. Returns a :class:`Report`.
    """
    table_path = root / LABEL_TABLE
    if on_invalid == "stop":
        table, skipped_rows, invalid_names = read_label_table(table_path), 0, set()
    else:
        table, skipped_rows, invalid_names = _screened_table(table_path, staging / LABEL_TABLE)
    if table.empty:
        raise InvalidDatasetError(f"{table_path}: no valid rows")
    table, skipped_images, unused = check_against_images(
        table, images, on_invalid, table_path=table_path, origin=origin, partial=partial,
        invalid_names=invalid_names, digests=digests)
    if table.empty:
        raise InvalidDatasetError(f"{table_path}: no row has a readable image in {origin}")
    _warn_about_absent_findings(table, table_path)
    write_label_table(table, staging / LABEL_TABLE)
    names = set(table["Image Index"])
    boxes = 0
    if (root / BOX_TABLE).is_file():
        box_table = read_box_table(root / BOX_TABLE)
        box_table = box_table[box_table["Image Index"].isin(names)]
        write_box_table(box_table, staging / BOX_TABLE)
        boxes = len(box_table)
    _write_split_lists(root, staging, names)
    return Report(table, boxes, skipped_rows + skipped_images, unused)


def summary(source, report, origin):
    table = report.table
    return (f"{source}: {len(table)} images of {table['Patient ID'].nunique()} patients "
            f"from {origin}, {report.boxes} boxes, {report.skipped_rows} invalid rows "
            f"skipped, {len(report.unused_images)} images left out")
