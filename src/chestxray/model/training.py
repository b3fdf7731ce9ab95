"""Compile and fit the classifier: devices, phases, resumable checkpoints."""
import hashlib
import json
import logging
import shutil
import warnings
import zipfile
from pathlib import Path

import keras
import tensorflow as tf

from chestxray.core.errors import PipelineError
from chestxray.model.auc import MonitoredAUC
from chestxray.model.callbacks import (
    EpochCheckpoint, LearningRateControl, LiveMetrics, StopOnNonFiniteLoss, log_step, read_state,
    start_phase,
)
from chestxray.model.losses import training_loss
from chestxray.model.network import freeze_base, unfreeze_base
from chestxray.nih.labels import FINDINGS

log = logging.getLogger(__name__)


def configure_tensorflow(mixed_precision=False, deterministic=False):
    """Set TensorFlow up for the device at hand; returns 'GPU' or 'CPU'.

    On CPU, Grappler's graph rewrites and XLA cost more than they give for
    DenseNet121: tracing the first training step took 133 s with XLA, 100 s
    without, 63 s with the meta-optimizer off too, with equal step times
    (2-core machine, 64 px). On GPU both stay on, and ``mixed_precision``
    makes layers compute in float16 with float32 weights (the head's output
    stays float32); CPUs gain nothing from float16, so it is ignored there.
    ``deterministic`` turns on TensorFlow's op determinism: every op, tf.data
    included, then gives the same result for the same input on the same
    hardware, or raises ``UnimplementedError``. Seeds are set separately
    (``keras.utils.set_random_seed``).
    """
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    if tf.config.list_physical_devices("GPU"):
        if mixed_precision:
            keras.mixed_precision.set_global_policy("mixed_float16")
        return "GPU"
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    return "CPU"


def compile_model(model, loss, lr, device="CPU", deterministic=False, monitored=None):
    """Adam + ``loss`` (:func:`~chestxray.model.losses.training_loss`) + mean ROC AUC over
    the labels.

    ``monitored`` (bool (14,)) restricts the mean AUC to those classes; None
    means all 14. Leave out classes without a positive or a negative in val:
    Keras would count their undefined AUC as 0. XLA compiles the steps on
    GPU, except under op determinism: XLA has no deterministic max-pooling
    gradient (tensorflow/tensorflow#69417), and DenseNet121's stem max-pools.
    Under a mixed_float16 policy Keras wraps Adam in a LossScaleOptimizer.
    The optimizer's slot variables are made here: Keras would make them inside
    the first traced training step, and TensorFlow then traces that step a
    second time, a fixed cost of every training process (the same weights).
    """
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss,
                  metrics=[MonitoredAUC(len(FINDINGS), monitored)],
                  jit_compile="auto" if device == "GPU" and not deterministic else False)
    model.optimizer.build(model.trainable_variables)
    return model


def training_phases(params):
    """The run's phases as ``(first_epoch, end_epoch, lr, trainable)`` tuples.

    ``freeze_epochs`` 0: one phase, the whole network at ``lr``. Otherwise
    the head alone at ``lr`` for ``freeze_epochs`` epochs, then the last
    ``fine_tune_blocks`` blocks of the backbone (0 = all) at ``fine_tune_lr``.
    ``trainable`` is ``"all"``, ``"head"`` or ``"fine-tune"``.
    """
    epochs, frozen = params["epochs"], min(params["freeze_epochs"], params["epochs"])
    if frozen == 0:
        return [(0, epochs, params["lr"], "all")]
    phases = [(0, frozen, params["lr"], "head")]
    if frozen < epochs:
        phases.append((frozen, epochs, params["fine_tune_lr"], "fine-tune"))
    return phases


def compile_for_params(model, params, stats, lr, strategy, device, monitored):
    """:func:`compile_model` with the loss of the ``train`` params, in ``strategy``'s scope."""
    with strategy.scope():
        compile_model(model, training_loss(params["loss"], stats, params["focal_gamma"]), lr,
                      device, params["deterministic"], monitored)


def set_trainable(model, trainable, fine_tune_blocks, backbone):
    """Apply a phase's ``trainable`` choice (see :func:`training_phases`) to the model of
    the registry ``backbone``."""
    if trainable == "head":
        freeze_base(model)
    else:
        unfreeze_base(model, fine_tune_blocks if trainable == "fine-tune" else 0, backbone)


def run_fingerprint(params, *files):
    """Hex digest of the train params and the bytes of ``files`` (split, stats).

    A checkpoint is resumed only by a run with the same fingerprint.
    """
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for path in files:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


class CheckpointError(PipelineError):
    """A checkpoint model that cannot be loaded or is not the model being trained."""


def weight_shapes(model):
    """Sorted shapes of every weight of ``model``: its architecture, in short."""
    return sorted(tuple(weight.shape) for weight in model.weights)


def load_checkpoint_model(path, reference):
    """The model saved at ``path``, loaded in safe mode (no code from the file runs).

    ``reference()`` builds a model of the architecture being trained; a
    checkpoint whose weights differ from it in number or shape is refused.
    Raises :class:`CheckpointError` naming the file and the problem.
    """
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except (OSError, ValueError, TypeError, KeyError, zipfile.BadZipFile) as error:
        raise CheckpointError(f"{path}: cannot load the checkpoint ({error})") from error
    if weight_shapes(model) != weight_shapes(reference()):
        raise CheckpointError(f"{path}: the checkpoint holds another architecture than "
                              "the train params build")
    return model


