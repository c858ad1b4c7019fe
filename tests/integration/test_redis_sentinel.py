"""A real Redis Sentinel failover drill: measured detection, switchover and RPO vs ground truth."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from drill.clock import SystemClock
from drill.evidence.events import RunStatus
from drill.results import AssetResult, RpoResult
from drill.run.session import RunOutcome
from tests.support.drills import HookPrompter, exit_watch, mono_of, poll_until, run_playbook
from tests.support.servers import RedisSentinelCluster, redis_command

pytestmark = pytest.mark.integration
PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "redis-sentinel.yaml"
INTERVAL_MS = 100
SLACK_MS = 40  # UTC texts have ms resolution; loop scheduling on a busy 2-core machine


def _env(cluster: RedisSentinelCluster) -> dict[str, str]:
    env = {f"DRILL_REDIS_SENTINEL{i + 1}_PORT": str(p) for i, p in enumerate(cluster.sentinel_ports)}
    return {
        **env,
        "DRILL_REDIS_MASTER_NAME": cluster.name,
        "DRILL_REDIS_MASTER_PID": str(cluster.procs["master"].pid),
    }


def _new_master(cluster: RedisSentinelCluster) -> bool:
    return cluster.master_addr() == ("127.0.0.1", cluster.replica_port)


async def _drill(
    cluster: RedisSentinelCluster, tmp_path: Path, prompter: HookPrompter | None = None
) -> tuple[SystemClock, RunOutcome, AssetResult, int, int]:
    clock = SystemClock()
    died = exit_watch(cluster.procs["master"].popen)
    promoted = asyncio.ensure_future(poll_until(lambda: _new_master(cluster)))
    outcome = await run_playbook(PLAYBOOK if prompter is None else _with_cut(tmp_path), _env(cluster), tmp_path / "runs",
                                 clock, prompter)  # fmt: skip
    t_promoted = await promoted
    t_kill = died()
    assert t_kill is not None
    asset = outcome.results.assets[0]
    return clock, outcome, asset, t_kill, t_promoted


def _rpo(asset: AssetResult) -> RpoResult:
    assert asset.rpo is not None, asset.reasons  # the canary's rpo.measured made it into the results
    return asset.rpo


def _with_cut(tmp_path: Path) -> Path:
    """The example playbook plus a manual step the test answers by cutting replication 500 ms before the kill."""
    text = PLAYBOOK.read_text()
    cut = (
        "  - name: cut replication\n    manual: cut replication (the test does it)\n"
        "  - name: writes only the master holds\n    pause: 500ms\n"
    )
    text = text.replace("  - name: kill the master\n", cut + "  - name: kill the master\n")
    path = tmp_path / "redis-sentinel-cut.yaml"
    path.write_text(text)
    return path


async def test_sentinel_failover_drill_matches_ground_truth(
    redis_cluster: RedisSentinelCluster, tmp_path: Path
) -> None:
    clock, outcome, asset, t_kill, t_promoted = await _drill(redis_cluster, tmp_path)
    assert outcome.results.status == RunStatus.COMPLETED, outcome.results.reason
    t_detect = mono_of(clock, asset.t_detect_utc)
    t_recover = mono_of(clock, asset.t_recover_utc)
    detection_truth_ms = (t_detect - t_kill) / 1e6
    assert -SLACK_MS <= detection_truth_ms <= INTERVAL_MS + SLACK_MS
    # Writes go through again within one interval of Sentinel naming the replica as master.
    assert -SLACK_MS <= (t_recover - t_promoted) / 1e6 <= INTERVAL_MS + SLACK_MS
    # The stated uncertainty is the recorded window, and it covers the error against the truth.
    assert asset.uncertainty_ms == asset.recover_window_ms
    assert asset.recover_window_ms is not None and asset.detect_window_ms is not None
    assert (t_recover - t_promoted) / 1e6 <= asset.recover_window_ms + SLACK_MS
    assert (t_detect - t_kill) / 1e6 <= asset.detect_window_ms + SLACK_MS
    assert asset.rpo is not None and asset.rpo.lost_writes >= 0
    print(
        f"\nredis sentinel drill: detection {asset.detection_ms} ms, switchover {asset.switchover_ms} ms,"
        f" rto {asset.rto_ms} ms (truth: kill->sentinel {(t_promoted - t_kill) / 1e6:.0f} ms),"
        f" rpo {asset.rpo}"
    )


async def test_sentinel_drill_measures_lost_writes_after_a_replication_cut(
    redis_cluster: RedisSentinelCluster, tmp_path: Path
) -> None:
    replica = redis_cluster.procs["replica"]

    def cut() -> None:
        replica.kill(signal.SIGSTOP)
        redis_command(redis_cluster.master_port, "CLIENT", "KILL", "TYPE", "replica")

    prompter = HookPrompter({"cut replication": cut})

    async def resume_after_kill() -> None:
        await poll_until(lambda: redis_cluster.procs["master"].popen.poll() is not None)
        replica.kill(signal.SIGCONT)

    resume = asyncio.ensure_future(resume_after_kill())
    _, _, asset, t_kill, _ = await _drill(redis_cluster, tmp_path, prompter)
    await resume
    t_cut = prompter.instants["cut replication"]
    rpo = _rpo(asset)
    window_ms = (t_kill - t_cut) / 1e6
    assert rpo.lost_writes >= window_ms // INTERVAL_MS - 1
    assert abs(rpo.rpo_ms - window_ms) <= INTERVAL_MS + SLACK_MS
    assert asset.verdict == "pass", asset.reasons  # RPO target 1 s
    print(f"\nredis sentinel cut: lost {rpo.lost_writes}, rpo {rpo.rpo_ms} ms (truth {window_ms:.0f} ms)")
