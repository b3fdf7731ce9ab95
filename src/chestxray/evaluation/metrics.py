"""Scoring predictions: ROC AUC with patient-level bootstrap intervals, average
precision, operating points and calibration, one row per finding."""
import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score
from tqdm.auto import tqdm

from chestxray.evaluation.calibration import expected_calibration_error
from chestxray.evaluation.operating_points import (
    choose_threshold, predictive_values, rates_at_threshold,
)
from chestxray.nih.labels import FINDINGS, OFFICIAL_PREVALENCE, classes_with_both_labels

# Resamples drawn and scored at once: bounds memory at chunk x images weights.
BOOTSTRAP_CHUNK = 100


def _per_class(score, y_true, y_score):
    """``score(truth, scores)`` of each class, None where it lacks positives or negatives."""
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score)
    defined = classes_with_both_labels(y_true)
    return {finding: float(score(y_true[:, column], y_score[:, column]))
            if defined[column] else None
            for column, finding in enumerate(FINDINGS)}


def per_class_auc(y_true, y_score):
    """ROC AUC of each class.

    y_true : (n, 14) array of 0/1; y_score : (n, 14) array of probabilities.
    Returns a dict finding -> float, or None where the class has only positives
    or only negatives in ``y_true`` (AUC is undefined there).
    """
    return _per_class(roc_auc_score, y_true, y_score)


def mean_auc(aucs):
    """Mean of the defined per-class AUCs (None entries skipped); None if none is defined."""
    defined = [value for value in aucs.values() if value is not None]
    return float(np.mean(defined)) if defined else None


def per_class_average_precision(y_true, y_score):
    """Average precision (area under the precision-recall curve) of each class.

    Same shapes as :func:`per_class_auc`; None where the class has no positive
    or no negative in ``y_true``.
    """
    return _per_class(average_precision_score, y_true, y_score)


def patient_resample_counts(patient_ids, resamples, rng):
    """How often each image is drawn when patients are resampled with replacement.

    patient_ids : (n,) patient of each image; resamples : int; rng : numpy Generator.
    Returns int64 array (resamples, n): each row draws as many patients as there
    are, uniformly with replacement, and gives every image its patient's count,
    so a patient's images always enter a resample together.
    """
    _, image_patient = np.unique(np.asarray(patient_ids), return_inverse=True)
    patients = image_patient.max() + 1
    per_patient = rng.multinomial(patients, np.full(patients, 1 / patients), size=resamples)
    return per_patient[:, image_patient]


def weighted_auc(truth, score, weights):
    """ROC AUC of one class under many rows of image weights at once.

    truth : (n,) 0/1; score : (n,) float; weights : (r, n) non-negative, e.g.
    bootstrap counts. Returns float64 (r,): row i equals
    ``roc_auc_score(truth, score, sample_weight=weights[i])`` (tied scores count
    half), NaN where a row has no positive or no negative weight. Calling
    scikit-learn once per resample and class would cost 14 x resamples calls;
    this Mann-Whitney form sorts once and scores all rows together.
    """
    order = np.argsort(score, kind="stable")
    _, tie_group_starts = np.unique(score[order], return_index=True)
    positive = np.asarray(truth)[order].astype(bool)
    weights = np.asarray(weights, dtype=np.float64)[:, order]
    positive_weight = np.add.reduceat(np.where(positive, weights, 0), tie_group_starts, axis=1)
    negative_weight = np.add.reduceat(np.where(positive, 0, weights), tie_group_starts, axis=1)
    negatives_below = np.cumsum(negative_weight, axis=1) - negative_weight
    concordant = (positive_weight * (negatives_below + 0.5 * negative_weight)).sum(axis=1)
    pairs = positive_weight.sum(axis=1) * negative_weight.sum(axis=1)
    return np.divide(concordant, pairs, out=np.full(len(pairs), np.nan), where=pairs > 0)


def resample_chunks(patient_ids, resamples, rng, description, progress=True):
    """:func:`patient_resample_counts` drawn :data:`BOOTSTRAP_CHUNK` resamples at a time.

    Yields ``(rows, counts)``: ``rows`` a slice of range(resamples), ``counts`` int64
    (rows' length, n). Chunks bound memory at chunk x n counts; the same ``rng`` state
    always draws the same resamples. A progress bar named ``description`` shows unless
    ``progress`` is false.
    """
    with tqdm(total=resamples, desc=description, unit="resample", disable=not progress) as bar:
        for start in range(0, resamples, BOOTSTRAP_CHUNK):
            stop = min(start + BOOTSTRAP_CHUNK, resamples)
            yield slice(start, stop), patient_resample_counts(patient_ids, stop - start, rng)
            bar.update(stop - start)


def resampled_aucs(y_true, score_sets, patient_ids, resamples, rng, progress=True):
    """Per-class AUC of score sets under the same patient-level bootstrap resamples.

    y_true : (n, 14) 0/1; score_sets : sequence of (n, 14) float arrays, all scoring the
    same images; patient_ids : (n,); rng : numpy Generator. Each resample draws patients
    with replacement and takes all their images, and every score set is scored on it, so
    differences between sets are paired. Returns float64 (len(score_sets), resamples, 14):
    NaN where a class lacks positives or negatives in the resample, or on the full set.
    """
    y_true = np.asarray(y_true)
    score_sets = [np.asarray(scores) for scores in score_sets]
    defined = np.flatnonzero(classes_with_both_labels(y_true)).tolist()
    aucs = np.full((len(score_sets), resamples, len(FINDINGS)), np.nan)
    for rows, counts in resample_chunks(patient_ids, resamples, rng, "bootstrap AUC", progress):
        for column in defined:
            for index, scores in enumerate(score_sets):
                aucs[index, rows, column] = weighted_auc(
                    y_true[:, column], scores[:, column], counts)
    return aucs


