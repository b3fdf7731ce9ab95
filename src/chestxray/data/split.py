"""Patient-level train/val/test splits and the leakage gate.

No patient may appear in two splits: follow-up images of one patient share
anatomy and findings, so a patient in train and test inflates every score.
"""
import numpy as np
import pandas as pd

from chestxray.core.errors import PipelineError
from chestxray.core.paths import SPLIT_FILE
from chestxray.nih.labels import FINDINGS, NO_FINDING, parse_findings
from chestxray.nih.layout import LABEL_TABLE, TEST_LIST, LabelTableError, read_csv

SPLITS = ("train", "val", "test")
# The columns of the split stage's table.
SPLIT_COLUMNS = ("Image Index", "Patient ID", "split")
# A held-out split may take at most this share of a class's positive patients,
# so the training split always keeps most examples of rare classes.
MAX_HELD_OUT_SHARE = 1 / 3


class LeakageError(PipelineError, RuntimeError):
    """A patient appears in more than one split."""


class SplitError(PipelineError, ValueError):
    """Labels, or split settings, from which no classifier can be trained and tested."""


def patient_table(labels):
    """Per-patient summary of a label table.

    Returns a DataFrame indexed by Patient ID with column ``images`` (int) and one
    bool column per finding: does any of the patient's images show it.
    """
    multi_hot = pd.DataFrame(parse_findings(labels["Finding Labels"]).astype(bool),
                             columns=list(FINDINGS))
    multi_hot["Patient ID"] = labels["Patient ID"].to_numpy()
    grouped = multi_hot.groupby("Patient ID", sort=True)
    patients = grouped.any()
    patients.insert(0, "images", grouped.size())
    return patients


def _hold_out(patients, available, fraction, min_positive_patients, rng):
    """Choose patients for one held-out split.

    First, for each class from rarest to commonest, adds positive patients until
    the split has ``min_positive_patients`` of them (capped by
    ``MAX_HELD_OUT_SHARE`` of the class's positives); then adds random patients
    until the split holds ``fraction`` of all images. A split that would still
    be empty (``fraction`` of the images is less than any patient's) gets the
    available patient with the fewest images: asked for, it should exist.

    Returns a bool mask over ``patients`` rows.
    """
    positives = patients[list(FINDINGS)].to_numpy()
    images = patients["images"].to_numpy()
    chosen = np.zeros(len(patients), dtype=bool)
    order = rng.permutation(len(patients))
    if fraction <= 0:
        return chosen
    for column in np.argsort(positives.sum(axis=0), kind="stable"):
        wanted = min(min_positive_patients,
                     int(positives[:, column].sum() * MAX_HELD_OUT_SHARE))
        missing = wanted - int(positives[chosen, column].sum())
        if missing > 0:
            candidates = order[(positives[order, column]) & available[order] & ~chosen[order]]
            chosen[candidates[:missing]] = True
    budget = fraction * images.sum() - images[chosen].sum()
    rest = order[available[order] & ~chosen[order]]
    chosen[rest[np.cumsum(images[rest]) <= budget]] = True
    if not chosen.any() and len(rest):
        chosen[rest[np.argmin(images[rest])]] = True
    return chosen


def _split(patients, labels, test_fraction, val_fraction, seed, min_positive_patients):
    """:func:`split_patients` of the patients of ``labels`` (their :func:`patient_table`)."""
    rng = np.random.default_rng(seed)
    available = np.ones(len(patients), dtype=bool)
    test = _hold_out(patients, available, test_fraction, min_positive_patients, rng)
    val = _hold_out(patients, ~test, val_fraction, min_positive_patients, rng)
    split_of_patient = pd.Series(np.where(test, "test", np.where(val, "val", "train")),
                                 index=patients.index)
    return split_of_patient.loc[labels["Patient ID"]].to_numpy().astype(str)


def _learnable_patients(labels):
    """:func:`patient_table` of ``labels``; refused without any positive image.

    A table whose images are all 'No Finding' cannot train a classifier; training
    would run and score nothing.
    """
    if labels.empty:
        raise SplitError(f"{LABEL_TABLE}: no images")
    patients = patient_table(labels)
    if not patients[list(FINDINGS)].to_numpy().any():
        raise SplitError(f"{LABEL_TABLE}: none of its {len(labels)} images shows any of the "
                         f"{len(FINDINGS)} findings (all are {NO_FINDING!r}): no classifier can "
                         "be trained on it")
    return patients


