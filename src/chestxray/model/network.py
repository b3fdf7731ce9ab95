"""DenseNet121 with a 14-way sigmoid head, as in CheXNet and the course seeds."""
from pathlib import Path

import keras

from chestxray.core.errors import PipelineError
from chestxray.nih.labels import FINDINGS

IMAGENET_WEIGHTS_FILE = "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"
# The name the saved model records (see chestxray.model.saved).
BACKBONE = "densenet121"
HEAD = "predictions"
# Keras names DenseNet's four dense blocks conv2_* .. conv5_*.
DENSE_BLOCKS = (2, 3, 4, 5)
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


def build_model(image_size, weights="none", batchnorm_momentum=0.99, augment=None):
    """DenseNet121 (include_top=False) + global average pooling + Dense(14, sigmoid).

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
                                 name=HEAD)(features)
    return keras.Model(inputs, outputs, name="densenet121_chestxray14")


def freeze_base(model):
    """Make only the head (layer ``predictions``) trainable.

    Frozen batch-norm layers run in inference mode, so pre-trained statistics
    survive the head's first epochs. Recompile the model afterwards.
    """
    for layer in model.layers:
        layer.trainable = layer.name == HEAD


def unfreeze_base(model, blocks=0):
    """Make the last ``blocks`` dense blocks and every layer after them trainable.

    ``blocks`` 0 makes the whole network trainable; 1..4 counts DenseNet121's
    dense blocks from the top (1 = conv5_* only). Recompile afterwards.
    """
    if not 0 <= blocks <= len(DENSE_BLOCKS):
        raise ValueError(f"blocks must be in [0, {len(DENSE_BLOCKS)}], got {blocks}")
    names = [layer.name for layer in model.layers]
    first = 0 if blocks == 0 else names.index(f"conv{DENSE_BLOCKS[-blocks]}_block1_0_bn")
    for index, layer in enumerate(model.layers):
        layer.trainable = index >= first
