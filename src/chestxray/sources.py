"""The download stage's sources: each produces one dataset folder in NIH layout.

* ``embedded`` -- the study rendered by :mod:`chestxray.embedded`;
* ``nih`` -- the official release: 12 image archives and the label table;
* ``url`` -- one ``.tar.gz``/``.tgz``/``.tar``/``.zip`` holding an NIH-layout folder;
* ``local`` -- an NIH-layout folder on disk, referenced in place.

Every real source is checked the same way: the label table's schema and rows,
then rows against images. ``download.on_invalid`` decides whether a problem
stops the stage (``stop``) or the bad rows and images are left out with a
logged count (``skip``). The output folder appears only when complete.
"""
import hashlib
import logging
import os
import re
import shutil
import urllib.parse
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from chestxray.archives import extract_archive, find_dataset_root, find_image_folders
from chestxray.atomic import atomic_directory
from chestxray.errors import PipelineError
from chestxray.labels import FINDINGS, LABEL_TABLE_COLUMNS, NO_FINDING
from chestxray.nih_layout import (
    BOX_TABLE, IMAGES, IMAGES_POINTER, LABEL_TABLE, LabelTableError, read_box_table,
    read_label_table, write_box_table, write_label_table,
)
from chestxray.params import PARAMS_FILE, ParamsError, validate
from chestxray.remote import DownloadError, RemoteFile, download, download_all

log = logging.getLogger(__name__)

# What a library caller may leave out of the ``download:`` params.
DEFAULTS = {"source": "embedded", "image_size": 128, "url": "", "sha256": "", "local_dir": "",
            "nih_urls": [],
            "limit_archives": 0, "allow_http": False, "on_invalid": "stop",
            "cache_dir": "downloads"}
SPLIT_LISTS = ("train_val_list.txt", "test_list.txt")
NIH_PAGE = "https://nihcc.app.box.com/v/ChestXray-NIHCC"
# The image archives as linked by NIH's batch_download_zips.py (Box static links).
NIH_ARCHIVES = {
    f"images_{number:03d}.tar.gz": f"https://nihcc.box.com/shared/static/{key}.gz"
    for number, key in enumerate([
        "vfk49d74nhbxq3nqjg0900w5nvkorp5c", "i28rlmbvmfjbl8p2n3ril0pptcmcu9d1",
        "f1t00wrtdk94satdfb9olcolqx20z2jp", "0aowwzs5lhjrceb3qp67ahp0rd1l1etg",
        "v5e3goj22zr6h8tzualxfsqlqaygfbsn", "asi7ikud9jwnkrnkj99jnpfkjdes7l6l",
        "jn1b4mw4n6lnh74ovmcjb8y48h8xj07n", "tvpxmn7qyrgl0w8wfh9kqfjskv6nmm1j",
        "upyy3ml7qdumlgk2rfcvlb9k6gvqq2pj", "l6nilvfa9cg3s28tqv1qc1olm3gnz54p",
        "hhq8fkdgvcari67vfhs7ppg2w6ni4jze", "ioqwiy20ihqwyr8pf4c24eazhh281pbu",
    ], start=1)
}
ARCHIVE_NAME = re.compile(r"images_\d{3}\.tar\.gz")
# NIH shows these on its Box page without a stable direct link, so none is built in.
NIH_TABLES = (LABEL_TABLE, BOX_TABLE, *SPLIT_LISTS)
EXTRACTED = ".extracted"  # scratch folder inside the output's staging folder


class InvalidDatasetError(PipelineError, ValueError):
    """A source whose tables and images disagree; the message names the file and problem."""


class Report(NamedTuple):
    """What a source produced: the written label table and what was left out."""
    table: pd.DataFrame
    boxes: int
    skipped_rows: int
    unused_images: list  # sorted names of images with no kept row


