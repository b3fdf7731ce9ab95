"""gradcam: how well class activation heatmaps localise the boxed findings of the
test split (pointing game and IoU, against a centre-of-image baseline), and
overlays on the top-scoring test images of each class."""
from pathlib import Path

import numpy as np
import pandas as pd

from chestxray import nih_layout
from chestxray.cohort import RELEASE_SIZE
from chestxray.gradcam import draw_box, gradcam, overlay, upsample
from chestxray.images import read_gray
from chestxray.labels import FINDINGS
from chestxray.localization import localization_table, summarise_localization
from chestxray.params import load_params
from chestxray.predict import load_model, to_model_input
from chestxray.stage import run_stage
from chestxray.tracking import stage_live
from chestxray.training import configure_tensorflow, read_stats

DATASET_DIR = Path("outputs/dataset")
STATS_FILE = Path("outputs/stats.json")
MODEL_FILE = Path("outputs/model.keras")
# The evaluate stage writes test-split predictions only: its images are the test split.
PREDICTIONS_FILE = Path("outputs/predictions.csv")
METRICS_DIR = Path("metrics/gradcam")


def main():
    params = load_params("train", "gradcam")
    settings = params["gradcam"]
    size, per_class, layer = (params["train"]["image_size"], settings["images_per_class"],
                              settings["layer"])
    stats = read_stats(STATS_FILE)
    configure_tensorflow()
    model = load_model(MODEL_FILE)
    predictions = pd.read_csv(PREDICTIONS_FILE, dtype={"Image Index": str})
    paths = nih_layout.read_dataset(DATASET_DIR).set_index("Image Index")["path"]
    boxes = nih_layout.read_dataset_boxes(DATASET_DIR)

    def explain(names, findings):
        """Grad-CAM maps of findings[i] in image names[i] on the layer's grid, (n, h, w)."""
        grays = np.stack([read_gray(paths[name], size) for name in names]) if len(names) else \
            np.zeros((0, size, size), np.uint8)
        return gradcam(model, to_model_input(grays, stats["pixel_mean"], stats["pixel_std"]),
                       [FINDINGS.index(finding) for finding in findings], layer,
                       settings["batch_size"], resize=False)

    test_boxes = boxes[boxes["Image Index"].isin(predictions["Image Index"])]
    boxed = [(name, finding, group[["x", "y", "w", "h"]].to_numpy())
             for (name, finding), group in test_boxes.groupby(["Image Index", "Finding Label"])]
    names, findings, box_lists = zip(*boxed) if boxed else ((), (), ())
    native = explain(names, findings)
    table = localization_table(findings, native, upsample(native, (size, size)), box_lists,
                               settings["iou_threshold"])
    summary = summarise_localization(table)

    top = {finding: predictions.nlargest(per_class, finding)["Image Index"].tolist()
           for finding in FINDINGS}
    top_names = [name for finding in FINDINGS for name in top[finding]]
    top_findings = [finding for finding in FINDINGS for _ in top[finding]]
    with stage_live(METRICS_DIR) as live:
        for finding, row in summary.iterrows():
            for column, value in row.dropna().items():
                live.log_metric(f"localization/{finding}/{column}", round(float(value), 5),
                                plot=False)
        for name, finding, heatmap in zip(top_names, top_findings,
                                          explain(top_names, top_findings)):
            original = read_gray(paths[name])
            picture = overlay(original, upsample(heatmap, original.shape))
            scale = original.shape[1] / RELEASE_SIZE
            truth = boxes[(boxes["Image Index"] == name) & (boxes["Finding Label"] == finding)]
            for box in truth[["x", "y", "w", "h"]].to_numpy():
                draw_box(picture, box * scale)
            # "_gradcam" keeps overlays from sharing a name with a source radiograph.
            live.log_image(f"{finding}/{Path(name).stem}_gradcam.png", picture)

    overall = summary.loc["all"] if len(table) else None
    score_note = (f"pointing game {overall['hit_rate']:.3f} vs centre baseline "
                  f"{overall['centre_hit_rate']:.3f}, IoU {overall['iou']:.3f} vs "
                  f"{overall['centre_iou']:.3f} over {len(table)} boxed test findings"
                  if overall is not None else "no boxed test findings to score")
    print(f"Grad-CAM (layer '{layer}'): {score_note}; {len(top_names)} overlays -> "
          f"{METRICS_DIR}")


if __name__ == "__main__":
    run_stage(main)
