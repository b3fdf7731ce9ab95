"""The embedded study: deterministic, ChestX-ray14-like, findings visible in their boxes."""
import hashlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from chestxray.acquire.cohort import sample_study
from chestxray.acquire.embedded import ANATOMY_TABLE, render_dataset, write_study
from chestxray.acquire.phantom import render_radiograph
from chestxray.nih import layout
from chestxray.nih.labels import FINDINGS, OFFICIAL_NO_FINDING, OFFICIAL_PREVALENCE, parse_findings
from chestxray.nih.layout import RELEASE_SIZE

from faults import in_a_terminal


@pytest.fixture(scope="module")
def study():
    return sample_study(700, seed=2017, min_positive_patients=12)


def folder_digest(folder):
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_same_seed_gives_the_same_bytes(tmp_path):
    write_study(tmp_path / "a", 40, seed=5, min_positive_patients=2)
    write_study(tmp_path / "b", 40, seed=5, min_positive_patients=2)
    write_study(tmp_path / "c", 40, seed=6, min_positive_patients=2)
    assert folder_digest(tmp_path / "a") == folder_digest(tmp_path / "b")
    assert folder_digest(tmp_path / "a") != folder_digest(tmp_path / "c")
    render_dataset(tmp_path / "a", tmp_path / "ra", image_size=64)
    render_dataset(tmp_path / "b", tmp_path / "rb", image_size=64)
    assert folder_digest(tmp_path / "ra") == folder_digest(tmp_path / "rb")


def test_rendered_folder_is_nih_layout(tmp_path):
    write_study(tmp_path / "study", 15, seed=1, min_positive_patients=1)
    summary = render_dataset(tmp_path / "study", tmp_path / "dataset", image_size=64)
    table = layout.read_dataset(tmp_path / "dataset")
    assert str(len(table)) in summary
    assert all(pd.io.common.file_exists(p) for p in table["path"])
    assert (tmp_path / "dataset" / layout.BOX_TABLE).read_text().startswith(
        "Image Index,Finding Label,Bbox [x,y,w,h],,,\n")
    assert not (tmp_path / "dataset" / ANATOMY_TABLE).exists()


def test_patients_follow_ups_and_demographics_look_like_chestxray14(study):
    labels, _, _ = study
    per_patient = labels.groupby("Patient ID").size()
    assert per_patient.mean() == pytest.approx(3.6, abs=0.5)
    assert (per_patient == 1).mean() == pytest.approx(0.57, abs=0.06)
    assert per_patient.max() >= 15  # a long tail
    assert (labels["Finding Labels"] == "No Finding").mean() == pytest.approx(OFFICIAL_NO_FINDING,
                                                                        abs=0.06)
    assert labels["View Position"].value_counts(normalize=True)["PA"] == pytest.approx(0.6, abs=0.1)
    assert labels["Patient Gender"].value_counts(normalize=True)["M"] == pytest.approx(0.565, abs=0.06)
    assert (parse_findings(labels["Finding Labels"]).sum(axis=1) >= 2).mean() > 0.05


def test_prevalence_follows_the_official_imbalance(study):
    labels, _, _ = study
    prevalence = parse_findings(labels["Finding Labels"]).mean(axis=0)
    official = np.array([OFFICIAL_PREVALENCE[name] for name in FINDINGS])
    common = official >= 0.04
    assert np.corrcoef(prevalence, official)[0, 1] > 0.85
    np.testing.assert_allclose(prevalence[common], official[common], rtol=0.6)
    assert prevalence.argmax() == FINDINGS.index("Infiltration")


def test_findings_persist_across_follow_ups(study):
    labels, _, _ = study
    multi_hot = pd.DataFrame(parse_findings(labels["Finding Labels"]), columns=list(FINDINGS))
    multi_hot["patient"] = labels["Patient ID"].to_numpy()
    repeated = multi_hot[multi_hot.groupby("patient")["patient"].transform("size") > 1]
    share_positive = repeated.groupby("patient").mean()
    # A patient's finding shows on most of their images, not on a random 10%.
    persistent = share_positive[(share_positive > 0)].stack()
    assert persistent.mean() > 0.7


def test_every_finding_has_a_box_on_every_positive_image(study):
    labels, boxes, _ = study
    positives = parse_findings(labels["Finding Labels"]).sum()
    assert len(boxes) == positives
    assert set(boxes["Finding Label"]) == set(FINDINGS)
    assert (boxes[["w", "h"]] > 0).all().all()
    assert boxes[["x", "y"]].min().min() > -0.05 * RELEASE_SIZE
    assert (boxes["x"] + boxes["w"]).max() < 1.05 * RELEASE_SIZE


@pytest.mark.parametrize("finding", FINDINGS)
def test_each_finding_changes_the_image_inside_its_box(study, finding):
    labels, boxes, anatomy = study
    row = boxes[boxes["Finding Label"] == finding].iloc[0]
    body = anatomy.set_index("Image Index").loc[row["Image Index"]]
    box = (finding, row["x"], row["y"], row["w"], row["h"])
    size = 128
    healthy = render_radiograph(body, [], size, seed=1).astype(float)
    sick = render_radiograph(body, [box], size, seed=1).astype(float)
    changed = np.abs(sick - healthy) > 8
    x0, y0 = int(row["x"] * size / RELEASE_SIZE), int(row["y"] * size / RELEASE_SIZE)
    x1 = int(np.ceil((row["x"] + row["w"]) * size / RELEASE_SIZE))
    y1 = int(np.ceil((row["y"] + row["h"]) * size / RELEASE_SIZE))
    inside = np.zeros_like(changed)
    inside[max(y0 - 2, 0):y1 + 2, max(x0 - 2, 0):x1 + 2] = True
    assert changed[inside].sum() >= 3, f"{finding} leaves no visible signature"
    assert changed[~inside].sum() <= 0.1 * changed.sum(), f"{finding} drawn outside its box"



def test_ctrl_c_leaves_no_traceback_from_the_render_workers():
    """Ctrl-C reaches the whole process group; only the stage may answer it. Idle workers,
    waiting for work as they do when rendering ends, used to print KeyboardInterrupt."""
    script = ("import os, sys, time\n"
              "from concurrent.futures import ProcessPoolExecutor\n"
              "from chestxray.acquire.embedded import _start_render_worker\n"
              "pool = ProcessPoolExecutor(2, initializer=_start_render_worker,\n"
              "                           initargs=(os.getpid(),))\n"
              "list(pool.map(abs, [-1, -2]))\n"
              "print('ready', flush=True)\n"
              "try:\n"
              "    time.sleep(60)\n"
              "except KeyboardInterrupt:\n"
              "    pool.shutdown()\n"
              "    sys.exit('interrupted')\n")
    # in_a_terminal: launched as a background job, Python would start with SIGINT ignored.
    process = subprocess.Popen(in_a_terminal([sys.executable, "-c", script]),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    assert process.stdout.readline() == "ready\n"
    time.sleep(0.5)  # the workers are back waiting on the call queue
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1 and stderr == "interrupted\n", stderr
