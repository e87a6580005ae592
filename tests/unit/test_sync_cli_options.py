"""The sync commands' search flags come from the SearchOptions declarations."""

from __future__ import annotations

import attrs
import click
import pytest
from click.testing import CliRunner

from copper_async._options import SearchOptions, option_spec
from copper_async.sync._cli import sync
from copper_async.sync._demo import demo_sync


@pytest.mark.parametrize(
    ("command", "names"),
    [(sync, ("concurrency", "page_size", "cap")), (demo_sync, ("cap",))],
)
def test_the_flags_carry_the_declared_bounds_default_and_help(
    command: click.Command, names: tuple[str, ...]
) -> None:
    params = {param.name: param for param in command.params}
    for name in names:
        field = getattr(attrs.fields(SearchOptions), name)
        spec = option_spec(field)
        param = params[name]
        assert isinstance(param, click.Option)
        assert isinstance(param.type, click.IntRange)
        assert (param.type.min, param.type.max) == (spec.low, spec.high)
        assert param.default == field.default
        assert param.help == spec.help


def test_options_checked_together_fail_as_usage_before_anything_runs() -> None:
    result = CliRunner().invoke(
        sync, ["--cap", "100", "--token", "t", "--email", "e", "--db", "/nonexistent/x.sqlite"]
    )
    assert result.exit_code == 2
    assert "must be at least page_size" in result.output
