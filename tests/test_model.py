"""The default DenseNet121 model: weights sources, augmentation layers, freezing for fine-tuning."""
import keras
import numpy as np
import pytest

from chestxray.core.errors import PipelineError
from chestxray.model.network import (
    WeightsUnavailableError, augmentation, build_model, freeze_base, unfreeze_base,
)

NO_TOP_FILE = "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"

SIZE = 32


@pytest.fixture(scope="module")
def model():
    return build_model(SIZE, "none")


def trainable_names(model):
    return {layer.name for layer in model.layers if layer.trainable and layer.weights}


def test_untrained_model_maps_gray_images_to_14_probabilities(model):
    images = np.random.default_rng(0).normal(size=(2, SIZE, SIZE, 1)).astype(np.float32)
    scores = keras.ops.convert_to_numpy(model(images))
    assert scores.shape == (2, 14) and scores.dtype == np.float32
    assert ((scores > 0) & (scores < 1)).all()


def test_weights_from_a_local_file_are_loaded(tmp_path):
    source = keras.applications.DenseNet121(include_top=False, weights=None,
                                            input_shape=(SIZE, SIZE, 3))
    kernel = source.get_layer("conv5_block16_2_conv").kernel
    kernel.assign(np.full(kernel.shape, 0.25, dtype=np.float32))
    path = tmp_path / "densenet.weights.h5"
    source.save_weights(path)
    loaded = build_model(SIZE, str(path)).get_layer("conv5_block16_2_conv").kernel
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded), 0.25)


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="neither 'imagenet', 'none' nor"):
        build_model(SIZE, str(tmp_path / "absent.h5"))


def test_offline_imagenet_request_explains_the_alternatives(monkeypatch):
    def offline(*args, **kwargs):
        # Keras' own wording: the URL names the file to copy.
        raise Exception("URL fetch failure on https://storage.googleapis.com/tensorflow/"
                        f"keras-applications/densenet/{NO_TOP_FILE}: None -- <urlopen error "
                        "[Errno -3] name resolution>")

    monkeypatch.setattr("keras.src.applications.densenet.file_utils.get_file", offline)
    with pytest.raises(PipelineError, match="could not be downloaded") as error:
        build_model(SIZE, "imagenet")
    assert NO_TOP_FILE in str(error.value) and "train.weights: none" in str(error.value)
    assert "densenet121" in str(error.value)


def test_augmentation_is_off_by_default_and_identity_at_inference():
    assert augmentation(False, 0.0, 0.0, 0.0, seed=0) is None
    augment = augmentation(True, 0.1, 0.1, 0.5, seed=0)
    image = np.zeros((1, SIZE, SIZE, 1), dtype=np.float32)
    image[:, :, :8] = -2.0  # normalised pixels are negative too
    image[:, :, 8:] = 1.0
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(augment(image, training=False)),
                                  image)
    augmented = keras.ops.convert_to_numpy(augment(np.repeat(image, 8, axis=0), training=True))
    assert not np.allclose(augmented, image)
    # RandomContrast must not clip normalised images to its default 0..255.
    assert augmented.min() < -1.0


def test_augmented_model_predicts_like_an_unaugmented_one_at_inference():
    keras.utils.set_random_seed(0)
    plain = build_model(SIZE, "none")
    augmented = build_model(SIZE, "none", augment=augmentation(True, 0.1, 0.1, 0.3, seed=0))
    augmented.set_weights(plain.get_weights())
    images = np.random.default_rng(1).normal(size=(2, SIZE, SIZE, 1)).astype(np.float32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(augmented(images, training=False)),
                               keras.ops.convert_to_numpy(plain(images, training=False)),
                               rtol=1e-5)
    assert augmented.get_layer("augmentation") is not None


def test_freezing_leaves_only_the_head_and_unfreezing_counts_blocks_from_the_top(model):
    freeze_base(model)
    assert trainable_names(model) == {"predictions"}
    unfreeze_base(model, 1)
    names = trainable_names(model)
    assert "conv5_block1_1_conv" in names and "bn" in names and "predictions" in names
    assert "conv4_block24_2_conv" not in names and "pool4_conv" not in names
    unfreeze_base(model, 2)
    assert "conv4_block1_1_conv" in trainable_names(model)
    assert "conv3_block12_2_conv" not in trainable_names(model)
    unfreeze_base(model, 0)
    assert "conv1_conv" in trainable_names(model)
    with pytest.raises(ValueError):
        unfreeze_base(model, 5)
