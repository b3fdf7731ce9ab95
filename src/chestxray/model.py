"""DenseNet121 with a 14-way sigmoid head, as in CheXNet and the course seeds."""
from pathlib import Path

import keras

from chestxray.errors import PipelineError
from chestxray.labels import FINDINGS

IMAGENET_WEIGHTS_FILE = "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"


class WeightsUnavailableError(PipelineError, RuntimeError):
    """Pre-trained weights were asked for but cannot be obtained."""


def resolve_weights(weights):
    """Map ``train.weights`` (``imagenet``, ``none`` or a file path) to Keras' argument."""
    if weights == "none":
        return None
    if weights == "imagenet":
        return "imagenet"
    path = Path(weights)
    if not path.is_file():
        raise WeightsUnavailableError(
            f"train.weights: {weights!r} is neither 'imagenet', 'none' nor an existing file")
    return str(path)


def build_model(image_size, weights="none", batchnorm_momentum=0.99):
    """DenseNet121 (include_top=False) + global average pooling + Dense(14, sigmoid).

    The model takes gray images of shape (batch, image_size, image_size, 1),
    already normalised, and returns float32 probabilities of shape (batch, 14).
    Gray input is repeated to three channels so ImageNet weights apply.
    ``batchnorm_momentum`` below Keras' 0.99 lets the moving statistics keep up
    with weights that change fast (training from scratch, few steps); otherwise
    inference-mode batch norm lags and validation scores collapse.
    """
    inputs = keras.Input((image_size, image_size, 1), name="image")
    rgb = keras.layers.Concatenate(name="gray_to_rgb")([inputs, inputs, inputs])
    try:
        base = keras.applications.DenseNet121(
            include_top=False, weights=resolve_weights(weights), input_tensor=rgb)
    except WeightsUnavailableError:
        raise
    except Exception as error:  # Keras raises a bare Exception on a failed fetch.
        if weights != "imagenet":
            raise WeightsUnavailableError(f"train.weights: cannot load {weights!r}: {error}") from error
        raise WeightsUnavailableError(
            "train.weights: ImageNet weights could not be downloaded (offline?). Either copy "
            f"{IMAGENET_WEIGHTS_FILE} into ~/.keras/models/, set train.weights to the path "
            "of that file, or set train.weights: none to train from scratch") from error
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = batchnorm_momentum
    features = keras.layers.GlobalAveragePooling2D(name="avg_pool")(base.output)
    outputs = keras.layers.Dense(len(FINDINGS), activation="sigmoid", dtype="float32",
                                 name="predictions")(features)
    return keras.Model(inputs, outputs, name="densenet121_chestxray14")
