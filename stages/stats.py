"""stats: label prevalence, loss weights and pixel statistics of the train split."""
import json

from chestxray.core.params import load_params
from chestxray.core.paths import DATASET_DIR, SPLIT_FILE, STATS_FILE
from chestxray.core.stage import run_stage
from chestxray.core.tracking import stage_outputs
from chestxray.data.split import read_split_file, select_split
from chestxray.data.stats import training_statistics
from chestxray.nih import layout
from chestxray.nih.labels import FINDINGS, parse_findings


def main():
    params = load_params("stats", "train")
    train = select_split(layout.read_dataset(DATASET_DIR), read_split_file(SPLIT_FILE), "train")
    stats = training_statistics(parse_findings(train["Finding Labels"]), train["path"],
                                params["train"]["image_size"], params["stats"]["max_images"],
                                params["stats"]["seed"])
    with stage_outputs("stats") as outputs:
        outputs.path(STATS_FILE).write_text(json.dumps(stats, indent=2))
        live = outputs.live
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
