"""An incremental mirror of Copper opportunities in a local database."""

from copper_async.sync._bookmark import OVERLAP, Mode

__all__ = ["OVERLAP", "Mode"]
