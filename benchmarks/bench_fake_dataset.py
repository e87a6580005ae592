"""Benchmark: is the fake server's Dataset fast and small enough at a million records?

Measured without HTTP (the data side alone), with the targets beside them:

- ready: ``Dataset.generate(--records)`` (target < 30 s) and the process's
  resident memory once ready (target < 3 GB), with the mean JSON size a record;
- the first page of a NEW query (nothing cached: ``search`` + the slice +
  ``encode_page``), target < 1 s each: the streaming client's windows (a
  ``date_created`` or ``date_modified`` range of up to 100,000 records
  sorted by that date, both directions, with and without another filter),
  and generic queries that scan the columns (sorted by name, by value, a
  custom field, tags ALL, every record by name);
- each further page of the same query (cached ``search`` + slice +
  ``encode_page`` of 200 records), mean and max over ``--pages`` pages
  spread over the result (target < 5 ms);
- drift: the mean time of one ``insert_generated``, ``delete`` and ``modify``
  (each keeps the date orders up to date and clears the cache).

As ``copper-async demo`` does, the records are moved out of the garbage
collector's reach once generated (``gc.freeze()``).

Run ``python benchmarks/bench_fake_dataset.py --help``.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from copper_async.testing import Dataset, parse_search_body

__all__ = ["TARGETS", "main", "measure"]

#: Figure -> the limit it must stay under (seconds, or bytes for memory).
TARGETS: dict[str, float] = {
    "ready_seconds": 30.0,
    "rss_bytes": 3e9,
    "first_page_seconds": 1.0,
    "further_page_mean_seconds": 0.005,
}
WINDOW = 100_000  # the search cap: the largest window the streaming client reads
PAGE_SIZE = 200


def _queries(dataset: Dataset) -> dict[str, dict[str, Any]]:
    """The bodies timed: windows like the streaming client's, then generic ones."""
    ids = dataset.ids()
    middle = dataset.record(ids[len(ids) // 2])
    bodies: dict[str, dict[str, Any]] = {}
    for field, bound in (("date_created", "created_date"), ("date_modified", "modified_date")):
        # Sort by the field (an index walk), then take a window of up to WINDOW records.
        order = dataset.search(parse_search_body({"sort_by": field})[0])
        size = max(min(WINDOW, len(order) // 2), 1)
        first = (len(order) - size) // 2
        low = dataset.record(order[first])[field]
        high = dataset.record(order[first + size - 1])[field]
        window = {f"minimum_{bound}": low, f"maximum_{bound}": high, "sort_by": field}
        bodies[f"{field} window asc"] = window
        bodies[f"{field} window desc"] = {**window, "sort_direction": "desc"}
    bodies["date_created window + statuses"] = {
        **bodies["date_created window asc"],
        "statuses": ["Open", "Won"],
    }
    bodies["every record, by name"] = {"sort_by": "name"}
    bodies["statuses, by value desc"] = {
        "statuses": ["Open"],
        "sort_by": "monetary_value",
        "sort_direction": "desc",
    }
    bodies["custom multi-select ALL, by name"] = {
        "custom_fields": [{"custom_field_definition_id": 12, "value": [8, 10], "option": "ALL"}]
    }
    bodies["tags + assignees, by company"] = {
        "tags": {"option": "ANY", "value": ["tag1", "q4"]},
        "assignee_ids": [-2, 1, 2, 3],
        "sort_by": "company_name",
    }
    bodies["name exact"] = {"name": middle["name"]}
    bodies["200 ids, by last interaction"] = {
        "ids": ids[:: max(len(ids) // 200, 1)][:200],
        "sort_by": "last_interaction",
    }
    return bodies


def _page(dataset: Dataset, body: dict[str, Any], number: int) -> bytes:
    """What the server's handler does for one page."""
    query, _ = parse_search_body(body)
    ids = dataset.search(query)
    start = (number - 1) * PAGE_SIZE
    return dataset.encode_page(ids[start : start + PAGE_SIZE])


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _per_call(action: Callable[[int], object], arguments: Sequence[int]) -> float:
    """The mean time of ``action`` over ``arguments``."""
    started = time.perf_counter()
    for argument in arguments:
        action(argument)
    return (time.perf_counter() - started) / max(len(arguments), 1)


def _modify(dataset: Dataset, rng: random.Random, record_id: int) -> None:
    dataset.modify(record_id, rng)


def measure(records: int, *, seed: int = 1, pages: int = 50) -> dict[str, Any]:
    """Every figure, as a JSON-ready dict."""
    process = psutil.Process()
    rss_before = process.memory_info().rss
    started, cpu_started = time.perf_counter(), time.process_time()
    dataset = Dataset.generate(records, seed=seed)
    ready = time.perf_counter() - started
    # CPU time too: on a shared machine the wall time also counts other processes' turns.
    ready_cpu = time.process_time() - cpu_started
    gc.freeze()
    rss = process.memory_info().rss
    sample = dataset.ids()[:: max(len(dataset) // 2_000, 1)]
    record_bytes = len(dataset.encode_page(sample)) / max(len(sample), 1)

    rows: list[dict[str, Any]] = []
    for label, body in _queries(dataset).items():
        first = _timed(functools.partial(_page, dataset, body, 1))
        matched = len(dataset.search(parse_search_body(body)[0]))
        last_page = max((matched + PAGE_SIZE - 1) // PAGE_SIZE, 1)
        numbers = sorted({1 + i * (last_page - 1) // max(pages - 1, 1) for i in range(pages)})
        further = [_timed(functools.partial(_page, dataset, body, n)) for n in numbers]
        rows.append(
            {
                "query": label,
                "matched": matched,
                "first_page_seconds": first,
                "further_mean_seconds": statistics.fmean(further),
                "further_max_seconds": max(further),
            }
        )

    rng = random.Random(seed)
    drift: dict[str, float] = {}
    operations = 200
    drift["insert_seconds"] = _per_call(lambda _: dataset.insert_generated(rng), range(operations))
    victims = rng.sample(dataset.ids(), 2 * operations)
    drift["delete_seconds"] = _per_call(dataset.delete, victims[:operations])
    drift["modify_seconds"] = _per_call(
        functools.partial(_modify, dataset, rng), victims[operations:]
    )
    window = _queries(dataset)["date_modified window asc"]
    drift["first_page_after_drift_seconds"] = _timed(lambda: _page(dataset, window, 1))

    worst_first = max(float(row["first_page_seconds"]) for row in rows)
    # The mean: a single page's maximum mostly measures the scheduler on a shared machine.
    worst_further = max(float(row["further_mean_seconds"]) for row in rows)
    checks = {
        "ready_seconds": ready,
        "rss_bytes": rss,
        "first_page_seconds": worst_first,
        "further_page_mean_seconds": worst_further,
    }
    return {
        "benchmark": "fake_dataset",
        "config": {"records": records, "seed": seed, "pages": pages, "page_size": PAGE_SIZE},
        "ready_seconds": ready,
        "ready_cpu_seconds": ready_cpu,
        "rss_bytes": rss,
        "rss_growth_bytes": rss - rss_before,
        "record_json_bytes": record_bytes,
        "queries": rows,
        "drift": drift,
        "checks": [
            {"name": name, "value": value, "target": TARGETS[name], "passed": value < TARGETS[name]}
            for name, value in checks.items()
        ],
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": psutil.cpu_count(),
        },
    }


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def _print(result: dict[str, Any]) -> None:
    config = result["config"]
    print(
        f"Dataset.generate({config['records']:,}): ready in {result['ready_seconds']:.1f} s "
        f"({result['ready_cpu_seconds']:.1f} s of CPU), "
        f"RSS {result['rss_bytes'] / 1e9:.2f} GB, "
        f"{result['record_json_bytes']:.0f} B of JSON a record"
    )
    print()
    header = ("query", "matched", "first page ms", "further mean ms", "further max ms")
    lines = [
        (
            row["query"],
            f"{row['matched']:,}",
            _ms(row["first_page_seconds"]),
            _ms(row["further_mean_seconds"]),
            _ms(row["further_max_seconds"]),
        )
        for row in result["queries"]
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines, strict=True)]
    for index, line in enumerate([header, *lines]):
        cells = [
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells))
        if index == 0:
            print("  ".join("-" * width for width in widths))
    print()
    drift = result["drift"]
    print(
        "drift, mean a call: "
        f"insert {_ms(drift['insert_seconds'])} ms, delete {_ms(drift['delete_seconds'])} ms, "
        f"modify {_ms(drift['modify_seconds'])} ms; a new window page after them "
        f"{_ms(drift['first_page_after_drift_seconds'])} ms"
    )
    print()
    for check in result["checks"]:
        verdict = "ok" if check["passed"] else "MISSED"
        shown = _shown(check["name"], check["value"])
        limit = _shown(check["name"], check["target"])
        print(f"{check['name']:<26} {shown:>10}  (target < {limit})  {verdict}")


def _shown(name: str, value: float) -> str:
    if name.endswith("_bytes"):
        return f"{value / 1e9:.2f} GB"
    return f"{value:.1f} s" if value >= 1 else f"{value * 1000:.1f} ms"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every target is met, 1 otherwise."""
    parser = argparse.ArgumentParser(
        description="Time and size the fake server's Dataset (no HTTP).",
    )
    parser.add_argument(
        "--records", type=_positive, default=1_000_000, help="records to generate (1,000,000)"
    )
    parser.add_argument("--seed", type=int, default=1, help="generation seed (1)")
    parser.add_argument(
        "--pages", type=_positive, default=50, help="further pages timed a query (50)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    options = parser.parse_args(argv)
    result = measure(options.records, seed=options.seed, pages=options.pages)
    _print(result)
    if options.json is not None:
        options.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if all(check["passed"] for check in result["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
