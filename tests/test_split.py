"""Patient-level splitting, the leakage gate and the official table at full scale."""
import numpy as np
import pandas as pd
import pytest

from chestxray.acquire.cohort import sample_study
from chestxray.data.split import (
    LeakageError, check_no_leakage, split_official, split_patients, split_positive_patients,
)
from chestxray.nih.labels import FINDINGS

from conftest import shared_file


@pytest.fixture(scope="module")
def study():
    labels, _, _ = sample_study(400, seed=3, min_positive_patients=8)
    return labels


def test_no_patient_crosses_splits_and_fractions_hold(study):
    splits = split_patients(study, 0.2, 0.1, seed=1, min_positive_patients=3)
    check_no_leakage(study["Patient ID"], splits)
    per_patient = pd.Series(splits).groupby(study["Patient ID"].to_numpy()).nunique()
    assert per_patient.max() == 1
    shares = pd.Series(splits).value_counts(normalize=True)
    assert shares["test"] == pytest.approx(0.2, abs=0.03)
    assert shares["val"] == pytest.approx(0.1, abs=0.03)


def test_held_out_splits_get_positive_patients_of_every_class(study):
    splits = split_patients(study, 0.2, 0.1, seed=1, min_positive_patients=2)
    positives = split_positive_patients(study, splits)
    assert (positives["test"] >= 2).all(), positives
    assert (positives["val"] >= 2).all(), positives
    assert (positives["train"] >= positives["test"]).all()


def test_same_seed_same_split_other_seed_other_split(study):
    first = split_patients(study, 0.2, 0.1, seed=7, min_positive_patients=2)
    again = split_patients(study, 0.2, 0.1, seed=7, min_positive_patients=2)
    other = split_patients(study, 0.2, 0.1, seed=8, min_positive_patients=2)
    assert first.tobytes() == again.tobytes()
    assert (first != other).any()


def test_leakage_gate_names_the_shared_patient():
    with pytest.raises(LeakageError, match="Patient ID 7"):
        check_no_leakage([5, 7, 7, 9], ["train", "train", "test", "val"])


def test_official_strategy_keeps_the_given_test_images(study):
    test_patients = study["Patient ID"].drop_duplicates().iloc[:60]
    test_images = study.loc[study["Patient ID"].isin(test_patients), "Image Index"]
    splits = split_official(study, test_images, 0.1, seed=0, min_positive_patients=2)
    assert set(study.loc[splits == "test", "Image Index"]) == set(test_images)
    check_no_leakage(study["Patient ID"], splits)
    assert (splits == "val").sum() > 0


def test_full_official_table_splits_cleanly():
    table = pd.read_csv(shared_file("nih-metadata", "Data_Entry_2017_v2020.csv.gz"))
    splits = split_patients(table, 0.2, 0.1, seed=42, min_positive_patients=25)
    check_no_leakage(table["Patient ID"], splits)
    positives = split_positive_patients(table, splits)
    assert len(table) == 112_120 and table["Patient ID"].nunique() == 30_805
    assert (positives >= 25).all().all(), positives
    assert list(positives.index) == list(FINDINGS)
    assert np.isin(splits, ["train", "val", "test"]).all()
