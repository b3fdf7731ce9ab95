"""gradcam: class activation heatmaps on the top-scoring test images of each class."""
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from chestxray import nih_layout
from chestxray.cohort import RELEASE_SIZE
from chestxray.gradcam import draw_box, gradcam, overlay
from chestxray.images import read_gray
from chestxray.labels import FINDINGS
from chestxray.losses import WeightedBinaryCrossentropy  # noqa: F401 (registers the loss)
from chestxray.params import load_params
from chestxray.stage import run_stage
from chestxray.tracking import stage_live
from chestxray.training import configure_tensorflow, read_stats

DATASET_DIR = Path("outputs/dataset")
STATS_FILE = Path("outputs/stats.json")
MODEL_FILE = Path("outputs/model.keras")
PREDICTIONS_FILE = Path("outputs/predictions.csv")


def main():
    params = load_params("train", "gradcam")
    size, per_class = params["train"]["image_size"], params["gradcam"]["images_per_class"]
    stats = read_stats(STATS_FILE)
    configure_tensorflow()
    model = keras.saving.load_model(MODEL_FILE, safe_mode=True)
    predictions = pd.read_csv(PREDICTIONS_FILE, dtype={"Image Index": str})
    paths = nih_layout.read_dataset(DATASET_DIR).set_index("Image Index")["path"]
    boxes = nih_layout.read_dataset_boxes(DATASET_DIR)
    written = 0
    with stage_live("metrics/gradcam") as live:
        for class_index, finding in enumerate(FINDINGS):
            top = predictions.nlargest(per_class, finding)["Image Index"].tolist()
            originals = [read_gray(paths[name]) for name in top]
            batch = np.stack([read_gray(paths[name], size) for name in top]).astype(np.float32)
            batch = ((batch - stats["pixel_mean"]) / stats["pixel_std"])[..., None]
            heatmaps = gradcam(model, batch, class_index, params["gradcam"]["layer"])
            for name, original, heatmap in zip(top, originals, heatmaps):
                full = keras.ops.convert_to_numpy(keras.ops.image.resize(
                    heatmap[..., None], original.shape, interpolation="bilinear"))[..., 0]
                picture = overlay(original, np.clip(full, 0, 1))
                scale = original.shape[1] / RELEASE_SIZE
                truth = boxes[(boxes["Image Index"] == name) & (boxes["Finding Label"] == finding)]
                for box in truth[["x", "y", "w", "h"]].to_numpy():
                    draw_box(picture, box * scale)
                live.log_image(f"{finding}/{Path(name).stem}.png", picture)
                written += 1
    print(f"wrote {written} Grad-CAM overlays ({per_class} per class, layer "
          f"'{params['gradcam']['layer']}') -> metrics/gradcam/plots/images")


if __name__ == "__main__":
    run_stage(main)
