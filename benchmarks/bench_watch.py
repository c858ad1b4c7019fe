"""`drill watch`: CPU per probe per hour, RSS and journal bytes, against raw asyncio in the same run.

Run: .venv/bin/python benchmarks/bench_watch.py [--probes 100] [--duration 60]

N HTTP probes (N assets, one probe each) every 1 s against a loopback HTTP server in a separate
process (its CPU is not counted), each configuration in a process of its own, one after another:

  watch            `drill watch PLAYBOOK` (the real command: journal, fsync on state changes)
  watch+metrics    the same with --metrics on a loopback port, scraped every second by this process
  idle watch       the same command with ONE probe every hour: the watch's fixed cost (its loop,
                   rotation and syncer tasks), to tell what scales with N from what does not
  raw asyncio      the reference: one asyncio loop doing the same GETs (a new connection per GET,
                   as drill's probes do, `Connection: close`), drift-free ticks, nothing recorded

Each process's CPU (user + system, all its threads) and RSS are read from /proc/PID at two
instants of the same run: once every probe has been observed twice (start-up, imports and the
first ticks are before it, so they are not counted: this is the subtraction of start-up), and
--duration seconds later. CPU per probe per hour = CPU in the window / N / window hours.
Journal bytes likewise from the segment files' growth in the window. Then, apart: the CPU of
one /metrics scrape in a process serving only the metrics of N probes (the watch's own CPU
varies by several per cent from run to run, more than a scrape a second adds), and, in this
process, the cost of one WatchMetrics.observed call and of one /metrics body. The window's observations
are counted from the journal (or the reference's own count), so a configuration that fell
behind shows it instead of looking cheap.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from benchmarks._servers import serve, start_servers, stop_servers
else:  # `make bench` runs this file as a script, so benchmarks/ is first on sys.path
    from _servers import serve, start_servers, stop_servers


N = 100
DURATION_S = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"
OBSERVED = b'"probe.observed"'

PLAYBOOK_HEAD = """\
apiVersion: drill/v1
kind: Playbook
metadata: {{name: bench-watch, owner: benchmarks}}
settings: {{interval: {interval}, timeout: 800ms, fall: 2, rise: 2}}
tiers: [{{name: tier-0, rto: 5m}}]
scenario:
  - {{name: declare, mark: disaster}}
assets:
"""
ASSET = """\
  - id: svc-{i:03d}
    tier: tier-0
    probes:
      - {{name: health, http: {{url: "{url}"}}}}
"""


# --------------------------------------------------------------------------- the reference process
def raw(port: int, count: int) -> None:
    """Child process: `count` GETs a second, one loop, drift-free ticks; prints the GETs answered
    so far (ok, failed) on each SIGUSR1 (the parent's window edges); stops on SIGTERM."""
    request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
    done = [0, 0]  # ok, failed

    async def one() -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.read()  # to the close
                done[0 if head.startswith(b"HTTP/1.1 200") else 1] += 1
            finally:
                writer.close()
        except OSError:
            done[1] += 1

    async def loop_of(index: int, stop: asyncio.Event, start: float) -> None:
        loop = asyncio.get_running_loop()
        tick = 0
        offset = index / count  # spread over the second, as drill's scheduler spreads its probes
        while not stop.is_set():
            await asyncio.sleep(max(0.0, start + offset + tick - loop.time()))
            await one()
            tick += 1

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, lambda: print(done[0], done[1], flush=True))
        start = loop.time() + 0.1
        tasks = [asyncio.create_task(loop_of(i, stop, start)) for i in range(count)]
        print("ready", flush=True)
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


