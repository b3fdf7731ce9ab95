"""Published checkpoints: train.weights naming a full classifier (.keras, or legacy .h5 weights
as the course ships), its head mapped by class name, the refusals, and train.epochs 0."""
import copy
import json
import re

import h5py
import keras
import numpy as np
import pytest
import yaml
from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

from chestxray.core.params import ParamsError, validate
from chestxray.model.backbones import BACKBONES
from chestxray.model.network import build_model
from chestxray.model.pretrained import WeightsFileError, head_classes, initial_model
from chestxray.model.saved import load_model, probabilities
from chestxray.nih.labels import FINDINGS

from conftest import REPO, assert_predict_gives_the_evaluated_probabilities, stage_process
from repos import set_params

SIZE = 32
SMALL = "mobilenetv3small"
# The class order of the course's checkpoint trained on all of ChestX-ray14.
COURSE_ORDER = ["Cardiomegaly", "Emphysema", "Effusion", "Hernia", "Infiltration", "Mass",
                "Nodule", "Atelectasis", "Pneumothorax", "Pleural_Thickening", "Pneumonia",
                "Fibrosis", "Edema", "Consolidation"]


@pytest.fixture(scope="module")
def defaults():
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture
def params(defaults):
    return dict(defaults["train"], image_size=SIZE, backbone=SMALL)


def no_top(backbone=SMALL):
    """The registry ``backbone``'s Keras application without its top, on 3-channel input."""
    entry = BACKBONES[backbone]
    switches = {"include_preprocessing": False} if entry.preprocessing_switch else {}
    return getattr(keras.applications, entry.application)(
        include_top=False, weights=None, input_shape=(SIZE, SIZE, 3), **switches)


def course_like(backbone=SMALL, classes=14, seed=0):
    """A classifier built as the course builds its own: the no-top application on 3-channel
    input, global average pooling, Dense(classes, sigmoid); random head, bias included."""
    keras.utils.set_random_seed(seed)
    base = no_top(backbone)
    head = keras.layers.Dense(classes, activation="sigmoid")
    model = keras.Model(base.input, head(keras.layers.GlobalAveragePooling2D()(base.output)))
    head.bias.assign(np.random.default_rng(seed).normal(size=classes).astype(np.float32))
    return model


def shuffled_head(model, order):
    """``model`` (outputs in ``FINDINGS``' order) with its head's outputs put in ``order``."""
    columns = [FINDINGS.index(name) for name in order]
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([kernel[:, columns], bias[columns]])
    return model


def save_checkpoint(model, path):
    """Save ``model`` whole (``.keras``) or as legacy ``.h5`` weights, as ``path`` ends.

    Keras 3's ``save_weights`` writes only ``.weights.h5``; its legacy writer writes the
    Keras 2 ``.h5`` format that the course's checkpoint is in.
    """
    if path.suffix == ".keras":
        model.save(path)
    else:
        with h5py.File(path, "w") as handle:
            save_weights_to_hdf5_group(handle, model)
    return path


def images(count=4, seed=1):
    return np.random.default_rng(seed).normal(size=(count, SIZE, SIZE, 1)).astype(np.float32)


def predict_rgb(model, gray):
    """A course-like model's probabilities for gray images, repeated to three channels."""
    return probabilities(model, np.repeat(gray, 3, axis=-1))


def builder(params):
    return lambda weights: build_model(params["image_size"], weights, backbone=params["backbone"])


def start(params, weights, **overrides):
    return initial_model(builder(params), dict(params, weights=str(weights), **overrides))


def assert_same_per_class_name(mapped, checkpoint, order):
    """Output j of the checkpoint (class ``order[j]``) is our output for that class, exactly."""
    for column, name in enumerate(order):
        np.testing.assert_array_equal(mapped[:, FINDINGS.index(name)], checkpoint[:, column],
                                      err_msg=name)


def test_a_dense_head_tells_a_classifier_from_no_top_weights():
    no_top_ends = [[(3, 3, 3, 16), (16,), (16,), (16,), (16,)],  # batch normalisation
                   [(96, 768), (768,), (768,), (768,)]]  # layer normalisation (ConvNeXt)
    assert [head_classes(shapes) for shapes in no_top_ends] == [None, None]
    assert head_classes([(3, 3, 3, 16), (16,), (1024, 14), (14,)]) == 14
    assert head_classes([(1024, 15), (15,)]) == 15


