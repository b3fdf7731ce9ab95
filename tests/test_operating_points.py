"""Thresholds chosen on validation data, and the rates they give."""
import numpy as np
import pytest

from chestxray.evaluation.operating_points import (
    choose_threshold, predictive_values, rates_at_threshold,
)

# Ten images: positives score 0.9, 0.8, 0.6, 0.3; negatives 0.7, 0.5, 0.4, 0.2, 0.1, 0.05.
TRUTH = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
SCORES = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.5, 0.4, 0.2, 0.1, 0.05])


def test_known_rates_at_a_threshold():
    rates = rates_at_threshold(TRUTH, SCORES, 0.55)
    # Called positive: 0.9, 0.8, 0.6 (true) and 0.7 (false).
    assert rates["sensitivity"] == pytest.approx(3 / 4)
    assert rates["specificity"] == pytest.approx(5 / 6)
    assert rates["ppv"] == pytest.approx(3 / 4)
    assert rates["npv"] == pytest.approx(5 / 6)
    # A score equal to the threshold counts as positive.
    assert rates_at_threshold(TRUTH, SCORES, 0.6)["sensitivity"] == pytest.approx(3 / 4)


def test_youden_threshold_maximises_sensitivity_plus_specificity():
    # J at 0.6: 3/4 + 5/6 - 1 = 0.583; at 0.3: 1 + 3/6 - 1 = 0.5; at 0.8: 0.5.
    assert choose_threshold(TRUTH, SCORES) == 0.6


def test_target_sensitivity_picks_the_highest_threshold_reaching_it():
    assert choose_threshold(TRUTH, SCORES, target_sensitivity=1.0) == 0.3
    assert choose_threshold(TRUTH, SCORES, target_sensitivity=0.5) == 0.8
    assert choose_threshold(TRUTH, SCORES, target_sensitivity=0.6) == 0.6


def test_undefined_without_positives():
    assert choose_threshold(np.zeros(5), np.linspace(0, 1, 5)) is None
    assert rates_at_threshold(np.zeros(5), np.linspace(0, 1, 5), None) == dict.fromkeys(
        ("sensitivity", "specificity", "ppv", "npv"))
    rates = rates_at_threshold(np.zeros(5), np.linspace(0, 1, 5), 0.5)
    assert rates["sensitivity"] is None and rates["specificity"] == pytest.approx(2 / 5)
    assert rates["ppv"] == 0.0


def test_predictive_values_follow_bayes_and_match_the_test_set_at_its_prevalence():
    rates = rates_at_threshold(TRUTH, SCORES, 0.55)
    at_own = predictive_values(rates["sensitivity"], rates["specificity"], TRUTH.mean())
    assert at_own["ppv"] == pytest.approx(rates["ppv"])
    assert at_own["npv"] == pytest.approx(rates["npv"])
    # Sensitivity 0.9, specificity 0.9 at 1% prevalence: PPV 0.009 / (0.009 + 0.099).
    rare = predictive_values(0.9, 0.9, 0.01)
    assert rare["ppv"] == pytest.approx(0.009 / 0.108)
    assert rare["npv"] == pytest.approx(0.891 / 0.892)
    assert predictive_values(None, 0.9, 0.1) == {"ppv": None, "npv": None}
