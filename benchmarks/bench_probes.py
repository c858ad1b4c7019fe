"""500 HTTP probes against a loopback server that answers after 50 ms, executed several ways.

Run: .venv/bin/python benchmarks/bench_probes.py [--chaos-probes 100] [--repeat 3]

(a) drill's scheduler + probe engine (one tick of 500 probe loops; the run's Resources open the
    HTTP pool prewarmed for them, as the runner does, then it grows on demand)
(b) raw asyncio sockets (the limit)        (c) aiohttp, one session
(d) httpx: 1 client per 10 in-flight requests, and one single shared client
(e) Chaos Toolkit (`chaos` on PATH or $CHAOS_BIN; never a drill dependency): an experiment of
    http probes, which it runs one after another; timed with --chaos-probes and extrapolated.
Then: scheduler jitter with 1,000 no-op probe loops at 10 Hz pinned to one core.

The server is a small asyncio HTTP/1.1 server in a separate process (so it does not share the
clients' event loop), bound to 127.0.0.1 port 0. Every figure is measured in this one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import httpx

from drill.clock import SystemClock
from drill.playbook.model import Probe
from drill.probes import http as http_probe
from drill.probes.base import Observation, Params, ProbeContext, ProbeKind, ok
from drill.probes.pool import HTTP_POOL
from drill.run.scheduler import LiveProbeContext, Resources, ScheduledProbe, run_probe_loops

if TYPE_CHECKING:
    from benchmarks._servers import serve, start_servers, stop_servers
else:  # `make bench` runs this file as a script, so benchmarks/ is first on sys.path
    from _servers import serve, start_servers, stop_servers


N = 500
DELAY_S = 0.05
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


# --------------------------------------------------------------------------- the contestants
async def run_drill(url: str) -> tuple[float, int]:
    clock = SystemClock()
    probes = [
        ScheduledProbe(
            asset=f"a{i}",
            probe=Probe("http", "http", {"url": url}, interval_ms=60_000, timeout_ms=10_000, fall=2, rise=2),
            kind=http_probe.KIND,
            spec=http_probe.parse({"url": url}),
        )
        for i in range(N)
    ]
    # Opened outside the clock, as the runner does before the first tick: the HTTP pool loads the
    # CA bundle once and builds the clients these N probes need (prewarmed from their specs).
    resources = Resources(probes)
    contexts = {
        (p.asset, p.probe.name): LiveProbeContext.for_probe(p, resources, clock, lambda _: None)
        for p in probes
    }
    results: list[Observation] = []

    def on_observation(
        probe: ScheduledProbe, obs: Observation, scheduled: int, started: int, tick: int
    ) -> None:
        results.append(obs)

    # Timed from the scheduled first tick (the scheduler's lead-in before it is idle time).
    start = clock.monotonic_ns() + 50_000_000
    try:
        await run_probe_loops(
            probes, contexts, clock, on_observation, None, None, start_ns=start, ticks=1, spread=False
        )
        elapsed = (clock.monotonic_ns() - start) / 1e9
        clients = resources.get(HTTP_POOL).size
    finally:
        await resources.aclose()
    reasons = sorted({o.reason for o in results if not o.ok})[:3]
    _check(len(results), sum(o.ok for o in results), f"drill {reasons}")
    return elapsed, clients


async def run_raw(host: str, port: int) -> float:
    request = f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()

    async def one() -> bool:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(v)
                for k, _, v in (h.partition(b":") for h in head.split(b"\r\n"))
                if k.lower() == b"content-length"
            )
            await reader.readexactly(length)
            return head.startswith(b"HTTP/1.1 200")
        finally:
            writer.close()

    t0 = time.perf_counter()
    oks = await asyncio.gather(*(one() for _ in range(N)))
    elapsed = time.perf_counter() - t0
    _check(len(oks), sum(oks), "raw asyncio")
    return elapsed


async def run_aiohttp(url: str) -> float:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one() -> bool:
            async with session.get(url) as resp:
                await resp.read()
                return resp.status == 200

        t0 = time.perf_counter()
        oks = await asyncio.gather(*(one() for _ in range(N)))
        elapsed = time.perf_counter() - t0
    _check(len(oks), sum(oks), "aiohttp")
    return elapsed


async def run_httpx(url: str, clients: int) -> float:
    """N requests spread evenly over `clients` AsyncClients (created before the clock starts)."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    pool = [httpx.AsyncClient(trust_env=False, timeout=None, limits=limits) for _ in range(clients)]

    async def one(client: httpx.AsyncClient) -> bool:
        return (await client.get(url)).status_code == 200

    t0 = time.perf_counter()
    oks = await asyncio.gather(*(one(pool[i % clients]) for i in range(N)))
    elapsed = time.perf_counter() - t0
    for client in pool:
        await client.aclose()
    _check(len(oks), sum(oks), f"httpx x{clients}")
    return elapsed


