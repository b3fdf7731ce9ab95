"""The trained model file: a Keras ``.keras`` archive that also records how to feed it.

Besides Keras' own entries the archive holds ``chestxray.json``: the registry backbone,
the order of the 14 outputs and the :class:`~chestxray.data.preprocessing.Preprocessing`
the model was trained with. Evaluation, Grad-CAM and ``predict`` read them
from the model itself, so none of them can feed it differently from training.
"""
import json
import zipfile
from pathlib import Path

import keras
import numpy as np

from chestxray.core.atomic import atomic_path
from chestxray.core.errors import PipelineError
from chestxray.data.preprocessing import Preprocessing
from chestxray.nih.labels import FINDINGS

RECORD_ENTRY = "chestxray.json"


class ModelFileError(PipelineError, ValueError):
    """A model file that is missing, damaged or not this pipeline's classifier."""


def save_model(model, preprocessing, path, backbone):
    """Write ``model`` (of the registry ``backbone``) with its ``preprocessing`` record to
    ``path`` (``.keras``), atomically."""
    record = {"backbone": backbone, "findings": list(FINDINGS),
              "preprocessing": preprocessing.to_dict()}
    with atomic_path(Path(path)) as staging:
        model.save(staging)
        with zipfile.ZipFile(staging, "a") as archive:
            archive.writestr(RECORD_ENTRY, json.dumps(record, indent=2))


def read_record(path):
    """The ``chestxray.json`` record of a model file, as a dict."""
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read(RECORD_ENTRY))
    except KeyError as error:
        raise ModelFileError(f"{path}: no {RECORD_ENTRY} record of how the model was "
                             "trained (saved by another program or an older version of "
                             "this pipeline): retrain it with the train stage") from error
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ModelFileError(f"{path}: cannot read the model's record ({error})") from error


def load_keras_archive(path, error, **options):
    """The Keras model saved at ``path`` (a ``.keras`` archive), loaded in safe mode.

    ``options`` go to ``keras.saving.load_model``. A file that is no zip archive, or
    that Keras cannot load, raises ``error(message)``, the message one line starting
    with ``path``.
    """
    if not zipfile.is_zipfile(path):
        # Keras reports any file that is not a zip archive as "File not found".
        raise error(f"{path}: not a .keras model archive (damaged, truncated or another kind "
                    "of file)")
    try:
        return keras.saving.load_model(path, safe_mode=True, **options)
    except (OSError, ValueError, TypeError, KeyError, zipfile.BadZipFile) as problem:
        raise error(f"{path}: cannot load the model ({problem})") from problem


def load_model(path):
    """The trained model at ``path`` and its preprocessing, loaded in safe mode.

    Returns ``(model, preprocessing)``. Raises :class:`ModelFileError` for a
    missing or damaged file, one without a record, or one whose inputs,
    outputs or findings are not this pipeline's.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found (run the train stage, or pass --model)")
    model = load_keras_archive(path, ModelFileError)
    inputs, outputs = model.input_shape, model.output_shape
    if len(inputs) != 4 or inputs[-1] != 1 or outputs[-1] != len(FINDINGS):
        raise ModelFileError(f"{path}: not this pipeline's classifier: it maps {inputs} to "
                             f"{outputs}, expected gray images (n, H, W, 1) to (n, "
                             f"{len(FINDINGS)}) finding probabilities")
    record = read_record(path)
    if record.get("findings") != list(FINDINGS):
        raise ModelFileError(f"{path}: its outputs are the findings {record.get('findings')}, "
                             f"not this pipeline's {list(FINDINGS)}")
    try:
        preprocessing = Preprocessing(**record["preprocessing"])
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: unusable preprocessing record ({error})") from error
    if inputs[1:3] != (preprocessing.image_size, preprocessing.image_size):
        raise ModelFileError(f"{path}: the model takes {inputs[1]}x{inputs[2]} images but its "
                             f"record says {preprocessing.image_size}")
    return model, preprocessing


def probabilities(model, dataset):
    """Probabilities for every image of a dataset of ``(images, labels)``: float32 (n, 14)."""
    return np.asarray(model.predict(dataset, verbose=0), dtype=np.float32)
