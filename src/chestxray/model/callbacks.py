"""Keras callbacks for resumable training: NaN guard, learning rate, checkpoints, dvclive.

The callbacks share one JSON-ready ``state`` dict (see :func:`new_state`) that
:class:`EpochCheckpoint` writes beside each epoch's model, so a resumed run
continues the learning-rate schedule, early stopping and best-model tracking
exactly where the interrupted one stopped.
"""
import json
import math

import keras
import numpy as np
from dvclive.utils import standardize_metric_name

from chestxray.core.atomic import atomic_path, atomic_write
from chestxray.core.errors import PipelineError

MONITOR = "val_auc"
STATE_FILE = "state.json"
LR_SCHEDULES = ("constant", "plateau", "cosine")


class NonFiniteLossError(PipelineError, FloatingPointError):
    """The training loss became NaN or infinite."""


def new_state(fingerprint):
    """Training state before the first epoch.

    ``epochs_done`` counts finished epochs; ``best_*`` track the best
    validation AUC of the whole run (restored at the end), ``phase_best_*``
    that of the current phase (for early stopping and reduce-on-plateau).
    """
    return {"fingerprint": fingerprint, "epochs_done": 0, "stopped_early": False,
            "best_auc": -math.inf, "best_epoch": None, "best_weights": None, "model": None,
            "phase_best_auc": -math.inf, "phase_best_epoch": None,
            "lr": None, "lr_changed_epoch": None}


def start_phase(state, lr):
    """Reset the per-phase entries of ``state`` when a training phase begins."""
    state.update(phase_best_auc=-math.inf, phase_best_epoch=None, lr=lr,
                 lr_changed_epoch=state["epochs_done"])


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raise :class:`NonFiniteLossError` as soon as a batch's loss is NaN or inf.

    ``keras.callbacks.TerminateOnNaN`` only stops training quietly; this names
    the epoch and batch and what to try. Checkpoints of finished epochs stay.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            raise NonFiniteLossError(
                f"training loss became {float(loss)} in epoch {self.epoch + 1}, batch "
                f"{batch + 1}: lower train.lr, or check the images and outputs/stats.json")


class LearningRateControl(keras.callbacks.Callback):
    """Set the optimizer's learning rate at the start of each epoch of a phase ``[first, last)``.

    ``constant``: ``state["lr"]`` throughout. ``cosine``: from ``base_lr``
    down along a half cosine over the phase. ``plateau``: ``state["lr"]``,
    multiplied by ``factor`` once ``patience`` epochs passed without a new best
    validation AUC in the phase since the last change (Keras'
    ReduceLROnPlateau without cooldown). Deciding at the start of an epoch
    from the saved state makes a resumed run take the same decisions. The rate
    used is added to the epoch's logs as ``lr``.
    """

    def __init__(self, state, schedule, base_lr, first, last, factor=0.1, patience=1):
        super().__init__()
        if schedule not in LR_SCHEDULES:
            raise ValueError(f"schedule must be one of {LR_SCHEDULES}, got {schedule!r}")
        self.state, self.schedule, self.base_lr = state, schedule, base_lr
        self.first, self.last, self.factor, self.patience = first, last, factor, patience

    def rate(self, epoch):
        """Learning rate for ``epoch`` (0-based count over the whole run)."""
        if self.schedule == "cosine":
            progress = (epoch - self.first) / max(1, self.last - self.first)
            return self.base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.state["lr"]

    def plateaued(self, epoch):
        """Whether ``patience`` epochs passed without a new best or a rate change."""
        best = self.state["phase_best_epoch"]
        quiet_since = max(self.state["lr_changed_epoch"], self.first if best is None else best + 1)
        return epoch - quiet_since >= self.patience

    def on_epoch_begin(self, epoch, logs=None):
        if self.schedule == "plateau" and self.plateaued(epoch):
            self.state.update(lr=self.state["lr"] * self.factor, lr_changed_epoch=epoch)
        self.model.optimizer.learning_rate = self.rate(epoch)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class EpochCheckpoint(keras.callbacks.Callback):
    """After each epoch: track the best validation AUC, save, stop early.

    Writes into ``directory``: ``epoch-NNNN.keras`` (model with optimizer
    state), ``best-epoch-NNNN.weights.h5`` when the AUC improves, then
    ``state.json`` pointing at both, and only then deletes older files, so an
    interruption at any moment leaves a consistent checkpoint. With
    ``patience`` > 0, stops after that many epochs without a new best in the
    phase.
    """

    def __init__(self, directory, state, patience=0):
        super().__init__()
        self.directory, self.state, self.patience = directory, state, patience

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(MONITOR)
        if value is None:
            raise KeyError(f"'{MONITOR}' missing from the epoch's logs: fit needs validation data")
        value = float(value)
        state = self.state
        if value > state["phase_best_auc"]:
            state.update(phase_best_auc=value, phase_best_epoch=epoch)
        if value > state["best_auc"]:
            best = f"best-epoch-{epoch + 1:04d}.weights.h5"
            with atomic_path(self.directory / best) as staging:
                self.model.save_weights(staging)
            state.update(best_auc=value, best_epoch=epoch, best_weights=best)
        if self.patience and epoch - state["phase_best_epoch"] >= self.patience:
            self.model.stop_training = True
            state["stopped_early"] = True
        state["model"] = f"epoch-{epoch + 1:04d}.keras"
        with atomic_path(self.directory / state["model"]) as staging:
            self.model.save(staging)
        state["epochs_done"] = epoch + 1
        write_state(self.directory, state)
        keep = {STATE_FILE, state["model"], state["best_weights"]}
        for stale in self.directory.iterdir():
            if stale.name not in keep:
                stale.unlink()


class LiveMetrics(keras.callbacks.Callback):
    """Log every epoch's metrics to a dvclive ``Live`` (train/…, eval/…, lr), one step each.

    ``prevalence(epoch)``, ``{name: share}`` of the epoch's training images
    with each finding (see :meth:`chestxray.data.dataset.TrainingBatches.prevalence`),
    is logged with them as ``train/prevalence/<name>``. Unlike dvclive's own
    Keras callback it does not end the Live when a ``fit`` call ends, so
    several fits (training phases) log into one run.
    """

    def __init__(self, live, prevalence):
        super().__init__()
        self.live, self.prevalence = live, prevalence

    def on_epoch_end(self, epoch, logs=None):
        for name, share in self.prevalence(epoch).items():
            self.live.log_metric(f"train/prevalence/{name}", share)
        log_step(self.live, logs or {})


def log_step(live, logs):
    """Log Keras' ``logs`` of one epoch ({name: number}) to ``live`` as one step.

    ``loss``, ``auc`` become ``train/loss``, ``train/auc``; ``val_loss``, ``val_auc``
    ``eval/loss``, ``eval/auc``, as dvclive's Keras callback names them; ``lr`` stays.
    """
    for name, value in logs.items():
        metric = "lr" if name == "lr" else standardize_metric_name(name, "dvclive.keras")
        live.log_metric(metric, float(value))
    live.next_step()


def write_state(directory, state):
    """Write ``state`` as ``directory/state.json``, atomically."""
    with atomic_write(directory / STATE_FILE, "w") as handle:
        json.dump(state, handle, indent=2)


def read_state(directory):
    """The saved state of ``directory``, or None when there is none or it is unreadable."""
    try:
        return json.loads((directory / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
