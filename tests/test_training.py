"""Training loop: phases, learning-rate control, checkpoints, resume, NaN guard, devices."""
import json
import math
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from dvclive import Live
from PIL import Image

from chestxray.core.errors import PipelineError
from chestxray.core.params import validate
from chestxray.data.dataset import TrainingBatches, image_dataset
from chestxray.data.preprocessing import Preprocessing
from chestxray.model import callbacks as callbacks_module
from chestxray.model import training
from chestxray.model.callbacks import (
    EpochCheckpoint, LearningRateControl, NonFiniteLossError, StopOnNonFiniteLoss, new_state,
    start_phase,
)
from chestxray.model.distribution import choose_strategy
from chestxray.model.losses import WeightedBinaryCrossentropy
from chestxray.nih.labels import FINDINGS, classes_with_both_labels

from conftest import REPO

SIZE, IMAGES, BATCH = 32, 8, 4


@pytest.fixture
def params():
    defaults = yaml.safe_load((REPO / "params.yaml").read_text())["train"]
    return dict(defaults, image_size=SIZE, epochs=2, batch_size=BATCH, seed=0)


@pytest.fixture
def stats():
    half = {name: 0.5 for name in FINDINGS}
    return {"pixel_mean": 0.0, "pixel_std": 1.0, "pos_weights": half, "neg_weights": half}


@pytest.fixture
def data():
    """Eight random images, every class both positive and negative."""
    rng = np.random.default_rng(0)
    images = rng.normal(size=(IMAGES, SIZE, SIZE, 1)).astype(np.float32)
    labels = (np.arange(IMAGES)[:, None] + np.arange(14)[None]) % 2
    return tf.data.Dataset.from_tensor_slices((images, labels.astype(np.float32))).batch(BATCH)


def tiny_model():
    """A few-parameter stand-in for DenseNet121 with the same input, head name and output."""
    inputs = keras.Input((SIZE, SIZE, 1))
    features = keras.layers.Conv2D(2, 3, strides=4, name="conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    outputs = keras.layers.Dense(14, activation="sigmoid", dtype="float32",
                                 name="predictions")(pooled)
    return keras.Model(inputs, outputs)


def other_tiny_model():
    """``tiny_model`` with three convolution filters instead of two."""
    inputs = keras.Input((SIZE, SIZE, 1))
    features = keras.layers.Conv2D(3, 3, strides=4, name="conv")(inputs)
    outputs = keras.layers.Dense(14, activation="sigmoid", name="predictions")(
        keras.layers.GlobalAveragePooling2D()(features))
    return keras.Model(inputs, outputs)


class EveryEpoch:
    """train()'s input (the interface of TrainingBatches) over one dataset that every epoch
    reads again, as with train.resample none; it logs no prevalence."""
    steps_per_epoch = None

    def __init__(self, data):
        self.data = data

    def epochs(self, first, end):
        return self.data

    def prevalence(self, epoch):
        return {}


def run(params, stats, data, directory, live_dir, fingerprint="run", val=None, monitored=None):
    """train() on ``data`` (a dataset: every epoch the same; or a TrainingBatches)."""
    state, model = training.resume(directory, fingerprint, tiny_model)
    batches = EveryEpoch(data) if isinstance(data, tf.data.Dataset) else data
    with Live(str(live_dir), resume=state is not None, dvcyaml=False,
              save_dvc_exp=False) as live:
        return training.train(model or tiny_model(), batches, val or data, params, stats,
                              directory, live, state=state or new_state(fingerprint),
                              monitored=monitored)


class Interrupted(Exception):
    pass


# Real data often lacks a val positive for some class (Hernia in the NIH
# sample): the monitored AUC then leaves it out, and its checkpoint must resume too.
@pytest.mark.parametrize("monitored", [None, np.arange(len(FINDINGS)) != 13],
                         ids=["all classes monitored", "one class left out"])
