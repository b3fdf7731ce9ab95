"""End to end: `dvc repro` in fresh copies of the repository, offline, on a tiny study."""
import json

import numpy as np
import pytest
import yaml

from chestxray.core.paths import DATASET_DIR, MODEL_FILE
from chestxray.model.saved import load_model, read_record
from chestxray.nih.labels import FINDINGS

from conftest import assert_predict_gives_the_evaluated_probabilities, snapshot
from repos import clone_sharing_cache, clone_working_tree, run, set_params

STAGES = ("download", "split", "stats", "train", "evaluate", "gradcam")


def stages_run(log):
    """Stages a `dvc repro` log says it ran."""
    return {stage for stage in STAGES if f"Running stage '{stage}'" in log}


@pytest.mark.slow
def test_embedded_study_restores_offline_from_the_repository(tmp_path):
    repo = clone_working_tree(tmp_path)
    run(["dvc", "pull", "data.dvc"], repo)
    assert (repo / "data" / "Data_Entry_2017_v2020.csv").exists()
    assert "up to date" in run(["dvc", "status", "data.dvc"], repo)


@pytest.mark.slow
def test_tiny_repro_runs_every_stage_then_nothing(tiny_repro):
    repo = tiny_repro.path
    assert stages_run(tiny_repro.log) == set(STAGES)
    evaluation = json.loads((repo / "metrics/evaluate/metrics.json").read_text())
    summary = evaluation["summary"]
    assert summary["mean_auc_low"] <= summary["mean_auc"] <= summary["mean_auc_high"]
    assert evaluation["test_images"] > 0
    assert set(evaluation["subgroups"]) == {"sex", "age", "view"}
    assert "## Subgroups (test split)" in (repo / "metrics/evaluate/report.md").read_text()
    assert (repo / "metrics/evaluate/plots/custom/subgroup_auc.json").exists()
    stats = json.loads((repo / "outputs/stats.json").read_text())
    assert set(stats["pos_weights"]) == set(stats["neg_weights"])
    assert (repo / "outputs/model.keras").stat().st_size > 1_000_000
    assert list((repo / "metrics/gradcam/plots/images").rglob("*.png"))
    assert list((repo / "metrics/evaluate/plots/sklearn/roc").glob("*.json"))

    assert stages_run(run(["dvc", "repro"], repo)) == set()
    assert "up to date" in run(["dvc", "status"], repo)


@pytest.mark.slow
def test_a_failed_stage_keeps_the_last_good_outputs_and_metrics(tiny_repro, tmp_path):
    # Without `persist: true`, DVC deletes a stage's outputs before running it,
    # and a failure leaves none.
    repo = clone_sharing_cache(tiny_repro.path, tmp_path / "repo")
    before = {folder: snapshot(repo / folder) for folder in ("outputs", "metrics")}
    # A stage that imports no TensorFlow fails in a second; each stage's outputs are kept when
    # it is killed, too (test_faults.py).
    set_params(repo, {"split.test_fraction": 0.6, "split.val_fraction": 0.5})
    log = run(["dvc", "repro"], repo, fails=True)
    assert "error: params.yaml: split.test_fraction + split.val_fraction = 0.6 + 0.5" in log
    assert {folder: snapshot(repo / folder) for folder in before} == before


@pytest.mark.slow
def test_an_image_changed_by_hand_reruns_download_alone_which_restores_it(tiny_repro, tmp_path):
    # The stages after download depend on the manifest outputs/dataset.sha256, not on the
    # folder; DVC still sees the folder as download's changed output.
    repo = clone_sharing_cache(tiny_repro.path, tmp_path / "repo")
    image = sorted((repo / DATASET_DIR / "images").glob("*.png"))[0]
    original = image.read_bytes()
    image.unlink()  # checked out as a link into the shared cache: replace, never write through
    image.write_bytes(original[:-8] + b"tampered")
    assert "download" in run(["dvc", "status"], repo)
    assert stages_run(run(["dvc", "repro"], repo)) == {"download"}
    assert image.read_bytes() == original
    assert "up to date" in run(["dvc", "status"], repo)


def stages_that_would_run(repo, overrides):
    """Stages `dvc repro --dry` lists after applying ``overrides`` to params.yaml."""
    original = (repo / "params.yaml").read_text()
    set_params(repo, overrides)
    try:
        return stages_run(run(["dvc", "repro", "--dry"], repo))
    finally:
        (repo / "params.yaml").write_text(original)


