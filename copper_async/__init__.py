"""copper_async: stream Copper CRM opportunities, exactly once, past the search cap."""

from __future__ import annotations

import logging

from copper_async._clock import Clock, LoopClock
from copper_async._custom_fields import CustomFieldDefinition, CustomFieldNames, CustomFieldOption
from copper_async._engine import ResultPage, Search
from copper_async._multi import MultiSearch
from copper_async._options import SearchOptions
from copper_async._ratelimit import RateLimit
from copper_async._records import ABSENT, AbsentType, CustomFieldValue, LeadConversion, Opportunity
from copper_async._retry import RetryPolicy
from copper_async._stats import SearchStats
from copper_async._writers import read_list_cell
from copper_async.client import ClientStats, CopperClient, RawPage, SearchPage
from copper_async.exceptions import (
    APIError,
    AuthenticationError,
    CapExceededError,
    CheckpointError,
    ClientClosedError,
    CopperError,
    ExportBusyError,
    InvalidFilterError,
    InvalidInputError,
    InvalidOptionError,
    InvalidRequestError,
    OutputClosedError,
    OutputError,
    RateLimitedError,
    RecordError,
    RequestTimeoutError,
    ResponseError,
    ResponseFormatError,
    ResponseTooLargeError,
    SchemaMismatchError,
    SearchCapWarning,
    ServerError,
    StoreBusyError,
    StoreError,
    TransportError,
)
from copper_async.filters import (
    FOLLOWED,
    NONE_SET,
    NOT_FOLLOWED,
    CustomFieldFilter,
    DateField,
    OpportunityFilter,
    TagFilter,
)

__version__ = "0.1.0.dev0"

# A library's convention: the application decides where log records go; without
# its configuration nothing reaches stderr through logging's last-resort handler.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "ABSENT",
    "FOLLOWED",
    "NONE_SET",
    "NOT_FOLLOWED",
    "APIError",
    "AbsentType",
    "AuthenticationError",
    "CapExceededError",
    "CheckpointError",
    "ClientClosedError",
    "ClientStats",
    "Clock",
    "CopperClient",
    "CopperError",
    "CustomFieldDefinition",
    "CustomFieldFilter",
    "CustomFieldNames",
    "CustomFieldOption",
    "CustomFieldValue",
    "DateField",
    "ExportBusyError",
    "InvalidFilterError",
    "InvalidInputError",
    "InvalidOptionError",
    "InvalidRequestError",
    "LeadConversion",
    "LoopClock",
    "MultiSearch",
    "Opportunity",
    "OpportunityFilter",
    "OutputClosedError",
    "OutputError",
    "RateLimit",
    "RateLimitedError",
    "RawPage",
    "RecordError",
    "RequestTimeoutError",
    "ResponseError",
    "ResponseFormatError",
    "ResponseTooLargeError",
    "ResultPage",
    "RetryPolicy",
    "SchemaMismatchError",
    "Search",
    "SearchCapWarning",
    "SearchOptions",
    "SearchPage",
    "SearchStats",
    "ServerError",
    "StoreBusyError",
    "StoreError",
    "TagFilter",
    "TransportError",
    "__version__",
    "read_list_cell",
]
