"""Playbook `sites:`: who probes what from where, the quorum rule, and the mistakes validate names."""

from __future__ import annotations

import textwrap
from pathlib import Path

from drill.errors import Diagnostic
from drill.playbook.model import Playbook
from drill.playbook.validate import check_playbook

HEAD = """\
apiVersion: drill/v1
kind: Playbook
metadata: {name: sites, owner: test@drill.example}
tiers:
  - {name: web, rto: 10s}
scenario:
  - {name: declare disaster, mark: disaster}
"""


def _check(tmp_path: Path, body: str) -> tuple[Playbook | None, list[Diagnostic]]:
    path = tmp_path / "p.yaml"
    path.write_text(HEAD + textwrap.dedent(body))
    return check_playbook(path)


def _errors(diagnostics: list[Diagnostic]) -> list[str]:
    return [d.message for d in diagnostics if d.severity == "error"]


def test_probes_inherit_the_assets_sites_and_the_quorum_defaults_to_a_majority(tmp_path: Path) -> None:
    playbook, diagnostics = _check(
        tmp_path,
        """\
        sites: [{name: eu-west}, {name: us-east}, {name: ap-south, description: Singapore}]
        assets:
          - id: shop
            tier: web
            sites: [eu-west, us-east, ap-south]
            probes:
              - {name: health, http: {url: "http://127.0.0.1:1/"}}
              - {name: login, sites: [eu-west, us-east], quorum: 1, http: {url: "http://127.0.0.1:1/login"}}
              - {name: port, tcp: {host: 127.0.0.1, port: 1}}
        """,
    )
    assert _errors(diagnostics) == []
    assert playbook is not None
    health, login, port = playbook.assets[0].probes
    assert (health.sites, health.quorum, health.kind) == (("eu-west", "us-east", "ap-south"), 2, "http")
    assert (login.sites, login.quorum) == (("eu-west", "us-east"), 1)
    assert port.sites == ("eu-west", "us-east", "ap-south")  # inherited: every probe of the asset
    assert [s.name for s in playbook.sites] == ["eu-west", "us-east", "ap-south"]


def test_a_probe_without_sites_stays_on_the_coordinator(tmp_path: Path) -> None:
    playbook, diagnostics = _check(
        tmp_path,
        """\
        sites: [{name: eu-west}]
        assets:
          - {id: shop, tier: web, probes: [{name: health, http: {url: "http://127.0.0.1:1/"}}]}
        """,
    )
    assert _errors(diagnostics) == []
    assert playbook is not None
    probe = playbook.assets[0].probes[0]
    assert not probe.remote and probe.quorum == 0


def test_validate_names_each_site_mistake(tmp_path: Path) -> None:
    _, diagnostics = _check(
        tmp_path,
        """\
        sites: [{name: eu-west}, {name: us-east}, {name: eu-west}]
        assets:
          - id: shop
            tier: web
            sites: [eu-west, us-eats]
            quorum: 3
            probes:
              - {name: health, http: {url: "http://127.0.0.1:1/"}}
          - id: orders
            tier: web
            probes:
              - {name: canary, sites: [eu-west], kv: {url: "http://127.0.0.1:1/", canary: true}}
        """,
    )
    errors = _errors(diagnostics)
    assert any("duplicate site 'eu-west'" in e for e in errors), errors
    assert any("unknown site 'us-eats'" in e and "us-east" in e for e in errors), errors
    assert any("quorum 3 needs more sites than the 2 that probe it" in e for e in errors), errors
    assert any("a canary probe cannot run at sites" in e for e in errors), errors


def test_sites_named_but_none_declared(tmp_path: Path) -> None:
    _, diagnostics = _check(
        tmp_path,
        """\
        assets:
          - {id: shop, tier: web, probes: [{name: health, sites: [eu-west], http: {url: "http://127.0.0.1:1/"}}]}
        """,
    )
    assert any("site 'eu-west' named but the playbook declares no sites" in e for e in _errors(diagnostics))
