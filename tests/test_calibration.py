"""Expected calibration error on predictors of known calibration."""
import numpy as np
import pytest
from sklearn.calibration import calibration_curve

from chestxray.evaluation.calibration import expected_calibration_error


def test_perfectly_calibrated_predictor_has_zero_error():
    # 100 images at 0.25 with 25 positives, 100 at 0.75 with 75 positives.
    y_prob = np.repeat([0.25, 0.75], 100)
    y_true = np.concatenate([np.arange(100) < 25, np.arange(100) < 75]).astype(float)
    assert expected_calibration_error(y_true, y_prob) == pytest.approx(0.0)


def test_overconfident_predictor_has_the_known_error():
    # Everything at 0.9 but only half positive: ECE = |0.5 - 0.9| = 0.4.
    y_true = np.arange(200) % 2
    assert expected_calibration_error(y_true, np.full(200, 0.9)) == pytest.approx(0.4)
    # Two bins: 40 images at 0.05, a quarter positive (gap 0.2), and 160 at 0.95,
    # 85% positive (gap 0.1): ECE = (40 * 0.2 + 160 * 0.1) / 200 = 0.12.
    y_prob = np.repeat([0.05, 0.95], [40, 160])
    y_true = np.concatenate([np.arange(40) < 10, np.arange(160) < 136]).astype(float)
    assert expected_calibration_error(y_true, y_prob) == pytest.approx(0.12)

def test_error_uses_the_reliability_diagrams_bins():
    rng = np.random.default_rng(0)
    y_prob = rng.random(1000)
    y_prob[:50] = 0.3                      # exactly on a bin edge
    y_true = (rng.random(1000) < y_prob ** 2).astype(float)
    prob_true, prob_pred = calibration_curve(y_true, y_prob, n_bins=10)
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], y_prob), minlength=10)
    expected = np.sum(counts[counts > 0] * np.abs(prob_true - prob_pred)) / len(y_prob)
    assert expected_calibration_error(y_true, y_prob, bins=10) == pytest.approx(expected)
    assert expected_calibration_error(y_true, y_prob, bins=10) > 0.1
