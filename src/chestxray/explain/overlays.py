"""Pictures a person can read: heatmaps blended onto radiographs, boxes, side-by-side panels."""
import matplotlib
import numpy as np

from chestxray.explain.gradcam import upsample
from chestxray.nih.layout import RELEASE_SIZE

# Overlays are drawn at the source image's resolution, scaled down beyond this.
MAX_DISPLAY_SIDE = 1024
# Gap between the plain image and the overlay in a panel, pixels.
PANEL_GAP = 8


def overlay(gray, heatmap, alpha=0.4, colormap="jet"):
    """Blend a heatmap onto a radiograph.

    gray : uint8 (H, W); heatmap : float (H, W) in 0..1.
    Returns uint8 RGB array of shape (H, W, 3).
    """
    colours = matplotlib.colormaps[colormap](heatmap)[..., :3]
    base = np.repeat(gray[..., None] / 255.0, 3, axis=-1)
    return np.round(255 * ((1 - alpha) * base + alpha * colours)).astype(np.uint8)


def draw_box(rgb, box, colour=(0, 255, 0)):
    """Outline ``box`` = (x, y, w, h) in pixel coordinates on an RGB uint8 array, in place."""
    height, width = rgb.shape[:2]
    x0, y0, w, h = box
    left, top = int(np.clip(x0, 0, width - 1)), int(np.clip(y0, 0, height - 1))
    right, bottom = int(np.clip(x0 + w, 0, width - 1)), int(np.clip(y0 + h, 0, height - 1))
    rgb[top, left:right + 1] = rgb[bottom, left:right + 1] = colour
    rgb[top:bottom + 1, left] = rgb[top:bottom + 1, right] = colour
    return rgb


def overlay_panel(gray, heatmap, boxes=()):
    """The plain radiograph beside the heatmap blended onto it.

    gray : uint8 (H, W) at the resolution to show; heatmap : float (h, w) in
    0..1 on any grid (scaled bilinearly to H x W); boxes : (x, y, w, h) in the
    1024 x 1024 release space, outlined on both halves. Returns uint8 RGB
    (H, 2W + PANEL_GAP, 3).
    """
    height, width = gray.shape
    plain = np.repeat(gray[..., None], 3, axis=-1)
    blended = overlay(gray, upsample(heatmap, (height, width)))
    scale = np.array([width, height, width, height]) / RELEASE_SIZE
    for box in boxes:
        draw_box(plain, np.asarray(box, np.float64) * scale)
        draw_box(blended, np.asarray(box, np.float64) * scale)
    gap = np.full((height, PANEL_GAP, 3), 255, np.uint8)
    return np.concatenate([plain, gap, blended], axis=1)
