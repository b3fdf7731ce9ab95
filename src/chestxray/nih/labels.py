"""The ChestX-ray14 label vocabulary and the NIH label-table schema.

The 14 findings are ordered as in the NIH release; every label vector in this
package is a ``float32`` array of shape ``(n_images, 14)`` in this order.
"""
import numpy as np
import pandas as pd

FINDINGS = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion",
    "Emphysema", "Fibrosis", "Hernia", "Infiltration", "Mass", "Nodule",
    "Pleural_Thickening", "Pneumonia", "Pneumothorax",
)
NO_FINDING = "No Finding"

# Image-level prevalence of each finding in the full official table
# (Data_Entry_2017_v2020.csv, 112,120 images); "No Finding" is 53.8%.
OFFICIAL_PREVALENCE = {
    "Atelectasis": 0.103, "Cardiomegaly": 0.025, "Consolidation": 0.042,
    "Edema": 0.021, "Effusion": 0.119, "Emphysema": 0.022, "Fibrosis": 0.015,
    "Hernia": 0.002, "Infiltration": 0.177, "Mass": 0.052, "Nodule": 0.056,
    "Pleural_Thickening": 0.030, "Pneumonia": 0.013, "Pneumothorax": 0.047,
}
OFFICIAL_NO_FINDING = 0.538

# Columns of Data_Entry_2017_v2020.csv exactly as NIH writes them: the bracketed
# headers contain commas, so one logical field spans two CSV columns.
LABEL_TABLE_COLUMNS = (
    "Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age",
    "Patient Gender", "View Position", "OriginalImage[Width", "Height]",
    "OriginalImagePixelSpacing[x", "y]",
)
# BBox_List_2017.csv: the header names only three fields for six columns.
BOX_TABLE_COLUMNS = ("Image Index", "Finding Label", "x", "y", "w", "h")
BOX_TABLE_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,"
# The box table spells one finding differently from the label table.
BOX_LABEL_ALIASES = {"Infiltrate": "Infiltration"}


def parse_findings(finding_labels):
    """Turn ``Finding Labels`` strings into a multi-hot matrix.

    Parameters
    ----------
    finding_labels : sequence of str, length n
        ``|``-separated findings, or ``"No Finding"``.

    Returns
    -------
    ndarray of float32, shape (n, 14), columns in ``FINDINGS`` order.

    Raises
    ------
    ValueError naming the first unknown or empty finding and its row.
    """
    labels = pd.Series(finding_labels, dtype="string").fillna("")
    # The full table has only ~800 distinct label strings: parse each once.
    codes, distinct = pd.factorize(labels)
    distinct = pd.Series(distinct, dtype="string")
    empty = distinct.str.strip() == ""
    if empty.any():
        row = int(np.flatnonzero(codes == int(np.flatnonzero(empty)[0]))[0])
        raise ValueError(f"empty 'Finding Labels' in row {row}")
    dummies = distinct.str.get_dummies(sep="|")
    unknown = sorted(set(dummies.columns) - set(FINDINGS) - {NO_FINDING})
    if unknown:
        first_code = np.flatnonzero(dummies[unknown[0]].to_numpy())
        row = int(np.flatnonzero(np.isin(codes, first_code))[0])
        raise ValueError(
            f"unknown finding {unknown[0]!r} in row {row}; known findings: "
            f"{', '.join(FINDINGS)} or {NO_FINDING!r}")
    matrix = dummies.reindex(columns=list(FINDINGS), fill_value=0).to_numpy(np.float32)
    return matrix[codes]


def format_findings(multi_hot):
    """Inverse of :func:`parse_findings` for one row of shape (14,)."""
    names = [name for name, on in zip(FINDINGS, multi_hot) if on]
    return "|".join(names) if names else NO_FINDING


def classes_with_both_labels(y_true):
    """Which classes hold at least one positive and one negative: bool array (14,).

    ``y_true`` is an (n, 14) array of 0/1. ROC AUC is defined for these
    classes only.
    """
    positives = np.asarray(y_true).sum(axis=0)
    return (positives > 0) & (positives < len(y_true))
