"""Sample the embedded study: patients, follow-up images, findings and lesion boxes.

The embedded default dataset is described by three tables in NIH layout, which
:mod:`chestxray.acquire.phantom` renders into radiographs:

* the label table (``Data_Entry_2017_v2020.csv`` columns),
* the box table (``BBox_List_2017.csv`` columns; one box per finding per image,
  in the 1024x1024 release space NIH uses),
* the anatomy table: per-image body geometry (unit coordinates, 0..1).

Everything is drawn from one ``numpy.random.Generator`` so a seed fixes the study.
"""
import numpy as np
import pandas as pd

from chestxray.nih.labels import FINDINGS, LABEL_TABLE_COLUMNS, OFFICIAL_PREVALENCE, format_findings
from chestxray.nih.layout import RELEASE_SIZE

SINGLE_IMAGE_PATIENTS = 0.57  # share of patients with one image (official table)
MEAN_IMAGES_PER_PATIENT = 3.6
MAX_IMAGES_PER_PATIENT = 60
PERSISTENCE = 0.8  # chance a patient's finding shows on a given follow-up
# First images show every finding, so the image-weighted persistence is higher.
EFFECTIVE_PERSISTENCE = 0.84
ABNORMAL_PATIENTS = 0.62  # tuned so ~54% of images read "No Finding"

ANATOMY_COLUMNS = (
    "Image Index", "body_half_width", "lung_top", "lung_bottom",
    "lung_half_width", "mediastinum_half_width", "heart_half_width",
    "heart_height", "rib_spacing", "shift_x", "shift_y", "exposure",
)


def images_per_patient(n_patients, rng):
    """Follow-up counts, shape (n_patients,) int: 57% single, long tail, mean ~3.6."""
    single = rng.random(n_patients) < SINGLE_IMAGE_PATIENTS
    tail_mean = (MEAN_IMAGES_PER_PATIENT - SINGLE_IMAGE_PATIENTS) / (1 - SINGLE_IMAGE_PATIENTS)
    # Geometric tail starting at 2 with the mean that keeps the overall mean at 3.6.
    tail = 1 + rng.geometric(1.0 / (tail_mean - 1), n_patients)
    return np.where(single, 1, np.minimum(tail, MAX_IMAGES_PER_PATIENT))


def patient_findings(n_patients, min_positive_patients, rng):
    """Persistent findings per patient, shape (n_patients, 14) bool.

    Per-class rates are chosen so that, after persistence, image-level
    prevalence matches the official table; classes with fewer than
    ``min_positive_patients`` carriers get extra carriers (drawn at random among
    abnormal patients) so every class can be evaluated on every split.
    """
    target = np.array([OFFICIAL_PREVALENCE[name] for name in FINDINGS])
    per_abnormal = target / (ABNORMAL_PATIENTS * EFFECTIVE_PERSISTENCE)
    abnormal = rng.random(n_patients) < ABNORMAL_PATIENTS
    findings = (rng.random((n_patients, len(FINDINGS))) < per_abnormal) & abnormal[:, None]
    abnormal = findings.any(axis=1)
    abnormal_ids = np.flatnonzero(abnormal)
    for column in range(len(FINDINGS)):
        missing = min_positive_patients - int(findings[:, column].sum())
        if missing > 0:
            candidates = abnormal_ids[~findings[abnormal_ids, column]]
            findings[rng.choice(candidates, missing, replace=False), column] = True
    return findings


def patient_anatomy(rng):
    """Body geometry of one patient in unit image coordinates (dict of floats)."""
    lung_top = rng.uniform(0.10, 0.17)
    return {
        "body_half_width": rng.uniform(0.40, 0.47),
        "lung_top": lung_top,
        "lung_bottom": rng.uniform(0.74, 0.82),
        "lung_half_width": rng.uniform(0.15, 0.18),
        "mediastinum_half_width": rng.uniform(0.055, 0.075),
        "heart_half_width": rng.uniform(0.14, 0.17),
        "heart_height": rng.uniform(0.20, 0.25),
        "rib_spacing": rng.uniform(0.065, 0.085),
    }


def lung_center_x(anatomy, side):
    """Horizontal centre of the lung on image side ``side`` (-1 left, +1 right)."""
    offset = anatomy["mediastinum_half_width"] + anatomy["lung_half_width"]
    return 0.5 + anatomy["shift_x"] + side * offset


