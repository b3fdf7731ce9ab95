"""evaluate: AUC with patient-level bootstrap CIs, PR curves, operating points and
calibration on the test split (thresholds chosen on val), the same per subgroup of sex, age
and view with underdiagnosis rates and gaps, plus a Markdown report."""
import logging
import time

from chestxray.core.params import load_params
from chestxray.core.paths import (
    DATASET_DIR, MODEL_FILE, PREDICTIONS_FILE, REPORT_FILE, SPLIT_FILE, metrics_dir,
)
from chestxray.core.stage import run_stage
from chestxray.core.tracking import stage_outputs
from chestxray.data.dataset import naming_unreadable_images, split_dataset
from chestxray.data.split import check_no_leakage, read_split_file, select_split
from chestxray.evaluation.metrics import class_results
from chestxray.evaluation.publish import (
    log_evaluation, mean_auc_note, run_details, undefined_classes, write_predictions, write_report,
)
from chestxray.evaluation.subgroups import any_finding_threshold, subgroup_results, subgroup_table
from chestxray.model.saved import load_model, probabilities
from chestxray.model.training import configure_tensorflow
from chestxray.nih import layout
from chestxray.nih.labels import FINDINGS, parse_findings

log = logging.getLogger("evaluate")


def main():
    params = load_params("train", "evaluate")
    settings = params["evaluate"]
    split_table = read_split_file(SPLIT_FILE)
    # Second gate: never score a test set that shares a patient with train.
    check_no_leakage(split_table["Patient ID"], split_table["split"])
    labels = layout.read_dataset(DATASET_DIR)
    configure_tensorflow()
    model, preprocessing = load_model(MODEL_FILE)
    splits = {name: select_split(labels, split_table, name) for name in ("val", "test")}
    truth = {name: parse_findings(frame["Finding Labels"]) for name, frame in splits.items()}
    started = time.perf_counter()
    # float64: dvclive cannot write the float32 thresholds of a precision-recall curve.
    with naming_unreadable_images([*splits["val"]["path"], *splits["test"]["path"]]):
        scores = {name: probabilities(model, split_dataset(
                      frame, preprocessing, settings["batch_size"],
                      cache_dir=params["train"]["cache_dir"])).astype("float64")
                  for name, frame in splits.items()}
    test, val = splits["test"], splits["val"]
    predicted = time.perf_counter()

    target_sensitivity = settings["target_sensitivity"] \
        if settings["threshold_rule"] == "sensitivity" else None
    table, overall = class_results(
        truth["test"], scores["test"], test["Patient ID"], truth["val"], scores["val"],
        resamples=settings["bootstrap_resamples"], seed=settings["bootstrap_seed"],
        target_sensitivity=target_sensitivity, calibration_bins=settings["calibration_bins"])
    subgroups = subgroup_results(
        subgroup_table(test, settings["subgroup_age_bands"]), truth["test"], scores["test"],
        test["Patient ID"],
        any_finding_threshold(truth["val"], scores["val"], target_sensitivity),
        min_patients=settings["subgroup_min_patients"], resamples=settings["bootstrap_resamples"],
        seed=settings["bootstrap_seed"])
    undefined = undefined_classes(table)
    with stage_outputs("evaluate") as outputs:
        write_predictions(test, scores["test"], outputs.path(PREDICTIONS_FILE))
        images = log_evaluation(
            outputs.live, table, overall, truth["test"], scores["test"], subgroups,
            calibration_bins=settings["calibration_bins"],
            counts={"test_images": len(test), "val_images": len(val),
                    "undefined_classes": len(undefined)})
        write_report(table, overall, subgroups,
                     run_details(settings, len(test), test["Patient ID"].nunique(), len(val),
                                 undefined),
                     images, outputs.path(REPORT_FILE))
    # Read by benchmarks/full_size.py: its target excludes the prediction.
    log.info("predicted %d val and %d test images in %.1f s; intervals, operating points, "
             "calibration, subgroups, plots and report in %.1f s", len(val), len(test),
             predicted - started, time.perf_counter() - predicted)
    print(f"scored {len(test)} test images: {mean_auc_note(overall)} over "
          f"{len(FINDINGS) - len(undefined)} classes -> {metrics_dir('evaluate')}, "
          f"{REPORT_FILE}, {PREDICTIONS_FILE}")


if __name__ == "__main__":
    run_stage(main)
