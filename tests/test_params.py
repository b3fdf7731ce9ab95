"""params.yaml validation: one message naming the key and the allowed values."""
import copy

import pytest
import yaml

from chestxray.core.params import SCHEMA, ParamsError, load_params, validate

from conftest import REPO


@pytest.fixture(scope="module")
def params():
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_repository_params_are_valid(params):
    validate(params, SCHEMA)


@pytest.mark.parametrize("section, key, value, message", [
    ("train", "epochs", -1, r"train\.epochs = -1 must be an integer in \[1, 10000\]"),
    ("download", "source", "ftp", r"download\.source = 'ftp' must be one of 'embedded', 'nih'"),
    ("train", "image_size", 100, r"train\.image_size = 100 must be a multiple of 32"),
    ("train", "lr", 0, r"train\.lr = 0 must be a number in \(0, 10\]"),
    ("train", "augment_flip", "yes", r"train\.augment_flip = 'yes' must be true or false"),
    ("split", "test_fraction", 1.5, r"split\.test_fraction = 1\.5 must be a number"),
])
def test_bad_values_are_named(params, section, key, value, message):
    bad = copy.deepcopy(params)
    bad[section][key] = value
    with pytest.raises(ParamsError, match=message):
        validate(bad, [section])


def test_missing_key_and_section_are_named(params):
    bad = copy.deepcopy(params)
    del bad["train"]["batch_size"]
    with pytest.raises(ParamsError, match=r"missing key 'train\.batch_size'"):
        validate(bad, ["train"])
    with pytest.raises(ParamsError, match="missing section 'gradcam'"):
        validate({}, ["gradcam"])


def test_unreadable_file_is_reported(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train: [unclosed")
    with pytest.raises(ParamsError, match="cannot read parameters"):
        load_params("train", path=path)
