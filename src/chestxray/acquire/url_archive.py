"""``url`` source: one ``.tar.gz``/``.tgz``/``.tar``/``.zip`` holding an NIH-layout folder."""
import hashlib
import shutil
import urllib.parse
from pathlib import Path

from chestxray.acquire.archives import extract_archive, find_dataset_root, find_image_folders
from chestxray.acquire.folders import EXTRACTED, cache_dir, drop_unused, gather_images
from chestxray.acquire.remote import download
from chestxray.acquire.screening import InvalidDatasetError, summary, write_tables
from chestxray.core.atomic import atomic_directory
from chestxray.core.params import params_error
from chestxray.nih.layout import IMAGES, LABEL_TABLE


def acquire_url(params, out_dir):
    """``url`` source: download one archive holding an NIH-layout folder and unpack it.

    The archive is kept in ``<cache_dir>/url/<hash of the URL>/`` so a rerun
    resumes or reuses it; optional ``download.sha256`` pins its content.
    """
    url = params["url"]
    if not isinstance(url, str) or not url:
        raise params_error("download.url must be the http(s) URL of an archive "
                           "for source 'url'")
    on_invalid, allow_http = params["on_invalid"], params["allow_http"]
    name = Path(urllib.parse.urlsplit(url).path).name or "dataset-archive"
    # Keyed by URL so two archives with the same file name never reuse each other.
    cache = cache_dir(params, out_dir) / "url" / hashlib.sha256(url.encode()).hexdigest()[:16]
    archive = download(url, cache / name, sha256=params["sha256"] or None, allow_http=allow_http)
    with atomic_directory(out_dir) as staging:
        root = find_dataset_root(extract_archive(archive, staging / EXTRACTED), archive)
        folders = find_image_folders(root)
        if not folders:
            raise InvalidDatasetError(f"{archive}: no images/ folder beside {LABEL_TABLE}")
        images = {}
        gather_images(folders, staging / IMAGES, images, str(archive))
        report = write_tables(root, images, staging, on_invalid, origin=str(archive))
        drop_unused(report, images)
        shutil.rmtree(staging / EXTRACTED)
    return summary("url", report, url)
