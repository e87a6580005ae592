"""The README's promises that code can check: its commands and its imports."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), re.S)


def test_the_readme_starts_with_the_two_setup_commands() -> None:
    first, second = code_blocks("bash")[:2]
    assert first.strip() == "pip install . && copper-async demo --sync"
    assert second.strip() == (
        "pip install '.[test]' && python -W error -m pytest -n auto --maxprocesses 4"
    )
    ci = (README.parent / ".ci" / "run").read_text()
    assert second.strip() in ci


def test_every_import_in_the_readme_works() -> None:
    imports = [
        line.strip()
        for block in code_blocks("python")
        for line in block.splitlines()
        if line.strip().startswith(("from copper_async", "import copper_async"))
    ]
    assert imports
    for line in imports:
        exec(line, {})


def test_the_fake_server_example_runs_and_gets_every_record() -> None:
    """The "testing your own code" block is a whole program: it runs as printed
    (its own assert checks that every generated record came back)."""
    (block,) = [b for b in code_blocks("python") if "FakeServerOptions(cap=" in b]
    assert "asyncio.run(main())" in block
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    # The check inside the block must be reached, not skipped.
    assert "assert sorted(ids) == dataset.ids()" in block
