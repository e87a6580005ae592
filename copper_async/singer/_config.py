"""The tap's settings: one table, read by ``--about`` and by the validation.

Every setting is checked before any request; a bad one raises
:class:`~copper_async.exceptions.InvalidOptionError` naming it.
``access_token`` and ``user_email`` fall back to ``COPPER_ACCESS_TOKEN`` and
``COPPER_USER_EMAIL``, as the export command's options do.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Mapping
from typing import Any

import attrs

from copper_async import (
    InvalidInputError,
    InvalidOptionError,
    OpportunityFilter,
    RateLimit,
    SearchOptions,
)

__all__ = ["SETTINGS", "Setting", "TapConfig", "settings_schema"]

logger = logging.getLogger(__name__)

_DEFAULTS = SearchOptions()


@attrs.frozen
class Setting:
    """One config key: its JSON Schema and what it does."""

    name: str
    schema: dict[str, Any]
    description: str
    required: bool = False
    sensitive: bool = False
    env: str | None = None


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "access_token",
        {"type": "string"},
        "Copper API key (X-PW-AccessToken). Falls back to COPPER_ACCESS_TOKEN.",
        required=True,
        sensitive=True,
        env="COPPER_ACCESS_TOKEN",
    ),
    Setting(
        "user_email",
        {"type": "string"},
        "Email of the Copper user the key belongs to. Falls back to COPPER_USER_EMAIL.",
        required=True,
        env="COPPER_USER_EMAIL",
    ),
    Setting(
        "start_date",
        {"type": "string", "format": "date-time"},
        "ISO 8601 date or date-time: with no state yet, read only records modified "
        "since then (default: every record).",
    ),
    Setting(
        "base_url",
        {"type": "string", "default": "https://api.copper.com/developer_api/v1"},
        "API root (for a proxy or a test server).",
    ),
    Setting(
        "page_size",
        {"type": "integer", "minimum": 1, "maximum": 200, "default": _DEFAULTS.page_size},
        "Records per search page.",
    ),
    Setting(
        "rate_limit",
        {"type": "string", "default": "180/60"},
        "Requests/seconds, e.g. 180/60 (Copper's limit), or 'none'.",
    ),
    Setting(
        "concurrency",
        {"type": "integer", "minimum": 1, "maximum": 64, "default": _DEFAULTS.concurrency},
        "Search pages in flight at once (all under the one rate limit).",
    ),
    Setting(
        "filter",
        {"type": "object"},
        'A search body as in Copper\'s docs (e.g. {"status_ids": [1]}): only the records '
        "it matches are read.",
    ),
    Setting(
        "cap",
        {"type": "integer", "minimum": 1, "default": _DEFAULTS.cap},
        "The API's search cap (change it only for test servers).",
    ),
)
_BY_NAME = {setting.name: setting for setting in SETTINGS}


def settings_schema() -> dict[str, Any]:
    """The settings as one JSON Schema object (the ``--about`` ``settings`` key)."""
    properties = {}
    for setting in SETTINGS:
        prop = {**setting.schema, "description": setting.description}
        if setting.sensitive:
            prop["secret"] = True
            prop["writeOnly"] = True
        properties[setting.name] = prop
    return {
        "type": "object",
        "properties": properties,
        "required": [s.name for s in SETTINGS if s.required],
    }


def _integer(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidOptionError(name, f"must be an integer from {low} to {high}, not {value!r}")
    return value


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidOptionError(name, f"must be a non-empty string, not {value!r}")
    return value


def _start_date(value: Any) -> int:
    text = _text("start_date", value)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidOptionError(
            "start_date", f"must be an ISO 8601 date or date-time, not {value!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp())


def _filter(value: Any) -> OpportunityFilter:
    if not isinstance(value, Mapping):
        raise InvalidOptionError("filter", f"must be a JSON object (a search body), not {value!r}")
    try:
        return OpportunityFilter.from_body(value)
    except InvalidInputError as error:
        raise InvalidOptionError("filter", str(error)) from None


def _rate_limit(value: Any) -> RateLimit | None:
    text = _text("rate_limit", value)
    if text.lower() in ("none", "off"):
        return None
    return RateLimit.parse(text)


@attrs.frozen(kw_only=True)
class TapConfig:
    """A validated config; build it with :meth:`from_mapping`."""

    access_token: str = attrs.field(repr=False)
    user_email: str
    start_date: int | None = None
    base_url: str | None = None
    filter: OpportunityFilter = attrs.field(factory=OpportunityFilter)
    rate_limit: RateLimit | None = attrs.field(factory=RateLimit)
    options: SearchOptions = _DEFAULTS

    @classmethod
    def from_mapping(
        cls, config: Mapping[str, Any], *, environ: Mapping[str, str] | None = None
    ) -> TapConfig:
        """Validate a config file's object; every error names its key."""
        if not isinstance(config, Mapping):
            raise InvalidOptionError("config", "must be a JSON object")
        environ = os.environ if environ is None else environ
        unknown = sorted(set(config) - set(_BY_NAME))
        if unknown:
            # Orchestrators may add keys of their own: say so, but run.
            logger.warning("ignoring unknown config keys: %s", ", ".join(unknown))
        values = {k: v for k, v in config.items() if v is not None}
        credentials = {}
        for name in ("access_token", "user_email"):
            env = _BY_NAME[name].env
            value = values.get(name) or (environ.get(env) if env else None)
            if not value:
                raise InvalidOptionError(name, f"missing: set it in the config or {env}")
            credentials[name] = _text(name, value)
        options = SearchOptions(
            page_size=_integer("page_size", values.get("page_size", _DEFAULTS.page_size), 1, 200),
            concurrency=_integer(
                "concurrency", values.get("concurrency", _DEFAULTS.concurrency), 1, 64
            ),
            cap=_integer("cap", values.get("cap", _DEFAULTS.cap), 1, 10**9),
        )
        return cls(
            **credentials,
            start_date=_start_date(values["start_date"]) if "start_date" in values else None,
            base_url=_text("base_url", values["base_url"]) if "base_url" in values else None,
            filter=_filter(values["filter"]) if "filter" in values else OpportunityFilter(),
            rate_limit=_rate_limit(values.get("rate_limit", "180/60")),
            options=options,
        )
