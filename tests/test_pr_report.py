"""The pull-request report (.ci/pr-report) on three pull-request shapes of a tiny study, and
the change detection it starts from (pipeline_changes.py) on a clone with no outputs."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from repos import GIT, clone_sharing_cache, run, set_params

PR_REPORT = REPO / ".ci" / "pr-report"
AFTER_TRAIN = ["train", "evaluate", "gradcam"]
# Pull-request shapes: a branch name, an edit of the checkout, and the stages it reruns.
SHAPES = {
    "docs": (lambda repo: (repo / "README.md").write_text("A docs change.\n"), []),
    "train-param": (lambda repo: set_params(repo, {"train.lr": 0.003}), AFTER_TRAIN),
    "evaluate-only": (lambda repo: set_params(repo, {"evaluate.threshold_rule": "sensitivity"}),
                      ["evaluate", "gradcam"]),
    "gradcam-only": (lambda repo: set_params(repo, {"gradcam.iou_threshold": 0.4}), ["gradcam"]),
}


def open_pull_request(repo, name):
    """Branch ``name`` off the base (``main``), make its edit and commit it; returns the
    stages the edit should rerun."""
    edit, stages = SHAPES[name]
    run(GIT + ["checkout", "-q", "-B", name, "main"], repo)
    edit(repo)
    run(GIT + ["commit", "-qam", name], repo)
    return stages


@pytest.fixture(scope="module")
def repo(tiny_repro, tmp_path_factory):
    """A clone of the reproduced tiny study, its commit named ``main``."""
    clone = clone_sharing_cache(tiny_repro.path, tmp_path_factory.mktemp("pr") / "repo")
    run(GIT + ["branch", "-f", "main", "HEAD"], clone)
    return clone


def changed_stages(repo):
    return run([sys.executable, "-m", "chestxray.pipeline_changes"], repo).split()


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
def test_changed_stages_are_found_before_anything_runs(repo, tmp_path, shape):
    """On a clone with no outputs and an empty cache, head's code against base's dvc.lock."""
    stages = open_pull_request(repo, shape)
    bare = tmp_path / "bare"
    run(["git", "clone", "-q", str(repo), str(bare)], tmp_path)
    (bare / "dvc.lock").write_text(run(["git", "show", "origin/main:dvc.lock"], bare))
    assert not (bare / "outputs").exists()
    assert changed_stages(bare) == stages


@pytest.mark.slow
def test_a_new_dataset_changes_every_stage(repo, tmp_path):
    bare = tmp_path / "bare"
    run(["git", "clone", "-q", "--branch", "main", str(repo), str(bare)], tmp_path)
    record = (bare / "data.dvc").read_text()
    (bare / "data.dvc").write_text(re.sub(r"md5: \w+", "md5: " + "0" * 32, record, count=1))
    assert changed_stages(bare) == ["download", "split", "stats", *AFTER_TRAIN]


def report(repo, plots):
    """(Markdown on stdout, log on stderr) of the report against ``main``."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run([str(PR_REPORT), "main", str(plots)], cwd=repo, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return result.stdout, result.stderr


def runs(log):
    """How often each stage ran, from dvc's log."""
    names = re.findall(r"^Running stage '(\w+)'", log, re.MULTILINE)
    return {name: names.count(name) for name in names}


def auc_rows(markdown):
    """{name: (change cell, verdict)} of the Test AUC table."""
    section = markdown.split("### Test AUC\n", 1)[1].split("###", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| Test AUC")]
    return {cells[0].strip().strip("*"): (cells[3].strip(), cells[4].strip()) for cells in rows}


@pytest.mark.slow
def test_a_docs_change_reruns_nothing(repo, tmp_path):
    open_pull_request(repo, "docs")
    markdown, log = report(repo, tmp_path / "plots")
    assert "No pipeline change" in markdown and "### Test AUC" not in markdown
    assert runs(log) == {}


@pytest.mark.slow
def test_a_train_param_change_reruns_both_sides_here_and_every_auc_has_an_interval(
        repo, tmp_path):
    before = {path: path.read_bytes() for path in (repo / "metrics").rglob("*.json")}
    open_pull_request(repo, "train-param")
    markdown, log = report(repo, tmp_path / "plots")
    assert f"both `main` and this branch: {', '.join(AFTER_TRAIN)}." in markdown
    assert "not rerun: download, split, stats." in markdown
    # Base and head each trained once, here; the upstream stages came from the cache.
    assert runs(log) == {stage: 2 for stage in AFTER_TRAIN}
    rows = auc_rows(markdown)
    assert rows["mean AUC"][0] != "n/a"
    for name, (change, verdict) in rows.items():
        assert verdict == "undefined" or re.fullmatch(
            r"[+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\]", change), (name, change)
        assert verdict in {"undefined", "within noise", "higher", "lower"}, verdict
    assert "paired: base and head scored the same test images" in markdown
    assert re.search(r"\| params\.yaml +\| train\.lr +\| 0\.001 +\| 0\.003 +\|", markdown)
    assert (tmp_path / "plots" / "index.html").exists()
    assert "metrics/train/metrics.json" in (tmp_path / "plots" / "metrics.md").read_text()
    # The checkout the report ran from is left as it was.
    assert {path: path.read_bytes() for path in (repo / "metrics").rglob("*.json")} == before


@pytest.mark.slow
def test_a_gradcam_only_change_reruns_gradcam_alone_and_keeps_the_aucs(repo, tmp_path):
    # The cheapest shape that reruns a stage. An evaluate-only one would rerun evaluate on both
    # sides from one model and give identical predictions: test_compare.py checks that those
    # change by exactly zero, and the shapes' stage lists are checked above.
    open_pull_request(repo, "gradcam-only")
    markdown, log = report(repo, tmp_path / "plots")
    assert runs(log) == {"gradcam": 2}
    assert "Not rerun: the evaluate stage's inputs are unchanged, so are its AUCs." in markdown
    assert re.search(r"\| params\.yaml +\| gradcam\.iou_threshold +\| 0\.5 +\| 0\.4 +\|", markdown)


def test_changed_stages_outside_a_dvc_repository_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "chestxray.pipeline_changes"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: cannot read the pipeline: you are not inside of a "
                                    "DVC repository")
    assert len(result.stderr.strip().splitlines()) == 1


def test_report_without_a_base_revision_prints_usage():
    result = subprocess.run([str(PR_REPORT)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    assert "usage:" in result.stderr
