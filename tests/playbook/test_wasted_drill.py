"""The rules against playbooks that waste a whole drill: an RPO target nothing measures, a credential
written where a reference belongs, a manual step in an unattended drill.

The golden files (invalid/rpo_not_measured.yaml, literal_credential.yaml, unattended_manual.yaml,
valid/waived_rpo.yaml) pin the messages and positions; these tests pin what they cannot say.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drill.errors import Diagnostic
from drill.plan import build_plan
from drill.playbook.schema import compiled, fragment_name
from drill.playbook.starter import STARTER_PLAYBOOK
from drill.playbook.validate import _credentials, check_playbook, load_playbook
from drill.probes.registry import PROBE_KINDS

HERE = Path(__file__).parent
INVALID = HERE / "invalid"
ROOT = HERE.parents[1]


# -- RPO target with no canary probe -----------------------------------------------------------
def test_only_kinds_that_read_back_canaries_accept_canary() -> None:
    """The validator reads `canary: true` (Probe.writes_canary); the plan's measures_rpo also needs
    the kind's `finish`. The schema keeps them one: only a kind with a finish accepts `canary`."""
    for name, kind in PROBE_KINDS.items():
        properties = compiled(fragment_name("probe", name)).schema.get("properties", {})
        if "canary" in properties:
            assert kind.finish is not None, name


@pytest.mark.parametrize(
    "path",
    [INVALID / "rpo_not_measured.yaml", INVALID / "inject_retry.yaml", HERE / "valid" / "waived_rpo.yaml"],
    ids=lambda p: p.stem,
)
def test_the_rpo_warning_names_exactly_the_assets_the_plan_cannot_measure(path: Path) -> None:
    warnings: list[Diagnostic] = []
    playbook = load_playbook(path, warnings=warnings)
    plan = build_plan(playbook)
    unmeasured = {
        a.id
        for a in plan.assets
        if a.rpo_ms is not None
        and not any(p.measures_rpo for p in a.probes)
        and not any(w.objective == "rpo" for w in a.waivers)
    }
    warned = {w.message.split("of asset ")[1].split("'")[1] for w in warnings if w.code == "rpo-unmeasured"}
    assert warned == unmeasured


def test_one_rpo_warning_per_asset_of_a_shared_tier(tmp_path: Path) -> None:
    count = 500
    assets = "".join(
        f"  - {{id: a{i}, tier: tier-0, probes: [{{name: port, tcp: {{host: 127.0.0.1, port: {1024 + i}}}}}]}}\n"
        for i in range(count)
    )
    path = tmp_path / "many.yaml"
    path.write_text(
        "apiVersion: drill/v1\nkind: Playbook\nmetadata: {name: many, owner: dr@example.com}\n"
        "tiers:\n  - {name: tier-0, rto: 5m, rpo: 0}\nassets:\n"
        f"{assets}scenario:\n  - {{name: declare, mark: disaster}}\n"
    )
    playbook, diagnostics = check_playbook(path)
    assert playbook is not None
    assert [d.code for d in diagnostics] == ["rpo-unmeasured"] * count
    assert [d.location.line for d in diagnostics] == list(range(7, 7 + count))
    waived = tmp_path / "waived.yaml"
    waived.write_text(path.read_text().replace("rpo: 0}", 'rpo: 0, waive: {rpo: "restore test"}}'))
    assert check_playbook(waived)[1] == []


# -- credentials written literally -------------------------------------------------------------
SECRETS_IN_THE_GOLDEN_FILE = [
    "R0123456789abcdef",
    "4f2a9c",
    "s3cr3t",
    "k-123",
    "eyJhbGciOiJIUzI1NiJ9",
    "hunter2",
    "ZHJpbGw6aHVudGVyMg==",
    "changeme",
]


def test_a_credential_warning_never_shows_the_value() -> None:
    path = INVALID / "literal_credential.yaml"
    playbook, diagnostics = check_playbook(path)
    assert playbook is not None  # warnings only: a false positive must not block a drill
    assert {d.code for d in diagnostics} == {"credential"}
    text = json.dumps([d.as_dict() for d in diagnostics]) + "\n".join(map(str, diagnostics))
    for secret in SECRETS_IN_THE_GOLDEN_FILE:
        assert secret in path.read_text()
        assert secret not in text


