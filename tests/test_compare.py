"""Base against head: paired and unpaired bootstrap intervals of the AUC change."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from chestxray.evaluation.compare import (
    MEAN, PredictionsFileError, ScoredTest, auc_changes, changes_markdown, main, read_scored_test,
)
from chestxray.evaluation.metrics import patient_resample_counts
from chestxray.nih.labels import FINDINGS


def scored_test(patients=60, images_per_patient=2, noise=1.0, seed=0, truth=None):
    """A test split: findings in 30% of images, scores ranking positives higher with noise."""
    rng = np.random.default_rng(seed)
    patient_ids = np.repeat(np.arange(patients).astype(str), images_per_patient)
    if truth is None:
        truth = (rng.random((len(patient_ids), len(FINDINGS))) < 0.3).astype(np.float32)
    scores = truth + rng.normal(0, noise, truth.shape)
    images = np.array([f"{index:08d}_000.png" for index in range(len(patient_ids))])
    return ScoredTest(images=images, patients=patient_ids, truth=truth, scores=scores)


def test_identical_predictions_change_by_exactly_zero():
    side = scored_test()
    table, paired = auc_changes(side, side, resamples=200, seed=0)
    assert paired
    assert (table[["change", "low", "high"]].to_numpy() == 0).all()
    assert set(table["verdict"]) == {"no change"}


def test_paired_change_and_interval_equal_a_hand_computed_bootstrap():
    base = scored_test(seed=1)
    head = ScoredTest(base.images, base.patients, base.truth,
                      base.scores + np.random.default_rng(9).normal(0, 0.5, base.scores.shape))
    table, paired = auc_changes(base, head, resamples=50, seed=3)
    assert paired
    # The same patients are drawn for both sides, as patient_resample_counts draws them.
    counts = patient_resample_counts(base.patients, 50, np.random.default_rng(3))
    for column, finding in enumerate(FINDINGS):
        truth = base.truth[:, column]
        expected = [roc_auc_score(truth, head.scores[:, column], sample_weight=weights)
                    - roc_auc_score(truth, base.scores[:, column], sample_weight=weights)
                    for weights in counts]
        row = table.loc[finding]
        assert row["change"] == pytest.approx(roc_auc_score(truth, head.scores[:, column])
                                              - roc_auc_score(truth, base.scores[:, column]))
        assert (row["low"], row["high"]) == pytest.approx(
            tuple(np.percentile(expected, [2.5, 97.5])))
    per_resample_means = [
        np.mean([roc_auc_score(base.truth[:, c], head.scores[:, c], sample_weight=weights)
                 - roc_auc_score(base.truth[:, c], base.scores[:, c], sample_weight=weights)
                 for c in range(len(FINDINGS))]) for weights in counts]
    assert (table.loc[MEAN, "low"], table.loc[MEAN, "high"]) == pytest.approx(
        tuple(np.percentile(per_resample_means, [2.5, 97.5])))


def test_a_constructed_improvement_has_an_interval_above_zero():
    base = scored_test(noise=1.2, seed=2)
    sharper = ScoredTest(base.images, base.patients, base.truth,
                         base.truth + (base.scores - base.truth) * 0.5)
    table, _ = auc_changes(base, sharper, resamples=300, seed=0)
    assert table.loc[MEAN, "low"] > 0 and table.loc[MEAN, "verdict"] == "higher"
    assert (table.loc[list(FINDINGS), "low"] > 0).all()
    reversed_table, _ = auc_changes(sharper, base, resamples=300, seed=0)
    assert reversed_table.loc[MEAN, "high"] < 0
    assert reversed_table.loc[MEAN, "verdict"] == "lower"


def test_pairing_narrows_the_interval_of_a_small_change():
    """The point of pairing: the same small effect is within noise unpaired, not paired."""
    base = scored_test(patients=150, noise=1.0, seed=4)
    head = ScoredTest(base.images, base.patients, base.truth,
                      base.truth + (base.scores - base.truth) * 0.97)
    paired_table, paired = auc_changes(base, head, resamples=300, seed=0)
    renamed = ScoredTest(np.array([f"x{name}" for name in head.images]), head.patients,
                         head.truth, head.scores)
    unpaired_table, unpaired = auc_changes(base, renamed, resamples=300, seed=0)
    assert paired and not unpaired
    assert paired_table.loc[MEAN, "change"] == pytest.approx(unpaired_table.loc[MEAN, "change"])
    assert paired_table.loc[MEAN, "verdict"] == "higher"
    assert unpaired_table.loc[MEAN, "verdict"] == "within noise"
    paired_width = paired_table.loc[MEAN, "high"] - paired_table.loc[MEAN, "low"]
    unpaired_width = unpaired_table.loc[MEAN, "high"] - unpaired_table.loc[MEAN, "low"]
    assert paired_width < unpaired_width / 10


def test_a_class_without_positives_on_one_side_is_undefined_and_left_out_of_the_mean():
    base = scored_test(seed=5)
    truth = base.truth.copy()
    truth[:, FINDINGS.index("Hernia")] = 0
    head = scored_test(seed=6, truth=truth)
    table, paired = auc_changes(base, head, resamples=100, seed=0)
    assert not paired
    hernia = table.loc["Hernia"]
    assert hernia["verdict"] == "undefined" and np.isnan(hernia[["change", "low"]].astype(float)).all()
    defined = [finding for finding in FINDINGS if finding != "Hernia"]
    assert table.loc[MEAN, "change"] == pytest.approx(
        table.loc[defined, "head"].mean() - table.loc[defined, "base"].mean())


def write_predictions_file(path, side):
    frame = pd.DataFrame(side.scores, columns=list(FINDINGS))
    frame.insert(0, "Image Index", side.images)
    frame.insert(1, "Patient ID", side.patients)
    frame.insert(2, "Finding Labels", ["|".join(f for f, v in zip(FINDINGS, row) if v)
                                       or "No Finding" for row in side.truth])
    frame.sample(frac=1, random_state=0).to_csv(path, index=False)


def test_the_command_line_reads_two_prediction_files_in_any_row_order(tmp_path, capsys):
    base, head = scored_test(seed=7), scored_test(seed=7)
    write_predictions_file(tmp_path / "base.csv", base)
    write_predictions_file(tmp_path / "head.csv", head)
    assert read_scored_test(tmp_path / "base.csv").images.tolist() == sorted(base.images)
    main([str(tmp_path / "base.csv"), str(tmp_path / "head.csv"), "--resamples", "50"])
    markdown = capsys.readouterr().out
    assert "| **mean AUC** |" in markdown and "+0.000 [+0.000, +0.000] | no change |" in markdown
    assert "paired" in markdown and len(markdown.splitlines()) == 2 + 1 + len(FINDINGS) + 2
    table, paired = auc_changes(base, head, 10, 0)
    assert changes_markdown(table, paired).splitlines()[0].startswith("| Test AUC |")


@pytest.mark.parametrize("damage, message", [
    (lambda frame: frame.drop(columns=["Patient ID"]), "no column Patient ID"),
    (lambda frame: frame.assign(Edema="high"), "not a number"),
    (lambda frame: frame.assign(**{"Finding Labels": "Flu"}), "Flu"),
])
def test_a_predictions_file_that_cannot_be_compared_is_named(tmp_path, damage, message):
    write_predictions_file(tmp_path / "good.csv", scored_test())
    damage(pd.read_csv(tmp_path / "good.csv")).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(PredictionsFileError, match=message) as raised:
        read_scored_test(tmp_path / "bad.csv")
    assert str(tmp_path / "bad.csv") in str(raised.value)
