"""Config validation, environment fallbacks and ``--about``."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from copper_async import InvalidOptionError, OpportunityFilter, RateLimit, SearchOptions
from copper_async._options import option_spec
from copper_async.singer import SETTINGS, TapConfig, about
from copper_async.singer._about import about_markdown
from copper_async.singer._config import SEARCH_SETTINGS
from copper_async.singer._tap import _client

GOOD = {"access_token": "t0k", "user_email": "me@example.com"}


def test_defaults_match_coppers_limits() -> None:
    config = TapConfig.from_mapping(GOOD, environ={})
    assert config.rate_limit == RateLimit.parse("180/60")
    assert config.options.page_size == 200
    assert config.options.cap == 100_000
    assert config.filter == OpportunityFilter()
    assert config.start_date is None
    assert "t0k" not in repr(config)


def test_every_key_is_read() -> None:
    config = TapConfig.from_mapping(
        {
            **GOOD,
            "start_date": "2024-01-01T00:00:00Z",
            "base_url": "http://127.0.0.1:1/developer_api/v1",
            "page_size": 50,
            "rate_limit": "none",
            "concurrency": 2,
            "filter": {"status_ids": [1]},
            "cap": 1_000,
        },
        environ={},
    )
    assert config.start_date == 1_704_067_200
    assert config.base_url == "http://127.0.0.1:1/developer_api/v1"
    assert (config.options.page_size, config.options.concurrency) == (50, 2)
    assert config.options.cap == 1_000
    assert config.rate_limit is None
    assert config.filter == OpportunityFilter(status_ids=[1])


def test_credentials_fall_back_to_the_environment() -> None:
    environ = {"COPPER_ACCESS_TOKEN": "env-token", "COPPER_USER_EMAIL": "env@example.com"}
    config = TapConfig.from_mapping({}, environ=environ)
    assert (config.access_token, config.user_email) == ("env-token", "env@example.com")
    # The file wins over the environment.
    assert TapConfig.from_mapping(GOOD, environ=environ).access_token == "t0k"


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"access_token": None}, "access_token"),
        ({"user_email": ""}, "user_email"),
        ({"start_date": "last tuesday"}, "start_date"),
        ({"page_size": 500}, "page_size"),
        ({"page_size": "200"}, "page_size"),
        ({"concurrency": 0}, "concurrency"),
        ({"rate_limit": "fast"}, "rate_limit"),
        ({"filter": [1]}, "filter"),
        ({"filter": {"no_such_key": 1}}, "filter"),
        ({"cap": 10, "page_size": 200}, "cap"),
        ({"base_url": 5}, "base_url"),
    ],
)
def test_a_bad_value_is_refused_naming_its_key(change: dict[str, Any], key: str) -> None:
    with pytest.raises(InvalidOptionError, match=f"'{key}'"):
        TapConfig.from_mapping({**GOOD, **change}, environ={})


def test_unknown_keys_are_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    TapConfig.from_mapping({**GOOD, "acess_token": "typo"}, environ={})
    assert "acess_token" in caplog.text


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"sort_by": "name", "statuses": ["Open"]}, "sort_by cannot be honoured by the tap"),
        ({"page_number": 3, "page_size": 5, "statuses": ["Open"]}, "page_number and page_size"),
    ],
    ids=["sort", "paging"],
)
def test_a_filters_sort_or_paging_is_dropped_with_a_warning(
    caplog: pytest.LogCaptureFixture, body: dict[str, Any], says: str
) -> None:
    config = TapConfig.from_mapping({**GOOD, "filter": body}, environ={})
    assert config.filter == OpportunityFilter(statuses=["Open"])
    assert says in caplog.text
    assert "ignored" in caplog.text


def test_about_lists_every_setting_and_the_capabilities() -> None:
    info = about()
    assert info["name"] == "tap-copper-async"
    assert info["capabilities"] == ["catalog", "discover", "state", "about"]
    settings = info["settings"]
    assert list(settings["properties"]) == [s.name for s in SETTINGS]
    assert settings["required"] == ["access_token", "user_email"]
    assert settings["properties"]["access_token"]["secret"] is True
    markdown = about_markdown()
    for setting in SETTINGS:
        assert f"| {setting.name} |" in markdown


@pytest.mark.parametrize("name", SEARCH_SETTINGS)
def test_search_settings_are_the_search_options_declarations(name: str) -> None:
    field = attrs.fields_dict(SearchOptions)[name]
    spec = option_spec(field)
    prop = about()["settings"]["properties"][name]
    assert (prop["minimum"], prop["maximum"]) == (spec.low, spec.high)
    assert prop["default"] == field.default == getattr(TapConfig.from_mapping(GOOD).options, name)
    assert prop["description"] == spec.help
    # Out of bounds: refused with the very words SearchOptions uses.
    assert spec.high is not None
    with pytest.raises(InvalidOptionError) as expected:
        SearchOptions(**{name: spec.high + 1})  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError) as refused:
        TapConfig.from_mapping({**GOOD, name: spec.high + 1}, environ={})
    assert str(refused.value) == str(expected.value)


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("none", None),
        ("OFF", None),
        ("0", None),
        ("90/30", RateLimit(90, 30)),
        ("5/1s", RateLimit(5, 1)),
    ],
)
def test_rate_limit_is_read_as_the_export_reads_it(text: str, limit: RateLimit | None) -> None:
    assert TapConfig.from_mapping({**GOOD, "rate_limit": text}, environ={}).rate_limit == limit
    assert about()["settings"]["properties"]["rate_limit"]["default"] == str(RateLimit())


def _client_refusal(settings: dict[str, Any]) -> InvalidOptionError | None:
    """What refuses a config before the run's first request, if anything does."""
    try:
        _client(TapConfig.from_mapping(settings, environ={}))
    except InvalidOptionError as error:
        return error
    return None


def test_plain_http_to_another_host_can_be_allowed_as_the_refusal_says(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A proxy or a test server on another host over plain HTTP: refused by
    default, and the refusal's remedy must be one the tap takes (it has no
    command-line flag for it: a config key, as the export's --allow-insecure-http)."""
    url = "http://copper-proxy.example.com:8080/developer_api/v1"
    refused = _client_refusal({**GOOD, "base_url": url})
    assert refused is not None
    assert refused.option == "base_url"
    assert "--allow-insecure-http" not in str(refused), "the tap has no such flag"
    assert "allow_insecure_http" in str(refused)
    allowed = {**GOOD, "base_url": url, "allow_insecure_http": True}
    assert _client_refusal(allowed) is None
    assert "unknown config keys" not in caplog.text
    assert "allow_insecure_http" in about()["settings"]["properties"]
    # Not a bool: named, as every other key.
    with pytest.raises(InvalidOptionError, match="'allow_insecure_http'"):
        TapConfig.from_mapping({**allowed, "allow_insecure_http": "yes"}, environ={})