def _check(total: int, good: int, who: str) -> None:
    if total != N or good != N:
        raise SystemExit(f"{who}: {good}/{total} of {N} requests succeeded; the comparison would be unfair")


def chaos_bin() -> str | None:
    return os.environ.get("CHAOS_BIN") or shutil.which("chaos")


def run_chaos(binary: str, url: str, count: int) -> float:
    """Wall time of `chaos run` on an experiment of `count` http probes (process start included)."""
    experiment = {
        "version": "1.0.0",
        "title": f"{count} http probes",
        "description": "drill benchmark: the same probes drill runs",
        "method": [
            {"type": "probe", "name": f"probe-{i}", "provider": {"type": "http", "url": url, "timeout": 10}}
            for i in range(count)
        ],
    }
    with tempfile.TemporaryDirectory(prefix="drill-bench-chaos-") as tmp:
        path = Path(tmp) / "experiment.json"
        path.write_text(json.dumps(experiment))
        cmd = [binary, "--no-version-check", "--log-file", str(Path(tmp) / "chaos.log"), "run"]
        cmd += ["--journal-path", str(Path(tmp) / "journal.json"), str(path)]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - t0
        journal = (
            json.loads((Path(tmp) / "journal.json").read_text())
            if (Path(tmp) / "journal.json").exists()
            else {}
        )
    runs = journal.get("run", [])
    good = sum(1 for r in runs if r.get("status") == "succeeded")
    if done.returncode != 0 or good != count:
        raise SystemExit(
            f"chaos: exit {done.returncode}, {good}/{count} probes succeeded\n{done.stderr[-2000:]}"
        )
    return elapsed


# --------------------------------------------------------------------------- scheduler jitter
async def _noop(spec: Params, ctx: ProbeContext) -> Observation:
    return ok()


async def measure_jitter(loops: int, interval_ms: int, seconds: float) -> list[int]:
    """Jitter (started - scheduled, ns) of every tick of `loops` no-op probe loops."""
    kind: ProbeKind[Params] = ProbeKind(name="noop", parse=dict, run=_noop, summary="does nothing")
    clock = SystemClock()
    probes = [
        ScheduledProbe(f"a{i}", Probe("noop", "noop", {}, interval_ms, 1000, 2, 2), kind, {})
        for i in range(loops)
    ]
    resources = Resources(probes)  # the no-op kind declares none: nothing is opened
    contexts = {
        (p.asset, p.probe.name): LiveProbeContext.for_probe(p, resources, clock, lambda _: None)
        for p in probes
    }
    jitters: list[int] = []
    overruns = [0]

    def on_observation(
        probe: ScheduledProbe, obs: Observation, scheduled: int, started: int, tick: int
    ) -> None:
        jitters.append(started - scheduled)

    def on_overrun(probe: ScheduledProbe, missed: int, at_ns: int) -> None:
        overruns[0] += missed

    ticks = int(seconds * 1000 / interval_ms)
    cpu = time.process_time()
    await run_probe_loops(probes, contexts, clock, on_observation, on_overrun, None, ticks=ticks)
    cpu = time.process_time() - cpu
    await resources.aclose()
    print(f"  jitter run: CPU {cpu * 1e6 / max(1, len(jitters)):.0f} us per tick ", end="")
    print(f"({cpu / seconds:.0%} of one core); {overruns[0]} ticks skipped as overruns")
    return jitters


def _pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


# --------------------------------------------------------------------------- main
async def _best(label: str, repeat: int, make: Callable[[], Awaitable[float]]) -> float:
    times = [await make() for _ in range(repeat)]
    print(
        f"  {label:<44} median {statistics.median(times):7.3f} s   (runs: {', '.join(f'{t:.3f}' for t in times)})"
    )
    return statistics.median(times)


