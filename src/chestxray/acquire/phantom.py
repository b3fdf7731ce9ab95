"""Render radiograph-like chest images from the embedded study's tables.

A frontal chest film is drawn as attenuation layers on a unit-coordinate grid:
soft-tissue body, two air-filled lung fields, mediastinum and spine, heart
shadow, ribs and clavicles, lung vessel markings, then each finding's signature
inside its box, then blur and detector noise. Image side -1 is the image's left,
which on a PA film is the patient's right.
"""
import numpy as np
from scipy import ndimage

from chestxray.acquire.cohort import lung_center_x
from chestxray.nih.layout import RELEASE_SIZE

AIR, SOFT_TISSUE, LUNG, HEART, BONE = 0.04, 0.52, 0.20, 0.60, 0.14


def _ellipse(u, v, cx, cy, rx, ry):
    """Signed inside-ness of an ellipse: 1 at the centre, 0 on the rim, <0 outside."""
    return 1.0 - ((u - cx) / rx) ** 2 - ((v - cy) / ry) ** 2


def _smooth_mask(distance, softness):
    """Map a signed distance-like field to 0..1 with a soft edge."""
    return np.clip(distance / softness, 0.0, 1.0)


def _box_mask(u, v, box, softness=0.15):
    """Soft elliptical mask filling ``box`` = (x, y, w, h) in unit coordinates."""
    x, y, w, h = box
    return _smooth_mask(_ellipse(u, v, x + w / 2, y + h / 2, w / 2, h / 2), softness)


def _lungs(u, v, anatomy):
    """Mask (S, S) float of both lung fields, with a domed diaphragm."""
    top = anatomy["lung_top"] + anatomy["shift_y"]
    bottom = anatomy["lung_bottom"] + anatomy["shift_y"]
    masks = []
    for side in (-1, 1):
        cx = lung_center_x(anatomy, side)
        # Half-ellipse whose lower edge is the hemidiaphragm dome.
        mask = _ellipse(u, v, cx, bottom, anatomy["lung_half_width"], bottom - top)
        dome = bottom - 0.06 * np.clip(1 - ((u - cx) / anatomy["lung_half_width"]) ** 2, 0, 1)
        masks.append(_smooth_mask(mask, 0.08) * _smooth_mask(dome - v, 0.01))
    return np.maximum(*masks)


def _ribs(u, v, anatomy, lungs):
    """Posterior rib arcs and clavicles, masked to the lungs (S, S) float."""
    spacing = anatomy["rib_spacing"]
    centre = 0.5 + anatomy["shift_x"]
    arc = v - 0.35 * (u - centre) ** 2 / 0.25  # ribs droop laterally
    phase = (arc - anatomy["lung_top"]) / spacing
    ribs = np.clip(np.cos(2 * np.pi * phase) - 0.55, 0, None) / 0.45
    clavicle_y = anatomy["lung_top"] + anatomy["shift_y"] + 0.02
    clavicles = np.exp(-((v - clavicle_y + 0.15 * np.abs(u - centre)) / 0.012) ** 2)
    return ribs * lungs * 0.7 + clavicles * (np.abs(u - centre) > 0.05)


def _vessels(shape, rng):
    """Lung markings: smoothed noise, (S, S) float with zero mean."""
    size = shape[0]
    field = ndimage.gaussian_filter(rng.standard_normal(shape), size / 48)
    return field / (field.std() + 1e-9)


def _body(u, v, anatomy):
    """Soft-tissue silhouette (S, S) float: trunk, shoulders and neck."""
    centre = 0.5 + anatomy["shift_x"]
    trunk = _smooth_mask(_ellipse(u, v, centre, 0.62, anatomy["body_half_width"], 0.62), 0.05)
    neck = _smooth_mask(_ellipse(u, v, centre, 0.0, 0.09, 0.2), 0.1)
    return np.maximum(trunk, neck)


