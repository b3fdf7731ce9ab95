"""Who the model fails: ROC AUC and the underdiagnosis rate in each subgroup of sex, age
band and view position of the test split, with patient-level bootstrap intervals, and the
largest gap between an attribute's subgroups with an interval for that difference.

All intervals come from one set of patient-level resamples of the whole test split, so a
subgroup's images enter a resample with their patient, and the two sides of a gap are
paired (scored on the same resamples).
"""
from dataclasses import dataclass
from itertools import chain, permutations

import numpy as np
import pandas as pd

from chestxray.core.params import MAX_AGE
from chestxray.evaluation.metrics import finite_row_mean, interval, resample_chunks, weighted_auc
from chestxray.evaluation.operating_points import choose_threshold
from chestxray.nih.labels import FINDINGS

KNOWN_SEXES = ("F", "M")
KNOWN_VIEWS = ("AP", "PA")
# A missing, unparsable or implausible value is its own group, never dropped.
UNKNOWN = "unknown"


def age_band_names(bounds):
    """Names of the bands that ``bounds`` (increasing ints, e.g. [40, 60, 80]) cut ages
    into: ``['0-39', '40-59', '60-79', '80+']``."""
    starts = [0, *bounds]
    return [f"{start}-{stop - 1}" for start, stop in zip(starts, bounds)] + [f"{bounds[-1]}+"]


def subgroup_table(images, age_bands):
    """Each image's subgroup of every attribute.

    images : DataFrame with the label table's ``Patient Gender``, ``Patient Age`` and
    ``View Position`` columns, n rows; age_bands : increasing int bounds (years).
    Returns a DataFrame (n rows, index as ``images``) of categorical columns sex (F, M),
    age (:func:`age_band_names`) and view (AP, PA), each with :data:`UNKNOWN` as its last
    category for any other or missing value.
    """
    def grouped(values, names):
        return pd.Categorical(np.where(np.isin(values, names), values, UNKNOWN),
                              categories=[*names, UNKNOWN])

    def letters(column):
        return images[column].astype("string").str.strip().str.upper().fillna("").to_numpy(str)

    ages = pd.to_numeric(images["Patient Age"], errors="coerce").to_numpy(float)
    band_names = np.asarray(age_band_names(age_bands))
    bands = band_names[np.searchsorted(np.asarray(age_bands), np.nan_to_num(ages), side="right")]
    # The NIH table holds a few impossible ages (up to 414): counted as unknown.
    bands[~((ages >= 0) & (ages <= MAX_AGE))] = UNKNOWN
    return pd.DataFrame({"sex": grouped(letters("Patient Gender"), KNOWN_SEXES),
                         "age": grouped(bands, band_names),
                         "view": grouped(letters("View Position"), KNOWN_VIEWS)},
                        index=images.index)


def any_finding_scores(scores):
    """(n, 14) class probabilities -> (n,) "any finding" score: the highest of them."""
    return np.asarray(scores).max(axis=1)


def any_finding_threshold(val_truth, val_scores, target_sensitivity):
    """Threshold of the "any finding" score, chosen on validation data by the rule of the
    per-class operating points (:func:`~chestxray.evaluation.operating_points.choose_threshold`).

    val_truth : (m, 14) 0/1; val_scores : (m, 14) probabilities. An image whose score is
    below it is called finding-free. None where val lacks images with or without a finding.
    """
    return choose_threshold(np.asarray(val_truth).any(axis=1), any_finding_scores(val_scores),
                            target_sensitivity)


def patients_with(flags, patient_ids):
    """Distinct patients with a true flag, per column: flags (n, k) bool, patient_ids (n,)
    -> int64 (k,)."""
    return pd.DataFrame(flags).groupby(patient_ids).any().sum().to_numpy(np.int64)


def weighted_rate(events, cases, weights):
    """Share of ``cases`` that are ``events`` under each row of image weights.

    events, cases : (n,) bool, events within cases; weights : (r, n) non-negative.
    Returns float64 (r,), NaN where a row gives the cases no weight.
    """
    weights = np.asarray(weights, dtype=np.float64)
    numerator = weights[:, events & cases].sum(axis=1)
    denominator = weights[:, cases].sum(axis=1)
    return np.divide(numerator, denominator, out=np.full(len(weights), np.nan),
                     where=denominator > 0)


