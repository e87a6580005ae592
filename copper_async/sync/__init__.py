"""An incremental mirror of Copper opportunities in a local database.

``await run_sync(client, open_store("copper.sqlite"))`` loads every record
the first time, then only what changed since (see
:mod:`copper_async.sync._bookmark` for the rules), upserting by id. Stores:
SQLite (standard library, the default) and PostgreSQL (``psycopg``, the
``copper-async[postgres]`` extra).
"""

from copper_async.exceptions import SchemaMismatchError, StoreBusyError, StoreError
from copper_async.sync._bookmark import OVERLAP, Mode
from copper_async.sync._open import open_store
from copper_async.sync._runner import SyncResult, run_sync
from copper_async.sync._schema import COLUMNS, SCHEMA_VERSION, STATE_TABLE, TABLE
from copper_async.sync._sqlite import SQLiteStore
from copper_async.sync._store import JobState, PageCounts, RunProgress, Store

__all__ = [
    "COLUMNS",
    "OVERLAP",
    "SCHEMA_VERSION",
    "STATE_TABLE",
    "TABLE",
    "JobState",
    "Mode",
    "PageCounts",
    "RunProgress",
    "SQLiteStore",
    "SchemaMismatchError",
    "Store",
    "StoreBusyError",
    "StoreError",
    "SyncResult",
    "open_store",
    "run_sync",
]