@pytest.mark.slow
def test_a_param_invalidates_its_own_stage_and_nothing_upstream(tiny_repro, tmp_path):
    # A dry run lists the stages whose own deps changed; what follows them reruns only if
    # their outputs change.
    repo = clone_sharing_cache(tiny_repro.path, tmp_path / "repo")
    assert stages_that_would_run(repo, {"train.lr": 0.0005}) == {"train"}
    assert stages_that_would_run(repo, {"train.loss": "focal"}) == {"train"}
    assert stages_that_would_run(repo, {"train.backbone": "resnet50v2"}) == {"train"}
    assert stages_that_would_run(repo, {"train.resample": "oversample"}) == {"train"}
    assert stages_that_would_run(repo, {"train.steps_per_epoch": 5}) == {"train"}
    assert stages_that_would_run(repo, {"train.weights_findings": list(FINDINGS[::-1])}) == {
        "train"}
    assert stages_that_would_run(repo, {"gradcam.images_per_class": 2}) == {"gradcam"}
    assert stages_that_would_run(repo, {"evaluate.bootstrap_seed": 7}) == {"evaluate"}
    assert stages_that_would_run(repo, {"evaluate.subgroup_age_bands": [50]}) == {"evaluate"}
    assert stages_that_would_run(repo, {"split.seed": 1}) == {"split"}


@pytest.mark.slow
def test_a_weights_file_added_changed_or_removed_reruns_train(tiny_repro, tmp_path):
    # DVC cannot depend on the path train.weights names (it may be 'imagenet' or 'none'):
    # train depends on weights/, the folder the params check keeps every such file in.
    repo = clone_sharing_cache(tiny_repro.path, tmp_path / "repo")
    checkpoint = repo / "weights" / "pretrained_model.h5"
    checkpoint.write_bytes(b"a checkpoint")
    assert stages_run(run(["dvc", "repro", "--dry"], repo)) == {"train"}
    run(["dvc", "commit", "-f", "train"], repo)  # as if train had run with it
    assert "up to date" in run(["dvc", "status"], repo)
    checkpoint.write_bytes(b"the same checkpoint, retrained")
    assert stages_run(run(["dvc", "repro", "--dry"], repo)) == {"train"}
    checkpoint.unlink()
    assert stages_run(run(["dvc", "repro", "--dry"], repo)) == {"train"}


def stages_that_would_run_after_editing(repo, module):
    """Stages `dvc repro --dry` lists after a comment is added to ``src/chestxray/<module>``."""
    path = repo / "src" / "chestxray" / module
    original = path.read_text()
    path.write_text(original + "# edited\n")
    try:
        return stages_run(run(["dvc", "repro", "--dry"], repo))
    finally:
        path.write_text(original)


@pytest.mark.slow
def test_editing_package_code_invalidates_exactly_the_stages_that_run_it(tiny_repro, tmp_path):
    repo = clone_sharing_cache(tiny_repro.path, tmp_path / "repo")
    assert stages_that_would_run_after_editing(repo, "nih/labels.py") == set(STAGES)
    assert stages_that_would_run_after_editing(repo, "acquire/remote.py") == {"download"}
    assert stages_that_would_run_after_editing(repo, "model/losses.py") == {
        "train", "evaluate", "gradcam"}
    assert stages_that_would_run_after_editing(repo, "explain/overlays.py") == {"gradcam"}


@pytest.mark.slow
def test_predict_gives_the_probabilities_evaluate_wrote(tiny_repro, tmp_path):
    """For the tiny study's model (featurewise normalisation); test_checkpoints.py checks a
    samplewise one the train stage published."""
    repo = clone_sharing_cache(tiny_repro.path, tmp_path / "repo")
    assert read_record(repo / MODEL_FILE)["preprocessing"]["normalization"] == "featurewise"
    assert_predict_gives_the_evaluated_probabilities(repo)


@pytest.mark.slow
def test_a_train_param_reruns_train_outdates_evaluate_and_gradcam_and_training_is_deterministic(
        tiny_repro, tmp_path):
    # The tiny run trains one epoch, so whether the best epoch's weights are restored changes
    # nothing in them: the rerun repeats the same training in a new process, and params.yaml's
    # train.seed and train.deterministic must reproduce its weights exactly.
    repo = clone_sharing_cache(tiny_repro.path, tmp_path / "repo")
    train = yaml.safe_load((repo / "params.yaml").read_text())["train"]
    assert train["epochs"] == 1 and train["deterministic"]
    first, _ = load_model(repo / MODEL_FILE)
    set_params(repo, {"train.restore_best": not train["restore_best"]})

    assert stages_run(run(["dvc", "repro", "train"], repo)) == {"train"}
    # A new model file (its record carries the save time): what reads it is out of date.
    status = run(["dvc", "status"], repo)
    assert "evaluate:" in status and "gradcam:" in status and "stats:" not in status, status
    again, _ = load_model(repo / MODEL_FILE)
    assert len(again.weights) == len(first.weights) > 0
    for left, right in zip(again.get_weights(), first.get_weights()):
        np.testing.assert_array_equal(left, right)


@pytest.mark.slow
def test_data_stages_are_byte_identical_across_clones(tmp_path_factory):
    recorded = []
    for name in ("first", "second"):
        repo = clone_working_tree(tmp_path_factory.mktemp(name))
        set_params(repo, {"download.image_size": 64})
        run(["dvc", "repro", "--pull", "stats"], repo)
        lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
        recorded.append({stage: [(out["path"], out["md5"]) for out in lock[stage]["outs"]]
                         for stage in ("download", "split", "stats")})
    assert recorded[0] == recorded[1]
