"""Resampling (train.resample): image weights, seeded epoch draws, and the tf.data batches."""
import math
import os

import numpy as np
import pytest
from PIL import Image

from chestxray.core.params import SCHEMA
from chestxray.data.dataset import TrainingBatches, image_dataset
from chestxray.data.preprocessing import Preprocessing
from chestxray.data.resampling import (
    PREVALENCE_NAMES, STRATEGIES, effective_prevalence, epoch_counts, epoch_shuffle_seed,
    image_weights,
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


@pytest.mark.parametrize("strategy", ["oversample", "undersample"])
def test_each_epoch_holds_the_drawn_images_in_whole_batches(pngs, strategy):
    batches = TrainingBatches(*pngs, PLAIN, BATCH, seed=3, resample=strategy)
    assert batches.steps_per_epoch == 4
    ids = batch_ids(batches.epochs(0, 3))
    # 16 images an epoch in batches of 5: an epoch's last batch is short, never mixed.
    assert [len(image_ids) for image_ids, _ in ids] == [5, 5, 5, 1] * 3
    for epoch in range(3):
        epoch_ids = np.concatenate([image_ids for image_ids, _ in ids[4 * epoch:4 * epoch + 4]])
        np.testing.assert_array_equal(np.bincount(epoch_ids, minlength=16),
                                      batches.counts(epoch))
        for image_ids, labels in ids[4 * epoch:4 * epoch + 4]:
            np.testing.assert_array_equal(labels, IMBALANCED[image_ids])


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


@pytest.mark.parametrize("strategy", ["oversample", "undersample"])
def test_a_resumed_run_gets_the_epochs_of_an_uninterrupted_one(pngs, strategy):
    def epochs(first, end):
        batches = TrainingBatches(*pngs, PLAIN, BATCH, seed=1, resample=strategy)
        ids = [image_ids for image_ids, _ in batch_ids(batches.epochs(first, end))]
        return [np.concatenate(ids[start:start + 4]) for start in range(0, len(ids), 4)]

    uninterrupted = epochs(0, 4)
    for resumed, whole in zip(epochs(2, 4), uninterrupted[2:], strict=True):
        np.testing.assert_array_equal(resumed, whole)
    # Epochs differ from each other, in their images and in their order.
    assert not np.array_equal(uninterrupted[0], uninterrupted[1])


@pytest.mark.parametrize("cache", ["memory", "disk"])
def test_resampled_epochs_decode_each_image_once(pngs, tmp_path, cache):
    paths, labels = pngs
    batches = TrainingBatches(paths, labels, PLAIN, BATCH, seed=0, resample="oversample",
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