def _refuse_empty_splits(splits, labels, settings):
    """Raise :class:`SplitError` if a split of ``splits`` has no image.

    ``settings`` maps each split's name to the setting that decided its size,
    as the message shows it.
    """
    for name in SPLITS:
        if not (splits == name).any():
            raise SplitError(f"{settings[name]}: the {name} split would be empty ({len(labels)} "
                             f"images of {labels['Patient ID'].nunique()} patients); change it "
                             "or use more patients")


def split_patients(labels, test_fraction, val_fraction, seed, min_positive_patients):
    """Assign each image to train/val/test by patient.

    Parameters
    ----------
    labels : DataFrame with ``Patient ID`` and ``Finding Labels``, n rows.
    test_fraction, val_fraction : float, share of images for test and val.
    seed : int, makes the split deterministic.
    min_positive_patients : int, positive patients per class wanted in test
        and in val where the data allows.

    Returns
    -------
    ndarray of str, shape (n,): "train", "val" or "test" per image.

    Raises :class:`SplitError` when no image shows a finding, or a split would
    be empty.
    """
    splits = _split(_learnable_patients(labels), labels, test_fraction, val_fraction, seed,
                    min_positive_patients)
    _refuse_empty_splits(splits, labels, {
        "train": f"split.test_fraction + split.val_fraction = {test_fraction} + {val_fraction}",
        "val": f"split.val_fraction = {val_fraction}",
        "test": f"split.test_fraction = {test_fraction}"})
    return splits


def split_official(labels, test_images, val_fraction, seed, min_positive_patients):
    """NIH's official split: ``test_images`` is test, val is carved from the rest by patient.

    Raises :class:`SplitError` as :func:`split_patients` does.
    """
    _learnable_patients(labels)
    is_test = labels["Image Index"].isin(set(test_images)).to_numpy()
    splits = np.full(len(labels), "test", dtype=object)
    train_val = labels[~is_test]
    share = val_fraction / max(1 - is_test.mean(), 1e-9)
    splits[~is_test] = _split(patient_table(train_val), train_val, 0.0, share, seed,
                              min_positive_patients)
    splits = splits.astype(str)
    _refuse_empty_splits(splits, labels, {
        "train": f"split.val_fraction = {val_fraction} with {TEST_LIST}",
        "val": f"split.val_fraction = {val_fraction}", "test": TEST_LIST})
    return splits


def check_no_leakage(patient_ids, splits):
    """Raise :class:`LeakageError` if any patient appears in more than one split.

    ``patient_ids`` and ``splits`` are sequences of equal length n.
    """
    frame = pd.DataFrame({"patient": np.asarray(patient_ids), "split": np.asarray(splits)})
    per_patient = frame.groupby("patient")["split"].nunique()
    leaked = per_patient[per_patient > 1]
    if len(leaked):
        examples = ", ".join(str(p) for p in leaked.index[:5])
        raise LeakageError(f"{len(leaked)} patient(s) appear in more than one split "
                           f"(e.g. Patient ID {examples}); refusing to continue")


def split_prevalence(labels, splits):
    """Per-split prevalence: DataFrame indexed by finding, one float column per split."""
    multi_hot = pd.DataFrame(parse_findings(labels["Finding Labels"]), columns=list(FINDINGS))
    return multi_hot.groupby(np.asarray(splits)).mean().T.reindex(columns=list(SPLITS))


def split_positive_patients(labels, splits):
    """Positive patients per class and split: DataFrame (finding x split) of int."""
    counts = {}
    for name in SPLITS:
        subset = labels[np.asarray(splits) == name]
        counts[name] = patient_table(subset)[list(FINDINGS)].sum() if len(subset) else 0
    return pd.DataFrame(counts).reindex(index=list(FINDINGS)).fillna(0).astype(int)


def read_split_file(path):
    """The split stage's table: Image Index, Patient ID and split per image.

    Raises :class:`~chestxray.nih.layout.LabelTableError` for a file that cannot
    be read or lacks a column.
    """
    table = read_csv(path, "split table", dtype={"Image Index": str, "split": str})
    missing = [column for column in SPLIT_COLUMNS if column not in table.columns]
    if missing:
        raise LabelTableError(f"{path}: missing columns {missing}; run the split stage again")
    return table


def select_split(labels, split_table, name):
    """Rows of ``labels`` assigned to split ``name``, in label-table order.

    Raises :class:`SplitError` when there are none: the split table was made
    from another label table.
    """
    names = split_table.loc[split_table["split"] == name, "Image Index"]
    selected = labels[labels["Image Index"].isin(set(names))].reset_index(drop=True)
    if selected.empty:
        raise SplitError(f"{SPLIT_FILE}: none of the images of the {name} split is in "
                         f"{LABEL_TABLE}; run the split stage again")
    return selected
