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


def subgroup_figure(summary, overall):
    """Forest plot of the subgroups: mean ROC AUC and underdiagnosis rate with their 95%
    intervals, one row per subgroup, the whole test split's value as a dashed line.

    summary : ``Subgroups.summary``; overall : dict with mean_auc and underdiagnosis (float
    or None). An undefined estimate leaves its row empty. Returns a matplotlib Figure.
    """
    labels = [f"{attribute}: {subgroup}" for attribute, subgroup in summary.index]
    rows = np.arange(len(summary))[::-1]
    figure = Figure(figsize=(10, 0.35 * len(summary) + 1.5), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    panels = (("mean_auc", "mean ROC AUC"), ("underdiagnosis", "underdiagnosis rate"))
    for ax, (column, title) in zip(axes, panels):
        value = summary[column].to_numpy(float)
        errors = np.abs(summary[[f"{column}_low", f"{column}_high"]].to_numpy(float).T - value)
        ax.errorbar(value, rows, xerr=np.nan_to_num(errors), fmt="o", capsize=3)
        for row in rows[np.isnan(value)]:
            ax.annotate("undefined", (0.02, row), xycoords=("axes fraction", "data"),
                        va="center", fontsize=8, color="gray")
        if overall.get(column) is not None:
            ax.axvline(overall[column], linestyle="--", color="gray", label="all test images")
            ax.legend(fontsize=8, loc="best")
        ax.set_title(title, fontsize=10)
    axes[0].set_yticks(rows, labels)
    figure.suptitle("Subgroups (test): estimate and 95% patient-level bootstrap interval")
    return figure


def _number(value, digits=3):
    return "undefined" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def _with_interval(value, low, high):
    if value is None or pd.isna(value):
        return "undefined"
    if low is None or pd.isna(low):
        return _number(value)
    # A dash between signed bounds would read as a minus sign.
    separator = " to " if low < 0 else "–"
    return f"{value:.3f} ({low:.3f}{separator}{high:.3f})"


def _gap_sentence(attribute, gaps, summary):
    """One line naming an attribute's largest mean-AUC and underdiagnosis gaps."""
    parts = []
    for measure, name in (("mean_auc", "mean ROC AUC"), ("underdiagnosis", "underdiagnosis")):
        if (attribute, measure) not in gaps.index:
            parts.append(f"{name}: fewer than two known subgroups have one")
            continue
        gap = gaps.loc[(attribute, measure)]
        noise = "within noise" if gap["gap_low"] <= 0 else "beyond noise"
        patients = ", ".join(f"{subgroup} {summary.loc[(attribute, subgroup), 'patients']}"
                             for subgroup in (gap["higher"], gap["lower"]))
        over = f" over the {gap['classes']} classes both define," if measure == "mean_auc" else ""
        parts.append(f"{name} {gap['higher']} − {gap['lower']} = "
                     f"{_with_interval(gap['gap'], gap['gap_low'], gap['gap_high'])},{over} "
                     f"patients {patients}, largest of {gap['pairs']} "
                     f"pair{'s' if gap['pairs'] > 1 else ''}: **{noise}**")
    return f"Largest gaps, {'; '.join(parts)}."


def _subgroup_lines(subgroups):
    """The report's subgroup section as Markdown lines."""
    summary, classes, gaps = subgroups.summary, subgroups.classes, subgroups.gaps
    overall = subgroups.overall
    rate = _with_interval(overall["underdiagnosis"], overall["underdiagnosis_low"],
                          overall["underdiagnosis_high"])
    lines = [
        "## Subgroups (test split)", "",
        "**Underdiagnosis** is the share of test images with at least one finding that the "
        "model calls finding-free: their \"any finding\" score, the highest class probability, "
        f"is below {_number(overall['any_finding_threshold'])}, a threshold chosen on the "
        f"validation split by the rule of the operating points. All test images: {rate}.", "",
        f"Floors count patients, not images: a class has an AUC in a subgroup only where at "
        f"least {subgroups.min_patients} patients have a positive image there and "
        f"{subgroups.min_patients} a negative one, and a subgroup has an underdiagnosis rate "
        f"only with {subgroups.min_patients} patients with a finding; otherwise it is "
        "undefined. A subgroup's mean AUC averages its classes with an AUC. Intervals: 95%, patient-level "
        "bootstrap of the whole test split. A gap compares the two known subgroups (not "
        "`unknown`) that differ most, with the interval of that difference over the same "
        "resamples, Bonferroni-widened for the number of pairs it was picked from (95% for "
        "them all); an interval holding 0 is within noise. Few patients make any interval "
        "unreliable: each gap names its two subgroups' patients.", "",
    ]
    for attribute in summary.index.unique("attribute"):
        rows = summary.loc[attribute]
        table = pd.DataFrame({
            "images": rows["images"], "patients": rows["patients"],
            "with a finding (patients)": [f"{images} ({patients})" for images, patients in zip(
                rows["with_finding"], rows["patients_with_finding"])],
            "classes with an AUC": rows["classes"],
            "mean ROC AUC (95% CI)": [_with_interval(*values) for values in rows[
                ["mean_auc", "mean_auc_low", "mean_auc_high"]].itertuples(index=False)],
            "underdiagnosis (95% CI)": [_with_interval(*values) for values in rows[
                ["underdiagnosis", "underdiagnosis_low", "underdiagnosis_high"]].itertuples(
                    index=False)],
        })
        lines += [f"### {attribute}", "", table.to_markdown(), "",
                  _gap_sentence(attribute, gaps, summary), ""]
    lines += ["### ROC AUC per class and subgroup", "",
              "Cells: AUC (95% CI), or, where undefined, the patients with a positive / a "
              "negative image.", ""]
    per_class = classes.apply(lambda row: _with_interval(row["auc"], row["auc_low"],
                                                         row["auc_high"])
                              if pd.notna(row["auc"]) else
                              f"— ({row['positive_patients']:.0f}/{row['negative_patients']:.0f})",
                              axis=1)
    grid = per_class.unstack(["attribute", "subgroup"]).reindex(index=list(FINDINGS),
                                                                columns=summary.index)
    grid.columns = [f"{attribute}: {subgroup}" for attribute, subgroup in grid.columns]
    return lines + [grid.rename_axis("finding").to_markdown(), ""]


def render_report(table, overall, subgroups, *, details, images):
    """The evaluation report as Markdown text.

    table, overall : as returned by :func:`chestxray.evaluation.metrics.class_results`;
    subgroups : :class:`~chestxray.evaluation.subgroups.Subgroups`.
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
        *_subgroup_lines(subgroups),
        "## Figures", "",
    ]
    for caption, path in images.items():
        lines += [f"### {caption}", "", f"![{caption}]({path})", ""]
    return "\n".join(lines)
