"""Machine output, the same on every command that reports: `--format text|json`.

`text` is for people; `json` is one JSON document on stdout (logs and warnings stay on stderr),
stable keys, durations in integer milliseconds, times in UTC ISO 8601 with offset.
"""

from __future__ import annotations

import json

import click

format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people; json for programs (one JSON document on stdout, logs on stderr).",
)


def echo_json(data: object) -> None:
    """One JSON document on stdout."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))
