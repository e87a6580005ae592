"""A Singer tap of Copper opportunities: ``copper-async tap`` (or ``tap-copper-async``).

It runs the cap-splitting search, so a pipeline gets every record once
however many there are, and reads incrementally with the bookmark rules the
mirror shares (:mod:`copper_async.sync`). Any Singer target loads its output;
Meltano runs it as a custom extractor (capabilities: catalog, discover,
state, about).
"""

from copper_async.singer._about import about
from copper_async.singer._catalog import STREAM, CatalogEntry, discover, select_entry
from copper_async.singer._config import SETTINGS, TapConfig
from copper_async.singer._schema import opportunity_schema, record_converter
from copper_async.singer._state import read_bookmark, with_bookmark
from copper_async.singer._tap import TapResult, run_tap

__all__ = [
    "SETTINGS",
    "STREAM",
    "CatalogEntry",
    "TapConfig",
    "TapResult",
    "about",
    "discover",
    "opportunity_schema",
    "read_bookmark",
    "record_converter",
    "run_tap",
    "select_entry",
    "with_bookmark",
]
