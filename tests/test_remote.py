"""Resumable, verified downloads against a local HTTP server."""
import errno
import hashlib

import pytest

from chestxray.acquire import remote
from chestxray.acquire.remote import DownloadError, RemoteFile, download, download_all

from http_server import FileServer

BODY = bytes(range(256)) * 40  # 10,240 bytes, every offset distinguishable
SHA = hashlib.sha256(BODY).hexdigest()


@pytest.fixture(autouse=True)
def no_retry_wait(monkeypatch):
    monkeypatch.setattr(remote, "RETRY_DELAY_S", 0)


@pytest.fixture
def server():
    with FileServer({"/data.bin": BODY, "/other.bin": b"other"}) as running:
        yield running


def test_download_writes_verified_file_and_no_part(server, tmp_path):
    target = download(server.url("/data.bin"), tmp_path / "data.bin", size=len(BODY),
                      sha256=SHA, allow_http=True)
    assert target.read_bytes() == BODY
    assert not (tmp_path / "data.bin.part").exists()


def test_interrupted_download_resumes_from_part(server, tmp_path):
    target = tmp_path / "data.bin"
    server.drop_after["/data.bin"] = 3000
    with pytest.raises(DownloadError, match="interrupted after 3000 bytes"):
        download(server.url("/data.bin"), target, allow_http=True, retries=0)
    assert not target.exists()
    assert (tmp_path / "data.bin.part").read_bytes() == BODY[:3000]

    download(server.url("/data.bin"), target, sha256=SHA, allow_http=True, retries=0)
    assert server.requests[-1] == ("/data.bin", "bytes=3000-")
    assert target.read_bytes() == BODY
    assert not (tmp_path / "data.bin.part").exists()


def test_retry_within_one_call_continues_where_it_stopped(server, tmp_path):
    server.drop_after["/data.bin"] = 5000
    download(server.url("/data.bin"), tmp_path / "data.bin", allow_http=True, retries=1)
    assert [header for _, header in server.requests] == [None, "bytes=5000-"]
    assert (tmp_path / "data.bin").read_bytes() == BODY


def test_server_ignoring_range_restarts_cleanly(tmp_path):
    (tmp_path / "data.bin.part").write_bytes(b"\xff" * 4000)  # garbage a resume would keep
    with FileServer({"/data.bin": BODY}, honour_range=False) as server:
        download(server.url("/data.bin"), tmp_path / "data.bin", allow_http=True)
        assert server.requests == [("/data.bin", "bytes=4000-")]
    assert (tmp_path / "data.bin").read_bytes() == BODY


def test_complete_part_is_finished_after_416(server, tmp_path):
    (tmp_path / "data.bin.part").write_bytes(BODY)
    download(server.url("/data.bin"), tmp_path / "data.bin", sha256=SHA, allow_http=True)
    assert (tmp_path / "data.bin").read_bytes() == BODY


def test_checksum_mismatch_is_refused_and_discarded(server, tmp_path):
    with pytest.raises(DownloadError, match=f"sha256 {SHA}, expected 0+"):
        download(server.url("/data.bin"), tmp_path / "data.bin", sha256="0" * 64,
                 allow_http=True)
    assert list(tmp_path.iterdir()) == []


def test_size_mismatch_is_refused(server, tmp_path):
    with pytest.raises(DownloadError, match=f"server reports {len(BODY)} bytes, expected 99"):
        download(server.url("/data.bin"), tmp_path / "data.bin", size=99, allow_http=True)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x", "ftp://example.org/x",
                                 "file:///etc/passwd"])
def test_non_https_refused_before_any_request(url, tmp_path):
    with pytest.raises(DownloadError, match="refused .* only https is allowed"):
        download(url, tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


def test_http_refusal_names_the_switch(server, tmp_path):
    with pytest.raises(DownloadError, match="allow_http: true"):
        download(server.url("/data.bin"), tmp_path / "data.bin")
    assert server.requests == []


def test_existing_verified_file_is_reused_without_request(server, tmp_path):
    (tmp_path / "data.bin").write_bytes(BODY)
    download(server.url("/data.bin"), tmp_path / "data.bin", sha256=SHA, allow_http=True)
    assert server.requests == []


def test_existing_file_that_fails_verification_is_not_touched(server, tmp_path):
    (tmp_path / "data.bin").write_bytes(b"mine")
    with pytest.raises(DownloadError, match="delete it to download it again"):
        download(server.url("/data.bin"), tmp_path / "data.bin", size=len(BODY), allow_http=True)
    assert (tmp_path / "data.bin").read_bytes() == b"mine"


def test_missing_file_reports_http_status(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404") as caught:
        download(server.url("/absent.bin"), tmp_path / "absent.bin", allow_http=True)
    assert caught.value.status == 404
    assert list(tmp_path.iterdir()) == []


def test_download_all_fetches_each_file_in_order(server, tmp_path):
    files = [RemoteFile("b.bin", server.url("/data.bin"), len(BODY), SHA),
             RemoteFile("a.bin", server.url("/other.bin"))]
    paths = download_all(files, tmp_path, allow_http=True)
    assert paths == [tmp_path / "b.bin", tmp_path / "a.bin"]
    assert [path.read_bytes() for path in paths] == [BODY, b"other"]


def test_full_disk_stops_at_once_and_keeps_the_part_for_resuming(server, tmp_path, monkeypatch):
    def open_on_a_disk_with_3000_bytes_free(path, mode="r"):
        stream = open(path, mode)
        write = stream.write

        def write_until_full(data):
            if stream.tell() + len(data) > 3000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return write(data)
        stream.write = write_until_full
        return stream

    monkeypatch.setattr(remote, "CHUNK_BYTES", 1000)
    monkeypatch.setattr(remote, "open", open_on_a_disk_with_3000_bytes_free, raising=False)
    target = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match=r"cannot write .*data.bin.part \(No space left on "
                                            r"device\) after 3000 bytes; make room and run again"):
        download(server.url("/data.bin"), target, allow_http=True, retries=3)
    assert len(server.requests) == 1  # a full disk is not retried like a dropped connection
    monkeypatch.undo()
    download(server.url("/data.bin"), target, sha256=SHA, allow_http=True)
    assert server.requests[-1] == ("/data.bin", "bytes=3000-")
    assert target.read_bytes() == BODY


def test_a_server_that_cannot_be_reached_is_not_a_download_to_resume(tmp_path):
    with FileServer({}) as stopped:
        url = stopped.url("/data.bin")  # nothing listens there once the server stops
    with pytest.raises(DownloadError) as error:
        download(url, tmp_path / "data.bin", allow_http=True, retries=1)
    assert str(error.value) == (f"{url}: cannot download ([Errno 111] Connection refused); "
                                "check the address and the network")
    assert list(tmp_path.iterdir()) == []
