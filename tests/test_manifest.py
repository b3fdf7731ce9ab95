"""The dataset manifest that the stages after download depend on (acquire/manifest.py)."""
import shutil
import subprocess

import pytest

from chestxray.acquire.manifest import folder_digests, write_manifest


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "dataset"
    (root / "images").mkdir(parents=True)
    (root / "Data_Entry_2017_v2020.csv").write_text("Image Index\na.png\n")
    for name in ("b.png", "a.png"):
        (root / "images" / name).write_bytes(name.encode() * 100)
    return root


def test_one_sorted_line_per_file_that_sha256sum_checks(folder, tmp_path):
    write_manifest(folder, tmp_path / "dataset.sha256")
    lines = (tmp_path / "dataset.sha256").read_text().splitlines()
    assert [line.split("  ", 1)[1] for line in lines] == [
        "Data_Entry_2017_v2020.csv", "images/a.png", "images/b.png"]
    if shutil.which("sha256sum"):
        checked = subprocess.run(["sha256sum", "-c", str(tmp_path / "dataset.sha256")],
                                 cwd=folder, capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("change", ["changed", "added", "removed", "renamed", "table"])
def test_any_change_of_the_folder_changes_the_manifest(folder, change):
    before = folder_digests(folder)
    image = folder / "images" / "a.png"
    if change == "changed":
        image.write_bytes(image.read_bytes()[:-1] + b"!")
    elif change == "added":
        (folder / "images" / "c.png").write_bytes(b"c")
    elif change == "removed":
        image.unlink()
    elif change == "renamed":
        image.rename(folder / "images" / "z.png")
    else:
        (folder / "Data_Entry_2017_v2020.csv").write_text("Image Index\nb.png\n")
    assert folder_digests(folder) != before


def test_the_same_contents_give_the_same_bytes(folder, tmp_path):
    copy = shutil.copytree(folder, tmp_path / "copy")
    (copy / "images" / "a.png").touch()  # a new modification time changes nothing
    assert folder_digests(copy) == folder_digests(folder)
