"""dvclive metrics appear only when their stage succeeds; a failure keeps the last good ones."""
import json
from pathlib import Path

import pytest

from chestxray.core.paths import metrics_dir, metrics_staging_dir
from chestxray.core.tracking import stage_outputs

from conftest import snapshot


@pytest.fixture
def last_good_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with stage_outputs("train") as outputs:
        live = outputs.live
        for loss in (0.7, 0.6):
            live.log_metric("train/loss", loss)
            live.next_step()
    return snapshot(metrics_dir("train"))


def test_a_failing_stage_leaves_the_last_good_metrics(last_good_run):
    assert json.loads((metrics_dir("train") / "metrics.json").read_text())["train"]["loss"] == 0.6
    with pytest.raises(RuntimeError):
        with stage_outputs("train") as outputs:
            outputs.live.log_metric("train/loss", 9.9)
            outputs.path("model.keras").write_bytes(b"a model that must not appear")
            live = outputs.live
            live.next_step()
            raise RuntimeError("killed in epoch 2")
    assert snapshot(metrics_dir("train")) == last_good_run
    assert not Path("model.keras").exists()
    assert sorted(path.name for path in Path().iterdir()) == ["metrics"]


def test_a_resumed_run_continues_its_staging_folder_and_publishes_everything(last_good_run):
    with pytest.raises(RuntimeError):
        with stage_outputs("train") as outputs:
            live = outputs.live
            live.log_metric("train/loss", 0.5)
            live.next_step()
            raise RuntimeError("interrupted after epoch 1")
    with stage_outputs("train", resume=True) as outputs:
        live = outputs.live
        live.step = 1  # as train sets it from the checkpoint
        live.log_metric("train/loss", 0.4)
        live.next_step()
    rows = (metrics_dir("train") / "plots/metrics/train/loss.tsv").read_text().splitlines()
    assert [row.split("\t") for row in rows] == [["step", "loss"], ["0", "0.5"], ["1", "0.4"]]
    assert not metrics_staging_dir("train").exists()


def test_outputs_appear_with_the_metrics_when_the_stage_succeeds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = metrics_dir("evaluate") / "report.md"
    with stage_outputs("evaluate") as outputs:
        outputs.path(report).write_text("# report")
        outputs.path("outputs/predictions.csv").write_text("image\n")
        outputs.live.log_metric("mean_auc", 0.8)
        assert not report.exists() and not Path("outputs/predictions.csv").exists()
    assert report.read_text() == "# report"
    assert Path("outputs/predictions.csv").read_text() == "image\n"
    assert sorted(path.name for path in Path("outputs").iterdir()) == ["predictions.csv"]
