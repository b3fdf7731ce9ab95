"""Run the trained model on image files: probabilities and Grad-CAM overlays.

Images are preprocessed as the model's own record says (see
:mod:`chestxray.model.saved`), by the functions training used.
"""
import json
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from chestxray.core.atomic import atomic_path, atomic_write
from chestxray.core.errors import PipelineError
from chestxray.data.images import ImageError
from chestxray.data.preprocessing import load_display_image, load_image
from chestxray.explain.gradcam import DEFAULT_LAYER, Heatmaps, explain_files, feature_layer
from chestxray.explain.overlays import MAX_DISPLAY_SIDE, overlay_panel
from chestxray.nih.labels import FINDINGS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
OUTPUT_FORMATS = (".csv", ".json")


class PredictError(PipelineError, ValueError):
    """Arguments or an output path that predict cannot use."""


def image_files(inputs):
    """Files named by ``inputs`` (paths of images or folders searched recursively for
    PNG/JPEG). Returns a list of Paths in argument order, folders sorted; a path
    that does not exist is kept so that reading it reports the problem; each file
    appears once."""
    files = []
    for argument in map(Path, inputs):
        if argument.is_dir():
            files += sorted(path for path in argument.rglob("*")
                            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())
        else:
            files.append(argument)
    # A file named twice (a folder and a file in it) is scored once.
    return list(dict.fromkeys(files))


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


def overlay_stems(images):
    """One distinct name per image for its overlays, as a relative path without suffix.

    images : sequence of n distinct paths. Returns n Paths: each image's path
    relative to the folder that holds them all, without its suffix, so
    ``a/x.png`` and ``b/x.png`` give ``a/x`` and ``b/x``, and the images of
    one folder keep their stems. Files that differ only in suffix keep it
    (``x.png``, ``x.jpg`` give ``x_png``, ``x_jpg``).
    """
    paths = [Path(image).absolute() for image in images]
    if not paths:
        return []
    root = Path(os.path.commonpath([path.parent for path in paths]))
    stems = [path.relative_to(root).with_suffix("") for path in paths]
    shared = {stem for stem, count in Counter(stems).items() if count > 1}
    return [stem.with_name(f"{stem.name}_{path.suffix.lstrip('.')}") if stem in shared else stem
            for stem, path in zip(stems, paths)]


def write_overlays(model, preprocessing, table, directory, top, layer=DEFAULT_LAYER):
    """Grad-CAM panels of each image's ``top`` most probable findings.

    table : from :func:`predict_files`. Writes ``directory/<stem>_<finding>.png``,
    ``<stem>`` from :func:`overlay_stems`: the image at its own resolution (at
    most ``MAX_DISPLAY_SIDE`` pixels a side) beside the heatmap blended onto
    it. Returns the list of written paths.
    """
    directory = Path(directory)
    scores = table[list(FINDINGS)].to_numpy()
    top_classes = np.argsort(-scores, axis=1, kind="stable")[:, :top]
    heatmaps = Heatmaps(model, layer)
    written = []
    for image, stem, classes in zip(table["image"], overlay_stems(table["image"]), top_classes):
        findings = [FINDINGS[index] for index in classes]
        display = load_display_image(image, MAX_DISPLAY_SIDE)
        for finding, heatmap in zip(findings, explain_files(heatmaps, preprocessing,
                                                            [image] * len(findings), findings)):
            path = directory / stem.parent / f"{stem.name}_{finding}.png"
            with atomic_path(path) as temporary:
                Image.fromarray(overlay_panel(display, heatmap)).save(temporary)
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
    if table.empty:
        print(f"predicted 0 of {len(files)} images; {out} was left as it was")
        return 1
    write_predictions(table, out)
    overlays = write_overlays(model, preprocessing, table, gradcam_dir, top, layer) \
        if gradcam_dir else []
    overlay_note = f", {len(overlays)} Grad-CAM overlays -> {gradcam_dir}" if gradcam_dir else ""
    print(f"predicted {len(table)} of {len(files)} images -> {out}{overlay_note}"
          + (f"; {len(failures)} failed" if failures else ""))
    return 1 if failures else 0
