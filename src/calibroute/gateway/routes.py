"""The HTTP surface: thin handlers over ``Gateway``."""

from __future__ import annotations

import json
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .anthropic import ANTHROPIC, count_input_tokens
from .chat import Gateway
from .errors import error_response
from .requests import parse_json_object, read_body


def _gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def _json(data: object, status: int = 200) -> Response:
    return Response(json.dumps(data), status_code=status, media_type="application/json")


async def chat_completions(request: Request) -> Response:
    return await _gateway(request).chat(request)


async def messages(request: Request) -> Response:
    """Anthropic Messages (reached here only under a root_path mount; the ASGI entry point takes it otherwise)."""
    gw = _gateway(request)
    return await gw.chat(request, gw.dialects["/v1/messages"])


async def count_tokens(request: Request) -> Response:
    """Anthropic's token counting endpoint (Claude Code calls it), answered with the gateway's estimate."""
    gw = _gateway(request)
    try:
        gw.authenticate(request)
        raw = await read_body(request, gw.settings.max_body_bytes, gw.settings.body_timeout_s)
        return _json({"input_tokens": count_input_tokens(parse_json_object(raw))})
    except Exception as exc:
        return ANTHROPIC.error_response(exc)


async def responses(request: Request) -> Response:
    """OpenAI Responses (reached here only under a root_path mount, like ``messages``)."""
    gw = _gateway(request)
    return await gw.chat(request, gw.dialects["/v1/responses"])


async def route_only(request: Request) -> Response:
    """The Decision the gateway would make, with no backend call."""
    gw = _gateway(request)
    try:
        gw.authenticate(request)
        chat, decision = await gw.decide(request)
        data = decision.to_dict()
        data["route"] = chat.route
        data["upstream_params"] = gw.plan(decision.model, decision.budget).params
        return _json(data)
    except Exception as exc:
        return error_response(exc)


async def list_models(request: Request) -> Response:
    gw = _gateway(request)
    try:
        gw.authenticate(request)
    except Exception as exc:
        return error_response(exc)
    created = int(gw.started)
    data = [{"id": m.name, "object": "model", "created": created, "owned_by": "calibroute"} for m in gw.portfolio.models]
    names = ["auto", *(a for a in gw.portfolio.aliases if a != "auto")]
    data += [{"id": a, "object": "model", "created": created, "owned_by": "calibroute-route"} for a in names]
    return _json({"object": "list", "data": data})


async def healthz(request: Request) -> Response:
    gw = _gateway(request)
    now = time.monotonic()
    cooling = sorted(m for m, b in gw.fallback.breakers.items() if b.is_open(now))
    return _json({"status": "ok", "models": len(gw.portfolio.models), "circuit_open": cooling})


async def metrics(request: Request) -> Response:
    return Response(_gateway(request).metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


ROUTES = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/messages", messages, methods=["POST"]),
    Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
    Route("/v1/responses", responses, methods=["POST"]),
    Route("/v1/route", route_only, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
