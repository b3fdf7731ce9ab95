"""Subgroup performance: AUCs, intervals, underdiagnosis rates and gaps against values
computed independently (scikit-learn, a plain loop over resamples, by hand)."""
import copy

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from chestxray.core.params import ParamsError, validate
from chestxray.evaluation.metrics import patient_resample_counts
from chestxray.evaluation.operating_points import choose_threshold
from chestxray.evaluation.publish import subgroup_intervals, subgroup_metric_values
from chestxray.evaluation.report import render_report
from chestxray.evaluation.subgroups import (
    UNKNOWN, age_band_names, any_finding_threshold, subgroup_results, subgroup_table,
)
from chestxray.nih.labels import FINDINGS

from conftest import REPO

ATELECTASIS, CARDIOMEGALY = FINDINGS.index("Atelectasis"), FINDINGS.index("Cardiomegaly")


def images(sexes, ages, views):
    return pd.DataFrame({"Patient Gender": sexes, "Patient Age": ages, "View Position": views})


def test_age_bands_are_named_and_bounded():
    assert age_band_names([40, 60, 80]) == ["0-39", "40-59", "60-79", "80+"]
    assert age_band_names([18]) == ["0-17", "18+"]
    ages = [0, 39, 40, 59, 60, 79, 80, 120, 121, 412, -3, None, "unknown", "58"]
    groups = subgroup_table(images(["F"] * len(ages), ages, ["PA"] * len(ages)), [40, 60, 80])
    assert list(groups["age"]) == ["0-39", "0-39", "40-59", "40-59", "60-79", "60-79", "80+",
                                   "80+", UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, "40-59"]


def test_missing_and_unrecognised_values_are_their_own_unknown_group():
    groups = subgroup_table(images(["F", " m", None, "X", ""], [30] * 5,
                                   ["PA", "ap", None, "LL", "AP"]), [40, 60, 80])
    assert list(groups["sex"]) == ["F", "M", UNKNOWN, UNKNOWN, UNKNOWN]
    assert list(groups["view"]) == ["PA", "AP", UNKNOWN, UNKNOWN, "AP"]
    # No image is dropped: every attribute's groups hold all of them.
    assert all(groups[column].value_counts().sum() == 5 for column in groups)


