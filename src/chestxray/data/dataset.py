"""tf.data input pipeline: load each image once, cache, shuffle, normalise, prefetch.

Augmentation is not done here: it is part of the model (see
:func:`chestxray.model.network.augmentation`), so on a GPU it runs there, inside the
training step, instead of competing for the host's CPU cores with decoding.
"""
import contextlib
import functools
import hashlib
import math
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from chestxray.core.errors import PipelineError
from chestxray.data.images import ImageError, read_gray
from chestxray.data.preprocessing import DECODE_FAILURES, load_pixels
from chestxray.data.resampling import (
    PREVALENCE_NAMES, effective_prevalence, epoch_counts, epoch_shuffle_seed, image_weights,
    walk_counts,
)
from chestxray.nih.labels import parse_findings

# Bump when what the cache holds changes, so older cache files are never read.
CACHE_FORMAT = 1
# Memory the shuffle buffer may hold. 1885 images at 64 px fit whole (a full
# shuffle); 112,120 at 320 px would need 11 GiB, so there the file order is
# permuted once and the buffer shuffles a window of about 10,000 images.
SHUFFLE_BUFFER_BYTES = 1 << 30


class UnreadableImagesError(PipelineError):
    """Images that tf.data could not read; names them."""


def disk_cache_file(cache_dir, paths, image_size):
    """Path prefix of the on-disk cache of these images, ready for ``Dataset.cache``.

    The name hashes each image's path, size and modification time with the
    image size and :data:`CACHE_FORMAT`, so re-rendered or re-downloaded images
    get a fresh cache instead of a stale one. tf.data marks a cache complete by
    writing ``<prefix>.index`` after a full pass; a run killed before that
    leaves a lockfile that would make the next run fail ("concurrent caching
    iterator"), so the leftovers of an unfinished cache are deleted here and
    the cache is rebuilt. Do not point two runs that write at once at one folder.
    """
    digest = hashlib.sha256(f"format {CACHE_FORMAT} size {image_size}\n".encode())
    for path in paths:
        status = os.stat(path)
        digest.update(f"{path}\t{status.st_size}\t{status.st_mtime_ns}\n".encode())
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    prefix = cache_dir / f"images-{image_size}px-{digest.hexdigest()[:16]}"
    if not prefix.with_name(prefix.name + ".index").exists():
        for leftover in cache_dir.glob(prefix.name + "*"):
            leftover.unlink()
    return str(prefix)


