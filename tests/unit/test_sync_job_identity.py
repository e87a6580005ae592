"""A mirror job is what it reads: the order or paging of its filter is no part of it."""

from __future__ import annotations

from copper_async import OpportunityFilter
from copper_async.sync._bookmark import job_identity

ROOT, EMAIL = "https://api.copper.com/developer_api/v1", "me@example.com"


def _key(body: dict[str, object]) -> str:
    return job_identity(OpportunityFilter.from_body(body), base_url=ROOT, user_email=EMAIL)[1]


def test_sort_and_paging_of_the_filter_do_not_change_the_job() -> None:
    # Copper's example bodies carry a sort_by: the run orders each window itself.
    plain = _key({"statuses": ["Open"]})
    assert _key({"statuses": ["Open"], "sort_by": "name", "sort_direction": "desc"}) == plain
    assert _key({"statuses": ["Open"], "page_size": 5, "page_number": 3}) == plain
    assert _key({"statuses": ["Won"], "sort_by": "name"}) != plain
