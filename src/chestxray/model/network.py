"""A registry backbone (DenseNet121 by default, as in CheXNet and the course seeds) with a
14-way sigmoid head."""
from pathlib import Path

import keras

from chestxray.core.errors import PipelineError
from chestxray.model.backbones import BACKBONES, DEFAULT_BACKBONE, first_layer_of_block
from chestxray.nih.labels import FINDINGS

HEAD = "predictions"
# The head's pooling: the layer it pools is the backbone's last feature map.
POOLING = "avg_pool"
# Images reach the augmentation already normalised, so they have no fixed
# range: bounds this wide keep RandomContrast (default 0..255) from clipping.
NORMALISED_RANGE = (-1e6, 1e6)


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


def augmentation(flip, rotation, zoom, contrast, seed):
    """Random Keras preprocessing layers for training, or None if all are off.

    They go inside the model (:func:`build_model`): active only in training,
    identity at inference, and run on the GPU within the training step. They
    compute in float32 even under mixed precision.
    """
    layers = []
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed, dtype="float32"))
    if rotation:
        layers.append(keras.layers.RandomRotation(rotation, fill_mode="nearest", seed=seed,
                                                  dtype="float32"))
    if zoom:
        layers.append(keras.layers.RandomZoom(zoom, fill_mode="nearest", seed=seed,
                                              dtype="float32"))
    if contrast:
        layers.append(keras.layers.RandomContrast(contrast, value_range=NORMALISED_RANGE,
                                                  seed=seed, dtype="float32"))
    return keras.Sequential(layers, name="augmentation") if layers else None


def build_model(image_size, weights="none", batchnorm_momentum=0.99, augment=None,
                backbone=DEFAULT_BACKBONE):
    """The ``backbone`` (include_top=False) + global average pooling + Dense(14, sigmoid).

    The model takes gray images of shape (batch, image_size, image_size, 1),
    already normalised, and returns float32 probabilities of shape (batch, 14).
    ``augment`` (from :func:`augmentation`, or None) is applied to the input in
    training only. Gray input is repeated to three channels so ImageNet
    weights apply. ``batchnorm_momentum`` below Keras' 0.99 lets the moving
    statistics keep up with weights that change fast (training from scratch,
    few steps); otherwise inference-mode batch norm lags and validation
    scores collapse. Under a mixed_float16 policy the head still outputs float32.
    """
    inputs = keras.Input((image_size, image_size, 1), name="image")
    images = augment(inputs) if augment is not None else inputs
    rgb = keras.layers.Concatenate(name="gray_to_rgb")([images, images, images])
    entry = BACKBONES[backbone]
    switches = {"include_preprocessing": False} if entry.preprocessing_switch else {}
    try:
        base = getattr(keras.applications, entry.application)(
            include_top=False, weights=resolve_weights(weights), input_tensor=rgb, **switches)
    except WeightsUnavailableError:
        raise
    except Exception as error:  # Keras raises a bare Exception on a failed fetch.
        if weights != "imagenet":
            raise WeightsUnavailableError(
                f"train.weights: cannot load {weights!r} into {backbone}: {error}") from error
        raise WeightsUnavailableError(
            f"train.weights: {backbone}'s ImageNet weights could not be downloaded (offline?; "
            f"{error}). Either copy the no-top weights file that URL names into "
            "~/.keras/models/, set train.weights to the path of that file, or set "
            "train.weights: none to train from scratch") from error
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = batchnorm_momentum
    features = keras.layers.GlobalAveragePooling2D(name=POOLING)(base.output)
    outputs = keras.layers.Dense(len(FINDINGS), activation="sigmoid", dtype="float32",
                                 name=HEAD)(features)
    return keras.Model(inputs, outputs, name=f"{backbone}_chestxray14")


def pooled_feature_layer(model):
    """The layer whose output the head pools: the backbone's last feature map."""
    return model.get_layer(POOLING).input._keras_history.operation


def freeze_base(model):
    """Make only the head (layer ``predictions``) trainable.

    Frozen batch-norm layers run in inference mode, so pre-trained statistics
    survive the head's first epochs. Recompile the model afterwards.
    """
    for layer in model.layers:
        layer.trainable = layer.name == HEAD


def unfreeze_base(model, blocks=0, backbone=DEFAULT_BACKBONE):
    """Make the last ``blocks`` blocks of ``backbone`` and every layer after them trainable.

    ``blocks`` 0 makes the whole network trainable; 1.. counts the backbone's
    blocks from the top (:mod:`chestxray.model.backbones`; for DenseNet121
    1 = the dense block conv5_* only). Recompile afterwards.
    """
    first = first_layer_of_block([layer.name for layer in model.layers], BACKBONES[backbone],
                                 blocks)
    for index, layer in enumerate(model.layers):
        layer.trainable = index >= first
