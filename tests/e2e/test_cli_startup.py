"""The command line starts without the fake server, which only its own commands need."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from copper_async.cli import _LazyGroup


def python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout


def test_importing_the_cli_does_not_import_the_fake_server() -> None:
    loaded = python(
        "import sys, copper_async.cli; "
        "print(sorted(m for m in sys.modules if m.startswith('copper_async.testing')))"
    )
    assert loaded.strip() == "[]"


@pytest.mark.parametrize(
    ("arguments", "shown"),
    [
        (["--help"], "fake-server  Serve Copper's opportunity search on loopback"),
        (["export", "--help"], "--page-size"),
    ],
)
def test_help_lists_every_command_without_importing_the_fake_server(
    arguments: list[str], shown: str
) -> None:
    output = python(
        "import sys\n"
        "from copper_async.cli import main\n"
        f"try: main({arguments!r})\n"
        "except SystemExit: pass\n"
        "print(any(m.startswith('copper_async.testing') for m in sys.modules))\n"
    )
    assert shown in output
    assert output.splitlines()[-1] == "False"


def test_the_fake_server_command_is_loaded_when_run() -> None:
    output = python(
        "import sys\n"
        "from copper_async.cli import main\n"
        "try: main(['fake-server', '--help'])\n"
        "except SystemExit: pass\n"
        "print('copper_async.testing._command' in sys.modules)\n"
    )
    assert "--generate" in output
    assert output.splitlines()[-1] == "True"


def test_the_command_list_shows_each_lazy_command_s_own_first_help_line() -> None:
    """The list is printed without importing the lazy commands: its lines must
    still say what each command's own help says."""
    for name, (module, attribute, line) in _LazyGroup.lazy.items():
        command = getattr(importlib.import_module(module), attribute)
        assert line == (command.help or "").splitlines()[0], name
