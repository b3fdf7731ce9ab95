"""Run the trained model on image files: probabilities and Grad-CAM overlays."""
import json
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from PIL import Image

from chestxray.atomic import atomic_write
from chestxray.errors import PipelineError
from chestxray.gradcam import DEFAULT_LAYER, feature_layer, gradcam, overlay, upsample
from chestxray.images import ImageError, read_gray
from chestxray.labels import FINDINGS
from chestxray.losses import WeightedBinaryCrossentropy  # noqa: F401 (registers the loss)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
OUTPUT_FORMATS = (".csv", ".json")


class PredictError(PipelineError, ValueError):
    """A model, stats file or output path that predict cannot use."""


def load_model(path):
    """The trained model at ``path``, loaded in safe mode; raises PredictError if unusable."""
    if not Path(path).is_file():
        raise PredictError(f"{path}: model file not found (run the train stage, or pass --model)")
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except (OSError, ValueError, TypeError, zipfile.BadZipFile) as error:
        raise PredictError(f"{path}: cannot load the model ({error})") from error
    inputs, outputs = model.input_shape, model.output_shape
    if len(inputs) != 4 or inputs[-1] != 1 or outputs[-1] != len(FINDINGS):
        raise PredictError(f"{path}: not this pipeline's classifier: it maps {inputs} to "
                           f"{outputs}, expected gray images (n, H, W, 1) to (n, "
                           f"{len(FINDINGS)}) finding probabilities")
    return model


def read_pixel_stats(path):
    """(pixel_mean, pixel_std) from the stats stage's JSON; raises PredictError if unusable."""
    try:
        stats = json.loads(Path(path).read_text())
        return float(stats["pixel_mean"]), float(stats["pixel_std"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PredictError(f"{path}: cannot read pixel_mean/pixel_std ({error})") from error


def input_size(model):
    """Side in pixels of the square gray images ``model`` takes."""
    _, height, width, _ = model.input_shape
    if height != width:
        raise PredictError(f"model input {height}x{width} is not square")
    return int(height)


def to_model_input(grays, pixel_mean, pixel_std):
    """uint8 gray images (n, H, W) -> normalised float32 (n, H, W, 1), as in training."""
    return ((np.asarray(grays, np.float32) - pixel_mean) / pixel_std)[..., None]


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


def predict_files(model, files, pixel_stats, batch_size=32):
    """Probabilities of the 14 findings for each readable file.

    files : sequence of paths; pixel_stats : (mean, std). Reads ``batch_size``
    files at a time, so a folder of any size fits in memory.
    Returns ``(table, failures)``: a DataFrame with column ``image`` (str) and
    one float column per finding for the readable files, and a list of one-line
    messages, one per file that could not be read.
    """
    size = input_size(model)
    rows, failures = [], []
    for start in range(0, len(files), batch_size):
        names, grays = [], []
        for path in files[start:start + batch_size]:
            try:
                grays.append(read_gray(path, size))
                names.append(str(path))
            except ImageError as error:
                failures.append(str(error))
        if names:
            # An eager call: model.predict first spends ~10 s tracing DenseNet121
            # on CPU, more than scoring a typical handful of files takes.
            scores = model(to_model_input(grays, *pixel_stats), training=False)
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


def write_overlays(model, table, pixel_stats, directory, top, layer=DEFAULT_LAYER):
    """Grad-CAM overlays of each image's ``top`` most probable findings.

    table : from :func:`predict_files`. Writes ``directory/<stem>_<finding>.png``
    at the image's own resolution. Returns the list of written paths.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    size = input_size(model)
    scores = table[list(FINDINGS)].to_numpy()
    top_classes = np.argsort(-scores, axis=1, kind="stable")[:, :top]
    written = []
    for image, classes in zip(table["image"], top_classes):
        original = read_gray(image)
        batch = to_model_input(np.repeat(read_gray(image, size)[None], len(classes), axis=0),
                               *pixel_stats)
        heatmaps = gradcam(model, batch, classes, layer, resize=False)
        for class_index, heatmap in zip(classes, heatmaps):
            path = directory / f"{Path(image).stem}_{FINDINGS[class_index]}.png"
            Image.fromarray(overlay(original, upsample(heatmap, original.shape))).save(path)
            written.append(path)
    return written


def check_output_path(out):
    """Raise PredictError unless ``out`` names a .csv or .json file."""
    if Path(out).suffix.lower() not in OUTPUT_FORMATS:
        raise PredictError(f"--out {out}: use a .csv or .json file name")


def run(inputs, model, pixel_stats, out, *, gradcam_dir=None, top=3, layer=DEFAULT_LAYER,
        batch_size=32):
    """The ``predict`` command once model and stats are loaded; returns the exit status.

    inputs : image files or folders; model : from :func:`load_model`;
    pixel_stats : from :func:`read_pixel_stats`; out : a path accepted by
    :func:`check_output_path`. Prints one message per unreadable file on stderr
    and one summary line on stdout; the status is 1 if any file failed, else 0.
    Raises :class:`PredictError` for problems that stop everything.
    """
    files = image_files(inputs)
    if not files:
        raise PredictError(f"no PNG or JPEG files in {', '.join(map(str, inputs))}")
    if gradcam_dir:
        feature_layer(model, layer)  # fail before scoring, not after
    table, failures = predict_files(model, files, pixel_stats, batch_size)
    for message in failures:
        print(f"error: {message}", file=sys.stderr)
    write_predictions(table, out)
    overlays = write_overlays(model, table, pixel_stats, gradcam_dir, top, layer) \
        if gradcam_dir else []
    overlay_note = f", {len(overlays)} Grad-CAM overlays -> {gradcam_dir}" if gradcam_dir else ""
    print(f"predicted {len(table)} of {len(files)} images -> {out}{overlay_note}"
          + (f"; {len(failures)} failed" if failures else ""))
    return 1 if failures else 0