# --------------------------------------------------------------------------- measuring
def cpu_s(pid: int) -> float:
    """User + system CPU of every thread of `pid` so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KIB


def journal_of(folder: Path) -> tuple[int, int, int]:
    """(bytes, probe.observed events, failed ones) of every segment so far."""
    size = observed = failed = 0
    for path in folder.glob("segment-*.jsonl"):
        data = path.read_bytes()
        size += len(data)
        observed += data.count(OBSERVED)
        failed += sum(OBSERVED in line and b'"ok":false' in line for line in data.splitlines())
    return size, observed, failed


def wait_for(what: str, check: Callable[[], bool], timeout_s: float, proc: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if proc.poll() is not None:
            raise SystemExit(f"{what}: the process exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not within {timeout_s} s")
        time.sleep(0.05)


@dataclass(frozen=True)
class Figures:
    name: str
    probes: int  # probes per second asked for
    window_s: float
    cpu_s: float
    observations: int
    failed: int
    rss_start_kib: int
    rss_end_kib: int
    journal_bytes: int | None  # None: writes no journal
    metrics_scrapes: int = 0

    def per_probe_hour(self, value: float) -> float:
        return value / self.probes / (self.window_s / 3600)


class Scraper(threading.Thread):
    """Scrapes /metrics once a second (as Prometheus would) from this process, not the watch's."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.stop = threading.Event()
        self.ok = 0

    def run(self) -> None:
        with httpx.Client(trust_env=False, timeout=2) as client:
            while not self.stop.wait(1.0):
                with contextlib.suppress(httpx.HTTPError):
                    self.ok += client.get(self.url).status_code == 200


