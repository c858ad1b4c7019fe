"""`drill init` and `drill init --lab`: starters that validate, name the file they are written to,
and (for the lab) need nothing the user must set. The lab starter's run is in tests/lab/test_lab_cli.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from drill.cli import cli
from drill.lab.lab import DEFAULT_PORT_BASE
from drill.playbook.model import ActionStep, ManualStep, walk_steps
from drill.playbook.starter import SCHEMA_LINE, STARTER_PLAYBOOK, lab_starter_playbook
from drill.playbook.validate import check_playbook


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no lab runs here: `--lab` uses the default ports
    return tmp_path


def test_init_lab_writes_a_starter_aimed_at_the_lab_that_validates_cleanly(in_tmp: Path) -> None:
    code, out, err = run("init", "--lab", "my-drill.yaml")
    assert code == 0, err
    assert out.splitlines() == [
        f"wrote my-drill.yaml, aimed at a `drill lab up` lab (not running yet) on 127.0.0.1:"
        f"{DEFAULT_PORT_BASE}-{DEFAULT_PORT_BASE + 5}",
        "next: drill validate my-drill.yaml && drill run --dry-run my-drill.yaml && drill run my-drill.yaml --yes",
    ]
    text = (in_tmp / "my-drill.yaml").read_text()
    assert text.splitlines()[0] == SCHEMA_LINE == "# yaml-language-server: $schema=drill.schema.json"
    header = [line for line in text.splitlines() if line.startswith("#")][:10]
    assert (
        "#   drill run my-drill.yaml --yes         # the drill itself: exit 0 when every target is met"
        in header
    )
    assert "playbook.yaml" not in text
    assert "${" not in text  # nothing the user must set: no ${env:...}, ${file:...} or ${var:...}

    playbook, diagnostics = check_playbook(in_tmp / "my-drill.yaml")
    assert playbook is not None and diagnostics == []
    steps = list(walk_steps((*playbook.scenario, *playbook.rollback)))
    assert not any(isinstance(s, ManualStep) for s in steps)  # a non-interactive run refuses those
    control = f"http://127.0.0.1:{DEFAULT_PORT_BASE}"
    data = yaml.safe_load(text)
    injecting = [s for s in data["scenario"] if s.get("inject")]
    assert [s["action"]["http"]["url"] for s in injecting] == [f"{control}/control/disaster"]
    assert sum(isinstance(s, ActionStep) for s in steps) == 6
    actions = [s["action"]["http"]["url"] for s in (*data["scenario"], *data["rollback"]) if "action" in s]
    assert f"{control}/control/failover" in actions and f"{control}/control/failback" in actions
    contacts = data["contacts"]["chains"]["lab-oncall"]["contacts"]
    assert [(c["via"], c["url"]) for c in contacts] == [("webhook", f"{control}/hooks/pager")]
    canaries = [p["kv"] for a in data["assets"] for p in a["probes"] if "kv" in p]
    assert canaries == [{"url": f"http://127.0.0.1:{DEFAULT_PORT_BASE + 5}", "canary": True}]
    assert data["settings"]["unattended"] is True


def test_init_names_the_file_it_writes_and_says_its_targets_are_placeholders(in_tmp: Path) -> None:
    (in_tmp / "drills").mkdir()
    code, out, _ = run("init", "drills/site loss.yaml")
    assert code == 0
    assert out.splitlines() == [
        "wrote drills/site loss.yaml (its targets are placeholders); next: drill validate 'drills/site loss.yaml'"
        " && drill plan 'drills/site loss.yaml'",
        "to try a whole drill first: drill lab up && drill init --lab my-drill.yaml",
    ]
    text = (in_tmp / "drills" / "site loss.yaml").read_text()
    lines = text.splitlines()
    assert lines[0] == SCHEMA_LINE
    assert "# Check this file with `drill validate 'drills/site loss.yaml'`, see the plan with" in text
    assert "playbook.yaml" not in text
    assert any("PLACEHOLDERS" in line for line in lines[:6])
    assert any("drill init --lab" in line for line in lines[:6])
    playbook, diagnostics = check_playbook(in_tmp / "drills" / "site loss.yaml")
    assert playbook is not None and diagnostics == []


def test_init_default_name_and_the_pinned_starter_agree(in_tmp: Path) -> None:
    assert run("init")[0] == 0
    assert (in_tmp / "playbook.yaml").read_text() == STARTER_PLAYBOOK
    code, _, err = run("init", "--lab")
    assert code == 2 and "playbook.yaml already exists; not overwriting it" in err


def test_init_refuses_a_name_a_comment_cannot_hold(in_tmp: Path) -> None:
    code, _, err = run("init", "bad\nname.yaml")
    assert code == 2
    assert "the file name holds a control character" in err
    assert list(in_tmp.iterdir()) == []


def test_the_lab_starter_follows_another_port_base() -> None:
    text = lab_starter_playbook("x.yaml", 21000)
    assert '"http://127.0.0.1:21000/hooks/pager"' in text and '"http://127.0.0.1:21005"' in text
    assert str(DEFAULT_PORT_BASE) not in text