def test_interrupted_run_resumes_at_the_next_epoch(params, stats, data, tmp_path, monkeypatch,
                                                   monitored):
    check_batch = StopOnNonFiniteLoss.on_train_batch_end

    def die_in_second_epoch(self, batch, logs=None):
        check_batch(self, batch, logs)
        if self.epoch == 1:
            raise Interrupted  # as if the stage were killed during epoch 2
    monkeypatch.setattr(StopOnNonFiniteLoss, "on_train_batch_end", die_in_second_epoch)
    with pytest.raises(Interrupted):
        run(params, stats, data, tmp_path / "ck", tmp_path / "live", monitored=monitored)
    monkeypatch.undo()
    assert json.loads((tmp_path / "ck" / "state.json").read_text())["epochs_done"] == 1
    checkpoint_state, checkpoint_model = training.resume(tmp_path / "ck", "run", tiny_model)
    assert checkpoint_state["epochs_done"] == 1
    assert int(checkpoint_model.optimizer.iterations) == IMAGES // BATCH

    # Without the best-epoch restore, whose weights file also holds that
    # epoch's optimizer state, the optimizer shows how far training went.
    model, state = run(dict(params, restore_best=False), stats, data, tmp_path / "ck",
                       tmp_path / "live", monitored=monitored)
    assert state["epochs_done"] == 2
    # The optimizer continued from the checkpoint: two epochs of two steps.
    assert int(model.optimizer.iterations) == 2 * (IMAGES // BATCH)
    summary = json.loads((tmp_path / "live" / "metrics.json").read_text())
    assert summary["step"] == 1
    rows = (tmp_path / "live" / "plots" / "metrics" / "train" / "loss.tsv").read_text()
    assert [line.split("\t")[0] for line in rows.splitlines()] == ["step", "0", "1"]
    assert sorted(path.name for path in (tmp_path / "ck").iterdir()) == \
        sorted({"state.json", "epoch-0002.keras", state["best_weights"]})


@pytest.fixture
def pngs(tmp_path):
    """Eight random SIZE x SIZE PNGs and their labels: a No Finding image, a rare finding."""
    rng = np.random.default_rng(0)
    paths = []
    for index in range(IMAGES):
        paths.append(tmp_path / "images" / f"{index}.png")
        paths[-1].parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)).save(paths[-1])
    labels = np.zeros((IMAGES, len(FINDINGS)), dtype=np.float32)
    labels[1:, 0] = 1
    labels[7, 7] = 1
    return paths, labels


# Resampled, or bounded to 1 of the 2 batches the split makes (train.steps_per_epoch); a
# resampled and bounded epoch differs only in its draw (test_resampling.py).
@pytest.mark.parametrize("resample, steps", [("oversample", 0), ("none", 1)],
                         ids=["oversampled", "bounded"])