def measure_watch(
    name: str, url: str, probes: int, interval: str, duration_s: float, metrics: bool
) -> Figures:
    with tempfile.TemporaryDirectory(prefix="drill-bench-watch-") as tmp:
        root = Path(tmp)
        playbook = root / "watch.yaml"
        assets = "".join(ASSET.format(i=i, url=url) for i in range(probes))
        playbook.write_text(PLAYBOOK_HEAD.format(interval=interval) + assets, encoding="utf-8")
        folder = root / "watch"
        argv = [
            sys.executable,
            "-m",
            "drill",
            "--log-format",
            "json",
            "watch",
            str(playbook),
            "--out",
            str(folder),
        ]
        scraper = None
        if metrics:
            port = _free_port()
            argv += ["--metrics", f"127.0.0.1:{port}"]
            scraper = Scraper(port)
        with open(root / "watch.log", "wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            # steady state: every probe observed twice (one-probe idle watch: observed once)
            wanted = probes * 2 if interval == "1s" else probes
            wait_for(f"{name}: first ticks", lambda: journal_of(folder)[1] >= wanted, 60, proc)
            if scraper is not None:
                scraper.start()
            t0, cpu0, rss0 = time.monotonic(), cpu_s(proc.pid), rss_kib(proc.pid)
            bytes0, seen0, failed0 = journal_of(folder)
            time.sleep(duration_s)  # the measurement window itself, not a synchronisation
            t1, cpu1, rss1 = time.monotonic(), cpu_s(proc.pid), rss_kib(proc.pid)
            bytes1, seen1, failed1 = journal_of(folder)
            if scraper is not None:
                scraper.stop.set()
                scraper.join(timeout=5)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if code != 0:
            raise SystemExit(f"{name}: drill watch exited {code}\n{(root / 'watch.log').read_text()[-2000:]}")
    return Figures(
        name,
        probes,
        t1 - t0,
        cpu1 - cpu0,
        seen1 - seen0,
        failed1 - failed0,
        rss0,
        rss1,
        bytes1 - bytes0,
        scraper.ok if scraper is not None else 0,
    )


def measure_raw(port: int, probes: int, duration_s: float) -> Figures:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--raw", str(port), str(probes)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    out = proc.stdout

    def counted() -> tuple[int, int]:
        """(ok, failed) GETs so far, asked of the process itself at this instant."""
        proc.send_signal(signal.SIGUSR1)
        ok, failed = out.readline().split()
        return int(ok), int(failed)

    try:
        if out.readline().strip() != "ready":
            raise SystemExit("raw asyncio: did not start")
        wait_for("raw asyncio: first ticks", lambda: counted()[0] >= probes * 2, 60, proc)
        t0, cpu0, rss0, (ok0, failed0) = time.monotonic(), cpu_s(proc.pid), rss_kib(proc.pid), counted()
        time.sleep(duration_s)  # the measurement window itself
        t1, cpu1, rss1, (ok1, failed1) = time.monotonic(), cpu_s(proc.pid), rss_kib(proc.pid), counted()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    observations = (ok1 + failed1) - (ok0 + failed0)
    return Figures(
        "raw asyncio", probes, t1 - t0, cpu1 - cpu0, observations, failed1 - failed0, rss0, rss1, None
    )


def serve_metrics(port: int, probes: int) -> None:
    """Child process: WatchMetrics for `probes` probes (each observed, each asset up) behind
    MetricsServer, as a watch serves them, without the watch; until stdin closes."""
    from drill.sla.metrics import Listen, MetricsServer, WatchMetrics

    keys = [(f"svc-{i:03d}", "health") for i in range(probes)]
    metrics = WatchMetrics(keys)
    for asset, probe in keys:
        metrics.observed(asset, probe, True, 1234)
        metrics.asset_state(asset, True)
    metrics.follow(lambda: (1, 1000, "2026-03-29T01:00:00.250+00:00"))
    server = MetricsServer.start(Listen("127.0.0.1", port), metrics)
    print("ready", flush=True)
    sys.stdin.read()
    server.stop()


def scrape_cost(probes: int, scrapes: int = 100) -> float:
    """CPU ms per /metrics scrape in the serving process alone (HTTP server, thread, body), the
    scrapes made from this process: apart from the watch, whose own CPU varies more run to run
    than a scrape a second adds to it."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-metrics", str(port), str(probes)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("metrics server: did not start")
        with httpx.Client(trust_env=False, timeout=5) as client:
            client.get(f"http://127.0.0.1:{port}/metrics").raise_for_status()  # warm-up
            cpu0 = cpu_s(proc.pid)
            for _ in range(scrapes):
                client.get(f"http://127.0.0.1:{port}/metrics").raise_for_status()
            cpu1 = cpu_s(proc.pid)
        proc.stdin.close()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return (cpu1 - cpu0) * 1000 / scrapes


def update_costs(probes: int) -> tuple[float, float]:
    """In this process: (µs per WatchMetrics.observed, ms CPU per /metrics body for `probes`)."""
    from prometheus_client import generate_latest

    from drill.sla.metrics import WatchMetrics

    keys = [(f"svc-{i:03d}", "health") for i in range(probes)]
    metrics = WatchMetrics(keys)
    for asset, probe in keys:
        metrics.observed(asset, probe, True, 1234)
        metrics.asset_state(asset, True)
    metrics.follow(lambda: (1, 1000, "2026-03-29T01:00:00.250+00:00"))
    calls = 200_000
    t0 = time.perf_counter()
    for i in range(calls):
        asset, probe = keys[i % probes]
        metrics.observed(asset, probe, i % 3 != 0, 1000 + i)
    per_update_us = (time.perf_counter() - t0) * 1e6 / calls
    scrapes = 100
    c0 = time.process_time()
    for _ in range(scrapes):
        generate_latest(metrics.registry)
    return per_update_us, (time.process_time() - c0) * 1000 / scrapes


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------- report
TICK_S = 1 / CLK_TCK


def table(rows: list[Figures], idle: Figures) -> None:
    head = (
        f"{'':<15}{'probes/s':>9}{'window s':>9}{'obs':>8}{'failed':>7}{'CPU s':>8}{'CPU ms/obs':>11}"
        f"{'CPU s/probe/h':>15}{'RSS start':>11}{'RSS end':>10}{'journal B/probe/h':>19}"
    )
    print(head)
    print("-" * len(head))
    for f in [*rows, idle]:
        if f.cpu_s > 0:
            cpu, per_hour = f"{f.cpu_s:.2f}", f"{f.per_probe_hour(f.cpu_s):.2f}"
        else:  # below the kernel's accounting tick: measured as less than one tick, not as 0
            cpu, per_hour = f"<{TICK_S:.2f}", f"<{f.per_probe_hour(TICK_S):.2f}"
        per_obs = f"{f.cpu_s * 1000 / f.observations:.3f}" if f.observations and f.cpu_s > 0 else "—"
        journal = "—" if f.journal_bytes is None else f"{f.per_probe_hour(f.journal_bytes):,.0f}"
        print(
            f"{f.name:<15}{f.probes:>9}{f.window_s:>9.1f}{f.observations:>8}{f.failed:>7}{cpu:>8}{per_obs:>11}"
            f"{per_hour:>15}{f.rss_start_kib / 1024:>9.1f}Mi{f.rss_end_kib / 1024:>8.1f}Mi{journal:>19}"
        )
    print(f"(CPU from /proc/PID/stat, user + system of all threads, in {TICK_S * 1000:.0f} ms ticks)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--raw", nargs=2, type=int, metavar=("PORT", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--serve-metrics", nargs=2, type=int, metavar=("PORT", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--probes", type=int, default=N, help="HTTP probes, each every 1 s (default 100)")
    parser.add_argument(
        "--duration", type=float, default=DURATION_S, help="measured window per run, s (default 60)"
    )
    parser.add_argument("--skip-metrics", action="store_true", help="leave out the watch+metrics run")
    args = parser.parse_args()
    if args.serve:
        serve(RESPONSE, 0.0, backlog=4096)
        return
    if args.raw:
        raw(*args.raw)
        return
    if args.serve_metrics:
        serve_metrics(*args.serve_metrics)
        return
    if args.probes < 1 or args.duration <= 0:
        raise SystemExit("--probes must be at least 1 and --duration above 0")

    servers, (port,) = start_servers([sys.executable, __file__, "--serve"])
    try:
        url = f"http://127.0.0.1:{port}/health"
        n, d = args.probes, args.duration
        print(f"{n} HTTP probes every 1 s, loopback server in a separate process; window {d:.0f} s per run")
        rows = [measure_watch("watch", url, n, "1s", d, metrics=False)]
        if not args.skip_metrics:
            rows.append(measure_watch("watch+metrics", url, n, "1s", d, metrics=True))
        idle = measure_watch("idle watch", url, 1, "1h", d, metrics=False)
        rows.append(measure_raw(port, n, d))
    finally:
        stop_servers(servers)

    table(rows, idle)
    watch, reference = rows[0], rows[-1]
    print()
    idle_hour = max(idle.cpu_s, TICK_S) / (idle.window_s / 3600)
    bound = "" if idle.cpu_s > 0 else "less than "
    print(f"idle watch (1 probe an hour): {bound}{idle_hour:.1f} CPU s per hour, the fixed cost")
    marginal = (
        (watch.cpu_s - idle.cpu_s * watch.window_s / idle.window_s) / watch.probes / (watch.window_s / 3600)
    )
    print(f"watch, per probe beyond that fixed cost: {marginal:.2f} CPU s per probe per hour")
    print(
        f"watch / raw asyncio: {watch.cpu_s / reference.cpu_s:.1f}x the CPU for the same GETs "
        f"(what the journal, the monitor, httpx and the scheduler cost over the bare requests)"
    )
    if not args.skip_metrics:
        with_metrics = rows[1]
        extra = (with_metrics.cpu_s - watch.cpu_s) / watch.cpu_s
        print(
            f"--metrics, scraped every 1 s ({with_metrics.metrics_scrapes} scrapes): {extra:+.1%} CPU vs watch "
            "(the difference of two separate runs: noisy; the next line measures a scrape alone)"
        )
        per_scrape = scrape_cost(watch.probes)
        print(
            f"--metrics alone: {per_scrape:.1f} ms CPU per scrape of {watch.probes} probes in the serving "
            f"process; at one scrape a second {per_scrape * 3.6:.1f} CPU s per hour, "
            f"{per_scrape * 3.6 / (watch.cpu_s / (watch.window_s / 3600)):.1%} of this watch's"
        )
    for f in rows:
        expected = f.probes * f.window_s
        if f.observations < 0.95 * expected:
            print(
                f"WARNING: {f.name} made {f.observations} observations, {expected:.0f} expected: it fell behind"
            )
    per_update_us, per_scrape_ms = update_costs(watch.probes)
    print(
        f"in process: WatchMetrics.observed {per_update_us:.2f} us a call (with the loop's look-up); "
        f"a /metrics body for {watch.probes} probes {per_scrape_ms:.1f} ms CPU"
    )
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cpus, load average {load:.2f} (other work skews every figure)")


if __name__ == "__main__":
    main()
