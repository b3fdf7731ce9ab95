"""End to end: `dvc repro` from a fresh copy of the repository, offline, on a tiny study."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from chestxray.predict import load_model
from conftest import REPO

STAGES = ("download", "split", "stats", "train", "evaluate", "gradcam")
LEFT_BEHIND = {".git", ".venv", "outputs", "metrics", "data", "downloads", ".pytest_cache",
               "dvc.lock", "__pycache__"}


def run(command, cwd):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def clone_working_tree(repo):
    """Make ``repo`` a git repository holding this working tree's files, as a clone would."""
    for item in REPO.iterdir():
        if item.name in LEFT_BEHIND:
            continue
        copy = shutil.copytree if item.is_dir() else shutil.copy2
        copy(item, repo / item.name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                         if item.is_dir() else {}))
    run(["git", "init", "-q"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "clone"], repo)
    return repo


@pytest.fixture(scope="module")
def fresh_repo(tmp_path_factory):
    return clone_working_tree(tmp_path_factory.mktemp("clone"))


@pytest.mark.slow
def test_embedded_study_restores_offline_from_the_repository(fresh_repo):
    run(["dvc", "pull", "data.dvc"], fresh_repo)
    assert (fresh_repo / "data" / "Data_Entry_2017_v2020.csv").exists()
    assert "up to date" in run(["dvc", "status", "data.dvc"], fresh_repo)


@pytest.mark.slow
def test_tiny_repro_runs_every_stage_then_nothing(fresh_repo):
    run([sys.executable, "-m", "chestxray.embedded", "--out", "data", "--patients", "60",
         "--min-positive-patients", "3"], fresh_repo)
    params = yaml.safe_load((fresh_repo / "params.yaml").read_text())
    params["download"]["image_size"] = 64
    params["split"]["min_positive_patients"] = 1
    params["train"].update(image_size=32, epochs=1, batch_size=16)
    params["gradcam"]["images_per_class"] = 1
    (fresh_repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    log = run(["dvc", "repro"], fresh_repo)
    for stage in STAGES:
        assert f"Running stage '{stage}'" in log
    evaluation = json.loads((fresh_repo / "metrics/evaluate/metrics.json").read_text())
    summary = evaluation["summary"]
    assert summary["mean_auc_low"] <= summary["mean_auc"] <= summary["mean_auc_high"]
    assert evaluation["test_images"] > 0
    stats = json.loads((fresh_repo / "outputs/stats.json").read_text())
    assert set(stats["pos_weights"]) == set(stats["neg_weights"])
    assert (fresh_repo / "outputs/model.keras").stat().st_size > 1_000_000
    assert list((fresh_repo / "metrics/gradcam/plots/images").rglob("*.png"))
    assert list((fresh_repo / "metrics/evaluate/plots/sklearn/roc").glob("*.json"))

    again = run(["dvc", "repro"], fresh_repo)
    assert "Running stage" not in again
    assert "up to date" in run(["dvc", "status"], fresh_repo)


def stages_that_would_run(repo, overrides):
    """Stages `dvc repro` would run after applying ``overrides`` to params.yaml."""
    original = (repo / "params.yaml").read_text()
    params = yaml.safe_load(original)
    for dotted, value in overrides.items():
        section, key = dotted.split(".")
        params[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        log = run(["dvc", "repro", "--dry"], repo)
    finally:
        (repo / "params.yaml").write_text(original)
    return {stage for stage in STAGES if f"Running stage '{stage}'" in log}


@pytest.mark.slow
def test_a_param_invalidates_its_own_stage_and_nothing_upstream(fresh_repo):
    # Runs after the tiny repro above, on its completed pipeline. A dry run lists the stages
    # whose own deps changed; what follows them reruns only if their outputs change.
    assert stages_that_would_run(fresh_repo, {"train.lr": 0.0005}) == {"train"}
    assert stages_that_would_run(fresh_repo, {"gradcam.images_per_class": 2}) == {"gradcam"}
    assert stages_that_would_run(fresh_repo, {"evaluate.bootstrap_seed": 7}) == {"evaluate"}
    assert stages_that_would_run(fresh_repo, {"split.seed": 1}) == {"split"}


def stages_run(log):
    return {stage for stage in STAGES if f"Running stage '{stage}'" in log}


@pytest.mark.slow
def test_a_train_param_reruns_train_evaluate_and_gradcam_and_the_run_cache_restores_train(
        fresh_repo):
    original = (fresh_repo / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["train"]["lr"] = 0.0005
    (fresh_repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert stages_run(run(["dvc", "repro"], fresh_repo)) == {"train", "evaluate", "gradcam"}
    (fresh_repo / "params.yaml").write_text(original)
    # Back to the first params: DVC's run cache restores train's and gradcam's outputs, nothing
    # trains. evaluate reruns: DVC keeps a stage with an uncached `outs` entry (the
    # git-tracked report.md) out of its run cache.
    log = run(["dvc", "repro"], fresh_repo)
    assert "Stage 'train' is cached - skipping run" in log
    assert stages_run(log) == {"evaluate"}
    assert "up to date" in run(["dvc", "status"], fresh_repo)


@pytest.mark.slow
def test_training_again_gives_identical_weights(fresh_repo):
    # params.yaml sets train.seed and train.deterministic: true.
    model_file = fresh_repo / "outputs" / "model.keras"
    first = load_model(model_file)
    shutil.copy(model_file, fresh_repo / "first.keras")
    run([sys.executable, "stages/train.py"], fresh_repo)
    again = load_model(model_file)
    shutil.copy(fresh_repo / "first.keras", model_file)  # what dvc.lock records
    assert len(again.weights) == len(first.weights) > 0
    for left, right in zip(again.get_weights(), first.get_weights()):
        np.testing.assert_array_equal(left, right)


@pytest.mark.slow
def test_data_stages_are_byte_identical_across_clones(tmp_path_factory):
    recorded = []
    for name in ("first", "second"):
        repo = clone_working_tree(tmp_path_factory.mktemp(name))
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["download"]["image_size"] = 64
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run(["dvc", "repro", "--pull", "stats"], repo)
        lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
        recorded.append({stage: [(out["path"], out["md5"]) for out in lock[stage]["outs"]]
                         for stage in ("download", "split", "stats")})
    assert recorded[0] == recorded[1]
