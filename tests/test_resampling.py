"""Resampling (train.resample) and bounded epochs (train.steps_per_epoch): image weights, seeded
epoch draws and walks, and the tf.data batches."""
import math
import os

import numpy as np
import pytest
from PIL import Image

from chestxray.core.params import SCHEMA
from chestxray.data import dataset
from chestxray.data.dataset import TrainingBatches, image_dataset
from chestxray.data.preprocessing import Preprocessing
from chestxray.data.resampling import (
    PREVALENCE_NAMES, STRATEGIES, effective_prevalence, epoch_counts, epoch_shuffle_seed,
    image_weights, walk_counts,
)
from chestxray.nih.labels import FINDINGS, NO_FINDING

SIZE, BATCH = 8, 5
# Pixels equal the image's number x 10, so each yielded image names itself.
PLAIN = Preprocessing(SIZE, "featurewise", 0.0, 10.0)


def multi_hot(*rows):
    """(len(rows), 14) float32 labels; each row lists the indices of its findings."""
    labels = np.zeros((len(rows), len(FINDINGS)), dtype=np.float32)
    for index, findings in enumerate(rows):
        labels[index, list(findings)] = 1
    return labels


# 16 images: 8 "No Finding", finding 0 on 5 (the most common), finding 1 on 2, finding 2 on 1.
IMBALANCED = multi_hot(*[()] * 8, *[(0,)] * 5, (1,), (1,), (2,))


def test_oversample_weighs_an_image_by_its_rarest_finding():
    # Finding 0 on 4 images, 1 on 1, 2 on 2: factors sqrt(4/4), sqrt(4/1), sqrt(4/2).
    labels = multi_hot((0,), (0,), (0,), (0, 2), (1,), (2,), ())
    np.testing.assert_allclose(image_weights(labels, "oversample"),
                               [1, 1, 1, math.sqrt(2), 2, math.sqrt(2), 1])


def test_undersample_brings_no_finding_down_to_the_most_common_finding():
    # 5 "No Finding" images; finding 0 on 2 images, finding 1 on 1: weight 2 / 5.
    labels = multi_hot((), (), (), (), (), (0,), (0, 1))
    np.testing.assert_allclose(image_weights(labels, "undersample"),
                               [0.4] * 5 + [1, 1])
    # Fewer "No Finding" images than the most common finding: nothing to undersample.
    np.testing.assert_array_equal(image_weights(multi_hot((), (0,), (0,)), "undersample"), 1)


@pytest.mark.parametrize("strategy", ["oversample", "undersample"])
def test_labels_without_findings_or_without_no_finding_weigh_every_image_1(strategy):
    for labels in (multi_hot((), ()), multi_hot((0,), (1,), (0, 1))):
        np.testing.assert_array_equal(image_weights(labels, strategy), 1)


@pytest.mark.parametrize("strategy", ["none", "smote"])
def test_only_the_two_resampling_strategies_have_weights(strategy):
    with pytest.raises(ValueError, match="must be 'oversample' or 'undersample'"):
        image_weights(IMBALANCED, strategy)


def test_the_params_schema_offers_exactly_the_strategies():
    check = SCHEMA["train"]["resample"]
    assert all(check(strategy) is None for strategy in STRATEGIES)
    assert check("smote") == "must be one of 'none', 'oversample', 'undersample'"


def test_epoch_counts_are_seeded_by_seed_and_epoch_and_sum_to_n():
    weights = image_weights(IMBALANCED, "oversample")
    counts = epoch_counts(weights, 7, 3)
    assert counts.dtype == np.int64 and counts.shape == (16,) and counts.sum() == 16
    np.testing.assert_array_equal(counts, epoch_counts(weights, 7, 3))
    assert not np.array_equal(counts, epoch_counts(weights, 7, 4))
    assert not np.array_equal(counts, epoch_counts(weights, 8, 3))
    assert epoch_shuffle_seed(7, 3) == epoch_shuffle_seed(7, 3) != epoch_shuffle_seed(7, 4)


def test_epoch_counts_draw_each_image_in_proportion_to_its_weight():
    weights = image_weights(IMBALANCED, "oversample")
    mean = np.mean([epoch_counts(weights, 0, epoch) for epoch in range(4000)], axis=0)
    np.testing.assert_allclose(mean, 16 * weights / weights.sum(), rtol=0.1)


def test_a_bounded_draw_holds_as_many_images_as_asked():
    weights = image_weights(IMBALANCED, "oversample")
    assert epoch_counts(weights, 7, 3, draws=40).sum() == 40
    # Unbounded (draws None) is the draw of n images of before.
    np.testing.assert_array_equal(epoch_counts(weights, 7, 3, draws=16),
                                  epoch_counts(weights, 7, 3))


