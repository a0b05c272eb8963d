"""The ASGI entry point: the model endpoints (``POST /v1/chat/completions``, ``/v1/messages``, ``/v1/responses``) straight to the gateway, the rest via Starlette.

Why: the chat path is the hot one, and Starlette's layers around it (error and exception
middleware wrapping every ``send``, route matching, a task group of two per streamed
response) cost more per request than the routing decision itself. ``Gateway.chat``
catches every error and answers it in the OpenAI format, so the middleware has nothing
left to do there; the Starlette responses it returns are only used as containers here.
Other paths, and anything unusual (a ``root_path`` mount), go through Starlette unchanged.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from .chat import Gateway
from .errors import ClientDisconnected
from .guard import cancel_on_disconnect
from .streaming import FinalChunk



class GatewayApp:
    """The app ``create_app`` returns; ``state.gateway`` is the Gateway, as on the Starlette app."""

    def __init__(self, starlette: Starlette, gateway: Gateway) -> None:
        self.starlette, self.gateway = starlette, gateway

    @property
    def state(self) -> State:
        return self.starlette.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        dialect = self.gateway.dialects.get(scope["path"]) if scope["type"] == "http" else None
        if dialect is not None and scope["method"] == "POST" and not scope.get("root_path"):
            scope["app"] = self.starlette  # what request.app would be on the Starlette path
            response = await self.gateway.chat(Request(scope, receive), dialect)
            if isinstance(response, StreamingResponse):
                await send_stream(response, receive, send)
            else:
                await send_whole(response, send)
            return
        await self.starlette(scope, receive, send)


async def send_whole(response: Response, send: Send) -> None:
    await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


async def send_stream(response: StreamingResponse, receive: Receive, send: Send) -> None:
    """Relay the chunks as they come; a client that goes away cancels the relay at once
    (as Starlette does, with one watcher task instead of a task group), so the upstream
    is closed and the request recorded (499) by the relay's own cleanup."""
    body: Any = response.body_iterator
    try:
        async with cancel_on_disconnect(receive) as watch:
            await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
            async for chunk in body:
                if isinstance(chunk, FinalChunk):
                    watch.done = True  # after the last chunk, "disconnect" is just the end of the exchange
                    await send({"type": "http.response.body", "body": bytes(chunk), "more_body": False})
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            else:
                watch.done = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
    except (ClientDisconnected, OSError):  # gone, or the connection broke while sending
        pass
    finally:
        if hasattr(body, "aclose"):
            await body.aclose()