@pytest.mark.parametrize(
    ("key", "text", "found"),
    [
        ("password", "hunter2", [("the value", "literal")]),
        ("password", "", []),
        ("password", "${env:PW}", []),
        ("password", "${file:/run/secrets/pw}", []),
        ("password", "${var:PW}", [("the value", "var")]),
        ("token", "${steps.login.output}", []),
        ("Authorization", "Bearer {{TOKEN}}", []),
        ("Proxy-Authorization", "Basic abc", [("the value", "literal")]),
        ("x-api-key", "abc", [("the value", "literal")]),
        ("AWS_SECRET_ACCESS_KEY", "abc", [("the value", "literal")]),
        ("PGPASSWORD", "abc", [("the value", "literal")]),
        ("client_secret", "abc", [("the value", "literal")]),
        ("canary_key", "drill:canary", []),
        ("public_key", "ssh-ed25519 AAAA", []),
        ("name", "login", []),
        ("url", "https://user@example.com/", []),
        ("url", "https://user:${env:PW}@example.com/", []),
        ("url", "https://user:${file:/run/secrets/pw}@example.com/", []),
        ("url", "https://${env:USER}:${var:PW}@example.com/", [("the password in the URL", "var")]),
        ("url", "redis://:pw@127.0.0.1:6379/0", [("the password in the URL", "literal")]),
        ("url", "https://example.com/a@b?x=1", []),
        ("url", "https://example.com/?token=", []),
        ("url", "https://example.com/?sig=abc&x=1#frag", [("URL parameter 'sig'", "literal")]),
        (
            "url",
            "https://s3.example.com/k?X-Amz-Signature=abc",
            [("URL parameter 'X-Amz-Signature'", "literal")],
        ),
        ("url", "https://example.com/?key=${env:KEY}", []),
        ("url", "${env:WEBHOOK_URL}", []),
        ("argv", "--url=https://u:p@example.com", [("the password in the URL", "literal")]),
        ("dsn", "host=db user=drill password='${env:PW}'", []),
        ("dsn", "host=db user=drill password='a b'", [("the password in the connection string", "literal")]),
        ("dsn", "host=db user=drill", []),
    ],
)
def test_what_looks_like_a_literal_credential(key: str, text: str, found: list[tuple[str, str]]) -> None:
    assert list(_credentials(key, text)) == found


def test_a_credential_with_an_error_of_its_own_gets_only_the_error(tmp_path: Path) -> None:
    """An action's url must be http(s): that error says what to fix; no second warning at the value."""
    path = tmp_path / "ftp.yaml"
    path.write_text(
        "apiVersion: drill/v1\nkind: Playbook\nmetadata: {name: ftp, owner: dr@example.com}\n"
        "tiers:\n  - {name: tier-0, rto: 5m}\n"
        "assets:\n  - {id: a, tier: tier-0, probes: [{name: port, tcp: {host: 127.0.0.1, port: 1}}]}\n"
        "scenario:\n  - {name: declare, mark: disaster}\n"
        "  - {name: fetch, action: {http: {url: 'ftp://admin:pw@10.0.0.5/x'}}}\n"
        "  - {name: fetch too, action: {command: {argv: [curl, 'ftp://admin:pw@10.0.0.5/x']}}}\n"
    )
    _, diagnostics = check_playbook(path)
    assert [(d.severity, d.path, d.code) for d in diagnostics] == [
        ("error", "scenario[1].action.http.url", "schema"),
        ("warning", "scenario[2].action.command.argv[1]", "credential"),
    ]


# -- manual steps in an unattended drill ---------------------------------------------------------
def test_manual_steps_are_fine_when_someone_is_there(tmp_path: Path) -> None:
    path = INVALID / "unattended_manual.yaml"
    attended = tmp_path / "attended.yaml"
    attended.write_text(path.read_text().replace("  unattended: true\n", "  unattended: false\n"))
    playbook, diagnostics = check_playbook(attended)
    assert playbook is not None and diagnostics == []


# -- what ships ----------------------------------------------------------------------------------
def test_the_shipped_playbooks_and_the_starter_have_no_error(tmp_path: Path) -> None:
    starter = tmp_path / "playbook.yaml"
    starter.write_text(STARTER_PLAYBOOK)
    for path in [*sorted((ROOT / "playbooks").glob("*.yaml")), starter]:
        playbook, diagnostics = check_playbook(path)
        assert playbook is not None, [str(d) for d in diagnostics if d.severity == "error"]
        assert diagnostics == [], (path, [str(d) for d in diagnostics])
