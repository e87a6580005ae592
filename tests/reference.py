"""Load the 22 example requests and answers from Copper's reference page.

The page (``tests/data/copper_opportunities_search_reference.txt``) is Copper's
own documentation of ``POST /opportunities/search``: each example is a curl
command whose ``--data`` is the request body, followed by the JSON array Copper
answered with. Tests replay them against the records, the filters and the fake
server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["REFERENCE_PAGE", "ReferenceExample", "reference_examples", "reference_records"]

REFERENCE_PAGE = Path(__file__).parent / "data" / "copper_opportunities_search_reference.txt"


@dataclass(frozen=True)
class ReferenceExample:
    title: str
    body: dict[str, Any]
    records: list[dict[str, Any]]


@cache
def reference_examples() -> tuple[ReferenceExample, ...]:
    lines = REFERENCE_PAGE.read_text(encoding="utf-8").splitlines()
    examples: list[ReferenceExample] = []
    decoder = json.JSONDecoder()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("curl "):
            i += 1
            continue
        # The title is the nearest line above ending in the pilcrow.
        title = next(
            (lines[j].rstrip("¶") for j in range(i - 1, -1, -1) if lines[j].endswith("¶")),
            "",
        )
        while not lines[i].startswith("--data "):
            i += 1
        data_lines = [lines[i].removeprefix('--data "')]
        while not data_lines[-1].endswith('}"'):
            i += 1
            data_lines.append(lines[i])
        data_lines[-1] = data_lines[-1].removesuffix('"')
        body = json.loads("\n".join(data_lines).replace('\\"', '"'))
        i += 1
        rest = "\n".join(lines[i:])
        records, consumed = decoder.raw_decode(rest)
        i += rest[:consumed].count("\n") + 1
        examples.append(ReferenceExample(title=title, body=body, records=records))
    return tuple(examples)


def reference_records() -> list[dict[str, Any]]:
    """Every record of every example, in page order (the same id may recur)."""
    return [record for example in reference_examples() for record in example.records]
