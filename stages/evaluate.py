"""evaluate: per-class ROC AUC and ROC curves on the test split."""
from pathlib import Path

import keras
import pandas as pd

from chestxray import nih_layout
from chestxray.atomic import atomic_write
from chestxray.evaluation import mean_auc, per_class_auc
from chestxray.labels import FINDINGS, parse_findings
from chestxray.losses import WeightedBinaryCrossentropy  # noqa: F401 (registers the loss)
from chestxray.params import load_params
from chestxray.split import check_no_leakage, read_split_file, select_split
from chestxray.stage import run_stage
from chestxray.tracking import stage_live
from chestxray.training import configure_tensorflow, predict, read_stats, split_dataset

DATASET_DIR = Path("outputs/dataset")
SPLIT_FILE = Path("outputs/split.csv")
STATS_FILE = Path("outputs/stats.json")
MODEL_FILE = Path("outputs/model.keras")
PREDICTIONS_FILE = Path("outputs/predictions.csv")


def main():
    params = load_params("train", "evaluate")
    split_table = read_split_file(SPLIT_FILE)
    # Second gate: never score a test set that shares a patient with train.
    scored = split_table[split_table["split"].isin(["train", "test"])]
    check_no_leakage(scored["Patient ID"], scored["split"])
    test = select_split(nih_layout.read_dataset(DATASET_DIR), split_table, "test")
    data_params = dict(params["train"], batch_size=params["evaluate"]["batch_size"])
    configure_tensorflow()
    model = keras.saving.load_model(MODEL_FILE, safe_mode=True)
    scores = predict(model, split_dataset(test, read_stats(STATS_FILE), data_params,
                                          training=False))
    truth = parse_findings(test["Finding Labels"])
    aucs = per_class_auc(truth, scores)

    predictions = pd.DataFrame(scores, columns=list(FINDINGS)).round(6)
    predictions.insert(0, "Image Index", test["Image Index"])
    with atomic_write(PREDICTIONS_FILE, "w") as handle:
        predictions.to_csv(handle, index=False, lineterminator="\n")

    undefined = [name for name, value in aucs.items() if value is None]
    with stage_live("metrics/evaluate") as live:
        live.log_metric("auc/mean", round(mean_auc(aucs), 5), plot=False)
        for column, name in enumerate(FINDINGS):
            if aucs[name] is None:
                continue
            live.log_metric(f"auc/{name}", round(aucs[name], 5), plot=False)
            live.log_sklearn_plot("roc", truth[:, column], scores[:, column], name=f"roc/{name}")
        live.log_metric("test_images", len(test), plot=False)
        live.log_metric("undefined_classes", len(undefined), plot=False)
    note = f"; AUC undefined (no positives or no negatives) for {', '.join(undefined)}" \
        if undefined else ""
    print(f"scored {len(test)} test images: mean AUC {mean_auc(aucs):.3f} over "
          f"{len(FINDINGS) - len(undefined)} classes{note} -> metrics/evaluate, {PREDICTIONS_FILE}")


if __name__ == "__main__":
    run_stage(main)
