"""The nih, url and local sources: layout, validation under stop/skip, real data."""
import gzip
import hashlib
import io
import logging
import re
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from chestxray.acquire.archives import ArchiveError
from chestxray.acquire.local_folder import IMAGE_DIGESTS
from chestxray.acquire.remote import DownloadError
from chestxray.acquire.screening import InvalidDatasetError, invalid_rows
from chestxray.acquire.sources import acquire
from chestxray.core.params import ParamsError
from chestxray.nih.layout import (
    BOX_TABLE, IMAGES, IMAGES_POINTER, LABEL_TABLE, LabelTableError, image_folders, read_box_table,
    read_dataset, read_label_table,
)

from conftest import download_params, snapshot
from http_server import FileServer
from repos import clone_working_tree, run, set_params

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OFFICIAL_TABLE = SHARED_DATA / "nih-metadata" / "Data_Entry_2017_v2020.csv.gz"
OFFICIAL_BOXES = SHARED_DATA / "nih-metadata" / "BBox_List_2017.csv.gz"
SAMPLE_64 = SHARED_DATA / "nih-sample-64"
BOX_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,\n"


def png_bytes(value=0):
    buffer = io.BytesIO()
    Image.new("L", (8, 8), value).save(buffer, format="PNG")
    return buffer.getvalue()


def row(name, findings="No Finding", patient=1):
    return {"Image Index": name, "Finding Labels": findings, "Follow-up #": 0,
            "Patient ID": patient, "Patient Age": 50, "Patient Gender": "F",
            "View Position": "PA", "OriginalImage[Width": 2048, "Height]": 2048,
            "OriginalImagePixelSpacing[x": 0.143, "y]": 0.143}


NAMES = ["00000001_000.png", "00000002_000.png", "00000003_000.png"]


def table_csv(rows):
    """CSV text of ``rows`` (dicts); columns as in the first row, in its order."""
    return pd.DataFrame(rows).to_csv(index=False)


def make_local(folder, rows=None, images=NAMES):
    """An NIH-layout folder: label table of ``rows`` and one tiny PNG per name in ``images``."""
    rows = rows if rows is not None else [row(name, patient=i + 1) for i, name in enumerate(NAMES)]
    (folder / IMAGES).mkdir(parents=True)
    (folder / LABEL_TABLE).write_text(table_csv(rows))
    for value, name in enumerate(images):
        (folder / IMAGES / name).write_bytes(png_bytes(value))
    return folder


def local_params(folder, on_invalid="stop"):
    return download_params(source="local", local_dir=str(folder), on_invalid=on_invalid)


def test_local_source_references_images_in_place(tmp_path):
    source = make_local(tmp_path / "source")
    (source / BOX_TABLE).write_text(BOX_HEADER + f"{NAMES[0]},Infiltrate,1,2,3,4\n")
    (source / "test_list.txt").write_text(f"{NAMES[2]}\n")
    before = snapshot(source)
    summary = acquire(local_params(source), tmp_path / "out", tmp_path / "data")
    out = tmp_path / "out"
    assert sorted(path.name for path in out.iterdir()) == [
        BOX_TABLE, LABEL_TABLE, IMAGES_POINTER, IMAGE_DIGESTS, "test_list.txt"]
    # What the dataset's digests record: an image changed in place changes the output.
    assert (out / IMAGE_DIGESTS).read_text() == "".join(
        f"{hashlib.sha256((source / IMAGES / name).read_bytes()).hexdigest()}  {name}\n"
        for name in NAMES)
    assert image_folders(out) == [(source / IMAGES).resolve()]
    expected_paths = [str((source / IMAGES / name).resolve()) for name in NAMES]
    assert read_dataset(out)["path"].tolist() == expected_paths
    assert read_box_table(out / BOX_TABLE)["Finding Label"].tolist() == ["Infiltration"]
    assert snapshot(source) == before
    assert summary.startswith("local: 3 images of 3 patients")


def drop_view_position(rows, folder):
    return [{key: value for key, value in r.items() if key != "View Position"} for r in rows]


def set_cell(index, column, value):
    def edit(rows, folder):
        rows[index] = dict(rows[index], **{column: value})
        return rows
    return edit