def shuffle_buffer_size(count, image_size):
    """Images the shuffle buffer holds: all ``count`` when they fit in its byte budget."""
    return int(max(1, min(count, SHUFFLE_BUFFER_BYTES // (image_size * image_size))))


def _training_order(paths, labels, seed, buffer):
    """``paths`` and ``labels`` permuted once (seeded) when ``buffer`` holds fewer images.

    The cache keeps its first order; mixing it once lets a windowed shuffle
    buffer draw from the whole set rather than a few patients.
    """
    if buffer >= len(paths):
        return paths, labels
    order = np.random.default_rng(seed).permutation(len(paths))
    return [paths[i] for i in order], labels[order]


def _cached_images(paths, labels, image_size, cache_dir):
    """Dataset of ``(uint8 (S, S, 1), float32 (14,))`` in the order of ``paths``.

    Each image is loaded once (:func:`~chestxray.data.preprocessing.load_pixels`);
    later passes read the cache: memory for ``cache_dir`` "", else
    :func:`disk_cache_file`.
    """
    cache = disk_cache_file(cache_dir, paths, image_size) if cache_dir else ""
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    dataset = dataset.map(lambda path, label: (load_pixels(path, image_size), label),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.cache(cache)


def _model_ready(batches, preprocessing):
    """Batches of uint8 images, normalised to float32 and prefetched."""
    batches = batches.map(
        lambda images, label: (preprocessing.normalize(tf.cast(images, tf.float32)), label),
        num_parallel_calls=tf.data.AUTOTUNE)
    return batches.prefetch(tf.data.AUTOTUNE)


def image_dataset(paths, labels, preprocessing, batch_size, *, shuffle=False, seed=0,
                  cache_dir=""):
    """Batches of model-ready images and their labels.

    Parameters
    ----------
    paths : sequence of str, n image files.
    labels : float32 array of shape (n, 14).
    preprocessing : :class:`~chestxray.data.preprocessing.Preprocessing`.
    shuffle : reshuffle every epoch (training); otherwise the order of ``paths``.
    cache_dir : "" caches decoded images in memory for the dataset's lifetime;
        a folder caches them on disk (:func:`disk_cache_file`), so later runs
        decode no PNG either.

    Each image is loaded once (:func:`~chestxray.data.preprocessing.load_pixels`);
    later epochs read the uint8 cache, and every batch is normalised.
    Yields ``(images, labels)``: float32 (batch, S, S, 1), S =
    ``preprocessing.image_size``, and float32 (batch, 14).
    """
    image_size = preprocessing.image_size
    paths, labels = [str(path) for path in paths], np.asarray(labels, dtype=np.float32)
    buffer = shuffle_buffer_size(len(paths), image_size)
    if shuffle:
        paths, labels = _training_order(paths, labels, seed, buffer)
    dataset = _cached_images(paths, labels, image_size, cache_dir)
    if shuffle:
        dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    return _model_ready(dataset.batch(batch_size), preprocessing)


def split_dataset(frame, preprocessing, batch_size, *, cache_dir=""):
    """:func:`image_dataset` of one split, in its order: a label-table frame with a ``path``
    column."""
    return image_dataset(frame["path"], parse_findings(frame["Finding Labels"]), preprocessing,
                         batch_size, cache_dir=cache_dir)


class TrainingBatches:
    """The training split's batches for ``model.fit``, resampled each epoch by ``resample``
    and bounded to ``steps_per_epoch`` batches an epoch.

    ``paths``, ``labels``, ``preprocessing``, ``batch_size``, ``seed`` and
    ``cache_dir`` are as for :func:`image_dataset`; ``resample`` is one of
    :data:`chestxray.data.resampling.STRATEGIES`; ``steps_per_epoch`` 0 means
    the whole split an epoch.

    ``none`` unbounded: :func:`image_dataset` shuffled, exactly as before
    resampling existed: one dataset that ``fit`` iterates again each epoch,
    every image once. Otherwise epoch e holds image i ``counts(e)[i]`` times,
    m images in all, shuffled with ``epoch_shuffle_seed(seed, e)``
    (:mod:`chestxray.data.resampling`): m = ``steps_per_epoch * batch_size``
    when bounded, else n, the split's size. ``oversample`` and ``undersample``
    draw the m images (``epoch_counts``); bounded ``none`` takes the next m of
    a seeded walk through the split (``walk_counts``). The copies are made
    from the decode cache, after it, and every epoch reads the whole cache:
    no image is decoded twice, and an epoch that shows part of the split
    still completes the cache rather than leaving tf.data to discard it. An
    epoch's batches depend on ``seed``, its index and the labels only, so a
    resumed run gets the epochs an uninterrupted one gets.
    """

    def __init__(self, paths, labels, preprocessing, batch_size, *, seed=0, cache_dir="",
                 resample="none", steps_per_epoch=0):
        paths, labels = [str(path) for path in paths], np.asarray(labels, dtype=np.float32)
        self.resample, self.seed, self.batch_size = resample, seed, batch_size
        self._preprocessing = preprocessing
        self._buffer = shuffle_buffer_size(len(paths), preprocessing.image_size)
        if resample == "none" and not steps_per_epoch:
            self.labels, self.steps_per_epoch = labels, None
            self._every_epoch = image_dataset(paths, labels, preprocessing, batch_size,
                                              shuffle=True, seed=seed, cache_dir=cache_dir)
        else:
            paths, self.labels = _training_order(paths, labels, seed, self._buffer)
            self._weights = None if resample == "none" else image_weights(self.labels, resample)
            self._images = _cached_images(paths, self.labels, preprocessing.image_size,
                                          cache_dir)
            self.steps_per_epoch = steps_per_epoch or math.ceil(len(paths) / batch_size)
            self._epoch_images = steps_per_epoch * batch_size or len(paths)

    def counts(self, epoch):
        """int64 (n,): how many times each image (in the order of ``self.labels``) is in
        epoch ``epoch``."""
        if self.steps_per_epoch is None:
            return np.ones(len(self.labels), dtype=np.int64)
        if self.resample == "none":
            return walk_counts(len(self.labels), self._epoch_images, self.seed, epoch)
        return epoch_counts(self._weights, self.seed, epoch, self._epoch_images)

    def prevalence(self, epoch):
        """{finding or "No Finding": share of epoch ``epoch``'s images with it}."""
        shares = effective_prevalence(self.labels, self.counts(epoch))
        return dict(zip(PREVALENCE_NAMES, shares.tolist()))

    def epochs(self, first, end):
        """``model.fit``'s dataset for the epochs ``[first, end)``, with ``fit(...,
        steps_per_epoch=self.steps_per_epoch)``.

        ``none`` unbounded: the one reshuffled epoch (``steps_per_epoch`` None:
        ``fit`` reads it to its end each epoch). Otherwise one stream of those
        epochs, ``steps_per_epoch`` batches each; unbounded, the last batch of
        an epoch may be short, as without resampling.
        """
        if self.steps_per_epoch is None:
            return self._every_epoch
        # One dataset per epoch, concatenated, rather than a flat_map over epochs:
        # that would need a tensor shuffle seed, which tf.data refuses when
        # TensorFlow's global seed is 0 (train.seed 0).
        return _model_ready(functools.reduce(tf.data.Dataset.concatenate, map(
            self._one_epoch, range(first, end))), self._preprocessing)

    def _one_epoch(self, epoch):
        """Unnormalised batches of epoch ``epoch``: each cached image repeated
        ``counts(epoch)`` times (0 included: the whole cache is read), then shuffled."""
        counts = tf.constant(self.counts(epoch))
        repeated = self._images.enumerate().flat_map(
            lambda index, image: tf.data.Dataset.from_tensors(image).repeat(counts[index]))
        return repeated.shuffle(self._buffer, seed=epoch_shuffle_seed(self.seed, epoch)) \
            .batch(self.batch_size)


def split_training_batches(frame, preprocessing, batch_size, *, seed, cache_dir, resample,
                           steps_per_epoch):
    """:class:`TrainingBatches` of the train split's label-table frame (with a ``path``
    column)."""
    return TrainingBatches(frame["path"], parse_findings(frame["Finding Labels"]),
                           preprocessing, batch_size, seed=seed, cache_dir=cache_dir,
                           resample=resample, steps_per_epoch=steps_per_epoch)


@contextlib.contextmanager
def naming_unreadable_images(paths):
    """Turn tf.data's failure to read an image into one error naming the files.

    TensorFlow's decode errors name no file. On such an error every one of
    ``paths`` is checked with :func:`chestxray.data.images.read_gray` (only then, so
    a good run pays nothing) and :class:`UnreadableImagesError` lists those that
    fail. An error with every image readable is re-raised as it is.
    """
    try:
        yield
    except DECODE_FAILURES as error:
        problems = []
        for path in paths:
            try:
                read_gray(path)
            except ImageError as problem:
                problems.append(str(problem))
        if not problems:
            raise
        raise UnreadableImagesError(
            f"{len(problems)} image(s) cannot be read, first {problems[0]}; the images "
            "changed after the download stage checked them: run `dvc repro --force download`"
        ) from error
