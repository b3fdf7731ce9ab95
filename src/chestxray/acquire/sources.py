"""The download stage's sources; each produces one dataset folder in NIH layout.

* ``embedded`` -- the study rendered by :mod:`chestxray.acquire.embedded`;
* ``nih`` -- the official release (:mod:`chestxray.acquire.nih_release`);
* ``url`` -- one archive holding an NIH-layout folder (:mod:`chestxray.acquire.url_archive`);
* ``local`` -- an NIH-layout folder on disk, referenced in place
  (:mod:`chestxray.acquire.local_folder`).

Real sources are checked by :mod:`chestxray.acquire.screening`; the output
folder appears only when complete.
"""
from pathlib import Path

from chestxray.acquire.local_folder import acquire_local
from chestxray.acquire.nih_release import acquire_nih
from chestxray.acquire.screening import InvalidDatasetError
from chestxray.acquire.url_archive import acquire_url
from chestxray.core.params import validate
from chestxray.nih.layout import LabelTableError

DOWNLOADERS = {"nih": acquire_nih, "url": acquire_url}


def acquire(download_params, out_dir, data_dir):
    """Produce the dataset folder ``out_dir`` from ``download_params["source"]``.

    ``download_params`` is the whole ``download:`` section of params.yaml;
    ``data_dir`` holds the embedded study's tables (rendered by the embedded source,
    refused as a local source's folder).
    Returns a one-line summary. Every problem raises a
    :class:`~chestxray.core.errors.PipelineError` with a one-line message; invalid
    params and data are also ``ValueError`` (ParamsError, InvalidDatasetError,
    ArchiveError), failed downloads are :class:`~chestxray.acquire.remote.DownloadError`.
    """
    params = validate({"download": download_params}, ["download"])["download"]
    source, out_dir = params["source"], Path(out_dir)
    if source == "embedded":
        # Imported here: rendering pulls in the phantom and a process pool.
        from chestxray.acquire.embedded import render_dataset
        return render_dataset(data_dir, out_dir, image_size=params["image_size"])
    try:
        if source == "local":
            return acquire_local(params, out_dir, data_dir)
        return DOWNLOADERS[source](params, out_dir)
    except LabelTableError as error:
        raise InvalidDatasetError(str(error)) from error
