"""aiohttp trace configs reach the client's session: OpenTelemetry sees every request.

The README's "Tracing" example is run as printed (found by
``create_trace_config``).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from copper_async._retry import RetryPolicy
from copper_async.client import CopperClient
from copper_async.exceptions import InvalidOptionError
from copper_async.testing import Dataset, FakeCopperServer, FakeServerOptions

README = Path(__file__).resolve().parents[2] / "README.md"


def tracing_snippet() -> str:
    """The README's "Tracing" example, exactly as printed."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    (block,) = [str(block) for block in blocks if "create_trace_config" in block]
    return block


def test_the_opentelemetry_example_runs_and_traces_every_request() -> None:
    block = tracing_snippet()
    assert "asyncio.run(main())" in block
    namespace: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    spans = namespace["exporter"].get_finished_spans()
    assert len(spans) == 6
    for span in spans:
        attributes = dict(span.attributes)
        assert attributes["http.status_code"] == 200
        assert attributes["http.url"].endswith("/opportunities/search")
        # The token travels in a header, which the instrumentation does not record.
        assert "token" not in repr(attributes).lower()


@pytest.mark.asyncio
async def test_trace_configs_see_every_attempt_retries_included() -> None:
    attempts: list[str] = []

    async def on_request_start(
        _session: aiohttp.ClientSession, _context: SimpleNamespace, params: Any
    ) -> None:
        attempts.append(params.method)

    tracing = aiohttp.TraceConfig()
    tracing.on_request_start.append(on_request_start)
    server_options = FakeServerOptions(fault_rates={"503": 0.3}, seed=5)
    async with (
        FakeCopperServer(Dataset.generate(600, seed=2), options=server_options) as server,
        CopperClient(
            access_token=server_options.access_token,
            user_email=server_options.user_email,
            base_url=server.url,
            rate_limit=None,
            retry=RetryPolicy(attempts=10, initial_backoff=0.001, max_backoff=0.005),
            trace_configs=[tracing],
        ) as client,
    ):
        records = await client.opportunities.search(page_size=50, raw=True).to_list()
        await client.custom_field_definitions()
    assert len(records) == 600
    assert server.stats["requests_by_status"].get(503, 0) > 0
    assert attempts.count("POST") == server.stats["requests"] > 12
    assert attempts.count("GET") == 1


@pytest.mark.asyncio
async def test_trace_configs_are_validated() -> None:
    with pytest.raises(InvalidOptionError) as raised:
        CopperClient(
            access_token="t",
            user_email="u@example.com",
            trace_configs=aiohttp.TraceConfig(),  # type: ignore[arg-type]
        )
    assert raised.value.option == "trace_configs"
    with pytest.raises(InvalidOptionError):
        CopperClient(access_token="t", user_email="u@example.com", trace_configs=["x"])  # type: ignore[list-item]
    async with aiohttp.ClientSession() as session:
        with pytest.raises(InvalidOptionError, match="session"):
            CopperClient(
                access_token="t",
                user_email="u@example.com",
                session=session,
                trace_configs=[aiohttp.TraceConfig()],
            )
