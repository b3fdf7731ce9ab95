"""Compile and fit the classifier."""
import json

import keras
import numpy as np
import tensorflow as tf

from chestxray.dataset import augmentation, image_dataset
from chestxray.labels import FINDINGS, parse_findings
from chestxray.losses import WeightedBinaryCrossentropy


def read_stats(path):
    """The stats stage's JSON as a dict."""
    with open(path) as handle:
        return json.load(handle)


def loss_from_stats(stats):
    """Weighted BCE with the per-class weights the stats stage computed."""
    return WeightedBinaryCrossentropy([stats["pos_weights"][name] for name in FINDINGS],
                                      [stats["neg_weights"][name] for name in FINDINGS])


def configure_tensorflow():
    """Set TensorFlow up for the device at hand; returns 'GPU' or 'CPU'.

    On CPU, Grappler's graph rewrites and XLA cost more than they give for
    DenseNet121: tracing the first training step took 133 s with XLA, 100 s
    without, 63 s with the meta-optimizer off too, with equal step times
    (2-core machine, 64 px). On GPU both stay on.
    """
    if tf.config.list_physical_devices("GPU"):
        return "GPU"
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    return "CPU"


def compile_model(model, stats, lr, device="CPU"):
    """Adam + weighted BCE + mean ROC AUC over the 14 labels."""
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss_from_stats(stats),
                  metrics=[keras.metrics.AUC(multi_label=True, num_labels=len(FINDINGS),
                                             name="auc")],
                  jit_compile="auto" if device == "GPU" else False)
    return model


def split_dataset(frame, stats, params, *, training):
    """tf.data batches for one split (a label-table frame with a ``path`` column)."""
    augment = None
    if training:
        augment = augmentation(params["augment_flip"], params["augment_rotation"],
                               params["augment_zoom"], params["augment_contrast"],
                               params["seed"])
    return image_dataset(frame["path"], parse_findings(frame["Finding Labels"]),
                         params["image_size"], params["batch_size"], stats["pixel_mean"],
                         stats["pixel_std"], shuffle=training, seed=params["seed"],
                         augment=augment)


def predict(model, dataset):
    """Probabilities for every image of a dataset: float32 array (n, 14)."""
    return np.asarray(model.predict(dataset, verbose=0), dtype=np.float32)
