"""Backend (b) against a real OpenAI-style HTTP server on 127.0.0.1, started by the test."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from embsum_hf.teacher import OpenAIChatBackend, SummaryStore, summarize_users


class ChatServer(ThreadingHTTPServer):
    """Answers `/v1/chat/completions`; a marker in the prompt picks the behaviour (see `ChatHandler`)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, delay=0.0):
        super().__init__(("127.0.0.1", 0), ChatHandler)
        self.delay = delay
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests_by_marker = {}
        self.authorization = set()

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class ChatHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        markers = ("FLAKY", "RATELIMIT", "SLOW", "MALFORMED", "BADJSON", "HUGESTREAM", "HUGE")
        marker = next((m for m in markers if m in prompt), "OK")
        with server.lock:
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
            count = server.requests_by_marker[marker] = server.requests_by_marker.get(marker, 0) + 1
            server.authorization.add(self.headers.get("Authorization"))
        try:
            time.sleep(server.delay)
            if marker == "FLAKY" and count == 1:
                return self.reply(500, {"error": "overloaded"})
            if marker == "RATELIMIT" and count == 1:
                return self.reply(429, {"error": "slow down"}, {"Retry-After": "0"})
            if marker == "SLOW":
                time.sleep(1.0)
            if marker == "MALFORMED":
                return self.reply(200, {"id": "x", "choices": []})
            if marker == "BADJSON":
                return self.reply(200, b"<html>proxy error</html>")
            if marker == "HUGE":  # 3 MB with its Content-Length
                return self.reply(200, {"choices": [{"message": {"content": "x" * 3_000_000}}]})
            if marker == "HUGESTREAM":  # 3 MB without a Content-Length: the body ends when the connection closes
                return self.reply(200, {"choices": [{"message": {"content": "y" * 3_000_000}}]}, length=False)
            title = prompt.split("Title: ", 1)[1].split(";", 1)[0]
            self.reply(200, {"choices": [{"message": {"role": "assistant", "content": f" Likes {title}. "}}]})
        finally:
            with server.lock:
                server.in_flight -= 1

    def reply(self, status, payload, headers=None, length=True):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            if length:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)


@pytest.fixture
def server_factory(serve):
    return lambda delay=0.0: serve(ChatServer(delay))


def users(*titles):
    return [(f"U{i}", [{"title": title, "abstract": "text", "category": "news"}]) for i, title in enumerate(titles)]


def test_concurrent_requests_and_store(server_factory, tmp_path):
    server = server_factory(delay=0.2)
    backend = OpenAIChatBackend(server.base_url, "teacher-llm", api_key="secret", concurrency=4)
    with SummaryStore(tmp_path / "s.jsonl") as store:
        started = time.perf_counter()
        stats = summarize_users(users(*"ABCDEFGH"), backend, store, domain="news", batch_size=8, progress=False)
        elapsed = time.perf_counter() - started
        assert (stats.done, stats.failed) == (8, 0)
        assert store.get("U2").summary == "Likes C."
        assert store.get("U2").backend == "openai:teacher-llm"
    assert server.max_in_flight >= 2  # overlapping requests were served
    assert elapsed < 8 * 0.2  # faster than one at a time
    assert server.authorization == {"Bearer secret"}


def test_retries_5xx_and_429_then_succeeds(server_factory, tmp_path):
    server = server_factory()
    backend = OpenAIChatBackend(server.base_url, "m", concurrency=2, backoff=0.01)
    with SummaryStore(tmp_path / "s.jsonl") as store:
        stats = summarize_users(users("FLAKY one", "RATELIMIT two"), backend, store, domain="news", progress=False)
        assert (stats.done, stats.failed) == (2, 0)
        assert store.as_dict() == {"U0": "Likes FLAKY one.", "U1": "Likes RATELIMIT two."}
    assert server.requests_by_marker == {"FLAKY": 2, "RATELIMIT": 2}


def test_timeouts_and_malformed_replies_are_reported_per_user(server_factory, tmp_path):
    server = server_factory()
    backend = OpenAIChatBackend(server.base_url, "m", timeout=0.3, max_retries=1, backoff=0.01)
    batch = users("fine", "SLOW one", "MALFORMED two", "BADJSON three")
    with SummaryStore(tmp_path / "s.jsonl") as store:
        stats = summarize_users(batch, backend, store, domain="news", progress=False)
        assert stats.done == 1 and store.as_dict() == {"U0": "Likes fine."}  # nothing stored for the failures
    failures = dict(stats.failures)
    assert set(failures) == {"U1", "U2", "U3"}
    assert "timed out" in failures["U1"] and "gave up after 2 attempts" in failures["U1"]
    assert "choices[0].message.content" in failures["U2"]
    assert "choices[0].message.content" in failures["U3"]
    assert server.requests_by_marker["SLOW"] == 2  # retried once
    assert server.requests_by_marker["MALFORMED"] == 1  # a malformed reply is not retried

    # a rerun retries exactly the failed users
    with SummaryStore(tmp_path / "s.jsonl") as store:
        rerun = summarize_users(batch, backend, store, domain="news", progress=False)
    assert rerun.skipped == 1 and {user for user, _ in rerun.failures} == {"U1", "U2", "U3"}


def test_unreachable_server_fails_after_retries(tmp_path):
    backend = OpenAIChatBackend("http://127.0.0.1:9/v1", "m", timeout=0.5, max_retries=2, backoff=0.01)
    with SummaryStore(tmp_path / "s.jsonl") as store:
        stats = summarize_users(users("x"), backend, store, domain="news", progress=False)
    assert stats.failures and stats.failures[0][0] == "U0"
    assert "gave up after 3 attempts: connection failed" in stats.failures[0][1]


def test_a_reply_over_the_size_limit_is_refused_not_read_whole(server_factory, tmp_path):
    """A reply longer than `max_reply_bytes` fails its user (declared by Content-Length, or only found while reading
    a body that ends when the connection closes); it is not retried, and the other users are summarised."""
    from embsum_hf.teacher.backend_http import MAX_REPLY_BYTES

    server = server_factory()
    backend = OpenAIChatBackend(server.base_url, "m", max_retries=3, backoff=0.01)
    assert backend.max_reply_bytes == MAX_REPLY_BYTES == 1 << 20
    with SummaryStore(tmp_path / "s.jsonl") as store:
        stats = summarize_users(
            users("fine", "HUGE one", "HUGESTREAM two"), backend, store, domain="news", progress=False
        )
        assert stats.done == 1 and store.as_dict() == {"U0": "Likes fine."}
    failures = dict(stats.failures)
    assert "reply of 3,000,0" in failures["U1"] and "over the 1,048,576-byte limit" in failures["U1"]
    assert "reply over the 1,048,576-byte limit (not read further)" in failures["U2"]
    assert server.requests_by_marker["HUGE"] == server.requests_by_marker["HUGESTREAM"] == 1  # not retried
    small = OpenAIChatBackend(server.base_url, "m", max_reply_bytes=75)  # exactly its 75 bytes
    assert small.complete([{"role": "user", "content": "Title: ok;"}]) == "Likes ok."  # a reply within the limit
    with pytest.raises(ValueError, match="max_reply_bytes must be positive"):
        OpenAIChatBackend(server.base_url, "m", max_reply_bytes=0)
