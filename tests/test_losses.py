"""The training losses against values computed by hand."""
import math

import numpy as np
import pytest

from chestxray.model.losses import LOSSES, WeightedBinaryCrossentropy, training_loss
from chestxray.nih.labels import FINDINGS


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


# Two images, two labels, for the losses picked by name.
Y_TRUE = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
Y_PRED = np.array([[0.8, 0.3], [0.4, 0.9]], dtype=np.float32)
# Probability given to the true label of each element.
P_TRUE = [[0.8, 0.7], [0.6, 0.9]]


def test_plain_bce_is_the_mean_over_labels_and_images():
    loss = training_loss("bce", stats=None, focal_gamma=2.0)
    expected = np.mean([[-math.log(p) for p in row] for row in P_TRUE])
    assert float(loss(Y_TRUE, Y_PRED)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0, 3.5])
def test_focal_loss_down_weights_well_predicted_labels_by_one_minus_p_to_gamma(gamma):
    loss = training_loss("focal", stats=None, focal_gamma=gamma)
    expected = np.mean([[-(1 - p) ** gamma * math.log(p) for p in row] for row in P_TRUE])
    assert float(loss(Y_TRUE, Y_PRED)) == pytest.approx(expected, rel=1e-5)


def test_weighted_bce_by_name_takes_its_weights_from_the_stats_in_findings_order():
    stats = {"pos_weights": {name: 0.9 if name == "Atelectasis" else 0.5 for name in FINDINGS},
             "neg_weights": {name: 0.1 if name == "Atelectasis" else 0.5 for name in FINDINGS}}
    loss = training_loss("weighted_bce", stats, focal_gamma=2.0)
    assert loss.pos_weights[FINDINGS.index("Atelectasis")] == 0.9
    assert loss.neg_weights == [0.1] + [0.5] * 13


def test_every_loss_name_is_a_params_choice():
    from chestxray.core.params import SCHEMA
    for name in LOSSES:
        assert SCHEMA["train"]["loss"](name) is None
    assert "must be one of 'weighted_bce', 'bce', 'focal'" in SCHEMA["train"]["loss"]("dice")
