"""``--about``: name, version, capabilities and settings, as Meltano reads them.

The JSON form has the keys of Meltano's SDK (``name``, ``description``,
``version``, ``supported_python_versions``, ``capabilities``, ``settings`` as
one JSON Schema); the Markdown form is the settings table a README shows.
"""

from __future__ import annotations

import json
from typing import Any

from copper_async import __version__
from copper_async.singer._config import settings_schema

__all__ = ["CAPABILITIES", "NAME", "about", "about_json", "about_markdown"]

NAME = "tap-copper-async"
DESCRIPTION = (
    "Singer tap of Copper CRM opportunities: every record, once, past the "
    "100,000-record search cap; incremental on date_modified."
)
CAPABILITIES = ("catalog", "discover", "state", "about")
PYTHONS = ("3.11", "3.12", "3.13")


def about() -> dict[str, Any]:
    """The ``--about`` data."""
    return {
        "name": NAME,
        "description": DESCRIPTION,
        "version": __version__,
        "supported_python_versions": list(PYTHONS),
        "capabilities": list(CAPABILITIES),
        "settings": settings_schema(),
    }


def about_json() -> str:
    return json.dumps(about(), indent=2)


def about_markdown() -> str:
    info = about()
    settings = info["settings"]
    lines = [f"# `{NAME}`", "", DESCRIPTION, "", "## Capabilities", ""]
    lines += [f"- `{capability}`" for capability in CAPABILITIES]
    lines += ["", "## Supported Python Versions", ""]
    lines += [f"- {version}" for version in PYTHONS]
    lines += ["", "## Settings", ""]
    lines += ["| Setting | Required | Default | Description |"]
    lines += ["|:--------|:--------:|:-------:|:------------|"]
    for name, prop in settings["properties"].items():
        required = name in settings["required"]
        default = prop.get("default", "None")
        lines.append(f"| {name} | {required} | {default} | {prop['description']} |")
    return "\n".join(lines)
