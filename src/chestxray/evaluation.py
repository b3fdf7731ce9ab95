"""Scoring predictions: per-class ROC AUC on the test split."""
import numpy as np
from sklearn.metrics import roc_auc_score

from chestxray.labels import FINDINGS


def per_class_auc(y_true, y_score):
    """ROC AUC of each class.

    y_true : (n, 14) array of 0/1; y_score : (n, 14) array of probabilities.
    Returns a dict finding -> float, or None where the class has only positives
    or only negatives in ``y_true`` (AUC is undefined there).
    """
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score)
    aucs = {}
    for column, finding in enumerate(FINDINGS):
        truth = y_true[:, column]
        defined = 0 < truth.sum() < len(truth)
        aucs[finding] = float(roc_auc_score(truth, y_score[:, column])) if defined else None
    return aucs


def mean_auc(aucs):
    """Mean of the defined per-class AUCs (None entries skipped); None if none is defined."""
    defined = [value for value in aucs.values() if value is not None]
    return float(np.mean(defined)) if defined else None
