"""gradcam: how well class activation heatmaps localise the boxed findings of the
test split (pointing game and IoU, against a centre-of-image baseline), and
overlays on the top-scoring test images of each class."""
from pathlib import Path

import pandas as pd

from chestxray.core.params import load_params
from chestxray.core.paths import DATASET_DIR, MODEL_FILE, PREDICTIONS_FILE, metrics_dir
from chestxray.core.stage import run_stage
from chestxray.core.tracking import stage_outputs
from chestxray.data.preprocessing import load_display_image
from chestxray.explain.gradcam import Heatmaps, explain_files, feature_layer, upsample
from chestxray.explain.localization import (
    boxed_findings, localization_table, summarise_localization,
)
from chestxray.explain.overlays import MAX_DISPLAY_SIDE, overlay_panel
from chestxray.model.saved import load_model
from chestxray.model.training import configure_tensorflow
from chestxray.nih import layout
from chestxray.nih.labels import FINDINGS


def main():
    settings = load_params("gradcam")["gradcam"]
    per_class, batch_size = settings["images_per_class"], settings["batch_size"]
    configure_tensorflow()
    model, preprocessing = load_model(MODEL_FILE)
    layer = feature_layer(model, settings["layer"]).name
    heatmaps = Heatmaps(model, layer)
    size = preprocessing.image_size
    # The evaluate stage writes test-split predictions only: its images are the test split.
    predictions = pd.read_csv(PREDICTIONS_FILE, dtype={"Image Index": str})
    paths = layout.read_dataset(DATASET_DIR).set_index("Image Index")["path"]
    boxes = layout.read_dataset_boxes(DATASET_DIR)

    scored = boxed_findings(boxes, predictions["Image Index"])
    names, findings = zip(*scored) if scored else ((), ())
    native = explain_files(heatmaps, preprocessing, [paths[name] for name in names], findings,
                           batch_size)
    table = localization_table(findings, native, upsample(native, (size, size)),
                               list(scored.values()), settings["iou_threshold"])
    summary = summarise_localization(table)

    top = [(name, finding) for finding in FINDINGS
           for name in predictions.nlargest(per_class, finding)["Image Index"]]
    top_boxes = boxed_findings(boxes, [name for name, _ in top])
    with stage_outputs("gradcam") as outputs:
        live = outputs.live
        for finding, row in summary.iterrows():
            for column, value in row.dropna().items():
                live.log_metric(f"localization/{finding}/{column}", round(float(value), 5),
                                plot=False)
        overlaid = explain_files(heatmaps, preprocessing, [paths[name] for name, _ in top],
                                 [finding for _, finding in top], batch_size)
        for (name, finding), heatmap in zip(top, overlaid):
            panel = overlay_panel(load_display_image(paths[name], MAX_DISPLAY_SIDE), heatmap,
                                  top_boxes.get((name, finding), ()))
            # "_gradcam" keeps overlays from sharing a name with a source radiograph.
            live.log_image(f"{finding}/{Path(name).stem}_gradcam.png", panel)

    overall = summary.loc["all"] if len(table) else None
    score_note = (f"pointing game {overall['hit_rate']:.3f} vs centre baseline "
                  f"{overall['centre_hit_rate']:.3f}, IoU {overall['iou']:.3f} vs "
                  f"{overall['centre_iou']:.3f} over {len(table)} boxed test findings"
                  if overall is not None else "no boxed test findings to score")
    print(f"Grad-CAM (layer '{layer}'): {score_note}; {len(top)} overlays -> "
          f"{metrics_dir('gradcam')}")


if __name__ == "__main__":
    run_stage(main)
