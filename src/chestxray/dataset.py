"""tf.data input pipeline: decode and resize once, cache, shuffle, normalise, prefetch.

Augmentation is not done here: it is part of the model (see
:func:`chestxray.model.augmentation`), so on a GPU it runs there, inside the
training step, instead of competing for the host's CPU cores with decoding.
"""
import contextlib
import hashlib
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from chestxray.errors import PipelineError
from chestxray.images import ImageError, read_gray

# decode_png with uint16 reads 8-bit, 16-bit, gray and RGB(A) PNGs alike on a
# 0..65535 scale; dividing by 257 maps every flavour onto 0..255.
UINT16_TO_UINT8 = 257.0
# Bump when what the cache holds changes, so older cache files are never read.
CACHE_FORMAT = 1
# Memory the shuffle buffer may hold. 1885 images at 64 px fit whole (a full
# shuffle); 112,120 at 320 px would need 11 GiB, so there the file order is
# permuted once and the buffer shuffles a window of about 10,000 images.
SHUFFLE_BUFFER_BYTES = 1 << 30
# Samplewise std floor, as in Keras 2's ImageDataGenerator, for flat images.
SAMPLEWISE_EPSILON = 1e-6
NORMALIZATIONS = ("featurewise", "samplewise")
# What tf.data raises for a file it cannot read or decode.
DECODE_FAILURES = (tf.errors.InvalidArgumentError, tf.errors.NotFoundError,
                   tf.errors.DataLossError)


class UnreadableImagesError(PipelineError):
    """Images that tf.data could not read; names them."""


def decode_gray(path, image_size):
    """Read one PNG as float32 gray of shape (image_size, image_size, 1), 0..255."""
    pixels = tf.io.decode_png(tf.io.read_file(path), channels=1, dtype=tf.uint16)
    pixels = tf.cast(pixels, tf.float32) / UINT16_TO_UINT8
    return tf.image.resize(pixels, (image_size, image_size), antialias=True)


def decode_for_cache(path, image_size):
    """:func:`decode_gray` rounded to uint8 (image_size, image_size, 1).

    Caching uint8 instead of float32 takes a quarter of the memory or disk;
    rounding moves a pixel by at most half a grey level.
    """
    pixels = tf.clip_by_value(tf.round(decode_gray(path, image_size)), 0.0, 255.0)
    return tf.cast(pixels, tf.uint8)


def normalize(images, normalization, mean=0.0, std=1.0):
    """Scale float32 images (..., H, W, 1) on 0..255 to about zero mean, unit variance.

    ``featurewise`` uses the training split's pixel ``mean`` and ``std`` (the
    stats stage); ``samplewise`` each image's own, like the seeds'
    ``ImageDataGenerator(samplewise_center=True, samplewise_std_normalization=True)``.
    """
    if normalization == "featurewise":
        return (images - mean) / std
    if normalization == "samplewise":
        image_mean, image_variance = tf.nn.moments(images, axes=[-3, -2, -1], keepdims=True)
        return (images - image_mean) / (tf.sqrt(image_variance) + SAMPLEWISE_EPSILON)
    raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")


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


def image_dataset(paths, labels, image_size, batch_size, *, normalization="featurewise",
                  mean=0.0, std=1.0, shuffle=False, seed=0, cache_dir=""):
    """Batches of normalised images and labels.

    Parameters
    ----------
    paths : sequence of str, n image files.
    labels : float32 array of shape (n, 14).
    normalization, mean, std : see :func:`normalize` (mean/std on the 0..255 scale).
    shuffle : reshuffle every epoch (training); otherwise the order of ``paths``.
    cache_dir : "" caches decoded images in memory for the dataset's lifetime;
        a folder caches them on disk (:func:`disk_cache_file`), so later runs
        decode no PNG either.

    Each PNG is decoded and resized once; later epochs read the uint8 cache.
    Yields ``(images, labels)``: float32 (batch, image_size, image_size, 1) and
    float32 (batch, 14).
    """
    paths, labels = [str(path) for path in paths], np.asarray(labels, dtype=np.float32)
    buffer = shuffle_buffer_size(len(paths), image_size)
    if shuffle and buffer < len(paths):
        # The cache keeps its first order; mixing it once lets a windowed
        # shuffle buffer draw from the whole set rather than a few patients.
        order = np.random.default_rng(seed).permutation(len(paths))
        paths, labels = [paths[i] for i in order], labels[order]
    cache = disk_cache_file(cache_dir, paths, image_size) if cache_dir else ""
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    dataset = dataset.map(lambda path, label: (decode_for_cache(path, image_size), label),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.cache(cache)
    if shuffle:
        dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    dataset = dataset.map(
        lambda images, label: (normalize(tf.cast(images, tf.float32), normalization, mean, std),
                               label),
        num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


@contextlib.contextmanager
def naming_unreadable_images(paths):
    """Turn tf.data's failure to read an image into one error naming the files.

    TensorFlow's decode errors name no file. On such an error every one of
    ``paths`` is checked with :func:`chestxray.images.read_gray` (only then, so
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
