"""When the API's total (``X-PW-TOTAL``) is trusted, and how far.

Copper documents its total as an upper bound, and it may be capped at the
search cap, absent, or plain wrong. What the totals have shown so far:

* ``absent``: the last first look carried no total. First looks then go to
  the cut page, whose short page tells a window's exact size.
* ``uncapped``: a total above the cap was seen, so totals are not capped and
  a total equal to the cap means the window fits.
* ``matched`` / ``overcount``: a window read in full held exactly its total,
  or fewer. Only matches and no over-count make a cap error's loss exact.
* ``distrusted``: a page held records past the position its own total
  allows. From then on every total is ignored, as if the API sent none.
"""

from __future__ import annotations

import enum

import attrs

from copper_async._planner._events import PageResult

__all__ = ["Totals", "Verdict"]


class Verdict(enum.Enum):
    """What a window read in full says of its exactly known size."""

    MATCH = "match"
    OVERCOUNT = "overcount"  # a total above the records: Copper's documented upper bound
    MISMATCH = "mismatch"


@attrs.define
class Totals:
    absent: bool = False
    uncapped: bool = False
    matched: bool = False
    overcount: bool = False
    distrusted: bool = False

    @property
    def exact(self) -> bool:
        """Whether a total may be taken as a count (for reporting a loss)."""
        return self.matched and not self.overcount

    def usable(self, page: int, page_size: int, result: PageResult) -> tuple[PageResult, bool]:
        """``result`` with its total dropped when totals cannot be trusted, and
        whether this very page proved them wrong."""
        total = result.total
        if total is None:
            return result, False
        proved_wrong = False
        if not self.distrusted:
            through = (page - 1) * page_size + len(result.records)
            if not result.records or through <= total:
                return result, False
            self.distrusted = self.absent = proved_wrong = True
        return PageResult(result.records, None, result.refused), proved_wrong

    def note_first_look(self, result: PageResult) -> None:
        if not result.refused:
            self.absent = result.total is None

    def fits(self, total: int | None, cap: int) -> bool:
        """Whether a window of ``total`` records can be read in full."""
        if total is None:
            return False
        if total > cap:
            self.uncapped = True
        return total < cap or (total == cap and self.uncapped)

    def judge(self, *, from_total: bool, expected: int, count: int) -> Verdict:
        """Learn from a window read in full, sized ``expected``, that held ``count``."""
        if count == expected:
            # An empty window says nothing about how totals count.
            self.matched |= from_total and expected > 0
            return Verdict.MATCH
        if from_total and count < expected:
            self.overcount = True
            return Verdict.OVERCOUNT
        return Verdict.MISMATCH
