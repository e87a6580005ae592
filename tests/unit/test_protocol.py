"""The sans-I/O protocol: request pieces and response parsing, fuzzed."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from copper_async import _protocol as protocol
from copper_async._protocol import StatusClass
from copper_async.exceptions import InvalidFilterError, InvalidOptionError, ResponseFormatError
from tests.reference import reference_examples, reference_records

TOKEN = "tok-5ecret-VALUE"


# -- requests -------------------------------------------------------------------


def test_request_headers_are_the_documented_four_plus_agent() -> None:
    headers = protocol.request_headers(
        access_token=TOKEN, user_email="me@example.com", user_agent="ua/1"
    )
    assert headers["X-PW-AccessToken"] == TOKEN
    assert headers["X-PW-Application"] == "developer_api"
    assert headers["X-PW-UserEmail"] == "me@example.com"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "ua/1"


@pytest.mark.parametrize(
    ("option", "overrides"),
    [
        ("access_token", {"access_token": ""}),
        ("access_token", {"access_token": "abc\r\nX-Evil: 1"}),
        ("access_token", {"access_token": " padded"}),
        ("access_token", {"access_token": None}),
        ("user_email", {"user_email": ""}),
        ("user_email", {"user_email": "not-an-email"}),
        ("user_email", {"user_email": "a@b\n"}),
        ("user_agent", {"user_agent": ""}),
    ],
)
def test_bad_header_values_are_refused_naming_the_option(
    option: str, overrides: dict[str, object]
) -> None:
    values: dict[str, object] = {
        "access_token": TOKEN,
        "user_email": "me@example.com",
        "user_agent": "ua",
    }
    values.update(overrides)
    with pytest.raises(InvalidOptionError) as info:
        protocol.request_headers(**values)  # type: ignore[arg-type]
    assert info.value.option == option


def test_a_bad_token_is_not_echoed_in_the_error() -> None:
    secret = "s3cret\nline"
    with pytest.raises(InvalidOptionError) as info:
        protocol.request_headers(access_token=secret, user_email="a@b.c", user_agent="ua")
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.copper.com/developer_api/v1", "https://api.copper.com/developer_api/v1"),
        ("https://api.copper.com/developer_api/v1/", "https://api.copper.com/developer_api/v1"),
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1"),
        ("http://127.3.4.5/v1", "http://127.3.4.5/v1"),
        ("http://localhost:1234", "http://localhost:1234"),
        ("http://[::1]:1234/api", "http://[::1]:1234/api"),
    ],
)
def test_accepted_base_urls(url: str, expected: str) -> None:
    assert protocol.validate_base_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://api.copper.com/developer_api/v1",
        "http://10.0.0.1/v1",
        "http://localhost.example.com/v1",
        "ftp://api.copper.com/",
        "api.copper.com/developer_api/v1",
        "",
        "https://user:pw@api.copper.com/v1",
        "https://api.copper.com/v1?x=1",
        "https://api.copper.com/v1#frag",
        "https://xn--/v1",  # a host IDNA cannot decode
        "http://xn--/v1",
    ],
)
def test_refused_base_urls(url: str) -> None:
    with pytest.raises(InvalidOptionError) as info:
        protocol.validate_base_url(url)
    assert info.value.option == "base_url"


def test_plain_http_to_a_remote_host_needs_the_explicit_opt_in() -> None:
    url = "http://proxy.internal:8080/v1"
    assert protocol.validate_base_url(url, allow_insecure_http=True) == url
    with pytest.raises(InvalidOptionError) as info:
        protocol.validate_base_url(url)
    # The same refusal reaches library callers and the command's users.
    assert "allow_insecure_http=True" in info.value.reason
    assert "--allow-insecure-http on the command line" in info.value.reason


def test_search_url() -> None:
    assert (
        protocol.search_url("https://api.copper.com/developer_api/v1")
        == "https://api.copper.com/developer_api/v1/opportunities/search"
    )


def test_every_reference_body_encodes_to_the_same_json() -> None:
    for example in reference_examples():
        assert orjson.loads(protocol.encode_body(example.body)) == example.body


def test_unencodable_body_is_an_invalid_filter() -> None:
    with pytest.raises(InvalidFilterError) as info:
        protocol.encode_body({"page_size": object()})
    assert info.value.field == "body"
    with pytest.raises(InvalidFilterError):
        protocol.encode_body([1, 2])  # type: ignore[arg-type]


def test_body_paging() -> None:
    assert protocol.body_paging({"page_size": 200, "page_number": 3, "x": 1}) == {
        "page_number": 3,
        "page_size": 200,
    }
    assert protocol.body_paging({}) == {}


# -- responses ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, StatusClass.OK),
        (204, StatusClass.OK),
        (401, StatusClass.AUTHENTICATION),
        (403, StatusClass.AUTHENTICATION),
        (429, StatusClass.RATE_LIMITED),
        (500, StatusClass.SERVER),
        (502, StatusClass.SERVER),
        (503, StatusClass.SERVER),
        (599, StatusClass.SERVER),
        (400, StatusClass.INVALID),
        (404, StatusClass.INVALID),
        (422, StatusClass.INVALID),
        (418, StatusClass.INVALID),
        (302, StatusClass.INVALID),
        (100, StatusClass.INVALID),
    ],
)
def test_classify_status(status: int, kind: StatusClass) -> None:
    assert protocol.classify_status(status) is kind


@pytest.mark.parametrize(
    ("headers", "total"),
    [
        ({"X-PW-TOTAL": "1234"}, 1234),
        ({"x-pw-total": "0"}, 0),
        ({"X-Pw-Total": " 99 "}, 99),
        ({"X-PW-TOTAL": str(10**12)}, 10**12),
        ({"X-PW-TOTAL": str(10**12 + 1)}, None),
        ({"X-PW-TOTAL": "-1"}, None),
        ({"X-PW-TOTAL": "+5"}, None),
        ({"X-PW-TOTAL": "1_000"}, None),
        ({"X-PW-TOTAL": "١٢"}, None),  # Arabic-Indic digits that int() accepts
        ({"X-PW-TOTAL": "12.5"}, None),
        ({"X-PW-TOTAL": ""}, None),
        ({"X-PW-TOTAL": "lots"}, None),
        ({"X-PW-TOTAL": "9" * 40}, None),
        ({"Content-Type": "application/json"}, None),
    ],
)
def test_parse_total(headers: dict[str, str], total: int | None) -> None:
    assert protocol.parse_total(headers) == total


def test_parse_total_reads_aiohttp_multidicts() -> None:
    assert protocol.parse_total(CIMultiDict({"x-PW-total": "7"})) == 7


def test_repeated_totals_count_only_when_they_agree() -> None:
    agree = CIMultiDict([("X-PW-TOTAL", "7"), ("x-pw-total", " 7")])
    disagree = CIMultiDict([("X-PW-TOTAL", "7"), ("x-pw-total", "900")])
    assert protocol.parse_total(agree) == 7
    assert protocol.parse_total(disagree) is None


@given(st.text(max_size=30))
def test_parse_total_never_raises(value: str) -> None:
    total = protocol.parse_total({"X-PW-TOTAL": value})
    assert total is None or 0 <= total <= protocol.MAX_TOTAL


NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "delay"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("Fri, 02 Jan 2026 03:04:35 GMT", 30.0),
        ("Fri, 02 Jan 2026 03:04:05 GMT", 0.0),
        ("Thu, 01 Jan 2026 00:00:00 GMT", 0.0),  # in the past: go now
        ("Fri Jan  2 03:04:35 2026", 30.0),  # asctime, the third HTTP-date form
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1e3", None),
    ],
)
def test_parse_retry_after(value: str | None, delay: float | None) -> None:
    assert protocol.parse_retry_after(value, NOW) == delay


def test_parse_retry_after_date_is_relative_to_the_given_now() -> None:
    when = datetime(2026, 1, 2, 3, 5, 5, tzinfo=UTC)
    assert protocol.parse_retry_after(format_datetime(when, usegmt=True), NOW) == 60.0
    assert protocol.parse_retry_after(format_datetime(when, usegmt=True), NOW + 50) == 10.0


def test_read_retry_after_takes_now_from_the_response_date_else_the_wall_clock() -> None:
    when = format_datetime(datetime(2026, 1, 2, 3, 5, 5, tzinfo=UTC), usegmt=True)
    server_date = format_datetime(datetime(2026, 1, 2, 3, 5, 0, tzinfo=UTC), usegmt=True)
    # The server's Date wins over the client's wall clock, however far off that is.
    dated = CIMultiDict({"retry-after": when, "date": server_date})
    assert protocol.read_retry_after(dated, wall_now=NOW + 10**6) == 5.0
    # No Date (or an unreadable one): the wall time given stands in.
    assert protocol.read_retry_after({"Retry-After": when}, wall_now=NOW) == 60.0
    assert protocol.read_retry_after({"Retry-After": when, "Date": "?"}, wall_now=NOW) == 60.0
    assert protocol.read_retry_after({"Retry-After": "7", "Date": server_date}, NOW) == 7.0
    assert protocol.read_retry_after({"Date": server_date}, wall_now=NOW) is None


@pytest.mark.parametrize(
    ("status", "page_number", "refused"),
    [
        (422, 2, True),
        (422, 500, True),
        (422, 1, False),  # the first page refused: the request itself is bad
        (400, 2, False),
        (404, 3, False),
        (429, 2, False),
        (500, 2, False),
        (200, 2, False),
    ],
)
def test_a_422_past_the_first_page_ends_the_window(
    status: int, page_number: int, refused: bool
) -> None:
    assert protocol.page_refused(status, page_number) is refused


@given(st.text(max_size=60), st.floats(allow_nan=True, allow_infinity=True))
def test_parse_retry_after_never_raises(value: str, now: float) -> None:
    delay = protocol.parse_retry_after(value, now)
    assert delay is None or delay >= 0


def test_parse_records_reads_every_reference_answer() -> None:
    for example in reference_examples():
        assert protocol.parse_records(orjson.dumps(example.records)) == example.records
    assert len(reference_records()) > 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty body"),
        (b"   ", "empty body"),
        (b'[{"id": 1}, {"id"', "not valid JSON"),
        (b"<html>502 Bad Gateway</html>", "not valid JSON"),
        (b'["\xff\xfe"]', "not valid JSON"),
        (b'{"error": "nope"}', "got a JSON object"),
        (b'"a string"', "got a JSON string"),
        (b"null", "got a JSON null"),
        (b"12", "got a JSON number"),
        (b'[{"id": 1}, 2]', "at index 1, got a JSON number"),
        (b"[[]]", "at index 0, got a JSON array"),
    ],
)
def test_parse_records_refuses_what_is_not_an_array_of_objects(body: bytes, reason: str) -> None:
    with pytest.raises(ResponseFormatError) as info:
        protocol.parse_records(body)
    assert reason in info.value.reason
    assert info.value.excerpt == protocol.excerpt(body)


def test_format_error_shows_a_bounded_excerpt() -> None:
    body = b'{"message": "' + b"x" * 10_000 + b'"}'
    with pytest.raises(ResponseFormatError) as info:
        protocol.parse_records(body)
    assert info.value.excerpt.startswith('{"message": "xxx')
    assert len(info.value.excerpt) <= 201
    assert '{"message"' in str(info.value)


def test_empty_array_is_an_empty_page() -> None:
    assert protocol.parse_records(b"[]") == []


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_response_format_error(body: bytes) -> None:
    try:
        records = protocol.parse_records(body)
    except ResponseFormatError:
        return
    assert isinstance(records, list)
    assert all(isinstance(record, dict) for record in records)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_arbitrary_json_raises_only_response_format_error(value: object) -> None:
    body = orjson.dumps(value)
    is_page = isinstance(value, list) and all(isinstance(item, dict) for item in value)
    if is_page:
        assert protocol.parse_records(body) == value
    else:
        with pytest.raises(ResponseFormatError):
            protocol.parse_records(body)


@given(st.data())
def test_every_truncation_of_a_page_is_a_format_error(data: st.DataObject) -> None:
    body = orjson.dumps(reference_examples()[0].records)
    truncated = body[: data.draw(st.integers(min_value=0, max_value=len(body) - 1))]
    with pytest.raises(ResponseFormatError):
        protocol.parse_records(truncated)


def test_deep_nesting_is_a_format_error_not_a_crash() -> None:
    with pytest.raises(ResponseFormatError):
        protocol.parse_records(b"[" * 100_000)


def test_error_text_is_bounded_and_lossless_for_text() -> None:
    assert protocol.error_text(b'  {"message":"bad"}\n') == '{"message":"bad"}'
    assert len(protocol.error_text(b"y" * 100_000, limit=50)) == 51
    assert protocol.error_text(b"\xff ok") == "\ufffd ok"


def test_header_lookup_is_case_insensitive_on_plain_dicts() -> None:
    assert protocol.header({"retry-after": "3"}, "Retry-After") == "3"
    assert protocol.header([("A", "1"), ("a", "2")], "a") == "1"
    assert protocol.header({}, "a") is None


def test_parse_http_date() -> None:
    assert protocol.parse_http_date("Fri, 02 Jan 2026 03:04:05 GMT") == NOW
    # HTTP recipients must read all three HTTP-date forms (RFC 9110, 5.6.7): all are UTC.
    assert protocol.parse_http_date("Friday, 02-Jan-26 03:04:05 GMT") == NOW
    assert protocol.parse_http_date("Fri Jan  2 03:04:05 2026") == NOW
    assert protocol.parse_http_date("Fri Jan 12 03:04:05 2026") == NOW + 10 * 86_400
    # Not HTTP dates: a zone of unknown source, and the asctime form with a zone name.
    assert protocol.parse_http_date("Fri, 02 Jan 2026 03:04:05 -0000") is None
    assert protocol.parse_http_date("garbage") is None
    assert protocol.parse_http_date(None) is None


@pytest.mark.parametrize("suffix", ["/opportunities/search", "/opportunities/search/"])
def test_the_search_endpoint_itself_is_refused_naming_the_api_root(suffix: str) -> None:
    """Copied from Copper's docs as the base URL, the client would extend it to
    .../opportunities/search/opportunities/search; every caller (library,
    export, sync, tap) is refused before any request, and told the root."""
    root = "https://api.copper.com/developer_api/v1"
    with pytest.raises(InvalidOptionError) as info:
        protocol.validate_base_url(root + suffix)
    assert info.value.option == "base_url"
    assert "search endpoint itself" in info.value.reason
    assert repr(root) in info.value.reason


def test_the_https_refusal_names_the_callers_own_remedy() -> None:
    with pytest.raises(InvalidOptionError) as info:
        protocol.validate_base_url("http://proxy.internal/v1", insecure_remedy="say the word")
    assert "say the word to override" in info.value.reason
    assert "--allow-insecure-http" not in info.value.reason
