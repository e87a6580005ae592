"""Benchmark: what an incremental sync costs, how fast the stores write, memory by N.

1. **Incremental cost.** N generated records are mirrored into SQLite, then
   for each k (0, 1,000, 50,000, 150,000 by default) the fake server's
   clock moves a day, k records are edited there over that day (each
   ``date_modified`` a second of it) and the mirror syncs again. Requests are counted by the server;
   target: <= ceil(k/200) + 3 whatever N (past the cap the engine splits).
   The table is checked against the server's records after each run.
2. **Write throughput.** The same pages of records (decoded JSON, as the
   engine hands them over) are written into each store by the store's own
   path (``upsert_page`` committing the run's progress, which converts, checks
   what is stored and commits page by page), and, as the baseline, as ready-made
   rows by a bare bulk insert into a fresh table of the same schema
   (``executemany`` for SQLite, ``COPY`` for PostgreSQL), committed page by
   page too; both timed through their close, each after ``os.sync()``; nine
   rounds of each (the ratio of the medians; each round's own ratio, ours
   against the bare insert right after it, is printed and its range and
   median go with the result, as this machine's noise is large). Targets:
   ours >= 0.7 of the bare rate and >= 10,000 records/s.
   PostgreSQL runs on a throwaway local cluster (tests/pg.py).
3. **Memory.** ``copper-async sync`` into a new SQLite file, as a child
   process against a fake server process, for two sizes; its own peak RSS
   (``_common.run_child``). Target: the larger size's peak <= 1.2 x the smaller's.

4. **Reliability** (``--stress``, not part of the default run): a 250,000-record
   full load and then an incremental run, each killed with SIGKILL at 5
   random moments (the server's Nth request) and rerun; after each kill the
   bookmark is never ahead, and at the end the table equals the server's.

Run ``python benchmarks/bench_sync.py --help`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

import _common  # noqa: E402
import orjson  # noqa: E402

from copper_async import CopperClient  # noqa: E402
from copper_async.sync import RunProgress, run_sync  # noqa: E402
from copper_async.sync._clock import SettableClock  # noqa: E402
from copper_async.sync._open import open_store  # noqa: E402
from copper_async.sync._store import ALL_COLUMNS  # noqa: E402
from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions  # noqa: E402

DAY = 86_400


# -- 1. incremental cost ---------------------------------------------------------------


async def _incremental(records: int, ks: list[int], cap: int, folder: Path) -> list[list[Any]]:
    dataset = Dataset.generate(records, seed=3)
    clock = SettableClock(float(dataset.end + DAY))
    rows: list[list[Any]] = []
    db = folder / "cost.sqlite"
    async with FakeCopperServer(dataset, options=FakeServerOptions(cap=cap)) as server:
        server.clock = clock
        async with CopperClient(
            access_token="fake-token",
            user_email="fake@example.com",
            base_url=server.url,
            rate_limit=None,
        ) as client:

            async def sync() -> Any:
                server.reset_stats()
                began = time.perf_counter()
                result = await run_sync(client, open_store(str(db)), cap=cap, clock=clock)
                return result, server.stats["requests"], time.perf_counter() - began

            _load, requests, seconds = await sync()
            rows.append(["full load", records, requests, math.ceil(records / 200), seconds, True])
            for k in ks:
                clock.advance(DAY)
                # A day of users' edits, spread over its seconds (a same-second
                # burst is tested for correctness, not cost).
                server.play_changes(edits=k, seed=k, over=DAY)
                _result, requests, seconds = await sync()
                exact = _table_matches(db, dataset)
                rows.append([f"k = {k:,}", k, requests, math.ceil(k / 200) + 3, seconds, exact])
                print(
                    f"  k={k}: {requests} requests, {seconds:.1f} s, table ok: {exact}", flush=True
                )
    return rows


def _table_matches(db: Path, dataset: Dataset) -> bool:
    with sqlite3.connect(db) as connection:
        stored = dict(connection.execute("SELECT id, date_modified FROM opportunities"))
    truth = dataset.ids()
    if len(stored) != len(truth):
        return False
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    sample = truth[:: max(len(truth) // 2_000, 1)]
    return all(
        stored[i] == time.strftime(fmt, time.gmtime(dataset.record(i)["date_modified"]))
        for i in sample
    )


# -- 2. write throughput ---------------------------------------------------------------


def _pages(records: int) -> list[list[dict[str, Any]]]:
    dataset = Dataset.generate(records, seed=4)
    ids = dataset.ids()
    return [orjson.loads(dataset.encode_page(ids[i : i + 200])) for i in range(0, len(ids), 200)]


async def _ours(url: str, pages: list[list[dict[str, Any]]]) -> float:
    store: Any = open_store(url)
    await store.open({"benchmark": True}, "b" * 64)
    run = RunProgress(run_id=1, mode="full", started=0, read_from=None)
    os.sync()  # the disk's write-back of earlier rounds is not this round's to wait for
    began = time.perf_counter()
    try:
        for page in pages:
            await store.upsert_page(1, page, 1_800_000_000, run)  # committed with the progress
            run.inserted += len(page)
    finally:
        await store.close()
    return time.perf_counter() - began


def _bare_rows(url: str, pages: list[list[dict[str, Any]]]) -> list[list[tuple[Any, ...]]]:
    """The rows our path stored, page by page, as the bare insert's input."""
    if url.startswith("postgresql://"):
        store: Any = open_store(url)
        synced = store._timestamp(0)
        return [
            store._rows.rows(page, [orjson.dumps(r).decode() for r in page], synced, 1)
            for page in pages
        ]
    with sqlite3.connect(url) as connection:  # SQL formats SQLite's timestamps: read them back
        rows = connection.execute(
            f"SELECT {', '.join(ALL_COLUMNS)} FROM opportunities ORDER BY id"
        ).fetchall()
    sizes = [len(page) for page in pages]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return [rows[start : start + size] for start, size in zip(starts, sizes, strict=True)]


