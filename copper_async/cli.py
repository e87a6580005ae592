"""The ``copper-async`` command line."""

from __future__ import annotations

import click

from copper_async import __version__

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="copper-async")
def main() -> None:
    """Stream Copper CRM opportunities out of the search API, exactly once."""
