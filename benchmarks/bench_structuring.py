"""Benchmark: structuring pages of opportunity records, against a plain cattrs baseline.

The baseline is what the engine would cost with almost no typing: a plain
``cattrs.preconf.orjson.make_converter()`` structuring an attrs class with the same
fields typed as plain ints / strs / lists (``list[Any]`` for the nested arrays, so
nothing below the top level is structured), no datetime or date conversion.
Ours is ``copper_async._records.structure_page`` (and, for the round trip,
``Opportunity.to_dict`` on each record): the package's preconf orjson converter, in
cattrs' detailed validation mode. For information, a copy of that converter with
detailed validation off structures the page too: it shows what turning it off would
save on valid records. All run in the same process on the same deterministic
records, interleaved.

Target: ``structure_page`` reads at least 10,000 records/s; Copper delivers at most
600 (180 requests/min x 200 records).

Run ``python benchmarks/bench_structuring.py --help``.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import platform
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from cattrs.preconf.orjson import make_converter

from copper_async._converter import converter
from copper_async._records import Opportunity, structure_page

__all__ = [
    "TARGET_RECORDS_PER_SECOND",
    "BaselineOpportunity",
    "generate_records",
    "main",
    "measure",
]

TARGET_RECORDS_PER_SECOND = 10_000

# One measurement runs the case enough times to last at least this long.
_MIN_SAMPLE_SECONDS = 0.005


@attrs.define
class BaselineOpportunity:
    """The same fields as Opportunity, typed as their plain JSON types."""

    id: int
    name: str | None = None
    assignee_id: int | None = None
    close_date: str | None = None
    company_id: int | None = None
    company_name: str | None = None
    customer_source_id: int | None = None
    details: str | None = None
    loss_reason_id: int | None = None
    pipeline_id: int | None = None
    pipeline_is_revenue: bool | None = None
    pipeline_stage_id: int | None = None
    pipeline_type: str | None = None
    primary_contact_id: int | None = None
    priority: str | None = None
    status: str | None = None
    tags: list[str] | None = None
    interaction_count: int | None = None
    monetary_unit: str | None = None
    monetary_value: int | float | None = None
    converted_unit: str | None = None
    converted_value: int | float | None = None
    win_probability: int | None = None
    date_stage_changed: int | None = None
    date_last_contacted: int | None = None
    leads_converted_from: list[Any] | None = None
    date_lead_created: int | None = None
    date_created: int | None = None
    date_modified: int | None = None
    custom_fields: list[Any] | None = None


def _maybe(rng: random.Random, value: Any, null_rate: float = 0.3) -> Any:
    return None if rng.random() < null_rate else value


def _custom_value(rng: random.Random) -> Any:
    kind = rng.randrange(8)
    if kind == 0:
        return rng.random() < 0.5
    if kind == 1:
        return rng.randrange(1, 10**6)
    if kind == 2:
        return round(rng.uniform(0, 10**5), 2)
    if kind == 3:
        return rng.choice(["Text fields are 255 chars or less!", "yes", "Blue", ""])
    if kind == 4:
        return [rng.randrange(1, 50) for _ in range(rng.randrange(4))]
    return None  # most custom fields are empty in real records


def generate_records(count: int, *, seed: int = 20240601) -> list[dict[str, Any]]:
    """``count`` realistic record dicts (the shapes of Copper's reference page)."""
    rng = random.Random(seed)
    definitions = [rng.randrange(1, 300_000) for _ in range(rng.randrange(3, 11))]
    records: list[dict[str, Any]] = []
    for index in range(count):
        created = rng.randrange(1_400_000_000, 1_730_000_000)
        record: dict[str, Any] = {
            "id": 2_000_000 + index,
            "name": f"{rng.randrange(1, 500)} Office Chairs {index}",
            "assignee_id": _maybe(rng, rng.randrange(1, 10**6)),
            "close_date": _maybe(
                rng, f"{rng.randrange(1, 13)}/{rng.randrange(1, 29)}/{rng.randrange(2015, 2026)}"
            ),
            "company_id": _maybe(rng, rng.randrange(1, 10**7)),
            "company_name": _maybe(rng, "Dunder Mifflin (sample)"),
            "customer_source_id": _maybe(rng, rng.randrange(1, 10**6)),
            "details": _maybe(rng, "Opportunities are created for People and Companies.", 0.6),
            "loss_reason_id": _maybe(rng, rng.randrange(1, 100), 0.8),
            "pipeline_id": rng.randrange(1, 300_000),
            "pipeline_is_revenue": rng.random() < 0.5,
            "pipeline_stage_id": rng.randrange(1, 10**6),
            "pipeline_type": "opportunity",
            "primary_contact_id": _maybe(rng, rng.randrange(1, 10**7)),
            "priority": rng.choice(["None", "Low", "Medium", "High"]),
            "status": rng.choice(["Open", "Won", "Lost", "Abandoned"]),
            "tags": [rng.choice(["tag1", "beta", "enterprise"]) for _ in range(rng.randrange(3))],
            "interaction_count": rng.randrange(0, 50),
            "monetary_unit": _maybe(rng, "USD"),
            "monetary_value": _maybe(
                rng, rng.choice([75000, 50000, 250000, 5000.0, round(rng.uniform(1, 10**6), 2)])
            ),
            "win_probability": rng.randrange(0, 101),
            "date_stage_changed": created + rng.randrange(0, 10**7),
            "date_last_contacted": _maybe(rng, created + rng.randrange(0, 10**7), 0.5),
            "leads_converted_from": [
                {"lead_id": rng.randrange(1, 10**7), "converted_timestamp": created}
                for _ in range(rng.random() < 0.2)
            ],
            "date_lead_created": _maybe(rng, created - rng.randrange(0, 10**6), 0.7),
            "date_created": created,
            "date_modified": created + rng.randrange(0, 10**8),
            "custom_fields": [
                {"custom_field_definition_id": definition, "value": _custom_value(rng)}
                for definition in definitions
            ],
        }
        if rng.random() < 0.2:  # some records lack these, as in the reference page
            del record["monetary_unit"], record["date_stage_changed"]
        records.append(record)
    return records


def _calibrate(func: Callable[[], object]) -> int:
    """How many calls one sample needs to last at least _MIN_SAMPLE_SECONDS."""
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            func()
        if time.perf_counter() - start >= _MIN_SAMPLE_SECONDS:
            return loops
        loops *= 2


def measure(funcs: list[Callable[[], object]], *, repeat: int) -> list[float]:
    """Best seconds per call of each function over ``repeat`` rounds.

    Rounds interleave the functions, so a machine that slows down or speeds up
    affects every one alike; gc is paused while timing, as timeit does.
    """
    loops = [_calibrate(func) for func in funcs]
    best = [float("inf")] * len(funcs)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            for index, (func, count) in enumerate(zip(funcs, loops, strict=True)):
                start = time.perf_counter()
                for _ in range(count):
                    func()
                best[index] = min(best[index], (time.perf_counter() - start) / count)
    finally:
        if gc_was_enabled:
            gc.enable()
    return best


def _types_equal(left: Any, right: Any) -> bool:
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(
            _types_equal(v, right[k]) for k, v in left.items()
        )
    if isinstance(left, list):
        return len(left) == len(right) and all(map(_types_equal, left, right))
    return bool(left == right)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Records/s of copper_async._records.structure_page (and the to_dict round "
        "trip) against a plain cattrs preconf-orjson baseline, in the same process."
    )
    parser.add_argument("--records", type=int, default=200, help="records per page (200)")
    parser.add_argument("--repeat", type=int, default=20, help="samples per case, best kept (20)")
    parser.add_argument("--seed", type=int, default=20240601, help="record generator seed")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    return parser


Case = tuple[str, str, Callable[[], object]]


def _cases(page: list[dict[str, Any]]) -> list[Case]:
    """(operation, implementation, one call on the whole page) for every measurement."""
    baseline = make_converter()
    page_type = list[BaselineOpportunity]
    base_structure = baseline.get_structure_hook(page_type)
    base_unstructure = baseline.get_unstructure_hook(page_type)
    undetailed = converter.copy(detailed_validation=False)
    undetailed_structure = undetailed.get_structure_hook(list[Opportunity])
    return [
        ("structure", "baseline", lambda: base_structure(page, page_type)),
        ("structure", "copper_async", lambda: structure_page(page)),
        (
            "structure",
            "no detailed validation",
            lambda: undetailed_structure(page, list[Opportunity]),
        ),
        ("round trip", "baseline", lambda: base_unstructure(base_structure(page, page_type))),
        (
            "round trip",
            "copper_async",
            lambda: [Opportunity.to_dict(record) for record in structure_page(page)],
        ),
    ]


def _print_report(results: list[dict[str, Any]], ratios: dict[str, float], rate: float) -> None:
    print(f"{'operation':<12} {'implementation':<22} {'records/s':>12} {'ours/baseline':>14}")
    for result in results:
        ratio = result.get("ours/baseline")
        shown = "" if ratio is None else f"{ratio:.2f}x"
        print(
            f"{result['operation']:<12} {result['implementation']:<22} "
            f"{result['records_per_second']:>12,.0f} {shown:>14}"
        )
    print("ours/baseline is a throughput ratio: above 1.00 means ours costs less per record.")
    verdict = "PASS" if rate >= TARGET_RECORDS_PER_SECOND else "FAIL"
    print(
        f"target: structure_page >= {TARGET_RECORDS_PER_SECOND:,} records/s: {rate:,.0f} "
        f"({verdict}); ratio against the plain cattrs baseline {ratios['structure']:.2f}x"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a table; 0 on success, 1 if a round trip is not exact."""
    args = _parser().parse_args(argv)
    if args.records < 1 or args.repeat < 1:
        _parser().error("--records and --repeat must be at least 1")
    page = generate_records(args.records, seed=args.seed)

    ours_round_trip = [record.to_dict() for record in structure_page(page)]
    if not _types_equal(ours_round_trip, page):
        print("error: structure_page/to_dict round trip is not exact", file=sys.stderr)
        return 1

    cases = _cases(page)
    timings = measure([func for _, _, func in cases], repeat=args.repeat)
    results = [
        {
            "operation": operation,
            "implementation": name,
            "seconds_per_page": seconds,
            "records_per_second": args.records / seconds,
        }
        for (operation, name, _), seconds in zip(cases, timings, strict=True)
    ]
    rates = {(r["operation"], r["implementation"]): r["records_per_second"] for r in results}
    for result in results:
        if result["implementation"] != "baseline":
            base = rates[result["operation"], "baseline"]
            result["ours/baseline"] = result["records_per_second"] / base
    ratios = {
        op: rates[op, "copper_async"] / rates[op, "baseline"] for op in ("structure", "round trip")
    }
    structure_rate = rates["structure", "copper_async"]

    print(
        f"{args.records} records/page, best of {args.repeat}, Python {platform.python_version()}, "
        f"cattrs {importlib.metadata.version('cattrs')}"
    )
    _print_report(results, ratios, structure_rate)
    if args.json is not None:
        payload = {
            "records": args.records,
            "repeat": args.repeat,
            "seed": args.seed,
            "python": platform.python_version(),
            "results": results,
            "ratios": ratios,
            "target": {
                "structure_page records/s": TARGET_RECORDS_PER_SECOND,
                "measured": structure_rate,
                "passed": structure_rate >= TARGET_RECORDS_PER_SECOND,
            },
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
