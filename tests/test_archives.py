"""Safe extraction: hostile members are refused and nothing is left behind."""
import io
import stat
import tarfile
import zipfile

import pytest
from PIL import Image

from chestxray.acquire.archives import (
    ArchiveError, extract_archive, find_dataset_root, find_image_folders,
)


def png_bytes(value=0, size=4):
    buffer = io.BytesIO()
    Image.new("L", (size, size), value).save(buffer, format="PNG")
    return buffer.getvalue()


def write_tar(path, members):
    """``members``: (name, bytes) for files or (name, TarInfo type, link target)."""
    mode = "w:gz" if path.name.endswith(("gz", "tgz")) else "w"
    with tarfile.open(path, mode, format=tarfile.GNU_FORMAT) as bundle:
        for member in members:
            info = tarfile.TarInfo(member[0])
            if len(member) == 2:
                info.size = len(member[1])
                bundle.addfile(info, io.BytesIO(member[1]))
            else:
                info.type, info.linkname = member[1], member[2]
                bundle.addfile(info)
    return path


def write_zip(path, members):
    """``members``: (name, bytes, unix mode or None)."""
    with zipfile.ZipFile(path, "w") as bundle:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            if mode is not None:
                info.external_attr = mode << 16
            bundle.writestr(info, data)
    return path


def leftovers(folder, archive):
    return sorted(path.name for path in folder.iterdir() if path != archive)


HOSTILE_TAR = {
    "absolute path": [("/tmp/evil.png", b"x")],
    "'..' in path": [("images/../../evil.png", b"x")],
    "symbolic link": [("images/link.png", tarfile.SYMTYPE, "../../outside.txt")],
    "hard link to '../outside.txt' outside": [("images/hard.png", tarfile.LNKTYPE,
                                                "../outside.txt")],
    "hard link to '/etc/passwd' outside": [("images/hard.png", tarfile.LNKTYPE, "/etc/passwd")],
    "device file or pipe": [("images/tty.png", tarfile.CHRTYPE, "")],
}


@pytest.mark.parametrize("reason", HOSTILE_TAR)
def test_hostile_tar_member_refused_with_nothing_left(reason, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    members = [("images/ok.png", png_bytes())] + HOSTILE_TAR[reason]
    archive = write_tar(work / "hostile.tar.gz", members)
    with pytest.raises(ArchiveError) as caught:
        extract_archive(archive, work / "out")
    message = str(caught.value)
    assert str(archive) in message and repr(HOSTILE_TAR[reason][0][0]) in message
    assert reason in message
    assert leftovers(work, archive) == []
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "evil.png").exists()


HOSTILE_ZIP = {
    "absolute path": ("/tmp/evil.png", None),
    "'..' in path": ("images/../../evil.png", None),
    "symbolic link": ("images/link.png", stat.S_IFLNK | 0o777),
    "device file or pipe": ("images/fifo.png", stat.S_IFIFO | 0o644),
}


@pytest.mark.parametrize("reason", HOSTILE_ZIP)
def test_hostile_zip_member_refused_with_nothing_left(reason, tmp_path):
    name, mode = HOSTILE_ZIP[reason]
    archive = write_zip(tmp_path / "hostile.zip", [("images/ok.png", png_bytes(), None),
                                                    (name, b"../../outside.txt", mode)])
    with pytest.raises(ArchiveError, match=f"hostile.zip: refused member '{name}': {reason}"):
        extract_archive(archive, tmp_path / "out")
    assert leftovers(tmp_path, archive) == []


def test_refused_archive_keeps_previous_destination(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "previous.txt").write_text("kept")
    archive = write_tar(tmp_path / "bad.tar", [("ok.png", png_bytes()), ("../evil.png", b"x")])
    with pytest.raises(ArchiveError):
        extract_archive(archive, tmp_path / "out")
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["previous.txt"]
    assert leftovers(tmp_path, archive) == ["out"]


@pytest.mark.parametrize("name", ["data.tar.gz", "data.tgz", "data.tar", "data.zip", "no-suffix"])
def test_each_format_extracts_nested_nih_layout(name, tmp_path):
    members = [("set/Data_Entry_2017_v2020.csv", b"table"),
               ("set/images_001/images/a.png", png_bytes(1)),
               ("set/images_002/images/b.png", png_bytes(2))]
    path = tmp_path / name
    if name.endswith("zip"):
        write_zip(path, [(member, data, None) for member, data in members])
    elif name == "no-suffix":
        write_tar(path.with_name("tmp.tar.gz"), members).rename(path)
    else:
        write_tar(path, members)
    out = extract_archive(path, tmp_path / "out")
    root = find_dataset_root(out)
    assert root == out / "set"
    assert find_image_folders(root) == [root / "images_001" / "images",
                                        root / "images_002" / "images"]
    assert (root / "images_002" / "images" / "b.png").read_bytes() == png_bytes(2)


def test_hard_link_inside_target_is_extracted(tmp_path):
    archive = write_tar(tmp_path / "links.tar", [("images/a.png", png_bytes(7)),
                                                 ("images/b.png", tarfile.LNKTYPE, "images/a.png")])
    out = extract_archive(archive, tmp_path / "out")
    assert (out / "images" / "b.png").read_bytes() == png_bytes(7)


def test_truncated_archive_is_one_clear_error(tmp_path):
    good = write_tar(tmp_path / "good.tar.gz", [("images/a.png", png_bytes(size=256))])
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(ArchiveError, match="broken.tar.gz: cannot extract"):
        extract_archive(broken, tmp_path / "out")
    assert leftovers(tmp_path, broken) == ["good.tar.gz"]


def test_dataset_root_must_be_unique(tmp_path):
    with pytest.raises(ArchiveError, match="no Data_Entry_2017_v2020.csv inside"):
        find_dataset_root(tmp_path)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "Data_Entry_2017_v2020.csv").write_text("x")
    with pytest.raises(ArchiveError, match="2 label tables inside"):
        find_dataset_root(tmp_path)


def test_image_folders_prefer_flat_images_and_ignore_other_folders(tmp_path):
    for folder in ("images", "images_003/images", "masks", "images_004"):
        (tmp_path / folder).mkdir(parents=True)
    assert find_image_folders(tmp_path) == [tmp_path / "images", tmp_path / "images_003" / "images"]
