"""stats: label prevalence, loss weights and pixel statistics of the train split."""
import json
from pathlib import Path

import pandas as pd

from chestxray import nih_layout
from chestxray.atomic import atomic_write
from chestxray.labels import FINDINGS, parse_findings
from chestxray.params import load_params
from chestxray.stage import run_stage
from chestxray.stats import training_statistics
from chestxray.tracking import stage_live

DATASET_DIR = Path("outputs/dataset")
SPLIT_FILE = Path("outputs/split.csv")
STATS_FILE = Path("outputs/stats.json")


def main():
    params = load_params("stats", "train")
    labels = nih_layout.read_dataset(DATASET_DIR)
    split = pd.read_csv(SPLIT_FILE)
    train = labels[labels["Image Index"].isin(split.loc[split["split"] == "train", "Image Index"])]
    stats = training_statistics(parse_findings(train["Finding Labels"]), train["path"],
                                params["train"]["image_size"], params["stats"]["max_images"],
                                params["stats"]["seed"])
    with atomic_write(STATS_FILE, "w") as handle:
        json.dump(stats, handle, indent=2)
    with stage_live("metrics/stats") as live:
        live.log_metric("pixel_mean", stats["pixel_mean"], plot=False)
        live.log_metric("pixel_std", stats["pixel_std"], plot=False)
        rows = [{"finding": name, "prevalence": stats["positive_frequency"][name]}
                for name in FINDINGS]
        live.log_plot("train_prevalence", rows, x="prevalence", y="finding",
                      template="bar_horizontal_sorted", title="Label prevalence (train split)")
    print(f"wrote statistics of {stats['images']} training images (pixel mean "
          f"{stats['pixel_mean']:.1f}, std {stats['pixel_std']:.1f}) -> {STATS_FILE}")


if __name__ == "__main__":
    run_stage(main)