def test_a_keras_checkpoint_with_a_shuffled_head_maps_back_by_class_name(params, tmp_path):
    original = course_like()
    expected = predict_rgb(original, images())
    checkpoint = shuffled_head(original, COURSE_ORDER)
    in_course_order = predict_rgb(checkpoint, images())
    assert not np.array_equal(in_course_order, expected)
    path = save_checkpoint(checkpoint, tmp_path / "course.keras")
    model, said = start(params, path, weights_findings=COURSE_ORDER)
    mapped = probabilities(model, images())
    assert_same_per_class_name(mapped, in_course_order, COURSE_ORDER)
    np.testing.assert_array_equal(mapped, expected)
    assert said == (f"train.weights: {path}: a full {SMALL} classifier checkpoint (.keras model), "
                    "its head mapped from train.weights_findings")


def test_the_course_legacy_h5_densenet121_classifier_loads_and_maps_by_class_name(params,
                                                                                  tmp_path):
    checkpoint = course_like("densenet121")
    path = save_checkpoint(checkpoint, tmp_path / "pretrained_model.h5")
    model, said = start(dict(params, backbone="densenet121"), path,
                        weights_findings=COURSE_ORDER)
    assert_same_per_class_name(probabilities(model, images()), predict_rgb(checkpoint, images()),
                               COURSE_ORDER)
    assert "a full densenet121 classifier checkpoint (legacy .h5 weights)" in said


def test_a_checkpoint_in_this_pipelines_order_needs_no_weights_findings(params, tmp_path):
    checkpoint = course_like()
    path = save_checkpoint(checkpoint, tmp_path / "ours.h5")
    model, said = start(params, path)
    np.testing.assert_array_equal(probabilities(model, images()), predict_rgb(checkpoint, images()))
    assert said.endswith("its head mapped from this pipeline's order")


def test_a_legacy_no_top_file_still_goes_into_the_backbone(params, tmp_path):
    # Keras' own ImageNet no-top files are legacy .h5 too.
    source = no_top()
    kernel = source.get_layer("expanded_conv_10_project").kernel
    kernel.assign(np.full(kernel.shape, 0.25, dtype=np.float32))
    path = save_checkpoint(source, tmp_path / "no_top.h5")
    model, said = start(params, path)
    assert said == f"train.weights: {path}: no-top weights of the {SMALL} backbone"
    np.testing.assert_array_equal(
        model.get_layer("expanded_conv_10_project").get_weights()[0], 0.25)
    no_head = (f"train.weights: {path} is no classifier checkpoint (a .keras model or legacy "
               ".h5 weights ending in a dense head), ")
    for overrides, problem in [
            ({"weights_findings": COURSE_ORDER}, "so it has no head for train.weights_findings to "
                                                 "order: set train.weights_findings: []"),
            ({"epochs": 0}, "and train.epochs = 0 (no training) needs one")]:
        with pytest.raises(WeightsFileError) as error:
            start(params, path, **overrides)
        assert str(error.value) == no_head + problem


@pytest.mark.parametrize("classes, suffix", [(15, ".keras"), (3, ".h5")])
def test_a_head_of_another_class_count_is_refused_in_one_line(params, tmp_path, classes, suffix):
    path = save_checkpoint(course_like(classes=classes), tmp_path / f"other{suffix}")
    with pytest.raises(WeightsFileError) as error:
        start(params, path)
    assert str(error.value) == (f"train.weights: {path} has a {classes}-class head; this pipeline "
                                "needs 14, one per finding (train.weights_findings gives their "
                                "order)")


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_a_classifier_of_another_backbone_is_refused_in_one_line(params, tmp_path, suffix):
    path = save_checkpoint(course_like(SMALL), tmp_path / f"small{suffix}")
    with pytest.raises(WeightsFileError, match=(
            rf"^train.weights: {path} is a classifier of another architecture than "
            r"train.backbone mobilenetv3large: \d+ weights where it needs \d+$")):
        start(dict(params, backbone="mobilenetv3large"), path)


