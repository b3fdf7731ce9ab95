"""Training-split statistics: label prevalence, loss weights, pixel normalisation."""
import json

import numpy as np

from chestxray.core.errors import PipelineError
from chestxray.data.images import read_gray
from chestxray.nih.labels import FINDINGS

# The fields later stages read.
STATS_FIELDS = ("pixel_mean", "pixel_std", "pos_weights", "neg_weights")


def positive_frequency(labels):
    """Share of images positive for each class.

    labels : array-like of shape (n, 14), 0/1. Returns float64 array of shape (14,).
    """
    labels = np.asarray(labels, dtype=np.float64)
    if labels.ndim != 2 or labels.shape[0] == 0:
        raise ValueError(f"need a non-empty (n, {len(FINDINGS)}) label matrix, got {labels.shape}")
    return labels.mean(axis=0)


def class_weights(freq_pos):
    """Per-class loss weights that balance positives against negatives.

    With ``w_pos = freq_neg`` and ``w_neg = freq_pos`` each class's positive and
    negative examples contribute equally to the loss (``freq_pos * w_pos ==
    freq_neg * w_neg``). Returns ``(w_pos, w_neg)``, float64 arrays of shape (14,).
    """
    freq_pos = np.asarray(freq_pos, dtype=np.float64)
    return 1.0 - freq_pos, freq_pos


def pixel_statistics(paths, image_size, max_images, seed):
    """Mean and standard deviation of pixel values (0..255) over training images.

    Reads at most ``max_images`` of ``paths`` (a seeded random sample), each
    resized to ``image_size``. Returns ``(mean, std)`` as floats.
    """
    paths = list(paths)
    rng = np.random.default_rng(seed)
    if len(paths) > max_images:
        paths = [paths[i] for i in sorted(rng.choice(len(paths), max_images, replace=False))]
    pixels = np.stack([read_gray(path, image_size) for path in paths]).astype(np.float64)
    return float(pixels.mean()), float(pixels.std())


def training_statistics(labels, paths, image_size, max_images, seed):
    """All statistics the training stage needs, as a JSON-ready dict."""
    freq_pos = positive_frequency(labels)
    w_pos, w_neg = class_weights(freq_pos)
    mean, std = pixel_statistics(paths, image_size, max_images, seed)
    return {
        "images": int(len(labels)),
        "pixel_mean": round(mean, 4),
        "pixel_std": round(std, 4),
        "positive_frequency": dict(zip(FINDINGS, np.round(freq_pos, 6).tolist())),
        "pos_weights": dict(zip(FINDINGS, np.round(w_pos, 6).tolist())),
        "neg_weights": dict(zip(FINDINGS, np.round(w_neg, 6).tolist())),
    }


class StatsFileError(PipelineError, ValueError):
    """A statistics file that cannot be read or lacks a field."""


def read_stats(path):
    """The stats stage's JSON (see :func:`training_statistics`) as a dict.

    Raises :class:`StatsFileError` naming the file when it is missing,
    unreadable or lacks a field later stages use.
    """
    try:
        with open(path) as handle:
            stats = json.load(handle)
    except (OSError, ValueError) as error:
        raise StatsFileError(f"{path}: cannot read the training statistics ({error}); "
                             "run the stats stage") from error
    missing = [key for key in STATS_FIELDS if not isinstance(stats, dict) or key not in stats]
    if missing:
        raise StatsFileError(f"{path}: missing {', '.join(missing)}; run the stats stage")
    return stats
