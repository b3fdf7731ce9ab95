"""What the evaluate stage publishes: named metrics, dvclive plots, the report, predictions.

``table`` and ``overall`` below are :func:`chestxray.evaluation.metrics.class_results`'
per-class DataFrame and summary dict.
"""
import pandas as pd

from chestxray.core.atomic import atomic_write
from chestxray.core.paths import AUC_INTERVALS_PLOT, SUBGROUP_AUC_PLOT
from chestxray.evaluation.report import evaluation_figures, render_report, subgroup_figure
from chestxray.nih.labels import FINDINGS

# Per-class table columns logged as metrics, under these names.
CLASS_METRICS = {
    "auc": "auc", "auc_low": "auc_ci/low", "auc_high": "auc_ci/high",
    "average_precision": "average_precision", "ece": "ece",
    "threshold": "operating_point/threshold", "sensitivity": "operating_point/sensitivity",
    "specificity": "operating_point/specificity", "ppv": "operating_point/ppv",
    "npv": "operating_point/npv", "ppv_at_prevalence": "operating_point/ppv_at_prevalence",
    "npv_at_prevalence": "operating_point/npv_at_prevalence",
}
# Per-subgroup columns of :class:`~chestxray.evaluation.subgroups.Subgroups`' summary
# logged as ``subgroups/<attribute>/<subgroup>/<column>``.
SUBGROUP_COUNTS = ("images", "with_finding")
SUBGROUP_METRICS = (*SUBGROUP_COUNTS, "mean_auc", "mean_auc_low", "mean_auc_high",
                    "underdiagnosis", "underdiagnosis_low", "underdiagnosis_high")
DIGITS = 5


def undefined_classes(table):
    """Findings whose test AUC is undefined (no positive or no negative), in order."""
    return table.index[table["auc"].isna()].tolist()


def metric_values(table, overall):
    """``{metric name: value}`` of every defined figure: ``summary/<key>``, then
    ``<metric>/<finding>`` per class, rounded to 5 digits."""
    values = {f"summary/{key}": round(value, DIGITS)
              for key, value in overall.items() if value is not None}
    for finding, row in table.iterrows():
        for column, name in CLASS_METRICS.items():
            if pd.notna(row[column]):
                values[f"{name}/{finding}"] = round(float(row[column]), DIGITS)
    return values


def subgroup_metric_values(subgroups):
    """``{metric name: value}`` of every defined figure of a
    :class:`~chestxray.evaluation.subgroups.Subgroups`, rounded to 5 digits:
    ``subgroups/<attribute>/<subgroup>/<column>`` for :data:`SUBGROUP_METRICS`,
    ``subgroups/<attribute>/<subgroup>/auc/<finding>`` and
    ``subgroups/<attribute>/gap/<measure>`` with ``_low`` and ``_high``."""
    values = {}
    for (attribute, subgroup), row in subgroups.summary.iterrows():
        for column in SUBGROUP_METRICS:
            if pd.notna(row[column]):
                values[f"subgroups/{attribute}/{subgroup}/{column}"] = \
                    int(row[column]) if column in SUBGROUP_COUNTS else round(row[column], DIGITS)
    for (attribute, subgroup, finding), auc in subgroups.classes["auc"].dropna().items():
        values[f"subgroups/{attribute}/{subgroup}/auc/{finding}"] = round(float(auc), DIGITS)
    for (attribute, measure), row in subgroups.gaps.iterrows():
        for suffix in ("", "_low", "_high"):
            if pd.notna(row[f"gap{suffix}"]):
                values[f"subgroups/{attribute}/gap/{measure}{suffix}"] = round(
                    float(row[f"gap{suffix}"]), DIGITS)
    return values


def subgroup_intervals(summary):
    """Rows of the subgroup forest plot: ``subgroup`` (``sex: F``), mean_auc, mean_auc_low,
    mean_auc_high, for each subgroup with a mean AUC. summary : ``Subgroups.summary``."""
    defined = summary[summary["mean_auc"].notna()]
    return pd.DataFrame({
        "subgroup": [f"{attribute}: {subgroup}" for attribute, subgroup in defined.index],
        **{column: defined[column].to_numpy()
           for column in ("mean_auc", "mean_auc_low", "mean_auc_high")}})


