"""tf.data pipeline: shapes, normalisation, caching (memory and disk), determinism."""
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from chestxray.data import dataset
from chestxray.data.dataset import (
    UnreadableImagesError, disk_cache_file, image_dataset, naming_unreadable_images,
)
from chestxray.data.preprocessing import Preprocessing, decode_gray, load_pixels, resize

SIZE = 32
FEATUREWISE = Preprocessing(SIZE, "featurewise", 100.0, 50.0)
PLAIN = Preprocessing(SIZE, "featurewise")


@pytest.fixture
def pngs(tmp_path):
    """Ten 40x40 gray PNGs with distinct content and their (10, 14) labels."""
    rng = np.random.default_rng(0)
    paths = []
    for index in range(10):
        path = tmp_path / "images" / f"{index:03d}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(path)
        paths.append(str(path))
    labels = np.eye(14, dtype=np.float32)[np.arange(10)]
    return paths, labels


def collect(data):
    """All (images, labels) of one pass, concatenated."""
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in data])
    return np.concatenate(images), np.concatenate(labels)


def test_batches_have_the_documented_shapes_and_normalisation(pngs):
    paths, labels = pngs
    images, out_labels = collect(image_dataset(paths, labels, FEATUREWISE, 4))
    assert images.shape == (10, SIZE, SIZE, 1) and images.dtype == np.float32
    np.testing.assert_array_equal(out_labels, labels)
    raw = load_pixels(paths[3], SIZE).numpy().astype(np.float32)
    np.testing.assert_allclose(images[3], (raw - 100.0) / 50.0, rtol=1e-6)
    unrounded = resize(decode_gray(tf.io.read_file(paths[3])), SIZE).numpy()
    assert np.abs(raw - unrounded).max() <= 0.5


def test_samplewise_normalisation_gives_each_image_zero_mean_unit_std(pngs):
    paths, labels = pngs
    images, _ = collect(image_dataset(paths, labels, Preprocessing(SIZE, "samplewise"), 4))
    np.testing.assert_allclose(images.mean(axis=(1, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(images.std(axis=(1, 2, 3)), 1.0, atol=1e-3)
    with pytest.raises(ValueError, match="normalization"):
        Preprocessing(SIZE, "minmax")


def test_memory_cache_second_epoch_reads_no_png(pngs):
    paths, labels = pngs
    data = image_dataset(paths, labels, PLAIN, 4)
    first, _ = collect(data)
    for path in paths:
        os.remove(path)
    second, _ = collect(data)
    np.testing.assert_array_equal(first, second)


def test_disk_cache_is_reused_by_a_new_pipeline(pngs, tmp_path):
    paths, labels = pngs
    cache_dir = tmp_path / "cache"
    first, _ = collect(image_dataset(paths, labels, PLAIN, 4, cache_dir=str(cache_dir)))
    assert len(list(cache_dir.glob("*.index"))) == 1
    # Garbage with the same size and modification time: only a cache read can
    # still produce the images (a PNG decode would fail).
    for path in paths:
        status = os.stat(path)
        with open(path, "wb") as handle:
            handle.write(b"\0" * status.st_size)
        os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    again, _ = collect(image_dataset(paths, labels, PLAIN, 4, cache_dir=str(cache_dir)))
    np.testing.assert_array_equal(first, again)


def test_changed_images_or_size_get_a_fresh_cache_file(pngs, tmp_path):
    paths, _ = pngs
    prefix = disk_cache_file(tmp_path / "cache", paths, SIZE)
    assert disk_cache_file(tmp_path / "cache", paths, 64) != prefix
    os.utime(paths[0], ns=(0, 0))
    assert disk_cache_file(tmp_path / "cache", paths, SIZE) != prefix


def test_leftovers_of_an_interrupted_cache_write_are_removed(pngs, tmp_path):
    paths, labels = pngs
    cache_dir = tmp_path / "cache"
    prefix = disk_cache_file(cache_dir, paths, SIZE)
    leftovers = [f"{prefix}_0.lockfile", f"{prefix}_0.data-00000-of-00001.tempstate1"]
    for leftover in leftovers:
        open(leftover, "w").close()
    images, _ = collect(image_dataset(paths, labels, PLAIN, 4, cache_dir=str(cache_dir)))
    assert images.shape[0] == 10
    assert not any(os.path.exists(leftover) for leftover in leftovers)


def test_shuffle_is_seeded_and_reshuffles_each_epoch(pngs):
    paths, labels = pngs

    def epochs(seed, count=2):
        data = image_dataset(paths, labels, PLAIN, 4, shuffle=True, seed=seed)
        return [collect(data)[1].argmax(axis=1) for _ in range(count)]

    run_a, run_b = epochs(1), epochs(1)
    for epoch_a, epoch_b in zip(run_a, run_b):
        np.testing.assert_array_equal(epoch_a, epoch_b)
    assert sorted(run_a[0]) == list(range(10))
    assert not np.array_equal(run_a[0], run_a[1])
    assert not np.array_equal(run_a[0], epochs(2, 1)[0])


def test_small_shuffle_buffer_still_covers_every_image(pngs, monkeypatch):
    paths, labels = pngs
    monkeypatch.setattr(dataset, "SHUFFLE_BUFFER_BYTES", 3 * SIZE * SIZE)
    assert dataset.shuffle_buffer_size(10, SIZE) == 3
    _, seen = collect(image_dataset(paths, labels, PLAIN, 4, shuffle=True, seed=0))
    assert sorted(seen.argmax(axis=1)) == list(range(10))


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_an_image_damaged_after_download_is_named(pngs, damage):
    paths, labels = pngs
    if damage == "truncate":
        with open(paths[3], "r+b") as handle:
            handle.truncate(60)
    else:
        os.unlink(paths[3])
    with pytest.raises(UnreadableImagesError, match=r"1 image\(s\) cannot be read, first "
                                                    r".*003.png: .*dvc repro --force download"):
        with naming_unreadable_images(paths):
            collect(image_dataset(paths, labels, PLAIN, 4))


def test_other_tensorflow_errors_pass_through(pngs):
    with pytest.raises(tf.errors.InvalidArgumentError, match="not an image problem"):
        with naming_unreadable_images(pngs[0]):
            raise tf.errors.InvalidArgumentError(None, None, "not an image problem")