def add_duplicate(rows, folder):
    return rows + [dict(rows[0], **{"Patient ID": 9})]


def delete_image(rows, folder):
    (folder / IMAGES / NAMES[1]).unlink()
    return rows


def add_image(rows, folder):
    (folder / IMAGES / "00000009_000.png").write_bytes(png_bytes())
    return rows


def empty_image(rows, folder):
    (folder / IMAGES / NAMES[0]).write_bytes(b"")
    return rows


BAD_TABLES = {
    # case: (edit of the rows and images, stop message, indices of NAMES kept by skip)
    "missing column": (drop_view_position, r"missing columns \['View Position'\]", None),
    "unknown finding": (set_cell(1, "Finding Labels", "Mass|Flu"), "unknown finding 'Flu' in row 1",
                        [0, 2]),
    "empty findings": (set_cell(2, "Finding Labels", " "), "empty 'Finding Labels' in row 2",
                       [0, 1]),
    "duplicate index": (add_duplicate, "duplicate Image Index '00000001_000.png'", [1, 2]),
    "non-numeric patient": (set_cell(0, "Patient ID", "P1"), "non-numeric Patient ID 'P1'", [1, 2]),
    "row without image": (delete_image, "1 rows name images missing from .*'00000002_000.png'",
                          [0, 2]),
    "image without row": (add_image, "1 images have no row in .*'00000009_000.png'", [0, 1, 2]),
    "unreadable image": (empty_image, "00000001_000.png: not a readable PNG", [1, 2]),
}


def make_bad_local(tmp_path, case):
    folder = make_local(tmp_path / "source")
    rows = [row(name, patient=i + 1) for i, name in enumerate(NAMES)]
    (folder / LABEL_TABLE).write_text(table_csv(BAD_TABLES[case][0](rows, folder)))
    return folder


@pytest.mark.parametrize("case", BAD_TABLES)
def test_bad_table_stops_with_one_clear_error(case, tmp_path):
    folder = make_bad_local(tmp_path, case)
    before = snapshot(folder)
    with pytest.raises(InvalidDatasetError, match=BAD_TABLES[case][1]) as caught:
        acquire(local_params(folder), tmp_path / "out", tmp_path / "data")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()
    assert snapshot(folder) == before


@pytest.mark.parametrize("case", BAD_TABLES)
def test_bad_table_skip_leaves_out_bad_rows_and_logs(case, tmp_path, caplog):
    folder = make_bad_local(tmp_path, case)
    before = snapshot(folder)
    kept = BAD_TABLES[case][2]
    params = local_params(folder, on_invalid="skip")
    if kept is None:  # without the column no row can be judged: still an error
        with pytest.raises(InvalidDatasetError, match="missing columns"):
            acquire(params, tmp_path / "out", tmp_path / "data")
        return
    with caplog.at_level(logging.WARNING, logger="chestxray.acquire"):
        acquire(params, tmp_path / "out", tmp_path / "data")
    table = read_label_table(tmp_path / "out" / LABEL_TABLE)
    assert table["Image Index"].tolist() == [NAMES[i] for i in kept]
    assert table["Patient ID"].dtype == "int64"
    assert snapshot(folder) == before  # nothing of the user's is deleted
    assert any("skipping" in message for message in caplog.messages)
    if case != "image without row":  # an image whose row was skipped is not reported twice
        assert not any("have no row" in message for message in caplog.messages)


def test_skip_drops_boxes_and_list_entries_of_skipped_rows(tmp_path):
    folder = make_local(tmp_path / "source")
    (folder / IMAGES / NAMES[1]).unlink()
    (folder / BOX_TABLE).write_text(
        BOX_HEADER + f"{NAMES[0]},Mass,1,2,3,4\n{NAMES[1]},Mass,1,2,3,4\n")
    (folder / "train_val_list.txt").write_text("".join(f"{name}\n" for name in NAMES))
    acquire(local_params(folder, "skip"), tmp_path / "out", tmp_path / "data")
    assert read_box_table(tmp_path / "out" / BOX_TABLE)["Image Index"].tolist() == [NAMES[0]]
    assert (tmp_path / "out" / "train_val_list.txt").read_text().split() == [NAMES[0], NAMES[2]]


