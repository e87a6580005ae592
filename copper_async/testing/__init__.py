"""An embedded Copper-compatible search server, for tests, demos and benchmarks.

``Dataset`` holds the records (generated, loaded from JSON lines, or given),
``FakeCopperServer`` serves them on loopback like Copper's
``/opportunities/search``, with its cap, its total header and, on request,
rate limits, faults, latency and drift.
"""

from copper_async.testing._dataset import Changes, Dataset, HotSpot
from copper_async.testing._faults import FAULT_KINDS, DriftPlan, Fault, FaultPlan
from copper_async.testing._query import Paging, Query, QueryError, parse_search_body
from copper_async.testing._server import (
    CHANGES_ROUTE,
    SEARCH_ROUTE,
    STATS_ROUTE,
    TRUTH_ROUTE,
    FakeCopperServer,
    FakeServerOptions,
)

__all__ = [
    "CHANGES_ROUTE",
    "FAULT_KINDS",
    "SEARCH_ROUTE",
    "STATS_ROUTE",
    "TRUTH_ROUTE",
    "Changes",
    "Dataset",
    "DriftPlan",
    "FakeCopperServer",
    "FakeServerOptions",
    "Fault",
    "FaultPlan",
    "HotSpot",
    "Paging",
    "Query",
    "QueryError",
    "parse_search_body",
]
