"""Outputs are replaced only when complete: a failure keeps the previous output."""
import os
import stat
import subprocess

import pytest

from chestxray.core import atomic
from chestxray.core.atomic import atomic_directory, atomic_write


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "split.csv"
    target.write_text("previous\n")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w") as handle:
            handle.write("half of the new content")
            raise RuntimeError("disk full")
    assert target.read_text() == "previous\n"
    assert os.listdir(tmp_path) == ["split.csv"]


def test_successful_write_replaces_the_file(tmp_path):
    target = tmp_path / "nested" / "stats.json"
    with atomic_write(target, "w") as handle:
        handle.write("{}")
    assert target.read_text() == "{}"


def test_failed_directory_build_keeps_the_previous_folder(tmp_path):
    target = tmp_path / "dataset"
    target.mkdir()
    (target / "Data_Entry_2017_v2020.csv").write_text("old table")
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(target) as staging:
            (staging / "Data_Entry_2017_v2020.csv").write_text("partial")
            raise KeyboardInterrupt  # an interrupted download
    assert (target / "Data_Entry_2017_v2020.csv").read_text() == "old table"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]


def test_completed_directory_build_replaces_the_folder(tmp_path):
    target = tmp_path / "dataset"
    target.mkdir()
    (target / "stale.png").write_bytes(b"x")
    with atomic_directory(target) as staging:
        (staging / "fresh.png").write_bytes(b"y")
    assert sorted(p.name for p in target.iterdir()) == ["fresh.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]


@pytest.mark.parametrize("umask, file_mode, folder_mode", [(0o022, 0o644, 0o755),
                                                          (0o002, 0o664, 0o775),
                                                          (0o077, 0o600, 0o700)])
def test_outputs_respect_the_umask(tmp_path, umask, file_mode, folder_mode):
    previous = os.umask(umask)
    try:
        with atomic_write(tmp_path / "table.csv", "w") as handle:
            handle.write("a\n")
        with atomic_directory(tmp_path / "dataset") as staging:
            (staging / "x.png").write_bytes(b"png")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "table.csv").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "dataset").stat().st_mode) == folder_mode


def test_a_swap_killed_between_its_renames_gets_the_previous_folder_back(tmp_path):
    # The state a SIGKILL leaves between "set the old folder aside" and "rename the new one in".
    (tmp_path / ".dataset.old").mkdir()
    (tmp_path / ".dataset.old" / "kept.png").write_bytes(b"previous")
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / "dataset"):
            raise RuntimeError("the next run fails too")
    assert (tmp_path / "dataset" / "kept.png").read_bytes() == b"previous"


def test_replace_directory_swaps_a_finished_folder_in(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "old.json").write_text("{}")
    (tmp_path / "staging").mkdir()
    (tmp_path / "staging" / "new.json").write_text("{}")
    atomic.replace_directory(tmp_path / "staging", tmp_path / "metrics")
    assert [path.name for path in (tmp_path / "metrics").iterdir()] == ["new.json"]
    assert not (tmp_path / "staging").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["metrics"]


def test_temporaries_of_a_killed_writer_are_removed_by_the_next(tmp_path):
    dead = _pid_of_a_finished_process()
    (tmp_path / f".model.keras.{dead}.x1.tmp.keras").write_bytes(b"half a model")
    (tmp_path / f"..model.keras.{dead}.x1.tmp.keras.{dead}.y2.tmp.keras").write_bytes(b"half")
    (tmp_path / f".dataset.{dead}.x3.tmp").mkdir()
    (tmp_path / f".model.keras.{os.getpid()}.x4.tmp.keras").write_bytes(b"a live writer's")
    with atomic_write(tmp_path / "model.keras") as handle:
        handle.write(b"model")
    with atomic_directory(tmp_path / "dataset"):
        pass
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        f".model.keras.{os.getpid()}.x4.tmp.keras", "dataset", "model.keras"]


def _pid_of_a_finished_process():
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_pending_outputs_appear_together_on_commit_and_never_on_discard(tmp_path):
    (tmp_path / "split.csv").write_text("old split")
    pending = atomic.PendingOutputs()
    pending.path(tmp_path / "split.csv").write_text("new split")
    pending.path(tmp_path / "stats.json").write_text("{}")
    assert (tmp_path / "split.csv").read_text() == "old split"
    assert not (tmp_path / "stats.json").exists()
    pending.commit()
    assert (tmp_path / "split.csv").read_text() == "new split"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["split.csv", "stats.json"]

    pending.path(tmp_path / "split.csv").write_text("a failed run's split")
    pending.discard()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["split.csv", "stats.json"]
    assert (tmp_path / "split.csv").read_text() == "new split"


def test_a_folder_swap_never_leaves_a_moment_without_the_folder(tmp_path, monkeypatch):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "old.json").write_text("{}")
    renames = []
    real_replace = os.replace
    monkeypatch.setattr(atomic.os, "replace", lambda *names: renames.append(names)
                        or real_replace(*names))
    with atomic_directory(tmp_path / "metrics") as staging:
        (staging / "new.json").write_text("{}")
    assert renames == []  # one renameat2(RENAME_EXCHANGE), no window between two renames
    assert [path.name for path in (tmp_path / "metrics").iterdir()] == ["new.json"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["metrics"]