def kaggle_layout(folder, parts):
    """Spread ``folder/images`` over ``images_001/images`` ... (the Kaggle copy's layout),
    ``parts`` lists of file names, one per folder; returns those folders."""
    folders = []
    for number, names in enumerate(parts, start=1):
        target = folder / f"{IMAGES}_{number:03d}" / IMAGES
        target.mkdir(parents=True)
        for name in names:
            (folder / IMAGES / name).rename(target / name)
        folders.append(target)
    (folder / IMAGES).rmdir()
    return folders


def test_local_source_reads_the_kaggle_layout_in_place(tmp_path):
    source = make_local(tmp_path / "source")
    folders = kaggle_layout(source, [NAMES[:2], NAMES[2:]])
    before = snapshot(source)
    summary = acquire(local_params(source), tmp_path / "out", tmp_path / "data")
    out = tmp_path / "out"
    assert image_folders(out) == [folder.resolve() for folder in folders]
    assert read_dataset(out)["path"].tolist() == [
        str((folders[0] / NAMES[0]).resolve()), str((folders[0] / NAMES[1]).resolve()),
        str((folders[1] / NAMES[2]).resolve())]
    assert snapshot(source) == before
    assert not (out / IMAGES).exists()
    assert summary.startswith("local: 3 images of 3 patients") and "2 image folders" in summary


def test_local_kaggle_layout_with_one_name_in_two_folders_is_refused(tmp_path):
    source = make_local(tmp_path / "source")
    folders = kaggle_layout(source, [NAMES[:2], NAMES[2:]])
    (folders[1] / NAMES[0]).write_bytes((folders[0] / NAMES[0]).read_bytes())
    with pytest.raises(InvalidDatasetError, match=rf"two images named '{NAMES[0]}'"):
        acquire(local_params(source), tmp_path / "out", tmp_path / "data")
    assert not (tmp_path / "out").exists()


def test_local_folder_without_images_is_refused(tmp_path):
    source = make_local(tmp_path / "source")
    for name in NAMES:
        (source / IMAGES / name).unlink()
    (source / IMAGES).rmdir()
    with pytest.raises(InvalidDatasetError, match=r"no image folder: .*images_NNN/images"):
        acquire(local_params(source), tmp_path / "out", tmp_path / "data")


def test_local_folder_inside_output_is_refused(tmp_path):
    folder = make_local(tmp_path / "out" / "source")
    with pytest.raises(ParamsError, match="inside the output folder"):
        acquire(local_params(folder), tmp_path / "out", tmp_path / "data")
    assert (folder / IMAGES / NAMES[0]).exists()


@pytest.mark.parametrize("params, message", [
    ({"source": "kaggle"}, "download.source = 'kaggle' must be one of"),
    ({"source": "local", "local_dir": "x", "on_invalid": "ignore"}, "on_invalid = 'ignore'"),
    ({"source": "url", "url": ""}, "download.url must be"),
    ({"source": "nih", "limit_archives": -1}, "limit_archives = -1"),
    ({"source": "nih", "nih_urls": {"notes.pdf": "https://x/notes.pdf"}}, "file name 'notes.pdf'"),
])
def test_bad_params_are_refused(params, message, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / LABEL_TABLE).write_text(table_csv([row(NAMES[0])]))
    (tmp_path / "x" / IMAGES).mkdir()
    with pytest.raises(ParamsError, match=message):
        acquire(download_params(**params, cache_dir=str(tmp_path / "cache")), tmp_path / "out",
                tmp_path)


@pytest.mark.parametrize("local_dir, message", [
    ("", r"download.local_dir = '': set it to an NIH-layout folder for source 'local'"),
    ("{data}", r"download.local_dir = '.*data': set it to .* holds the embedded study's tables"),
    ("~/nih", r"download.local_dir = '~/nih': write the folder's path without '~'"),
])
def test_a_local_dir_naming_no_folder_of_its_own_is_refused(local_dir, message, tmp_path):
    # The embedded study's folder is the default only because DVC must hash some folder.
    data = make_local(tmp_path / "data")
    with pytest.raises(ParamsError, match=message) as caught:
        acquire(local_params(local_dir.format(data=data)), tmp_path / "out", data)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()


