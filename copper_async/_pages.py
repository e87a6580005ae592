"""The seam between the engine and whatever sends its requests.

The engine (and the export and sync jobs above it) depend on
:class:`PageSource` alone: a :class:`~copper_async.client.CopperClient` is
one, and so is any test double that answers pages. Everything the engine
reads of a page is declared on :class:`RawPage`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import attrs

__all__ = ["PageSource", "RawPage"]


@attrs.frozen
class RawPage:
    """One search response: the records as plain dicts, and facts about it.

    ``total`` is ``X-PW-TOTAL`` (None when absent or untrustworthy);
    ``elapsed`` the seconds the successful attempt took on the client's
    clock; ``nbytes`` the body size; ``attempts`` how many sends it took;
    ``rate_limited`` how many of them were answered 429.
    """

    records: list[dict[str, Any]]
    total: int | None
    status: int
    elapsed: float
    nbytes: int
    attempts: int = 1
    rate_limited: int = 0
    server_date: float | None = None  # the answer's ``Date``: the API's clock


class PageSource(Protocol):
    """What the engine needs of a client: one page for one body, and whose data it is."""

    @property
    def base_url(self) -> str:
        """The API root the pages come from (part of an export's or sync's identity)."""
        ...

    @property
    def user_email(self) -> str:
        """The account the pages belong to (only ever stored as a digest)."""
        ...

    async def fetch_page(
        self,
        body: Mapping[str, Any],
        *,
        path: str = ...,
        context: Mapping[str, Any] | None = None,
    ) -> RawPage:
        """POST ``body`` to ``path`` under the API root; retried, paced, translated."""
        ...
