"""The SLA document: the lab example loads into the exact model; every bad input is one clear
FILE:LINE:COL diagnostic (never a traceback); `drill sla validate` exits 0 or 2."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drill.durations import DURATION_HINT, DURATION_PATTERN, UNITS_PATTERN
from drill.errors import EXIT_USAGE, UsageError
from drill.resources import load_schema
from drill.sla.load import (
    SlaInvalid,
    check_sla,
    format_pct,
    load_sla,
    parse_factor,
    parse_money,
    parse_pct,
)
from drill.sla.model import BurnRateAlert, Credits, CreditTier, DelayKpi, Service, SliceRule, Window

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "examples" / "sla-lab.yaml"
DEMO = ROOT / "playbooks" / "demo.yaml"
LAB_TEXT = LAB.read_text(encoding="utf-8")


# -- the lab example --------------------------------------------------------------------------
def test_the_lab_sla_loads_into_the_exact_model() -> None:
    warnings: list[Any] = []
    sla = load_sla(LAB, warnings=warnings)
    assert warnings == []
    assert sla.name == "lab-orders-sla"
    assert sla.playbook == "../playbooks/demo.yaml"
    assert sla.services == (Service("web", ("web/front",)), Service("orders", ("orders-kv/canary",)))
    assert sla.target == 99_900
    assert sla.window == Window("month", "Europe/Berlin")
    assert (sla.counting, sla.slices) == ("timeslices", SliceRule(60_000, 0))
    assert (sla.partial_weight, sla.no_data, sla.exclude_drills) == (30_000, "down", True)
    (window,) = sla.exclusions
    assert window.rrule == "DTSTART:20260104T020000\nRRULE:FREQ=WEEKLY;BYDAY=SU"
    assert (window.name, window.duration_ms) == ("sunday-maintenance", 2 * 3_600_000)
    assert window.approver == "lab change board (CAB-2026-001)"
    assert sla.credits == Credits(
        monthly_fee_minor=150_000,
        currency="EUR",
        tiers=(
            CreditTier(99_000, 99_900, 10_000),
            CreditTier(95_000, 99_000, 25_000),
            CreditTier(0, 95_000, 100_000),
        ),
        minimum_minor=1_000,
        cap=100_000,
    )
    (p1,) = sla.response
    assert (p1.severity, p1.chain, p1.within_ms) == ("P1", "lab-oncall", 15 * 60_000)
    assert sla.delays == (
        DelayKpi(
            "order-round-trip",
            "orders-kv/canary",
            300_000,
            ((300_000, "lab-oncall"), (600_000, "lab-oncall"), (900_000, "lab-oncall")),
        ),
    )
    assert [(t.name, t.below) for t in sla.thresholds] == [("early-warning", 95_000), ("legal", 90_000)]
    assert sla.burn_rates == (
        BurnRateAlert("page-fast", 14_400, 3_600_000, 300_000, "lab-oncall", "page"),
        BurnRateAlert("page-slow", 6_000, 6 * 3_600_000, 30 * 60_000, "lab-oncall", "page"),
        BurnRateAlert("ticket", 1_000, 3 * 86_400_000, 6 * 3_600_000, "lab-oncall", "ticket"),
    )
    assert sla.loss_per_minute_minor == 12_000


# -- exact numbers ------------------------------------------------------------------------------
def test_percentages_money_and_factors_are_read_exactly() -> None:
    assert [parse_pct(t) for t in ("99.95%", "99.9%", "99%", "0%", "100%", "99.999%", "100.000%")] == [
        99_950,
        99_900,
        99_000,
        0,
        100_000,
        99_999,
        100_000,
    ]
    assert parse_money("1500.00 EUR") == (150_000, "EUR")
    assert parse_money("1500 EUR") == (150_000, "EUR")
    assert parse_money("0.5 USD") == (50, "USD")
    assert parse_money("1500 JPY") == (1_500, "JPY")
    assert parse_money("1.234 KWD") == (1_234, "KWD")
    assert [parse_factor(t) for t in ("14.4", "6", "1", "0.5", "14.125")] == [
        14_400,
        6_000,
        1_000,
        500,
        14_125,
    ]


@pytest.mark.parametrize(
    ("call", "value", "words"),
    [
        (parse_pct, 99.9, "99.9 is a YAML number"),
        (parse_pct, "99.9555%", "has 4 decimals"),
        (parse_pct, "100.001%", "above 100%"),
        (parse_pct, "99.9", "is not a percentage"),
        (parse_money, "1500.001 EUR", "EUR has 2 decimals, this amount has 3"),
        (parse_money, "1.5 JPY", "JPY has no decimals"),
        (parse_money, "1500", "is not an amount"),
        (parse_factor, "0", "above zero"),
        (parse_factor, 14.4, "14.4 is a YAML number"),
    ],
)
def test_inexact_numbers_are_refused_in_words(call: Any, value: object, words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        call(value)


@given(st.integers(min_value=0, max_value=100_000))
def test_every_percentage_round_trips(value: int) -> None:
    assert parse_pct(format_pct(value)) == value


# -- bad documents: one clear diagnostic each, at the right place -------------------------------
def sla_file(tmp_path: Path, old: str, new: str, *, text: str = LAB_TEXT) -> tuple[Path, str]:
    """The lab SLA with `old` replaced by `new` (its playbook by absolute path), in tmp_path."""
    assert old in text, old
    changed = text.replace(old, new, 1).replace("playbook: ../playbooks/demo.yaml", f"playbook: {DEMO}")
    path = tmp_path / "sla.yaml"
    path.write_text(changed, encoding="utf-8")
    return path, changed


def position(text: str, needle: str) -> str:
    """LINE:COL of the first occurrence of needle."""
    offset = text.index(needle)
    line = text.count("\n", 0, offset) + 1
    return f"{line}:{offset - (text.rfind(chr(10), 0, offset) + 1) + 1}"


def errors_of(path: Path) -> list[str]:
    sla, diagnostics = check_sla(path)
    errors = [str(d) for d in diagnostics if d.severity == "error"]
    assert sla is None and errors
    return errors


CASES = [
    # (what, old, new, where the error points (a needle in the new text), words)
    ("float percentage", 'target: "99.9%"', "target: 99.9", "99.9  #", "spec.target: 99.9 is a YAML number"),
    ("four decimals", 'target: "99.9%"', 'target: "99.9555%"', '"99.9555%"', "has 4 decimals"),
    ("target zero", 'target: "99.9%"', 'target: "0%"', '"0%"', "spec.target: must be above 0%"),
    ("above 100", 'target: "99.9%"', 'target: "100.5%"', '"100.5%"', "is above 100%"),
    (
        "overlapping tiers",
        '{from: "95.0%", to: "99.0%"',
        '{from: "95.0%", to: "99.5%"',
        '{from: "95.0%", to: "99.5%"',
        "spec.credits.tiers[1]: [95%, 99.5%) overlaps spec.credits.tiers[0] [99%, 99.9%)",
    ),
    (
        "empty tier",
        '{from: "99.0%", to: "99.9%"',
        '{from: "99.9%", to: "99.0%"',
        '"99.0%", credit: "10%"',
        "is empty; `to` must be above `from`",
    ),
    ("credit above 100", 'credit: "100%"', 'credit: "150%"', '"150%"', "above 100%"),
    (
        "unknown zone",
        "time_zone: Europe/Berlin",
        "time_zone: Europe/Berln",
        "Europe/Berln",
        "unknown time zone 'Europe/Berln' (did you mean 'Europe/Berlin'?)",
    ),
    ("localtime", "time_zone: Europe/Berlin", "time_zone: localtime", "localtime", "is the machine's"),
    (
        "calendar and rolling",
        "{calendar: month,",
        "{calendar: month, rolling: 30d,",
        "window: {",
        "spec.window: give either calendar",
    ),
    (
        "no DTSTART",
        "        DTSTART:20260104T020000\n",
        "",
        "|\n        RRULE",
        "needs a DTSTART line",
    ),
    (
        "DTSTART in UTC",
        "DTSTART:20260104T020000",
        "DTSTART:20260104T020000Z",
        "|\n        DTSTART",
        "is UTC (ends in Z)",
    ),
    (
        "DTSTART with TZID",
        "DTSTART:20260104T020000",
        "DTSTART;TZID=America/New_York:20260104T020000",
        "|\n        DTSTART",
        "no TZID",
    ),
    ("bad BYDAY", "BYDAY=SU", "BYDAY=XX", "|\n        DTSTART", "not a valid RFC 5545 rule"),
    ("too fine", "FREQ=WEEKLY", "FREQ=MINUTELY", "|\n        DTSTART", "FREQ=MINUTELY is too fine"),
    (
        "never recurs",
        "FREQ=WEEKLY;BYDAY=SU",
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",
        "|\n        DTSTART",
        "has no occurrence in the 5 years",
    ),
    ("no occurrence", "BYDAY=SU", "BYDAY=SU;COUNT=0", "|\n        DTSTART", "has no occurrence (COUNT=0"),
    (
        "interval zero",
        "BYDAY=SU",
        "BYDAY=SU;INTERVAL=0",
        "|\n        DTSTART",
        "INTERVAL=0 must be a whole number",
    ),
    (
        "dtstart out of range",
        "DTSTART:20260104T020000",
        "DTSTART:99991231T020000",
        "|\n        DTSTART",
        "between 1970 and 2100",
    ),
    (
        "unknown probe",
        "probes: [web/front]",
        "probes: [web/frnt]",
        "web/frnt",
        "spec.services[0].probes[0]: asset 'web' has no probe 'frnt' (did you mean 'front'?)",
    ),
    (
        "unknown asset",
        "probes: [web/front]",
        "probes: [webb/front]",
        "webb/front",
        "has no asset 'webb' (did you mean 'web'?)",
    ),
    (
        "unknown chain",
        '{name: legal, below: "90%", chain: lab-oncall}',
        '{name: legal, below: "90%", chain: legal-team}',
        "legal-team",
        "has no contact chain 'legal-team'; its chains: lab-oncall",
    ),
    (
        "short not shorter",
        "long: 1h, short: 5m",
        "long: 1h, short: 1h",
        "1h, chain",
        "spec.alerts.burn_rates[0].short: 1h is not shorter than long (1h)",
    ),
    ("float factor", 'factor: "14.4"', "factor: 14.4", "14.4,", "14.4 is a YAML number"),
    (
        "missing services",
        "  services:\n    - name: web\n      probes: [web/front]\n    - name: orders\n      probes: [orders-kv/canary]\n",
        "",
        "spec:",
        "spec: missing required key 'services'",
    ),
    (
        "service twice",
        "- name: orders\n",
        "- name: web\n",
        "web\n      probes: [orders",
        "service 'web' is named twice",
    ),
    (
        "sub-cent money",
        '"1500.00 EUR"',
        '"1500.001 EUR"',
        '"1500.001 EUR"',
        "EUR has 2 decimals, this amount has 3",
    ),
    (
        "two currencies",
        '"120.00 EUR"',
        '"120.00 USD"',
        '"120.00 USD"',
        "currency USD differs from spec.credits.monthly_fee's EUR",
    ),
    (
        "slice does not divide",
        "slice: 1m,",
        "slice: 7m,",
        "7m",
        "does not divide 30 minutes evenly",
    ),
    ("bad duration", "duration: 2h", "duration: 2 hours", "2 hours", DURATION_HINT),
    ("zero duration", "duration: 2h", "duration: 0s", "0s  #", "must be above zero"),
    (
        "unknown key",
        "no_data: down",
        "no_dta: down",
        "no_dta",
        "spec: unknown key 'no_dta' (did you mean 'no_data'?)",
    ),
    ("bad enum", "no_data: down", "no_data: maybe", "maybe", "'maybe' is not one of: down, up, excluded"),
    ("levels in disorder", "{after: 10m,", "{after: 4m,", "4m,", "levels must escalate"),
    (
        "burn window longer than a month",
        "long: 3d, short: 6h",
        "long: 30d, short: 6h",
        "30d",
        "longer than the shortest contract period",
    ),
    (
        "missing playbook",
        "playbook: ../playbooks/demo.yaml",
        "playbook: no-such.yaml",
        "no-such.yaml",
        "spec.playbook: no playbook at",
    ),
]


@pytest.mark.parametrize(("what", "old", "new", "needle", "words"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_document_says_what_and_where(
    tmp_path: Path, what: str, old: str, new: str, needle: str, words: str
) -> None:
    path, text = sla_file(tmp_path, old, new)
    errors = errors_of(path)
    at = position(text, needle)
    expected = [e for e in errors if e.startswith(f"{path}:{at}: error: ") and words in e]
    assert expected, (at, errors)


def test_the_playbook_path_is_relative_to_the_sla_file(tmp_path: Path) -> None:
    (tmp_path / "contracts").mkdir()
    (tmp_path / "demo.yaml").write_text(DEMO.read_text(encoding="utf-8"), encoding="utf-8")
    path = tmp_path / "contracts" / "sla.yaml"
    path.write_text(
        LAB_TEXT.replace("playbook: ../playbooks/demo.yaml", "playbook: ../demo.yaml"), encoding="utf-8"
    )
    assert load_sla(path).playbook == "../demo.yaml"


def test_an_invalid_playbook_is_named_with_its_first_problem(tmp_path: Path) -> None:
    (tmp_path / "demo.yaml").write_text(
        DEMO.read_text(encoding="utf-8").replace("tier: data\n", "tier: dta\n"), encoding="utf-8"
    )
    (tmp_path / "sla.yaml").write_text(
        LAB_TEXT.replace("playbook: ../playbooks/demo.yaml", "playbook: demo.yaml"), encoding="utf-8"
    )
    (error,) = errors_of(tmp_path / "sla.yaml")
    assert "spec.playbook: 'demo.yaml' is not a valid playbook:" in error and "'dta'" in error


def test_a_tier_above_the_target_is_a_warning(tmp_path: Path) -> None:
    path, text = sla_file(tmp_path, '{from: "99.0%", to: "99.9%"', '{from: "99.0%", to: "99.95%"')
    sla, diagnostics = check_sla(path)
    assert sla is not None
    (warning,) = diagnostics
    at = position(text, '"99.95%"')
    assert str(warning).startswith(f"{path}:{at}: warning: spec.credits.tiers[0]")


def test_a_wide_tier_overlapping_a_later_one_is_found(tmp_path: Path) -> None:
    path, _ = sla_file(tmp_path, '{from: "0%", to: "95.0%"', '{from: "0%", to: "99.5%"')
    assert any("tiers[2]: [0%, 99.5%) overlaps spec.credits.tiers[0]" in e for e in errors_of(path))
    assert any("tiers[2]: [0%, 99.5%) overlaps" in e for e in errors_of(path))


def test_burn_rates_need_a_budget(tmp_path: Path) -> None:
    path, _ = sla_file(tmp_path, 'target: "99.9%"', 'target: "100%"')
    errors = errors_of(path)
    assert any("a 100% target leaves no error budget to burn" in e for e in errors)


# -- hostile files ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "file is empty; an SLA document is a YAML mapping"),
        (b"- a\n- b\n", "an SLA document must be a YAML mapping (apiVersion: drill/v1, kind: SLA, ...)"),
        (b"a: [1, 2\n", "not valid YAML"),
        (b"\x00\x01binary", "binary data"),
        (b"a: 1\n---\nb: 2\n", "an SLA file holds one YAML document"),
        (
            b'a: &a ["x","x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
            b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
            b"e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n",
            "alias",
        ),
    ],
    ids=["empty", "list", "yaml", "binary", "two-docs", "billion-laughs"],
)
def test_hostile_files_are_refused_with_a_location(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "sla.yaml"
    path.write_bytes(content)
    errors = errors_of(path)
    assert re.match(rf"{re.escape(str(path))}:\d+:\d+: error: ", errors[0]), errors
    assert any(words in e for e in errors), errors


def test_a_playbook_given_as_an_sla_is_named_so(tmp_path: Path) -> None:
    (error,) = errors_of(DEMO)
    assert error == (
        f"{DEMO}:9:7: error: kind: must be 'SLA', not 'Playbook': this is not an SLA document;"
        " check a playbook with `drill validate`"
    )


def test_load_sla_raises_a_usage_error_with_every_problem(tmp_path: Path) -> None:
    path, _ = sla_file(tmp_path, 'target: "99.9%"', "target: 99.9")
    path.write_text(path.read_text().replace("Europe/Berlin", "localtime"), encoding="utf-8")
    with pytest.raises(SlaInvalid) as caught:
        load_sla(path)
    assert isinstance(caught.value, UsageError) and caught.value.exit_code == EXIT_USAGE
    lines = str(caught.value).splitlines()
    assert len(lines) == 2 and all(line.startswith(f"{path}:") for line in lines)


# -- the schema ---------------------------------------------------------------------------------
def _properties(node: object, where: str = "#") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            found.append((f"{where}.{name}", prop))
        for key, value in node.items():
            found += _properties(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _properties(value, f"{where}[{i}]")
    return found


def test_every_property_has_a_description_and_an_example() -> None:
    schema = load_schema("sla.schema.json")
    props = _properties(schema)
    assert len(props) > 50
    assert [w for w, p in props if "description" not in p] == []
    assert [w for w, p in props if not p.get("examples")] == []


def test_the_schema_spells_drill_durations() -> None:
    defs = load_schema("sla.schema.json")["$defs"]
    assert defs["duration"]["pattern"] == DURATION_PATTERN
    assert defs["positive_duration"]["pattern"] == UNITS_PATTERN


# -- the command line ---------------------------------------------------------------------------
def invoke(*args: str) -> tuple[int, str]:
    from drill.cli.sla import sla

    result = CliRunner().invoke(sla, list(args))
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_validate_exits_0_for_the_lab_sla() -> None:
    code, out = invoke("validate", str(LAB))
    assert (code, out) == (0, f"{LAB}: valid (2 services, 0 warnings)\n")


def test_validate_exits_2_with_file_line_col_lines(tmp_path: Path) -> None:
    path, text = sla_file(tmp_path, "time_zone: Europe/Berlin", "time_zone: Mars/Olympus")
    code, out = invoke("validate", str(path), str(LAB))
    assert code == 2
    first, second, third = out.splitlines()
    assert first.startswith(f"{path}:{position(text, 'Mars/Olympus')}: error: spec.window.time_zone: unknown")
    assert second == f"{path}: invalid (1 error, 0 warnings)"
    assert third == f"{LAB}: valid (2 services, 0 warnings)"


def test_validate_json(tmp_path: Path) -> None:
    path, _ = sla_file(tmp_path, "short: 5m", "short: 2h")
    code, out = invoke("validate", "--format", "json", str(path))
    data = json.loads(out)
    assert code == 2 and data["valid"] is False
    (diagnostic,) = data["files"][0]["diagnostics"]
    assert diagnostic["path"] == "spec.alerts.burn_rates[0].short" and diagnostic["severity"] == "error"


def test_validate_reads_standard_input() -> None:
    from drill.cli.sla import sla

    text = LAB_TEXT.replace("playbook: ../playbooks/demo.yaml", f"playbook: {DEMO}")
    result = CliRunner().invoke(sla, ["validate", "-"], input=text)
    assert (result.exit_code, result.output) == (0, "<stdin>: valid (2 services, 0 warnings)\n")


def test_validate_a_missing_file_exits_2() -> None:
    code, out = invoke("validate", "/nonexistent/sla.yaml")
    assert code == 2
    assert out.splitlines()[0] == "/nonexistent/sla.yaml: error: cannot read file: No such file or directory"


def test_schema_prints_the_sla_schema() -> None:
    code, out = invoke("schema")
    assert code == 0 and json.loads(out) == load_schema("sla.schema.json")


def test_help_has_an_example() -> None:
    for args in (["--help"], ["validate", "--help"], ["schema", "--help"]):
        code, out = invoke(*args)
        assert code == 0 and "Example:" in out


# -- no traceback, whatever the document holds ---------------------------------------------------
def _paths(node: object, here: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [here]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*here, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, (*here, i))
    return found


LAB_DATA = yaml.safe_load(LAB_TEXT.replace("playbook: ../playbooks/demo.yaml", f"playbook: {DEMO}"))
ODD_VALUES = [
    None,
    True,
    0,
    -1,
    1.5,
    10**30,
    "",
    "x",
    "99.9%",
    "0%",
    "100%",
    "1h",
    "0",
    [],
    [1],
    {},
    {"a": 1},
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(_paths(LAB_DATA)[1:]), st.sampled_from(ODD_VALUES))
def test_any_value_anywhere_gives_diagnostics_not_a_traceback(
    tmp_path: Path, where: tuple[str | int, ...], value: object
) -> None:
    data = copy.deepcopy(LAB_DATA)
    node: Any = data
    for part in where[:-1]:
        node = node[part]
    node[where[-1]] = value
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    sla, diagnostics = check_sla(path)
    assert all(d.location.line > 0 for d in diagnostics)
    assert (sla is None) == any(d.severity == "error" for d in diagnostics)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet="DTSTARRULEFQWKLYBMONHINVC=;:0123456789\nZ-", max_size=80))
def test_any_rrule_text_gives_a_diagnostic_not_a_traceback(tmp_path: Path, rule: str) -> None:
    data = copy.deepcopy(LAB_DATA)
    data["spec"]["exclusions"][0]["rrule"] = rule
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    check_sla(path)  # returns; whatever it says, it raises nothing


def test_slices_below_a_second_are_refused_and_unused_ones_said(tmp_path: Path) -> None:
    path, _ = sla_file(tmp_path, "slice: 1m,", "slice: 500ms,")
    assert any("spec.counting.slice: '500ms' is below 1s" in e for e in errors_of(path))
    path, _ = sla_file(tmp_path, "method: timeslices", "method: occurrences")
    sla, diagnostics = check_sla(path)
    assert sla is not None and sla.counting == "occurrences"
    assert [d.message for d in diagnostics] == [
        "spec.counting.slice: unused when counting occurrences",
        "spec.counting.bad_after: unused when counting occurrences",
    ]


def test_validating_a_valid_sla_imports_no_jsonschema_nor_probe_driver() -> None:
    code = (
        "import sys\nfrom drill.cli.sla import sla\n"
        f"try:\n    sla(['validate', {str(LAB)!r}])\nexcept SystemExit as e:\n    code = e.code\n"
        "print(code, [m for m in ('httpx', 'psycopg', 'redis', 'jsonschema') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip().splitlines()[-1] == "0 []"


def test_a_leap_day_window_recurs_every_four_years(tmp_path: Path) -> None:
    path, _ = sla_file(
        tmp_path,
        "20260104T020000\n        RRULE:FREQ=WEEKLY;BYDAY=SU",
        "20280229T020000\n        RRULE:FREQ=YEARLY",
    )
    assert load_sla(path).exclusions[0].rrule == "DTSTART:20280229T020000\nRRULE:FREQ=YEARLY"


def test_rules_that_never_match_are_refused_in_well_under_a_second_each(tmp_path: Path) -> None:
    """dateutil alone iterates such a rule up to the year 9999 (about 5 s each, measured); the
    check runs on the rule's late 400-year twin. A generous bound: 4 rules, 10 s (not 20 s)."""
    impossible = "DTSTART:20260104T020000\nRRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"
    data = copy.deepcopy(LAB_DATA)
    base = data["spec"]["exclusions"][0]
    data["spec"]["exclusions"] = [{**base, "name": f"never-{i}", "rrule": impossible} for i in range(4)]
    path = tmp_path / "sla.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    started = time.perf_counter()
    errors = errors_of(path)
    assert time.perf_counter() - started < 10
    assert len(errors) == 4 and all("has no occurrence in the 5 years" in e for e in errors)