def test_a_walk_shows_every_image_once_before_any_again():
    # Epochs of 6 of 16 images: 8 epochs are 3 whole passes.
    epochs = [walk_counts(16, 6, 7, epoch) for epoch in range(8)]
    assert all(counts.dtype == np.int64 and counts.sum() == 6 for counts in epochs)
    assert np.sum(epochs[:2], axis=0).max() == 1  # the first 12 images are 12 different ones
    np.testing.assert_array_equal(np.sum(epochs, axis=0), 3)
    assert not np.array_equal(epochs[0], epochs[1])
    # Seeded by (seed, epoch) alone, as a resumed run needs.
    np.testing.assert_array_equal(walk_counts(16, 6, 7, 5), epochs[5])
    assert not np.array_equal(walk_counts(16, 6, 8, 0), epochs[0])
    # An epoch longer than the split: 40 images are two passes and 8 images of a third.
    longer = walk_counts(16, 40, 7, 0)
    np.testing.assert_array_equal(np.bincount(longer), [0, 0, 8, 8])


def test_effective_prevalence_by_hand():
    labels = multi_hot((0,), (0, 1), ())
    shares = effective_prevalence(labels, [2, 1, 1])
    assert shares.shape == (15,) and PREVALENCE_NAMES[-1] == NO_FINDING
    # 4 images: finding 0 on 3, finding 1 on 1, none on 1.
    np.testing.assert_allclose(shares, [0.75, 0.25] + [0] * 12 + [0.25])


@pytest.fixture
def pngs(tmp_path):
    """IMBALANCED's 16 flat gray PNGs, image i of value 10 i."""
    paths = []
    for index in range(len(IMBALANCED)):
        paths.append(str(tmp_path / "images" / f"{index:02d}.png"))
        os.makedirs(os.path.dirname(paths[-1]), exist_ok=True)
        Image.fromarray(np.full((12, 12), 10 * index, dtype=np.uint8)).save(paths[-1])
    return paths, IMBALANCED


def batch_ids(data):
    """Per batch of one pass over ``data``: the numbers of its images, and its labels."""
    return [(images.numpy()[:, 0, 0, 0].round().astype(int), labels.numpy())
            for images, labels in data]


# Unbounded, 16 images an epoch in batches of 5: an epoch's last batch is short, never mixed.
# Bounded to N steps: N whole batches, fewer or more images than the split holds.
@pytest.mark.parametrize("strategy, steps, batch_sizes", [
    ("oversample", 0, [5, 5, 5, 1]), ("undersample", 0, [5, 5, 5, 1]), ("none", 2, [5, 5]),
    ("oversample", 2, [5, 5]), ("undersample", 5, [5] * 5)])
def test_each_epoch_holds_its_images_in_whole_batches(pngs, strategy, steps, batch_sizes):
    batches = TrainingBatches(*pngs, PLAIN, BATCH, seed=3, resample=strategy,
                              steps_per_epoch=steps)
    per_epoch = batches.steps_per_epoch
    assert per_epoch == len(batch_sizes)
    ids = batch_ids(batches.epochs(0, 3))
    assert [len(image_ids) for image_ids, _ in ids] == batch_sizes * 3
    for epoch in range(3):
        epoch_batches = ids[per_epoch * epoch:per_epoch * (epoch + 1)]
        epoch_ids = np.concatenate([image_ids for image_ids, _ in epoch_batches])
        np.testing.assert_array_equal(np.bincount(epoch_ids, minlength=16),
                                      batches.counts(epoch))
        for image_ids, labels in epoch_batches:
            np.testing.assert_array_equal(labels, IMBALANCED[image_ids])
    if strategy == "none":
        # The walk: an epoch shows 10 different images, two epochs every image (a whole pass of
        # 16 and 4 of the next); what is logged is an epoch's own mix.
        assert batches.counts(0).max() == 1
        assert (batches.counts(0) + batches.counts(1)).min() == 1
        np.testing.assert_allclose(list(batches.prevalence(1).values()),
                                   effective_prevalence(IMBALANCED, batches.counts(1)))


def shares_seen(batches, epochs):
    """Effective prevalence of the labels the model receives over ``epochs`` epochs."""
    labels = np.concatenate([labels for _, labels in batch_ids(batches.epochs(0, epochs))])
    return effective_prevalence(labels, np.ones(len(labels)))


