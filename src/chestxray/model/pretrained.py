"""The weights a run starts from (``train.weights``), a full classifier checkpoint included.

``imagenet``, ``none`` and a no-top file of the backbone go to the Keras application
(:func:`chestxray.model.network.build_model`). A full classifier checkpoint (backbone +
14-way head, as published for the whole of ChestX-ray14) is loaded into the model the
train params build, and its head is mapped by class name: ``train.weights_findings``
lists the head's classes in order, and the head's kernel columns and bias entries are
permuted so that output i is ``FINDINGS[i]``.
"""
from pathlib import Path

import h5py
import numpy as np

from chestxray.core.errors import PipelineError
from chestxray.model.network import HEAD, resolve_weights
from chestxray.model.saved import load_keras_archive
from chestxray.nih.labels import FINDINGS

# Keras reads a .h5 or .hdf5 file as Keras 2's (legacy) format, unless it ends in
# .weights.h5, Keras 3's.
LEGACY_SUFFIXES = (".h5", ".hdf5")
KERAS3_WEIGHTS_SUFFIX = ".weights.h5"


class WeightsFileError(PipelineError, ValueError):
    """A ``train.weights`` file that the train params cannot start from."""


def head_classes(shapes):
    """The class count of the dense head that weights of ``shapes`` end in, or None.

    ``shapes``: a network's weight shapes in order (tuples of ints). A classifier's end
    in a (features, k) kernel and a (k,) bias; every backbone's no-top weights end in a
    normalisation layer's vectors instead.
    """
    if len(shapes) >= 2 and len(shapes[-2]) == 2 and shapes[-1] == shapes[-2][1:]:
        return shapes[-1][0]
    return None


def head_order(checkpoint_findings):
    """Which output of the checkpoint's head holds each of ``FINDINGS``: int array (14,).

    ``checkpoint_findings``: the head's classes in order (``train.weights_findings``, a
    permutation of ``FINDINGS``, validated with the params); empty means ``FINDINGS``.
    """
    names = list(checkpoint_findings) or list(FINDINGS)
    return np.array([names.index(name) for name in FINDINGS])


def map_head(model, order):
    """Permute the head's kernel columns and bias entries by ``order`` (:func:`head_order`),
    in place: output i of ``model`` becomes the checkpoint's output ``order[i]``."""
    head = model.get_layer(HEAD)
    kernel, bias = head.get_weights()
    head.set_weights([kernel[:, order], bias[order]])


def shape_mismatch(found, expected):
    """How weight shapes ``found`` differ from ``expected`` (lists of tuples), in words;
    None when they are equal."""
    if len(found) != len(expected):
        return f"{len(found)} weights where it needs {len(expected)}"
    return next((f"weight {index} of {len(found)} has shape {have} where it needs {want}"
                 for index, (have, want) in enumerate(zip(found, expected), 1) if have != want),
                None)


def _name(value):
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def legacy_weight_shapes(path):
    """The weight shapes of a legacy (Keras 2) ``.h5`` weights file, layer after layer in
    the file's order; None when ``path`` is no such file."""
    if not h5py.is_hdf5(path):
        return None
    try:
        with h5py.File(path, "r") as handle:
            # A whole saved model keeps them in model_weights, where Keras' load_weights looks.
            group = handle["model_weights"] if "layer_names" not in handle.attrs and \
                "model_weights" in handle else handle
            if "layer_names" not in group.attrs:
                return None
            layers = [group[_name(layer)] for layer in group.attrs["layer_names"]]
            return [layer[_name(weight)].shape
                    for layer in layers for weight in layer.attrs.get("weight_names", [])]
    except (OSError, KeyError) as error:
        raise WeightsFileError(f"train.weights: {path}: damaged Keras weights file "
                               f"({error})") from error


def classifier_checkpoint(path):
    """The full classifier checkpoint at ``path`` as ``(kind, shapes, load)``, or None.

    A ``.keras`` model, or a legacy ``.h5`` weights file, whose weights end in a dense
    head (:func:`head_classes`) is one; anything else (a no-top weights file) is left to
    the Keras application. ``kind`` names the format, ``shapes`` lists the weight shapes
    in order, and ``load(model)`` puts the weights into a model of these shapes.
    """
    path = Path(path)
    if path.suffix == ".keras":
        source = load_keras_archive(
            path, lambda message: WeightsFileError(f"train.weights: {message}"), compile=False)
        checkpoint = (".keras model", [tuple(weight.shape) for weight in source.weights],
                      lambda model: model.set_weights(source.get_weights()))
    elif path.suffix in LEGACY_SUFFIXES and not path.name.endswith(KERAS3_WEIGHTS_SUFFIX):
        # Keras' own loader matches the file's layers to the model's in order.
        checkpoint = ("legacy .h5 weights", legacy_weight_shapes(path),
                      lambda model: model.load_weights(path))
    else:
        return None
    return checkpoint if checkpoint[1] and head_classes(checkpoint[1]) else None


def initial_model(build, params):
    """The model a run starts from, and one line saying what ``train.weights`` holds.

    ``build(weights)`` builds the model of the train params with ``weights`` (``imagenet``,
    ``none`` or a no-top file) in its backbone; ``params`` is the ``train`` section. A
    full classifier checkpoint (:func:`classifier_checkpoint`) is loaded into
    ``build("none")`` and its head mapped by ``train.weights_findings``. Raises
    :class:`WeightsFileError` for a checkpoint whose head has another class count or
    whose weights another shape, and for ``weights_findings`` or ``epochs`` 0 with a
    file that is no classifier (with ``imagenet`` or ``none`` the params checks refuse
    them).
    """
    weights, backbone = params["weights"], params["backbone"]
    if weights in ("imagenet", "none"):
        return build(weights), f"train.weights: {weights}"
    path = Path(resolve_weights(weights))
    checkpoint = classifier_checkpoint(path)
    if checkpoint is None:
        no_head = (f"train.weights: {path} is no classifier checkpoint (a .keras model or "
                   "legacy .h5 weights ending in a dense head)")
        if params["weights_findings"]:
            raise WeightsFileError(f"{no_head}, so it has no head for train.weights_findings "
                                   "to order: set train.weights_findings: []")
        if params["epochs"] == 0:
            raise WeightsFileError(f"{no_head}, and train.epochs = 0 (no training) needs one")
        return build(weights), f"train.weights: {path}: no-top weights of the {backbone} backbone"
    kind, shapes, load = checkpoint
    classes = head_classes(shapes)
    if classes != len(FINDINGS):
        raise WeightsFileError(
            f"train.weights: {path} has a {classes}-class head; this pipeline needs "
            f"{len(FINDINGS)}, one per finding (train.weights_findings gives their order)")
    model = build("none")
    other = f"train.weights: {path} is a classifier of another architecture than train.backbone " \
        f"{backbone}"
    mismatch = shape_mismatch(shapes, [tuple(weight.shape) for weight in model.weights])
    if mismatch:
        raise WeightsFileError(f"{other}: {mismatch}")
    try:
        load(model)
    except ValueError as error:  # equal shapes, grouped into other layers
        raise WeightsFileError(f"{other}: {error}") from error
    map_head(model, head_order(params["weights_findings"]))
    order = "train.weights_findings" if params["weights_findings"] else "this pipeline's order"
    return model, (f"train.weights: {path}: a full {backbone} classifier checkpoint ({kind}), "
                   f"its head mapped from {order}")