def resume(directory, fingerprint, reference):
    """The checkpoint to continue from, as ``(state, model)``; ``(None, None)`` if there is none.

    A checkpoint counts when its state file, model and best weights exist, it
    was written by a run with the same ``fingerprint`` (params and inputs) and
    its model loads with ``reference()``'s architecture (see
    :func:`load_checkpoint_model`). A damaged checkpoint is logged and, like a
    stale or other run's one, removed: training then starts afresh. Call it in
    the scope of the strategy that will train the model.
    """
    directory = Path(directory)
    state = read_state(directory)
    if state and state.get("fingerprint") == fingerprint and \
            all(state.get(key) and (directory / state[key]).is_file()
                for key in ("model", "best_weights")):
        try:
            return state, load_checkpoint_model(directory / state["model"], reference)
        except CheckpointError as error:
            log.warning("%s; training starts afresh", error)
    clear_checkpoints(directory)
    return None, None


def clear_checkpoints(directory):
    """Empty ``directory`` and leave it in place for the next run's checkpoints.

    It is not a DVC output (see dvc.yaml): DVC would delete it before a rerun,
    and the checkpoints of an interrupted run are what the next run resumes.
    """
    directory = Path(directory)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)


def train(model, train_data, val_data, params, stats, checkpoint_dir, live, *,
          state, strategy=None, device="CPU", monitored=None):
    """Fit ``model`` through the phases of :func:`training_phases`, resumably.

    ``model`` and ``state`` come from :func:`resume` (a checkpoint's model,
    with its optimizer state, continues at ``state["epochs_done"]``), or are
    a fresh uncompiled model and :func:`chestxray.model.callbacks.new_state`; the
    model must have been made in ``strategy``'s scope. ``train_data`` is a
    :class:`chestxray.data.dataset.TrainingBatches`: each ``fit`` call, one
    per phase, takes its ``epochs(first, end)`` and ``steps_per_epoch``, and
    its ``prevalence(epoch)`` is logged. Every epoch is checkpointed into
    ``checkpoint_dir`` and logged to the dvclive ``live``.
    ``monitored`` selects the classes of the validation AUC (see
    :func:`compile_model`). Returns ``(model, state)`` with the best epoch's
    weights restored when ``params["restore_best"]``.
    """
    checkpoint_dir = Path(checkpoint_dir)
    strategy = strategy or tf.distribute.get_strategy()
    live.step = state["epochs_done"]
    for first, end, lr, trainable in training_phases(params):
        if state["epochs_done"] >= end or state["stopped_early"]:
            continue
        if state["epochs_done"] == first:
            # A phase starts with its own layers, optimizer and rate; a run
            # resumed inside a phase keeps the checkpoint's optimizer instead.
            set_trainable(model, trainable, params["fine_tune_blocks"], params["backbone"])
            compile_for_params(model, params, stats, lr, strategy, device, monitored)
            start_phase(state, lr)
        last_phase = end == params["epochs"]
        callbacks = [
            StopOnNonFiniteLoss(),
            LearningRateControl(state, params["lr_schedule"], lr, first, end,
                                params["plateau_factor"], params["plateau_patience"]),
            EpochCheckpoint(checkpoint_dir, state,
                            params["early_stopping_patience"] if last_phase else 0),
            LiveMetrics(live, train_data.prevalence),
        ]
        model.fit(train_data.epochs(state["epochs_done"], end),
                  steps_per_epoch=train_data.steps_per_epoch, validation_data=val_data,
                  initial_epoch=state["epochs_done"], epochs=end, verbose=2, callbacks=callbacks)
    if params["restore_best"] and state["best_weights"]:
        with warnings.catch_warnings():
            # The weights file holds the optimizer of the best epoch's phase
            # too; after a phase change Keras warns that it cannot load it,
            # and only the model's weights matter here.
            warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
            model.load_weights(checkpoint_dir / state["best_weights"])
    return model, state


def score_untrained(model, val_data, params, stats, live, *, strategy=None, device="CPU",
                    monitored=None):
    """The validation mean AUC of ``model`` as it is, logged with its loss as the run's one step.

    ``train.epochs`` 0 trains nothing, so this one step (``eval/loss``, ``eval/auc``,
    step 0) is the run's dvclive log: the metrics and plots of the train stage exist as
    after training, and say how the checkpoint scores on this data. ``monitored`` as in
    :func:`compile_model`.
    """
    strategy = strategy or tf.distribute.get_strategy()
    compile_for_params(model, params, stats, params["lr"], strategy, device, monitored)
    scores = model.evaluate(val_data, verbose=0, return_dict=True)
    log_step(live, {f"val_{name}": value for name, value in scores.items()})
    return scores["auc"]


def portable_copy(model, build):
    """The weights of ``model`` in ``build()``'s fresh float32 model, without optimizer.

    The saved model then loads and predicts the same on CPU or GPU whatever
    precision policy and strategy training used.
    """
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        copy = build()
    finally:
        keras.config.set_dtype_policy(policy)
    copy.set_weights(model.get_weights())
    return copy
