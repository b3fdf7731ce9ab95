"""Patient-level splitting, the leakage gate and the official table at full scale."""
import numpy as np
import pandas as pd
import pytest

from chestxray.acquire.cohort import sample_study
from chestxray.data.split import (
    LeakageError, SplitError, check_no_leakage, read_split_file, select_split, split_official,
    split_patients, split_positive_patients,
)
from chestxray.nih.labels import FINDINGS
from chestxray.nih.layout import LabelTableError

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


def labels_of(findings, patients=None):
    """A label table of one image per finding string; patient i + 1 unless ``patients``."""
    return pd.DataFrame({"Image Index": [f"{i:08d}_000.png" for i in range(len(findings))],
                         "Finding Labels": findings,
                         "Patient ID": patients or list(range(1, len(findings) + 1))})


def test_a_table_without_any_finding_is_refused():
    labels = labels_of(["No Finding"] * 40)
    message = (r"^Data_Entry_2017_v2020\.csv: none of its 40 images shows any of the 14 findings "
               r"\(all are 'No Finding'\): no classifier can be trained on it$")
    with pytest.raises(SplitError, match=message):
        split_patients(labels, 0.2, 0.1, seed=0, min_positive_patients=1)
    with pytest.raises(SplitError, match=message):
        split_official(labels, labels["Image Index"][:5], 0.1, seed=0, min_positive_patients=1)
    with pytest.raises(SplitError, match="Data_Entry_2017_v2020.csv: no images"):
        split_patients(labels_of([]), 0.2, 0.1, seed=0, min_positive_patients=1)


def test_one_class_with_positives_is_split():
    splits = split_patients(labels_of(["Mass"] * 6 + ["No Finding"] * 34), 0.2, 0.1, seed=0,
                            min_positive_patients=1)
    assert set(splits) == {"train", "val", "test"}


@pytest.mark.parametrize("split, message", [
    (lambda labels: split_patients(labels.assign(**{"Patient ID": [1, 2] * 10}), 0.2, 0.1,
                                   seed=0, min_positive_patients=0),
     r"^split\.test_fraction \+ split\.val_fraction = 0\.2 \+ 0\.1: the train split would be "
     r"empty \(20 images of 2 patients\); change it or use more patients$"),
    (lambda labels: split_official(labels, [], 0.1, seed=0, min_positive_patients=1),
     r"^test_list\.txt: the test split would be empty"),
    (lambda labels: split_official(labels, labels["Image Index"], 0.1, seed=0,
                                   min_positive_patients=1),
     r"^split\.val_fraction = 0\.1 with test_list\.txt: the train split would be empty"),
], ids=["two patients", "official test", "official train"])
def test_a_split_that_would_be_empty_is_refused(split, message):
    with pytest.raises(SplitError, match=message):
        split(labels_of(["Mass", "No Finding"] * 10))


def test_a_tiny_fraction_still_gets_one_patient():
    labels = labels_of(["Mass", "No Finding", "No Finding"] * 20,
                       patients=[1 + i // 2 for i in range(60)])
    splits = split_patients(labels, 0.2, 0.01, seed=0, min_positive_patients=0)
    assert labels["Patient ID"][splits == "val"].nunique() == 1


def test_a_split_file_of_another_table_is_one_line(tmp_path):
    labels = labels_of(["Mass", "No Finding"] * 10)
    path = tmp_path / "split.csv"
    path.write_text("Image Index,Patient ID,split\nother.png,1,train\n")
    with pytest.raises(SplitError, match=r"outputs/split\.csv: none of the images of the train "
                                         r"split is in Data_Entry_2017_v2020\.csv; run the split "
                                         r"stage again"):
        select_split(labels, read_split_file(path), "train")
    path.write_text("Image Index,split\nother.png,train\n")
    with pytest.raises(LabelTableError, match=r"missing columns \['Patient ID'\]"):
        read_split_file(path)
    path.write_bytes(b"")
    with pytest.raises(LabelTableError, match="cannot read split table"):
        read_split_file(path)
