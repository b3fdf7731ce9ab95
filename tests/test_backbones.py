"""Every registry backbone: gray input to 14 probabilities, fine-tune blocks, weights files,
Grad-CAM's default layer, the saved model's record and predict, the architecture check."""
import re

import keras
import numpy as np
import pytest

from chestxray.core.params import ParamsError
from chestxray.data.preprocessing import Preprocessing
from chestxray.explain.gradcam import gradcam
from chestxray.model.backbones import BACKBONES, backbone_of, first_layer_of_block
from chestxray.model.network import (
    HEAD, build_model, freeze_base, pooled_feature_layer, unfreeze_base,
)
from chestxray.model.saved import load_model, probabilities, read_record, save_model
from chestxray.model.training import CheckpointError, load_checkpoint_model

# Every backbone leaves a 64-px input a 2x2 feature map.
SIZE = 64
# One backbone per Keras application module: DenseNet169 and 201 are DenseNet121's code,
# whose saved model test_predict.py covers.
MODULES = sorted(set(BACKBONES) - {"densenet121", "densenet169", "densenet201"})


@pytest.fixture(scope="module")
def model_of():
    """``model_of(name)``: the backbone's seeded model, built once for this module's tests
    (the saved-model test used to build its own: 8 s of the file's 82 s alone). Tests may
    change trainable flags, nothing else."""
    models = {}

    def build(name):
        if name not in models:
            keras.utils.set_random_seed(0)
            models[name] = build_model(SIZE, "none", backbone=name)
        return models[name]
    return build


@pytest.fixture(scope="module", params=sorted(BACKBONES))
def built(request, model_of):
    return request.param, model_of(request.param)


def trainable_names(model):
    return [layer.name for layer in model.layers if layer.trainable and layer.weights]


def test_gray_images_map_to_14_probabilities(built):
    name, model = built
    assert model.name == f"{name}_chestxray14" and model.input_shape == (None, SIZE, SIZE, 1)
    images = np.random.default_rng(0).normal(size=(2, SIZE, SIZE, 1)).astype(np.float32)
    scores = keras.ops.convert_to_numpy(model(images))
    assert scores.shape == (2, 14) and scores.dtype == np.float32
    assert ((scores > 0) & (scores < 1)).all()
    # No built-in 0..255 rescaling: the backbone sees the normalised image as it is.
    assert not any(isinstance(layer, keras.layers.Rescaling) for layer in model.layers)


def test_each_block_count_unfreezes_one_more_block_from_the_top(built):
    name, model = built
    backbone = BACKBONES[name]
    names = [layer.name for layer in model.layers]
    starts = [first_layer_of_block(names, backbone, blocks)
              for blocks in range(1, backbone.blocks + 1)]
    # Blocks counted from the top start ever earlier, and each start is a layer
    # the block's pattern names.
    assert starts == sorted(starts, reverse=True) and len(set(starts)) == backbone.blocks
    for blocks, start in enumerate(starts, 1):
        assert re.match(backbone.block_starts[-blocks], names[start])
    freeze_base(model)
    assert trainable_names(model) == [HEAD]
    unfreeze_base(model, 1, name)
    top = trainable_names(model)
    assert HEAD in top and all(names.index(layer) >= starts[0] for layer in top)
    unfreeze_base(model, backbone.blocks, name)
    every_block = trainable_names(model)
    assert set(top) < set(every_block)
    unfreeze_base(model, 0, name)
    assert set(every_block) < set(trainable_names(model))
    with pytest.raises(ValueError):
        unfreeze_base(model, backbone.blocks + 1, name)


def test_gradcam_default_layer_is_the_feature_map_the_head_pools(built):
    _, model = built
    layer = pooled_feature_layer(model)
    assert tuple(layer.output.shape[1:3]) == (2, 2)
    images = np.random.default_rng(1).normal(size=(2, SIZE, SIZE, 1)).astype(np.float32)
    native = gradcam(model, images, class_index=3, resize=False)
    named = gradcam(model, images, class_index=3, layer=layer.name, resize=False)
    assert native.shape == (2, 2, 2) and np.isfinite(native).all()
    assert native.min() >= 0 and native.max() <= 1
    np.testing.assert_array_equal(native, named)


@pytest.mark.parametrize("name", MODULES)
def test_the_saved_model_records_its_backbone_and_predicts_the_same(name, model_of, tmp_path):
    model = model_of(name)
    path = tmp_path / "model.keras"
    save_model(model, Preprocessing(SIZE, "samplewise"), path, name)
    assert read_record(path)["backbone"] == name
    loaded, preprocessing = load_model(path)
    images = np.random.default_rng(2).normal(size=(4, SIZE, SIZE, 1)).astype(np.float32)
    np.testing.assert_allclose(probabilities(loaded, images), probabilities(model, images),
                               rtol=1e-5, atol=1e-6)
    assert pooled_feature_layer(loaded).name == pooled_feature_layer(model).name


def test_a_no_top_weights_file_of_the_backbone_is_loaded(tmp_path):
    source = keras.applications.MobileNetV3Small(include_top=False, weights=None,
                                                 input_shape=(SIZE, SIZE, 3),
                                                 include_preprocessing=False)
    kernel = source.get_layer("expanded_conv_10_project").kernel
    kernel.assign(np.full(kernel.shape, 0.25, dtype=np.float32))
    path = tmp_path / "mobilenet.weights.h5"
    source.save_weights(path)
    loaded = build_model(SIZE, str(path), backbone="mobilenetv3small")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded.get_layer("expanded_conv_10_project").kernel), 0.25)
    with pytest.raises(Exception, match="train.weights: cannot load .* into resnet50v2"):
        build_model(SIZE, str(path), backbone="resnet50v2")


def test_a_checkpoint_of_another_backbone_is_refused(tmp_path):
    path = tmp_path / "other.keras"
    build_model(SIZE, "none", backbone="mobilenetv3small").save(path)
    with pytest.raises(CheckpointError, match="another architecture"):
        load_checkpoint_model(path, lambda: build_model(SIZE, "none", backbone="resnet50v2"))


@pytest.mark.parametrize("values, message", [
    ({"backbone": "densenet"}, r"train.backbone = 'densenet' must be one of 'densenet121', "),
    ({"backbone": "resnet50v2", "fine_tune_blocks": 5},
     r"train.fine_tune_blocks = 5 must be in \[0, 4\] for resnet50v2: it counts its 4 "
     r"residual stages from the top"),
    ({"backbone": "mobilenetv3small", "fine_tune_blocks": 12}, r"must be in \[0, 11\]"),
])
def test_unknown_backbones_and_block_counts_are_refused_in_one_line(values, message):
    params = {"backbone": "densenet121", "fine_tune_blocks": 0, **values}
    with pytest.raises(ParamsError, match=message) as error:
        backbone_of(params)
    assert "\n" not in str(error.value)


def test_every_backbone_accepts_each_of_its_block_counts():
    for name, backbone in BACKBONES.items():
        for blocks in range(backbone.blocks + 1):
            assert backbone_of({"backbone": name, "fine_tune_blocks": blocks}) is backbone
