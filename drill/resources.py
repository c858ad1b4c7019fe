"""Files shipped with drill (JSON Schemas), found both in a wheel and in a source checkout."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any


def schema_dir() -> Path:
    """The folder holding playbook.schema.json, report.schema.json and probes/*.schema.json."""
    shipped = Path(str(resources.files("drill"))) / "_schemas"
    if shipped.is_dir():
        return shipped
    return Path(__file__).resolve().parent.parent / "schemas"


def shipped_playbook(name: str) -> Path:
    """An example playbook shipped with drill (the demo's), in a wheel or a checkout."""
    shipped = Path(str(resources.files("drill"))) / "_playbooks" / name
    if shipped.is_file():
        return shipped
    return Path(__file__).resolve().parent.parent / "playbooks" / name


@cache
def load_schema(relative: str) -> dict[str, Any]:
    """A JSON Schema by its path relative to the schema folder, e.g. 'probes/http.schema.json'."""
    with (schema_dir() / relative).open(encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data
