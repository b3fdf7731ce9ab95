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
    ("train", "epochs", -1, r"train\.epochs = -1 must be an integer in \[0, 10000\]"),
    ("download", "source", "ftp", r"download\.source = 'ftp' must be one of 'embedded', 'nih'"),
    ("train", "image_size", 100, r"train\.image_size = 100 must be a multiple of 32"),
    ("train", "lr", 0, r"train\.lr = 0 must be a number in \(0, 10\]"),
    ("train", "augment_flip", "yes", r"train\.augment_flip = 'yes' must be true or false"),
    ("split", "test_fraction", 1.5, r"split\.test_fraction = 1\.5 must be a number"),
    ("train", "resample", "smote", r"^params\.yaml: train\.resample = 'smote' must be one of "
                                   r"'none', 'oversample', 'undersample'$"),
    ("train", "steps_per_epoch", -1, r"^params\.yaml: train\.steps_per_epoch = -1 must be an "
                                     r"integer in \[0, 1000000\]$"),
    ("train", "steps_per_epoch", 2.5, r"train\.steps_per_epoch = 2\.5 must be an integer"),
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


@pytest.mark.parametrize("section, key, message", [
    ("train", "epoch", r"unknown key 'train\.epoch' \(did you mean 'train\.epochs'\?\)"),
    ("split", "val_fractoin",
     r"unknown key 'split\.val_fractoin' \(did you mean 'split\.val_fraction'"),
    ("stats", "colour", r"unknown key 'stats\.colour'$"),
    ("train", 7, r"unknown key 'train\.7'"),
])
def test_unknown_keys_are_named_with_the_closest_known_key(params, section, key, message):
    bad = copy.deepcopy(params)
    bad[section][key] = 50
    with pytest.raises(ParamsError, match=message):
        validate(bad, [section])


def test_a_misspelt_section_is_suggested(params):
    bad = copy.deepcopy(params)
    bad["trian"] = bad.pop("train")
    with pytest.raises(ParamsError, match=r"missing section 'train' \(did you mean 'trian'\?\)"):
        validate(bad, ["train"])


def test_presets_and_the_tests_params_validate(params):
    from repos import TINY_PARAMS
    with_tiny = copy.deepcopy(params)
    for dotted, value in TINY_PARAMS.items():
        section, key = dotted.split(".")
        with_tiny[section][key] = value
    validate(with_tiny, SCHEMA)
    for preset_file in sorted((REPO / "presets").glob("*.yaml")):
        preset = yaml.safe_load(preset_file.read_text())
        merged = copy.deepcopy(params)
        for section, values in preset.items():
            merged[section].update(values)
        validate(merged, SCHEMA)


@pytest.mark.parametrize("test_fraction, val_fraction", [(0.9, 0.5), (0.5, 0.5)])
def test_fractions_leaving_no_training_split_are_refused(params, test_fraction, val_fraction):
    bad = copy.deepcopy(params)
    bad["split"].update(test_fraction=test_fraction, val_fraction=val_fraction)
    with pytest.raises(ParamsError, match=(
            rf"^params\.yaml: split\.test_fraction \+ split\.val_fraction = {test_fraction} \+ "
            rf"{val_fraction} must be below 1: the images left are the training split$")):
        validate(bad, ["split"])


@pytest.mark.parametrize("text, message", [
    ("- train\n- split\n",
     r"the top level must be a mapping of sections .*, not \['train', 'split'\]"),
    ("42\n", "the top level must be a mapping of sections .*, not 42"),
    ("split: [1, 2]\n", r"section 'split' must be a mapping of keys, not \[1, 2\]"),
    ("", "missing section 'split'"),
], ids=["list", "scalar", "section list", "empty"])
def test_params_of_the_wrong_shape_are_one_line(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=message) as caught:
        load_params("split", path=path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_utf8_with_bom_and_utf16_are_read(tmp_path, encoding):
    path = tmp_path / "params.yaml"
    path.write_bytes((REPO / "params.yaml").read_text().encode(encoding))
    assert load_params("split", path=path)["split"]["seed"] == 42


@pytest.mark.parametrize("content, message", [
    ("# café\n".encode("latin-1") + b"split: {}\n",
     r"cannot read parameters \(not UTF-8 text \(invalid continuation byte at byte 5\); "
     r"save it as UTF-8\)$"),
    (b"train: [unclosed", r"cannot read parameters \(expected ',' or '\]', but got '<stream end>' "
                          r"at line 1, column 17\)$"),
    (b"train:\n  epochs: 1" + b"0" * 5000, "cannot read parameters .*4300 digits"),
    (b"[" * 5000 + b"]" * 5000, r"cannot read parameters \(maximum recursion depth exceeded"),
    (b"train:\n  epochs: \x07\n", r"cannot read parameters \(character U\+0007 at character "
                                  r"17: special characters are not allowed\)$"),
], ids=["latin-1", "unclosed", "5000 digits", "5000 levels", "control character"])
def test_unreadable_yaml_is_one_line(tmp_path, content, message):
    path = tmp_path / "params.yaml"
    path.write_bytes(content)
    with pytest.raises(ParamsError, match=message) as caught:
        load_params("train", path=path)
    assert "\n" not in str(caught.value)


def test_huge_values_are_shown_short(params):
    bad = copy.deepcopy(params)
    bad["train"]["weights"] = list(range(10_000))
    with pytest.raises(ParamsError) as caught:
        validate(bad, ["train"])
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize("text, key", [
    ("train:\n  epochs: 3\n  epochs: 50\n", "train.epochs"),
    ("train:\n  epochs: 3\ntrain:\n  epochs: 50\n", "train"),
])
def test_a_key_given_twice_is_refused(tmp_path, text, key):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError) as error:
        load_params("train", path=path)
    assert str(error.value) == f"{path}: key '{key}' appears twice; keep one"
