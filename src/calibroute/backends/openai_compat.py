"""Any OpenAI-compatible HTTP endpoint: vLLM, SGLang, llama.cpp server, Ollama, hosted APIs.

One pooled ``aiohttp.ClientSession`` per backend (keep-alive, HTTP and HTTPS), with connect /
read timeouts from the model's ``BackendSpec`` and a total deadline per call. aiohttp rather
than httpx: on a keep-alive local upstream its request path costs a fraction of httpx's
(measured in docs/bench-gateway.md). Transport errors and HTTP error statuses become
``calibroute.errors`` here and nowhere else.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import urllib.request
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
from yarl import URL

from ..config import ModelSpec
from ..errors import BackendError, BackendTimeout, BackendUnavailable
from .base import StreamEvent, error_for_status, plausible_usage

MAX_ERROR_BODY = 4096
MAX_LINE_BYTES = 2**20  # one SSE line (one chunk) may be this large
SSE_FIELDS = (b"data:", b":", b"event:", b"id:", b"retry:")


@contextmanager
def mapped_transport_errors(name: str) -> Iterator[None]:
    """aiohttp's exception tree -> ours, by type. Timeouts first: aiohttp's socket timeouts
    are also connection errors."""
    try:
        yield
    except TimeoutError as exc:  # aiohttp's connect / socket-read timeouts (not our total deadline, see callers)
        kind = "connect timeout" if isinstance(exc, aiohttp.ConnectionTimeoutError) else "read timeout"
        raise BackendTimeout(f"{name}: {kind}") from None
    except aiohttp.ClientConnectorCertificateError as exc:
        raise BackendUnavailable(
            f"{name}: TLS certificate not trusted ({exc.certificate_error}); "
            "for a private CA set SSL_CERT_FILE to its PEM bundle"
        ) from None
    except aiohttp.ClientConnectorError as exc:
        raise BackendUnavailable(f"{name}: cannot connect: {exc}") from None
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError) as exc:
        raise BackendUnavailable(f"{name}: connection dropped: {exc or type(exc).__name__}") from None
    except aiohttp.ClientError as exc:
        raise BackendUnavailable(f"{name}: {type(exc).__name__}: {exc}") from None


def _error_detail(body: bytes) -> str:
    """The upstream's own error message if it sent OpenAI-style JSON, else the start of its body."""
    text = body[:MAX_ERROR_BODY].decode("utf-8", "replace")
    try:
        err = json.loads(text).get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return _text(err["message"])
        if isinstance(err, str):
            return _text(err)
    except (ValueError, AttributeError):
        pass
    return text.strip()


def _text(message: str) -> str:
    """Upstream text that can be stored and encoded: an echoed ``\\ud800`` escape parses to a lone surrogate."""
    return message.encode("utf-8", "replace").decode("utf-8")


def _sse_error(name: str, data: dict[str, Any]) -> BackendError:
    err = data.get("error")
    message = _text(str(err.get("message") if isinstance(err, dict) else err))
    code = err.get("code") if isinstance(err, dict) else None
    status = code if isinstance(code, int) and 400 <= code < 600 else 502
    return error_for_status(status, f"{name}: error event in stream: {message}")


def env_proxy(url: URL) -> str | None:
    """The proxy the environment names for ``url`` (HTTP_PROXY / HTTPS_PROXY / NO_PROXY), as
    httpx honoured it. Resolved once per backend: aiohttp's ``trust_env`` would read the
    environment (and ~/.netrc) on every request."""
    if url.host and urllib.request.proxy_bypass(url.host):
        return None
    return urllib.request.getproxies().get(url.scheme)


class OpenAIStream:
    """An open SSE response; yields parsed ``data:`` events until ``[DONE]``.

    Reads whatever the network has delivered and parses every complete line of it, so
    ``ready()`` can tell the relay that more events are already here (it then sends them
    to the client in one write instead of one write each). An error found while parsing
    is raised only after the events before it were handed out.
    """

    def __init__(self, name: str, response: aiohttp.ClientResponse, deadline: float, usage_limit: int) -> None:
        self._name = name
        self._usage_limit = usage_limit
        self._started = False  # an event or [DONE] was seen: this is an SSE stream
        self._response = response
        self._deadline = deadline
        self._events: deque[StreamEvent] = deque()
        self._partial = b""  # an incomplete last line
        self._error: BackendError | None = None
        self._ended = False  # [DONE] or the end of the body was read
        self.done = False  # ... and every event was handed out

    def ready(self) -> bool:
        """True when the next event (or the end) is already here: no wait for the network."""
        return bool(self._events) or self._ended or self._error is not None

    async def next_event(self) -> StreamEvent | None:
        """The next data event, or None at the end of the stream."""
        while not self._events:
            if self._error is not None:
                raise self._error
            if self._ended:
                self.done = True
                return None
            await self._read()
        return self._events.popleft()

    async def _read(self) -> None:
        with mapped_transport_errors(self._name):
            data = await self._response.content.readany()
        if time.monotonic() > self._deadline:
            raise BackendTimeout(f"{self._name}: total timeout exceeded while streaming")
        if not data:  # the end of the body, with or without [DONE]
            self._ended = True
            lines = [self._partial]
        else:
            lines = (self._partial + data).split(b"\n")
            self._partial = lines.pop()
            if len(self._partial) > MAX_LINE_BYTES:
                self._error = BackendUnavailable(f"{self._name}: stream line longer than {MAX_LINE_BYTES} bytes")
                return
        for line in lines:
            if not line.startswith(b"data:"):
                if not self._started and line.strip() and not line.startswith(SSE_FIELDS):
                    self._error = BackendUnavailable(f"{self._name}: 200 response is not an SSE stream: {line[:80]!r}")
                    return
                continue  # blank separators, comments (": ping"), event names
            self._started = True
            payload = line[5:].strip()
            if payload == b"[DONE]":
                self._ended = True
                return
            try:
                self._events.append(self._event(payload))
            except BackendError as exc:
                self._error = exc
                return
        if self._ended and not self._started:
            self._error = BackendUnavailable(f"{self._name}: 200 response ended without a stream event")

    def _event(self, payload: bytes) -> StreamEvent:
        try:
            data = json.loads(payload)
        except ValueError:
            raise BackendUnavailable(f"{self._name}: malformed stream event: {payload[:120]!r}") from None
        if not isinstance(data, dict):
            raise BackendUnavailable(f"{self._name}: stream event is not an object")
        if "error" in data and "choices" not in data:
            raise _sse_error(self._name, data)
        if "usage" in data and (usage := plausible_usage(data["usage"], self._usage_limit)) is not data["usage"]:
            return StreamEvent({**data, "usage": usage})  # changed: the raw bytes are not forwarded
        return StreamEvent(data, payload)

    async def prime(self) -> None:
        """Wait for the first event (or the end), so failures before it surface in ``open_stream``."""
        while not self.ready():
            await self._read()
        if not self._events and self._error is not None:
            raise self._error

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        while (event := await self.next_event()) is not None:
            yield event

    async def aclose(self) -> None:
        """Back to the pool when read to the end; otherwise the connection is closed."""
        if self._ended:
            self._response.release()
        else:
            self._response.close()