def test_oversampling_raises_every_rare_findings_share(pngs):
    batches = TrainingBatches(*pngs, PLAIN, BATCH, seed=0, resample="oversample")
    seen = shares_seen(batches, 50)
    natural = effective_prevalence(IMBALANCED, np.ones(16))
    expected = effective_prevalence(IMBALANCED, image_weights(IMBALANCED, "oversample"))
    # Findings 1 and 2 are rarer than finding 0: their factors are above 1.
    assert expected[1] > natural[1] and expected[2] > natural[2]
    assert seen[1] > natural[1] and seen[2] > natural[2]
    np.testing.assert_allclose(seen, expected, atol=0.05)
    # What is logged is what the model sees.
    np.testing.assert_allclose(
        seen, np.mean([list(batches.prevalence(epoch).values()) for epoch in range(50)], axis=0))


def test_undersampling_lowers_the_share_of_no_finding(pngs):
    batches = TrainingBatches(*pngs, PLAIN, BATCH, seed=0, resample="undersample")
    seen = shares_seen(batches, 50)
    # 8 of 16 images have no finding; undersampled to the 5 of finding 0: 5 / 13.
    assert seen[-1] < 0.5 - 0.05
    assert seen[-1] == pytest.approx(5 / 13, abs=0.05)
    assert batches.prevalence(0)[NO_FINDING] == pytest.approx(
        effective_prevalence(IMBALANCED, batches.counts(0))[-1])


@pytest.mark.parametrize("strategy, steps", [("oversample", 0), ("undersample", 0), ("none", 2),
                                             ("oversample", 3)])
def test_a_resumed_run_gets_the_epochs_of_an_uninterrupted_one(pngs, strategy, steps):
    def epochs(first, end):
        batches = TrainingBatches(*pngs, PLAIN, BATCH, seed=1, resample=strategy,
                                  steps_per_epoch=steps)
        ids = [image_ids for image_ids, _ in batch_ids(batches.epochs(first, end))]
        per_epoch = batches.steps_per_epoch
        return [np.concatenate(ids[start:start + per_epoch])
                for start in range(0, len(ids), per_epoch)]

    uninterrupted = epochs(0, 4)
    for resumed, whole in zip(epochs(2, 4), uninterrupted[2:], strict=True):
        np.testing.assert_array_equal(resumed, whole)
    # Epochs differ from each other, in their images and in their order.
    assert not np.array_equal(uninterrupted[0], uninterrupted[1])


# Bounded to one batch, an epoch shows 5 of the 16 images: it must still leave the cache whole,
# or tf.data discards it and the next epoch and the next phase's fit decode again. A shuffle
# buffer smaller than the split (as at 320 px on the full split) reads the cache only as the
# epoch goes, so nothing else completes it.
@pytest.mark.parametrize("strategy, steps", [("oversample", 0), ("none", 1)],
                         ids=["resampled", "bounded"])
@pytest.mark.parametrize("cache", ["memory", "disk"])
def test_later_epochs_and_phases_decode_no_image(pngs, tmp_path, monkeypatch, cache, strategy,
                                                 steps):
    monkeypatch.setattr(dataset, "SHUFFLE_BUFFER_BYTES", 3 * SIZE * SIZE)
    paths, labels = pngs
    batches = TrainingBatches(paths, labels, PLAIN, BATCH, seed=0, resample=strategy,
                              steps_per_epoch=steps,
                              cache_dir=str(tmp_path / "cache") if cache == "disk" else "")
    stream = iter(batches.epochs(0, 3))
    first_epoch = [next(stream) for _ in range(batches.steps_per_epoch)]
    for path in paths:
        os.remove(path)
    later = list(stream) + list(batches.epochs(3, 4))
    assert len(first_epoch) + len(later) == 4 * batches.steps_per_epoch


def test_none_is_the_shuffled_pipeline_of_before_every_image_once(pngs):
    paths, labels = pngs
    batches = TrainingBatches(paths, labels, PLAIN, BATCH, seed=4, resample="none")
    assert batches.steps_per_epoch is None
    before = image_dataset(paths, labels, PLAIN, BATCH, shuffle=True, seed=4)
    # fit reads the same dataset again each epoch, whatever its range.
    data = batches.epochs(0, 2)
    assert batches.epochs(1, 2) is data
    for _ in range(2):
        for (ids, _), (expected, _) in zip(batch_ids(data), batch_ids(before), strict=True):
            np.testing.assert_array_equal(ids, expected)
    np.testing.assert_array_equal(batches.counts(5), np.ones(16))
    assert batches.prevalence(5) == dict(zip(
        PREVALENCE_NAMES, [5 / 16, 2 / 16, 1 / 16] + [0.0] * 11 + [0.5]))
