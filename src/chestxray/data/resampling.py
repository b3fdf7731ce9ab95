"""Resampling the training split against class imbalance: image weights and epoch draws.

``train.resample`` chooses the rule; the tf.data side is
:class:`chestxray.data.dataset.TrainingBatches`. Every function here is pure
NumPy and sees only the train split's labels, a float32 (n, 14) 0/1 array whose
all-zero rows are "No Finding" images. Each image is weighted on its own
labels, whatever its patient.

Every resampled epoch holds n images (the split's size) drawn with replacement,
image i with probability ``w_i / sum(w)``: only the mix changes, so every
strategy takes the same optimizer steps per epoch. An epoch's draw is seeded
by ``(seed, epoch)`` alone, so a run resumed at epoch k draws the epochs k,
k+1, ... that an uninterrupted run draws.

``train.steps_per_epoch`` bounds an epoch to fewer (or more) images than n: a
resampled epoch then draws that many, and an epoch without resampling takes
the next stretch of a seeded walk through the split (:func:`walk_counts`).
"""
import numpy as np

from chestxray.nih.labels import FINDINGS, NO_FINDING

STRATEGIES = ("none", "oversample", "undersample")
# Names of effective_prevalence's entries: the findings, then no finding.
PREVALENCE_NAMES = (*FINDINGS, NO_FINDING)
# Independent random streams: an epoch's images and their order; a walk's passes.
_COUNTS, _ORDER, _PASS = 0, 1, 2


def image_weights(labels, strategy):
    """float64 (n,): each image's relative chance of being drawn under ``strategy``.

    ``oversample``: repeat-factor sampling (Gupta et al., LVIS, 2019) with the
    threshold at the most common finding: finding c, on n_c images, has the
    factor ``r_c = sqrt(max_k n_k / n_c)`` (1 for the most common, more for
    rarer ones), and an image the largest factor of its findings; "No Finding"
    images weigh 1. ``undersample``: "No Finding" images weigh
    ``min(1, max_k n_k / n_nf)``, so in expectation they are as many as the
    images of the most common finding; every other image weighs 1. Without
    images of either kind there is nothing to rebalance and every weight is 1.
    ``none`` draws nothing (every image once an epoch), so it has no weights.
    """
    positive = np.asarray(labels, dtype=bool)
    counts = positive.sum(axis=0)
    if strategy == "oversample":
        factors = np.sqrt(counts.max() / np.maximum(counts, 1))
        return np.where(positive, factors, 1.0).max(axis=1)
    if strategy == "undersample":
        no_finding = ~positive.any(axis=1)
        ratio = min(1.0, counts.max() / no_finding.sum()) if counts.any() and no_finding.any() \
            else 1.0
        return np.where(no_finding, ratio, 1.0)
    raise ValueError(f"strategy must be 'oversample' or 'undersample', got {strategy!r}")


def _epoch_rng(seed, epoch, stream):
    """The generator of one of an epoch's (or a walk pass's) streams, a function of its
    arguments alone."""
    return np.random.default_rng([seed, epoch, stream])


def epoch_counts(weights, seed, epoch, draws=None):
    """int64 (n,): how many times each image appears in epoch ``epoch`` (0-based).

    ``draws`` (n when None) draws with replacement, image i with probability
    ``weights[i] / sum(weights)`` (a multinomial draw), so the counts sum to ``draws``.
    """
    weights = np.asarray(weights, dtype=np.float64)
    return _epoch_rng(seed, epoch, _COUNTS).multinomial(
        len(weights) if draws is None else draws, weights / weights.sum())


def walk_counts(n, size, seed, epoch):
    """int64 (n,): how many times each of n images is in epoch ``epoch`` of ``size`` images
    walking through the split.

    The walk is an endless run of passes, pass p a permutation of the n images
    seeded by ``(seed, p)``; epoch e takes its positions ``[e * size, (e + 1) *
    size)``. So bounded epochs show every image once before any image again,
    and epoch e depends on ``(seed, e)`` alone, as a resampled epoch does. The
    counts sum to ``size``.
    """
    start, end = epoch * size, (epoch + 1) * size
    counts = np.zeros(n, dtype=np.int64)
    for walk_pass in range(start // n, (end - 1) // n + 1):
        order = _epoch_rng(seed, walk_pass, _PASS).permutation(n)
        offset = walk_pass * n
        # A pass holds each image once: no index repeats within the slice.
        counts[order[max(start - offset, 0):min(end - offset, n)]] += 1
    return counts


def epoch_shuffle_seed(seed, epoch):
    """int in [0, 2**63): the seed of epoch ``epoch``'s shuffle, independent of its counts."""
    return int(_epoch_rng(seed, epoch, _ORDER).integers(2**63))


def effective_prevalence(labels, counts):
    """float64 (15,): the share of an epoch's images with each finding, then with none.

    ``labels``: (n, 14) 0/1; ``counts``: (n,), how often each image appears in
    the epoch. Entries are in the order of :data:`PREVALENCE_NAMES`.
    """
    positive = np.asarray(labels, dtype=bool)
    counts = np.asarray(counts, dtype=np.float64)
    return counts @ np.column_stack([positive, ~positive.any(axis=1)]) / counts.sum()
