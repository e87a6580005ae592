"""--quiet keeps warnings (an ignored filter key, a cap loss): its help says so."""

from __future__ import annotations

import io
import logging

import click
import pytest

from copper_async._cli_support import _configure_logging
from copper_async.cli import main


@pytest.mark.parametrize("name", ["export", "sync", "demo"])
def test_quiet_help_says_what_it_still_shows(cli_logging: None, name: str) -> None:
    command = main.get_command(click.Context(main), name)
    assert command is not None
    (quiet,) = [param for param in command.params if param.name == "quiet"]
    assert isinstance(quiet, click.Option)
    assert quiet.help == "Only warnings and errors on stderr."
    stderr = io.StringIO()
    _configure_logging(quiet=True, verbose=False, stream=stderr)
    logger = logging.getLogger("copper_async.cli")
    logger.info("a progress line")
    logger.warning("the filter's sort_by is ignored")
    assert stderr.getvalue().endswith("WARNING copper_async.cli: the filter's sort_by is ignored\n")
