"""Operating points: a per-class score threshold chosen on validation data, and
what it means on test data (sensitivity, specificity, predictive values)."""
import numpy as np
from sklearn.metrics import confusion_matrix, roc_curve


def choose_threshold(y_true, y_score, target_sensitivity=None):
    """Score threshold of one class, chosen on validation data.

    y_true : (n,) 0/1; y_score : (n,) float. A score at or above the threshold
    calls the finding positive. With ``target_sensitivity`` None the threshold
    maximises Youden's J = sensitivity + specificity - 1; otherwise it is the
    highest threshold whose sensitivity reaches ``target_sensitivity``.
    Returns a float, or None where ``y_true`` lacks positives or negatives.
    """
    y_true = np.asarray(y_true)
    if not 0 < y_true.sum() < len(y_true):
        return None
    # Every distinct score is a candidate, so a target sensitivity is met at its
    # highest threshold; thresholds fall as the index grows.
    fpr, tpr, thresholds = roc_curve(y_true, y_score, drop_intermediate=False)
    if target_sensitivity is None:
        # Index 0 is roc_curve's +inf threshold (nothing positive): never useful.
        index = 1 + int(np.argmax(tpr[1:] - fpr[1:]))
    else:
        index = int(np.argmax(tpr >= target_sensitivity))
    return float(thresholds[index])


def _ratio(numerator, denominator):
    return float(numerator / denominator) if denominator > 0 else None


def rates_at_threshold(y_true, y_score, threshold):
    """Sensitivity, specificity, PPV and NPV of calling ``y_score >= threshold`` positive.

    y_true : (n,) 0/1; y_score : (n,) float; threshold : float or None.
    Returns a dict with those four keys; a value is None where its denominator
    is zero (e.g. sensitivity without positives) or the threshold is None.
    """
    if threshold is None:
        return dict.fromkeys(("sensitivity", "specificity", "ppv", "npv"))
    called = (np.asarray(y_score) >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(np.asarray(y_true).astype(int), called,
                                      labels=[0, 1]).ravel()
    return {"sensitivity": _ratio(tp, tp + fn), "specificity": _ratio(tn, tn + fp),
            "ppv": _ratio(tp, tp + fp), "npv": _ratio(tn, tn + fn)}


def predictive_values(sensitivity, specificity, prevalence):
    """PPV and NPV that a test with this sensitivity and specificity has at ``prevalence``.

    Bayes' rule: PPV = se p / (se p + (1 - sp)(1 - p)) and
    NPV = sp (1 - p) / (sp (1 - p) + (1 - se) p). A test set's own PPV depends
    on its prevalence, which a curated split rarely matches; this transfers the
    threshold to a population. Returns {"ppv": float|None, "npv": float|None}.
    """
    if sensitivity is None or specificity is None:
        return {"ppv": None, "npv": None}
    true_positive = sensitivity * prevalence
    false_positive = (1 - specificity) * (1 - prevalence)
    true_negative = specificity * (1 - prevalence)
    false_negative = (1 - sensitivity) * prevalence
    return {"ppv": _ratio(true_positive, true_positive + false_positive),
            "npv": _ratio(true_negative, true_negative + false_negative)}
