"""``GET /custom_field_definitions`` of the fake server: the definitions its records use.

Generated records carry custom fields 3 (text), 5 (a dropdown of options 1
to 8), 6 (a date), 7 (a checkbox) and 12 (a multi-select of options 8 to
11); :data:`DEFINITIONS` describes exactly those, in Copper's shape, plus a
person field that opportunities do not carry (so a client must pick by
``available_on``). The endpoint takes the search's auth headers and counts
against the same rolling rate limit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import orjson
from aiohttp import web

from copper_async.testing._answers import _error

if TYPE_CHECKING:
    from copper_async.testing._server import FakeCopperServer

__all__ = ["DEFINITIONS", "DEFINITIONS_ROUTE", "dates_as_text", "definitions_handler"]

DEFINITIONS_ROUTE: Final = "/developer_api/v1/custom_field_definitions"


def _options(*names: str, first: int) -> list[dict[str, Any]]:
    return [{"id": first + rank, "name": name, "rank": rank} for rank, name in enumerate(names)]


def _definition(
    definition_id: int,
    name: str,
    data_type: str,
    *,
    on: tuple[str, ...] = ("opportunity",),
    **more: Any,
) -> dict[str, Any]:
    return {
        "id": definition_id,
        "name": name,
        "canonical_name": f"cf_{definition_id}",
        "data_type": data_type,
        "available_on": list(on),
        "is_filterable": True,
        **more,
    }


DEFINITIONS: Final[tuple[dict[str, Any], ...]] = (
    _definition(3, "Account Notes", "String"),
    _definition(
        5,
        "Region",
        "Dropdown",
        options=_options(
            "North", "South", "East", "West", "Central", "EMEA", "APAC", "LATAM", first=1
        ),
    ),
    _definition(6, "Renewal Date", "Date"),
    _definition(7, "Referral", "Checkbox"),
    _definition(
        12,
        "Products",
        "MultiSelect",
        options=_options("Hardware", "Software", "Services", "Support", first=8),
    ),
    _definition(
        20, "Region", "Dropdown", on=("person",), options=_options("Home", "Abroad", first=30)
    ),
)


def definitions_handler(
    server: FakeCopperServer,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The route's handler: auth and rate limit as for a search, then the definitions."""
    body = orjson.dumps(list(DEFINITIONS))

    async def definitions(request: web.Request) -> web.Response:
        refusal: web.Response | None = None
        if not server._authorised(request):
            refusal = _error(401, "missing or invalid auth headers")
        else:
            refusal = server._over_rate_limit(server.options)
        if refusal is not None:
            server._sent(refusal.status)
            return refusal
        server._sent(200)
        return web.Response(body=body, content_type="application/json")

    return definitions


_DATES: Final = frozenset(d["id"] for d in DEFINITIONS if d["data_type"] == "Date")


def dates_as_text(payload: bytes) -> bytes:
    """A page with its Date custom fields' Unix seconds as ``M/D/YYYY`` text
    (the UTC day): the form Copper's docs give, where its example shows seconds."""
    records = orjson.loads(payload)
    for record in records:
        for field in record.get("custom_fields") or ():
            value = field.get("value") if isinstance(field, dict) else None
            if type(value) is int and field.get("custom_field_definition_id") in _DATES:
                day = dt.datetime.fromtimestamp(value, dt.UTC)
                field["value"] = f"{day.month}/{day.day}/{day.year}"
    return orjson.dumps(records)