class OpenAICompatBackend:
    """One configured model on one OpenAI-compatible server.

    The session is created on first use, on the running event loop (aiohttp binds it there).
    """

    path = "/chat/completions"  # appended to the backend's base_url

    def __init__(self, spec: ModelSpec, *, max_connections: int = 200) -> None:
        self.name = spec.name
        self.spec = spec
        b = spec.backend
        self.served_model = b.served_model or spec.name
        self.total_timeout_s = b.total_timeout_s
        self.max_connections = max_connections
        self.headers = {"content-type": "application/json", **self.auth_headers(b.api_key())}
        self.url = URL(b.base_url.rstrip("/") + self.path)
        self.proxy = env_proxy(self.url)
        self._timeout = aiohttp.ClientTimeout(total=None, connect=b.connect_timeout_s, sock_read=b.read_timeout_s)
        self._session: aiohttp.ClientSession | None = None

    @staticmethod
    def auth_headers(key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {key}"} if key else {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=30, ssl=self._tls())
            self._session = aiohttp.ClientSession(headers=self.headers, timeout=self._timeout, connector=connector,
                                                  read_bufsize=MAX_LINE_BYTES // 2, auto_decompress=True)
        return self._session

    def _tls(self) -> ssl.SSLContext | bool:
        """A verifying TLS context built when the pool opens, so SSL_CERT_FILE / SSL_CERT_DIR set for a
        private CA take effect (aiohttp's shared default context is created once, at import)."""
        return ssl.create_default_context() if self.url.scheme == "https" else True

    def _payload(self, body: dict[str, Any], stream: bool) -> bytes:
        return json.dumps(dict(body, model=self.served_model, stream=stream)).encode()

    async def _send(self, body: dict[str, Any], stream: bool) -> aiohttp.ClientResponse:
        """POST the body; an error status becomes a BackendError (the response is released)."""
        response = await self._client().post(self.url, data=self._payload(body, stream), proxy=self.proxy)
        if response.status >= 400:
            try:
                detail = _error_detail(await response.read())
            finally:
                response.release()
            raise error_for_status(response.status, detail, response.headers.get("retry-after"))
        return response

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        data = await self.fetch_json(body)
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise BackendUnavailable(f"{self.name}: response has no 'choices' list")
        if "usage" in data:
            data["usage"] = plausible_usage(data["usage"], self.spec.context_window)
        return data

    async def fetch_json(self, body: dict[str, Any]) -> Any:
        """POST ``body`` (not streamed) and parse the answer; errors mapped, the total deadline kept."""
        try:
            async with asyncio.timeout(self.total_timeout_s):
                with mapped_transport_errors(self.name):
                    response = await self._send(body, stream=False)
                    try:
                        raw = await response.read()
                    finally:
                        response.release()
        except TimeoutError:
            raise BackendTimeout(f"{self.name}: total timeout of {self.total_timeout_s:g}s exceeded") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise BackendUnavailable(f"{self.name}: response is not JSON") from None

    async def open_stream(self, body: dict[str, Any]) -> OpenAIStream:
        deadline = time.monotonic() + self.total_timeout_s
        stream: OpenAIStream | None = None
        try:
            async with asyncio.timeout(self.total_timeout_s):
                with mapped_transport_errors(self.name):
                    response = await self._send(body, stream=True)
                stream = OpenAIStream(self.name, response, deadline, self.spec.context_window)
                await stream.prime()
                return stream
        except TimeoutError:
            if stream is not None:
                await stream.aclose()
            raise BackendTimeout(f"{self.name}: no first event within {self.total_timeout_s:g}s") from None
        except BaseException:
            if stream is not None:
                await stream.aclose()
            raise

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
