"""The package's logging convention: silent unless the application configures logging."""

from __future__ import annotations

import subprocess
import sys


def test_the_package_logs_nothing_to_stderr_without_configuration() -> None:
    # Logging's last-resort handler prints WARNING and above when no handler
    # is found; the package's NullHandler keeps it from being used.
    code = (
        "import logging, copper_async\n"
        "logging.getLogger('copper_async._engine').warning('should stay silent')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stderr == ""


def test_an_application_handler_still_gets_the_records() -> None:
    code = (
        "import logging, copper_async\n"
        "logging.basicConfig(format='%(name)s %(message)s')\n"
        "logging.getLogger('copper_async._engine').warning('shown')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stderr == "copper_async._engine shown\n"
