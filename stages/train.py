"""train: DenseNet121 with weighted binary cross-entropy, resumable, logged with dvclive."""
import logging
from pathlib import Path

import keras

from chestxray import nih_layout
from chestxray.atomic import atomic_path
from chestxray.callbacks import new_state
from chestxray.dataset import naming_unreadable_images
from chestxray.distribution import choose_strategy
from chestxray.labels import FINDINGS, classes_with_both_labels, parse_findings
from chestxray.model import augmentation, build_model
from chestxray.params import load_params
from chestxray.split import read_split_file, select_split
from chestxray.stage import run_stage
from chestxray.tracking import stage_live
from chestxray.training import (
    clear_checkpoints, configure_tensorflow, portable_copy, read_stats, resume,
    run_fingerprint, split_dataset, train,
)

DATASET_DIR = Path("outputs/dataset")
SPLIT_FILE = Path("outputs/split.csv")
STATS_FILE = Path("outputs/stats.json")
MODEL_FILE = Path("outputs/model.keras")
CHECKPOINT_DIR = Path("outputs/checkpoints")

log = logging.getLogger("train")


def main():
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    params = load_params("train")["train"]
    # Before any other TensorFlow call: a multi-worker strategy must exist
    # before TensorFlow's runtime starts.
    strategy = choose_strategy()
    keras.utils.set_random_seed(params["seed"])
    device = configure_tensorflow(params["mixed_precision"], params["deterministic"])
    labels = nih_layout.read_dataset(DATASET_DIR)
    split_table = read_split_file(SPLIT_FILE)
    stats = read_stats(STATS_FILE)
    # batch_size is per replica: each step takes one batch per GPU.
    batches = dict(params, batch_size=params["batch_size"] * strategy.num_replicas_in_sync)
    train_frame = select_split(labels, split_table, "train")
    train_data = split_dataset(train_frame, stats, batches, training=True)
    val_frame = select_split(labels, split_table, "val")
    val_data = split_dataset(val_frame, stats, batches, training=False)
    monitored = classes_with_both_labels(parse_findings(val_frame["Finding Labels"]))
    if not monitored.all():
        log.warning("val split lacks positives or negatives of %s: left out of the val AUC",
                    ", ".join(name for name, kept in zip(FINDINGS, monitored) if not kept))

    def build(weights=params["weights"]):
        augment = augmentation(params["augment_flip"], params["augment_rotation"],
                               params["augment_zoom"], params["augment_contrast"], params["seed"])
        return build_model(params["image_size"], weights, params["batchnorm_momentum"], augment)

    fingerprint = run_fingerprint(params, SPLIT_FILE, STATS_FILE)
    with strategy.scope():
        state, model = resume(CHECKPOINT_DIR, fingerprint, lambda: build("none"))
        model = model or build()
    resumed_at = state["epochs_done"] if state else 0
    with stage_live("metrics/train", resume=state is not None) as live:
        for name, value in [("device", device), ("replicas", strategy.num_replicas_in_sync),
                            ("precision", keras.config.dtype_policy().name),
                            ("weights", params["weights"]), ("resumed_at_epoch", resumed_at)]:
            live.log_param(name, value)
        with naming_unreadable_images([*train_frame["path"], *val_frame["path"]]):
            model, state = train(model, train_data, val_data, params, stats, CHECKPOINT_DIR,
                                 live, state=state or new_state(fingerprint), strategy=strategy,
                                 device=device, monitored=monitored)
    with atomic_path(MODEL_FILE) as staging:
        portable_copy(model, lambda: build("none")).save(staging)
    clear_checkpoints(CHECKPOINT_DIR)
    resumed = f", resumed after epoch {resumed_at}" if resumed_at else ""
    best = (f"best val AUC {state['best_auc']:.3f} at epoch {state['best_epoch'] + 1}"
            if state["best_epoch"] is not None else "no finite val AUC")
    print(f"trained DenseNet121 for {state['epochs_done']} epochs on {device} x"
          f"{strategy.num_replicas_in_sync}{resumed} ({best}) -> {MODEL_FILE}")


if __name__ == "__main__":
    run_stage(main)
