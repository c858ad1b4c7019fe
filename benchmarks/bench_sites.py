"""Probing from sites: K `drill agent` processes x N probes at 1 s through a real nats-server, into
one `drill run`, beside the same N*K probes run locally by `drill run` alone, in one run.

Run: .venv/bin/python benchmarks/bench_sites.py [--probes 500] [--sites 2] [--duration 30]
     quick: .venv/bin/python benchmarks/bench_sites.py --duration 10 --probes 200
     where the time goes (each slows what it watches less than cProfile, except --profile-*):
       --trace-agent            site-0's agent instrumented: backlog, loop lag, each publish's time
       --profile-agent 25       the same under cProfile, its top 25 functions
       --profile-coordinator 25 the sites drill (this process) under cProfile
       --windowed-agents        experiment: every agent traced, its one-at-a-time publisher replaced
                                (in the agent's process only, drill unchanged) by the proposed
                                batched one (windowed_publisher below)
     --keep DIR keeps the journals and logs (default: a temp dir, removed).

(a) sites: a nats-server with JetStream (temp store, free port, stopped by PID), K agent processes
    (`python -m drill --log-format json agent --site site-K --broker URL`, each reading its target
    from TARGET_i in its environment, as a real site does), and drill.run.runner.run_drill with
    RunOptions.broker: a playbook of N assets, each one HTTP probe at every site (quorum: a
    majority), interval 1 s, scenario `mark: disaster` then one `pause` of --duration s ("hold").
(b) local (the reference): the same run_drill, no broker, no sites: N assets of K probes each,
    so N*K probes at 1 s, the same targets, the same hold.
Both run with allow_degraded: an asset whose state is not known by the baseline (observations
arriving late) still lets the hold run; the baseline line says how many were up. Nothing fails,
so the verdict is "incomplete" (exit code 1): expected, not what is measured.

The HTTP targets are --servers small asyncio processes on 127.0.0.1 (benchmarks/_servers.py),
answering at once; probes are spread round-robin over them. Figures, per contestant:
  observations/s journalled  probe.observed events (with a site in (a), without in (b)) whose
                             journal instant (the probe's start, mapped onto the coordinator's clock
                             in (a)) lies within the hold, / the hold's duration; the target is N*K
  ... by journalling instant the same count, taken by when the coordinator journalled them (a sink
                             records drill.clock.monotonic_ns() at each one): lags show here first
  end-to-end delay           journalling instant - the event's mono_ns (the probe's start), for the
                             observations started within the hold: p50 / p99 / max, and the
                             median per 5 s of the hold (a growing delay is a backlog growing)
  nothing lost               every site's site.done has observed == journalled (and dropped 0)
  CPU per observation        this process (the coordinator: getrusage(RUSAGE_SELF) around
                             run_drill, playbook validation excluded) / observations journalled;
                             agents', nats-server's and the targets' CPU from /proc/PID/stat
                             (utime + stime) from their readiness to the end of the drill, / the
                             same count
A last phase measures the broker's publish ceiling from this process (agents stopped): M
observations published one at a time, each ack awaited (what an agent does), against the same
published with up to 256 acks in flight (js.publish_async), same stream settings, same msg-ids.
All processes share this machine's CPUs: on a small machine the agents, the broker, the targets
and the coordinator compete, which real sites (other hosts) would not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drill.clock import SystemClock, monotonic_ns, utc_ms, wall_ns
from drill.evidence.events import (
    Event,
    Mark,
    ProbeObserved,
    RunFinished,
    SiteDone,
    StepFinished,
    StepStarted,
)
from drill.evidence.journal import read_events
from drill.playbook.model import Playbook
from drill.playbook.validate import load_playbook
from drill.run.runner import run_drill
from drill.run.session import RunOptions
from drill.run.sites.agent import Agent

if TYPE_CHECKING:
    from nats.js import JetStreamContext
    from nats.js.api import PubAck

    from benchmarks._servers import serve, start_servers, stop_servers
else:  # `make bench` runs this file as a script, so benchmarks/ is first on sys.path
    from _servers import serve, start_servers, stop_servers

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"
NATS_SERVER = "/usr/sbin/nats-server"
HOLD = "hold"
TIMEOUT_MS = 800
CEILING_WINDOW = 256
SLICE_S = 5
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = monotonic_ns() + int(timeout_s * 1e9)
    while not check():
        if monotonic_ns() > deadline:
            raise SystemExit(f"{what} did not happen within {timeout_s:g} s")
        time.sleep(0.02)


def cpu_s(pid: int) -> float:
    """utime + stime of one process, from /proc/PID/stat (0 once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": field 3 is fields[0]
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def stop_pid(popen: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process we started (by its PID), SIGKILL after 10 s."""
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(popen.pid, signal.SIGTERM)
        try:
            popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(popen.pid, signal.SIGKILL)
            popen.wait(timeout=10)


def spawn(argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            list(argv), stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def start_nats(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = NATS_SERVER if os.access(NATS_SERVER, os.X_OK) else shutil.which("nats-server")
    if binary is None:
        raise SystemExit("nats-server is not installed (apt-get install nats-server)")
    port = free_port()
    store = workdir / "jetstream"
    store.mkdir(parents=True)
    proc = spawn([binary, "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(port)], workdir / "nats.log")
    wait_for("nats-server listening", lambda: port_open(port) or proc.poll() is not None)
    if proc.poll() is not None:
        raise SystemExit(f"nats-server exited: {(workdir / 'nats.log').read_text()[-1000:]}")
    return proc, f"nats://127.0.0.1:{port}"


@dataclass
class AgentProc:
    site: str
    popen: subprocess.Popen[bytes]
    log: Path
    stats: Path | None = None  # a traced agent: where it leaves its figures (and profile)


def start_agent(
    site: str,
    broker: str,
    workdir: Path,
    targets: Sequence[str],
    traced: bool = False,
    profile_top: int = 0,
    windowed: bool = False,
) -> AgentProc:
    """`drill agent` as a process; traced: drill's Agent run by this file's --traced-agent instead
    (the same class, in a process of its own, instrumented, under cProfile when profile_top > 0)."""
    env = {**os.environ, **{f"TARGET_{i}": url for i, url in enumerate(targets)}}
    log = workdir / f"agent-{site}.log"
    if traced or profile_top > 0 or windowed:
        stats = workdir / f"agent-{site}.trace"
        argv = [sys.executable, __file__, "--traced-agent", site, "--broker", broker, "--stats", str(stats)]
        argv += ["--profile-agent", str(profile_top), *(["--windowed-agents"] if windowed else [])]
        return AgentProc(site, spawn(argv, log, env), log, stats)
    argv = [
        sys.executable,
        "-m",
        "drill",
        "--log-format",
        "json",
        "agent",
        "--site",
        site,
        "--broker",
        broker,
    ]
    return AgentProc(site, spawn(argv, log, env), log)


def wait_ready(agents: Sequence[AgentProc]) -> None:
    for agent in agents:

        def ready(agent: AgentProc = agent) -> bool:
            if agent.popen.poll() is not None:
                raise SystemExit(f"agent {agent.site} exited: {agent.log.read_text()[-2000:]}")
            return "agent.ready" in agent.log.read_text(errors="replace")

        wait_for(f"agent {agent.site} ready", ready)


# --------------------------------------------------------------------------- the traced agent
SAMPLE_S = 0.1
BATCHES: list[tuple[int, int, int]] = []  # windowed_publisher: (wall_ns, size, first publish to last ack ns)


def traced_agent(site: str, broker: str, stats: Path, profile_top: int, windowed: bool) -> None:
    """Child process: drill's Agent until SIGTERM, instrumented from outside (drill is not
    changed): every 100 ms its backlog (observed, not yet acknowledged), its published count and
    the event loop's lag (how late that 100 ms sleep woke); each JetStream publish timed (the
    class's method wrapped, in this process only), and its exceptions counted. Figures go to
    `stats` (JSON), the profile to `stats`.prof when profile_top > 0. windowed: the agent's
    publisher replaced (in this process only) by windowed_publisher, the proposed fix."""
    from nats.js import JetStreamContext

    from drill.log import configure_logging

    configure_logging("json")
    samples: list[tuple[int, int, int, int]] = []  # (wall_ns, backlog, published, loop lag ns)
    publishes: list[tuple[int, int]] = []  # (start wall_ns, duration ns) of each JetStream publish
    errors: dict[str, int] = {}
    original = JetStreamContext.publish

    async def timed_publish(self: JetStreamContext, *a: Any, **kw: Any) -> Any:
        t0, at = monotonic_ns(), wall_ns()
        try:
            return await original(self, *a, **kw)
        except BaseException as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            raise
        finally:
            publishes.append((at, monotonic_ns() - t0))

    JetStreamContext.publish = timed_publish  # type: ignore[method-assign]
    if windowed:
        Agent._publish = windowed_publisher  # type: ignore[method-assign]

    async def main() -> None:
        agent = Agent(site, broker, f"bench-{site}")
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

        async def sample() -> None:
            while True:
                before = monotonic_ns()
                await asyncio.sleep(SAMPLE_S)
                now = monotonic_ns()
                lag = now - before - int(SAMPLE_S * 1e9)
                samples.append((wall_ns(), agent._backlog.qsize(), agent.published, lag))

        sampler = asyncio.create_task(sample())
        try:
            await agent.run(stop)
        finally:
            sampler.cancel()

    if profile_top > 0:
        profiler = cProfile.Profile()
        profiler.runcall(asyncio.run, main())
        profiler.dump_stats(str(stats.with_suffix(".prof")))
    else:
        asyncio.run(main())
    figures = {"samples": samples, "publishes": publishes, "errors": errors, "batches": BATCHES}
    stats.write_text(json.dumps(figures))


async def windowed_publisher(self: Agent, js: JetStreamContext, stop: asyncio.Event) -> None:
    """The proposed fix, for the experiment (--windowed-agents): what is in the backlog is sent at
    once (up to CEILING_WINDOW publishes in one write, each under its msg-id), then the acks are
    awaited in order; one that fails is retried alone under the same id, as now. One round trip
    per batch instead of per observation, so the rate follows the backlog, not the loop's latency.
    (Kept apart from drill: a retried publish may land after later ones; see the report.)"""
    from drill.run.sites.broker import PUBLISH_TIMEOUT_S, TRANSIENT, publish

    backlog = self._backlog
    while True:
        batch = [await backlog.get()]
        while len(batch) < CEILING_WINDOW and not backlog.empty():
            batch.append(backlog.get_nowait())
        t0, at = monotonic_ns(), wall_ns()
        acks: list[asyncio.Future[PubAck] | None] = []
        for subject, body, msg_id in batch:
            try:
                acks.append(await js.publish_async(subject, body, headers={"Nats-Msg-Id": msg_id}))
            except TRANSIENT:
                acks.append(None)
        for (subject, body, msg_id), ack in zip(batch, acks, strict=True):
            try:
                if ack is None:
                    raise TimeoutError
                await asyncio.wait_for(ack, PUBLISH_TIMEOUT_S)
            except TRANSIENT:
                await publish(js, subject, body, msg_id)
            self.published += 1
            backlog.task_done()
        BATCHES.append((at, len(batch), monotonic_ns() - t0))


def pct(values: Sequence[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0


def show_agent_trace(agent: AgentProc, top: int, hold_utc_ns: tuple[int, int]) -> None:
    """The traced agent's figures, before the hold (the baseline), during it, and after it (its
    release, then the backlog's drain), cut by wall-clock instants (the journal's utc)."""
    assert agent.stats is not None
    if not agent.stats.exists():
        print(f"  (agent {agent.site} left no figures)")
        return
    data = json.loads(agent.stats.read_text())
    samples: list[list[int]] = data["samples"]
    publishes: list[list[int]] = data["publishes"]
    slowed = " (under cProfile: slowed by it)" if top > 0 else ""
    print(f"agent {agent.site}, traced in-process{slowed}: sampled every {SAMPLE_S * 1000:.0f} ms")
    start, end = hold_utc_ns
    parts = (
        ("before the hold", [s for s in samples if s[0] < start]),
        ("during the hold", [s for s in samples if start <= s[0] < end]),
        ("after the hold", [s for s in samples if s[0] >= end and (s[1] > 0 or s[0] < end + 2_000_000_000)]),
    )
    for label, part in parts:
        if len(part) < 2:
            continue
        span = (part[-1][0] - part[0][0]) / 1e9 or 1
        rate = (part[-1][2] - part[0][2]) / span
        lags = [s[3] for s in part]
        pubs = [d for t, d in publishes if part[0][0] <= t < part[-1][0]]
        batches = [(n, d) for t, n, d in data["batches"] if part[0][0] <= t < part[-1][0]]
        if batches:
            sizes, times = [n for n, _ in batches], [d for _, d in batches]
            how = (
                f"{len(batches)} batches of mean {sum(sizes) / len(sizes):.1f} (max {max(sizes)}), "
                f"first publish to last ack p50 {pct(times, 0.5) / 1e6:.2f} ms p99 {pct(times, 0.99) / 1e6:.2f} ms"
            )
        else:
            how = (
                f"one publish (await ack) p50 {pct(pubs, 0.5) / 1e6:.2f} ms "
                f"p99 {pct(pubs, 0.99) / 1e6:.2f} ms ({len(pubs)} publishes)"
            )
        print(
            f"  {label} ({span:.1f} s): published {rate:.0f}/s, backlog max {max(s[1] for s in part)}, "
            f"loop lag p50 {pct(lags, 0.5) / 1e6:.1f} ms p99 {pct(lags, 0.99) / 1e6:.1f} ms "
            f"max {max(lags) / 1e6:.1f} ms; {how}"
        )
    print(f"  publish exceptions: {data['errors'] or 'none'}")
    prof = agent.stats.with_suffix(".prof")
    if top > 0 and prof.exists():
        for order in ("tottime", "cumulative"):
            print(f"  agent {agent.site}: {top} functions by {order}")
            out = io.StringIO()
            pstats.Stats(str(prof), stream=out).sort_stats(order).print_stats(top)
            print(textwrap.indent(_trim_profile(out.getvalue()), "  "))


def _trim_profile(text: str) -> str:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(line for line in lines[start:] if line.strip())


# --------------------------------------------------------------------------- playbooks
def sites_of(k: int) -> list[str]:
    return [f"site-{i}" for i in range(k)]


def playbook_text(probes: int, sites: Sequence[str], servers: int, duration_s: int, remote: bool) -> str:
    """remote: `probes` assets, each one probe at every site; else `probes` assets of len(sites)
    local probes each (the same count of probes at 1 s)."""
    head = textwrap.dedent(
        f"""\
        apiVersion: drill/v1
        kind: Playbook
        metadata: {{name: bench-sites, owner: bench@drill.example}}
        settings: {{interval: 1s, timeout: {TIMEOUT_MS}ms, fall: 2, rise: 2, max_duration: {duration_s + 300}s}}
        """
    )
    if remote:
        head += "sites:\n" + "".join(f"  - {{name: {s}}}\n" for s in sites)
    head += "tiers:\n  - {name: web, rto: 10m}\nassets:\n"
    where = f"sites: [{', '.join(sites)}], quorum: {len(sites) // 2 + 1}"
    lines = []
    for i in range(probes):
        lines.append(
            f"  - id: svc-{i:05d}\n    tier: web\n    waive: {{rpo: benchmark target}}\n    probes:\n"
        )
        if remote:
            url = f"${{env:TARGET_{i % servers}}}"
            lines.append(f'      - {{name: health, http: {{url: "{url}"}}, {where}}}\n')
        else:
            for k in range(len(sites)):
                url = f"${{env:TARGET_{(i * len(sites) + k) % servers}}}"
                lines.append(f'      - {{name: health-{k}, http: {{url: "{url}"}}}}\n')
    scenario = (
        f"scenario:\n  - {{name: declare, mark: disaster}}\n  - {{name: {HOLD}, pause: {duration_s}s}}\n"
    )
    return head + "".join(lines) + scenario


# --------------------------------------------------------------------------- one drill
@dataclass
class Recorder:
    """The sink: when each probe.observed was journalled (this run's clock), and its mono_ns."""

    clock: SystemClock
    remote: bool
    journalled_ns: list[int] = field(default_factory=list)
    started_ns: list[int] = field(default_factory=list)

    def __call__(self, event: Event) -> None:
        payload = event.payload
        if isinstance(payload, ProbeObserved) and (payload.site is not None) == self.remote:
            self.journalled_ns.append(self.clock.monotonic_ns())
            self.started_ns.append(event.mono_ns)


@dataclass
class Figures:
    name: str
    target_rate: int
    exit_code: str  # and the verdict
    outcome: str  # run.finished's status and reason
    baseline: str  # how many assets had a state when the baseline was taken, at what instant
    hold_s: float
    in_hold: int  # observations started within the hold
    journalled_in_hold: int  # observations journalled within the hold
    total: int
    after_hold_s: float  # hold's end to run.finished
    delays_ns: list[int]
    hold_utc_ns: tuple[int, int]  # the hold's start and end, wall clock (the journal's utc, ms)
    slices: list[tuple[int, int]]  # per SLICE_S of the hold: (journalled, median delay ns)
    cpu_s: float
    wall_s: float
    done: list[SiteDone]
    others_cpu: dict[str, float]  # process name -> CPU s over the drill

    def pct_ms(self, q: float) -> float:
        ordered = sorted(self.delays_ns)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6 if ordered else float("nan")


async def _drill(playbook: Playbook, options: RunOptions, recorder: Recorder) -> tuple[str, Path]:
    outcome = await run_drill(playbook, options, clock=recorder.clock, sinks=[recorder])
    verdict = outcome.results.verdict
    why = f" ({outcome.results.verdict_reason})" if outcome.results.verdict_reason else ""
    return f"exit code {outcome.exit_code}, verdict {verdict}{short(why)}", outcome.journal_path


def run_one(
    name: str,
    workdir: Path,
    text: str,
    options: RunOptions,
    remote: bool,
    target_rate: int,
    watched: dict[str, list[int]],
    profile_top: int = 0,
) -> Figures:
    path = workdir / f"{name}.yaml"
    path.write_text(text)
    playbook = load_playbook(path)  # validation is not what is measured
    recorder = Recorder(SystemClock(), remote)
    before = {n: sum(map(cpu_s, pids)) for n, pids in watched.items()}
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.perf_counter()
    profiler = cProfile.Profile() if profile_top > 0 else None
    if profiler is not None:
        code, journal = profiler.runcall(asyncio.run, _drill(playbook, options, recorder))
    else:
        code, journal = asyncio.run(_drill(playbook, options, recorder))
    wall = time.perf_counter() - wall0
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    others = {n: sum(map(cpu_s, pids)) - before[n] for n, pids in watched.items()}
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    if profiler is not None:
        print(
            f"{name}: coordinator (this process), {profile_top} functions by own time (cProfile on: slowed)"
        )
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(profile_top)
        print(textwrap.indent(_trim_profile(out.getvalue()), "  "))
    return figures(name, target_rate, code, journal, recorder, cpu, wall, others, remote)


def figures(
    name: str,
    target_rate: int,
    code: str,
    journal: Path,
    recorder: Recorder,
    cpu: float,
    wall: float,
    others: dict[str, float],
    remote: bool,
) -> Figures:
    events = list(read_events(journal))
    hold = (
        next(e for e in events if isinstance(e.payload, StepStarted) and e.payload.step == HOLD),
        next(e for e in events if isinstance(e.payload, StepFinished) and e.payload.step == HOLD),
    )
    start, end = hold[0].mono_ns, hold[1].mono_ns
    observed = [
        e for e in events if isinstance(e.payload, ProbeObserved) and (e.payload.site is not None) == remote
    ]
    in_hold = sum(start <= e.mono_ns < end for e in observed)
    delays = [
        j - s for j, s in zip(recorder.journalled_ns, recorder.started_ns, strict=True) if start <= s < end
    ]
    return Figures(
        name=name,
        target_rate=target_rate,
        exit_code=code,
        baseline=baseline_of(events),
        outcome=next(
            short(f"{e.payload.status}: {e.payload.reason}")
            for e in events
            if isinstance(e.payload, RunFinished)
        ),
        hold_s=(end - start) / 1e9,
        in_hold=in_hold,
        journalled_in_hold=sum(start <= j < end for j in recorder.journalled_ns),
        total=len(observed),
        after_hold_s=(events[-1].mono_ns - end) / 1e9,
        delays_ns=delays,
        slices=slices(recorder, start, end),
        hold_utc_ns=(utc_ms(hold[0].utc) * 1_000_000, utc_ms(hold[1].utc) * 1_000_000),
        cpu_s=cpu,
        wall_s=wall,
        done=[e.payload for e in events if isinstance(e.payload, SiteDone)],
        others_cpu=others,
    )


def short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def baseline_of(events: Sequence[Event]) -> str:
    """'K of N assets up at the baseline, T s after run.started' (the runner waits that long at most)."""
    mark = next((e for e in events if isinstance(e.payload, Mark) and e.payload.name == "baseline"), None)
    if mark is None or not isinstance(mark.payload, Mark):
        return "no baseline"
    states = mark.payload.states
    up = sum(v == "up" for v in states.values())
    after = (mark.mono_ns - events[0].mono_ns) / 1e9
    return f"{up} of {len(states)} assets up at the baseline, {after:.1f} s after run.started"


def slices(recorder: Recorder, start: int, end: int) -> list[tuple[int, int]]:
    """Per SLICE_S of the hold, by journalling instant: observations journalled, their median delay."""
    width = SLICE_S * 1_000_000_000
    out: list[list[int]] = [[] for _ in range(max(1, -(-(end - start) // width)))]
    for journalled, started in zip(recorder.journalled_ns, recorder.started_ns, strict=True):
        if start <= journalled < end:
            out[(journalled - start) // width].append(journalled - started)
    return [(len(d), sorted(d)[len(d) // 2] if d else 0) for d in out]


def show(f: Figures, remote: bool, sites: Sequence[str]) -> None:
    print(
        f"{f.name} (run.finished {f.outcome}; {f.exit_code}; drill {f.wall_s:.1f} s wall, hold {f.hold_s:.2f} s)"
    )
    rate = f.in_hold / f.hold_s
    print(f"  observations/s journalled: {rate:.0f} (target {f.target_rate}: {rate / f.target_rate:.1%})")
    print(f"  observations/s journalled, by journalling instant: {f.journalled_in_hold / f.hold_s:.0f}")
    print(f"  observations journalled: {f.total} in all, {f.in_hold} started within the hold")
    print(
        f"  end-to-end delay (probe start -> journalled): p50 {f.pct_ms(0.5):.2f} ms, "
        f"p99 {f.pct_ms(0.99):.2f} ms, max {max(f.delays_ns, default=0) / 1e6:.2f} ms"
    )
    print(
        f"  by {SLICE_S} s of the hold (journalled/s, median delay ms): "
        + ", ".join(f"{n / SLICE_S:.0f}/{d / 1e6:.0f}" for n, d in f.slices)
    )
    print(f"  baseline: {f.baseline}")
    print(f"  hold's end to run.finished: {f.after_hold_s:.2f} s")
    if remote:
        by_site = {d.site: d for d in f.done}
        lost = [s for s in sites if s not in by_site or by_site[s].observed != by_site[s].journalled]
        for site in sites:
            d = by_site.get(site)
            line = (
                f"observed {d.observed}, journalled {d.journalled}, dropped {d.dropped}"
                if d is not None
                else "NO site.done"
            )
            print(f"  site.done {site}: {line}")
        print(
            f"  nothing lost (every site.done observed == journalled): {'yes' if not lost else 'NO: ' + ', '.join(lost)}"
        )
    per_obs = f.cpu_s / f.total * 1e6 if f.total else float("nan")
    print(
        f"  coordinator CPU per observation: {per_obs:.0f} us "
        f"(this process {f.cpu_s:.2f} s, {f.cpu_s / f.wall_s:.0%} of one core)"
    )
    for name, cpu in f.others_cpu.items():
        per = cpu / f.total * 1e6 if f.total else float("nan")
        print(f"  {name} CPU per observation: {per:.0f} us ({cpu:.2f} s, {cpu / f.wall_s:.0%} of one core)")
    if remote and f.others_cpu:
        agents = sum(c for n, c in f.others_cpu.items() if n.startswith("agent"))
        print(
            f"  agents' CPU per observation: {agents / max(1, f.total) * 1e6:.0f} us (all agents, {agents:.2f} s)"
        )


# --------------------------------------------------------------------------- publish ceiling
async def ceiling(broker: str, count: int) -> tuple[float, float]:
    """(serial publishes/s, windowed publishes/s) of `count` observation-sized messages."""
    from nats.js.api import DiscardPolicy, StorageType, StreamConfig

    from drill.run.sites.broker import connect, publish
    from drill.run.sites.wire import DEDUPE_WINDOW_S, SiteObservation, encode

    nc = await connect(broker, "bench ceiling")
    try:
        js = nc.jetstream()
        await js.add_stream(
            StreamConfig(
                name="BENCH_CEILING",
                subjects=["bench.ceiling.*"],
                storage=StorageType.FILE,
                duplicate_window=DEDUPE_WINDOW_S,
                discard=DiscardPolicy.OLD,
            )
        )

        def body(seq: int) -> bytes:
            record = SiteObservation(
                "20260101T000000Z-bench", "site-0", "bench-0123abcd", seq, "svc-00001", "health",
                seq, True, 850, "", 1_767_225_600_000_000_000 + seq, 120,
            )  # fmt: skip
            return encode(record)

        t0 = time.perf_counter()
        for seq in range(count):
            await publish(js, "bench.ceiling.serial", body(seq), f"serial/{seq}")
        serial = count / (time.perf_counter() - t0)

        t0 = time.perf_counter()
        pending: list[asyncio.Future[PubAck]] = []
        for seq in range(count):
            future = await js.publish_async(
                "bench.ceiling.window", body(seq), headers={"Nats-Msg-Id": f"window/{seq}"}
            )
            pending.append(future)
            if len(pending) >= CEILING_WINDOW:
                await pending.pop(0)
        await asyncio.gather(*pending)
        windowed = count / (time.perf_counter() - t0)
        await js.delete_stream("BENCH_CEILING")
        return serial, windowed
    finally:
        await nc.close()


# --------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--traced-agent", metavar="SITE", help=argparse.SUPPRESS)
    parser.add_argument("--broker", help=argparse.SUPPRESS)
    parser.add_argument("--stats", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--probes", type=int, default=500, help="probes per site, each every 1 s (default 500)"
    )
    parser.add_argument("--sites", type=int, default=2, help="sites, one agent process each (default 2)")
    parser.add_argument("--duration", type=int, default=30, help="seconds of the hold step (default 30)")
    parser.add_argument("--servers", type=int, default=2, help="HTTP target processes (default 2)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="work in DIR and keep it (journals, logs)")
    parser.add_argument("--skip-local", action="store_true", help="leave out the local reference")
    parser.add_argument(
        "--ceiling", type=int, default=5000, help="messages per publish-ceiling phase (0: skip)"
    )
    parser.add_argument(
        "--profile-coordinator", type=int, default=0, metavar="N", help="cProfile the sites drill, top N"
    )
    parser.add_argument(
        "--windowed-agents",
        action="store_true",
        help="experiment: every agent traced, its publisher replaced by the proposed windowed one",
    )
    parser.add_argument(
        "--trace-agent", action="store_true", help="run site-0's agent instrumented (publish times, loop lag)"
    )
    parser.add_argument(
        "--profile-agent", type=int, default=0, metavar="N", help="cProfile site-0's agent, top N"
    )
    args = parser.parse_args()
    if args.serve:
        serve(RESPONSE, 0.0, backlog=8192)
        return
    if args.traced_agent is not None:
        traced_agent(args.traced_agent, args.broker, args.stats, args.profile_agent, args.windowed_agents)
        return
    if min(args.probes, args.sites, args.duration, args.servers) < 1:
        raise SystemExit("--probes, --sites, --duration and --servers must be at least 1")

    sites = sites_of(args.sites)
    rate = args.probes * args.sites
    print(
        f"{args.sites} sites x {args.probes} HTTP probes every 1 s (target {rate} observations/s), "
        f"hold {args.duration} s; {args.servers} loopback target processes; {os.cpu_count()} cpus"
    )
    with contextlib.ExitStack() as cleanup:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=False)
            workdir = args.keep
        else:
            workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="bench-sites-")))
        servers, ports = start_servers([sys.executable, __file__, "--serve"], args.servers)
        targets = [f"http://127.0.0.1:{p}/health" for p in ports]
        env = {**os.environ, **{f"TARGET_{i}": url for i, url in enumerate(targets)}}
        nats, broker = start_nats(workdir)
        agents: list[AgentProc] = []
        try:
            agents = [
                start_agent(
                    s,
                    broker,
                    workdir,
                    targets,
                    args.trace_agent and i == 0,
                    args.profile_agent * (i == 0),
                    args.windowed_agents,
                )
                for i, s in enumerate(sites)
            ]
            wait_ready(agents)
            watched = {f"agent {a.site}": [a.popen.pid] for a in agents}
            watched["nats-server"] = [nats.pid]
            watched["targets"] = [s.pid for s in servers]
            remote = run_one(
                "sites",
                workdir,
                playbook_text(args.probes, sites, args.servers, args.duration, remote=True),
                RunOptions(runs_dir=workdir / "runs", broker=broker, env=env, allow_degraded=True),
                True,
                rate,
                watched,
                args.profile_coordinator,
            )
            for agent in agents:
                stop_pid(agent.popen)
            show(remote, True, sites)
            for agent in agents:
                if agent.stats is not None:
                    show_agent_trace(agent, args.profile_agent, remote.hold_utc_ns)
            if not args.skip_local:
                local = run_one(
                    "local (reference)",
                    workdir,
                    playbook_text(args.probes, sites, args.servers, args.duration, remote=False),
                    RunOptions(runs_dir=workdir / "runs", env=env, allow_degraded=True),
                    False,
                    rate,
                    {"targets": [s.pid for s in servers]},
                )
                show(local, False, sites)
                if local.total and remote.total:
                    ratio = (remote.cpu_s / remote.total) / (local.cpu_s / local.total)
                    print(f"sites / local coordinator CPU per observation: {ratio:.2f}x")
                    print(
                        f"sites / local observations/s journalled: "
                        f"{(remote.in_hold / remote.hold_s) / (local.in_hold / local.hold_s):.3f}"
                    )
            if args.ceiling > 0:
                serial, windowed = asyncio.run(ceiling(broker, args.ceiling))
                print(f"broker publish ceiling, from one process, {args.ceiling} observations each:")
                print(f"  one at a time, each ack awaited (the agent's way): {serial:.0f} publishes/s")
                print(
                    f"  up to {CEILING_WINDOW} acks in flight (js.publish_async): {windowed:.0f} publishes/s"
                )
        finally:
            for agent in agents:
                stop_pid(agent.popen)
            stop_pid(nats)
            stop_servers(servers)
    print(
        f"machine: {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f} (other work skews every figure)"
    )


if __name__ == "__main__":
    main()
