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
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
from yarl import URL

from ..config import ModelSpec
from ..errors import BackendError, BackendTimeout, BackendUnavailable
from .base import StreamEvent, error_for_status

MAX_ERROR_BODY = 4096
MAX_LINE_BYTES = 2**20  # one SSE line (one chunk) may be this large


@contextmanager
def mapped_transport_errors(name: str) -> Iterator[None]:
    """aiohttp's exception tree -> ours, by type. Timeouts first: aiohttp's socket timeouts
    are also connection errors."""
    try:
        yield
    except TimeoutError as exc:  # aiohttp's connect / socket-read timeouts (not our total deadline, see callers)
        kind = "connect timeout" if isinstance(exc, aiohttp.ConnectionTimeoutError) else "read timeout"
        raise BackendTimeout(f"{name}: {kind}") from None
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
            return str(err["message"])
        if isinstance(err, str):
            return err
    except (ValueError, AttributeError):
        pass
    return text.strip()


def _sse_error(name: str, data: dict[str, Any]) -> BackendError:
    err = data.get("error")
    message = err.get("message") if isinstance(err, dict) else str(err)
    code = err.get("code") if isinstance(err, dict) else None
    status = code if isinstance(code, int) and 400 <= code < 600 else 502
    return error_for_status(status, f"{name}: error event in stream: {message}")


class OpenAIStream:
    """An open SSE response; yields parsed ``data:`` events until ``[DONE]``."""

    def __init__(self, name: str, response: aiohttp.ClientResponse, deadline: float) -> None:
        self._name = name
        self._response = response
        self._deadline = deadline
        self._first: StreamEvent | None = None
        self.done = False

    async def next_event(self) -> StreamEvent | None:
        """The next data event, or None at the end of the stream."""
        if self._first is not None:
            event, self._first = self._first, None
            return event
        if self.done:
            return None
        content = self._response.content
        with mapped_transport_errors(self._name):
            while line := await content.readline():
                if not line.startswith(b"data:"):
                    continue  # blank separators, comments (": ping"), event names
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    break
                if time.monotonic() > self._deadline:
                    raise BackendTimeout(f"{self._name}: total timeout exceeded while streaming")
                try:
                    data = json.loads(payload)
                except ValueError:
                    raise BackendUnavailable(f"{self._name}: malformed stream event: {payload[:120]!r}") from None
                if not isinstance(data, dict):
                    raise BackendUnavailable(f"{self._name}: stream event is not an object")
                if "error" in data and "choices" not in data:
                    raise _sse_error(self._name, data)
                return StreamEvent(data, payload)
        self.done = True
        return None

    async def prime(self) -> None:
        self._first = await self.next_event()

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        while (event := await self.next_event()) is not None:
            yield event

    async def aclose(self) -> None:
        """Back to the pool when read to the end; otherwise the connection is closed."""
        if self.done:
            self._response.release()
        else:
            self._response.close()


class OpenAICompatBackend:
    """One configured model on one OpenAI-compatible server.

    The session is created on first use, on the running event loop (aiohttp binds it there).
    """

    def __init__(self, spec: ModelSpec, *, max_connections: int = 200) -> None:
        self.name = spec.name
        self.spec = spec
        b = spec.backend
        self.served_model = b.served_model or spec.name
        self.total_timeout_s = b.total_timeout_s
        self.max_connections = max_connections
        self.headers = {"content-type": "application/json"}
        key = b.api_key()
        if key:
            self.headers["authorization"] = f"Bearer {key}"
        self.url = URL(b.base_url.rstrip("/") + "/chat/completions")
        self._timeout = aiohttp.ClientTimeout(total=None, connect=b.connect_timeout_s, sock_read=b.read_timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(headers=self.headers, timeout=self._timeout, connector=connector,
                                                  read_bufsize=MAX_LINE_BYTES // 2, auto_decompress=True)
        return self._session

    def _payload(self, body: dict[str, Any], stream: bool) -> bytes:
        return json.dumps(dict(body, model=self.served_model, stream=stream)).encode()

    async def _send(self, body: dict[str, Any], stream: bool) -> aiohttp.ClientResponse:
        """POST the body; an error status becomes a BackendError (the response is released)."""
        response = await self._client().post(self.url, data=self._payload(body, stream))
        if response.status >= 400:
            try:
                detail = _error_detail(await response.read())
            finally:
                response.release()
            raise error_for_status(response.status, detail)
        return response

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]:
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
            data = json.loads(raw)
        except ValueError:
            raise BackendUnavailable(f"{self.name}: response is not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise BackendUnavailable(f"{self.name}: response has no 'choices' list")
        return data

    async def open_stream(self, body: dict[str, Any]) -> OpenAIStream:
        deadline = time.monotonic() + self.total_timeout_s
        stream: OpenAIStream | None = None
        try:
            async with asyncio.timeout(self.total_timeout_s):
                with mapped_transport_errors(self.name):
                    response = await self._send(body, stream=True)
                stream = OpenAIStream(self.name, response, deadline)
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
