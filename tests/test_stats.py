"""Class frequencies, balancing weights and pixel statistics."""
import numpy as np
import pytest
from PIL import Image

from chestxray.data.stats import (
    StatsFileError, class_weights, pixel_statistics, positive_frequency, read_stats,
)


def test_positive_frequency_per_class():
    labels = np.zeros((4, 14))
    labels[:, 0] = [1, 1, 1, 0]
    labels[0, 13] = 1
    freq = positive_frequency(labels)
    assert freq.shape == (14,)
    assert freq[0] == 0.75 and freq[13] == 0.25 and freq[5] == 0.0


def test_class_weights_balance_positive_and_negative_contributions():
    freq_pos = np.array([0.75, 0.25, 0.02] + [0.1] * 11)
    w_pos, w_neg = class_weights(freq_pos)
    np.testing.assert_allclose(w_pos[:3], [0.25, 0.75, 0.98])
    np.testing.assert_allclose(w_neg[:3], [0.75, 0.25, 0.02])
    np.testing.assert_allclose(freq_pos * w_pos, (1 - freq_pos) * w_neg)


def test_positive_frequency_refuses_an_empty_split():
    with pytest.raises(ValueError, match="non-empty"):
        positive_frequency(np.zeros((0, 14)))


def test_pixel_statistics_of_known_images(tmp_path):
    paths = []
    for index, value in enumerate([0, 100, 200]):
        path = tmp_path / f"{index}.png"
        Image.new("L", (16, 16), value).save(path)
        paths.append(path)
    mean, std = pixel_statistics(paths, image_size=8, max_images=10, seed=0)
    assert mean == pytest.approx(100.0)
    assert std == pytest.approx(np.std([0, 100, 200]))


def test_a_missing_or_incomplete_stats_file_is_one_clear_error(tmp_path):
    with pytest.raises(StatsFileError, match="stats.json: cannot read the training statistics"):
        read_stats(tmp_path / "stats.json")
    (tmp_path / "stats.json").write_text('{"pixel_mean": 80.0, "pixel_std": 50.0}')
    with pytest.raises(StatsFileError, match="missing pos_weights, neg_weights"):
        read_stats(tmp_path / "stats.json")
