"""Pointing game and IoU on hand-made heatmaps and boxes."""
import numpy as np
import pandas as pd
import pytest

from chestxray.explain.localization import (
    box_masks, boxed_findings, centre_heatmaps, heatmap_iou, localization_table, peak_points,
    pointing_game, summarise_localization,
)


def test_boxes_are_scaled_from_release_space():
    # (256, 512, 256, 128) in 1024 space is columns 2..3, rows 4 of an 8x8 map.
    masks = box_masks([np.array([[256.0, 512.0, 256.0, 128.0]])], (8, 8))
    expected = np.zeros((8, 8), bool)
    expected[4, 2:4] = True
    assert masks.shape == (1, 8, 8) and (masks[0] == expected).all()
    # Same box on a 16x16 map: twice the resolution, four times the pixels.
    assert box_masks([np.array([[256.0, 512.0, 256.0, 128.0]])], (16, 16)).sum() == 8


def test_several_boxes_of_one_finding_are_united():
    boxes = np.array([[0, 0, 128, 128], [896, 896, 128, 128]], dtype=float)
    mask = box_masks([boxes], (8, 8))[0]
    assert mask.sum() == 2 and mask[0, 0] and mask[7, 7]


def test_pointing_game_hits_and_misses():
    box = [np.array([[256.0, 256.0, 384.0, 384.0]])] * 4   # pixels 2..4 of an 8x8 grid
    heatmaps = np.zeros((4, 8, 8))
    heatmaps[0, 3, 3] = 1.0          # peak inside
    heatmaps[1, 6, 6] = 1.0          # peak outside
    heatmaps[1, 3, 3] = 0.9          # strong but not the maximum
    heatmaps[2, 4, 4] = 0.2          # weak, but still the maximum: a hit
    # heatmaps[3] is all zero: no evidence to point with, a miss even though
    # its first pixel would be compared otherwise.
    assert pointing_game(heatmaps, box).tolist() == [True, False, True, False]
    assert pointing_game(np.ones((1, 1, 1)), [np.array([[0.0, 0.0, 1024.0, 1024.0]])]) == [True]


def test_peaks_of_a_coarse_grid_are_cell_centres():
    # A 2x2 Grad-CAM whose bottom-right cell is hottest points at (768, 768).
    coarse = np.array([[[0.1, 0.2], [0.3, 1.0]]])
    assert peak_points(coarse)[0] * 1024 == pytest.approx([768.0, 768.0])
    assert pointing_game(coarse, [np.array([[700.0, 700.0, 100.0, 100.0]])]) == [True]
    assert pointing_game(coarse, [np.array([[900.0, 900.0, 100.0, 100.0]])]) == [False]
    # Several boxes of one finding: inside any of them is a hit.
    boxes = np.array([[0.0, 0.0, 10.0, 10.0], [700.0, 700.0, 100.0, 100.0]])
    assert pointing_game(coarse, [boxes]) == [True]
    assert np.isnan(peak_points(np.zeros((1, 2, 2)))).all()


def test_iou_of_thresholded_heatmap():
    mask = np.zeros((1, 10, 10), bool)
    mask[0, 0:4, 0:5] = True                   # 20 pixels
    heatmap = np.zeros((1, 10, 10))
    heatmap[0, 2:6, 0:5] = 0.8                 # 20 pixels, 10 of them in the box
    heatmap[0, 9, 9] = 0.3                     # below the threshold
    assert heatmap_iou(heatmap, mask, 0.5) == pytest.approx([10 / 30])
    assert heatmap_iou(heatmap, mask, 0.2) == pytest.approx([10 / 31])
    assert heatmap_iou(heatmap, mask, 0.9) == pytest.approx([0.0])
    assert heatmap_iou(np.zeros((1, 4, 4)), np.zeros((1, 4, 4), bool), 0.5) == [0.0]


def test_centre_baseline_peaks_at_the_centre():
    maps = centre_heatmaps(2, (8, 8))
    assert maps.shape == (2, 8, 8) and maps.max() == pytest.approx(1.0)
    peak = np.unravel_index(maps[0].argmax(), (8, 8))
    assert peak in {(3, 3), (3, 4), (4, 3), (4, 4)}
    centre_box = [np.array([[384.0, 384.0, 256.0, 256.0]])] * 2
    corner_box = [np.array([[0.0, 0.0, 256.0, 256.0]])] * 2
    assert pointing_game(maps, centre_box).all() and not pointing_game(maps, corner_box).any()


def test_table_and_summary_compare_model_with_centre_baseline():
    boxes = [np.array([[0.0, 0.0, 300.0, 300.0]])] * 3     # top-left: rows/cols 0..1 of 8x8
    heatmaps = np.zeros((3, 8, 8))
    heatmaps[0, 0:2, 0:2] = 1.0                              # exact: hit, IoU 1
    heatmaps[1, 0, 0] = 1.0                                  # hit, IoU 1/4
    heatmaps[2, 7, 7] = 1.0                                  # miss, IoU 0
    native = heatmaps[:, ::4, ::4]                           # 2x2 grids: peaks at cell centres
    native[2, 1, 1] = 1.0
    table = localization_table(["Mass", "Mass", "Nodule"], native, heatmaps, boxes, 0.5)
    assert table["hit"].tolist() == [True, True, False]
    assert not table["centre_hit"].any()
    summary = summarise_localization(table)
    assert summary.loc["Mass", "hit_rate"] == 1.0 and summary.loc["Nodule", "hit_rate"] == 0.0
    assert summary.loc["Mass", "iou"] == pytest.approx((1 + 0.25) / 2)
    assert summary.loc["all", "boxes"] == 3
    assert summary.loc["all", "hit_rate"] == pytest.approx(2 / 3)
    assert summary.loc["all", "centre_hit_rate"] == 0.0


def test_boxes_are_grouped_by_image_and_finding_for_the_images_asked():
    boxes = pd.DataFrame({
        "Image Index": ["a.png", "a.png", "a.png", "b.png", "c.png"],
        "Finding Label": ["Mass", "Mass", "Nodule", "Mass", "Mass"],
        "x": [1, 2, 3, 4, 5], "y": [0, 0, 0, 0, 0], "w": [9, 9, 9, 9, 9], "h": [8, 8, 8, 8, 8]})
    grouped = boxed_findings(boxes, ["a.png", "c.png"])
    assert list(grouped) == [("a.png", "Mass"), ("a.png", "Nodule"), ("c.png", "Mass")]
    np.testing.assert_array_equal(grouped[("a.png", "Mass")], [[1, 0, 9, 8], [2, 0, 9, 8]])
    assert boxed_findings(boxes, []) == {}
