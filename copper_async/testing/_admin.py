"""The fake server's admin endpoints, outside every fault and limit.

``GET /_fake/stats`` answers the counters of :attr:`FakeCopperServer.stats`;
``POST /_fake/truth`` takes a search body and answers every matching id in
sort order (paging and the cap ignored); ``POST /_fake/changes`` plays user
activity (:meth:`FakeCopperServer.play_changes`) and answers the ids edited,
created and deleted. All three check the same auth headers as a search.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

import attrs
import orjson
from aiohttp import web

from copper_async.exceptions import InvalidOptionError
from copper_async.testing._answers import _JSON, MAX_BODY, _error, _parse_json
from copper_async.testing._query import QueryError, parse_search_body

if TYPE_CHECKING:
    from copper_async.testing._server import FakeCopperServer

__all__ = ["CHANGES_ROUTE", "STATS_ROUTE", "TRUTH_ROUTE", "add_admin_routes"]

STATS_ROUTE: Final = "/_fake/stats"
TRUTH_ROUTE: Final = "/_fake/truth"
CHANGES_ROUTE: Final = "/_fake/changes"
_PAGING_FIELDS: Final = frozenset({"page_number", "page_size"})


def add_admin_routes(app: web.Application, server: FakeCopperServer) -> None:
    """Route the admin endpoints of ``app`` to ``server``."""

    async def stats(request: web.Request) -> web.Response:
        if not server._authorised(request):
            return _error(401, "missing or invalid auth headers")
        return web.Response(
            body=orjson.dumps(server.stats, option=orjson.OPT_NON_STR_KEYS), content_type=_JSON
        )

    async def truth(request: web.Request) -> web.Response:
        if not server._authorised(request):
            return _error(401, "missing or invalid auth headers")
        return await _truth(server, request)

    async def changes(request: web.Request) -> web.Response:
        if not server._authorised(request):
            return _error(401, "missing or invalid auth headers")
        return await _changes(server, request)

    app.router.add_get(STATS_ROUTE, stats)
    app.router.add_post(TRUTH_ROUTE, truth)
    app.router.add_post(CHANGES_ROUTE, changes)


async def _truth(server: FakeCopperServer, request: web.Request) -> web.Response:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"the body is larger than {MAX_BODY} bytes")
    try:
        body = _parse_json(raw)
        if isinstance(body, Mapping):  # the truth is every match: no page to check
            body = {k: v for k, v in body.items() if k not in _PAGING_FIELDS}
        query, _paging = parse_search_body(body)
    except QueryError as error:
        return _error(error.status, error.message)
    return web.Response(body=orjson.dumps(list(server.dataset.search(query))), content_type=_JSON)


async def _changes(server: FakeCopperServer, request: web.Request) -> web.Response:
    try:
        body = _parse_json(await request.read())
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"the body is larger than {MAX_BODY} bytes")
    except QueryError as error:
        return _error(error.status, error.message)
    known = {"edits", "creates", "deletes", "seed", "over"}
    if not isinstance(body, Mapping) or not set(body) <= known:
        return _error(422, f"the body must be an object with keys among {sorted(known)}")
    try:
        changes = server.play_changes(**body)
    except InvalidOptionError as error:
        return _error(422, str(error))
    return web.Response(body=orjson.dumps(attrs.asdict(changes)), content_type=_JSON)