@dataclass
class Subgroups:
    """What :func:`subgroup_results` returns.

    summary : DataFrame indexed by (attribute, subgroup): int images, patients,
        with_finding, patients_with_finding, classes (classes with an AUC) and float
        mean_auc, mean_auc_low,
        mean_auc_high, underdiagnosis, underdiagnosis_low, underdiagnosis_high (NaN where
        undefined).
    classes : DataFrame indexed by (attribute, subgroup, finding): int positives,
        negatives (images), positive_patients, negative_patients (patients with a positive,
        a negative image) and float auc, auc_low, auc_high (NaN below the patient floor).
    gaps : DataFrame indexed by (attribute, measure), measure ``mean_auc`` or
        ``underdiagnosis``: str higher, lower (the two subgroups, higher value first),
        int classes (shared classes the AUC gap averages; 0 for underdiagnosis), int pairs
        (pairs of subgroups compared) and float gap, gap_low, gap_high; no row where fewer
        than two known subgroups are defined.
    overall : dict any_finding_threshold (float or None), underdiagnosis,
        underdiagnosis_low, underdiagnosis_high (float or None) over the whole test split.
    min_patients : the patient floor the figures were computed with.
    """

    summary: pd.DataFrame
    classes: pd.DataFrame
    gaps: pd.DataFrame
    overall: dict
    min_patients: int


def subgroup_results(groups, truth, scores, patient_ids, threshold, *, min_patients, resamples,
                     seed, level=0.95, progress=True):
    """Subgroup AUCs, underdiagnosis rates and gaps of the test split.

    groups : :func:`subgroup_table` of the n test images (subgroups in its category
    order; an empty one is left out); truth : (n, 14) 0/1; scores :
    (n, 14) probabilities; patient_ids : (n,); threshold : :func:`any_finding_threshold`.

    Floors count patients, as the resamples do, so that no figure is drawn from a patient
    or two with many follow-up images: a class has an AUC in a subgroup only where at least
    ``min_patients`` patients have a positive image there and as many a negative one; a
    subgroup's mean AUC averages its classes that have one. Its underdiagnosis rate, the
    share of its images with a finding whose any-finding score is below ``threshold``,
    needs ``min_patients`` patients with such an image. Intervals are percentile intervals
    at ``level`` over ``resamples`` patient-level resamples.

    The gap of an attribute compares its known subgroups (not :data:`UNKNOWN`): for mean
    AUC, each pair's mean difference over the classes both define; for underdiagnosis, the
    difference of rates; the pair with the largest such difference is reported, with the
    interval of that same difference over the resamples. Picking the largest of several
    pairs would make a gap look real too often, so that interval is Bonferroni-widened:
    at level ``1 - (1 - level) / pairs``, ``level`` for the family of the attribute's pairs.
    """
    truth = np.asarray(truth).astype(bool)
    patient_ids = np.asarray(patient_ids)
    scores = np.asarray(scores, dtype=np.float64)
    with_finding = truth.any(axis=1)
    missed = with_finding & (any_finding_scores(scores) < threshold) if threshold is not None \
        else np.zeros(len(truth), bool)
    masks = {(attribute, name): (groups[attribute] == name).to_numpy()
             for attribute in groups.columns for name in groups[attribute].cat.categories
             if (groups[attribute] == name).any()}
    positives = {key: truth[mask].sum(axis=0) for key, mask in masks.items()}
    positive_patients = {key: patients_with(truth[mask], patient_ids[mask])
                         for key, mask in masks.items()}
    negative_patients = {key: patients_with(~truth[mask], patient_ids[mask])
                         for key, mask in masks.items()}
    finding_patients = {key: patients_with(with_finding[mask, None], patient_ids[mask])[0]
                        for key, mask in masks.items()}
    scored_classes = {key: np.flatnonzero((positive_patients[key] >= min_patients) &
                                          (negative_patients[key] >= min_patients))
                      for key in masks}
    rated = {key: threshold is not None and finding_patients[key] >= min_patients
             for key in masks}

    aucs = {key: np.full((resamples + 1, len(FINDINGS)), np.nan) for key in masks}
    rates = {key: np.full(resamples + 1, np.nan) for key in masks}
    overall_rates = np.full(resamples + 1, np.nan)
    # Row 0 is the test split itself (every image once), rows 1.. the resamples.
    chunks = chain([(slice(0, 1), np.ones((1, len(truth)), np.int64))],
                   ((slice(rows.start + 1, rows.stop + 1), counts) for rows, counts in
                    resample_chunks(patient_ids, resamples, np.random.default_rng(seed),
                                    "bootstrap subgroups", progress)))
    for rows, counts in chunks:
        for key, mask in masks.items():
            weights = counts[:, mask]
            for column in scored_classes[key]:
                aucs[key][rows, column] = weighted_auc(
                    truth[mask, column], scores[mask, column], weights)
            if rated[key]:
                rates[key][rows] = weighted_rate(missed[mask], with_finding[mask], weights)
        if threshold is not None:
            overall_rates[rows] = weighted_rate(missed, with_finding, counts)

    means = {key: finite_row_mean(aucs[key][:, scored_classes[key]]) for key in masks}
    summary = pd.DataFrame.from_dict({key: {
        "images": int(mask.sum()), "patients": int(pd.unique(patient_ids[mask]).size),
        "with_finding": int(with_finding[mask].sum()),
        "patients_with_finding": int(finding_patients[key]), "classes": len(scored_classes[key]),
        **_estimate("mean_auc", means[key], level),
        **_estimate("underdiagnosis", rates[key], level),
    } for key, mask in masks.items()}, orient="index")
    summary.index.names = ["attribute", "subgroup"]
    classes = pd.DataFrame.from_dict({(*key, finding): {
        "positives": int(positives[key][column]),
        "negatives": int(mask.sum() - positives[key][column]),
        "positive_patients": int(positive_patients[key][column]),
        "negative_patients": int(negative_patients[key][column]),
        **_estimate("auc", aucs[key][:, column], level),
    } for key, mask in masks.items() for column, finding in enumerate(FINDINGS)},
        orient="index")
    classes.index.names = ["attribute", "subgroup", "finding"]
    gaps = _gaps(groups.columns, masks, scored_classes, aucs, rates, level)
    overall = {"any_finding_threshold": threshold,
               **{key: None if np.isnan(value) else value for key, value in
                  _estimate("underdiagnosis", overall_rates, level).items()}}
    return Subgroups(summary, classes, gaps, overall, min_patients)


