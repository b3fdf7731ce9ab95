"""Per-class ROC AUC and average precision, including classes where they are undefined,
and the evaluate stage's per-class table."""
import numpy as np
import pytest

from chestxray.evaluation.metrics import (
    class_results, mean_auc, per_class_auc, per_class_average_precision,
)
from chestxray.nih.labels import FINDINGS


def test_perfect_random_and_undefined_classes():
    rng = np.random.default_rng(0)
    y_true = (rng.random((200, 14)) < 0.3).astype(np.float32)
    y_score = rng.random((200, 14))
    y_score[:, 0] = y_true[:, 0]             # perfect ranking
    y_score[:, 1] = 1 - y_true[:, 1]         # perfectly wrong
    y_true[:, FINDINGS.index("Hernia")] = 0  # no positives in this test split
    aucs = per_class_auc(y_true, y_score)
    assert aucs["Atelectasis"] == 1.0
    assert aucs["Cardiomegaly"] == 0.0
    assert aucs["Hernia"] is None
    assert 0.35 < aucs["Mass"] < 0.65
    defined = [v for v in aucs.values() if v is not None]
    assert mean_auc(aucs) == pytest.approx(np.mean(defined))
    assert len(defined) == 13
    precisions = per_class_average_precision(y_true, y_score)
    assert precisions["Atelectasis"] == 1.0 and precisions["Hernia"] is None
    assert precisions["Mass"] == pytest.approx(y_true[:, 9].mean(), abs=0.15)


def test_all_undefined_gives_no_mean():
    aucs = per_class_auc(np.zeros((5, 14)), np.zeros((5, 14)))
    assert all(value is None for value in aucs.values())
    assert mean_auc(aucs) is None


def test_class_results_table():
    rng = np.random.default_rng(1)
    labels = (rng.random((180, 14)) < 0.3).astype(np.float32)
    predictions = np.clip(0.3 * labels + 0.7 * rng.random(labels.shape), 0, 1)
    truth, scores = labels[:120].copy(), predictions[:120]
    val_truth, val_scores = labels[120:].copy(), predictions[120:]
    truth[:, FINDINGS.index("Hernia")] = 0         # no positives in test
    val_truth[:, FINDINGS.index("Edema")] = 0      # no threshold can be chosen
    table, overall = class_results(truth, scores, np.arange(120) // 2, val_truth, val_scores,
                                   resamples=50, seed=0, target_sensitivity=None,
                                   calibration_bins=10, progress=False)
    assert list(table.index) == list(FINDINGS)
    mass = table.loc["Mass"]
    assert mass["auc_low"] < mass["auc"] < mass["auc_high"]
    assert mass["test_positives"] == truth[:, 9].sum()
    assert 0 < mass["sensitivity"] < 1 and 0 < mass["ece"] < 1
    hernia, edema = table.loc["Hernia"], table.loc["Edema"]
    assert np.isnan(hernia["auc"]) and np.isnan(hernia["auc_low"])
    assert np.isnan(hernia["average_precision"]) and np.isnan(hernia["sensitivity"])
    assert not np.isnan(hernia["ece"]) and not np.isnan(hernia["specificity"])
    assert np.isnan(edema["threshold"]) and np.isnan(edema["ppv_at_prevalence"])
    assert not np.isnan(edema["auc"])
    assert overall["mean_auc_low"] < overall["mean_auc"] < overall["mean_auc_high"]
    assert overall["mean_auc"] == pytest.approx(table["auc"].mean())
    # The threshold rule reaches the evaluation: a target sensitivity of 1 on val.
    strict, _ = class_results(truth, scores, np.arange(120) // 2, val_truth, val_scores,
                              resamples=10, seed=0, target_sensitivity=1.0,
                              calibration_bins=10, progress=False)
    assert (strict["threshold"].dropna() <= table["threshold"].dropna()).all()
    assert strict.loc["Mass", "sensitivity"] >= table.loc["Mass", "sensitivity"]