def test_a_run_resumed_mid_phase_ends_as_an_uninterrupted_one(params, stats, pngs, tmp_path,
                                                              monkeypatch, resample, steps):
    # Frozen head, then fine-tuning: two fit calls, the run dies in the second's second epoch.
    params = dict(params, epochs=3, freeze_epochs=1, resample=resample, steps_per_epoch=steps,
                  restore_best=False)
    preprocessing = Preprocessing(SIZE, "featurewise", 128.0, 64.0)
    val = image_dataset(*pngs, preprocessing, BATCH)

    def batches():
        return TrainingBatches(*pngs, preprocessing, BATCH, seed=0, resample=resample,
                               steps_per_epoch=steps)

    def one_run(name):
        return run(params, stats, batches(), tmp_path / name, tmp_path / f"{name}-live", val=val)

    keras.utils.set_random_seed(0)
    uninterrupted, _ = one_run("whole")
    keras.utils.set_random_seed(0)
    check_batch = StopOnNonFiniteLoss.on_train_batch_end

    def die_in_third_epoch(self, batch, logs=None):
        check_batch(self, batch, logs)
        if self.epoch == 2:
            raise Interrupted
    monkeypatch.setattr(StopOnNonFiniteLoss, "on_train_batch_end", die_in_third_epoch)
    with pytest.raises(Interrupted):
        one_run("parts")
    monkeypatch.undo()
    resumed, state = one_run("parts")
    assert state["epochs_done"] == 3
    # The fine-tuning phase's optimizer ran two epochs of n / batch steps each, or of the bound.
    assert int(resumed.optimizer.iterations) == 2 * (steps or IMAGES // BATCH)
    for left, right in zip(uninterrupted.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(left, right)
    logged = batches()
    for name in ("Hernia", "No Finding"):
        rows = (tmp_path / "parts-live" / "plots" / "metrics" / "train" / "prevalence" /
                f"{name}.tsv").read_text().splitlines()
        assert [row.split("\t")[0] for row in rows] == ["step", "0", "1", "2"]
        np.testing.assert_allclose([float(row.split("\t")[1]) for row in rows[1:]],
                                   [logged.prevalence(epoch)[name] for epoch in range(3)])


def test_checkpoint_of_other_params_is_discarded(params, stats, data, tmp_path):
    run(dict(params, epochs=1), stats, data, tmp_path / "ck", tmp_path / "live", "first")
    assert training.resume(tmp_path / "ck", "second", tiny_model) == (None, None)
    assert list((tmp_path / "ck").iterdir()) == []
    assert training.run_fingerprint(params) != training.run_fingerprint(dict(params, lr=0.1))


@pytest.mark.parametrize("damage, problem", [
    ("truncate", "epoch-0001.keras: cannot load the checkpoint"),
    ("other architecture", "epoch-0001.keras: the checkpoint holds another architecture"),
])
def test_damaged_checkpoint_is_logged_and_training_starts_afresh(params, stats, data, tmp_path,
                                                                 caplog, damage, problem):
    run(dict(params, epochs=1), stats, data, tmp_path / "ck", tmp_path / "live")
    saved = tmp_path / "ck" / "epoch-0001.keras"
    if damage == "truncate":
        saved.write_bytes(saved.read_bytes()[:1000])
    else:
        other_tiny_model().save(saved)
    assert training.resume(tmp_path / "ck", "run", tiny_model) == (None, None)
    assert problem in caplog.text and "training starts afresh" in caplog.text
    assert list((tmp_path / "ck").iterdir()) == []


def test_val_auc_leaves_out_a_class_without_positives_in_val(params, stats, data, tmp_path):
    images, labels = (array.numpy() for array in next(iter(data.unbatch().batch(IMAGES))))
    labels[:, 0] = 0
    val = tf.data.Dataset.from_tensor_slices((images, labels)).batch(BATCH)
    monitored = classes_with_both_labels(labels)
    assert not monitored[0] and monitored[1:].all()

    model, state = run(dict(params, epochs=1, restore_best=False), stats, data, tmp_path / "ck",
                       tmp_path / "live", val=val, monitored=monitored)
    scores = model.predict(images, verbose=0)
    over_the_others = keras.metrics.AUC(multi_label=True, num_labels=len(FINDINGS) - 1)
    over_the_others.update_state(labels[:, 1:], scores[:, 1:])
    assert state["best_auc"] == pytest.approx(float(over_the_others.result()), abs=1e-5)


def test_nan_loss_stops_with_a_pipeline_error(params, stats, data, tmp_path):
    poisoned = data.map(lambda images, labels: (images * np.nan, labels))
    with pytest.raises(NonFiniteLossError, match=r"loss became nan in epoch 1, batch 1") as error:
        run(params, stats, poisoned, tmp_path / "ck", tmp_path / "live")
    assert isinstance(error.value, PipelineError)


@pytest.mark.parametrize("loss, loss_class", [
    ("weighted_bce", WeightedBinaryCrossentropy), ("bce", keras.losses.BinaryCrossentropy),
    ("focal", keras.losses.BinaryFocalCrossentropy)])
def test_the_model_trains_with_the_loss_train_loss_names(params, stats, data, tmp_path, loss,
                                                         loss_class):
    model, state = run(dict(params, loss=loss, focal_gamma=3.0, epochs=1), stats, data,
                       tmp_path / "ck", tmp_path / "live")
    assert isinstance(model.loss, loss_class) and state["epochs_done"] == 1
    assert getattr(model.loss, "gamma", 3.0) == 3.0
    # The checkpoint, which a resumed run continues from, keeps the same loss.
    _, resumed = training.resume(tmp_path / "ck", "run", tiny_model)
    assert isinstance(resumed.loss, loss_class)


def test_frozen_head_phase_then_fine_tuning_at_its_own_rate(params, stats, data, tmp_path):
    params = dict(params, epochs=2, freeze_epochs=1, lr=0.01, fine_tune_lr=0.001)
    assert training.training_phases(params) == [(0, 1, 0.01, "head"), (1, 2, 0.001, "fine-tune")]
    model, _ = run(params, stats, data, tmp_path / "ck", tmp_path / "live")
    assert model.get_layer("conv").trainable
    rates = (tmp_path / "live" / "plots" / "metrics" / "lr.tsv").read_text().splitlines()[1:]
    np.testing.assert_allclose([float(row.split("\t")[1]) for row in rates], [0.01, 0.001])
    assert training.training_phases(dict(params, freeze_epochs=0)) == [(0, 2, 0.01, "all")]
    assert training.training_phases(dict(params, freeze_epochs=5)) == [(0, 2, 0.01, "head")]


def test_each_phase_traces_its_training_step_once(params, stats, data, tmp_path, monkeypatch):
    # Tracing is most of a short training's time. Optimizer slots made inside the first traced
    # step would make TensorFlow trace it twice; compile_model makes them beforehand.
    traced = []
    trace_step = keras.Model.train_step

    def counted(model, batch):
        traced.append(len(model.trainable_weights))
        return trace_step(model, batch)
    monkeypatch.setattr(keras.Model, "train_step", counted)
    run(dict(params, epochs=3, freeze_epochs=1), stats, data, tmp_path / "ck", tmp_path / "live")
    assert traced == [2, 4]  # the head's kernel and bias, then the whole network


def rates_over(schedule, aucs, patience=1):
    """Learning rates a schedule sets over epochs with the given validation AUCs."""
    state = new_state("x")
    start_phase(state, 1.0)
    control = LearningRateControl(state, schedule, 1.0, 0, len(aucs), 0.5, patience)
    control.set_model(types.SimpleNamespace(optimizer=types.SimpleNamespace(learning_rate=None)))
    rates = []
    for epoch, auc in enumerate(aucs):
        control.on_epoch_begin(epoch)
        rates.append(control.model.optimizer.learning_rate)
        if auc > state["phase_best_auc"]:
            state.update(phase_best_auc=auc, phase_best_epoch=epoch)
    return rates


def test_learning_rate_schedules():
    assert rates_over("constant", [0.5, 0.4, 0.3]) == [1.0, 1.0, 1.0]
    assert rates_over("plateau", [0.5, 0.6, 0.6, 0.6, 0.7, 0.7]) == [1, 1, 1, 0.5, 0.25, 0.25]
    assert rates_over("plateau", [0.5, 0.4, 0.4, 0.4], patience=2) == [1, 1, 1, 0.5]
    cosine = rates_over("cosine", [0.5] * 4)
    np.testing.assert_allclose(cosine, [1.0, 0.5 + 0.5 * math.cos(math.pi / 4), 0.5,
                                        0.5 - 0.5 * math.cos(math.pi / 4)])


def test_early_stopping_and_best_epoch_tracking(tmp_path):
    model = tiny_model()
    state = new_state("x")
    start_phase(state, 1.0)
    checkpoint = EpochCheckpoint(tmp_path, state, patience=2)
    checkpoint.set_model(model)
    for epoch, auc in enumerate([0.6, 0.7, 0.65, 0.69]):
        model.stop_training = False
        checkpoint.on_epoch_end(epoch, {"val_auc": auc})
    assert model.stop_training and state["stopped_early"]
    assert (state["best_epoch"], state["best_auc"]) == (1, 0.7)
    assert sorted(path.name for path in tmp_path.iterdir()) == \
        ["best-epoch-0002.weights.h5", "epoch-0004.keras", "state.json"]
    assert callbacks_module.read_state(tmp_path)["epochs_done"] == 4


def test_portable_copy_is_float32_with_the_same_weights():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        mixed = tiny_model()
    finally:
        keras.config.set_dtype_policy("float32")
    assert mixed.get_layer("conv").compute_dtype == "float16"
    assert mixed.output.dtype == "float32"
    copy = training.portable_copy(mixed, tiny_model)
    assert copy.get_layer("conv").compute_dtype == "float32"
    for left, right in zip(copy.get_weights(), mixed.get_weights()):
        np.testing.assert_array_equal(left, right)


def test_strategy_mirrors_only_across_several_gpus(monkeypatch):
    gpu = types.SimpleNamespace
    assert choose_strategy("", []) is tf.distribute.get_strategy()
    assert choose_strategy("", [gpu(name="/gpu:0")]) is tf.distribute.get_strategy()
    created = []
    monkeypatch.setattr(tf.distribute, "MirroredStrategy", lambda devices: created.append(devices))
    choose_strategy("", [gpu(name="/gpu:0"), gpu(name="/gpu:1")])
    assert created == [["/gpu:0", "/gpu:1"]]


def test_gpu_preset_gives_valid_params():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    preset = yaml.safe_load((REPO / "presets" / "gpu-full.yaml").read_text())
    for section, values in preset.items():
        assert set(values) <= set(params[section]), f"unknown keys in preset section {section}"
        params[section].update(values)
    validate(params, preset)
    assert params["train"]["image_size"] == 320 and params["train"]["weights"] == "imagenet"
