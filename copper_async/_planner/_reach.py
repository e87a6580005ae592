"""How far into a query's results the API has served records.

The API may cap results below the configured ``cap``; where it stops, a page
comes back short, as a window's own last page would. A short page ending at
a position the API has served past in some other query is a window's end for
sure; one ending at or past every position served so far may be the API's
real cap. The planner then reads on from the last value read (one request
when nothing is there), and once that finds records the cap is known.

An API that caps its total at that lower cap too, a whole number of pages,
gives no short page: a window read in full that held just its total looks
the same. Only such a total at or above every total and position seen so far
is read on; a larger total anywhere shows that totals are not capped there.
"""

from __future__ import annotations

import attrs

__all__ = ["Reach"]


@attrs.define
class Reach:
    # The most records any one query was served through (a position, 1-based).
    served: int = 0
    # The API's cap, once records were found past where a window stopped.
    observed_cap: int | None = None
    # The largest total any answer carried.
    top_total: int = 0

    def note(self, page: int, page_size: int, count: int, total: int | None = None) -> None:
        if count:
            self.served = max(self.served, (page - 1) * page_size + count)
        if total is not None:
            self.top_total = max(self.top_total, total)

    def served_past(self, through: int) -> bool:
        """Whether some query was served records past position ``through``:
        then the API does not cap any query there."""
        return self.served > through

    def may_stop_at(self, through: int, page_size: int, cap: int) -> bool:
        """Whether pages ending ``through`` records in may be the API's cap
        rather than the window's end (a cap below one page is not plausible)."""
        return page_size < through < cap and through >= self.served

    def may_cap_total_at(self, count: int, page_size: int, cap: int) -> bool:
        """Whether a window that held just its total, ``count`` records in full
        pages, may be an API capping its results and its total there."""
        return count % page_size == 0 and max(self.served, self.top_total, page_size) <= count < cap

    def learn(self, stopped_at: int) -> bool:
        """Records lay past ``stopped_at``: it is the API's cap. True when new."""
        if self.observed_cap is not None and self.observed_cap <= stopped_at:
            return False
        self.observed_cap = stopped_at
        return True
