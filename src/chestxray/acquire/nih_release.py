"""``nih`` source: the official release, 12 image archives and the label table."""
import logging
import re
import shutil
import urllib.parse
from pathlib import Path

from chestxray.acquire.archives import extract_archive, find_image_folders
from chestxray.acquire.folders import EXTRACTED, cache_dir, drop_unused, gather_images
from chestxray.acquire.remote import DownloadError, RemoteFile, download, download_all
from chestxray.acquire.screening import InvalidDatasetError, summary, write_tables
from chestxray.core.atomic import atomic_directory
from chestxray.core.params import params_error
from chestxray.nih.layout import BOX_TABLE, IMAGES, LABEL_TABLE, SPLIT_LISTS

log = logging.getLogger(__name__)

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
def _remote_file(name, entry):
    """A :class:`RemoteFile` from a URL string or a ``{url, size, sha256}`` mapping."""
    if isinstance(entry, str):
        return RemoteFile(name, entry)
    if isinstance(entry, dict) and isinstance(entry.get("url"), str):
        return RemoteFile(name, entry["url"], entry.get("size"), entry.get("sha256"))
    raise params_error(f"download.nih_urls[{name!r}] = {entry!r} must be a URL or "
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
        raise params_error(f"download.nih_urls = {nih_urls!r} must be empty, a base URL, "
                           f"a list of URLs or a mapping of file names to URLs")
    unknown = [name for name in entries
               if not (ARCHIVE_NAME.fullmatch(name) or name in NIH_TABLES)]
    if unknown:
        raise params_error(f"download.nih_urls: file name {unknown[0]!r} is neither an image "
                           f"archive (images_NNN.tar.gz) nor one of {', '.join(NIH_TABLES)}; "
                           f"use a mapping {{file name: URL}} for URLs not ending in the name")
    return [_remote_file(name, entries[name]) for name in sorted(entries)]
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
        raise params_error("download.nih_urls names no image archive (images_NNN.tar.gz)")
    selected = archives[:limit] if limit else archives
    cache, allow_http = cache_dir(params, out_dir) / "nih", params["allow_http"]
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
            gather_images(folders, staging / IMAGES, images, str(path))
            log.info("%s: %d images", path.name, len(images) - before)
            shutil.rmtree(staging / EXTRACTED)
        report = write_tables(cache, images, staging, on_invalid,
                              origin=f"{len(paths)} archives in {cache}",
                              partial=len(selected) < len(archives))
        drop_unused(report, images)
    return summary("nih", report, f"{len(selected)} of {len(archives)} archives")
