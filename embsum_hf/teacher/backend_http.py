"""A teacher behind any OpenAI-compatible `/v1/chat/completions` endpoint (vLLM, TGI, llama.cpp server, OpenAI).

Standard library only (urllib + threads): no client package to install, and requests are independent so a thread
pool gives the concurrency a batched inference server needs.

Why not `huggingface_hub.InferenceClient(base_url=...).chat_completion` (measured with huggingface_hub 2.4.0 against
servers on 127.0.0.1, `benchmarks/teacher_client_check.py`): without an API key it sends the user's Hugging Face
token to whatever server `base_url` names; it reads a reply of any size whole (50 MB read); it follows redirects,
re-sending the POST to the new address; it refuses every server, a local one included, under `HF_HUB_OFFLINE=1`; and
it does not retry 429/5xx or dropped connections. Its HTTP session is shared by the whole process (Hub downloads
included), so guarding it would change every Hub request. This client keeps each guarantee: the key it is given or
none, at most `max_reply_bytes` read, no redirect followed, retries with back-off, no dependence on the Hub's offline
switch.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPException
from typing import Any

from .base import TeacherBackend, TeacherError
from .prompts import Messages, SummaryRequest

logger = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
MAX_REPLY_BYTES = 1 << 20  # a summary's reply is a few kB; more than 1 MiB is not a summary (and is not read)


class MalformedReplyError(TeacherError):
    """The server answered 200 but without a usable `choices[0].message.content`."""


class ReplyTooLargeError(MalformedReplyError):
    """The reply is longer than `max_reply_bytes`: refused after reading at most that much, not retried."""


class TeacherSettingError(TeacherError, ValueError):
    """The backend's settings cannot work for any user (a bad URL, a refused key, a redirect): raised out of
    `generate`, so the run stops once, up front, instead of failing every user the same way."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow a redirect: urllib would re-send the `Authorization` header to wherever it points (another
    host included) and turn the POST into a GET. The 3xx reply surfaces as an `HTTPError` instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)
SETTING_STATUS = frozenset({401, 403, 404, 405})  # wrong key, model or URL: the same for every request


class _Retryable(Exception):
    """Internal: an attempt failed in a way worth retrying (429, 5xx, timeout, dropped connection)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class OpenAIChatBackend(TeacherBackend):
    """Summaries from an OpenAI-compatible chat-completions server.

    Args:
        base_url: the API root including the version, e.g. `http://127.0.0.1:8000/v1`; requests go to
            `{base_url}/chat/completions`.
        model: the `model` field of each request.
        api_key: sent as `Authorization: Bearer ...`; defaults to the `OPENAI_API_KEY` environment variable.
        concurrency: requests in flight at once (one thread each).
        timeout: seconds per attempt.
        max_retries: retries after the first attempt on 408/409/429/5xx, timeouts and dropped connections.
        backoff: the first retry waits `backoff` seconds, then 2x, 4x, ... capped at `max_backoff`; a numeric
            `Retry-After` header replaces the computed wait (still capped).
        max_tokens, temperature: generation settings (greedy by default); `extra_body` is merged into each request.
        max_reply_bytes: the longest reply read (`MAX_REPLY_BYTES`); a longer one fails that user with
            `ReplyTooLargeError` after at most this many bytes were read.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        max_tokens: int = 256,
        temperature: float = 0.0,
        extra_body: dict[str, Any] | None = None,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ):
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an http(s) URL such as http://127.0.0.1:8000/v1, got {base_url!r}")
        for name, value, low in (
            ("concurrency", concurrency, 1),
            ("timeout", timeout, 1e-9),
            ("max_retries", max_retries, 0),
            ("backoff", backoff, 0),
            ("max_reply_bytes", max_reply_bytes, 1),
        ):
            if not value >= low:
                raise ValueError(f"{name} must be {'positive' if low else 'non-negative'}, got {value}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_reply_bytes = max_reply_bytes
        self.body = {"model": model, "max_tokens": max_tokens, "temperature": temperature, **(extra_body or {})}
        self.name = f"openai:{model}"

    def generate(self, requests: Sequence[SummaryRequest]) -> list[str | Exception]:
        with ThreadPoolExecutor(max_workers=max(1, min(self.concurrency, len(requests)))) as pool:
            futures = [pool.submit(self.complete, request.messages) for request in requests]
        outputs = [future.exception() or future.result() for future in futures]
        for output in outputs:
            if isinstance(output, TeacherSettingError):  # no user can succeed: stop the run once
                raise output
        return outputs

    def complete(self, messages: Messages) -> str:
        """The assistant reply to one chat, retrying transient failures; raises `TeacherError` when it gives up."""
        attempt = 0
        while True:
            try:
                return self._attempt(messages)
            except _Retryable as error:
                if attempt == self.max_retries:
                    raise TeacherError(f"gave up after {attempt + 1} attempts: {error}") from None
                delay = error.retry_after if error.retry_after is not None else self.backoff * 2**attempt
                delay = min(self.max_backoff, delay)
                attempt += 1
                logger.info("%s; retry %d/%d in %.2fs", error, attempt, self.max_retries, delay)
                time.sleep(delay)

    def _attempt(self, messages: Messages) -> str:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps({**self.body, "messages": messages}).encode("utf-8")
        request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                body = self._read_limited(response)
        except urllib.error.HTTPError as error:
            detail = error.read(200).decode("utf-8", "replace")
            if 300 <= error.code < 400:
                raise TeacherSettingError(
                    f"{self.url} answered HTTP {error.code}, a redirect to {error.headers.get('Location')!r}; "
                    "redirects are not followed (the API key would go with it): set --base-url to the final address"
                ) from None
            if error.code in SETTING_STATUS:
                raise TeacherSettingError(
                    f"{self.url} answered HTTP {error.code}: {detail}; check the URL, --model and OPENAI_API_KEY"
                ) from None
            if error.code in RETRY_STATUS:
                raise _Retryable(f"HTTP {error.code}: {detail}", _retry_after(error.headers)) from None
            raise TeacherError(f"HTTP {error.code}: {detail}") from None
        except TimeoutError as error:
            raise _Retryable(f"timed out after {self.timeout}s ({error})") from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                raise _Retryable(f"timed out after {self.timeout}s ({error.reason})") from None
            raise _Retryable(f"connection failed: {error.reason}") from None
        except (ConnectionError, HTTPException) as error:
            raise _Retryable(f"connection failed: {error!r}") from None
        return _reply_content(body)

    def _read_limited(self, response) -> bytes:
        """The reply body, refused (`ReplyTooLargeError`) when its declared or actual length is over the limit; at
        most `max_reply_bytes + 1` bytes are read either way."""
        limit = self.max_reply_bytes
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ReplyTooLargeError(f"{self.url}: reply of {int(declared):,} bytes, over the {limit:,}-byte limit")
        body = response.read(limit + 1)
        if len(body) > limit:
            raise ReplyTooLargeError(f"{self.url}: reply over the {limit:,}-byte limit (not read further)")
        return body


def _retry_after(headers) -> float | None:
    try:
        return float(headers.get("Retry-After"))
    except (TypeError, ValueError):
        return None  # absent, or an HTTP date: use exponential back-off


def _reply_content(body: bytes) -> str:
    """`choices[0].message.content` of a chat-completions reply, or `MalformedReplyError`."""
    try:
        content = json.loads(body)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        content = None
    if not isinstance(content, str) or not content.strip():
        raise MalformedReplyError(f"reply without choices[0].message.content: {body[:200]!r}")
    return content.strip()