def log_evaluation(live, table, overall, truth, scores, subgroups, *, calibration_bins, counts):
    """Log metrics, per-class curves, the AUC-interval plots and the figures to ``live``.

    truth, scores : (n, 14) 0/1 and probabilities of the test split; subgroups :
    :class:`~chestxray.evaluation.subgroups.Subgroups`, whose overall figures join
    ``summary/``; counts : ``{name: int}`` logged as plain metrics (e.g. image counts).
    Returns ``{caption: path relative to the report}`` of the figures.
    """
    values = {**metric_values(table, {**overall, **subgroups.overall}),
              **subgroup_metric_values(subgroups)}
    for name, value in values.items():
        live.log_metric(name, value, plot=False)
    undefined = undefined_classes(table)
    for column, finding in enumerate(FINDINGS):
        truth_column, score_column = truth[:, column], scores[:, column]
        live.log_sklearn_plot("calibration", truth_column, score_column,
                              name=f"calibration/{finding}", n_bins=calibration_bins)
        if finding in undefined:
            continue
        live.log_sklearn_plot("roc", truth_column, score_column, name=f"roc/{finding}")
        live.log_sklearn_plot("precision_recall", truth_column, score_column,
                              name=f"precision_recall/{finding}")
    intervals = table.loc[table["auc"].notna(), ["auc", "auc_low", "auc_high"]]
    live.log_plot(AUC_INTERVALS_PLOT.stem, intervals.rename_axis("finding").reset_index(),
                  x="auc", y="finding", template="forest", title="Test ROC AUC per class")
    live.log_plot(SUBGROUP_AUC_PLOT.stem, subgroup_intervals(subgroups.summary),
                  x="mean_auc", y="subgroup", template="forest",
                  title="Test mean ROC AUC per subgroup")
    figures = {**evaluation_figures(truth, scores, calibration_bins),
               "subgroups.png": ("Subgroups (test)", subgroup_figure(subgroups.summary, {
                   **overall, **subgroups.overall}))}
    for file_name, (_, figure) in figures.items():
        live.log_image(file_name, figure)
    for name, value in counts.items():
        live.log_metric(name, value, plot=False)
    return {caption: f"plots/images/{file_name}" for file_name, (caption, _) in figures.items()}


def run_details(settings, test_images, test_patients, val_images, undefined):
    """The report's list of run facts. settings : the ``evaluate`` params section."""
    rule = (f"highest threshold reaching sensitivity {settings['target_sensitivity']} on val"
            if settings["threshold_rule"] == "sensitivity" else "Youden's J on val")
    return {
        "test images": f"{test_images} ({test_patients} patients)",
        "validation images (thresholds)": val_images,
        "bootstrap": f"{settings['bootstrap_resamples']} patient-level resamples, "
                     f"seed {settings['bootstrap_seed']}, percentile intervals",
        "threshold rule": rule,
        "AUC undefined (no positives or no negatives in test)": ", ".join(undefined) or "none",
    }


def write_report(table, overall, subgroups, details, images, path):
    """Write the Markdown report (:func:`~chestxray.evaluation.report.render_report`)."""
    with atomic_write(path, "w") as handle:
        handle.write(render_report(table, overall, subgroups, details=details, images=images))


def write_predictions(images, scores, path):
    """Test-split probabilities as CSV: ``Image Index``, ``Patient ID`` and ``Finding Labels``
    of each image (``images``, a DataFrame with those columns), then one column per finding,
    6 digits. The file alone is enough to score or compare a model (evaluation/compare.py)."""
    predictions = pd.DataFrame(scores, columns=list(FINDINGS)).round(6)
    for position, column in enumerate(["Image Index", "Patient ID", "Finding Labels"]):
        predictions.insert(position, column, images[column].astype(str).to_numpy())
    with atomic_write(path, "w") as handle:
        predictions.to_csv(handle, index=False, lineterminator="\n")


def mean_auc_note(overall):
    """``mean AUC 0.856 (95% CI 0.816-0.900)``, or ``mean AUC undefined``."""
    mean, low, high = overall["mean_auc"], overall["mean_auc_low"], overall["mean_auc_high"]
    if low is None:
        return "mean AUC undefined"
    return f"mean AUC {mean:.3f} (95% CI {low:.3f}-{high:.3f})"