async def contest(port: int, repeat: int) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}/"
    figures: dict[str, float] = {}
    print(
        f"{N} GETs, server answers after {DELAY_S * 1000:.0f} ms (loopback, separate process); median of {repeat}"
    )
    await run_raw("127.0.0.1", port)  # warm-up: imports, server accept path

    clients_seen: list[int] = []

    async def drill_once() -> float:
        elapsed, clients = await run_drill(url)
        clients_seen.append(clients)
        return elapsed

    figures["drill"] = await _best("(a) drill scheduler + probe engine", repeat, drill_once)
    print(f"      drill's pool grew to {max(clients_seen)} clients")
    figures["raw"] = await _best("(b) raw asyncio sockets", repeat, lambda: run_raw("127.0.0.1", port))
    figures["aiohttp"] = await _best("(c) aiohttp, one session", repeat, lambda: run_aiohttp(url))
    figures["httpx50"] = await _best(
        f"(d) httpx, {N // 10} clients (1 per 10 in flight)", repeat, lambda: run_httpx(url, N // 10)
    )
    figures["httpx1"] = await _best("(d) httpx, one shared client", 1, lambda: run_httpx(url, 1))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chaos-probes", type=int, default=100, help="probes in the timed Chaos Toolkit run")
    parser.add_argument("--jitter-seconds", type=float, default=5.0)
    args = parser.parse_args()
    if args.serve:
        serve(RESPONSE, DELAY_S, backlog=4096)
        return

    servers, (port,) = start_servers([sys.executable, __file__, "--serve"])
    try:
        figures = asyncio.run(contest(port, args.repeat))
        chaos = chaos_bin()
        chaos_500: float | None = None
        if chaos is None:
            print("  (e) Chaos Toolkit: SKIPPED, `chaos` not on PATH and CHAOS_BIN not set")
            print(
                "      install it apart: python3 -m venv /tmp/chaos && /tmp/chaos/bin/pip install chaostoolkit;"
            )
            print("      then CHAOS_BIN=/tmp/chaos/bin/chaos python benchmarks/bench_probes.py")
        else:
            count = min(args.chaos_probes, N)
            one = run_chaos(chaos, f"http://127.0.0.1:{port}/", 1)
            many = run_chaos(chaos, f"http://127.0.0.1:{port}/", count)
            per_probe = (many - one) / (count - 1)
            chaos_500 = one + (N - 1) * per_probe
            note = (
                "measured"
                if count == N
                else f"extrapolated from {count} (start-up {one:.2f} s + {per_probe * 1000:.1f} ms/probe)"
            )
            print(f"  (e) Chaos Toolkit, {count} probes: {many:.2f} s;  1 probe: {one:.2f} s")
            print(f"      {N} probes: {chaos_500:.1f} s ({note})")
    finally:
        stop_servers(servers)

    best_httpx = min(figures["httpx50"], figures["httpx1"])
    drill = figures["drill"]
    print("ratios")
    if chaos_500 is not None:
        verdict = "ok" if chaos_500 / drill >= 50 else "MISSED"
        print(f"  drill vs Chaos Toolkit: {chaos_500 / drill:7.1f}x faster      (goal >= 50x: {verdict})")
    else:
        print("  drill vs Chaos Toolkit: not measured (Chaos Toolkit absent)")
    verdict = "ok" if drill / best_httpx <= 1.2 else "MISSED"
    print(f"  drill / best httpx:     {drill / best_httpx:7.2f}x time        (goal <= 1.2x: {verdict})")
    print(f"  drill / raw asyncio:    {drill / figures['raw']:7.2f}x time        (the gap left to the limit)")
    print(f"  drill / aiohttp:        {drill / figures['aiohttp']:7.2f}x time")
    print(f"  httpx one client / drill: {figures['httpx1'] / drill:5.1f}x slower")

    # Jitter on one core: pin this process (the server is gone by now).
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    jitters = asyncio.run(measure_jitter(1000, 100, args.jitter_seconds))
    p99 = _pct(jitters, 0.99)
    verdict = "ok" if p99 <= 2.0 else "MISSED"
    print(
        f"scheduler jitter, 1,000 loops at 10 Hz on one core, {len(jitters)} ticks: "
        f"p50 {_pct(jitters, 0.5):.3f} ms, p99 {p99:.3f} ms, max {max(jitters) / 1e6:.3f} ms (goal p99 <= 2 ms: {verdict})"
    )
    load = os.getloadavg()[0]
    print(
        f"machine: {os.cpu_count()} cpus, load average {load:.2f} while measuring (other work skews every figure)"
    )


if __name__ == "__main__":
    main()
