"""Per-class ROC AUC, including classes where it is undefined."""
import numpy as np
import pytest

from chestxray.evaluation import mean_auc, per_class_auc
from chestxray.labels import FINDINGS


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


def test_all_undefined_gives_no_mean():
    aucs = per_class_auc(np.zeros((5, 14)), np.zeros((5, 14)))
    assert all(value is None for value in aucs.values())
    assert mean_auc(aucs) is None
