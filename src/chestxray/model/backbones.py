"""The backbones ``train.backbone`` picks from, by name: one entry each.

An entry names the Keras application and how its network divides into blocks
for ``train.fine_tune_blocks``. Everything else is common to all: gray input
repeated to three channels, global average pooling and a 14-way sigmoid head
(:func:`chestxray.model.network.build_model`), Grad-CAM on the feature map the
head pools. The name travels with the saved model (:mod:`chestxray.model.saved`).

The module imports no Keras, so parameters are checked before TensorFlow loads.
"""
import re
from dataclasses import dataclass

from chestxray.core.params import params_error


@dataclass(frozen=True)
class Backbone:
    """One registry entry.

    ``application``: the ``keras.applications`` constructor's name.
    ``block_kind``: what ``train.fine_tune_blocks`` counts, in words.
    ``block_starts``: a regular expression per block, bottom to top, matching the
    name of the block's first layer (``re.match``; the first layer matching wins).
    ``preprocessing_switch``: the application has a built-in rescaling of 0..255
    input that must be switched off (``include_preprocessing=False``): images
    arrive already normalised, the same for every backbone.
    """
    application: str
    block_kind: str
    block_starts: tuple
    preprocessing_switch: bool = False

    @property
    def blocks(self):
        return len(self.block_starts)


def _numbered(template, numbers):
    return tuple(template.format(number) for number in numbers)


_DENSE_BLOCKS = _numbered(r"conv{}_block1_", range(2, 6))
# MobileNetV3 names its first inverted residual block expanded_conv_*, the
# next ones expanded_conv_1_* ...; the (?!\d) keeps _1_ from matching _10_.
_INVERTED_RESIDUALS = (r"expanded_conv_", *_numbered(r"expanded_conv_{}_(?!\d)", range(1, 15)))

BACKBONES = {
    "densenet121": Backbone("DenseNet121", "dense blocks", _DENSE_BLOCKS),
    "densenet169": Backbone("DenseNet169", "dense blocks", _DENSE_BLOCKS),
    "densenet201": Backbone("DenseNet201", "dense blocks", _DENSE_BLOCKS),
    "resnet50v2": Backbone("ResNet50V2", "residual stages", _numbered(r"conv{}_block1_", range(2, 6))),
    "efficientnetv2b0": Backbone("EfficientNetV2B0", "stages",
                                 _numbered(r"block{}a_", range(1, 7)), preprocessing_switch=True),
    "convnext_tiny": Backbone("ConvNeXtTiny", "stages",
                              (r"convnext_tiny_stage_0_", *_numbered(
                                  r"convnext_tiny_downsampling_block_{}", range(3))),
                              preprocessing_switch=True),
    "mobilenetv3small": Backbone("MobileNetV3Small", "inverted residual blocks",
                                 _INVERTED_RESIDUALS[:11], preprocessing_switch=True),
    "mobilenetv3large": Backbone("MobileNetV3Large", "inverted residual blocks",
                                 _INVERTED_RESIDUALS, preprocessing_switch=True),
}
DEFAULT_BACKBONE = "densenet121"


def backbone_of(params):
    """The registry entry ``params["backbone"]`` names, checked with ``fine_tune_blocks``.

    ``params``: the ``train`` section, already validated key by key. Raises
    :class:`~chestxray.core.params.ParamsError` for an unknown name, or for a
    ``fine_tune_blocks`` beyond the backbone's number of blocks.
    """
    name = params["backbone"]
    if name not in BACKBONES:
        raise params_error(f"train.backbone = {name!r} must be one of "
                           f"{', '.join(map(repr, BACKBONES))}")
    backbone = BACKBONES[name]
    if params["fine_tune_blocks"] > backbone.blocks:
        raise params_error(
            f"train.fine_tune_blocks = {params['fine_tune_blocks']} must be in [0, "
            f"{backbone.blocks}] for {name}: it counts its {backbone.blocks} "
            f"{backbone.block_kind} from the top (0 = the whole network)")
    return backbone


def first_layer_of_block(names, backbone, blocks):
    """Index in ``names`` (a model's layer names, in order) of the first layer of the
    ``blocks``-th block from the top of ``backbone``; 0 when ``blocks`` is 0."""
    if not 0 <= blocks <= backbone.blocks:
        raise ValueError(f"blocks must be in [0, {backbone.blocks}], got {blocks}")
    if blocks == 0:
        return 0
    pattern = re.compile(backbone.block_starts[-blocks])
    return next(index for index, name in enumerate(names) if pattern.match(name))