def finite_row_mean(values):
    """Mean of each row's finite entries: (r, k) float -> (r,) float64, NaN where a row
    has none (numpy's nanmean would warn there)."""
    values = np.asarray(values, dtype=np.float64)
    defined = np.isfinite(values).any(axis=1)
    means = np.full(len(values), np.nan)
    means[defined] = np.nanmean(values[defined], axis=1)
    return means


def resampled_mean_auc(aucs, columns):
    """Mean AUC over ``columns`` of each resample of :func:`resampled_aucs`' (r, 14) slice:
    the classes defined in that resample averaged; NaN where none is."""
    return finite_row_mean(aucs[:, columns])


def interval(samples, level=0.95):
    """Percentile interval (low, high) of the finite samples, or None if there are none."""
    samples = samples[np.isfinite(samples)]
    if not len(samples):
        return None
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_auc(y_true, y_score, patient_ids, resamples, seed, level=0.95, progress=True):
    """Patient-level percentile-bootstrap confidence intervals of per-class and mean AUC.

    y_true : (n, 14) 0/1; y_score : (n, 14) float; patient_ids : (n,).
    A resample where a class lacks positives or negatives is left out of that
    class's interval; the mean AUC of a resample averages the classes defined
    in it, among those defined on the full set.

    Returns ``(per_class, mean)``: a dict finding -> (low, high) or None where
    the AUC is undefined, and (low, high) or None for the mean AUC.
    """
    defined = np.flatnonzero(classes_with_both_labels(np.asarray(y_true))).tolist()
    aucs = resampled_aucs(y_true, [y_score], patient_ids, resamples,
                          np.random.default_rng(seed), progress)[0]
    per_class = {finding: interval(aucs[:, column], level) if column in defined else None
                 for column, finding in enumerate(FINDINGS)}
    return per_class, interval(resampled_mean_auc(aucs, defined), level)


def class_results(test_truth, test_scores, test_patients, val_truth, val_scores, *,
                  resamples, seed, target_sensitivity, calibration_bins,
                  reference_prevalence=OFFICIAL_PREVALENCE, progress=True):
    """Every per-class figure of the evaluate stage.

    test_truth, test_scores : (n, 14) 0/1 and probabilities on the test split;
    test_patients : (n,) patient of each test image; val_truth, val_scores :
    (m, 14) on the validation split, where each class's threshold is chosen
    (Youden's J, or the highest threshold reaching ``target_sensitivity`` when
    it is not None). ``reference_prevalence`` maps finding -> prevalence at
    which PPV and NPV are also reported.

    Returns ``(table, overall)``: a DataFrame indexed by finding with float
    columns test_positives, auc, auc_low, auc_high, average_precision, ece,
    threshold, sensitivity, specificity, ppv, npv, prevalence,
    ppv_at_prevalence, npv_at_prevalence (NaN where undefined), and a dict with
    mean_auc, mean_auc_low, mean_auc_high, mean_average_precision, mean_ece
    (None where undefined).
    """
    test_truth = np.asarray(test_truth)
    test_scores = np.asarray(test_scores)
    aucs = per_class_auc(test_truth, test_scores)
    precisions = per_class_average_precision(test_truth, test_scores)
    intervals, mean_interval = bootstrap_auc(test_truth, test_scores, test_patients, resamples,
                                             seed, progress=progress)
    rows = {}
    for column, finding in enumerate(FINDINGS):
        truth, scores = test_truth[:, column], test_scores[:, column]
        threshold = choose_threshold(np.asarray(val_truth)[:, column],
                                     np.asarray(val_scores)[:, column], target_sensitivity)
        rates = rates_at_threshold(truth, scores, threshold)
        prevalence = reference_prevalence[finding]
        at_prevalence = predictive_values(rates["sensitivity"], rates["specificity"], prevalence)
        auc_low, auc_high = intervals[finding] or (None, None)
        rows[finding] = {
            "test_positives": truth.sum(), "auc": aucs[finding],
            "auc_low": auc_low, "auc_high": auc_high,
            "average_precision": precisions[finding],
            "ece": expected_calibration_error(truth, scores, calibration_bins),
            "threshold": threshold, **rates, "prevalence": prevalence,
            "ppv_at_prevalence": at_prevalence["ppv"],
            "npv_at_prevalence": at_prevalence["npv"],
        }
    table = pd.DataFrame.from_dict(rows, orient="index", dtype=float)
    defined_precisions = table["average_precision"].dropna()
    overall = {
        "mean_auc": mean_auc(aucs),
        "mean_auc_low": mean_interval[0] if mean_interval else None,
        "mean_auc_high": mean_interval[1] if mean_interval else None,
        "mean_average_precision": float(defined_precisions.mean())
        if len(defined_precisions) else None,
        "mean_ece": float(table["ece"].mean()),
    }
    return table, overall