def random_study(seed=0, images_count=240):
    """Subgroups, labels, scores that rank positives higher with noise, and patient ids:
    three images per patient, with sex and age band constant per patient but view not."""
    rng = np.random.default_rng(seed)
    patients = np.repeat(np.arange(images_count // 3) * 11 + 5, 3)
    per_patient = {patient: (rng.choice(["F", "M", None]), rng.choice([25, 50, 70, 85, 300]))
                   for patient in np.unique(patients)}
    table = images([per_patient[p][0] for p in patients], [per_patient[p][1] for p in patients],
                   rng.choice(["AP", "PA"], len(patients)))
    truth = (rng.random((len(patients), 14)) < 0.3).astype(np.float32)
    scores = np.clip(0.4 * truth + 0.6 * rng.random(truth.shape), 0, 1)
    return subgroup_table(table, [40, 60, 80]), truth, scores, patients


def loop_bootstrap(statistic, patients, resamples, seed):
    """The statistic on each resample the slow way: scikit-learn with sample weights.

    ``statistic(weights)`` gets each resample's (n,) image counts. The resamples equal
    :func:`subgroup_results`' (one chunk of :func:`patient_resample_counts`)."""
    counts = patient_resample_counts(patients, resamples, np.random.default_rng(seed))
    return np.array([statistic(row) for row in counts])


def percentile_interval(samples, tail=2.5):
    samples = samples[np.isfinite(samples)]
    return tuple(np.percentile(samples, [tail, 100 - tail]))


def weighted_roc_auc(truth, scores, weights):
    if not (weights[truth == 1].sum() and weights[truth == 0].sum()):
        return np.nan
    return roc_auc_score(truth, scores, sample_weight=weights)


def test_aucs_rates_intervals_and_gaps_equal_an_independent_computation():
    groups, truth, scores, patients = random_study()
    threshold, resamples, seed = 0.75, 80, 3
    result = subgroup_results(groups, truth, scores, patients, threshold, min_patients=5,
                              resamples=resamples, seed=seed, progress=False)
    with_finding = truth.any(axis=1)
    missed = with_finding & (scores.max(axis=1) < threshold)
    for (attribute, subgroup), row in result.summary.iterrows():
        mask = (groups[attribute] == subgroup).to_numpy()
        assert row["images"] == mask.sum()
        assert row["patients"] == len(np.unique(patients[mask]))
        assert row["with_finding"] == with_finding[mask].sum()
        assert row["patients_with_finding"] == len(np.unique(patients[mask & with_finding]))
        # Underdiagnosis: missed images with a finding over images with a finding.
        assert row["underdiagnosis"] == pytest.approx(missed[mask].sum() / with_finding[mask].sum())
        rates = loop_bootstrap(lambda w: (w * (mask & missed)).sum() /
                               (w * (mask & with_finding)).sum(), patients, resamples, seed)
        assert (row["underdiagnosis_low"], row["underdiagnosis_high"]) == pytest.approx(
            percentile_interval(rates))
        defined = []
        for column, finding in enumerate(FINDINGS):
            cell = result.classes.loc[(attribute, subgroup, finding)]
            positives = truth[mask, column].sum()
            assert cell["positives"] == positives and cell["negatives"] == mask.sum() - positives
            patients_by_label = [len(np.unique(patients[mask & (truth[:, column] == label)]))
                                 for label in (1, 0)]
            assert [cell["positive_patients"], cell["negative_patients"]] == patients_by_label
            if min(patients_by_label) < 5:
                assert np.isnan(cell["auc"]) and np.isnan(cell["auc_low"])
                continue
            defined.append(column)
            assert cell["auc"] == pytest.approx(roc_auc_score(truth[mask, column],
                                                              scores[mask, column]))
            if len(defined) > 3:  # the slow loop on three classes per subgroup is enough
                continue
            aucs = loop_bootstrap(lambda w, c=column: weighted_roc_auc(
                truth[mask, c], scores[mask, c], w[mask]), patients, resamples, seed)
            assert (cell["auc_low"], cell["auc_high"]) == pytest.approx(percentile_interval(aucs))
        assert row["classes"] == len(defined)
        assert row["mean_auc"] == pytest.approx(np.mean([
            roc_auc_score(truth[mask, c], scores[mask, c]) for c in defined]))

    # Gaps: the pair of known subgroups that differ most, higher first, over shared classes.
    for attribute in ("sex", "age", "view"):
        known = [name for name in result.summary.loc[attribute].index if name != UNKNOWN]
        rates = result.summary.loc[attribute, "underdiagnosis"]
        gap = result.gaps.loc[(attribute, "underdiagnosis")]
        assert gap["gap"] == pytest.approx(rates[known].max() - rates[known].min())
        assert (gap["higher"], gap["lower"]) == (rates[known].idxmax(), rates[known].idxmin())
        rated = rates[known].notna().sum()
        assert gap["pairs"] == rated * (rated - 1) // 2
        first = (groups[attribute] == gap["higher"]).to_numpy()
        second = (groups[attribute] == gap["lower"]).to_numpy()
        differences = loop_bootstrap(lambda w: (
            (w * (first & missed)).sum() / (w * (first & with_finding)).sum()
            - (w * (second & missed)).sum() / (w * (second & with_finding)).sum()),
            patients, resamples, seed)
        # Bonferroni: 95% for the family of pairs the largest gap was picked from.
        assert (gap["gap_low"], gap["gap_high"]) == pytest.approx(
            percentile_interval(differences, tail=2.5 / gap["pairs"]))

        classes = result.classes["auc"].sort_index().loc[attribute].unstack("finding")
        pairs = [(a, b) for a in known for b in known
                 if a != b and classes.loc[[a, b]].notna().all().any()]
        best = max(pairs, key=lambda pair: np.nanmean(classes.loc[pair[0]] - classes.loc[pair[1]]))
        shared = classes.loc[list(best)].notna().all().sum()
        auc_gap = result.gaps.loc[(attribute, "mean_auc")]
        assert (auc_gap["higher"], auc_gap["lower"], auc_gap["classes"]) == (*best, shared)
        assert auc_gap["gap"] == pytest.approx(np.nanmean(classes.loc[best[0]] - classes.loc[best[1]]))
        assert auc_gap["gap_low"] <= auc_gap["gap"] <= auc_gap["gap_high"]
    # Unknown is reported but never one side of a gap.
    assert UNKNOWN in result.summary.loc["sex"].index
    assert UNKNOWN not in set(result.gaps["higher"]) | set(result.gaps["lower"])
    overall = result.overall
    assert overall["underdiagnosis"] == pytest.approx(missed.sum() / with_finding.sum())
    assert overall["underdiagnosis_low"] < overall["underdiagnosis"] < overall["underdiagnosis_high"]


def hand_study():
    """Two patients per sex, two images each.

    Atelectasis, F: positives score 0.9, 0.4; negatives 0.5, 0.1 -> AUC 3/4. M: positives
    0.8, 0.7; negatives 0.6, 0.2 -> AUC 1. Cardiomegaly (scored 0) is on three M images:
    one negative. The highest score of each image is its Atelectasis score, so at threshold
    0.45 F misses 1 of its 2 images with a finding and M none of its 3.
    """
    table = images(["F", "F", "F", "F", "M", "M", "M", "M"], [30] * 8, ["PA"] * 8)
    truth = np.zeros((8, 14), np.float32)
    truth[[0, 1, 4, 5], ATELECTASIS] = 1
    truth[[4, 5, 6], CARDIOMEGALY] = 1
    scores = np.zeros((8, 14))
    scores[:, ATELECTASIS] = [0.9, 0.4, 0.5, 0.1, 0.8, 0.7, 0.6, 0.2]
    return subgroup_table(table, [40, 60, 80]), truth, scores, np.array([1, 2, 1, 2, 3, 4, 3, 4])


def test_hand_computed_subgroup_figures_and_the_count_floor():
    groups, truth, scores, patients = hand_study()
    result = subgroup_results(groups, truth, scores, patients, 0.45, min_patients=2,
                              resamples=200, seed=0, progress=False)
    female, male = result.summary.loc[("sex", "F")], result.summary.loc[("sex", "M")]
    assert female["mean_auc"] == pytest.approx(0.75) and male["mean_auc"] == 1.0
    assert female["underdiagnosis"] == 0.5 and male["underdiagnosis"] == 0.0
    assert result.gaps.loc[("sex", "mean_auc")][["higher", "lower", "gap", "classes"]].tolist() \
        == ["M", "F", pytest.approx(0.25), 1]
    assert result.gaps.loc[("sex", "underdiagnosis")][["higher", "lower", "gap"]].tolist() \
        == ["F", "M", 0.5]
    # The age attribute has a single group: no gap.
    assert ("age", "mean_auc") not in result.gaps.index
    # M's AUC is 1 on every resample that has both labels: a zero-width interval.
    assert (male["mean_auc_low"], male["mean_auc_high"]) == (1.0, 1.0)
    assert result.overall["underdiagnosis"] == pytest.approx(1 / 5)
    # One patient with a negative image is below the floor of 2, however many positives.
    cell = result.classes.loc[("sex", "M", "Cardiomegaly")]
    assert cell[["positives", "negatives", "positive_patients", "negative_patients"]].tolist() \
        == [3, 1, 2, 1] and np.isnan(cell["auc"])
    assert male["classes"] == 1

    # A floor of 3 leaves each sex's AUCs and rates undefined (2 patients each): no gap.
    floored = subgroup_results(groups, truth, scores, patients, 0.45, min_patients=3,
                               resamples=20, seed=0, progress=False)
    by_sex = floored.summary.loc["sex"]
    assert by_sex["classes"].eq(0).all()
    assert by_sex[["mean_auc", "mean_auc_low", "underdiagnosis"]].isna().all().all()
    assert floored.gaps.empty
    # The one age band holds all 4 patients: Atelectasis (4 and 4) is above the floor there,
    # Cardiomegaly (2 patients with a positive image) is not.
    assert floored.summary.loc[("age", "0-39"), "mean_auc"] == pytest.approx(
        roc_auc_score(truth[:, ATELECTASIS], scores[:, ATELECTASIS]))


def test_floors_count_patients_not_images():
    # Patient 1: four positive follow-up images; patients 2 and 3: one negative each.
    table = images(["F"] * 6, [30] * 6, ["PA"] * 6)
    truth = np.zeros((6, 14), np.float32)
    truth[:4, ATELECTASIS] = 1
    scores = np.zeros((6, 14))
    scores[:, ATELECTASIS] = [0.9, 0.8, 0.3, 0.7, 0.2, 0.1]
    groups, patients = subgroup_table(table, [40, 60, 80]), np.array([1, 1, 1, 1, 2, 3])
    one_patient = subgroup_results(groups, truth, scores, patients, 0.5, min_patients=2,
                                   resamples=10, seed=0, progress=False)
    assert one_patient.summary[["mean_auc", "underdiagnosis"]].isna().all().all()
    cell = one_patient.classes.loc[("sex", "F", "Atelectasis")]
    assert cell[["positives", "positive_patients"]].tolist() == [4, 1]
    defined = subgroup_results(groups, truth, scores, patients, 0.5, min_patients=1,
                               resamples=10, seed=0, progress=False).summary.loc[("sex", "F")]
    assert defined["mean_auc"] == 1.0 and defined["underdiagnosis"] == 0.25


def test_no_threshold_leaves_every_rate_undefined():
    groups, truth, scores, patients = hand_study()
    result = subgroup_results(groups, truth, scores, patients, None, min_patients=1,
                              resamples=10, seed=0, progress=False)
    assert result.summary["underdiagnosis"].isna().all()
    assert result.overall["underdiagnosis"] is None
    assert result.summary["mean_auc"].notna().all()


def test_the_any_finding_threshold_follows_the_operating_point_rule():
    _, truth, scores, _ = random_study(seed=4)
    anything = truth.any(axis=1)
    assert any_finding_threshold(truth, scores, None) == choose_threshold(
        anything, scores.max(axis=1))
    assert any_finding_threshold(truth, scores, 0.95) == choose_threshold(
        anything, scores.max(axis=1), 0.95)
    assert any_finding_threshold(np.zeros_like(truth), scores, None) is None


def test_metric_names_plot_rows_and_report_section():
    groups, truth, scores, patients = random_study(seed=1)
    # A floor of 15 leaves some classes of the smaller subgroups (~50 images) undefined.
    result = subgroup_results(groups, truth, scores, patients, 0.7, min_patients=15,
                              resamples=50, seed=0, progress=False)
    values = subgroup_metric_values(result)
    female = result.summary.loc[("sex", "F")]
    assert values["subgroups/sex/F/mean_auc"] == round(female["mean_auc"], 5)
    assert values["subgroups/sex/F/underdiagnosis_high"] == round(female["underdiagnosis_high"], 5)
    assert values["subgroups/view/gap/mean_auc"] == round(
        result.gaps.loc[("view", "mean_auc"), "gap"], 5)
    images_count = values["subgroups/age/80+/images"]
    assert images_count == result.summary.loc[("age", "80+"), "images"]
    assert isinstance(images_count, int)
    auc = result.classes.loc[("sex", "M", "Mass"), "auc"]
    assert values["subgroups/sex/M/auc/Mass"] == round(auc, 5)
    # Undefined figures are left out, never written as NaN.
    assert all(np.isfinite(value) for value in values.values())
    undefined = result.classes.index[result.classes["auc"].isna()][0]
    assert f"subgroups/{undefined[0]}/{undefined[1]}/auc/{undefined[2]}" not in values

    rows = subgroup_intervals(result.summary)
    assert rows.loc[0, "subgroup"] == "sex: F" and rows.loc[0, "mean_auc"] == female["mean_auc"]

    table = pd.DataFrame(np.nan, index=list(FINDINGS), columns=[
        "test_positives", "auc", "auc_low", "auc_high", "average_precision", "ece", "threshold",
        "sensitivity", "specificity", "ppv", "npv", "prevalence", "ppv_at_prevalence",
        "npv_at_prevalence"]).fillna(0.5)
    overall = dict.fromkeys(("mean_auc", "mean_auc_low", "mean_auc_high",
                             "mean_average_precision", "mean_ece"), 0.5)
    report = render_report(table, overall, result, details={}, images={})
    section = report[report.index("## Subgroups"):]
    for heading in ("### sex", "### age", "### view", "### ROC AUC per class and subgroup"):
        assert heading in section
    assert "| unknown" in section and "least 15 patients have a positive image" in section
    gap = result.gaps.loc[("view", "mean_auc")]
    assert f"mean ROC AUC {gap['higher']} − {gap['lower']} = {gap['gap']:.3f}" in section


@pytest.mark.parametrize("key, value, message", [
    ("subgroup_age_bands", [60, 40], "must be a non-empty list of increasing integer ages"),
    ("subgroup_age_bands", [], "must be a non-empty list"),
    ("subgroup_age_bands", [40, 200], r"in \[1, 120\]"),
    ("subgroup_age_bands", [40.5], "integer ages"),
    ("subgroup_age_bands", 40, "list"),
    ("subgroup_min_patients", 0, r"evaluate\.subgroup_min_patients = 0 must be an integer in \[1, inf\]"),
])
def test_bad_subgroup_params_are_named(key, value, message):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    bad = copy.deepcopy(params)
    bad["evaluate"][key] = value
    with pytest.raises(ParamsError, match=message):
        validate(bad, ["evaluate"])


def test_a_threshold_equal_to_the_score_calls_a_finding():
    groups, truth, scores, patients = hand_study()
    # F's missed image scores 0.4: at threshold 0.4 it is called, as operating points do.
    result = subgroup_results(groups, truth, scores, patients, 0.4, min_patients=2,
                              resamples=10, seed=0, progress=False)
    assert result.summary.loc[("sex", "F"), "underdiagnosis"] == 0


def test_the_unknown_group_is_reported_but_never_one_side_of_a_gap():
    groups, truth, scores, patients = hand_study()
    # Two more images of an unknown sex, both with a finding and both missed: rate 1.
    table = images(["F"] * 4 + ["M"] * 4 + [None, "?"], [30] * 10, ["PA"] * 10)
    truth = np.vstack([truth, np.eye(2, 14, ATELECTASIS)])
    scores = np.vstack([scores, np.full((2, 14), 0.1)])
    result = subgroup_results(subgroup_table(table, [40, 60, 80]), truth, scores,
                              np.append(patients, [8, 9]), 0.45, min_patients=2,
                              resamples=10, seed=0, progress=False)
    assert result.summary.loc[("sex", UNKNOWN), "underdiagnosis"] == 1
    assert result.gaps.loc[("sex", "underdiagnosis")][["higher", "lower", "gap"]].tolist() \
        == ["F", "M", 0.5]
