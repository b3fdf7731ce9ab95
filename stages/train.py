"""train: the backbone train.backbone names (DenseNet121 by default) with the loss train.loss
names (per-class weighted BCE by default), on the train split resampled as train.resample says
(not by default), train.steps_per_epoch batches an epoch (0, the default: the whole split),
resumable, logged with dvclive; with train.epochs 0, no training: the model
is the classifier checkpoint train.weights names, its head mapped."""
import logging

import keras

from chestxray.core.params import load_params
from chestxray.core.paths import (
    CHECKPOINT_DIR, DATASET_DIR, MODEL_FILE, SPLIT_FILE, STATS_FILE, metrics_staging_dir,
)
from chestxray.core.stage import run_stage
from chestxray.core.tracking import stage_outputs
from chestxray.data.dataset import naming_unreadable_images, split_dataset, split_training_batches
from chestxray.data.preprocessing import Preprocessing
from chestxray.data.split import read_split_file, select_split
from chestxray.data.stats import read_stats
from chestxray.model.backbones import backbone_of
from chestxray.model.callbacks import new_state
from chestxray.model.distribution import choose_strategy
from chestxray.model.network import augmentation, build_model
from chestxray.model.pretrained import initial_model
from chestxray.model.saved import save_model
from chestxray.model.training import (
    clear_checkpoints, configure_tensorflow, portable_copy, resume, run_fingerprint,
    score_untrained, train,
)
from chestxray.nih import layout
from chestxray.nih.labels import FINDINGS, classes_with_both_labels, parse_findings

log = logging.getLogger("train")


def main():
    params = load_params("train")["train"]
    backbone_of(params)  # an unknown backbone stops here, before any work
    # Before any other TensorFlow call: a multi-worker strategy must exist
    # before TensorFlow's runtime starts.
    strategy = choose_strategy()
    keras.utils.set_random_seed(params["seed"])
    device = configure_tensorflow(params["mixed_precision"], params["deterministic"])
    labels = layout.read_dataset(DATASET_DIR)
    split_table = read_split_file(SPLIT_FILE)
    stats = read_stats(STATS_FILE)
    preprocessing = Preprocessing.from_params(params, stats)
    # batch_size is per replica: each step takes one batch per GPU.
    batch_size = params["batch_size"] * strategy.num_replicas_in_sync
    frames = {name: select_split(labels, split_table, name) for name in ("train", "val")}
    train_data = split_training_batches(frames["train"], preprocessing, batch_size,
                                        seed=params["seed"], cache_dir=params["cache_dir"],
                                        resample=params["resample"],
                                        steps_per_epoch=params["steps_per_epoch"])
    val_data = split_dataset(frames["val"], preprocessing, batch_size,
                             cache_dir=params["cache_dir"])
    monitored = classes_with_both_labels(parse_findings(frames["val"]["Finding Labels"]))
    if not monitored.all():
        log.warning("val split lacks positives or negatives of %s: left out of the val AUC",
                    ", ".join(name for name, kept in zip(FINDINGS, monitored) if not kept))

    def build(weights):
        augment = augmentation(params["augment_flip"], params["augment_rotation"],
                               params["augment_zoom"], params["augment_contrast"], params["seed"])
        return build_model(params["image_size"], weights, params["batchnorm_momentum"], augment,
                           params["backbone"])

    fingerprint = run_fingerprint(params, SPLIT_FILE, STATS_FILE)
    with strategy.scope():
        state, model = resume(CHECKPOINT_DIR, fingerprint, lambda: build("none"))
        if state and not metrics_staging_dir("train").is_dir():
            # A run killed after publishing its model and log, before clearing its
            # checkpoints: resuming would publish a log without the finished epochs.
            log.warning("%s: no dvclive log of the checkpoint's epochs in %s; training starts "
                        "afresh", CHECKPOINT_DIR, metrics_staging_dir("train"))
            clear_checkpoints(CHECKPOINT_DIR)
            state = model = None
        if model is None:
            model, weights_source = initial_model(build, params)
            log.info("%s", weights_source)
    resumed_at = state["epochs_done"] if state else 0
    with stage_outputs("train", resume=state is not None) as outputs:
        live = outputs.live
        for name, value in [("device", device), ("replicas", strategy.num_replicas_in_sync),
                            ("precision", keras.config.dtype_policy().name),
                            ("weights", params["weights"]), ("resumed_at_epoch", resumed_at)]:
            live.log_param(name, value)
        with naming_unreadable_images([*frames["train"]["path"], *frames["val"]["path"]]):
            if params["epochs"]:
                model, state = train(model, train_data, val_data, params, stats, CHECKPOINT_DIR,
                                     live, state=state or new_state(fingerprint),
                                     strategy=strategy, device=device, monitored=monitored)
            else:
                val_auc = score_untrained(model, val_data, params, stats, live,
                                          strategy=strategy, device=device, monitored=monitored)
        save_model(portable_copy(model, lambda: build("none")), preprocessing,
                   outputs.path(MODEL_FILE), params["backbone"])
    clear_checkpoints(CHECKPOINT_DIR)
    if not params["epochs"]:
        print(f"no training (train.epochs = 0): checkpoint {params['weights']} mapped to this "
              f"pipeline's class order (val AUC {val_auc:.3f}) -> {MODEL_FILE}")
        return
    resumed = f", resumed after epoch {resumed_at}" if resumed_at else ""
    steps = f" of {params['steps_per_epoch']} steps" if params["steps_per_epoch"] else ""
    best = (f"best val AUC {state['best_auc']:.3f} at epoch {state['best_epoch'] + 1}"
            if state["best_epoch"] is not None else "no finite val AUC")
    print(f"trained {params['backbone']} for {state['epochs_done']} epochs{steps} on {device} "
          f"x{strategy.num_replicas_in_sync}{resumed} ({best}) -> {MODEL_FILE}")


if __name__ == "__main__":
    run_stage(main)
