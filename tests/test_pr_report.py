"""The pull-request report (.ci/pr-report) on two real commits of a tiny git + DVC repository."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

PR_REPORT = REPO / ".ci" / "pr-report"

# A one-stage pipeline shaped like ours: params in, a metrics JSON and a ROC plot out.
SCORE_STAGE = """
import json, yaml
lr = yaml.safe_load(open("params.yaml"))["train"]["lr"]
auc = round(0.5 + lr, 4)
json.dump({"auc": {"mean": auc}, "test_images": 10}, open("metrics.json", "w"))
with open("roc.csv", "w") as handle:
    handle.write("fpr,tpr\\n0,0\\n0.5,%s\\n1,1\\n" % auc)
"""
PIPELINE = {"stages": {"score": {
    "cmd": "python score.py", "deps": ["score.py"], "params": ["train.lr"],
    "metrics": [{"metrics.json": {"cache": False}}],
    "plots": [{"roc.csv": {"cache": False, "x": "fpr", "y": "tpr"}}]}}}


def run(command, cwd):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def commit_run(repo, lr, message):
    """Set train.lr, reproduce, and commit params, lock file and metrics."""
    (repo / "params.yaml").write_text(yaml.safe_dump({"train": {"lr": lr, "epochs": 3}}))
    run(["dvc", "repro", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message], repo)


@pytest.fixture(scope="module")
def two_commits(tmp_path_factory):
    """A repository whose HEAD~1 ran with lr 0.1 (auc 0.6) and HEAD with lr 0.3 (auc 0.8)."""
    repo = tmp_path_factory.mktemp("pr")
    run(["git", "init", "-q"], repo)
    run(["dvc", "init", "-q"], repo)
    run(["dvc", "config", "core.analytics", "false"], repo)
    (repo / "score.py").write_text(SCORE_STAGE)
    (repo / "dvc.yaml").write_text(yaml.safe_dump(PIPELINE, sort_keys=False))
    commit_run(repo, 0.1, "base")
    commit_run(repo, 0.3, "raise the learning rate")
    return repo


def table_rows(markdown, section):
    """The table rows (cells stripped) of one ``### section`` of the report."""
    body = markdown.split(f"### {section}\n", 1)[1].split("###", 1)[0]
    return [[cell.strip() for cell in line.strip("|").split("|")]
            for line in body.splitlines() if line.startswith("|") and "---" not in line]


def test_report_tables_show_changed_metrics_and_params(two_commits, tmp_path):
    report = run([str(PR_REPORT), "HEAD~1", str(tmp_path / "plots")], two_commits)
    assert report.startswith("## DVC report against `HEAD~1`")

    metrics = table_rows(report, "Metrics")
    assert metrics[0] == ["Path", "Metric", "HEAD~1", "workspace", "Change"]
    assert ["metrics.json", "auc.mean", "0.6", "0.8", "0.2"] in metrics
    # Unchanged metrics are left out, so reviewers see only what moved.
    assert not any("test_images" in row for row in metrics)

    params = table_rows(report, "Params")
    assert params[0] == ["Path", "Param", "HEAD~1", "workspace"]
    assert params[1:] == [["params.yaml", "train.lr", "0.1", "0.3"]]


def test_report_renders_the_plots_diff_and_keeps_stdout_markdown(two_commits, tmp_path):
    report = run([str(PR_REPORT), "HEAD~1", str(tmp_path / "plots")], two_commits)
    page = (tmp_path / "plots" / "index.html").read_text()
    assert "roc.csv" in page and "HEAD~1" in page
    assert f"`{tmp_path / 'plots'}/index.html`" in report
    assert "file://" not in report


def test_report_says_no_change_when_nothing_moved(two_commits, tmp_path):
    report = run([str(PR_REPORT), "HEAD", str(tmp_path / "plots")], two_commits)
    assert "### Metrics\n\nNo change." in report
    assert "### Params\n\nNo change." in report


def test_report_without_a_base_revision_prints_usage(two_commits):
    result = subprocess.run([str(PR_REPORT)], cwd=two_commits, capture_output=True, text=True)
    assert result.returncode == 2
    assert "usage:" in result.stderr
