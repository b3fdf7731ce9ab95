"""train: DenseNet121 with weighted binary cross-entropy, logged with dvclive."""
from pathlib import Path

import keras
from dvclive.keras import DVCLiveCallback

from chestxray import nih_layout
from chestxray.model import build_model
from chestxray.params import load_params
from chestxray.split import read_split_file, select_split
from chestxray.stage import run_stage
from chestxray.tracking import stage_live
from chestxray.training import compile_model, configure_tensorflow, read_stats, split_dataset

DATASET_DIR = Path("outputs/dataset")
SPLIT_FILE = Path("outputs/split.csv")
STATS_FILE = Path("outputs/stats.json")
MODEL_FILE = Path("outputs/model.keras")


def main():
    params = load_params("train")["train"]
    keras.utils.set_random_seed(params["seed"])
    device = configure_tensorflow()
    labels = nih_layout.read_dataset(DATASET_DIR)
    split_table = read_split_file(SPLIT_FILE)
    stats = read_stats(STATS_FILE)
    train = split_dataset(select_split(labels, split_table, "train"), stats, params, training=True)
    val = split_dataset(select_split(labels, split_table, "val"), stats, params, training=False)

    model = build_model(params["image_size"], params["weights"], params["batchnorm_momentum"])
    compile_model(model, stats, params["lr"], device)
    MODEL_FILE.parent.mkdir(parents=True, exist_ok=True)
    staging = MODEL_FILE.with_name(".training.keras")
    with stage_live("metrics/train") as live:
        live.log_param("device", device)
        live.log_param("weights", params["weights"])
        checkpoint = keras.callbacks.ModelCheckpoint(staging, monitor="val_auc", mode="max",
                                                     save_best_only=True)
        history = model.fit(train, validation_data=val, epochs=params["epochs"], verbose=2,
                            callbacks=[DVCLiveCallback(live=live), checkpoint,
                                       keras.callbacks.TerminateOnNaN()])
    staging.replace(MODEL_FILE)
    best = max(history.history["val_auc"])
    print(f"trained DenseNet121 for {len(history.history['loss'])} epochs on "
          f"{device} (best val AUC {best:.3f}) -> {MODEL_FILE}")


if __name__ == "__main__":
    run_stage(main)
