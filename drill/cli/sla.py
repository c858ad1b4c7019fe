"""`drill sla`: service-level agreements over a playbook's probes.

A group others extend with `sla.add_command` (report, watch); here `validate` checks `kind: SLA`
documents the way `drill validate` checks playbooks (FILE:LINE:COL: severity: message, exit 2
when invalid), and `schema` prints the SLA document's JSON Schema for editors.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from drill.cli import DrillGroup
from drill.cli.output import echo_json, format_option
from drill.errors import EXIT_OK, EXIT_USAGE, Diagnostic

STDIN_NAME = "<stdin>"


@click.group("sla", cls=DrillGroup)
def sla() -> None:
    """Service-level agreements: check an SLA document, report a period (signed), verify a report.

    An SLA document (`kind: SLA`) names a playbook's probes as services and states the target,
    the contract period and zone, how downtime is counted, maintenance windows, service credits,
    KPIs, alerts and the cost of a minute down.

    \b
    Example:
      drill sla validate examples/sla-lab.yaml
    """


@sla.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True, path_type=str))
@format_option
def validate(files: tuple[str, ...], fmt: str) -> None:
    """Check SLA documents: every problem as FILE:LINE:COL: error|warning: message. Exit 2 if invalid.

    The playbook an SLA names (spec.playbook, relative to the SLA file) is loaded too: its
    probes and contact chains must exist. `-` reads standard input (the playbook path is then
    relative to the current folder).

    \b
    Example:
      drill sla validate examples/sla-lab.yaml --format json
    """
    from drill.sla.load import check_sla, check_sla_bytes

    invalid = False
    results = []
    for file in files:
        if file == "-":
            from drill.playbook.load import MAX_BYTES

            raw = sys.stdin.buffer.read(MAX_BYTES + 1)
            sla_doc, diagnostics = check_sla_bytes(raw, STDIN_NAME, Path.cwd())
        else:
            sla_doc, diagnostics = check_sla(file)
        name = STDIN_NAME if file == "-" else file
        invalid = invalid or sla_doc is None
        results.append(
            {"file": name, "valid": sla_doc is not None, "diagnostics": [d.as_dict() for d in diagnostics]}
        )
        if fmt == "text":
            for diagnostic in diagnostics:
                click.echo(str(diagnostic))
            if sla_doc is not None:
                services = len(sla_doc.services)
                tally = f"{services} service{'s' * (services != 1)}, {_count(diagnostics, 'warning')}"
                click.echo(f"{name}: valid ({tally})")
            else:
                click.echo(
                    f"{name}: invalid ({_count(diagnostics, 'error')}, {_count(diagnostics, 'warning')})"
                )
    if fmt == "json":
        echo_json({"valid": not invalid, "files": results})
    sys.exit(EXIT_USAGE if invalid else EXIT_OK)


def _count(diagnostics: list[Diagnostic], severity: str) -> str:
    n = sum(d.severity == severity for d in diagnostics)
    return f"{n} {severity}{'s' * (n != 1)}"


@sla.command("schema")
def schema() -> None:
    """Print the SLA document's JSON Schema (for yaml-language-server and other editors).

    \b
    Example:
      drill sla schema > sla.schema.json
    """
    from drill.resources import load_schema
    from drill.sla.load import SCHEMA

    click.echo(json.dumps(load_schema(SCHEMA), indent=2, ensure_ascii=False))


from drill.cli.sla_report import report, verify  # noqa: E402  (below the group they join)

sla.add_command(report)
sla.add_command(verify)
