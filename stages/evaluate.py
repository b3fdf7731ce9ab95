"""evaluate: AUC with patient-level bootstrap CIs, PR curves, operating points and
calibration on the test split (thresholds chosen on val), plus a Markdown report."""
from pathlib import Path

import pandas as pd

from chestxray import nih_layout
from chestxray.atomic import atomic_write
from chestxray.dataset import naming_unreadable_images
from chestxray.evaluation import class_results
from chestxray.labels import FINDINGS, parse_findings
from chestxray.params import load_params
from chestxray.predict import load_model
from chestxray.report import evaluation_figures, render_report
from chestxray.split import check_no_leakage, read_split_file, select_split
from chestxray.stage import run_stage
from chestxray.tracking import stage_live
from chestxray.training import configure_tensorflow, predict, read_stats, split_dataset

DATASET_DIR = Path("outputs/dataset")
SPLIT_FILE = Path("outputs/split.csv")
STATS_FILE = Path("outputs/stats.json")
MODEL_FILE = Path("outputs/model.keras")
PREDICTIONS_FILE = Path("outputs/predictions.csv")
METRICS_DIR = Path("metrics/evaluate")
REPORT_FILE = METRICS_DIR / "report.md"
# Per-class table columns logged as metrics, under these names.
CLASS_METRICS = {
    "auc": "auc", "auc_low": "auc_ci/low", "auc_high": "auc_ci/high",
    "average_precision": "average_precision", "ece": "ece",
    "threshold": "operating_point/threshold", "sensitivity": "operating_point/sensitivity",
    "specificity": "operating_point/specificity", "ppv": "operating_point/ppv",
    "npv": "operating_point/npv", "ppv_at_prevalence": "operating_point/ppv_at_prevalence",
    "npv_at_prevalence": "operating_point/npv_at_prevalence",
}


def main():
    params = load_params("train", "evaluate")
    settings = params["evaluate"]
    split_table = read_split_file(SPLIT_FILE)
    # Second gate: never score a test set that shares a patient with train.
    check_no_leakage(split_table["Patient ID"], split_table["split"])
    labels = nih_layout.read_dataset(DATASET_DIR)
    data_params = dict(params["train"], batch_size=settings["batch_size"])
    configure_tensorflow()
    model = load_model(MODEL_FILE)
    stats = read_stats(STATS_FILE)
    splits = {name: select_split(labels, split_table, name) for name in ("val", "test")}
    truth = {name: parse_findings(frame["Finding Labels"]) for name, frame in splits.items()}
    # float64: dvclive cannot write the float32 thresholds of a precision-recall curve.
    with naming_unreadable_images([*splits["val"]["path"], *splits["test"]["path"]]):
        scores = {name: predict(model, split_dataset(frame, stats, data_params, training=False))
                  .astype("float64") for name, frame in splits.items()}
    test = splits["test"]

    table, overall = class_results(
        truth["test"], scores["test"], test["Patient ID"], truth["val"], scores["val"],
        resamples=settings["bootstrap_resamples"], seed=settings["bootstrap_seed"],
        target_sensitivity=settings["target_sensitivity"]
        if settings["threshold_rule"] == "sensitivity" else None,
        calibration_bins=settings["calibration_bins"])

    predictions = pd.DataFrame(scores["test"], columns=list(FINDINGS)).round(6)
    predictions.insert(0, "Image Index", test["Image Index"])
    with atomic_write(PREDICTIONS_FILE, "w") as handle:
        predictions.to_csv(handle, index=False, lineterminator="\n")

    undefined = table.index[table["auc"].isna()].tolist()
    with stage_live(METRICS_DIR) as live:
        for key, value in overall.items():
            if value is not None:
                live.log_metric(f"summary/{key}", round(value, 5), plot=False)
        for finding, row in table.iterrows():
            for column, name in CLASS_METRICS.items():
                if pd.notna(row[column]):
                    live.log_metric(f"{name}/{finding}", round(float(row[column]), 5), plot=False)
        for column, finding in enumerate(FINDINGS):
            truth_column, score_column = truth["test"][:, column], scores["test"][:, column]
            live.log_sklearn_plot("calibration", truth_column, score_column,
                                  name=f"calibration/{finding}",
                                  n_bins=settings["calibration_bins"])
            if finding in undefined:
                continue
            live.log_sklearn_plot("roc", truth_column, score_column, name=f"roc/{finding}")
            live.log_sklearn_plot("precision_recall", truth_column, score_column,
                                  name=f"precision_recall/{finding}")
        intervals = table.loc[table["auc"].notna(), ["auc", "auc_low", "auc_high"]]
        live.log_plot("auc_ci", intervals.rename_axis("finding").reset_index(), x="auc",
                      y="finding", template="bar_horizontal", title="Test ROC AUC per class")
        figures = evaluation_figures(truth["test"], scores["test"], settings["calibration_bins"])
        for file_name, (_, figure) in figures.items():
            live.log_image(file_name, figure)
        live.log_metric("test_images", len(test), plot=False)
        live.log_metric("val_images", len(splits["val"]), plot=False)
        live.log_metric("undefined_classes", len(undefined), plot=False)

    rule = (f"highest threshold reaching sensitivity {settings['target_sensitivity']} on val"
            if settings["threshold_rule"] == "sensitivity" else "Youden's J on val")
    details = {
        "test images": f"{len(test)} ({test['Patient ID'].nunique()} patients)",
        "validation images (thresholds)": len(splits["val"]),
        "bootstrap": f"{settings['bootstrap_resamples']} patient-level resamples, "
                     f"seed {settings['bootstrap_seed']}, percentile intervals",
        "threshold rule": rule,
        "AUC undefined (no positives or no negatives in test)": ", ".join(undefined) or "none",
    }
    images = {caption: f"plots/images/{file_name}" for file_name, (caption, _) in figures.items()}
    with atomic_write(REPORT_FILE, "w") as handle:
        handle.write(render_report(table, overall, details=details, images=images))

    mean, low, high = overall["mean_auc"], overall["mean_auc_low"], overall["mean_auc_high"]
    auc_note = f"mean AUC {mean:.3f} (95% CI {low:.3f}-{high:.3f})" if low is not None else \
        "mean AUC undefined"
    print(f"scored {len(test)} test images: {auc_note} over {len(FINDINGS) - len(undefined)} "
          f"classes -> {METRICS_DIR}, {REPORT_FILE}, {PREDICTIONS_FILE}")


if __name__ == "__main__":
    run_stage(main)
