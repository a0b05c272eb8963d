"""Stop work nobody will read: cancel the request's task when its client disconnects, or
when the gateway-wide deadline passes.

Why here and not in the backends: the time a request may take spans every retry and
fallback, and a client that leaves is only visible on the ASGI ``receive`` channel (an
``http.disconnect`` message), which nothing reads while a non-streamed request awaits
its backend. The body must have been read before watching starts (the watcher consumes
``receive``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.types import Receive

from .errors import ClientDisconnected, DeadlineExceeded


@dataclass
class Watch:
    """``done``: the answer is out, a disconnect from now on is the normal end of the exchange."""

    gone: bool = False
    done: bool = False


@asynccontextmanager
async def cancel_on_disconnect(receive: Receive) -> AsyncIterator[Watch]:
    """Cancel the current task when the client disconnects; the block then raises ClientDisconnected."""
    task = asyncio.current_task()
    assert task is not None
    watch = Watch()

    async def wait_for_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if not watch.done:
            watch.gone = True
            task.cancel()

    watcher = asyncio.create_task(wait_for_disconnect())
    try:
        yield watch
    except asyncio.CancelledError:
        if not watch.gone:
            raise
        task.uncancel()
        raise ClientDisconnected("client disconnected") from None
    finally:
        watcher.cancel()


@asynccontextmanager
async def guarded(receive: Receive, timeout_s: float) -> AsyncIterator[None]:
    """The backend phase of a request: at most ``timeout_s`` (504), and abandoned when the client leaves (499)."""
    try:
        async with asyncio.timeout(max(timeout_s, 0.0)) as deadline, cancel_on_disconnect(receive):
            yield
    except TimeoutError:
        if not deadline.expired():
            raise
        raise DeadlineExceeded("the request took longer than the gateway's request timeout") from None
