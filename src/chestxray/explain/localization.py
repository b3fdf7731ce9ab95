"""Does a heatmap point at the radiologist's box? Pointing game and IoU.

Boxes come from BBox_List_2017.csv in the 1024x1024 release space; heatmaps can
have any resolution, so boxes are scaled by heatmap size / 1024 per axis.
"""
import numpy as np
import pandas as pd

from chestxray.nih.layout import RELEASE_SIZE

# The box table's coordinate columns.
BOX_COLUMNS = ["x", "y", "w", "h"]
# Centre baseline: a Gaussian whose spread is this share of the image side.
CENTRE_SIGMA_SHARE = 0.25


def boxed_findings(boxes, image_names):
    """The boxes of ``image_names``, grouped by (image, finding).

    boxes : a box table (``Image Index``, ``Finding Label``, x, y, w, h in
    release space). Returns ``{(image, finding): float array (k, 4)}`` in the
    table's sorted order.
    """
    chosen = boxes[boxes["Image Index"].isin(set(image_names))]
    return {key: group[BOX_COLUMNS].to_numpy(np.float64)
            for key, group in chosen.groupby(["Image Index", "Finding Label"])}


def box_masks(boxes_per_image, shape, release_size=RELEASE_SIZE):
    """Pixels covered by each image's boxes.

    boxes_per_image : sequence of length n, each an array (k, 4) of boxes
        (x, y, w, h) in release space (k >= 1; several boxes are united).
    shape : (H, W) of the heatmaps.
    Returns bool array (n, H, W): True where a pixel's centre lies inside a box.
    """
    height, width = shape
    centre_x = (np.arange(width) + 0.5) * release_size / width
    centre_y = (np.arange(height) + 0.5) * release_size / height
    masks = np.zeros((len(boxes_per_image), height, width), dtype=bool)
    for mask, boxes in zip(masks, boxes_per_image):
        for x, y, w, h in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
            inside_x = (centre_x >= x) & (centre_x < x + w)
            inside_y = (centre_y >= y) & (centre_y < y + h)
            mask |= inside_y[:, None] & inside_x[None, :]
    return masks


def peak_points(heatmaps):
    """Where each heatmap peaks, as a fraction of the image's width and height.

    heatmaps : float (n, h, w) at any resolution, e.g. Grad-CAM's native grid,
    whose cells are centred on their receptive fields. Returns float64 (n, 2):
    (x, y) of the centre of the maximal pixel (first in row-major order on
    ties), in 0..1; NaN where a map has no positive value (no evidence to
    point with).
    """
    heatmaps = np.asarray(heatmaps)
    n, height, width = heatmaps.shape
    flat = heatmaps.reshape(n, height * width)
    peaks = flat.argmax(axis=1)
    points = np.stack([(peaks % width + 0.5) / width, (peaks // width + 0.5) / height], axis=1)
    points[flat.max(axis=1) <= 0] = np.nan
    return points


def pointing_game(heatmaps, boxes_per_image, release_size=RELEASE_SIZE):
    """Hit or miss per image: does the heatmap's maximum fall inside one of its boxes?

    heatmaps : float (n, h, w); boxes_per_image : sequence of n arrays (k, 4)
    of (x, y, w, h) in release space. A map without positive values misses.
    Returns bool (n,).
    """
    points = peak_points(heatmaps) * release_size
    hits = np.zeros(len(points), dtype=bool)
    for index, ((x, y), boxes) in enumerate(zip(points, boxes_per_image)):
        left, top, width, height = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).T
        hits[index] = np.any((left <= x) & (x < left + width) & (top <= y) & (y < top + height))
    return hits


def heatmap_iou(heatmaps, masks, threshold):
    """Intersection over union of ``heatmap >= threshold`` with the box mask.

    heatmaps : float (n, H, W) scaled to 0..1; masks : bool (n, H, W);
    threshold : float in 0..1. Returns float64 (n,), 0 where both are empty.
    """
    hot = np.asarray(heatmaps) >= threshold
    masks = np.asarray(masks)
    intersection = (hot & masks).sum(axis=(1, 2))
    union = (hot | masks).sum(axis=(1, 2))
    return np.divide(intersection, union, out=np.zeros(len(hot)), where=union > 0)


def centre_heatmaps(n, shape):
    """Baseline heatmaps that ignore the image: a Gaussian peaked at its centre.

    Returns float32 (n, H, W) scaled to 0..1, identical for every image.
    """
    height, width = shape
    rows = (np.arange(height) - (height - 1) / 2) / (CENTRE_SIGMA_SHARE * height)
    columns = (np.arange(width) - (width - 1) / 2) / (CENTRE_SIGMA_SHARE * width)
    bump = np.exp(-0.5 * (rows[:, None] ** 2 + columns[None, :] ** 2))
    return np.broadcast_to((bump / bump.max()).astype(np.float32), (n, height, width))


def localization_table(findings, native_heatmaps, heatmaps, boxes_per_image, threshold,
                       release_size=RELEASE_SIZE):
    """Pointing game and IoU of model and centre baseline for each (image, finding).

    findings : (n,) finding explained by each heatmap; native_heatmaps : float
    (n, h, w), Grad-CAM at its layer's resolution, for the pointing game (an
    upsampled map of a coarse layer has flat maxima reaching the image edge, so
    its first maximal pixel is an artefact); heatmaps : float (n, H, W), the
    same maps upsampled to the image, for the IoU; boxes_per_image : n arrays
    (k, 4) in release space; threshold : IoU threshold.
    Returns a DataFrame with columns finding, hit, iou, centre_hit, centre_iou.
    """
    shape = np.shape(heatmaps)[1:]
    masks = box_masks(boxes_per_image, shape, release_size)
    baseline = centre_heatmaps(len(masks), shape)
    return pd.DataFrame({
        "finding": np.asarray(findings),
        "hit": pointing_game(native_heatmaps, boxes_per_image, release_size),
        "iou": heatmap_iou(heatmaps, masks, threshold),
        "centre_hit": pointing_game(baseline, boxes_per_image, release_size),
        "centre_iou": heatmap_iou(baseline, masks, threshold),
    })


def summarise_localization(table):
    """Per-finding means of a :func:`localization_table` plus an "all" row over every box.

    Returns a DataFrame indexed by finding (then "all") with columns boxes (int),
    hit_rate, iou, centre_hit_rate, centre_iou (float).
    """
    scores = table.rename(columns={"hit": "hit_rate", "centre_hit": "centre_hit_rate"})
    columns = ["hit_rate", "iou", "centre_hit_rate", "centre_iou"]
    per_finding = scores.groupby("finding")[columns].mean()
    per_finding.insert(0, "boxes", scores.groupby("finding").size())
    overall = pd.DataFrame([[len(scores), *scores[columns].mean()]], index=["all"],
                           columns=["boxes", *columns])
    summary = pd.concat([per_finding, overall])
    return summary.astype({"boxes": int, **dict.fromkeys(columns, float)})
