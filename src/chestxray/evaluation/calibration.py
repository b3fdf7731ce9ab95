"""Calibration: do predicted probabilities match observed frequencies?"""
import numpy as np


def expected_calibration_error(y_true, y_prob, bins=10):
    """Expected calibration error of one class.

    y_true : (n,) 0/1; y_prob : (n,) probabilities in 0..1; bins : int.
    The probabilities are cut into ``bins`` equal-width bins exactly as
    ``sklearn.calibration.calibration_curve(strategy="uniform")`` cuts them (so
    the figure matches the reliability diagram); the ECE is the mean over images
    of |fraction positive - mean probability| of the image's bin. Returns a float
    in 0..1 (0 = perfectly calibrated).
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    bin_of_image = np.searchsorted(np.linspace(0, 1, bins + 1)[1:-1], y_prob)
    positives = np.bincount(bin_of_image, weights=y_true, minlength=bins)
    probability_mass = np.bincount(bin_of_image, weights=y_prob, minlength=bins)
    # sum_b (n_b / n) |positives_b / n_b - mass_b / n_b| = sum_b |positives_b - mass_b| / n
    return float(np.abs(positives - probability_mass).sum() / len(y_true))
