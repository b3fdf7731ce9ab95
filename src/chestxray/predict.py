"""Run the trained model on image files: probabilities and Grad-CAM overlays.

Images are preprocessed as the model's own record says (see
:mod:`chestxray.model.saved`), by the functions training used.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from chestxray.core.atomic import atomic_write
from chestxray.core.errors import PipelineError
from chestxray.data.images import ImageError
from chestxray.data.preprocessing import load_display_image, load_image
from chestxray.explain.gradcam import DEFAULT_LAYER, explain_files, feature_layer
from chestxray.explain.overlays import MAX_DISPLAY_SIDE, overlay_panel
from chestxray.nih.labels import FINDINGS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
OUTPUT_FORMATS = (".csv", ".json")


class PredictError(PipelineError, ValueError):
    """Arguments or an output path that predict cannot use."""


def image_files(inputs):
    """Files named by ``inputs`` (paths of images or folders searched recursively for
    PNG/JPEG). Returns a list of Paths in argument order, folders sorted; a path
    that does not exist is kept so that reading it reports the problem."""
    files = []
    for argument in map(Path, inputs):
        if argument.is_dir():
            files += sorted(path for path in argument.rglob("*")
                            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())
        else:
            files.append(argument)
    return files


def predict_files(model, preprocessing, files, batch_size=32):
    """Probabilities of the 14 findings for each readable file.

    files : sequence of paths; preprocessing : the model's
    :class:`~chestxray.data.preprocessing.Preprocessing`. Reads ``batch_size``
    files at a time, so a folder of any size fits in memory.
    Returns ``(table, failures)``: a DataFrame with column ``image`` (str) and
    one float column per finding for the readable files, and a list of one-line
    messages, one per file that could not be read.
    """
    rows, failures = [], []
    for start in range(0, len(files), batch_size):
        names, pixels = [], []
        for path in files[start:start + batch_size]:
            try:
                pixels.append(load_image(path, preprocessing.image_size))
                names.append(str(path))
            except ImageError as error:
                failures.append(str(error))
        if names:
            # An eager call: model.predict first spends ~10 s tracing DenseNet121
            # on CPU, more than scoring a typical handful of files takes.
            scores = model(preprocessing.model_input(np.stack(pixels)), training=False)
            rows.append(pd.DataFrame(np.asarray(scores, np.float64), columns=list(FINDINGS))
                        .round(6).assign(image=names))
    table = pd.concat(rows, ignore_index=True) if rows else \
        pd.DataFrame(columns=list(FINDINGS)).assign(image=[])
    return table[["image", *FINDINGS]], failures


def write_predictions(table, path):
    """Write a :func:`predict_files` table as CSV or JSON (records), chosen by suffix."""
    path = Path(path)
    with atomic_write(path, "w") as handle:
        if path.suffix.lower() == ".json":
            json.dump(table.to_dict(orient="records"), handle, indent=2)
            handle.write("\n")
        else:
            table.to_csv(handle, index=False, lineterminator="\n")


def write_overlays(model, preprocessing, table, directory, top, layer=DEFAULT_LAYER):
    """Grad-CAM panels of each image's ``top`` most probable findings.

    table : from :func:`predict_files`. Writes ``directory/<stem>_<finding>.png``:
    the image at its own resolution (at most ``MAX_DISPLAY_SIDE`` pixels a
    side) beside the heatmap blended onto it. Returns the list of written paths.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    scores = table[list(FINDINGS)].to_numpy()
    top_classes = np.argsort(-scores, axis=1, kind="stable")[:, :top]
    written = []
    for image, classes in zip(table["image"], top_classes):
        findings = [FINDINGS[index] for index in classes]
        heatmaps = explain_files(model, preprocessing, [image] * len(findings), findings, layer)
        display = load_display_image(image, MAX_DISPLAY_SIDE)
        for finding, heatmap in zip(findings, heatmaps):
            path = directory / f"{Path(image).stem}_{finding}.png"
            Image.fromarray(overlay_panel(display, heatmap)).save(path)
            written.append(path)
    return written


def check_output_path(out):
    """Raise PredictError unless ``out`` names a .csv or .json file."""
    if Path(out).suffix.lower() not in OUTPUT_FORMATS:
        raise PredictError(f"--out {out}: use a .csv or .json file name")


def run(inputs, model, preprocessing, out, *, gradcam_dir=None, top=3, layer=DEFAULT_LAYER,
        batch_size=32):
    """The ``predict`` command once the model is loaded; returns the exit status.

    inputs : image files or folders; model, preprocessing : from
    :func:`chestxray.model.saved.load_model`; out : a path accepted by
    :func:`check_output_path`. Prints one message per unreadable file on stderr
    and one summary line on stdout; the status is 1 if any file failed, else 0.
    Raises :class:`PredictError` for problems that stop everything.
    """
    files = image_files(inputs)
    if not files:
        raise PredictError(f"no PNG or JPEG files in {', '.join(map(str, inputs))}")
    if gradcam_dir:
        feature_layer(model, layer)  # fail before scoring, not after
    table, failures = predict_files(model, preprocessing, files, batch_size)
    for message in failures:
        print(f"error: {message}", file=sys.stderr)
    write_predictions(table, out)
    overlays = write_overlays(model, preprocessing, table, gradcam_dir, top, layer) \
        if gradcam_dir else []
    overlay_note = f", {len(overlays)} Grad-CAM overlays -> {gradcam_dir}" if gradcam_dir else ""
    print(f"predicted {len(table)} of {len(files)} images -> {out}{overlay_note}"
          + (f"; {len(failures)} failed" if failures else ""))
    return 1 if failures else 0
