"""The mirror's errors: every one a :class:`~copper_async.exceptions.CopperError`.

::

    CopperError
    └── StoreError               the database cannot be used: bad URL, unreachable,
        │                        refused login, read-only, disk full, lost mid-run
        ├── StoreBusyError         another run of this job holds the database
        └── SchemaMismatchError    a database of another tool or schema version

A failed run leaves what it committed whole: the next run continues from it.
Messages name the database without its password.
"""

from __future__ import annotations

from copper_async.exceptions import CopperError

__all__ = ["SchemaMismatchError", "StoreBusyError", "StoreError"]


class StoreError(CopperError):
    """The mirror's database cannot be opened, read or written."""


class StoreBusyError(StoreError):
    """Another sync of the same database and job is running."""


class SchemaMismatchError(StoreError):
    """The database belongs to another tool or another schema version: never altered."""