@pytest.mark.parametrize("overrides, message", [
    ({"weights_findings": COURSE_ORDER[1:] + ["Atelectasis", "Hernai"]},
     r"train\.weights_findings = .* must name each of the 14 findings once, in the order of the "
     r"checkpoint's head \(\[\] = this pipeline's order\): missing 'Cardiomegaly'; unknown "
     r"'Hernai'; repeated 'Atelectasis'$"),
    ({"weights_findings": COURSE_ORDER[:-1]}, r"missing 'Consolidation'$"),
    ({"weights_findings": "Cardiomegaly"}, r"must be a list of the 14 finding names"),
    ({"weights_findings": COURSE_ORDER, "weights": "imagenet"},
     r"train\.weights_findings orders the head of a classifier checkpoint, and train\.weights = "
     r"'imagenet' has none: set it to \[\]$"),
    ({"epochs": 0}, r"train\.epochs = 0 \(no training\) needs train\.weights to be a full "
                    r"classifier checkpoint file, not 'none'$"),
    *[({"weights": path}, rf"train\.weights = '{re.escape(path)}' must be 'imagenet', 'none' or "
                          r"a file under weights/, train's DVC dependency, so that a changed "
                          r"file reruns train: move the file there$")
      for path in ("pretrained_model.h5", "/models/pretrained_model.h5",
                   "weights/../pretrained_model.h5", "weights")],
], ids=["not a permutation", "one missing", "not a list", "with imagenet", "epochs 0 with none",
        "outside weights/", "absolute", "out of weights/ by ..", "the folder itself"])
def test_weights_findings_and_epochs_0_are_checked_with_the_params(defaults, overrides, message):
    bad = copy.deepcopy(defaults)
    bad["train"].update(overrides)
    with pytest.raises(ParamsError, match=message) as error:
        validate(bad, ["train"])
    assert "\n" not in str(error.value)


def test_a_checkpoint_file_in_the_course_order_without_training_is_valid(defaults):
    course = copy.deepcopy(defaults)
    course["train"].update(weights="weights/pretrained_model.h5", weights_findings=COURSE_ORDER, epochs=0)
    validate(course, ["train"])


@pytest.mark.parametrize("suffix, problem", [
    (".keras", r"not a \.keras model archive \(damaged, truncated or another kind of file\)$"),
    (".h5", r"damaged Keras weights file \(.*truncated file.*\)$")])
def test_a_truncated_checkpoint_is_one_line(params, tmp_path, suffix, problem):
    path = save_checkpoint(course_like(), tmp_path / f"course{suffix}")
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(WeightsFileError, match=f"^train.weights: {path}: {problem}") as error:
        start(params, path)
    assert "\n" not in str(error.value)


def test_the_train_stage_with_epochs_0_publishes_the_checkpoint_as_the_model(workspace):
    stage_process("stats", workspace, check=True)
    checkpoint = shuffled_head(course_like(), COURSE_ORDER)
    (workspace / "weights").mkdir()
    save_checkpoint(checkpoint, workspace / "weights" / "pretrained_model.h5")
    set_params(workspace, {"train.weights": "weights/pretrained_model.h5", "train.epochs": 0,
                           "train.weights_findings": COURSE_ORDER, "train.backbone": SMALL,
                           "train.image_size": SIZE, "train.normalization": "samplewise"})
    result = stage_process("train", workspace, check=True)
    assert "INFO train.weights: weights/pretrained_model.h5: a full mobilenetv3small classifier " \
        "checkpoint (legacy .h5 weights), its head mapped from train.weights_findings" \
        in result.stderr
    assert result.stdout.startswith("no training (train.epochs = 0): checkpoint "
                                    "weights/pretrained_model.h5 mapped to this pipeline's "
                                    "class order (val AUC ")
    model, preprocessing = load_model(workspace / "outputs" / "model.keras")
    assert (preprocessing.image_size, preprocessing.normalization) == (SIZE, "samplewise")
    assert_same_per_class_name(probabilities(model, images()), predict_rgb(checkpoint, images()),
                               COURSE_ORDER)
    # The run's one step: the checkpoint's val scores, the metrics and plots DVC expects.
    metrics = json.loads((workspace / "metrics" / "train" / "metrics.json").read_text())
    assert set(metrics) == {"eval", "step"} and metrics["step"] == 0
    assert set(metrics["eval"]) == {"loss", "auc"}
    assert f"(val AUC {metrics['eval']['auc']:.3f})" in result.stdout
    plots = workspace / "metrics" / "train" / "plots" / "metrics" / "eval"
    assert sorted(path.name for path in plots.iterdir()) == ["auc.tsv", "loss.tsv"]
    # Evaluated as published, and predict, told nothing, normalises as evaluate did.
    stage_process("evaluate", workspace, check=True)
    assert_predict_gives_the_evaluated_probabilities(workspace)
