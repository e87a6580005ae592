"""The tap's settings: one table, read by ``--about`` and by the validation.

The search settings (``page_size``, ``concurrency``, ``cap``) are the
:class:`~copper_async.SearchOptions` fields of those names: their bounds,
defaults and help come from its declarations and :class:`SearchOptions`
itself checks them, as for the export's flags; ``rate_limit`` is read by
:meth:`RateLimit.parse <copper_async.RateLimit.parse>`. Every setting is
checked before any request; a bad one raises
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
from copper_async._export import sort_in
from copper_async._options import option_spec
from copper_async._protocol import DEFAULT_BASE_URL, validate_base_url

__all__ = ["SEARCH_SETTINGS", "SETTINGS", "Setting", "TapConfig", "settings_schema"]

logger = logging.getLogger(__name__)

#: The :class:`SearchOptions` a config may set: their bounds, defaults and help
#: are the declarations' own (the export's flags read the same).
SEARCH_SETTINGS = ("page_size", "concurrency", "cap")
_RATE_LIMIT_OFF = ("none", "off", "0")


@attrs.frozen
class Setting:
    """One config key: its JSON Schema and what it does."""

    name: str
    schema: dict[str, Any]
    description: str
    required: bool = False
    sensitive: bool = False
    env: str | None = None


def _search_setting(name: str) -> Setting:
    """A setting read off the :class:`SearchOptions` field of that name."""
    field = attrs.fields_dict(SearchOptions)[name]
    spec = option_spec(field)
    if spec.choices:
        schema: dict[str, Any] = {"type": "string", "enum": list(spec.choices)}
    else:
        schema = {"type": "integer", "minimum": spec.low, "maximum": spec.high}
    return Setting(name, {**schema, "default": field.default}, spec.help)


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
        {"type": "string", "default": DEFAULT_BASE_URL},
        "API root (for a proxy or a test server).",
    ),
    Setting(
        "allow_insecure_http",
        {"type": "boolean", "default": False},
        "Allow a plain http:// base_url on a host other than this one (the access "
        "token then travels unencrypted).",
    ),
    Setting(
        "rate_limit",
        {"type": "string", "default": str(RateLimit())},
        f"Requests/seconds, e.g. {RateLimit()} (Copper's limit), or 'none'.",
    ),
    Setting(
        "filter",
        {"type": "object"},
        'A search body as in Copper\'s docs (e.g. {"status_ids": [1]}): only the records '
        "it matches are read.",
    ),
    *(_search_setting(name) for name in SEARCH_SETTINGS),
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
        query = OpportunityFilter.from_body(value)
    except InvalidInputError as error:
        raise InvalidOptionError("filter", str(error)) from None
    paging = [key for key in ("page_number", "page_size") if value.get(key) is not None]
    if paging:  # a body copied from Copper's examples: the tap reads every page itself
        logger.warning(
            "the config's filter %s ignored: every page is read, in pages of page_size",
            " and ".join(paging),
        )
    ignored = sort_in(query, "the tap")
    if ignored is not None:
        logger.warning("the config's filter: %s; ignored", ignored)
        query = query.with_sort(None, None)
    return query


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidOptionError(name, f"must be true or false, not {value!r}")
    return value


def _base_url(value: Any, *, allow_insecure_http: bool) -> str:
    text = _text("base_url", value)
    validate_base_url(
        text,
        allow_insecure_http=allow_insecure_http,
        insecure_remedy="set allow_insecure_http to true in the config",
    )
    return text


def _rate_limit(value: Any) -> RateLimit | None:
    text = _text("rate_limit", value)
    return None if text.strip().lower() in _RATE_LIMIT_OFF else RateLimit.parse(text)


@attrs.frozen(kw_only=True)
class TapConfig:
    """A validated config; build it with :meth:`from_mapping`."""

    access_token: str = attrs.field(repr=False)
    user_email: str
    start_date: int | None = None
    base_url: str | None = None
    allow_insecure_http: bool = False
    filter: OpportunityFilter = attrs.field(factory=OpportunityFilter)
    rate_limit: RateLimit | None = attrs.field(factory=RateLimit)
    options: SearchOptions = attrs.field(factory=SearchOptions)

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
        # SearchOptions checks each against its declaration, naming the key.
        options = SearchOptions(**{k: values[k] for k in SEARCH_SETTINGS if k in values})
        insecure = _flag("allow_insecure_http", values.get("allow_insecure_http", False))
        base_url = values.get("base_url")
        if base_url is not None:
            base_url = _base_url(base_url, allow_insecure_http=insecure)
        return cls(
            **credentials,
            start_date=_start_date(values["start_date"]) if "start_date" in values else None,
            base_url=base_url,
            allow_insecure_http=insecure,
            filter=_filter(values["filter"]) if "filter" in values else OpportunityFilter(),
            rate_limit=_rate_limit(values["rate_limit"]) if "rate_limit" in values else RateLimit(),
            options=options,
        )
