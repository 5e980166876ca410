"""Downloading an official MIND split by name, from a real HTTP server on 127.0.0.1 standing in for the mirror:
resume after a cut connection, servers that ignore ranges, the cache, and bad archives."""

import io
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from embsum_hf.data import download_mind, load_mind, make_synthetic_mind


class MirrorServer(ThreadingHTTPServer):
    """Serves `files` (path -> bytes); honours `Range: bytes=N-` unless `ranges` is False; `cut_after` bytes, the
    next response announces the full length but stops there (a dropped connection)."""

    daemon_threads = True

    def __init__(self, files: dict[str, bytes]):
        super().__init__(("127.0.0.1", 0), MirrorHandler)
        self.files, self.ranges, self.cut_after, self.requests = files, True, None, []
        self.unavailable = 0  # answer the next N requests with 503 (not retried by the downloader)

    def url(self, template: str = "{name}.zip") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{template}"


class MirrorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        server: MirrorServer = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        if server.unavailable:
            server.unavailable -= 1
            self.send_error(503)
            return
        body = server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        if server.ranges and (wanted := self.headers.get("Range")):
            start = int(wanted.removeprefix("bytes=").rstrip("-"))
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        if server.cut_after is not None:
            payload, server.cut_after = payload[: server.cut_after], None
            self.close_connection = True
        self.wfile.write(payload)


@pytest.fixture
def mirror(serve, monkeypatch):
    import huggingface_hub

    # the downloader is huggingface_hub's `http_get`, which honours HF_HUB_OFFLINE (set for the whole suite)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    return lambda files: serve(MirrorServer(files))


@pytest.fixture(scope="module")
def mind_zip(tmp_path_factory) -> tuple[bytes, object]:
    """A MIND-style zip (TSVs at its root, as the official ones) and the same split loaded from its folder."""
    root = make_synthetic_mind(
        tmp_path_factory.mktemp("synthetic"), num_users=20, num_news=60, num_train_impressions=30
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in ("news.tsv", "behaviors.tsv"):
            archive.write(root / "train" / name, name)
    return buffer.getvalue(), load_mind(root / "train")


def same_data(a, b) -> bool:
    return a.impressions.to_list() == b.impressions.to_list() and a.items.to_list() == b.items.to_list()


def test_cut_download_resumes_then_the_cache_serves(mirror, mind_zip, tmp_path, monkeypatch):
    body, expected = mind_zip
    server = mirror({"/MINDsmall_train.zip": body})
    monkeypatch.setenv("EMBSUM_HF_MIND_URL", server.url())
    # the connection drops after a third; the downloader resumes at once, and the mirror is then down (503)
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 1024)  # written to disk every 1 kB
    server.cut_after = len(body) // 3
    original = MirrorHandler.do_GET

    def cut_then_down(handler):
        original(handler)
        if len(server.requests) == 1:
            server.unavailable = 1

    monkeypatch.setattr(MirrorHandler, "do_GET", cut_then_down)
    with pytest.raises(OSError, match=r"Could not download http://127\.0\.0\.1:\d+/MINDsmall_train\.zip"):
        load_mind("MINDsmall", "train", cache_dir=tmp_path)
    kept = (tmp_path / "MINDsmall_train.zip.part").stat().st_size  # the whole kB chunks received before the cut
    assert len(body) // 3 - 1024 < kept <= len(body) // 3
    assert server.requests[1] == ("/MINDsmall_train.zip", f"bytes={kept}-")  # resumed within the call, then 503
    assert not (tmp_path / "MINDsmall_train").exists()  # nothing half-extracted looks complete

    data = load_mind("MINDsmall", "train", cache_dir=tmp_path)
    assert server.requests[-1] == ("/MINDsmall_train.zip", f"bytes={kept}-")  # only the missing bytes
    assert data.split == "MINDsmall_train" and same_data(data, expected)
    assert not (tmp_path / "MINDsmall_train.zip.part").exists()

    asked = len(server.requests)
    assert same_data(load_mind("MINDsmall_train", cache_dir=tmp_path), expected)
    assert len(server.requests) == asked  # served from the cache


def test_server_without_ranges_starts_over(mirror, mind_zip, tmp_path):
    body, expected = mind_zip
    server = mirror({"/mirror/MINDdemo_dev.zip": body})
    server.ranges = False
    (tmp_path / "MINDdemo_dev.zip.part").write_bytes(b"stale bytes of another attempt")
    folder = download_mind("MINDdemo_dev", cache_dir=tmp_path, url=server.url("mirror/{name}.zip"))
    assert server.requests == [("/mirror/MINDdemo_dev.zip", "bytes=30-")]  # asked to resume, got the whole file
    assert same_data(load_mind(folder), expected)


def test_missing_file_and_bad_archive_are_clear_errors(mirror, tmp_path):
    server = mirror({"/MINDlarge_dev.zip": b"<html>not a zip</html>", "/MINDlarge_test.zip": _zip({"readme": "x"})})
    with pytest.raises(OSError, match=r"MINDlarge_train\.zip \(HTTP Error 404.*offline.*load_mind"):
        download_mind("MINDlarge_train", cache_dir=tmp_path, url=server.url())
    for name, why in (("MINDlarge_dev", "File is not a zip file"), ("MINDlarge_test", "no behaviors.tsv at its root")):
        with pytest.raises(OSError, match=rf"{name}\.zip did not give a MIND zip archive \(.*{why}"):
            download_mind(name, cache_dir=tmp_path, url=server.url())
        assert not (tmp_path / f"{name}.zip.part").exists()  # the next call downloads afresh
        assert not (tmp_path / name).exists()
    with pytest.raises(ValueError, match="Unknown MIND split 'MINDhuge_train'"):
        download_mind("MINDhuge_train", cache_dir=tmp_path, url=server.url())


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()
