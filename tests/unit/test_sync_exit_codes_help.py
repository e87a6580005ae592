"""The sync's help names every cause its exit codes are given for."""

from __future__ import annotations

import re

import pytest

from copper_async import CopperError, InvalidRequestError, ResponseFormatError
from copper_async.sync._cli import SYNC_EXIT_CODES_HELP, _exit_code


def _line_of(code: int) -> str:
    lines = SYNC_EXIT_CODES_HELP.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"\s*{code}\s", line))
    end = start + 1
    while end < len(lines) and not re.match(r"\s*\d+\s", lines[end]):
        end += 1  # the code's continuation lines
    return " ".join(lines[start:end])


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (InvalidRequestError("Copper rejected the request", status=404), "Copper rejected"),
        (InvalidRequestError("Copper rejected the request", status=422), "--base-url"),
        (ResponseFormatError("not a JSON array"), "not search results"),
    ],
)
def test_the_code_given_for_an_error_is_described_with_its_cause(
    error: CopperError, cause: str
) -> None:
    assert cause in _line_of(_exit_code(error))
