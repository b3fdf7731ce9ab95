"""Many experiments: a queue of two, compared, and one promoted."""
import json
import time

import pytest
import yaml

from repos import clone_sharing_cache, run


def wait_for_queue(repo, timeout_s=600):
    """Poll ``dvc queue status`` until nothing is queued or running; return its last output."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = run(["dvc", "queue", "status"], repo)
        if not any(word in status for word in ("Queued", "Running")):
            return status
        assert time.monotonic() < deadline, f"queue still busy after {timeout_s} s:\n{status}"
        time.sleep(1)


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
def test_a_queue_of_two_experiments_runs_and_one_is_promoted(tiny_repro, tmp_path):
    # Overrides of the evaluate stage only, each experiment run up to it: the queue reruns
    # evaluate from the cached model, so the test exercises DVC's queue without training.
    repo = clone_sharing_cache(tiny_repro.path, tmp_path / "team")
    for name, sensitivity in (("sens-80", 0.8), ("sens-99", 0.99)):
        run(["dvc", "exp", "run", "--queue", "--name", name,
             "-S", "evaluate.threshold_rule=sensitivity",
             "-S", f"evaluate.target_sensitivity={sensitivity}", "evaluate"], repo)
    # Two workers: evaluate mostly uses one core, and the test runs on two.
    run(["dvc", "queue", "start", "--jobs", "2"], repo)
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
    # The applied experiment's outputs come with it: nothing left to rerun up to evaluate.
    assert "Running stage" not in run(["dvc", "repro", "--dry", "evaluate"], repo)
