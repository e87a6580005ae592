"""``copper-async tap``: the Singer tap command (also installed as ``tap-copper-async``).

Messages go to stdout, logs to stderr; a failure exits non-zero with one
line saying why (the export command's exit codes). Config, state and
catalog are read and checked before any request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
import orjson

from copper_async import AuthenticationError, CopperError, InvalidInputError
from copper_async.singer._about import about_json, about_markdown
from copper_async.singer._catalog import discover as discover_catalog
from copper_async.singer._config import TapConfig
from copper_async.singer._tap import run_tap

__all__ = ["main", "tap"]

_USAGE, _FAILED, _INTERRUPTED = 2, 1, 130


def _fail(code: int, message: str) -> NoReturn:
    click.echo(f"copper-async tap: {message}", err=True)
    sys.exit(code)


def _exit_code(error: CopperError) -> int:
    from copper_async._cli_support import _exit_code as export_exit_code  # loaded by now: no cycle

    return export_exit_code(error)


def _read_json(path: Path | None, what: str) -> Any:
    if path is None:
        return None
    try:
        data = orjson.loads(path.read_bytes())
    except OSError as error:
        _fail(_USAGE, f"cannot read the {what} file {str(path)!r}: {error.strerror}")
    except orjson.JSONDecodeError as error:
        _fail(_USAGE, f"the {what} file {str(path)!r} is not valid JSON: {error}")
    if not isinstance(data, dict):
        _fail(_USAGE, f"the {what} file {str(path)!r} must hold a JSON object")
    return data


def _configure_logging(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("copper_async")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _write(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--state", "state_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--catalog", "catalog_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--properties", "properties_path", hidden=True, type=click.Path(path_type=Path))
@click.option("--discover", is_flag=True, help="Print the catalog and exit.")
@click.option("--about", is_flag=True, help="Print the settings and capabilities and exit.")
@click.option("--format", "format_", type=click.Choice(["json", "markdown"]), default=None)
@click.option("--verbose", "-v", is_flag=True, help="Debug logging (never credentials).")
def tap(
    config_path: Path | None,
    state_path: Path | None,
    catalog_path: Path | None,
    properties_path: Path | None,
    discover: bool,
    about: bool,
    format_: str | None,
    verbose: bool,
) -> None:
    """A Singer tap of Copper opportunities, complete past the search cap.

    \b
    copper-async tap --config CONFIG.json [--state STATE.json] [--catalog CATALOG.json]
    copper-async tap --discover --config CONFIG.json
    copper-async tap --about [--format json|markdown]

    SCHEMA, RECORD and STATE messages are written to stdout as JSON lines;
    logs go to stderr. Config keys: see --about.
    """
    _configure_logging(logging.DEBUG if verbose else logging.INFO)
    if about:
        _write((about_markdown() if format_ == "markdown" else about_json()).encode() + b"\n")
        return
    if format_ is not None:
        _fail(_USAGE, "--format goes with --about")
    if discover:
        if config_path is not None:
            _config(_read_json(config_path, "config"))
        _write(orjson.dumps(discover_catalog(), option=orjson.OPT_INDENT_2) + b"\n")
        return
    if config_path is None:
        _fail(_USAGE, "--config CONFIG.json is required (or --discover / --about)")
    config = _config(_read_json(config_path, "config"))
    state = _read_json(state_path, "state")
    catalog = _read_json(catalog_path or properties_path, "catalog")
    try:
        asyncio.run(run_tap(config, sys.stdout.buffer, state=state, catalog=catalog))
    except KeyboardInterrupt:
        _fail(_INTERRUPTED, "interrupted; the last STATE written is safe to restart from")
    except BrokenPipeError:
        # Nothing more can go to stdout, not even the flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        _fail(_FAILED, "stdout was closed (did the target stop?)")
    except InvalidInputError as error:
        _fail(_USAGE, str(error))
    except AuthenticationError as error:
        _fail(
            _exit_code(error),
            f"{error}: check access_token and user_email in the config "
            "(or COPPER_ACCESS_TOKEN and COPPER_USER_EMAIL)",
        )
    except CopperError as error:
        _fail(_exit_code(error), str(error))


def _config(data: Any) -> TapConfig:
    try:
        return TapConfig.from_mapping(data)
    except InvalidInputError as error:
        _fail(_USAGE, f"bad config: {error}")


def main() -> None:
    """The ``tap-copper-async`` entry point: the tap command on its own."""
    tap(prog_name="tap-copper-async")
