"""Many experiments: a queue of two tiny trainings, compared, and one promoted."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from test_pipeline import clone_working_tree

# Small enough for a full `dvc repro` in a few minutes on 2 CPU cores.
TINY_PARAMS = {"download.image_size": 64, "split.min_positive_patients": 1,
               "train.image_size": 32, "train.epochs": 1, "train.batch_size": 16,
               "evaluate.bootstrap_resamples": 20, "gradcam.images_per_class": 1}
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
_reproduced = {}


def run(command, cwd, env=None):
    """Run ``command`` in ``cwd`` with this venv's tools and ``cwd``'s own package on the path.

    PYTHONPATH makes stages import the copy's ``src`` rather than the editable install's;
    DVC passes it on to queued experiments, which run in temp dirs under .dvc/tmp/exps.
    """
    env = dict(os.environ, **(env or {}),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(Path(cwd) / "src"))
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def reproduced_tiny_repo(tmp_path_factory):
    """A git + DVC repository of this working tree, fully reproduced on a tiny study, committed.

    Made once per session (a full repro costs minutes) and shared: tests ``git clone`` it and
    never change it. Its DVC cache holds every output.
    """
    if "repo" not in _reproduced:
        repo = clone_working_tree(tmp_path_factory.mktemp("reproduced"))
        run([sys.executable, "-m", "chestxray.embedded", "--out", "data", "--patients", "40",
             "--min-positive-patients", "2"], repo)
        # The tiny study replaces the default one the way README describes.
        run(["dvc", "add", "-q", "data"], repo)
        run(["dvc", "push", "-q", "-r", "embedded", "data.dvc"], repo)
        params = yaml.safe_load((repo / "params.yaml").read_text())
        for dotted, value in TINY_PARAMS.items():
            section, key = dotted.split(".")
            params[section][key] = value
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run(["dvc", "repro"], repo)
        run(GIT + ["add", "-A"], repo)
        run(GIT + ["commit", "-qm", "tiny study, reproduced"], repo)
        _reproduced["repo"] = repo
    return _reproduced["repo"]


def clone_sharing_cache(source, destination):
    """``git clone`` of ``source`` whose DVC cache is ``source``'s, outputs checked out."""
    run(["git", "clone", "-q", str(source), str(destination)], source)
    run(["dvc", "cache", "dir", "--local", str(source / ".dvc" / "cache")], destination)
    run(["dvc", "checkout", "-q"], destination)
    return destination


def wait_for_queue(repo, timeout_s=600):
    """Poll ``dvc queue status`` until nothing is queued or running; return its last output."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = run(["dvc", "queue", "status"], repo)
        if not any(word in status for word in ("Queued", "Running")):
            return status
        assert time.monotonic() < deadline, f"queue still busy after {timeout_s} s:\n{status}"
        time.sleep(5)


def experiments_by_name(repo):
    """``{name: {"state", "params", "metrics"}}`` from ``dvc exp show --json``.

    ``params`` are params.yaml's values, ``metrics`` the evaluate stage's metrics.json.
    """
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo))
    found = {}
    for commit in shown:
        for experiment in commit.get("experiments") or []:
            for revision in experiment["revs"]:
                data = revision["data"]
                found[revision["name"]] = {
                    "state": experiment["executor"]["state"],
                    "params": data["params"]["params.yaml"]["data"],
                    "metrics": data["metrics"]["metrics/evaluate/metrics.json"]["data"]}
    return found


@pytest.mark.slow
def test_a_queue_of_two_experiments_runs_and_one_is_promoted(tmp_path_factory, tmp_path):
    # Overrides of the evaluate stage only: the queue reruns evaluate (and what follows)
    # from the cached model, so the test exercises DVC's queue without training twice.
    repo = clone_sharing_cache(reproduced_tiny_repo(tmp_path_factory), tmp_path / "team")
    for name, sensitivity in (("sens-80", 0.8), ("sens-99", 0.99)):
        run(["dvc", "exp", "run", "--queue", "--name", name,
             "-S", "evaluate.threshold_rule=sensitivity",
             "-S", f"evaluate.target_sensitivity={sensitivity}"], repo)
    run(["dvc", "queue", "start", "--jobs", "1"], repo)
    status = wait_for_queue(repo)
    assert "Failed" not in status, status

    experiments = experiments_by_name(repo)
    assert set(experiments) >= {"sens-80", "sens-99"}
    assert experiments["sens-80"]["params"]["evaluate"]["target_sensitivity"] == 0.8
    assert experiments["sens-99"]["params"]["evaluate"]["target_sensitivity"] == 0.99
    for name in ("sens-80", "sens-99"):
        assert experiments[name]["state"] == "success"
        assert all(0.0 <= auc <= 1.0 for auc in experiments[name]["metrics"]["auc"].values())
    # Same model, same AUCs; a stricter sensitivity target moves the operating points.
    assert experiments["sens-80"]["metrics"]["auc"] == experiments["sens-99"]["metrics"]["auc"]
    assert experiments["sens-80"]["metrics"]["operating_point"] != \
        experiments["sens-99"]["metrics"]["operating_point"]

    run(["dvc", "exp", "branch", "sens-99", "sens-99-branch"], repo)
    branched = yaml.safe_load(run(["git", "show", "sens-99-branch:params.yaml"], repo))
    assert branched["evaluate"]["target_sensitivity"] == 0.99

    run(["dvc", "exp", "apply", "sens-80"], repo)
    applied = yaml.safe_load((repo / "params.yaml").read_text())
    assert applied["evaluate"]["target_sensitivity"] == 0.8
    metrics = json.loads((repo / "metrics/evaluate/metrics.json").read_text())
    assert metrics == experiments["sens-80"]["metrics"]
    # The applied experiment's outputs come with it: nothing left to rerun.
    assert "Running stage" not in run(["dvc", "repro", "--dry"], repo)
