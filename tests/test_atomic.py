"""Outputs are replaced only when complete: a failure keeps the previous output."""
import os
import stat

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
