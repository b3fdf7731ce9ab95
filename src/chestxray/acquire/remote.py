"""Download files over HTTP(S) with resume, verification and progress bars.

A download writes ``<name>.part`` beside its destination and renames it to the
final name only once it is complete and verified, so a file under its final
name is always whole. An interrupted run leaves the ``.part`` file; the next
run asks the server for the remaining bytes with an HTTP ``Range`` request.
"""
import hashlib
import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import NamedTuple

from tqdm import tqdm

from chestxray.core.atomic import WRITE_FAILURES
from chestxray.core.errors import PipelineError

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60  # per socket operation, not per file
RETRY_DELAY_S = 5.0  # multiplied by the attempt number
USER_AGENT = "chestxray-pipeline (python urllib)"
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(PipelineError):
    """A download that failed or did not verify; ``status`` is the HTTP status if any."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


class RemoteFile(NamedTuple):
    """One file to fetch: its local ``name``, ``url`` and what is known about it."""
    name: str
    url: str
    size: int | None = None
    sha256: str | None = None


def check_url(url, allow_http=False):
    """Raise :class:`DownloadError` unless ``url`` is https (or http when allowed)."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    allowed = ("https", "http") if allow_http else ("https",)
    if scheme not in allowed:
        hint = " (set download.allow_http: true to accept plain http)" if scheme == "http" else ""
        raise DownloadError(f"{url}: refused {scheme or 'scheme-less'} URL, only "
                            f"{' or '.join(allowed)} is allowed{hint}")


def _open(url, offset, allow_http):
    """Send GET (with ``Range`` from ``offset`` when > 0); returns the response."""
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                      timeout=TIMEOUT_S)
    # urllib follows redirects, including https -> http ones: check where we landed.
    try:
        check_url(response.geturl(), allow_http)
    except DownloadError:
        response.close()
        raise
    return response


def _plan(response, offset):
    """Read the response headers: (start byte, bytes in this body, total or None).

    A 206 answer continues at ``offset``; a 200 answer means the server ignored
    ``Range`` and sends the whole file, so writing restarts at byte 0.
    """
    length = response.headers.get("Content-Length")
    length = int(length) if length is not None else None
    if response.status == 206:
        match = CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if not match or int(match[1]) != offset:
            raise DownloadError(f"{response.geturl()}: server answered the range request from "
                                f"byte {offset} with Content-Range "
                                f"{response.headers.get('Content-Range')!r}")
        total = None if match[3] == "*" else int(match[3])
        return offset, int(match[2]) - offset + 1, total
    return 0, length, length


def _total_of_finished(error):
    """For a 416 answer, the file size the server reports (``bytes */N``), else None."""
    match = re.fullmatch(r"bytes \*/(\d+)", (error.headers.get("Content-Range") or "").strip())
    return int(match[1]) if match else None


def _fetch_once(url, part, allow_http, expected_size, desc):
    """Append the missing bytes of ``url`` to ``part``; returns the server's total size or None.

    Raises ``OSError``/``http.client.HTTPException`` when the connection breaks,
    leaving what arrived in ``part`` for the next attempt.
    """
    offset = part.stat().st_size if part.exists() else 0
    if expected_size is not None and offset > expected_size:
        offset = 0  # a stale .part longer than the file: it cannot be a prefix
        part.unlink()
    try:
        response = _open(url, offset, allow_http)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            total = _total_of_finished(error)
            if total == offset:
                return total  # the previous run received every byte before stopping
            part.unlink()  # the .part does not match the remote file: start over
            return _fetch_once(url, part, allow_http, expected_size, desc)
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}",
                            status=error.code) from error
    with response:
        start, body_bytes, total = _plan(response, offset)
        if start == 0 and offset:
            log.info("%s: server ignored the range request; restarting from byte 0", url)
        if expected_size is not None and total is not None and total != expected_size:
            part.unlink(missing_ok=True)
            raise DownloadError(f"{url}: server reports {total} bytes, expected {expected_size}")
        received = 0
        with open(part, "ab" if start else "wb") as stream, \
                tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=desc,
                     leave=False, mininterval=1) as bar:
            while chunk := response.read(CHUNK_BYTES):
                stream.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        # urllib returns b"" (not an error) when a connection closes early.
        if body_bytes is not None and received < body_bytes:
            raise http.client.IncompleteRead(b"", body_bytes - received)
    return total


def sha256_of(path):
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path, shown_name, size, sha256):
    """Return a one-line problem if ``path`` differs from ``size``/``sha256``, else None."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"{shown_name}: {actual_size} bytes, expected {size}"
    if sha256 is not None:
        actual = sha256_of(path)
        if actual != sha256.lower():
            return f"{shown_name}: sha256 {actual}, expected {sha256.lower()}"
    return None


def _reason(error):
    """What went wrong with a connection, in words: ``[Errno 111] Connection refused``."""
    reason = getattr(error, "reason", None) or error
    return str(reason) or type(reason).__name__


def download(url, destination, *, size=None, sha256=None, allow_http=False, retries=3):
    """Fetch ``url`` into ``destination`` (a Path), resuming a previous ``.part``.

    ``size`` (bytes) and ``sha256`` (hex), when given, must match; the size the
    server announces is always checked. An existing ``destination`` that
    verifies is kept without contacting the server. Broken connections are
    retried ``retries`` times, each continuing where the last stopped.
    Returns ``destination``; raises :class:`DownloadError` on failure, with
    nothing under the final name.
    """
    destination = Path(destination)
    check_url(url, allow_http)
    if destination.exists():
        problem = _verify(destination, destination, size, sha256)
        if problem:
            raise DownloadError(f"{problem}; it was not downloaded by this run, "
                                f"delete it to download it again")
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    part = destination.with_name(destination.name + ".part")
    for attempt in range(retries + 1):
        try:
            total = _fetch_once(url, part, allow_http, size, destination.name)
            break
        except (OSError, http.client.HTTPException) as error:
            received = part.stat().st_size if part.exists() else 0
            if isinstance(error, OSError) and error.errno in WRITE_FAILURES:
                raise DownloadError(f"cannot write {part} ({error.strerror}) after {received} "
                                    "bytes; make room and run again to resume") from error
            if attempt == retries and not part.exists():
                raise DownloadError(f"{url}: cannot download ({_reason(error)}); check the "
                                    "address and the network") from error
            if attempt == retries:
                raise DownloadError(f"{url}: interrupted after {received} bytes "
                                    f"({_reason(error)}); run again to resume from {part}") \
                    from error
            log.warning("%s: connection lost after %d bytes (%s); retrying", url, received,
                        _reason(error))
            time.sleep(RETRY_DELAY_S * (attempt + 1))
    problem = _verify(part, url, size if size is not None else total, sha256)
    if problem:
        part.unlink()  # corrupt bytes must not be resumed by the next run
        raise DownloadError(f"{problem}; the download was discarded")
    os.replace(part, destination)
    return destination


def download_all(files, directory, *, allow_http=False, retries=3):
    """Download each :class:`RemoteFile` into ``directory`` under its name.

    Shows an overall bar (files) above each file's byte bar. Returns the list
    of local Paths in the order of ``files``.
    """
    directory = Path(directory)
    paths = []
    with tqdm(total=len(files), unit="file", desc="download", mininterval=0) as overall:
        for remote in files:
            paths.append(download(remote.url, directory / remote.name, size=remote.size,
                                  sha256=remote.sha256, allow_http=allow_http, retries=retries))
            overall.update(1)
    return paths