def acquire(download_params, out_dir, data_dir):
    """Produce the dataset folder ``out_dir`` from ``download_params["source"]``.

    ``download_params`` is the ``download:`` section of params.yaml;
    ``data_dir`` holds the embedded study's tables (embedded source only).
    Returns a one-line summary. Every problem raises a
    :class:`~chestxray.errors.PipelineError` with a one-line message; invalid
    params and data are also ``ValueError`` (ParamsError, InvalidDatasetError,
    ArchiveError), failed downloads are :class:`~chestxray.remote.DownloadError`.
    """
    params = validate({"download": {**DEFAULTS, **download_params}}, ["download"])["download"]
    source, out_dir = params["source"], Path(out_dir)
    if source == "embedded":
        # Imported here: rendering pulls in the phantom and a process pool.
        from chestxray.embedded import render_dataset
        return render_dataset(data_dir, out_dir, image_size=params["image_size"])
    acquirers = {"nih": acquire_nih, "url": acquire_url, "local": acquire_local}
    try:
        return acquirers[source](params, out_dir)
    except LabelTableError as error:
        raise InvalidDatasetError(str(error)) from error


# --- parameters --------------------------------------------------------------------

def _params_error(message):
    return ParamsError(f"{PARAMS_FILE}: {message}")


def _cache_dir(params, out_dir):
    """``download.cache_dir`` as an absolute Path, refused inside ``out_dir``.

    ``out_dir`` is replaced wholesale on success, which would delete a cache in it.
    """
    cache = Path(params["cache_dir"] or "downloads").expanduser().resolve()
    _refuse_inside(cache, out_dir, "download.cache_dir")
    return cache


def _refuse_inside(path, out_dir, what):
    out_dir = Path(out_dir).resolve()
    if path == out_dir or out_dir in path.parents:
        raise _params_error(f"{what} = {str(path)!r} lies inside the output folder {out_dir}, "
                            f"which the download stage replaces")


def _remote_file(name, entry):
    """A :class:`RemoteFile` from a URL string or a ``{url, size, sha256}`` mapping."""
    if isinstance(entry, str):
        return RemoteFile(name, entry)
    if isinstance(entry, dict) and isinstance(entry.get("url"), str):
        return RemoteFile(name, entry["url"], entry.get("size"), entry.get("sha256"))
    raise _params_error(f"download.nih_urls[{name!r}] = {entry!r} must be a URL or "
                        f"{{url: ..., size: ..., sha256: ...}}")


def nih_files(nih_urls):
    """Resolve ``download.nih_urls`` into RemoteFiles named as NIH names them.

    * empty: the built-in archive links (``NIH_ARCHIVES``);
    * a string: a mirror's base URL holding every archive and table by name;
    * a list: URLs whose last path component is the file name;
    * a mapping ``{file name: URL or {url, size, sha256}}``: overrides or adds
      to the built-in links (a table's URL is added this way).

    Returns a list of :class:`RemoteFile`, names sorted.
    """
    if not nih_urls:
        entries = dict(NIH_ARCHIVES)
    elif isinstance(nih_urls, str):
        base = nih_urls.rstrip("/") + "/"
        entries = {name: base + name for name in [*NIH_ARCHIVES, *NIH_TABLES]}
    elif isinstance(nih_urls, list):
        entries = {Path(urllib.parse.urlsplit(url).path).name: url for url in nih_urls}
    elif isinstance(nih_urls, dict):
        entries = {**NIH_ARCHIVES, **nih_urls}
    else:
        raise _params_error(f"download.nih_urls = {nih_urls!r} must be empty, a base URL, "
                            f"a list of URLs or a mapping of file names to URLs")
    unknown = [name for name in entries
               if not (ARCHIVE_NAME.fullmatch(name) or name in NIH_TABLES)]
    if unknown:
        raise _params_error(f"download.nih_urls: file name {unknown[0]!r} is neither an image "
                            f"archive (images_NNN.tar.gz) nor one of {', '.join(NIH_TABLES)}; "
                            f"use a mapping {{file name: URL}} for URLs not ending in the name")
    return [_remote_file(name, entries[name]) for name in sorted(entries)]


# --- checking tables against images ------------------------------------------------

def invalid_rows(raw):
    """Masks of the rows :func:`read_label_table` refuses, by reason.

    ``raw`` is the label table read as text (every cell a str). Returns
    ``{reason: bool ndarray of shape (n_rows,)}``.
    """
    known = set(FINDINGS) | {NO_FINDING}
    empty = (raw["Finding Labels"].str.strip() == "").to_numpy()
    unknown = raw["Finding Labels"].str.split("|").map(lambda names: not set(names) <= known)
    patient = pd.to_numeric(raw["Patient ID"], errors="coerce")
    return {
        "empty Finding Labels": empty,
        "unknown finding": unknown.to_numpy() & ~empty,
        "non-numeric Patient ID": patient.isna().to_numpy(),
        # Which copy of a duplicated row is right cannot be told: all are dropped.
        "duplicate Image Index": raw["Image Index"].duplicated(keep=False).to_numpy(),
    }


