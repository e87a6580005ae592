"""POST /_fake/changes and FakeCopperServer.play_changes over loopback HTTP."""

from __future__ import annotations

import aiohttp
import pytest

from copper_async.testing import CHANGES_ROUTE, Dataset, FakeCopperServer, FakeServerOptions

NOW = 1_800_000_000
AUTH = {
    "X-PW-AccessToken": "fake-token",
    "X-PW-UserEmail": "fake@example.com",
    "X-PW-Application": "developer_api",
}


def root(server: FakeCopperServer) -> str:
    return f"http://{server.host}:{server.port}"


@pytest.mark.asyncio
async def test_the_admin_endpoint_plays_changes_at_the_server_clock() -> None:
    dataset = Dataset.generate(1_000, seed=1, end=NOW - 10)
    async with FakeCopperServer(dataset, options=FakeServerOptions()) as server:
        server.clock = lambda: NOW + 0.7
        async with aiohttp.ClientSession() as session:
            body = {"edits": 4, "creates": 2, "deletes": 3, "seed": 5}
            async with session.post(root(server) + CHANGES_ROUTE, json=body, headers=AUTH) as r:
                assert r.status == 200
                answer = await r.json()
            assert answer["created"] == [1_001, 1_002]
            assert len(answer["edited"]) == 4
            assert len(answer["deleted"]) == 3
            assert all(dataset.record(i)["date_modified"] == NOW for i in answer["edited"])
            async with session.post(
                root(server) + CHANGES_ROUTE, json={"edits": 1, "colour": 2}, headers=AUTH
            ) as r:
                assert r.status == 422
            async with session.post(
                root(server) + CHANGES_ROUTE, json={"edits": -1}, headers=AUTH
            ) as r:
                assert r.status == 422
                assert "edits" in (await r.json())["message"]
            async with session.post(root(server) + CHANGES_ROUTE, json={"edits": 1}) as r:
                assert r.status == 401
    assert len(dataset) == 999


@pytest.mark.asyncio
async def test_play_changes_uses_the_seed_and_the_clock() -> None:
    one, two = Dataset.generate(300, seed=2), Dataset.generate(300, seed=2)
    async with FakeCopperServer(one) as first, FakeCopperServer(two) as second:
        first.clock = second.clock = lambda: NOW
        a = first.play_changes(edits=5, deletes=2, creates=1, seed=8)
        b = second.play_changes(edits=5, deletes=2, creates=1, seed=8)
    assert a == b
    assert one.record(a.created[0])["date_created"] == NOW
