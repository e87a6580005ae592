"""The HTTP protocol of Copper's search API, sans I/O.

Pure functions only: what a request looks like (URL, headers, body bytes) and
what a response means (status class, ``X-PW-TOTAL``, ``Retry-After``, the
records in the body, whether a refused page ends a window). Nothing here
touches a socket or reads a clock, so all of it is tested directly and
fuzzed; :mod:`copper_async._http` and :mod:`copper_async._transport` do the I/O.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from importlib import metadata
from typing import Any, Final

import orjson
import yarl

from copper_async.exceptions import InvalidFilterError, InvalidOptionError, ResponseFormatError

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_USER_AGENT",
    "MAX_TOTAL",
    "SEARCH_PATH",
    "StatusClass",
    "body_paging",
    "check_records",
    "classify_status",
    "decode_json",
    "encode_body",
    "endpoint_url",
    "error_text",
    "excerpt",
    "header",
    "header_values",
    "is_loopback_host",
    "page_refused",
    "parse_http_date",
    "parse_records",
    "parse_retry_after",
    "parse_total",
    "read_retry_after",
    "request_headers",
    "search_url",
    "validate_base_url",
]

DEFAULT_BASE_URL = "https://api.copper.com/developer_api/v1"
#: Appended to the base URL for the one endpoint this package calls.
SEARCH_PATH = "opportunities/search"
#: ``X-PW-TOTAL`` values above this are nonsense (a broken proxy, an overflow): None.
MAX_TOTAL = 10**12


def _package_version() -> str:
    try:
        return metadata.version("copper-async")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


DEFAULT_USER_AGENT = f"copper-async/{_package_version()}"

# Header values go on the wire verbatim: refuse anything that could split a
# header (CR, LF) or that HTTP does not allow in a field value.
_HEADER_VALUE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
_MAX_HEADER_VALUE = 4096
# RFC 9110 delay-seconds is 1*DIGIT; a fraction is tolerated because some
# proxies send one. Bounded length so a hostile header cannot cost much.
_DELAY_SECONDS = re.compile(r"([0-9]{1,12})(?:\.([0-9]{1,9}))?")
_TOTAL = re.compile(r"[0-9]{1,13}")
# The asctime form of an HTTP-date ("Sun Nov  6 08:49:37 1994"): no zone, UTC by definition.
_ASCTIME = re.compile(r"[A-Za-z]{3} [A-Za-z]{3} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4}")
_EXCERPT_CHARS = 200


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and addresses in 127.0.0.0/8 or ``::1``."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


#: How a library caller or a command line overrides the https rule.
INSECURE_HTTP_REMEDY: Final = (
    "pass allow_insecure_http=True (or --allow-insecure-http on the command line)"
)


def validate_base_url(
    base_url: object,
    *,
    allow_insecure_http: bool = False,
    insecure_remedy: str = INSECURE_HTTP_REMEDY,
) -> str:
    """The base URL, normalised without a trailing slash, or InvalidOptionError.

    Only ``https`` is accepted, except for a loopback host (tests, local
    proxies) or when ``allow_insecure_http`` is set: the access token travels
    in a header, so plain HTTP would expose it (``insecure_remedy`` says how
    the caller's users override that). Credentials, a query or a fragment in
    the URL are refused, and so is the search endpoint's own URL, which the
    client would extend to a path that does not exist.
    """
    if not isinstance(base_url, str) or not base_url.strip():
        raise InvalidOptionError("base_url", "must be a non-empty URL string")
    try:
        url = yarl.URL(base_url.strip())
        host = url.host  # decoded on first read: IDNA can refuse it (a UnicodeError)
    except (ValueError, TypeError) as err:
        raise InvalidOptionError("base_url", f"is not a valid URL: {err}") from None
    if url.scheme not in ("http", "https") or not host:
        raise InvalidOptionError("base_url", "must be an absolute http(s) URL with a host")
    if url.user is not None or url.password is not None:
        raise InvalidOptionError("base_url", "must not carry credentials")
    if url.query_string or url.fragment:
        raise InvalidOptionError("base_url", "must not have a query or a fragment")
    if url.scheme == "http" and not allow_insecure_http and not is_loopback_host(host):
        raise InvalidOptionError(
            "base_url",
            f"must use https (the access token is sent in a header); {insecure_remedy} to override",
        )
    root = str(url).rstrip("/")
    if root.endswith(f"/{SEARCH_PATH}"):
        raise InvalidOptionError(
            "base_url",
            f"{root!r} is the search endpoint itself: give the API root, "
            f"{root.removesuffix(f'/{SEARCH_PATH}')!r} ({DEFAULT_BASE_URL} for Copper)",
        )
    return root


def endpoint_url(base_url: str, path: str) -> str:
    """The endpoint ``path`` under a validated base URL."""
    return f"{base_url.rstrip('/')}/{path.lstrip('/')}"


def search_url(base_url: str) -> str:
    """The opportunities search endpoint under a validated base URL."""
    return endpoint_url(base_url, SEARCH_PATH)


def _check_header_value(option: str, value: object, *, secret: bool = False) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidOptionError(option, "must be a non-empty string")
    if len(value) > _MAX_HEADER_VALUE or not _HEADER_VALUE.fullmatch(value):
        # Never echo a secret back, not even in an error message.
        shown = "the value" if secret else repr(value[:80])
        raise InvalidOptionError(
            option,
            f"{shown} must be printable ASCII without line breaks or surrounding spaces",
        )
    return value


def request_headers(*, access_token: str, user_email: str, user_agent: str) -> dict[str, str]:
    """The headers every request sends; raises InvalidOptionError naming a bad one."""
    token = _check_header_value("access_token", access_token, secret=True)
    email = _check_header_value("user_email", user_email)
    if "@" not in email:
        raise InvalidOptionError("user_email", f"{email!r} is not an email address")
    agent = _check_header_value("user_agent", user_agent)
    return {
        "X-PW-AccessToken": token,
        "X-PW-Application": "developer_api",
        "X-PW-UserEmail": email,
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": agent,
    }


def encode_body(body: Mapping[str, Any]) -> bytes:
    """The JSON bytes of a request body; InvalidFilterError if it cannot be encoded."""
    if not isinstance(body, Mapping):
        raise InvalidFilterError("body", f"must be a mapping, not {type(body).__name__}")
    try:
        return orjson.dumps(dict(body))
    except TypeError as err:  # orjson.JSONEncodeError is a TypeError
        raise InvalidFilterError("body", f"cannot be encoded as JSON: {err}") from None


def body_paging(body: Mapping[str, Any]) -> dict[str, Any]:
    """``page_number`` / ``page_size`` of a body, for error context (absent keys skipped)."""
    return {key: body[key] for key in ("page_number", "page_size") if key in body}


class StatusClass(enum.Enum):
    """What an HTTP status means to the client."""

    OK = "ok"  # 2xx: a page
    AUTHENTICATION = "authentication"  # 401, 403: the credentials were refused
    RATE_LIMITED = "rate_limited"  # 429: slow down, then retry
    SERVER = "server"  # 5xx: retry
    INVALID = "invalid"  # any other status (4xx, 3xx, 1xx): retrying cannot help


def classify_status(status: int) -> StatusClass:
    """Map an HTTP status to its :class:`StatusClass`."""
    if 200 <= status < 300:
        return StatusClass.OK
    if status in (401, 403):
        return StatusClass.AUTHENTICATION
    if status == 429:
        return StatusClass.RATE_LIMITED
    if 500 <= status < 600:
        return StatusClass.SERVER
    return StatusClass.INVALID


def page_refused(status: int, page_number: int) -> bool:
    """Whether an error ``status`` for page ``page_number`` means "no more pages".

    A 422 for a page past the first, whose body differs from the earlier
    pages' only in ``page_number``, says the API will not page this far (a
    lower cap than configured): the window ends there. A 422 for page 1 is a
    request the API refuses, an error like any other 4xx.
    """
    return status == 422 and page_number > 1


def header(headers: Mapping[str, str] | Iterable[tuple[str, str]], name: str) -> str | None:
    """The first value of header ``name``, matched case-insensitively, or None.

    Accepts a plain dict as well as aiohttp's case-insensitive multidicts.
    """
    values = header_values(headers, name)
    return values[0] if values else None


def header_values(headers: Mapping[str, str] | Iterable[tuple[str, str]], name: str) -> list[str]:
    """Every value of header ``name`` (a multidict's repeats too), in order."""
    wanted = name.lower()
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [value for key, value in items if key.lower() == wanted]


def parse_total(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> int | None:
    """The ``X-PW-TOTAL`` header as an int.

    None when it is absent, not a plain non-negative decimal integer, or above
    :data:`MAX_TOTAL`: the engine treats the total as a hint, so a value that
    cannot be trusted is no value; so are repeated headers that disagree.
    """
    values = {value.strip() for value in header_values(headers, "X-PW-TOTAL")}
    if len(values) != 1:
        return None
    (value,) = values
    # A regex rather than int(): int() also takes "+5", "1_000" and non-ASCII digits.
    if not _TOTAL.fullmatch(value):
        return None
    total = int(value)
    return total if total <= MAX_TOTAL else None


def parse_http_date(value: str | None) -> float | None:
    """An HTTP date (``Date``, ``Retry-After``) as Unix seconds, or None."""
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        # The asctime form is UTC (RFC 9110, 5.6.7); "-0000" is not an HTTP date.
        if not _ASCTIME.fullmatch(value.strip()):
            return None
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.timestamp()
    except (OverflowError, OSError, ValueError):  # pragma: no cover - platform limits
        return None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or None if absent or unreadable.

    ``value`` is delay-seconds (``"120"``) or an HTTP date; ``now`` is the
    current Unix time, best taken from the same response's ``Date`` header so
    that clock skew between client and server cancels out. A date in the past
    means 0.
    """
    if value is None:
        return None
    text = value.strip()
    if match := _DELAY_SECONDS.fullmatch(text):
        whole, fraction = match.groups()
        return float(f"{whole}.{fraction or '0'}")
    when = parse_http_date(text)
    if when is None or not math.isfinite(now):
        return None
    return max(when - now, 0.0)


def read_retry_after(
    headers: Mapping[str, str] | Iterable[tuple[str, str]], wall_now: float
) -> float | None:
    """A response's ``Retry-After`` in seconds, or None.

    An HTTP-date is read against the response's own ``Date`` (clock skew
    between client and server cancels out); ``wall_now``, the client's Unix
    time, stands in when the response has no readable ``Date``.
    """
    server_now = parse_http_date(header(headers, "Date"))
    return parse_retry_after(
        header(headers, "Retry-After"), server_now if server_now is not None else wall_now
    )


def excerpt(body: bytes, *, limit: int = _EXCERPT_CHARS) -> str:
    """The start of a body as text, for error messages (undecodable bytes replaced)."""
    text = body[: limit * 4].decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[:limit] + "…"


def error_text(body: bytes, *, limit: int = 2000) -> str:
    """An error body as bounded text, stripped of surrounding whitespace."""
    return excerpt(body, limit=limit).strip()


def decode_json(body: bytes) -> Any:
    """Parse a response body as JSON.

    ResponseFormatError when the body is empty, truncated, not UTF-8 or not
    JSON: the signs of a flaky proxy, which a retry may cure.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        reason = "empty body" if not body.strip() else f"not valid JSON ({err.msg})"
        raise ResponseFormatError(reason, excerpt=excerpt(body)) from None


def check_records(value: Any, body: bytes = b"") -> list[dict[str, Any]]:
    """``value`` if it is a list of JSON objects, else ResponseFormatError.

    This answer is well-formed JSON of the wrong shape (an error object, a
    string), which a retry will not change. ``body`` supplies the excerpt.
    """
    if value.__class__ is not list:
        raise ResponseFormatError(
            f"expected a JSON array of records, got a JSON {_json_kind(value)}",
            excerpt=excerpt(body),
        )
    for index, item in enumerate(value):
        if item.__class__ is not dict:
            raise ResponseFormatError(
                f"expected a JSON object at index {index}, got a JSON {_json_kind(item)}",
                excerpt=excerpt(body),
            )
    return value


def parse_records(body: bytes) -> list[dict[str, Any]]:
    """The records of a search response body: a JSON array of objects.

    Any other body raises ResponseFormatError (and nothing else) with an
    excerpt of what came back.
    """
    return check_records(decode_json(body), body)


def _json_kind(value: object) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"