def _screened_table(path, scratch):
    """Read the label table at ``path`` leaving out invalid rows (skip mode).

    Returns (validated DataFrame, number of rows left out, set of the Image
    Index values of those rows). The kept rows are written to ``scratch`` and
    read back with :func:`read_label_table`, so they pass exactly the reader
    later stages use.
    """
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise LabelTableError(f"{path}: cannot read label table ({error})") from error
    missing = [column for column in LABEL_TABLE_COLUMNS if column not in raw.columns]
    if missing:
        raise LabelTableError(f"{path}: missing columns {missing}; rows cannot be skipped "
                              f"without them")
    bad = np.zeros(len(raw), dtype=bool)
    for reason, mask in invalid_rows(raw).items():
        if mask.any():
            first = int(np.flatnonzero(mask)[0])
            log.warning("%s: skipping %d rows with %s (first: row %d, %r)", path, mask.sum(),
                        reason, first, raw["Image Index"].iloc[first])
        bad |= mask
    write_label_table(raw[~bad], scratch)
    return read_label_table(scratch), int(bad.sum()), set(raw["Image Index"][bad])


def _png_files(folder):
    """``{file name: Path}`` of the PNGs directly in ``folder``."""
    with os.scandir(folder) as entries:
        return {entry.name: Path(entry.path) for entry in entries
                if entry.name.lower().endswith(".png") and entry.is_file()}


def _unreadable(path):
    """Why ``path`` is not a PNG, from its header only, or None.

    A full decode of 112,120 radiographs would take an hour; this catches empty,
    truncated-at-the-start and mislabelled files in seconds.
    """
    try:
        with Image.open(path) as image:
            return None if image.format == "PNG" else f"{image.format} data, not PNG"
    except UnidentifiedImageError:
        return "empty file" if path.stat().st_size == 0 else "not an image file"
    except (OSError, SyntaxError, ValueError) as error:
        return str(error)


def _handle(problem, on_invalid):
    """Raise ``problem`` (a one-line message) in stop mode; log it in skip mode."""
    if on_invalid == "stop":
        raise InvalidDatasetError(f"{problem}; download.on_invalid: skip leaves them out")
    log.warning("skipping: %s", problem)


def _first(names):
    return repr(min(map(str, names)))


def check_against_images(table, images, on_invalid, *, table_path, origin, partial=False,
                         invalid_names=frozenset()):
    """Keep the rows of ``table`` whose image is present and readable.

    ``images`` maps file names to Paths; ``origin`` names where they came from
    in messages. With ``partial`` (a subset of the NIH archives) rows without
    an image are expected and dropped without complaint. ``invalid_names``
    had rows already left out as invalid: their images are not reported again.
    Returns
    (kept rows, rows left out as invalid, sorted names of images without a kept row).
    """
    present = table["Image Index"].isin(images.keys()).to_numpy()
    missing = table["Image Index"][~present]
    if partial:
        log.info("%s: keeping the %d of %d rows whose image is in the archives downloaded",
                 table_path, present.sum(), len(table))
    elif len(missing):
        _handle(f"{table_path}: {len(missing)} rows name images missing from {origin} "
                f"(first: {_first(missing)})", on_invalid)
    table = table[present]
    checks = tqdm(table["Image Index"], desc="check images", unit="img", mininterval=2)
    unreadable = {name: why for name in checks if (why := _unreadable(images[name]))}
    if unreadable:
        name = min(unreadable)
        _handle(f"{images[name]}: not a readable PNG ({unreadable[name]}); {len(unreadable)} "
                f"such images in {origin}", on_invalid)
    without_row = set(images) - set(table["Image Index"]) - invalid_names
    if without_row:
        _handle(f"{origin}: {len(without_row)} images have no row in {table_path} "
                f"(first: {_first(without_row)})", on_invalid)
    kept = table[~table["Image Index"].isin(unreadable.keys())]
    skipped = (0 if partial else len(missing)) + len(unreadable)
    return kept, skipped, sorted(set(images) - set(kept["Image Index"]))