def dvc_sees_download_changed(repo, source):
    """Whether `dvc status download` reports the local folder ``source`` modified."""
    status = run(["dvc", "status", "download"], repo)
    assert ("modified:" in status) != ("up to date" in status), status
    return re.search(rf"modified:\s+{re.escape(str(source.resolve()))}$", status, re.M) is not None


@pytest.mark.parametrize("form", ["relative", "absolute"])
def test_dvc_reruns_download_when_the_local_folder_changes(form, tmp_path):
    # The Kaggle layout: images in two images_NNN/images folders, beside the tables.
    source = make_local(tmp_path / "source")
    (source / BOX_TABLE).write_text(BOX_HEADER + f"{NAMES[0]},Mass,1,2,3,4\n")
    folders = kaggle_layout(source, [NAMES[:2], NAMES[2:]])
    repo = tmp_path / "repo"
    repo.mkdir()
    clone_working_tree(repo)
    run(["dvc", "pull", "-q", "data.dvc"], repo)
    set_params(repo, {"download.source": "local",
                      "download.local_dir": "../source" if form == "relative" else str(source)})
    assert "Running stage 'download'" in run(["dvc", "repro", "download"], repo)
    assert "Running stage 'download'" not in run(["dvc", "repro", "download"], repo)
    assert not dvc_sees_download_changed(repo, source)

    digests = repo / "outputs" / "dataset" / IMAGE_DIGESTS
    before = digests.read_text()
    (folders[1] / NAMES[2]).write_bytes(png_bytes(200))  # (a) an image's bytes change
    assert dvc_sees_download_changed(repo, source)
    assert "Running stage 'download'" in run(["dvc", "repro", "download"], repo)
    changed = {line for line in digests.read_text().splitlines()} - set(before.splitlines())
    assert [line.split()[1] for line in changed] == [NAMES[2]]  # so split and later rerun too
    assert not dvc_sees_download_changed(repo, source)

    added = folders[0] / "00000009_000.png"
    added.write_bytes(png_bytes(9))  # (b) an image is added
    assert dvc_sees_download_changed(repo, source)
    added.unlink()  # back to the recorded folder
    assert not dvc_sees_download_changed(repo, source)
    (folders[0] / NAMES[1]).unlink()  # (c) an image is removed
    assert dvc_sees_download_changed(repo, source)
    (source / BOX_TABLE).write_text(BOX_HEADER)  # with an image back, a table changes
    (folders[0] / NAMES[1]).write_bytes(png_bytes(1))
    assert dvc_sees_download_changed(repo, source)

    set_params(repo, {"download.local_dir": str(tmp_path / "missing")})
    log = run(["dvc", "repro", "download"], repo, fails=True)
    assert f"No such file or directory: '{tmp_path / 'missing'}'" in log, log


# --- url ---------------------------------------------------------------------------