def _bare_sqlite(path: Path, rows: list[list[tuple[Any, ...]]]) -> float:
    with sqlite3.connect(path.with_suffix(".mirror")) as source:
        schema = source.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'opportunities'"
        ).fetchone()[0]
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(schema)
    marks = ", ".join("?" * len(ALL_COLUMNS))
    statement = f"INSERT INTO opportunities ({', '.join(ALL_COLUMNS)}) VALUES ({marks})"
    os.sync()
    began = time.perf_counter()
    for page in rows:
        connection.execute("BEGIN")
        connection.executemany(statement, page)
        connection.execute("COMMIT")
    connection.close()  # its WAL checkpoint, as our store's close does
    return time.perf_counter() - began


def _bare_postgres(url: str, rows: list[list[tuple[Any, ...]]]) -> float:
    import psycopg

    with psycopg.connect(url) as connection:
        connection.execute("CREATE TABLE bare (LIKE opportunities INCLUDING ALL)")
        connection.commit()
        copy_sql = f"COPY bare ({', '.join(ALL_COLUMNS)}) FROM STDIN"
        os.sync()
        began = time.perf_counter()
        for page in rows:
            with connection.cursor().copy(copy_sql) as copy:
                for row in page:
                    copy.write_row(row)
            connection.commit()
    return time.perf_counter() - began  # closed too, as our store is


#: Rounds of the write part: this machine's rate moves by a third between
#: rounds, so the median of nine is steadier than the median of five.
WRITE_ROUNDS = 9


def _throughput(records: int, folder: Path, rounds: int) -> list[list[Any]]:
    pages = _pages(records)
    results = []
    cluster = None
    try:
        from tests.pg import Cluster

        cluster = Cluster()
        stores = [("SQLite", None), ("PostgreSQL", cluster)]
    except BaseException as error:  # pytest.fail outside pytest: report, keep SQLite
        print(f"  PostgreSQL unavailable: {error}", flush=True)
        stores = [("SQLite", None)]
    try:
        for name, pg in stores:
            ours_runs, bare_runs = [], []
            for attempt in range(rounds):
                # The bare insert needs our rows, so ours runs first in every round.
                if pg is None:
                    url = str(folder / f"w{attempt}.mirror")
                    ours_runs.append(asyncio.run(_ours(url, pages)))
                    rows = _bare_rows(url, pages)
                    bare_runs.append(_bare_sqlite(folder / f"w{attempt}.bare", rows))
                else:
                    url = pg.new_database()
                    ours_runs.append(asyncio.run(_ours(url, pages)))
                    bare_runs.append(_bare_postgres(url, _bare_rows(url, pages)))
            ours = records / _common.median(ours_runs)
            bare = records / _common.median(bare_runs)
            ratios = sorted(b / o for o, b in zip(ours_runs, bare_runs, strict=True))
            results.append([name, records, round(ours), round(bare), ours / bare, ratios])
            print(
                f"  {name}: ours {ours:,.0f}/s, bare {bare:,.0f}/s; "
                f"ratio by round {', '.join(f'{r:.3f}' for r in ratios)}",
                flush=True,
            )
    finally:
        if cluster is not None:
            cluster.close()
    return results


# -- 3. memory -------------------------------------------------------------------------


def _memory(sizes: list[int], cap: int, folder: Path) -> list[list[Any]]:
    rows = []
    for size in sizes:
        db = folder / f"mem{size}.sqlite"
        with _common.fake_server_process(
            ["--generate", str(size), "--cap", str(cap), "--seed", "2"]
        ) as server:
            command = [
                sys.executable, "-m", "copper_async", "sync", "--db", str(db), "--base-url",
                server.url, "--cap", str(cap), "--rate-limit", "none", "-q",
            ]  # fmt: skip
            env = {
                **os.environ,
                "COPPER_ACCESS_TOKEN": server.token,
                "COPPER_USER_EMAIL": server.email,
            }
            run = _common.run_child(command, env=env)
        if run.returncode != 0:
            raise SystemExit(f"sync of {size} records failed: {run.stderr_tail}")
        with sqlite3.connect(db) as connection:
            count = connection.execute("SELECT count(*) FROM opportunities").fetchone()[0]
        rows.append([size, run.max_rss_bytes / 2**20, run.wall_seconds, count == size])
        print(f"  N={size}: peak {run.max_rss_bytes / 2**20:.1f} MiB", flush=True)
    return rows


