"""The SLA report end to end: exact figures from an incidents CSV, a real drill journal, the
signature checked by the real ssh-keygen, the views, and the CLI's exit codes.

The exactness case is computed by hand from the contract in examples/sla-lab.yaml (99.9 % per
calendar month in Europe/Berlin, Sundays 02:00-04:00 excluded, 1-minute slices, partial at
30 %): March 2026 has 44,580 minutes (the spring change), its five Sunday windows take 600 of
them (29 March 02:00 does not exist and is read as 03:00 CEST, still 2 h), leaving 43,980
eligible minutes, so 99.0 % allows exactly 439.8 minutes of weighted downtime: 438 minutes down
plus 6 minutes partial (6 × 30 % = 1.8).
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from drill.cli import cli
from drill.cli.sla_report import verify as verify_cmd
from drill.errors import VerificationFailed
from drill.evidence.canonical import is_canonical
from drill.report.sign import generate_keypair, public_key_line
from drill.sla.calendar import period_of
from drill.sla.load import load_sla
from drill.sla.model import Window
from drill.sla.report import NAMESPACE, REPORT_FILE, build_report, verify_report_dir
from drill.sla.sources import timeline_from_journals
from tests.sla.test_sources import Journals, journals, web_states  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parents[2]
SLA_FILE = ROOT / "examples" / "sla-lab.yaml"
MIN = 60_000

# web: 438 min down + 6 min partial = 439.8 weighted minutes = exactly 1 % of 43,980: 99.000 %
# orders: one more bad minute: 440.8 / 43,980 = 1.00227 % -> 98.997 %, the 25 % tier
INCIDENTS = """\
service,start,end,impact
web,2026-03-10T10:00:00+01:00,2026-03-10T17:18:00+01:00,down
web,2026-03-11T10:00:00+01:00,2026-03-11T10:06:00+01:00,partial
orders,2026-03-10T10:00:00+01:00,2026-03-10T17:19:00+01:00,down
orders,2026-03-11T10:00:00+01:00,2026-03-11T10:06:00+01:00,partial
"""


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture
def incidents(tmp_path: Path) -> Path:
    path = tmp_path / "incidents.csv"
    path.write_text(INCIDENTS, encoding="utf-8")
    return path


@pytest.fixture
def march(tmp_path: Path, incidents: Path) -> dict[str, Any]:
    out = tmp_path / "out"
    code, text = run_cli(
        "sla",
        "report",
        str(SLA_FILE),
        "--period",
        "2026-03",
        "--incidents",
        str(incidents),
        "--out",
        str(out),
    )
    assert code == 1, text  # web is below 99.9 %: breached, the gate fails
    data = json.loads((out / REPORT_FILE).read_bytes())
    return {"out": out, "data": data, "text": text}


def service(data: dict[str, Any], name: str) -> dict[str, Any]:
    rows = [s for s in data["services"] if s["service"] == name]
    assert len(rows) == 1
    return rows[0]  # type: ignore[no-any-return]


def test_march_2026_in_berlin_is_exact(march: dict[str, Any]) -> None:
    data = march["data"]
    assert isinstance(data, dict)
    web = service(data, "web")
    assert web["period"]["start_utc"] == "2026-02-28T23:00:00.000+00:00"
    assert web["period"]["end_utc"] == "2026-03-31T22:00:00.000+00:00"
    assert web["period"]["start_local"] == "2026-03-01T00:00:00+01:00"
    assert web["period"]["end_local"] == "2026-04-01T00:00:00+02:00"
    assert web["total_ms"] == 44_580 * MIN
    assert web["excluded_by_reason"] == [{"name": "sunday-maintenance", "ms": 600 * MIN}]
    assert web["eligible_ms"] == 43_980 * MIN
    assert web["no_data_ms"] is None  # not measured: an incidents CSV cannot show a monitoring gap
    assert web["downtime_raw_ms"] == 444 * MIN
    assert web["downtime_weighted_ms"] == 26_388_000  # 439.8 min
    assert web["availability_pct_milli"] == 99_000
    assert web["allowed_downtime_ms"] == 2_638_800  # 43.98 min
    assert web["budget_remaining_ms"] == 2_638_800 - 26_388_000
    assert web["budget_consumed_pct_milli"] == 1_000_000  # 1000 %
    assert web["period_burn_rate_milli"] == 10_000  # 1 % bad over a 0.1 % budget: 10x
    assert web["status"] == "breached"
    assert web["thresholds_crossed"] == []  # 99 % is above the 95 % and 90 % thresholds
    credit = web["credit"]
    assert credit["tier"]["lower_pct_milli"] == 99_000  # exactly 99.0 % is in [99.0, 99.9)
    assert credit["share_pct_milli"] == 10_000
    assert credit["amount_minor"] == 15_000  # 10 % of 1500.00 EUR
    assert web["cost_minor"] == 5_277_600  # 120.00 EUR x 439.8 min
    assert [(i["start_utc"], i["end_utc"], i["health"]) for i in web["incidents"]] == [
        ("2026-03-10T09:00:00.000+00:00", "2026-03-10T16:18:00.000+00:00", "down"),
        ("2026-03-11T09:00:00.000+00:00", "2026-03-11T09:06:00.000+00:00", "partial"),
    ]
    assert web["incidents"][0]["sources"][0].endswith("incidents.csv:2")
    orders = service(data, "orders")
    assert orders["availability_pct_milli"] == 98_997  # rounded down, never up over the edge
    assert orders["credit"]["share_pct_milli"] == 25_000
    assert orders["credit"]["amount_minor"] == 37_500
    assert "Counting by time slices of 1 min" in web["method"]


def test_year_view_and_days(march: dict[str, Any]) -> None:
    data = march["data"]
    assert isinstance(data, dict)
    (year,) = data["years"]
    assert year["label"] == "2026"
    assert year["total_ms"] == 365 * 24 * 60 * MIN  # the DST hours cancel out
    assert year["allowed_downtime_ms"] == 8 * 3_600_000 + 45 * MIN + 36_000  # 8.76 h
    assert [p["label"] for p in year["periods"]] == [f"2026-{m:02d}" for m in range(1, 13)]
    assert [p["label"] for p in year["periods"] if p["in_report"]] == ["2026-03"]
    allowed = {p["label"]: p["allowed_downtime_ms"] for p in year["periods"]}
    assert allowed["2026-04"] == 2_592_000  # 43.2 min in a 30-day month
    assert allowed["2026-01"] == 2_678_400  # 44.64 min in a 31-day month
    web_year = next(s for s in year["services"] if s["service"] == "web")
    assert web_year["remaining_ms"] == year["allowed_downtime_ms"] - 26_388_000
    web = service(data, "web")
    days = web["days"]
    assert len(days) == 31
    spring = next(d for d in days if d["label"] == "2026-03-29")
    assert spring["end_utc"] == "2026-03-29T22:00:00.000+00:00"  # a 23-hour day
    tenth = next(d for d in days if d["label"] == "2026-03-10")
    assert tenth["downtime_weighted_ms"] == 438 * MIN
    assert sum(d["downtime_weighted_ms"] for d in days) == 26_388_000


def test_json_is_canonical_and_views_are_deterministic(
    march: dict[str, Any], incidents: Path, tmp_path: Path
) -> None:
    out = march["out"]
    assert isinstance(out, Path)
    assert is_canonical((out / REPORT_FILE).read_bytes())
    html = (out / "sla-report.html").read_text(encoding="utf-8")
    assert "<script" not in html.lower() and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert html.count('<svg class="calendar"') == 2  # one calendar per service (one period)
    assert html.count('<svg class="burndown"') == 2
    assert "2026-03-10T09:00:00.000+00:00" in html  # the incidents list
    rows = list(csv.DictReader(io.StringIO((out / "sla-report.csv").read_text(encoding="utf-8"))))
    assert [(r["period"], r["service"]) for r in rows] == [("2026-03", "web"), ("2026-03", "orders")]
    assert rows[0]["availability_pct"] == "99.000" and rows[0]["credit_minor"] == "15000"
    assert rows[0]["status"] == "breached" and rows[0]["incidents"] == "2"
    md = (out / "sla-report.md").read_text(encoding="utf-8")
    assert "| 2026-03 | web | 99.000 % |" in md and "## Year 2026" in md
    # rendering is a function of the report: same report, same bytes
    from drill.sla.render import render_html

    sla = load_sla(SLA_FILE)
    from drill.sla.sources import timeline_from_incidents_csv

    period = period_of(sla.window, 1_773_000_000_000)  # in March 2026
    lines = [
        timeline_from_incidents_csv(incidents, s.name, period.start_ms, period.end_ms) for s in sla.services
    ]
    a = build_report(sla, lines, [period], (), generated_utc="2026-04-01T08:00:00.000+00:00")
    b = build_report(sla, lines, [period], (), generated_utc="2026-04-01T08:00:00.000+00:00")
    assert render_html(a) == render_html(b)


def test_the_text_summary_fits_80_columns(march: dict[str, Any]) -> None:
    text = march["text"]
    assert isinstance(text, str)
    lines = [line for line in text.splitlines() if not line.startswith("written: ")]  # a path is a path
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    web = next(line for line in lines if line.strip().startswith("web "))
    assert "99.000 %" in web and "breached" in web and "10 % = 150.00 EUR" in web
    assert "breached: web (2026-03), orders (2026-03)" in text


# ---------------------------------------------------------------- signing


def make_signer(folder: Path, name: str = "ana") -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    key = folder / "sla-key"
    public = generate_keypair(key)
    allowed = folder / "allowed_signers"
    allowed.write_text(f'{name} namespaces="{NAMESPACE}" {public_key_line(public)}\n', encoding="ascii")
    return key, allowed


def ssh_keygen_verify(out: Path, allowed: Path, name: str) -> subprocess.CompletedProcess[bytes]:
    sig = out / f"{REPORT_FILE}.{name}.sig"
    with (out / REPORT_FILE).open("rb") as data:
        return subprocess.run(
            ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", name, "-n", NAMESPACE, "-s", str(sig)],
            stdin=data,
            capture_output=True,
            check=False,
        )


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen is not installed")
def test_the_signature_verifies_with_ssh_keygen_and_fails_after_one_byte(
    tmp_path: Path, incidents: Path
) -> None:
    key, allowed = make_signer(tmp_path / "signer")
    out = tmp_path / "signed"
    code, text = run_cli(
        "sla", "report", str(SLA_FILE), "--period", "2026-03", "--incidents", str(incidents),
        "--out", str(out), "--sign-key", str(key), "--signer", "ana",
    )  # fmt: skip
    assert code == 1, text
    data = json.loads((out / REPORT_FILE).read_bytes())
    assert data["prepared_by"]["principal"] == "ana"
    ok = ssh_keygen_verify(out, allowed, "ana")
    assert ok.returncode == 0, ok.stderr
    assert b'Good "drill-sla-report-v1" signature for ana' in ok.stdout + ok.stderr
    assert [s.principal for s in verify_report_dir(out, allowed)] == ["ana"]
    # a drill report's namespace is not this one: the same signature does not pass as one
    wrong = subprocess.run(
        ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "ana", "-n", "drill-report-v1",
         "-s", str(out / f"{REPORT_FILE}.ana.sig")],
        stdin=(out / REPORT_FILE).open("rb"), capture_output=True, check=False,
    )  # fmt: skip
    assert wrong.returncode != 0
    raw = bytearray((out / REPORT_FILE).read_bytes())
    at = raw.index(b'"availability_pct_milli":99000') + len(b'"availability_pct_milli":9')
    raw[at] = ord("8")  # 99000 -> 98000: one byte
    (out / REPORT_FILE).write_bytes(bytes(raw))
    bad = ssh_keygen_verify(out, allowed, "ana")
    assert bad.returncode != 0
    with pytest.raises(VerificationFailed, match="does not match"):
        verify_report_dir(out, allowed)


def test_sla_verify_command(tmp_path: Path, incidents: Path) -> None:

    from drill.cli import DrillGroup

    group = DrillGroup("t", commands={"verify": verify_cmd})
    key, allowed = make_signer(tmp_path / "signer")
    out = tmp_path / "signed"
    run_cli(
        "sla", "report", str(SLA_FILE), "--period", "2026-03", "--incidents", str(incidents),
        "--out", str(out), "--sign-key", str(key), "--signer", "ana",
    )  # fmt: skip
    result = CliRunner().invoke(group, ["verify", str(out), "--allowed-signers", str(allowed)])
    assert result.exit_code == 0, result.output
    assert "verified: signed by ana" in result.output
    _, other_allowed = make_signer(tmp_path / "someone-else")  # ana's name, another key
    result = CliRunner().invoke(group, ["verify", str(out), "--allowed-signers", str(other_allowed)])
    assert result.exit_code == 1, result.output
    assert "not allowed to sign" in result.output
    result = CliRunner().invoke(
        group, ["verify", str(tmp_path / "nowhere"), "--allowed-signers", str(allowed)]
    )
    assert result.exit_code == 2, result.output


# ---------------------------------------------------------------- CLI


def test_exit_0_when_no_service_breached(tmp_path: Path) -> None:
    quiet = tmp_path / "quiet.csv"
    quiet.write_text(
        "service,start,end,impact\nweb,2026-03-10T10:00:00+01:00,2026-03-10T10:10:00+01:00,down\n"
    )
    code, text = run_cli(
        "sla", "report", str(SLA_FILE), "--period", "2026-03", "--incidents", str(quiet), "--format", "json"
    )
    assert code == 0, text
    data = json.loads(text)
    assert [s["status"] for s in data["services"]] == ["ok", "ok"]
    assert service(data, "web")["availability_pct_milli"] == 99_977  # 10 / 43,980 min down
    assert service(data, "web")["credit"]["amount_minor"] == 0  # in no tier: no credit


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--period", "2026-13"], "no month 13"),
        (["--period", "March"], "expected 2026-03"),
        ([], "which period"),
        (["--from", "2026-03-01T00:00:00", "--to", "2026-04-01"], "no UTC offset"),
        (["--period", "2026-03", "--from", "2026-03-01"], "not both"),
        (["--period", "2026-03", "--sign-key", "k"], "go together"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], message: str, incidents: Path) -> None:
    code, text = run_cli("sla", "report", str(SLA_FILE), "--incidents", str(incidents), *args)
    assert code == 2, text
    assert message in text and "Traceback" not in text


def test_prometheus_needs_a_query(incidents: Path) -> None:
    code, text = run_cli(
        "sla", "report", str(SLA_FILE), "--period", "2026-03", "--prometheus", "http://127.0.0.1:9"
    )
    assert code == 2 and "needs --query" in text
    code, text = run_cli(
        "sla", "report", str(SLA_FILE), "--period", "2026-03", "--prometheus", "http://127.0.0.1:9",
        "--query", "web=probe_success",
    )  # fmt: skip
    assert code == 2 and "no --query for service orders" in text


def test_exactly_one_source(incidents: Path, tmp_path: Path) -> None:
    code, text = run_cli("sla", "report", str(SLA_FILE), "--period", "2026-03")
    assert code == 2 and "exactly one source" in text
    code, text = run_cli(
        "sla", "report", str(SLA_FILE), "--period", "2026-03", "--incidents", str(incidents),
        "--journal", str(tmp_path / "j.jsonl"),
    )  # fmt: skip
    assert code == 2 and "exactly one source" in text


# ---------------------------------------------------------------- a real drill journal


def test_a_real_journal_gives_the_incident_of_its_down_span(journals: Journals, tmp_path: Path) -> None:  # noqa: F811
    from drill.clock import utc_iso_ms

    states = web_states(journals.demo)
    (_, down_at), _ = states
    sla = load_sla(SLA_FILE)
    month = period_of(Window("month", sla.window.time_zone), down_at).label
    out = tmp_path / "real"
    code, text = run_cli(
        "sla",
        "report",
        str(SLA_FILE),
        "--period",
        month,
        "--journal",
        str(journals.demo.parent),
        "--out",
        str(out),
        "--format",
        "json",
    )  # fmt: skip (the run's folder: its journal.jsonl)
    data = json.loads(text)
    web = service(data, "web")
    # a few seconds observed in a month: far too little data to call it a measurement
    assert web["status"] == "insufficient-data"
    assert code == 0  # insufficient data is not a breach
    timeline = timeline_from_journals([journals.demo], "web", ["web/front"])
    downs = [s for s in timeline.spans if s.health == "down"]
    expected = [(utc_iso_ms(downs[0].start_ms), utc_iso_ms(downs[-1].end_ms))]
    found = [(i["start_utc"], i["end_utc"]) for i in web["incidents"]]
    assert found == expected
    assert abs(downs[0].start_ms - down_at) <= 200
    assert all(re.search(r"journal .*#\d+-\d+", src) for src in web["incidents"][0]["sources"])
    assert web["no_data_ms"] > 0 and web["no_data_policy"] == "down"
    kpi = next(k for k in data["kpis"] if k["kind"] == "response")
    # the demo pages lab-oncall once and the lab's on-call acknowledges within a second
    assert (kpi["verdict"], kpi["count"], kpi["met"]) == ("met", 1, 1)
    assert kpi["worst_ms"] is not None and 0 < kpi["worst_ms"] <= kpi["within_ms"]
    assert any("web in " in n and "insufficient data" in n for n in data["notes"])
    delay = next(k for k in data["kpis"] if k["kind"] == "delay")
    # the lab's canary round trips: measured from the journal (two failed during the outage)
    assert delay["verdict"] == "missed" and delay["count"] and delay["over_limit"]
