"""Patient-level bootstrap of ROC AUC: resampling, weighted AUC, intervals."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from chestxray.evaluation.metrics import bootstrap_auc, patient_resample_counts, weighted_auc
from chestxray.nih.labels import FINDINGS


def noisy_study(patients, images_per_patient=3, seed=0):
    """Labels, scores that rank positives higher with noise, and patient ids."""
    rng = np.random.default_rng(seed)
    patient_ids = np.repeat(np.arange(patients) * 7 + 3, images_per_patient)
    truth = (rng.random((len(patient_ids), 14)) < 0.3).astype(np.float32)
    scores = truth + rng.normal(0, 0.8, truth.shape)
    return truth, scores, patient_ids


def test_resampling_keeps_each_patients_images_together():
    patient_ids = np.array([5, 5, 5, 9, 2, 2, 40])
    counts = patient_resample_counts(patient_ids, 500, np.random.default_rng(1))
    assert counts.shape == (500, 7)
    # All images of a patient share one count in every resample...
    assert (counts[:, 0] == counts[:, 1]).all() and (counts[:, 1] == counts[:, 2]).all()
    assert (counts[:, 4] == counts[:, 5]).all()
    # ...and each resample draws as many patients as there are (4).
    per_patient = counts[:, [0, 3, 4, 6]]
    assert (per_patient.sum(axis=1) == 4).all()
    assert (counts[:, 0] == 0).any() and (counts[:, 0] >= 2).any()
    assert per_patient.mean() == pytest.approx(1.0, abs=0.1)


def test_weighted_auc_matches_scikit_learn_with_ties():
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 2, 60)
    score = rng.integers(0, 5, 60) / 4.0    # many ties
    weights = rng.integers(0, 4, (5, 60))
    expected = [roc_auc_score(truth, score, sample_weight=row) for row in weights]
    assert weighted_auc(truth, score, weights) == pytest.approx(expected)


def test_weighted_auc_is_nan_without_both_classes():
    truth = np.array([1, 1, 0, 0])
    weights = np.array([[1, 1, 0, 0], [0, 0, 2, 1], [1, 0, 1, 0]])
    result = weighted_auc(truth, np.array([0.9, 0.8, 0.3, 0.1]), weights)
    assert np.isnan(result[0]) and np.isnan(result[1]) and result[2] == 1.0


def interval_width(interval):
    return interval[1] - interval[0]


def test_interval_contains_estimate_and_narrows_with_more_patients():
    small = noisy_study(40)
    large = noisy_study(400)
    widths = []
    for truth, scores, patients in (small, large):
        per_class, mean = bootstrap_auc(truth, scores, patients, 300, seed=0, progress=False)
        point = roc_auc_score(truth[:, 0], scores[:, 0])
        assert per_class["Atelectasis"][0] < point < per_class["Atelectasis"][1]
        mean_point = np.mean([roc_auc_score(truth[:, c], scores[:, c]) for c in range(14)])
        assert mean[0] < mean_point < mean[1]
        widths.append((interval_width(per_class["Atelectasis"]), interval_width(mean)))
    assert widths[1][0] < 0.6 * widths[0][0]
    assert widths[1][1] < 0.6 * widths[0][1]


def test_bootstrap_is_seeded_and_leaves_undefined_classes_undefined():
    truth, scores, patients = noisy_study(30)
    truth[:, FINDINGS.index("Hernia")] = 0
    first = bootstrap_auc(truth, scores, patients, 50, seed=3, progress=False)
    again = bootstrap_auc(truth, scores, patients, 50, seed=3, progress=False)
    other = bootstrap_auc(truth, scores, patients, 50, seed=4, progress=False)
    assert first == again and first != other
    assert first[0]["Hernia"] is None
    assert sum(value is None for value in first[0].values()) == 1


def test_one_patient_per_class_positive_does_not_crash():
    # A rare class whose only positive patient is absent from many resamples.
    truth, scores, patients = noisy_study(20)
    truth[:, 7] = 0
    truth[:3, 7] = 1                       # patient 0's three images
    per_class, _ = bootstrap_auc(truth, scores, patients, 100, seed=0, progress=False)
    low, high = per_class["Hernia"]
    assert 0 <= low <= high <= 1
