"""dvclive metrics appear only when their stage succeeds; a failure keeps the last good ones."""
import json

import pytest

from chestxray.core.paths import metrics_dir, metrics_staging_dir
from chestxray.core.tracking import stage_live, staged

from conftest import snapshot


@pytest.fixture
def last_good_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with stage_live("train") as live:
        for loss in (0.7, 0.6):
            live.log_metric("train/loss", loss)
            live.next_step()
    return snapshot(metrics_dir("train"))


def test_a_failing_stage_leaves_the_last_good_metrics(last_good_run):
    assert json.loads((metrics_dir("train") / "metrics.json").read_text())["train"]["loss"] == 0.6
    with pytest.raises(RuntimeError):
        with stage_live("train") as live:
            live.log_metric("train/loss", 9.9)
            live.next_step()
            raise RuntimeError("killed in epoch 2")
    assert snapshot(metrics_dir("train")) == last_good_run


def test_a_resumed_run_continues_its_staging_folder_and_publishes_everything(last_good_run):
    with pytest.raises(RuntimeError):
        with stage_live("train") as live:
            live.log_metric("train/loss", 0.5)
            live.next_step()
            raise RuntimeError("interrupted after epoch 1")
    with stage_live("train", resume=True) as live:
        live.step = 1  # as train sets it from the checkpoint
        live.log_metric("train/loss", 0.4)
        live.next_step()
    rows = (metrics_dir("train") / "plots/metrics/train/loss.tsv").read_text().splitlines()
    assert [row.split("\t") for row in rows] == [["step", "loss"], ["0", "0.5"], ["1", "0.4"]]
    assert not metrics_staging_dir("train").exists()


def test_files_written_to_staged_paths_are_published_with_the_metrics(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = metrics_dir("evaluate") / "report.md"
    with stage_live("evaluate") as live:
        staged(live, "evaluate", report).write_text("# report")
        assert not report.exists()
    assert report.read_text() == "# report"
