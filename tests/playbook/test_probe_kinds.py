"""A probe kind is wired through from its module to `drill validate`: registry, schema fragment, checks.

smtp was the last kind added; it must need nothing beyond its module, its fragment, its registry
line and its tests (the golden files name the kinds through `{probe_kinds}`).
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from drill.cli import cli
from drill.playbook.schema import known_kinds
from drill.probes import smtp
from drill.probes.registry import PROBE_KINDS
from drill.resources import schema_dir

SMTP_PLAYBOOK = Path(__file__).parent / "valid" / "smtp.yaml"


def validate(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["validate", str(path)])
    return result.exit_code, result.stdout


def test_smtp_is_registered_with_its_schema_fragment() -> None:
    assert PROBE_KINDS["smtp"] is smtp.KIND
    assert smtp.KIND.name == "smtp"
    assert smtp.KIND.schema_file == "probes/smtp.schema.json"
    assert (schema_dir() / smtp.KIND.schema_file).is_file()
    assert "smtp" in known_kinds("probe")


def test_every_registered_kind_is_keyed_by_its_own_name_and_has_a_fragment() -> None:
    assert all(name == kind.name for name, kind in PROBE_KINDS.items())
    assert all((schema_dir() / kind.schema_file).is_file() for kind in PROBE_KINDS.values())


def test_drill_validate_accepts_a_playbook_with_an_smtp_probe() -> None:
    code, out = validate(SMTP_PLAYBOOK)
    assert (code, out) == (0, f"{SMTP_PLAYBOOK}: valid (1 asset, 0 warnings)\n")


def test_drill_validate_checks_smtp_params_against_its_fragment(tmp_path: Path) -> None:
    text = SMTP_PLAYBOOK.read_text()
    assert "{host: 127.0.0.1," in text
    bad = tmp_path / "smtp-typo.yaml"
    bad.write_text(text.replace("{host: 127.0.0.1,", "{hots: 127.0.0.1,"))
    code, out = validate(bad)
    assert code == 2
    assert f"{bad}:13:16: error: assets[0].probes[0].smtp: unknown key 'hots' (did you mean 'host'?)" in out
    assert f"{bad}:13:9: error: assets[0].probes[0].smtp: missing required key 'host'" in out