def tar_gz(members):
    """Bytes of a .tar.gz holding ``{name: bytes}``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def url_params(server, tmp_path, on_invalid="stop", allow_http=True):
    return download_params(source="url", url=server.url("/set.tar.gz"), allow_http=allow_http,
                           on_invalid=on_invalid, cache_dir=str(tmp_path / "cache"))


def nested_archive(extra=None):
    rows = [row(name, patient=i + 1) for i, name in enumerate(NAMES)]
    return tar_gz({"nih/" + LABEL_TABLE: table_csv(rows).encode(),
                   "nih/images_001/images/" + NAMES[0]: png_bytes(1),
                   "nih/images_002/images/" + NAMES[1]: png_bytes(2),
                   "nih/images_002/images/" + NAMES[2]: png_bytes(3),
                   "nih/test_list.txt": f"{NAMES[1]}\n".encode(), **(extra or {})})


def test_url_source_unpacks_nested_layout_into_images(tmp_path):
    with FileServer({"/set.tar.gz": nested_archive()}) as server:
        summary = acquire(url_params(server, tmp_path), tmp_path / "out", tmp_path)
    out = tmp_path / "out"
    assert sorted(path.name for path in out.iterdir()) == [LABEL_TABLE, IMAGES, "test_list.txt"]
    assert sorted(path.name for path in (out / IMAGES).iterdir()) == NAMES
    assert (out / IMAGES / NAMES[2]).read_bytes() == png_bytes(3)
    assert read_label_table(out / LABEL_TABLE)["Image Index"].tolist() == NAMES
    assert len(list((tmp_path / "cache" / "url").rglob("set.tar.gz"))) == 1
    assert summary.startswith("url: 3 images")


def test_url_skip_leaves_out_images_without_row(tmp_path):
    archive = nested_archive({"nih/images_002/images/00000099_000.png": png_bytes()})
    with FileServer({"/set.tar.gz": archive}) as server:
        with pytest.raises(InvalidDatasetError, match="1 images have no row"):
            acquire(url_params(server, tmp_path), tmp_path / "out", tmp_path)
        assert not (tmp_path / "out").exists()
        acquire(url_params(server, tmp_path, "skip"), tmp_path / "out", tmp_path)
        assert len(server.requests) == 1  # the cached archive is reused
    assert sorted(path.name for path in (tmp_path / "out" / IMAGES).iterdir()) == NAMES


def test_url_plain_http_refused_unless_allowed(tmp_path):
    with FileServer({"/set.tar.gz": nested_archive()}) as server:
        with pytest.raises(DownloadError, match="allow_http: true"):
            acquire(url_params(server, tmp_path, allow_http=False), tmp_path / "out", tmp_path)
        assert server.requests == []
    assert not (tmp_path / "out").exists()


def test_url_hostile_archive_leaves_no_output(tmp_path):
    archive = tar_gz({"nih/" + LABEL_TABLE: b"x", "../escape.png": png_bytes()})
    with FileServer({"/set.tar.gz": archive}) as server:
        with pytest.raises(ArchiveError, match="refused member '../escape.png'"):
            acquire(url_params(server, tmp_path), tmp_path / "out", tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cache"]


# --- nih ---------------------------------------------------------------------------

def nih_server_files(table_rows=None, boxes=True):
    rows = table_rows or [row(name, patient=i + 1) for i, name in enumerate(NAMES)]
    files = {
        "/mirror/images_001.tar.gz": tar_gz({f"images/{NAMES[0]}": png_bytes(1),
                                             f"images/{NAMES[1]}": png_bytes(2)}),
        "/mirror/images_002.tar.gz": tar_gz({f"images/{NAMES[2]}": png_bytes(3)}),
        f"/mirror/{LABEL_TABLE}": table_csv(rows).encode(),
        "/mirror/train_val_list.txt": f"{NAMES[0]}\n{NAMES[2]}\n".encode(),
        "/mirror/test_list.txt": f"{NAMES[1]}\n".encode(),
    }
    if boxes:
        files[f"/mirror/{BOX_TABLE}"] = (BOX_HEADER + f"{NAMES[0]},Mass,1,2,3,4\n"
                                         f"{NAMES[2]},Nodule,1,2,3,4\n").encode()
    return files


def nih_params(tmp_path, nih_urls, limit=0):
    return download_params(source="nih", nih_urls=nih_urls, limit_archives=limit,
                           allow_http=True, cache_dir=str(tmp_path / "cache"))


def test_nih_mirror_with_limit_archives_keeps_downloaded_images_only(tmp_path, caplog):
    with FileServer(nih_server_files()) as server:
        with caplog.at_level(logging.INFO, logger="chestxray.acquire"):
            summary = acquire(nih_params(tmp_path, server.url("/mirror/"), limit=1),
                              tmp_path / "out", tmp_path)
        fetched = {path for path, _ in server.requests}
    out = tmp_path / "out"
    assert "/mirror/images_002.tar.gz" not in fetched and "/mirror/images_001.tar.gz" in fetched
    assert sorted(path.name for path in (out / IMAGES).iterdir()) == NAMES[:2]
    assert read_label_table(out / LABEL_TABLE)["Image Index"].tolist() == NAMES[:2]
    assert read_box_table(out / BOX_TABLE)["Image Index"].tolist() == [NAMES[0]]
    assert (out / "train_val_list.txt").read_text().split() == [NAMES[0]]
    assert (out / "test_list.txt").read_text().split() == [NAMES[1]]
    assert any("keeping the 2 of 3 rows" in message for message in caplog.messages)
    assert summary.startswith("nih: 2 images of 2 patients from 1 of 12 archives")
    assert not (out / ".extracted").exists()


def test_nih_url_list_takes_every_archive_and_skips_missing_optional_tables(tmp_path):
    files = nih_server_files(boxes=False)
    with FileServer(files) as server:
        urls = [server.url(path) for path in files if "tar.gz" in path or LABEL_TABLE in path]
        acquire(nih_params(tmp_path, urls), tmp_path / "out", tmp_path)
    assert sorted(path.name for path in (tmp_path / "out" / IMAGES).iterdir()) == NAMES
    assert not (tmp_path / "out" / BOX_TABLE).exists()
    assert sorted((tmp_path / "cache" / "nih").iterdir()) == sorted(
        tmp_path / "cache" / "nih" / Path(url).name for url in urls)


def test_nih_without_label_table_stops_before_downloading_archives(tmp_path):
    with FileServer(nih_server_files()) as server:
        urls = [server.url("/mirror/images_001.tar.gz")]
        with pytest.raises(InvalidDatasetError, match="nihcc.app.box.com.* download.nih_urls"):
            acquire(nih_params(tmp_path, urls), tmp_path / "out", tmp_path)
        assert server.requests == []


def test_nih_uses_label_table_placed_in_cache_by_hand(tmp_path):
    (tmp_path / "cache" / "nih").mkdir(parents=True)
    (tmp_path / "cache" / "nih" / LABEL_TABLE).write_text(table_csv([row(n) for n in NAMES]))
    with FileServer(nih_server_files()) as server:
        urls = {"images_001.tar.gz": server.url("/mirror/images_001.tar.gz")}
        acquire(nih_params(tmp_path, urls, limit=1), tmp_path / "out", tmp_path)
    assert read_label_table(tmp_path / "out" / LABEL_TABLE)["Image Index"].tolist() == NAMES[:2]


# --- real data ---------------------------------------------------------------------

needs_official_table = pytest.mark.skipif(not OFFICIAL_TABLE.exists(),
                                          reason=f"official label table absent: {OFFICIAL_TABLE}")
needs_sample = pytest.mark.skipif(not (SAMPLE_64 / LABEL_TABLE).exists(),
                                  reason=f"64-px NIH sample absent: {SAMPLE_64}")


@needs_official_table
def test_official_label_table_passes_every_row_check():
    table = read_label_table(OFFICIAL_TABLE)
    assert len(table) == 112_120 and table["Patient ID"].nunique() == 30_805
    raw = pd.read_csv(OFFICIAL_TABLE, dtype=str, keep_default_na=False)
    assert {reason: int(mask.sum()) for reason, mask in invalid_rows(raw).items()} == {
        "empty Finding Labels": 0, "unknown finding": 0, "non-numeric Patient ID": 0,
        "duplicate Image Index": 0}


@needs_sample
def test_local_source_over_real_64px_sample(tmp_path):
    summary = acquire(local_params(SAMPLE_64), tmp_path / "out", tmp_path)
    dataset = read_dataset(tmp_path / "out")
    assert len(dataset) == 800 and summary.startswith("local: 800 images")
    assert image_folders(tmp_path / "out") == [(SAMPLE_64 / IMAGES).resolve()]
    assert not (tmp_path / "out" / IMAGES).exists()
    expected = read_label_table(SAMPLE_64 / LABEL_TABLE)
    pd.testing.assert_frame_equal(dataset.drop(columns="path"), expected)


@needs_sample
def test_local_source_over_the_real_sample_in_the_kaggle_layout(tmp_path):
    # The 800 real images as links spread over three images_NNN/images folders.
    kaggle = tmp_path / "kaggle"
    kaggle.mkdir()
    (kaggle / LABEL_TABLE).symlink_to(SAMPLE_64 / LABEL_TABLE)
    names = sorted(path.name for path in (SAMPLE_64 / IMAGES).glob("*.png"))
    for number, part in enumerate((names[:300], names[300:550], names[550:]), start=1):
        folder = kaggle / f"{IMAGES}_{number:03d}" / IMAGES
        folder.mkdir(parents=True)
        for name in part:
            (folder / name).symlink_to(SAMPLE_64 / IMAGES / name)
    summary = acquire(local_params(kaggle), tmp_path / "out", tmp_path)
    dataset = read_dataset(tmp_path / "out")
    assert summary.startswith("local: 800 images") and "3 image folders" in summary
    pd.testing.assert_frame_equal(dataset.drop(columns="path"),
                                  read_label_table(SAMPLE_64 / LABEL_TABLE))
    paths = dataset.set_index("Image Index")["path"].map(Path)
    assert all(path.parent.parent.name == f"{IMAGES}_003" for path in paths[names[550:]])
    # Each path is the link to the same real image.
    assert [path.resolve() for path in paths[names]] == \
        [(SAMPLE_64 / IMAGES / name).resolve() for name in names]


@needs_official_table
@needs_sample
def test_nih_with_official_tables_and_real_images(tmp_path):
    chosen = ["00000001_000.png", "00000032_037.png", "00000072_000.png"]
    cache = tmp_path / "cache" / "nih"
    cache.mkdir(parents=True)
    for packed in (OFFICIAL_TABLE, OFFICIAL_BOXES):
        with gzip.open(packed) as source, \
                open(cache / packed.name.removesuffix(".gz"), "wb") as copy:
            shutil.copyfileobj(source, copy)
    archive = tar_gz({f"images/{name}": (SAMPLE_64 / IMAGES / name).read_bytes()
                      for name in chosen})
    with FileServer({"/images_001.tar.gz": archive}) as server:
        params = nih_params(tmp_path, {"images_001.tar.gz": server.url("/images_001.tar.gz")}, 1)
        summary = acquire(params, tmp_path / "out", tmp_path)
    table = read_label_table(tmp_path / "out" / LABEL_TABLE)
    official = read_label_table(OFFICIAL_TABLE).set_index("Image Index").loc[chosen].reset_index()
    pd.testing.assert_frame_equal(table, official)
    boxes = read_box_table(tmp_path / "out" / BOX_TABLE)
    assert sorted(boxes["Image Index"]) == ["00000032_037.png", "00000072_000.png"]
    assert "Infiltration" in set(boxes["Finding Label"])
    assert summary.startswith("nih: 3 images of 3 patients from 1 of 12 archives")


# --- tables that used to give a traceback or a wrong value ---------------------------

@pytest.mark.parametrize("on_invalid", ["stop", "skip"])
@pytest.mark.parametrize("content, message", [
    (b"", r"cannot read label table \(No columns to parse from file\)"),
    (table_csv([row(NAMES[0])]).encode("utf-16"),
     r"cannot read label table \(not UTF-8 text: invalid start byte at byte 0\); save it as UTF-8"),
    (b"Image Index,Finding Labels\n1,2\n1,2,3\n",
     r"cannot read label table \(Error tokenizing data\. C error: Expected 2 fields in line 3, "
     r"saw 3\)$"),
], ids=["0 bytes", "utf-16", "extra field"])
def test_unreadable_label_table_is_one_line(tmp_path, on_invalid, content, message):
    folder = make_local(tmp_path / "source")
    (folder / LABEL_TABLE).write_bytes(content)
    with pytest.raises(InvalidDatasetError, match=message) as caught:
        acquire(local_params(folder, on_invalid), tmp_path / "out", tmp_path / "data")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("patient, message", [
    ("1e400", r"Patient ID '1e400' in row 0 is not a whole number of at most 18 digits$"),
    ("2.7", r"Patient ID '2\.7' in row 0 is not a whole number"),
    ("-3", r"Patient ID '-3' in row 0 is not a whole number"),
    ("1" * 19, r"Patient ID '1{19}' in row 0 is not a whole number of at most 18 digits"),
    ("", r"non-numeric Patient ID '' in row 0$"),
])
def test_patient_ids_that_are_not_whole_numbers_are_refused(tmp_path, caplog, patient, message):
    folder = make_bad_local(tmp_path, "non-numeric patient")
    (folder / LABEL_TABLE).write_text(table_csv([row(NAMES[0], patient=patient)] + [
        row(name, patient=i + 2) for i, name in enumerate(NAMES[1:])]))
    with pytest.raises(InvalidDatasetError, match=message) as caught:
        acquire(local_params(folder), tmp_path / "out", tmp_path / "data")
    assert "np." not in str(caught.value)
    with caplog.at_level(logging.WARNING, logger="chestxray.acquire"):
        acquire(local_params(folder, "skip"), tmp_path / "out", tmp_path / "data")
    assert read_label_table(tmp_path / "out" / LABEL_TABLE)["Patient ID"].tolist() == [2, 3]


def test_a_path_as_image_index_is_refused_in_the_dataset(tmp_path):
    out = tmp_path / "out"
    acquire(local_params(make_local(tmp_path / "source")), out, tmp_path / "data")
    (out / LABEL_TABLE).write_text(table_csv([row("../../secret.png")]))
    with pytest.raises(LabelTableError, match=r"Image Index '\.\./\.\./secret\.png' in row 0 is "
                                              r"not a file name in "):
        read_dataset(out)


@pytest.mark.parametrize("findings, warning", [
    (["No Finding"] * 3, r"no image shows any finding \(all are 'No Finding'\): the split stage "
                         r"will refuse this dataset"),
    (["Mass", "No Finding", "Mass"], r"no image shows Atelectasis, .*, Hernia, Infiltration, "
                                     r"Nodule, .*: the model cannot learn them"),
], ids=["no finding", "one class"])
def test_findings_no_image_shows_are_warned_about(tmp_path, caplog, findings, warning):
    folder = make_local(tmp_path / "source", rows=[
        row(name, findings=finding, patient=i + 1)
        for i, (name, finding) in enumerate(zip(NAMES, findings))])
    with caplog.at_level(logging.WARNING, logger="chestxray.acquire"):
        acquire(local_params(folder), tmp_path / "out", tmp_path / "data")
    assert any(re.search(warning, message) for message in caplog.messages), caplog.messages
    assert "Mass," not in " ".join(caplog.messages)


def random_png_bytes(shape):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)).save(
        buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("content, problem", [
    (random_png_bytes((64, 64))[:2000], r"not a readable PNG \(truncated before its IEND chunk\)"),
    (random_png_bytes((1, 1)), r"1x1 pixels, under the 8-pixel minimum side: not a radiograph"),
], ids=["truncated inside its pixels", "1x1"])
def test_an_image_training_could_not_use_stops_the_download(tmp_path, content, problem):
    folder = make_local(tmp_path / "source")
    (folder / IMAGES / NAMES[0]).write_bytes(content)
    with pytest.raises(InvalidDatasetError, match=rf"{NAMES[0]}: {problem}; 1 unusable images in "):
        acquire(local_params(folder), tmp_path / "out", tmp_path / "data")
    acquire(local_params(folder, "skip"), tmp_path / "out", tmp_path / "data")
    assert read_label_table(tmp_path / "out" / LABEL_TABLE)["Image Index"].tolist() == NAMES[1:]


def test_a_label_table_without_rows_is_one_line_when_skipping(tmp_path):
    folder = make_local(tmp_path / "source")
    (folder / LABEL_TABLE).write_text(table_csv([row(NAMES[0])]).splitlines()[0] + "\n")
    with pytest.raises(InvalidDatasetError, match=f"{LABEL_TABLE}: no valid rows"):
        acquire(local_params(folder, "skip"), tmp_path / "out", tmp_path / "data")


def test_a_split_list_that_is_not_utf8_is_one_line(tmp_path):
    folder = make_local(tmp_path / "source")
    (folder / "test_list.txt").write_bytes(f"{NAMES[0]}\n# liste réduite\n".encode("latin-1"))
    with pytest.raises(InvalidDatasetError, match=r"test_list\.txt: cannot read image list \(not "
                                                  r"UTF-8 text: invalid continuation byte at "
                                                  r"byte 26\); save it as UTF-8$"):
        acquire(local_params(folder), tmp_path / "out", tmp_path / "data")
    assert not (tmp_path / "out").exists()