def _write_split_lists(root, staging, names):
    """Copy ``train_val_list.txt``/``test_list.txt`` from ``root``, keeping ``names`` only."""
    for list_name in SPLIT_LISTS:
        path = root / list_name
        if not path.is_file():
            continue
        listed = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        kept = [name for name in listed if name in names]
        if len(kept) < len(listed):
            log.info("%s: %d of %d listed images are not in the dataset; left out",
                     path, len(listed) - len(kept), len(listed))
        (staging / list_name).write_text("".join(f"{name}\n" for name in kept))


def write_tables(root, images, staging, on_invalid, *, origin, partial=False):
    """Check the tables in ``root`` against ``images`` and write them into ``staging``.

    ``root`` holds the label table and optionally the box table and the split
    lists; ``images`` maps file names to Paths. Returns a :class:`Report`.
    """
    table_path = root / LABEL_TABLE
    if on_invalid == "stop":
        table, skipped_rows, invalid_names = read_label_table(table_path), 0, set()
    else:
        table, skipped_rows, invalid_names = _screened_table(table_path, staging / LABEL_TABLE)
    if table.empty:
        raise InvalidDatasetError(f"{table_path}: no valid rows")
    table, skipped_images, unused = check_against_images(
        table, images, on_invalid, table_path=table_path, origin=origin, partial=partial,
        invalid_names=invalid_names)
    if table.empty:
        raise InvalidDatasetError(f"{table_path}: no row has a readable image in {origin}")
    write_label_table(table, staging / LABEL_TABLE)
    names = set(table["Image Index"])
    boxes = 0
    if (root / BOX_TABLE).is_file():
        box_table = read_box_table(root / BOX_TABLE)
        box_table = box_table[box_table["Image Index"].isin(names)]
        write_box_table(box_table, staging / BOX_TABLE)
        boxes = len(box_table)
    _write_split_lists(root, staging, names)
    return Report(table, boxes, skipped_rows + skipped_images, unused)


def _summary(source, report, origin):
    table = report.table
    return (f"{source}: {len(table)} images of {table['Patient ID'].nunique()} patients "
            f"from {origin}, {report.boxes} boxes, {report.skipped_rows} invalid rows "
            f"skipped, {len(report.unused_images)} images left out")


# --- sources -----------------------------------------------------------------------

def _gather_images(folders, target, images, origin):
    """Move the PNGs of ``folders`` into ``target``, recording them in ``images``.

    ``images`` (``{name: Path}``) is updated in place; a name seen twice is an error.
    """
    target.mkdir(exist_ok=True)
    for folder in folders:
        for name, path in _png_files(folder).items():
            if name in images:
                raise InvalidDatasetError(f"{origin}: two images named {name!r}")
            os.replace(path, target / name)
            images[name] = target / name


def _drop_unused(report, images):
    """Delete extracted images that ended up without a row (this run created them)."""
    for name in report.unused_images:
        images[name].unlink()


def acquire_local(params, out_dir):
    """``local`` source: reference the NIH-layout folder ``download.local_dir`` in place.

    Writes the checked tables and ``images_dir.txt`` (the image folder's
    absolute path) into ``out_dir``; images are neither copied nor changed.
    """
    if not params["local_dir"]:
        raise _params_error("download.local_dir must name an NIH-layout folder "
                            "for source 'local'")
    on_invalid = params["on_invalid"]
    root = Path(params["local_dir"]).expanduser().resolve()
    if not (root / LABEL_TABLE).is_file():
        raise InvalidDatasetError(f"{root}: no {LABEL_TABLE}; download.local_dir must be an "
                                  f"NIH-layout folder (label table and images/)")
    folders = find_image_folders(root)
    if len(folders) != 1:
        raise InvalidDatasetError(
            f"{root}: {len(folders)} image folders; a local source is referenced in place "
            f"through exactly one, {root / IMAGES} (move the PNGs there, or pack the folder "
            f"and use source 'url')")
    folder = folders[0]
    _refuse_inside(folder, out_dir, "the image folder of download.local_dir")
    images = _png_files(folder)
    with atomic_directory(out_dir) as staging:
        report = write_tables(root, images, staging, on_invalid, origin=str(folder))
        (staging / IMAGES_POINTER).write_text(f"{folder}\n")
    return _summary("local", report, f"{folder} (referenced in place)")


