"""The vocabulary of search filters: constants, name enums, date fields, paging.

Pure data, imported by the checks and by :mod:`copper_async.filters`, which
re-exports every public name.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import NamedTuple

#: The id that means "none set" in ``assignee_ids``, ``customer_source_ids``
#: and ``loss_reason_ids`` (no owner, no source, no loss reason).
NONE_SET = -2
#: ``followed`` values.
FOLLOWED = 1
NOT_FOLLOWED = 2

#: The largest page size in wide use; larger values are refused because what
#: Copper does with them (clamp or reject) is undocumented.
MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 200

#: Date bounds are Unix seconds within the range of :class:`datetime.datetime`
#: (0001-01-01 to 9999-12-31 UTC), so every stored bound converts back.
MIN_TIMESTAMP = -62_135_596_800
MAX_TIMESTAMP = 253_402_300_799


class Status(enum.StrEnum):
    """Opportunity status names, as ``statuses`` takes them."""

    OPEN = "Open"
    WON = "Won"
    LOST = "Lost"
    ABANDONED = "Abandoned"


class Priority(enum.StrEnum):
    """Opportunity priority names, as ``priorities`` takes them."""

    NONE = "None"
    LOW = "Low"
    MEDIUM = "Medium"
    HIGH = "High"


class SortField(enum.StrEnum):
    """The fields ``sort_by`` accepts (the reference table's footnote)."""

    ASSIGNEE = "assignee"
    COMPANY_NAME = "company_name"
    CUSTOMER_SOURCE_ID = "customer_source_id"
    DATE_CREATED = "date_created"
    DATE_MODIFIED = "date_modified"
    INACTIVE_DAYS = "inactive_days"
    INTERACTION_COUNT = "interaction_count"
    LAST_INTERACTION = "last_interaction"
    MONETARY_UNIT = "monetary_unit"
    MONETARY_VALUE = "monetary_value"
    NAME = "name"
    PRIMARY_CONTACT = "primary_contact"
    PRIORITY = "priority"
    STAGE = "stage"
    STATUS = "status"


class SortDirection(enum.StrEnum):
    """``sort_direction`` values."""

    ASC = "asc"
    DESC = "desc"


class MatchOption(enum.StrEnum):
    """How a list of tags or dropdown options must match: any one, or all."""

    ANY = "ANY"
    ALL = "ALL"


STATUSES: tuple[str, ...] = tuple(Status)
PRIORITIES: tuple[str, ...] = tuple(Priority)
SORT_FIELDS: tuple[str, ...] = tuple(SortField)
SORT_DIRECTIONS: tuple[str, ...] = tuple(SortDirection)
_OPTIONS: tuple[str, ...] = tuple(MatchOption)
#: ``status_ids`` values by status name (from the reference table).
STATUS_IDS: Mapping[str, int] = {
    Status.OPEN: 0,
    Status.WON: 1,
    Status.LOST: 2,
    Status.ABANDONED: 3,
}


class DateField(enum.Enum):
    """The date filters, and what the engine needs to split a window on one.

    For each member:

    - ``minimum_key`` / ``maximum_key``: the body keys (and
      :class:`OpportunityFilter` attributes) of its inclusive bounds, e.g.
      ``minimum_created_date`` / ``maximum_created_date``;
    - ``record_key``: the record field the bounds match (``date_created``...);
      records carry ``close_date`` as an ``M/D/YYYY`` string, the others as
      Unix seconds or null;
    - ``sort_by``: the ``sort_by`` name that orders results on it, or None
      when the reference lists none;
    - ``splittable``: True only for CREATED and MODIFIED, the fields that are
      both sortable and never null, so that splitting a window on them
      partitions the records (a null date matches no bound and would be lost).
    """

    CREATED = "created"
    MODIFIED = "modified"
    CLOSE = "close"
    INTERACTION = "interaction"
    STAGE_CHANGE = "stage_change"

    @property
    def minimum_key(self) -> str:
        """Body key of the lower bound, e.g. ``minimum_created_date``."""
        return f"minimum_{self.value}_date"

    @property
    def maximum_key(self) -> str:
        """Body key of the upper bound, e.g. ``maximum_created_date``."""
        return f"maximum_{self.value}_date"

    @property
    def record_key(self) -> str:
        """The record field the bounds are matched against."""
        return _DATE_RECORD_KEYS[self]

    @property
    def sort_by(self) -> str | None:
        """The ``sort_by`` value ordering on this field, if the reference has one."""
        return _DATE_SORT_FIELDS.get(self)

    @property
    def splittable(self) -> bool:
        """Whether a window may be split on this field without losing records."""
        return self in (DateField.CREATED, DateField.MODIFIED)


_DATE_RECORD_KEYS: dict[DateField, str] = {
    DateField.CREATED: "date_created",
    DateField.MODIFIED: "date_modified",
    DateField.CLOSE: "close_date",
    DateField.INTERACTION: "date_last_contacted",
    DateField.STAGE_CHANGE: "date_stage_changed",
}
# "last_interaction" probably orders on date_last_contacted, but nothing in the
# reference shows it, so INTERACTION is not claimed sortable.
_DATE_SORT_FIELDS: dict[DateField, str] = {
    DateField.CREATED: SortField.DATE_CREATED.value,
    DateField.MODIFIED: SortField.DATE_MODIFIED.value,
}


class Paging(NamedTuple):
    """``page_number`` and ``page_size`` read from a body; None when absent."""

    page_number: int | None
    page_size: int | None
