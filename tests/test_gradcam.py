"""Grad-CAM maps: shape, range, and that they point at the evidence."""
import keras
import numpy as np
import pytest

from chestxray.explain.gradcam import Heatmaps, UnknownLayerError, gradcam, upsample
from chestxray.explain.overlays import draw_box, overlay
from chestxray.model.network import build_model


def blob_detector():
    """A model whose class-0 score is the mean brightness seen by its 'features' layer,
    and whose class-1 score is the mean darkness (negative brightness)."""
    inputs = keras.Input((32, 32, 1))
    features = keras.layers.Conv2D(2, 1, activation="relu", name="features",
                                   kernel_initializer=keras.initializers.Constant([[[[1, -1]]]]),
                                   bias_initializer="zeros")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    head = np.zeros((2, 14), np.float32)
    head[0, 0] = head[1, 1] = 1.0
    outputs = keras.layers.Dense(14, activation="sigmoid",
                                 kernel_initializer=keras.initializers.Constant(head))(pooled)
    return keras.Model(inputs, outputs)


def test_heatmap_peaks_where_the_evidence_is():
    images = np.zeros((2, 32, 32, 1), dtype=np.float32)
    images[0, 4:8, 20:24] = 1.0   # top right
    images[1, 24:28, 2:6] = 1.0   # bottom left
    heatmaps = gradcam(blob_detector(), images, class_index=0, layer="features")
    assert heatmaps.shape == (2, 32, 32) and heatmaps.dtype == np.float32
    assert np.unravel_index(heatmaps[0].argmax(), (32, 32))[0] in range(4, 8)
    assert np.unravel_index(heatmaps[1].argmax(), (32, 32))[1] in range(2, 6)
    assert heatmaps[0, 24:28, 2:6].max() < 0.1


def test_each_image_can_explain_its_own_class_in_small_batches():
    images = np.zeros((3, 32, 32, 1), dtype=np.float32)
    images[:, 4:8, 20:24] = 1.0    # a bright blob, top right
    images[:, 24:28, 2:6] = -1.0   # a dark blob, bottom left
    heatmaps = gradcam(blob_detector(), images, class_index=[0, 1, 0], layer="features",
                       batch_size=2)
    assert heatmaps.shape == (3, 32, 32)
    bright, dark = (4, 20), (24, 2)
    assert np.unravel_index(heatmaps[0].argmax(), (32, 32))[0] in range(4, 8)
    assert np.unravel_index(heatmaps[1].argmax(), (32, 32))[0] in range(24, 28)
    assert np.unravel_index(heatmaps[2].argmax(), (32, 32))[0] in range(4, 8)
    assert heatmaps[1][bright] < 0.1 and heatmaps[0][dark] < 0.1


def test_the_compiled_function_gives_the_eager_maps_for_any_batch_size():
    """The stage and predict run Grad-CAM compiled, traced once; gradcam() runs it eagerly."""
    model = blob_detector()
    compiled = Heatmaps(model, "features")
    eager = Heatmaps(model, "features", compiled=False)
    rng = np.random.default_rng(3)
    for count in (5, 2, 0):
        images = rng.normal(size=(count, 32, 32, 1)).astype(np.float32)
        classes = rng.integers(0, 2, count).astype(np.int32)
        maps = compiled(images, classes)
        assert maps.shape == (count, 32, 32) and maps.dtype == np.float32
        np.testing.assert_allclose(maps, eager(images, classes), atol=1e-6)
    assert compiled.maps.experimental_get_tracing_count() == 1


def test_upsample_keeps_range_and_location():
    heatmap = np.zeros((4, 4), np.float32)
    heatmap[0, 3] = 1.0
    big = upsample(heatmap, (40, 60))
    assert big.shape == (40, 60) and big.min() >= 0 and big.max() <= 1
    assert np.unravel_index(big.argmax(), big.shape)[0] < 10
    assert np.unravel_index(big.argmax(), big.shape)[1] > 45


def test_densenet_heatmaps_are_normalised_maps():
    model = build_model(64, "none")
    images = np.random.default_rng(0).normal(size=(3, 64, 64, 1)).astype(np.float32)
    heatmaps = gradcam(model, images, class_index=4)
    assert heatmaps.shape == (3, 64, 64)
    assert heatmaps.min() >= 0.0 and heatmaps.max() <= 1.0
    assert np.isfinite(heatmaps).all()
    # The last dense block of a 64-px input is a 2x2 grid; resizing it is bilinear.
    native = gradcam(model, images, class_index=4, resize=False)
    assert native.shape == (3, 2, 2)
    assert np.allclose(heatmaps, upsample(native, (64, 64)), atol=1e-5)


def test_overlay_and_box_drawing():
    gray = np.full((20, 30), 100, dtype=np.uint8)
    heat = np.zeros((20, 30))
    heat[5, 5] = 1.0
    picture = overlay(gray, heat)
    assert picture.shape == (20, 30, 3) and picture.dtype == np.uint8
    assert not np.array_equal(picture[5, 5], picture[15, 25])
    draw_box(picture, (2, 3, 10, 5))
    assert tuple(picture[3, 6]) == (0, 255, 0) and tuple(picture[8, 12]) == (0, 255, 0)
    assert tuple(picture[5, 6]) != (0, 255, 0)


def test_unknown_layer_is_named():
    with pytest.raises(UnknownLayerError, match="gradcam layer 'conv9' is not in model"):
        gradcam(blob_detector(), np.zeros((1, 32, 32, 1), np.float32), 0, layer="conv9")
