"""The evaluate stage's human-readable output: per-class curve figures and a
Markdown report a reviewer can read without running anything."""
import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.calibration import CalibrationDisplay
from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

from chestxray.nih.labels import FINDINGS

GRID_COLUMNS = 4


def curve_grid(display, y_true, y_score, title, **display_options):
    """One small panel per finding, drawn by a scikit-learn display class.

    display : e.g. ``RocCurveDisplay``, ``PrecisionRecallDisplay`` or
    ``CalibrationDisplay`` (anything with ``from_predictions(y, s, ax=, name=)``);
    y_true : (n, 14) 0/1; y_score : (n, 14) probabilities; display_options are
    passed to ``from_predictions``. A class without both positives and
    negatives gets a panel saying so. Returns a matplotlib Figure.
    """
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score)
    rows = math.ceil(len(FINDINGS) / GRID_COLUMNS)
    figure = Figure(figsize=(3.2 * GRID_COLUMNS, 3.0 * rows), layout="constrained")
    axes = figure.subplots(rows, GRID_COLUMNS).ravel()
    for column, (finding, ax) in enumerate(zip(FINDINGS, axes)):
        truth = y_true[:, column]
        ax.set_title(finding, fontsize=10)
        if not 0 < truth.sum() < len(truth):
            ax.text(0.5, 0.5, "undefined:\nno positives\nor no negatives", ha="center",
                    va="center", transform=ax.transAxes)
            continue
        display.from_predictions(truth, y_score[:, column], ax=ax, name="model",
                                 **display_options)
        ax.legend(fontsize=7, loc="best")
        ax.xaxis.label.set_fontsize(8)
        ax.yaxis.label.set_fontsize(8)
    for ax in axes[len(FINDINGS):]:
        ax.set_axis_off()
    figure.suptitle(title)
    return figure


def evaluation_figures(y_true, y_score, calibration_bins):
    """ROC, precision-recall and reliability grids of one split.

    y_true : (n, 14) 0/1; y_score : (n, 14) probabilities.
    Returns a dict file name -> (caption, matplotlib Figure).
    """
    return {
        "roc.png": ("ROC curves (test)", curve_grid(
            RocCurveDisplay, y_true, y_score, "ROC curves (test)")),
        "precision_recall.png": ("Precision-recall curves (test)", curve_grid(
            PrecisionRecallDisplay, y_true, y_score, "Precision-recall curves (test)")),
        "reliability.png": ("Reliability diagrams (test)", curve_grid(
            CalibrationDisplay, y_true, y_score, "Reliability diagrams (test)",
            n_bins=calibration_bins)),
    }


def _number(value, digits=3):
    return "undefined" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def _with_interval(value, low, high):
    if value is None or pd.isna(value):
        return "undefined"
    if low is None or pd.isna(low):
        return _number(value)
    return f"{value:.3f} ({low:.3f}–{high:.3f})"


def render_report(table, overall, *, details, images):
    """The evaluation report as Markdown text.

    table, overall : as returned by :func:`chestxray.evaluation.metrics.class_results`.
    details : dict of run facts shown as a list (e.g. image counts, bootstrap
    resamples, threshold rule). images : dict caption -> path relative to the
    report, embedded in order. Returns a str.
    """
    discrimination = pd.DataFrame({
        "test positives": table["test_positives"].astype(int),
        "ROC AUC (95% CI)": [_with_interval(*values) for values in
                             table[["auc", "auc_low", "auc_high"]].itertuples(index=False)],
        "average precision": table["average_precision"].map(_number),
        "ECE": table["ece"].map(_number),
    })
    operating = pd.DataFrame({
        "threshold (val)": table["threshold"].map(_number),
        "sensitivity": table["sensitivity"].map(_number),
        "specificity": table["specificity"].map(_number),
        "PPV": table["ppv"].map(_number),
        "NPV": table["npv"].map(_number),
        "reference prevalence": table["prevalence"].map(_number),
        "PPV at prevalence": table["ppv_at_prevalence"].map(_number),
        "NPV at prevalence": table["npv_at_prevalence"].map(_number),
    })
    mean = _with_interval(overall["mean_auc"], overall["mean_auc_low"], overall["mean_auc_high"])
    lines = [
        "# Evaluation report", "",
        f"**Mean ROC AUC {mean}** (95% CI, patient-level bootstrap) · mean average precision "
        f"{_number(overall['mean_average_precision'])} · mean ECE {_number(overall['mean_ece'])}",
        "", *(f"- {key}: {value}" for key, value in details.items()), "",
        "## Discrimination and calibration (test split)", "",
        discrimination.to_markdown(), "",
        "ECE: expected calibration error, the mean gap between predicted probability and "
        "observed frequency over equal-width probability bins (0 = perfectly calibrated).", "",
        "## Operating points", "",
        "Each class's threshold is chosen on the validation split and applied unchanged to "
        "the test split. PPV and NPV depend on prevalence; the last two columns give them at "
        "the reference prevalence (NIH ChestX-ray14, all 112,120 images) instead of the test "
        "split's.", "",
        operating.to_markdown(), "",
        "## Figures", "",
    ]
    for caption, path in images.items():
        lines += [f"### {caption}", "", f"![{caption}]({path})", ""]
    return "\n".join(lines)
