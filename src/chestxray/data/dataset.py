"""tf.data input pipeline: load each image once, cache, shuffle, normalise, prefetch.

Augmentation is not done here: it is part of the model (see
:func:`chestxray.model.network.augmentation`), so on a GPU it runs there, inside the
training step, instead of competing for the host's CPU cores with decoding.
"""
import contextlib
import hashlib
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from chestxray.core.errors import PipelineError
from chestxray.data.images import ImageError, read_gray
from chestxray.data.preprocessing import DECODE_FAILURES, load_pixels
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
    if shuffle and buffer < len(paths):
        # The cache keeps its first order; mixing it once lets a windowed
        # shuffle buffer draw from the whole set rather than a few patients.
        order = np.random.default_rng(seed).permutation(len(paths))
        paths, labels = [paths[i] for i in order], labels[order]
    cache = disk_cache_file(cache_dir, paths, image_size) if cache_dir else ""
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    dataset = dataset.map(lambda path, label: (load_pixels(path, image_size), label),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.cache(cache)
    if shuffle:
        dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    dataset = dataset.map(
        lambda images, label: (preprocessing.normalize(tf.cast(images, tf.float32)), label),
        num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def split_dataset(frame, preprocessing, batch_size, *, shuffle=False, seed=0, cache_dir=""):
    """:func:`image_dataset` of one split: a label-table frame with a ``path`` column."""
    return image_dataset(frame["path"], parse_findings(frame["Finding Labels"]), preprocessing,
                         batch_size, shuffle=shuffle, seed=seed, cache_dir=cache_dir)


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
