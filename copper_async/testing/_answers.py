"""The fake server's HTTP plumbing: Copper's error shape and request bodies."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import orjson
from aiohttp import web

from copper_async.testing._query import QueryError

APPLICATION: Final = "developer_api"
MAX_BODY: Final = 1024**2
_JSON = "application/json"


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    body = orjson.dumps({"success": False, "status": status, "message": message})
    return web.Response(status=status, body=body, content_type=_JSON, headers=headers)


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """aiohttp's own refusals (no such route, wrong method) in Copper's error shape."""
    try:
        return await handler(request)
    except web.HTTPException as refusal:
        if refusal.status < 400:
            raise
        allow = refusal.headers.get("Allow")
        if refusal.status == 405 and allow is not None:
            message = f"{request.method} is not allowed on {request.path}; use {allow}"
        elif refusal.status == 404:
            message = f"no such endpoint: {request.path}"
        else:
            message = refusal.reason
        return _error(refusal.status, message, {"Allow": allow} if allow is not None else None)


def _parse_json(raw: bytes) -> Any:
    """The body's JSON, or a 400 :class:`QueryError` that says what is wrong with it."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        where = f"{error.msg} at byte {error.pos}"
        try:
            # orjson refuses some valid JSON (1e400: beyond a double); ask the standard
            # parser, which keeps such numbers (as inf), whether it is valid at all.
            json.loads(raw.decode(), parse_constant=_not_json)
        except (ValueError, RecursionError):
            raise QueryError(400, f"the body is not valid JSON: {where}") from None
        raise QueryError(
            400, f"the body is valid JSON, but not JSON this server can represent: {where}"
        ) from None


def _not_json(name: str) -> Any:
    """The standard parser's NaN and Infinity extensions are not JSON."""
    raise ValueError(name)
