"""Weighted binary cross-entropy against values computed by hand."""
import math

import numpy as np
import pytest

from chestxray.model.losses import WeightedBinaryCrossentropy


def test_matches_hand_computed_value():
    # Two images, two classes. Class weights: pos (0.9, 0.6), neg (0.1, 0.4).
    y_true = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    y_pred = np.array([[0.8, 0.3], [0.4, 0.9]], dtype=np.float32)
    loss = WeightedBinaryCrossentropy([0.9, 0.6], [0.1, 0.4])
    class_0 = -(0.9 * math.log(0.8) + 0.1 * math.log(1 - 0.4)) / 2
    class_1 = -(0.4 * math.log(1 - 0.3) + 0.6 * math.log(0.9)) / 2
    assert float(loss(y_true, y_pred)) == pytest.approx(class_0 + class_1, rel=1e-5)


def test_weights_shift_the_loss_towards_positives():
    y_true = np.array([[1.0], [0.0]], dtype=np.float32)
    y_pred = np.array([[0.5], [0.5]], dtype=np.float32)
    heavy_positive = WeightedBinaryCrossentropy([0.9], [0.1])(y_true, y_pred)
    assert float(heavy_positive) == pytest.approx(-(0.9 + 0.1) * math.log(0.5) / 2, rel=1e-5)
    missed_positive = np.array([[0.1], [0.1]], dtype=np.float32)
    missed_negative = np.array([[0.9], [0.9]], dtype=np.float32)
    loss = WeightedBinaryCrossentropy([0.9], [0.1])
    assert float(loss(y_true, missed_positive)) > float(loss(y_true, missed_negative))


def test_survives_a_serialisation_round_trip():
    loss = WeightedBinaryCrossentropy([0.25, 0.5], [0.75, 0.5])
    restored = WeightedBinaryCrossentropy.from_config(loss.get_config())
    y_true = np.array([[1.0, 0.0]], dtype=np.float32)
    y_pred = np.array([[0.7, 0.2]], dtype=np.float32)
    assert float(restored(y_true, y_pred)) == pytest.approx(float(loss(y_true, y_pred)))
