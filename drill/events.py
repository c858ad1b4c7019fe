"""Journal events: the one record of a drill run.

The runner emits EventDrafts; the journal stamps them with seq, prev and utc and writes one
canonical JSON object per line. Results and reports are pure folds over these events, so
every name here is part of the evidence format: add types, never rename them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Event types (the `type` field). Data keys are documented next to each.
RUN_STARTED = "run.started"  # run_id, playbook{name,sha256,path,document}, user, host, tool_version, options
RUN_FINISHED = "run.finished"  # status: completed|aborted|failed, reason
PROBE_OBSERVED = "probe.observed"  # probe, ok, reason, latency_us, tick, scheduled_mono_ns, jitter_us
PROBE_OVERRUN = "probe.overrun"  # probe, missed_ticks: probe slower than its interval
ASSET_STATE = "asset.state"  # state: up|down, at_mono_ns, lower_mono_ns, upper_mono_ns, probe, streak
STEP_STARTED = "step.started"  # step, kind, phase: scenario|rollback
STEP_FINISHED = "step.finished"  # step, kind, phase, status: ok|failed|skipped|aborted, reason, inject
STEP_ATTEMPT = "step.attempt"  # step, attempt, ok, reason (each retry of an action)
MARK = "mark"  # name, step
MANUAL_ANSWERED = "manual.answered"  # step, answer: done|skip|abort, who, prompt, auto
INJECTED = "failure.injected"  # step: the instant t_inject (completion of an inject step or mark 'disaster')
STOP_TRIPPED = "stop.tripped"  # condition, reason
SIGNAL_RECEIVED = "signal.received"  # signal
ROLLBACK_STARTED = "rollback.started"  # reason
ROLLBACK_FINISHED = "rollback.finished"  # status
# probe, last_acked_seq, last_acked_utc, last_surviving_seq, surviving_utc, lost_writes, rpo_ms
RPO_MEASURED = "rpo.measured"
RPO_UNMEASURED = "rpo.unmeasured"  # probe, reason, last_acked_seq, last_acked_utc: survivors unreadable
CANARY_WRITTEN = "canary.written"  # probe, seq, utc: only the last acknowledged write matters, kept sparse
PAGE_SENT = "page.sent"  # page_id, chain, contact, via, assets, ok, reason, attempts
PAGE_ACKED = "page.acked"  # page_id, chain, contact, by, ack_ms
ACK_REFUSED = "ack.refused"  # reason (token never shown)
CHAIN_EXHAUSTED = "chain.exhausted"  # chain, assets
DRY_RUN_CHECKED = "dryrun.checked"  # probe, ok, reason


@dataclass(frozen=True, slots=True)
class EventDraft:
    """What an emitter knows: type, instant, asset and data; the journal adds the rest."""

    type: str
    mono_ns: int
    data: dict[str, Any] = field(default_factory=dict)
    asset: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One journal line, as written."""

    seq: int
    prev: str
    mono_ns: int
    utc: str
    type: str
    data: dict[str, Any]
    asset: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seq": self.seq,
            "prev": self.prev,
            "mono_ns": self.mono_ns,
            "utc": self.utc,
            "type": self.type,
            "data": self.data,
        }
        if self.asset is not None:
            out["asset"] = self.asset
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Event:
        return cls(
            seq=int(raw["seq"]),
            prev=str(raw["prev"]),
            mono_ns=int(raw["mono_ns"]),
            utc=str(raw["utc"]),
            type=str(raw["type"]),
            data=dict(raw.get("data") or {}),
            asset=raw.get("asset"),
        )