def acquire_url(params, out_dir):
    """``url`` source: download one archive holding an NIH-layout folder and unpack it.

    The archive is kept in ``<cache_dir>/url/<hash of the URL>/`` so a rerun
    resumes or reuses it; optional ``download.sha256`` pins its content.
    """
    url = params["url"]
    if not isinstance(url, str) or not url:
        raise _params_error("download.url must be the http(s) URL of an archive "
                            "for source 'url'")
    on_invalid, allow_http = params["on_invalid"], params["allow_http"]
    name = Path(urllib.parse.urlsplit(url).path).name or "dataset-archive"
    # Keyed by URL so two archives with the same file name never reuse each other.
    cache = _cache_dir(params, out_dir) / "url" / hashlib.sha256(url.encode()).hexdigest()[:16]
    archive = download(url, cache / name, sha256=params["sha256"] or None, allow_http=allow_http)
    with atomic_directory(out_dir) as staging:
        root = find_dataset_root(extract_archive(archive, staging / EXTRACTED), archive)
        folders = find_image_folders(root)
        if not folders:
            raise InvalidDatasetError(f"{archive}: no images/ folder beside {LABEL_TABLE}")
        images = {}
        _gather_images(folders, staging / IMAGES, images, str(archive))
        report = write_tables(root, images, staging, on_invalid, origin=str(archive))
        _drop_unused(report, images)
        shutil.rmtree(staging / EXTRACTED)
    return _summary("url", report, url)


def _download_tables(tables, cache, allow_http):
    """Fetch the tables that have URLs; an optional one missing upstream (404) is skipped."""
    for remote in tables:
        try:
            download(remote.url, cache / remote.name, size=remote.size, sha256=remote.sha256,
                     allow_http=allow_http)
        except DownloadError as error:
            if error.status != 404 or remote.name == LABEL_TABLE:
                raise
            log.info("%s: not on the server (404); going on without it", remote.url)


def acquire_nih(params, out_dir):
    """``nih`` source: the official archives (the first ``limit_archives``) and tables.

    Archives and tables are kept in ``<cache_dir>/nih/``. The tables have no
    built-in URL: give them in ``download.nih_urls`` or put them there by hand.
    With ``limit_archives`` the label table keeps only the images downloaded.
    """
    limit = params["limit_archives"]
    files = nih_files(params["nih_urls"])
    archives = [remote for remote in files if ARCHIVE_NAME.fullmatch(remote.name)]
    if not archives:
        raise _params_error("download.nih_urls names no image archive (images_NNN.tar.gz)")
    selected = archives[:limit] if limit else archives
    cache, allow_http = _cache_dir(params, out_dir) / "nih", params["allow_http"]
    on_invalid = params["on_invalid"]
    _download_tables([remote for remote in files if remote.name in NIH_TABLES], cache, allow_http)
    if not (cache / LABEL_TABLE).is_file():
        raise InvalidDatasetError(
            f"{cache / LABEL_TABLE}: not found; NIH publishes it on {NIH_PAGE} without a "
            f"stable direct link: save it there by hand or give its URL in download.nih_urls")
    paths = download_all(selected, cache, allow_http=allow_http)
    with atomic_directory(out_dir) as staging:
        images = {}
        for path in paths:
            folders = find_image_folders(extract_archive(path, staging / EXTRACTED))
            if not folders:
                raise InvalidDatasetError(f"{path}: no images/ folder inside")
            before = len(images)
            _gather_images(folders, staging / IMAGES, images, str(path))
            log.info("%s: %d images", path.name, len(images) - before)
            shutil.rmtree(staging / EXTRACTED)
        report = write_tables(cache, images, staging, on_invalid,
                              origin=f"{len(paths)} archives in {cache}",
                              partial=len(selected) < len(archives))
        _drop_unused(report, images)
    return _summary("nih", report, f"{len(selected)} of {len(archives)} archives")
