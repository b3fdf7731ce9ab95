"""Grad-CAM maps: shape, range, and that they point at the evidence."""
import keras
import numpy as np

from chestxray.gradcam import draw_box, gradcam, overlay
from chestxray.model import build_model


def blob_detector():
    """A model whose class-0 score is the mean brightness seen by its 'features' layer."""
    inputs = keras.Input((32, 32, 1))
    features = keras.layers.Conv2D(1, 1, activation="relu", name="features",
                                   kernel_initializer="ones", bias_initializer="zeros")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    outputs = keras.layers.Dense(14, activation="sigmoid", kernel_initializer="ones")(pooled)
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


def test_densenet_heatmaps_are_normalised_maps():
    model = build_model(64, "none")
    images = np.random.default_rng(0).normal(size=(3, 64, 64, 1)).astype(np.float32)
    heatmaps = gradcam(model, images, class_index=4)
    assert heatmaps.shape == (3, 64, 64)
    assert heatmaps.min() >= 0.0 and heatmaps.max() <= 1.0
    assert np.isfinite(heatmaps).all()


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
