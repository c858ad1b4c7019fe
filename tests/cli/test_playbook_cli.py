"""`drill validate | plan | schema | init` through the real click entry point."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from jsonschema import Draft202012Validator

from drill.cli import cli
from drill.playbook.load import load_document

ROOT = Path(__file__).resolve().parents[2]
INVALID = ROOT / "tests" / "playbook" / "invalid"
ENTERPRISE = ROOT / "playbooks" / "enterprise.yaml"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_validate_reports_every_problem_gcc_style_and_exits_2() -> None:
    path = str(INVALID / "many_errors.yaml")
    code, out, _ = run("validate", path)
    assert code == 2
    assert out.splitlines() == [
        f"{path}:22:11: warning: assets[0]: RTO target 1 s of asset 'db' is shorter than the detection bound"
        " of its probe 'port' (interval 1 s x fall 2 = 2 s)",
        f"{path}:33:54: error: assets[1].probes[0].http: unknown key 'metod' (did you mean 'method'?)",
        f"{path}:37:18: error: assets[2].depends_on[0]: unknown asset 'apii' (did you mean 'api'?)",
        f"{path}:47:35: error: scenario[2].wait_for.state: 'upp' is not one of: up, down"
        " (did you mean 'up'?)",
        f"{path}: invalid (3 errors, 1 warning)",
    ]


def test_validate_many_files_exits_2_if_any_is_invalid(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    code, out, _ = run("validate", str(ENTERPRISE), missing)
    assert code == 2
    assert f"{ENTERPRISE}: valid (24 assets, 0 warnings)" in out
    assert f"{missing}: error: cannot read file: No such file or directory" in out


def test_validate_json_format() -> None:
    code, out, _ = run("validate", "--format", "json", str(INVALID / "unknown_tier.yaml"), str(ENTERPRISE))
    data = json.loads(out)
    assert code == 2
    assert data["valid"] is False
    first = data["files"][0]["diagnostics"][0]
    assert (first["line"], first["col"], first["severity"], first["path"]) == (
        36,
        11,
        "error",
        "assets[2].tier",
    )
    assert data["files"][1] == {"file": str(ENTERPRISE), "valid": True, "diagnostics": []}


def test_every_example_playbook_validates() -> None:
    playbooks = sorted(str(p) for p in (ROOT / "playbooks").glob("*.yaml"))
    code, out, _ = run("validate", *playbooks)
    assert code == 0, out


def test_a_folder_validates_its_playbooks_and_leaves_sla_documents_to_drill_sla(tmp_path: Path) -> None:
    (tmp_path / "demo.yaml").write_text((ROOT / "playbooks" / "demo.yaml").read_text(encoding="utf-8"))
    (tmp_path / "sla.yaml").write_text((ROOT / "examples" / "sla-lab.yaml").read_text(encoding="utf-8"))
    code, out, _ = run("validate", "--format", "json", str(tmp_path))
    assert code == 0, out
    assert [f["file"] for f in json.loads(out)["files"]] == [str(tmp_path / "demo.yaml")]


def test_plan_text_and_json() -> None:
    code, out, _ = run("plan", str(ENTERPRISE))
    assert code == 0
    assert "Recovery order" in out and "wave 1: dns-internal" in out
    assert "Worst-case duration: 3 h 43 min (" in out  # people read two units; JSON keeps the ms
    assert "+ rollback 43 min 10 s)" in out
    code, out, _ = run("plan", "--format", "json", str(ENTERPRISE))
    data = json.loads(out)
    assert code == 0 and data["worst_case_ms"] == (3 * 3600 + 43 * 60 + 10) * 1000
    assert len(data["assets"]) == 24
    first = data["assets"][0]
    assert first["id"] == "dns-internal" and first["detection_bound_ms"] == 3000
    assert first["probes"] == [
        {
            "name": "resolve-ledger",
            "kind": "dns",
            "interval_ms": 1000,
            "timeout_ms": 1000,
            "fall": 3,
            "rise": 2,
            "measures_rpo": False,
        }
    ]
    assert {s["phase"] for s in data["steps"]} == {"scenario", "rollback"}


def test_plan_of_an_invalid_playbook_exits_2_with_the_diagnostics() -> None:
    code, _, err = run("plan", str(INVALID / "dependency_cycle.yaml"))
    assert code == 2
    assert "30:18: error: assets[1].depends_on[0]: dependency cycle: db -> reports -> api -> db" in err


def test_schema_is_one_valid_json_schema_that_accepts_the_examples() -> None:
    code, out, _ = run("schema")
    schema = json.loads(out)
    assert code == 0
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    assert list(validator.iter_errors(load_document(ENTERPRISE).data)) == []
    for name in ("probe_param_typo", "probe_two_kinds", "step_two_kinds", "notifier_param_typo", "bad_enum"):
        assert not validator.is_valid(load_document(INVALID / f"{name}.yaml").data), name
    assert "$ref" not in json.dumps(schema).replace('"$ref": "#/', "")  # every reference is internal


def test_init_writes_a_starter_that_validates_and_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "playbook.yaml"
    code, _, _ = run("init", str(target))
    assert code == 0 and target.exists()
    assert run("validate", str(target))[0] == 0
    assert run("plan", str(target))[0] == 0
    before = target.read_bytes()
    code, _, err = run("init", str(target))
    assert code == 2 and "already exists" in err
    assert target.read_bytes() == before


def test_warnings_alone_keep_exit_0() -> None:
    path = str(INVALID / "rto_below_detection.yaml")
    code, out, _ = run("validate", path)
    assert code == 0
    assert out.splitlines()[0].startswith(f"{path}:22:11: warning: assets[0]: RTO target 1 s of asset 'db'")
    assert out.splitlines()[-1] == f"{path}: valid (3 assets, 1 warning)"