def render_finding(finding, image, u, v, box, lungs, rng):
    """Draw one finding's signature into ``image`` (S, S) float32, in place.

    ``box`` is (x, y, w, h) in unit coordinates; the signature stays inside it.
    """
    x, y, w, h = box
    inside = _box_mask(u, v, box)
    if finding == "Cardiomegaly":
        image[:] = np.maximum(image, HEART * _box_mask(u, v, box, 0.1) + 0.05)
    elif finding in ("Nodule", "Mass"):
        image += 0.32 * _box_mask(u, v, box, 0.3 if finding == "Nodule" else 0.15)
    elif finding == "Consolidation":
        bronchi = np.abs(np.sin((u - x) * 90 + (v - y) * 40)) < 0.15
        image += inside * (0.34 - 0.12 * bronchi)
    elif finding in ("Pneumonia", "Infiltration"):
        patches = ndimage.gaussian_filter(rng.random(u.shape), u.shape[0] / 40)
        patches = np.clip((patches - patches.mean()) / (patches.std() + 1e-9), 0, None)
        strength = 0.28 if finding == "Pneumonia" else 0.16
        image += strength * inside * (0.5 + patches) * np.maximum(lungs, 0.3)
    elif finding == "Atelectasis":  # plate-like band with volume loss above it
        angle = rng.uniform(-0.4, 0.4)
        band = np.exp(-(((v - (y + h / 2)) - angle * (u - x - w / 2)) / (0.12 * h)) ** 2)
        image += 0.3 * band * _box_mask(u, v, box, 0.05)
    elif finding == "Effusion":  # fluid with a meniscus climbing laterally
        lateral = (u - x) / w if rng.random() < 0.5 else 1 - (u - x) / w
        meniscus = y + h * (0.6 - 0.6 * lateral ** 2)
        fluid = _smooth_mask(v - meniscus, 0.02) * (u > x) * (u < x + w) * (v < y + h)
        image[:] = image * (1 - fluid) + (SOFT_TISSUE + 0.06) * fluid
    elif finding == "Edema":  # perihilar haze and septal lines
        haze = _box_mask(u, v, box, 0.6)
        kerley = (np.abs(np.sin(v * 260)) > 0.93) * (v > y + 0.6 * h)
        image += lungs * (0.2 * haze + 0.08 * kerley * inside)
    elif finding == "Emphysema":  # hyperlucent lungs, flattened diaphragm
        image -= 0.09 * lungs * inside
        image[(v > y + h - 0.03) & (v < y + h + 0.02) & (lungs > 0)] = LUNG - 0.05
    elif finding == "Fibrosis":  # reticular network
        net = (np.abs(np.sin(u * 140 + 3 * np.sin(v * 50))) < 0.25) | \
              (np.abs(np.sin(v * 140 + 3 * np.sin(u * 50))) < 0.25)
        image += 0.16 * net * inside
    elif finding == "Hernia":  # retrocardiac opacity with an air-fluid level
        bubble = _box_mask(u, v, box, 0.2)
        air = bubble * (v < y + 0.45 * h)
        image += 0.25 * bubble - 0.45 * air
    elif finding == "Pleural_Thickening":
        image += 0.3 * _box_mask(u, v, box, 0.3)
    elif finding == "Pneumothorax":  # no lung markings beyond a pleural line
        rim = _box_mask(u, v, box, 0.2) * lungs
        line = np.exp(-(_ellipse(u, v, x + w / 2, y + h / 2, w / 2, h / 2) / 0.08) ** 2)
        image[:] = image * (1 - rim) + (LUNG - 0.12) * rim + 0.14 * line * lungs
    else:
        raise ValueError(f"no renderer for finding {finding!r}")


def render_radiograph(anatomy, boxes, size, seed):
    """Render one frontal chest radiograph.

    Parameters
    ----------
    anatomy : mapping with the anatomy-table fields (unit coordinates).
    boxes : sequence of (finding, x, y, w, h), box in the 1024 release space.
    size : int, output width and height in pixels.
    seed : int, seeds texture and noise for this image.

    Returns
    -------
    ndarray of uint8, shape (size, size).
    """
    # Separate streams, so adding a finding leaves anatomy and noise unchanged.
    anatomy_rng, lesion_rng, noise_rng = (np.random.default_rng([seed, k]) for k in range(3))
    v, u = np.mgrid[0:size, 0:size].astype(np.float32) / size
    centre = 0.5 + anatomy["shift_x"]
    body = _body(u, v, anatomy)
    lungs = _lungs(u, v, anatomy)
    image = AIR + (SOFT_TISSUE - AIR) * body
    image = image * (1 - lungs) + (LUNG + 0.03 * _vessels(u.shape, anatomy_rng)) * lungs
    hilum = np.exp(-((np.abs(u - centre) - 0.11) ** 2 + (v - 0.45) ** 2) / 0.004)
    image += 0.08 * hilum * lungs
    spine = _smooth_mask(1 - np.abs(u - centre) / 0.045, 0.3) * (v > 0.05)
    image = np.maximum(image, (SOFT_TISSUE + 0.08) * spine * body)
    heart_box = (centre + 0.03 - anatomy["heart_half_width"],
                 anatomy["lung_bottom"] + anatomy["shift_y"] - anatomy["heart_height"] + 0.02,
                 2 * anatomy["heart_half_width"], anatomy["heart_height"])
    image = np.maximum(image, HEART * _box_mask(u, v, heart_box, 0.1) + 0.05 * body)
    image += BONE * _ribs(u, v, anatomy, lungs)
    for finding, *box in boxes:
        render_finding(finding, image, u, v, np.asarray(box) / RELEASE_SIZE, lungs, lesion_rng)
    image = ndimage.gaussian_filter(image * anatomy["exposure"], size / 256)
    image += noise_rng.normal(0, 0.025, image.shape)
    return np.clip(image * 255, 0, 255).astype(np.uint8)
