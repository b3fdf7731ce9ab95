"""Outputs are replaced only when complete: a failure keeps the previous output."""
import os

import pytest

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
