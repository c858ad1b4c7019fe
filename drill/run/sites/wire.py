"""What travels between the coordinator and the agents, as msgspec structs encoded in JSON.

Orders (assignment, release) go to one durable stream, a subject per site; observations to
another, a subject per run and site, each published with a message id (run, site, agent
incarnation, sequence) so the broker keeps one copy of a publish retried after a lost ack.
A clock reading answers a plain request: it is how the coordinator measures an agent's clock
and, at the same time, whether the site is still there.
"""

from __future__ import annotations

from typing import Any

import msgspec

ORDERS_STREAM = "DRILL_ORDERS"
OBSERVATIONS_STREAM = "DRILL_OBSERVATIONS"
ORDERS_SUBJECTS = "drill.orders.*"
OBSERVATIONS_SUBJECTS = "drill.observations.*.*"
DEDUPE_WINDOW_S = 15 * 60  # a retried publish within this window is stored once


def token(name: str) -> str:
    """A playbook name as one subject token: names may hold '.', tokens may not ('~' is not a
    name character, so no two names collide)."""
    return name.replace(".", "~")


def orders_subject(site: str) -> str:
    return f"drill.orders.{token(site)}"


def observations_subject(run_id: str, site: str = "*") -> str:
    return f"drill.observations.{token(run_id)}.{token(site) if site != '*' else '*'}"


def clock_subject(site: str) -> str:
    return f"drill.clock.{token(site)}"


def message_id(run_id: str, site: str, agent: str, seq: int) -> str:
    return f"{run_id}/{site}/{agent}/{seq}"


class ProbeOrder(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One probe for a site to run: the playbook's definition, references unresolved (each
    agent resolves `${env:...}` from its own environment, so no secret crosses the broker)."""

    asset: str
    name: str
    kind: str
    params: dict[str, Any]
    interval_ms: int
    timeout_ms: int


class Assignment(msgspec.Struct, frozen=True, tag="assignment", forbid_unknown_fields=True):
    run_id: str
    site: str
    probes: list[ProbeOrder]
    until_utc_ms: int  # an agent stops by itself then, even if no release ever comes


class Release(msgspec.Struct, frozen=True, tag="release", forbid_unknown_fields=True):
    run_id: str
    site: str


Order = Assignment | Release


class SiteObservation(msgspec.Struct, frozen=True, tag="observation", forbid_unknown_fields=True):
    """One probe run by an agent, its instants on the agent's wall clock."""

    run_id: str
    site: str
    agent: str
    seq: int
    asset: str
    probe: str
    tick: int
    ok: bool
    latency_us: int
    reason: str
    started_utc_ns: int
    jitter_us: int


class SiteDone(msgspec.Struct, frozen=True, tag="done", forbid_unknown_fields=True):
    """An agent's last word on an assignment: how many observations it made (and how many it
    had to drop while the broker was away), so the coordinator can tell whether it got them all."""

    run_id: str
    site: str
    agent: str
    observed: int
    dropped: int


Report = SiteObservation | SiteDone


class ClockReading(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An agent's answer to a clock request: its wall clock when it answered, and how far that
    clock may be from true time by its own synchronisation (0 when it does not know)."""

    agent: str
    utc_ns: int
    error_ns: int
    source: str


encode = msgspec.json.Encoder().encode
decode_order = msgspec.json.Decoder(Order).decode
decode_report = msgspec.json.Decoder(Report).decode
decode_clock = msgspec.json.Decoder(ClockReading).decode
