"""Any OpenAI-compatible HTTP endpoint: vLLM, SGLang, llama.cpp server, Ollama, hosted APIs.

One pooled ``httpx.AsyncClient`` per backend (keep-alive), with connect / read timeouts
from the model's ``BackendSpec`` and a total deadline per call. Transport errors and
HTTP error statuses become ``calibroute.errors`` here and nowhere else.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpx

from ..config import ModelSpec
from ..errors import BackendError, BackendTimeout, BackendUnavailable
from .base import StreamEvent, error_for_status
from .netio import plain_http_transport

MAX_ERROR_BODY = 4096


@contextmanager
def mapped_transport_errors(name: str) -> Iterator[None]:
    """httpx's exception tree -> ours, by type."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise BackendTimeout(f"{name}: {type(exc).__name__.lower().replace('timeout', ' timeout').strip()}") from None
    except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        kind = "cannot connect" if isinstance(exc, httpx.ConnectError) else "connection dropped"
        raise BackendUnavailable(f"{name}: {kind}: {exc or type(exc).__name__}") from None
    except httpx.HTTPError as exc:
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
    mapped = error_for_status(status, f"{name}: error event in stream: {message}")
    return mapped


class OpenAIStream:
    """An open SSE response; yields parsed ``data:`` events until ``[DONE]``."""

    def __init__(self, name: str, response: httpx.Response, deadline: float) -> None:
        self._name = name
        self._response = response
        self._lines = response.aiter_lines()
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
        with mapped_transport_errors(self._name):
            async for line in self._lines:
                if not line.startswith("data:"):
                    continue  # blank separators, comments (": ping"), event names
                payload = line[5:].strip()
                if payload == "[DONE]":
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
                return StreamEvent(data, payload.encode())
        self.done = True
        return None

    async def prime(self) -> None:
        self._first = await self.next_event()

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        while (event := await self.next_event()) is not None:
            yield event

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._response.aclose()


class OpenAICompatBackend:
    """One configured model on one OpenAI-compatible server."""

    def __init__(self, spec: ModelSpec, *, max_connections: int = 200, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.name = spec.name
        self.spec = spec
        b = spec.backend
        self.served_model = b.served_model or spec.name
        self.total_timeout_s = b.total_timeout_s
        headers = {"content-type": "application/json"}
        key = b.api_key()
        if key:
            headers["authorization"] = f"Bearer {key}"
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections, keepalive_expiry=30)
        if transport is None and b.base_url.startswith("http://"):
            transport = plain_http_transport(limits)
        self._client = httpx.AsyncClient(
            base_url=b.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(connect=b.connect_timeout_s, read=b.read_timeout_s, write=b.read_timeout_s, pool=b.connect_timeout_s),
            limits=limits,
            transport=transport,
        )

        self._url = httpx.URL(b.base_url.rstrip("/") + "/chat/completions")

    def _request(self, body: dict[str, Any]) -> httpx.Request:
        payload = dict(body, model=self.served_model)
        return self._client.build_request("POST", self._url, content=json.dumps(payload).encode())

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            with anyio.fail_after(self.total_timeout_s), mapped_transport_errors(self.name):
                response = await self._client.send(self._request(dict(body, stream=False)))
        except TimeoutError:
            raise BackendTimeout(f"{self.name}: total timeout of {self.total_timeout_s:g}s exceeded") from None
        if response.status_code >= 400:
            raise error_for_status(response.status_code, _error_detail(response.content))
        try:
            data = json.loads(response.content)
        except ValueError:
            raise BackendUnavailable(f"{self.name}: response is not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise BackendUnavailable(f"{self.name}: response has no 'choices' list")
        return data

    async def open_stream(self, body: dict[str, Any]) -> OpenAIStream:
        deadline = time.monotonic() + self.total_timeout_s
        response: httpx.Response | None = None
        try:
            with anyio.fail_after(self.total_timeout_s):
                with mapped_transport_errors(self.name):
                    response = await self._client.send(self._request(dict(body, stream=True)), stream=True)
                    if response.status_code >= 400:
                        detail = _error_detail(await response.aread())
                        raise error_for_status(response.status_code, detail)
                stream = OpenAIStream(self.name, response, deadline)
                await stream.prime()
                return stream
        except TimeoutError:
            if response is not None:
                await response.aclose()
            raise BackendTimeout(f"{self.name}: no first event within {self.total_timeout_s:g}s") from None
        except BaseException:
            if response is not None:
                with anyio.CancelScope(shield=True):
                    await response.aclose()
            raise

    async def aclose(self) -> None:
        await self._client.aclose()