def _estimate(name, values, level):
    """``{name, name_low, name_high}``: ``values[0]`` (the test split) and the interval
    of ``values[1:]`` (the resamples); NaN where the estimate is undefined."""
    bounds = interval(values[1:], level) if np.isfinite(values[0]) else None
    low, high = bounds or (np.nan, np.nan)
    return {name: float(values[0]), f"{name}_low": low, f"{name}_high": high}


def _gaps(attributes, masks, scored_classes, aucs, rates, level):
    rows = {}
    for attribute in attributes:
        known = [key for key in masks if key[0] == attribute and key[1] != UNKNOWN]
        auc_gaps = {}
        for first, second in permutations(known, 2):
            shared = np.intersect1d(scored_classes[first], scored_classes[second])
            if len(shared):
                auc_gaps[first[1], second[1], len(shared)] = finite_row_mean(
                    aucs[first][:, shared] - aucs[second][:, shared])
        rate_gaps = {(first[1], second[1], 0): rates[first] - rates[second]
                     for first, second in permutations(known, 2)
                     if np.isfinite(rates[first][0]) and np.isfinite(rates[second][0])}
        for measure, candidates in (("mean_auc", auc_gaps), ("underdiagnosis", rate_gaps)):
            if candidates:
                (higher, lower, shared), values = max(candidates.items(),
                                                      key=lambda item: item[1][0])
                pairs = len(candidates) // 2  # each pair is a candidate in both orders
                rows[attribute, measure] = {
                    "higher": higher, "lower": lower, "classes": shared, "pairs": pairs,
                    **_estimate("gap", values, 1 - (1 - level) / pairs)}
    gaps = pd.DataFrame.from_dict(rows, orient="index", columns=[
        "higher", "lower", "classes", "pairs", "gap", "gap_low", "gap_high"])
    gaps.index = pd.MultiIndex.from_tuples(gaps.index, names=["attribute", "measure"])
    return gaps