def _shown(value: Any) -> str:
    if isinstance(value, list):  # a write row's ratio by round
        return "rounds " + ", ".join(f"{ratio:.3f}" for ratio in value)
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _flat_rows(tables: dict[str, list[list[Any]]]) -> list[list[Any]]:
    """Every part's rows in the one table RESULTS.md shows."""
    flat: list[list[Any]] = []
    for row in tables.get("cost", []):
        flat.append(["requests", row[0], row[2], f"<= {row[3]}", round(row[4], 1), row[5]])
    for store, records, ours, bare, ratio, rounds in tables.get("write", []):
        case = f"{store}, {records:,} records"
        # The per-round ratios too: this machine's noise is part of the result.
        spread = f"rounds {rounds[0]:.2f}-{rounds[-1]:.2f}, median {_common.median(rounds):.3f}"
        baseline = f"bare {bare} (ratio {ratio:.3f}; {spread})"
        flat.append(["write rec/s", case, ours, baseline, "", ""])
    for size, peak, wall, exact in tables.get("memory", []):
        flat.append(["peak MiB", f"N = {size:,}", round(peak, 1), "flat", round(wall, 1), exact])
    for row in tables.get("stress", []):
        flat.append(["kill -9", *row])
    return flat


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--records", type=_common.positive_int, default=1_000_000)
    parser.add_argument("--write-records", type=_common.positive_int, default=50_000)
    parser.add_argument("--memory-sizes", default="50000,250000")
    parser.add_argument("--skip", default="", help="comma list of: cost, write, memory")
    parser.add_argument(
        "--stress", action="store_true", help="also kill -9 runs at random moments (slow)"
    )
    parser.add_argument("--stress-records", type=_common.positive_int, default=250_000)
    _common.add_json_option(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    if args.quick:
        records, ks, cap, write, sizes = 6_000, [0, 300, 1_500, 3_000], 2_000, 4_000, [2_000, 8_000]
    else:
        records, ks, cap = args.records, [0, 1_000, 50_000, 150_000], 100_000
        write, sizes = args.write_records, [int(s) for s in args.memory_sizes.split(",")]
    checks: list[Any] = []
    notes: list[str] = []
    tables: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as name:
        folder = Path(name)
        # First, while this process is small: a forked child's peak RSS counts the
        # parent's pages until it execs.
        if "memory" not in skip:
            print(f"memory, N = {sizes}", flush=True)
            rows = _memory(sizes, cap, folder)
            tables["memory"] = rows
            ratio = rows[-1][1] / rows[0][1]
            checks.append(_common.check("peak RSS ratio", round(ratio, 3), "<= 1.2", ratio <= 1.2))
        if "cost" not in skip:
            print(f"incremental cost, N = {records:,}, cap {cap:,}", flush=True)
            rows = asyncio.run(_incremental(records, ks, cap, folder))
            tables["cost"] = rows
            for row in rows[1:]:
                checks.append(
                    _common.check(f"requests, {row[0]}", row[2], f"<= {row[3]}", row[2] <= row[3])
                )
                checks.append(_common.check(f"table exact, {row[0]}", int(row[5]), "1", row[5]))
        if "write" not in skip:
            print(f"write throughput, {write:,} records a store", flush=True)
            rows = _throughput(write, folder, rounds=1 if args.quick else WRITE_ROUNDS)
            tables["write"] = rows
            for store, _n, ours, _bare, ratio, _rounds in rows:
                checks.append(
                    _common.check(f"{store} ours / bare", round(ratio, 3), ">= 0.7", ratio >= 0.7)
                )
                checks.append(_common.check(f"{store} records/s", ours, ">= 10000", ours >= 10_000))
        if args.stress:
            size = 6_000 if args.quick else args.stress_records
            print(f"kill -9 x 5 in a full load and an incremental run, N = {size:,}", flush=True)
            import _sync_stress

            rows, passed = asyncio.run(
                _sync_stress.stress(size, 2_000 if args.quick else 100_000, folder)
            )
            tables["stress"] = rows
            checks.append(
                _common.check(
                    "kill -9: table exact, bookmark never ahead", int(passed), "1", passed
                )
            )
    columns = ["part", "case", "value", "target or baseline", "seconds", "exact"]
    flat = _flat_rows(tables)
    for name, rows in tables.items():
        print(f"\n{name}")
        for row in rows:
            print("  " + "  ".join(map(_shown, row)))
    _common.print_checks(checks)
    payload = _common.result_payload(
        "sync",
        "Incremental sync: request cost, store write rate, memory",
        config={
            "records": records,
            "ks": ks,
            "cap": cap,
            "write_records": write,
            "sizes": sizes,
            "stress": args.stress,
        },
        columns=columns,
        rows=flat,
        checks=checks,
        notes=notes,
        tables=tables,
    )
    _common.write_json(args.json, payload)
    return 0 if all(c.passed for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
