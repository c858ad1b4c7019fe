"""Real PostgreSQL promotion drills (asynchronous and synchronous): RTO and RPO vs ground truth."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import psycopg
import pytest

from drill.clock import SystemClock
from drill.evidence.events import RunStatus
from drill.results import AssetResult, RpoResult
from tests.support.drills import HookPrompter, exit_watch, mono_of, poll_until, run_playbook
from tests.support.servers import PostgresPair

pytestmark = pytest.mark.integration
PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "postgres.yaml"
INTERVAL_MS = 100
SLACK_MS = 60


def _env(pair: PostgresPair) -> dict[str, str]:
    return {
        "DRILL_PG_DSN": pair.dsn(),
        "DRILL_PG_PRIMARY_PID": str(pair.procs["primary"].pid),
        "DRILL_PG_CTL": str(pair.pg_ctl_wrapper()),
        "DRILL_PG_STANDBY_DIR": str(pair.datadir("standby")),
        "DRILL_PG_STANDBY_PORT": str(pair.standby_port),
        "DRILL_PSQL": str(pair.bindir / "psql"),
    }


def _playbook_with_cut(tmp_path: Path) -> Path:
    """The example plus a manual step the test answers by cutting replication 500 ms before the stop."""
    cut = (
        "  - name: cut replication\n    manual: cut replication (the test does it)\n"
        "  - name: writes only the primary holds\n    pause: 500ms\n"
    )
    text = PLAYBOOK.read_text().replace(
        "  - name: stop the primary immediately\n", cut + "  - name: stop the primary immediately\n"
    )
    path = tmp_path / "postgres-cut.yaml"
    path.write_text(text)
    return path


class Cut:
    """Freeze the standby's WAL receiver and end the primary's WAL senders; resume after the stop."""

    def __init__(self, pair: PostgresPair) -> None:
        self.pair = pair
        self.receiver = 0

    def __call__(self) -> None:
        self.receiver = int(self.pair.sql(self.pair.standby_port, "SELECT pid FROM pg_stat_wal_receiver"))
        os.kill(self.receiver, signal.SIGSTOP)
        self.pair.sql(self.pair.primary_port, "SELECT pg_terminate_backend(pid) FROM pg_stat_replication")

    async def resume_after_stop(self) -> None:
        await poll_until(lambda: self.pair.procs["primary"].popen.poll() is not None)
        if self.receiver:
            os.kill(self.receiver, signal.SIGCONT)


class Writable:
    """Ground truth: the standby is out of recovery and waits for no synchronous standby."""

    def __init__(self, pair: PostgresPair) -> None:
        dsn = f"postgresql://postgres@127.0.0.1:{pair.standby_port}/postgres"
        self.conn = psycopg.connect(dsn, autocommit=True)

    def __call__(self) -> bool:
        row = self.conn.execute(
            "SELECT pg_is_in_recovery(), current_setting('synchronous_standby_names')"
        ).fetchone()
        return row is not None and row[0] is False and row[1] == ""


async def _drill(
    pair: PostgresPair, tmp_path: Path, *, writes_stop_at_cut: bool
) -> tuple[AssetResult, int, int, int]:
    clock = SystemClock()
    cut = Cut(pair)
    prompter = HookPrompter({"cut replication": cut})
    died = exit_watch(pair.procs["primary"].popen)
    resume = asyncio.ensure_future(cut.resume_after_stop())
    check = Writable(pair)
    writable = asyncio.ensure_future(poll_until(check))
    try:
        outcome = await run_playbook(
            _playbook_with_cut(tmp_path), _env(pair), tmp_path / "runs", clock, prompter
        )
        t_writable = await writable
        await resume
    finally:
        check.conn.close()
    assert outcome.results.status == RunStatus.COMPLETED, outcome.results.reason
    asset = outcome.results.assets[0]
    t_stop = died()
    assert t_stop is not None
    t_cut = prompter.instants["cut replication"]
    t_detect = mono_of(clock, asset.t_detect_utc)
    t_recover = mono_of(clock, asset.t_recover_utc)
    # Synchronous commits stop being acknowledged at the cut already: that is the true outage start.
    t_outage = t_cut if writes_stop_at_cut else t_stop
    assert abs(t_detect - t_outage) / 1e6 <= INTERVAL_MS + SLACK_MS
    # Symmetric: a write released by the fix counts as ok at its tick's start, which may precede the fix.
    assert abs(t_recover - t_writable) / 1e6 <= INTERVAL_MS + SLACK_MS
    return asset, t_stop - t_cut, t_stop, t_writable


def _rpo(asset: AssetResult) -> RpoResult:
    assert asset.rpo is not None, asset.reasons  # the canary's rpo.measured made it into the results
    return asset.rpo


async def test_async_promotion_loses_the_writes_of_the_cut(pg_async: PostgresPair, tmp_path: Path) -> None:
    asset, window_ns, t_stop, t_writable = await _drill(pg_async, tmp_path, writes_stop_at_cut=False)
    rpo = _rpo(asset)
    assert rpo.lost_writes >= (window_ns / 1e6) // INTERVAL_MS - 1
    assert abs(rpo.rpo_ms - window_ns / 1e6) <= INTERVAL_MS + SLACK_MS
    assert asset.verdict == "fail"  # target RPO 0
    assert any("RPO" in r for r in asset.reasons)
    print(
        f"\npostgres async drill: detection {asset.detection_ms} ms, switchover {asset.switchover_ms} ms,"
        f" rto {asset.rto_ms} ms (truth: writable {(t_writable - t_stop) / 1e6:.0f} ms after stop),"
        f" lost {rpo.lost_writes}, rpo {rpo.rpo_ms} ms (truth {window_ns / 1e6:.0f} ms)"
    )


async def test_sync_promotion_loses_no_acknowledged_write(pg_sync: PostgresPair, tmp_path: Path) -> None:
    asset, _, t_stop, t_writable = await _drill(pg_sync, tmp_path, writes_stop_at_cut=True)
    rpo = _rpo(asset)
    assert (rpo.lost_writes, rpo.rpo_ms) == (0, 0)
    assert asset.verdict == "pass", asset.reasons
    print(
        f"\npostgres sync drill: detection {asset.detection_ms} ms, switchover {asset.switchover_ms} ms,"
        f" rto {asset.rto_ms} ms (truth: writable {(t_writable - t_stop) / 1e6:.0f} ms after stop), lost 0"
    )