def lesion_box(finding, anatomy, side, rng):
    """Where ``finding`` sits for this anatomy: (x, y, w, h) in unit coordinates."""
    top = anatomy["lung_top"] + anatomy["shift_y"]
    bottom = anatomy["lung_bottom"] + anatomy["shift_y"]
    height = bottom - top
    lung_w = 2 * anatomy["lung_half_width"]
    cx = lung_center_x(anatomy, side)
    left = cx - anatomy["lung_half_width"]
    lateral = left if side < 0 else left + lung_w  # outer edge of that lung
    if finding == "Cardiomegaly":
        w = 2 * anatomy["heart_half_width"] * rng.uniform(1.3, 1.45)
        h = anatomy["heart_height"] * rng.uniform(1.1, 1.2)
        x = 0.5 + anatomy["shift_x"] + 0.03 - w / 2
        return x, bottom - h + 0.02, w, h
    if finding in ("Edema", "Emphysema"):
        span = anatomy["mediastinum_half_width"] + lung_w
        x0 = 0.5 + anatomy["shift_x"] - span
        if finding == "Edema":  # perihilar, both sides
            return x0 + 0.04, top + 0.25 * height, 2 * span - 0.08, 0.45 * height
        return x0, top, 2 * span, height
    if finding == "Hernia":  # retrocardiac, just above the diaphragm
        w, h = rng.uniform(0.09, 0.12), rng.uniform(0.07, 0.09)
        return 0.5 + anatomy["shift_x"] - w / 2 + 0.01, bottom - h - 0.06, w, h
    if finding == "Effusion":  # costophrenic angle
        h = height * rng.uniform(0.22, 0.3)
        return left, bottom - h, lung_w, h
    if finding == "Pneumothorax":  # apical-lateral rim
        w, h = lung_w * rng.uniform(0.35, 0.5), height * rng.uniform(0.35, 0.5)
        x = left if side < 0 else left + lung_w - w
        return x, top, w, h
    if finding == "Pleural_Thickening":  # band along the lateral chest wall
        w, h = rng.uniform(0.035, 0.05), height * rng.uniform(0.3, 0.45)
        x = lateral if side < 0 else lateral - w
        return x, top + height * rng.uniform(0.1, 0.4), w, h
    size = {
        "Nodule": (0.045, 0.06), "Mass": (0.09, 0.13), "Atelectasis": (0.10, 0.14),
        "Consolidation": (0.13, 0.17), "Pneumonia": (0.14, 0.19),
        "Infiltration": (0.13, 0.18), "Fibrosis": (0.12, 0.16),
    }[finding]
    w = h = rng.uniform(*size)
    zone = {"Atelectasis": (0.55, 0.8), "Pneumonia": (0.5, 0.8), "Fibrosis": (0.55, 0.85)}
    v = rng.uniform(*zone.get(finding, (0.2, 0.75)))
    x = cx + rng.uniform(-0.5, 0.5) * max(lung_w - w, 0) - w / 2
    return x, top + v * height - h / 2, w, h


def sample_study(n_patients, seed, min_positive_patients=12):
    """Sample the embedded study.

    Returns
    -------
    labels : DataFrame with ``LABEL_TABLE_COLUMNS`` (one row per image).
    boxes : DataFrame with columns Image Index, Finding Label, x, y, w, h
        (float, 1024x1024 release space), one row per finding per image.
    anatomy : DataFrame with ``ANATOMY_COLUMNS`` (unit coordinates).
    """
    rng = np.random.default_rng(seed)
    counts = images_per_patient(n_patients, rng)
    findings = patient_findings(n_patients, min_positive_patients, rng)
    label_rows, box_rows, anatomy_rows = [], [], []
    for patient in range(n_patients):
        base = patient_anatomy(rng)
        sides = rng.choice([-1, 1], len(FINDINGS))
        gender = "M" if rng.random() < 0.565 else "F"
        age = int(np.clip(rng.normal(47, 16.6), 1, 94))
        ap_share = 0.6 if findings[patient].any() else 0.3  # sicker patients are imaged AP
        width, height = rng.integers(2400, 3056, 2)
        spacing = rng.choice([0.139, 0.143, 0.168])
        lesion_seed = int(rng.integers(2**32))
        for follow_up in range(counts[patient]):
            name = f"{patient + 1:08d}_{follow_up:03d}.png"
            shown = findings[patient] & (rng.random(len(FINDINGS)) < PERSISTENCE)
            if follow_up == 0:  # the first study shows every persistent finding
                shown = findings[patient]
            view = "AP" if rng.random() < ap_share else "PA"
            anatomy = dict(base, shift_x=rng.normal(0, 0.012), shift_y=rng.normal(0, 0.01),
                           exposure=rng.normal(1.0, 0.06))
            if view == "AP":  # magnified heart, shallower inspiration
                anatomy["heart_half_width"] *= 1.08
                anatomy["lung_bottom"] -= 0.03
            label_rows.append((name, format_findings(shown), follow_up, patient + 1,
                               min(age + follow_up // 3, 95), gender, view,
                               int(width), int(height), spacing, spacing))
            anatomy_rows.append((name, *(anatomy[c] for c in ANATOMY_COLUMNS[1:])))
            # The same lesion sits at the same place on every follow-up.
            lesion_rng = np.random.default_rng(lesion_seed)
            for column in np.flatnonzero(shown):
                x, y, w, h = lesion_box(FINDINGS[column], anatomy, sides[column], lesion_rng)
                box_rows.append((name, FINDINGS[column],
                                 *(round(v * RELEASE_SIZE, 2) for v in (x, y, w, h))))
    labels = pd.DataFrame(label_rows, columns=list(LABEL_TABLE_COLUMNS))
    boxes = pd.DataFrame(box_rows, columns=["Image Index", "Finding Label", "x", "y", "w", "h"])
    anatomy = pd.DataFrame(anatomy_rows, columns=list(ANATOMY_COLUMNS))
    return labels, boxes, anatomy
