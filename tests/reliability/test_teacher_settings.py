"""The OpenAI-compatible teacher never sends its API key to a redirect target, and settings that cannot work fail
once, up front (real HTTP servers on 127.0.0.1, the real `embsum summarize` in a forked child)."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from embsum_hf.teacher import OpenAIChatBackend, SummaryStore, summarize_users
from embsum_hf.teacher.backend_http import TeacherSettingError

from .harness import run, write_mind


class Recorder(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, status: int, location: str | None = None):
        super().__init__(("127.0.0.1", 0), Handler)
        self.status, self.location, self.seen = status, location, []

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _answer(self):
        server = self.server
        server.seen.append((self.command, self.path, self.headers.get("Authorization")))
        body = json.dumps({"choices": [{"message": {"content": "Likes news."}}]}).encode()
        self.send_response(server.status)
        if server.location:
            self.send_header("Location", server.location)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


def users(n):
    return [(f"U{i}", [{"title": f"t{i}", "abstract": "", "category": "news"}]) for i in range(n)]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_to_another_host_gets_no_key_and_stops_the_run_once(serve, tmp_path, status):
    elsewhere = serve(Recorder(200))
    redirecting = serve(Recorder(status, location=elsewhere.url + "/chat/completions"))
    backend = OpenAIChatBackend(redirecting.url, "m", api_key="SECRET", max_retries=0)
    with SummaryStore(tmp_path / "s.jsonl") as store, pytest.raises(TeacherSettingError, match="redirect"):
        summarize_users(users(6), backend, store, domain="news", progress=False)
    assert elsewhere.seen == []  # not followed at all: no request, no key
    assert all(auth == "Bearer SECRET" for _, _, auth in redirecting.seen)


@pytest.mark.parametrize("status", [401, 404])
def test_refused_key_or_wrong_url_stops_the_run_once(serve, tmp_path, status):
    server = serve(Recorder(status))
    backend = OpenAIChatBackend(server.url, "m", api_key="k", max_retries=3, backoff=0)
    with SummaryStore(tmp_path / "s.jsonl") as store, pytest.raises(TeacherSettingError, match=str(status)):
        summarize_users(users(20), backend, store, domain="news", batch_size=4, progress=False)
    assert len(server.seen) <= 4  # the first batch only, no retries


@pytest.mark.parametrize("base_url", ["localhost:8000/v1", "ftp://127.0.0.1/v1", "http:///v1", ""])
def test_cli_refuses_a_bad_base_url_before_loading(tmp_path, base_url):
    mind = write_mind(tmp_path / "mind")
    result = run(
        [
            "summarize",
            "--data",
            str(mind),
            "--backend",
            "openai",
            "--model",
            "m",
            "--base-url",
            base_url,
            "--output",
            str(tmp_path / "s.jsonl"),
            "--no-progress",
        ],
        tmp_path / "run",
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("embsum summarize: error:")]
    assert result.status == 2 and len(errors) == 1 and ("base_url" in errors[0] or "--base-url" in errors[0])
    assert "Traceback" not in result.stderr


def test_cli_redirect_is_one_line_error(serve, tmp_path):
    elsewhere = serve(Recorder(200))
    redirecting = serve(Recorder(307, location=elsewhere.url + "/chat/completions"))
    mind = write_mind(tmp_path / "mind")
    result = run(
        [
            "summarize",
            "--data",
            str(mind),
            "--backend",
            "openai",
            "--model",
            "m",
            "--base-url",
            redirecting.url,
            "--output",
            str(tmp_path / "s.jsonl"),
            "--no-progress",
        ],
        tmp_path / "run",
    )
    assert result.status == 2 and "Traceback" not in result.stderr
    assert "redirect" in [line for line in result.stderr.splitlines() if "error:" in line][0]
    assert elsewhere.seen == []
