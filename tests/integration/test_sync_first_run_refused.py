"""A first run that stored nothing does not bind the database to its job.

A mistyped email, API root or filter makes Copper refuse the first run; the
corrected command must then be able to use the same database.
"""

from __future__ import annotations

from typing import Any

import pytest

from copper_async import AuthenticationError, CopperClient, OpportunityFilter
from copper_async.sync import StoreError, open_store, run_sync
from copper_async.sync._bookmark import job_identity
from tests.sync_support import TOKEN, sync, world


@pytest.mark.asyncio
async def test_a_refused_first_run_leaves_the_database_to_the_corrected_one(db: str) -> None:
    async with world(300) as w:
        async with CopperClient(
            access_token=TOKEN, user_email="typo@example.com", base_url=w.server.url,
            rate_limit=None,
        ) as mistyped:  # fmt: skip
            with pytest.raises(AuthenticationError):
                await run_sync(mistyped, open_store(db), clock=w.clock, cap=2_000)
        result = await sync(w, db)
        assert result.inserted == 300
        # The corrected job owns it now: the mistyped one is refused in turn.
        async with CopperClient(
            access_token=TOKEN, user_email="typo@example.com", base_url=w.server.url,
            rate_limit=None,
        ) as mistyped:  # fmt: skip
            with pytest.raises(StoreError, match=r"another job.*account"):
                await run_sync(mistyped, open_store(db), clock=w.clock, cap=2_000)


@pytest.mark.asyncio
async def test_a_job_that_completed_a_run_keeps_the_database_though_it_stored_nothing(
    db: str,
) -> None:
    async with world(300) as w:
        nothing = OpportunityFilter(name="no opportunity has this name")
        assert (await sync(w, db, filter=nothing)).inserted == 0
        with pytest.raises(StoreError, match=r"another job.*filter"):
            await sync(w, db)


@pytest.mark.asyncio
async def test_a_first_run_under_way_is_not_taken_over(db: str) -> None:
    async with world(300) as w:
        job, key = job_identity(
            OpportunityFilter(statuses=("Open",)),
            base_url=w.client.base_url,
            user_email=w.client.user_email,
        )
        running: Any = open_store(db)
        await running.open(job, key)
        try:
            # SQLite: the database's lock; PostgreSQL: the other job's lock.
            with pytest.raises(StoreError, match=r"another (sync|job)"):
                await sync(w, db)
        finally:
            await running.close()
        assert (await sync(w, db)).inserted == 300
