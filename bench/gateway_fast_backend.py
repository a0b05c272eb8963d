"""A minimal, fast OpenAI-compatible backend for the gateway benchmark (asyncio, no framework).

Answers every POST with a canned chat completion (or a canned SSE stream when the body
says "stream": true), with keep-alive, so that the gateway under test, not the backend,
dominates the measured time. Run: python bench/gateway_fast_backend.py --port 9000
"""

from __future__ import annotations

import argparse
import asyncio
import json

COMPLETION = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "fast",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help you today?"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
}).encode()


def _chunk(delta: dict[str, str], finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": "fast",
            "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


STREAM = b"".join([
    _chunk({"role": "assistant", "content": ""}),
    *(_chunk({"content": w}) for w in ("Hello! ", "How ", "can ", "I ", "help ", "you ", "today?")),
    _chunk({}, "stop"),
    _chunk({}, usage={"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}),
    b"data: [DONE]\n\n",
])


def _response(body: bytes, content_type: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\ncontent-type: " + content_type + b"\r\ncontent-length: " + str(len(body)).encode()
            + b"\r\nconnection: keep-alive\r\n\r\n" + body)


JSON_RESPONSE = _response(COMPLETION, b"application/json")
SSE_RESPONSE = _response(STREAM, b"text/event-stream")
MODELS_RESPONSE = _response(json.dumps({"object": "list", "data": [{"id": "fast", "object": "model"}]}).encode(), b"application/json")


class Http(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4:end + 4 + length]
            self.buf = self.buf[end + 4 + length:]
            if head.startswith(b"get"):
                self.transport.write(MODELS_RESPONSE)  # type: ignore[attr-defined]
            elif b'"stream": true' in body or b'"stream":true' in body:
                self.transport.write(SSE_RESPONSE)  # type: ignore[attr-defined]
            else:
                self.transport.write(JSON_RESPONSE)  # type: ignore[attr-defined]


async def main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Http, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=9000)
    asyncio.run(main(parser.parse_args().port))
