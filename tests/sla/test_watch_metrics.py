"""`drill watch --metrics`: a real watch process serving /metrics on a free loopback port, probing a
real HTTP server on 127.0.0.1 that the test switches to failing, scraped with httpx and parsed with
prometheus_client's own parser; then a real Prometheus scraping it every second.

Every wait polls a scrape, a file or a process under a deadline; none sleeps to synchronise.
"""

from __future__ import annotations

import shutil
import signal
import socket
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from drill.clock import utc_ms
from drill.evidence.events import ProbeObserved
from drill.evidence.journal import read_events
from drill.sla.metrics import Listen, MetricsServer, WatchMetrics, parse_listen
from tests.conftest import SwitchableServer, serving
from tests.sla.test_watch import start_watch, write_playbook
from tests.support.servers import Proc, Unavailable, free_port, spawn, start_or_skip, wait_until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def server() -> Iterator[SwitchableServer]:
    yield from serving(SwitchableServer())


def scrape(port: int) -> Samples:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2, trust_env=False)
    answer.raise_for_status()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def probe(samples: Samples, name: str, **extra: str) -> float | None:
    return value(samples, name, asset="web", probe="health", **extra)


def scraped(port: int) -> Samples | None:
    try:
        return scrape(port)
    except httpx.HTTPError:
        return None  # not listening yet


def scraped_until(port: int, what: str, check: Callable[[Samples], bool], timeout_s: float = 10) -> Samples:
    """Scrape until `check` holds for what was scraped; that scrape."""

    def once() -> Samples | None:
        found = scraped(port)
        return found if found is not None and check(found) else None

    return wait_until(what, once, timeout_s=timeout_s)


def set_status(server: SwitchableServer, status: int) -> None:
    with server.lock:
        server.status = status


def observed_in(folder: Path) -> tuple[int, int]:
    """(ok, failed) probe.observed events journalled so far."""
    ok = failed = 0
    for path in sorted(folder.glob("segment-*.jsonl")):
        for event in read_events(path, allow_torn_tail=True):
            if isinstance(event.payload, ProbeObserved):
                ok += event.payload.ok
                failed += not event.payload.ok
    return ok, failed


def test_metrics_follow_the_probes_up_then_down_and_stop_with_the_watch(
    tmp_path: Path, server: SwitchableServer
) -> None:
    playbook = write_playbook(tmp_path, server)
    folder = tmp_path / "watch"
    port = free_port()
    started = time.time()
    process = start_watch(tmp_path, str(playbook), "--out", str(folder), "--metrics", f"127.0.0.1:{port}")
    log = tmp_path / "watch.log"
    try:

        def up() -> Samples | None:
            assert process.poll() is None, log.read_text()
            found = scraped(port)
            return found if found and probe(found, "drill_probe_success") == 1 else None

        first = wait_until("drill_probe_success 1", up, timeout_s=15)
        assert value(first, "drill_asset_up", asset="web") == 1
        assert value(first, "drill_watch_segment") == 1
        duration = probe(first, "drill_probe_duration_seconds")
        assert duration is not None and 0 < duration < 0.5  # the playbook's timeout is 500 ms
        ok_before = probe(first, "drill_probe_observations_total", result="ok")
        assert ok_before is not None and ok_before >= 1
        assert probe(first, "drill_probe_observations_total", result="fail") == 0  # counted, none failed
        events_before = value(first, "drill_watch_segment_events")
        assert events_before is not None and events_before >= 3  # watch.segment, watch.started, ...
        last = value(first, "drill_watch_last_event_timestamp_seconds")
        assert last is not None and started - 1 <= last <= time.time()

        later = scraped_until(
            port,
            "more observations",
            lambda s: (probe(s, "drill_probe_observations_total", result="ok") or 0) > ok_before,
        )
        assert (value(later, "drill_watch_segment_events") or 0) > events_before

        set_status(server, 503)  # the service goes down
        down = scraped_until(port, "drill_probe_success 0", lambda s: probe(s, "drill_probe_success") == 0)
        assert (probe(down, "drill_probe_observations_total", result="fail") or 0) >= 1
        scraped_until(port, "drill_asset_up 0", lambda s: value(s, "drill_asset_up", asset="web") == 0)
        set_status(server, 200)
        back = scraped_until(
            port, "drill_probe_success 1 again", lambda s: probe(s, "drill_probe_success") == 1
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    # the counters never ran ahead of the journal: every observation counted was journalled
    journal_ok, journal_failed = observed_in(folder)
    assert (probe(back, "drill_probe_observations_total", result="ok") or 0) <= journal_ok
    assert 1 <= (probe(back, "drill_probe_observations_total", result="fail") or 0) <= journal_failed
    assert scraped(port) is None  # the server went with the watch
    assert f"http://127.0.0.1:{port}/metrics" in log.read_text()


def test_nothing_is_shown_for_what_was_not_observed_and_updates_are_exposed() -> None:
    """In process, no watch: before any observation there is no success, duration or asset_up
    sample (a 0 would read as down), while the counters are a true 0."""
    metrics = WatchMetrics([("web", "health"), ("db", "tcp")])
    port = free_port()
    server = MetricsServer.start(Listen("127.0.0.1", port), metrics)
    try:
        empty = scrape(port)
        assert not any(name in {"drill_probe_success", "drill_asset_up"} for name, _ in empty)
        assert not any(name.startswith("drill_watch_") for name, _ in empty)  # no watch followed
        assert probe(empty, "drill_probe_observations_total", result="fail") == 0
        metrics.observed("web", "health", False, 1_250_000)
        metrics.asset_state("web", False)
        metrics.follow(lambda: (7, 42, "2026-03-29T01:00:00.250+00:00"))
        seen = scrape(port)
        assert probe(seen, "drill_probe_success") == 0
        assert probe(seen, "drill_probe_duration_seconds") == 1.25
        assert probe(seen, "drill_probe_observations_total", result="fail") == 1
        assert value(seen, "drill_asset_up", asset="web") == 0
        assert value(seen, "drill_asset_up", asset="db") is None  # still unknown
        assert value(seen, "drill_probe_success", asset="db", probe="tcp") is None
        assert value(seen, "drill_watch_segment") == 7
        assert value(seen, "drill_watch_segment_events") == 42
        stamp = value(seen, "drill_watch_last_event_timestamp_seconds")
        assert stamp == utc_ms("2026-03-29T01:00:00.250+00:00") / 1000
        metrics.follow(lambda: (8, 1, ""))  # a segment with no event yet: no timestamp, no guess
        assert value(scrape(port), "drill_watch_last_event_timestamp_seconds") is None
    finally:
        server.stop()
    assert scraped(port) is None


def test_an_observation_keeps_nothing_once_its_series_exist() -> None:
    """Under tracemalloc: 20,000 observations of 100 probes after each has been seen once leave
    no memory behind (the label children are resolved once, per probe, not per observation)."""
    probes = [(f"a{i}", "health") for i in range(100)]
    metrics = WatchMetrics(probes)
    for asset, name in probes:
        metrics.observed(asset, name, True, 1000)
        metrics.asset_state(asset, True)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(20_000):
            asset, name = probes[i % 100]
            metrics.observed(asset, name, i % 7 != 0, 1000 + i)
            if i % 50 == 0:
                metrics.asset_state(asset, i % 100 != 0)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 2048, f"{after - before} bytes kept by 20,000 observations"
    fails = metrics.registry.get_sample_value(
        "drill_probe_observations_total", {"asset": "a0", "probe": "health", "result": "fail"}
    )
    assert fails == len(range(0, 20_000, 700))  # a0's observations where i % 7 == 0


def test_addresses_parse_to_loopback_unless_named() -> None:
    assert parse_listen("9464") == Listen("127.0.0.1", 9464)
    assert parse_listen("localhost:9464") == Listen("127.0.0.1", 9464)
    assert parse_listen("[::1]:9464") == Listen("::1", 9464)
    assert str(parse_listen("[::1]:9464")) == "[::1]:9464"
    assert parse_listen("127.0.0.1:9464").loopback and parse_listen("[::1]:1").loopback
    assert not parse_listen("0.0.0.0:9464").loopback
    assert not parse_listen("192.0.2.7:9464").loopback


def _cli() -> click.Command:
    from drill.cli import COMMANDS, cli

    COMMANDS.setdefault("watch", ("drill.cli.watch", "watch", "watch"))
    return cli


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ("soon", "not HOST:PORT or PORT"),
        ("127.0.0.1:0", "the port must be a number from 1 to 65535"),
        ("127.0.0.1:70000", "the port must be a number from 1 to 65535"),
        ("127.0.0.1:http", "the port must be a number from 1 to 65535"),
        (":9464", "no address"),
        ("example.com:9464", "'example.com' is not an IP address"),
        ("::1:9464", "IPv6 address in brackets"),
    ],
)
def test_a_bad_metrics_value_is_one_line_and_exit_2(
    given: str, words: str, tmp_path: Path, server: SwitchableServer
) -> None:
    playbook = write_playbook(tmp_path, server)
    out = CliRunner().invoke(
        _cli(), ["watch", str(playbook), "--out", str(tmp_path / "w"), "--metrics", given]
    )
    assert out.exit_code == 2, out.output
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"drill: --metrics {given!r}: "), out.output
    assert words in lines[0]
    assert not (tmp_path / "w").exists()


def test_a_port_in_use_is_one_line_exit_3_before_the_folder_is_touched(
    tmp_path: Path, server: SwitchableServer
) -> None:
    """Exit 3, not 2: the address is well-formed; this host refuses it now (as a second watch on
    one folder is refused), and the same command works once the port is free."""
    playbook = write_playbook(tmp_path, server)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = CliRunner().invoke(
            _cli(),
            ["watch", str(playbook), "--out", str(tmp_path / "w"), "--metrics", f"127.0.0.1:{port}"],
        )
    assert out.exit_code == 3, out.output
    assert out.output.strip() == f"drill: --metrics 127.0.0.1:{port}: the address is already in use"
    assert not (tmp_path / "w").exists()


def test_a_non_loopback_address_warns(
    tmp_path: Path, server: SwitchableServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The warning alone: MetricsServer.start is replaced by one that serves on 127.0.0.1 (a
    stand-in, so this test never listens beyond loopback), for a 300 ms watch."""
    bound: list[Listen] = []
    real_start = MetricsServer.start

    def loopback_instead(listen: Listen, metrics: WatchMetrics) -> MetricsServer:
        bound.append(listen)
        return real_start(Listen("127.0.0.1", free_port()), metrics)

    monkeypatch.setattr(MetricsServer, "start", staticmethod(loopback_instead))
    playbook = write_playbook(tmp_path, server)
    out = CliRunner().invoke(
        _cli(),
        [
            "watch",
            str(playbook),
            "--out",
            str(tmp_path / "w"),
            "--duration",
            "300ms",
            "--metrics",
            "0.0.0.0:9464",
        ],
    )
    assert out.exit_code == 0, out.output
    assert bound == [Listen("0.0.0.0", 9464)]
    assert "drill: warning: --metrics 0.0.0.0:9464 is not a loopback address" in out.output


# ------------------------------------------------------------------ a real Prometheus
_PROMETHEUS_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: drill-watch
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


@dataclass
class Scraper:
    """Prometheus 2.42 (the Debian package) scraping one target every second, on a free port."""

    workdir: Path
    port: int
    procs: list[Proc] = field(default_factory=list)

    @classmethod
    def start(cls, target_port: int) -> Scraper:
        binary = shutil.which("prometheus")
        if binary is None:
            raise Unavailable("prometheus is not installed (apt-get install prometheus)")
        scraper = cls(Path(tempfile.mkdtemp(prefix="drill-prometheus-")), free_port())
        config = scraper.workdir / "prometheus.yml"
        config.write_text(_PROMETHEUS_CONFIG.format(port=target_port), encoding="utf-8")
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={scraper.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{scraper.port}",
        ]
        scraper.procs.append(spawn("prometheus", argv, scraper.workdir))
        try:
            wait_until("prometheus ready", scraper.ready, timeout_s=20)
        except BaseException:
            scraper.stop()
            raise
        return scraper

    def ready(self) -> bool:
        if self.procs[0].popen.poll() is not None:
            raise RuntimeError(f"prometheus exited: {self.procs[0].tail()}")
        return (
            httpx.get(f"http://127.0.0.1:{self.port}/-/ready", timeout=0.5, trust_env=False).status_code
            == 200
        )

    def query(self, promql: str) -> list[dict[str, object]]:
        answer = httpx.get(
            f"http://127.0.0.1:{self.port}/api/v1/query", params={"query": promql}, timeout=2, trust_env=False
        ).json()
        assert answer["status"] == "success", answer
        result: list[dict[str, object]] = answer["data"]["result"]
        return result

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def test_a_real_prometheus_scrapes_the_watch(tmp_path: Path, server: SwitchableServer) -> None:
    port = free_port()
    scraper = start_or_skip(lambda: Scraper.start(port))
    playbook = write_playbook(tmp_path, server)
    process = start_watch(
        tmp_path, str(playbook), "--out", str(tmp_path / "w"), "--metrics", f"127.0.0.1:{port}"
    )
    try:

        def success_of_web() -> list[dict[str, object]]:
            assert process.poll() is None, (tmp_path / "watch.log").read_text()
            return scraper.query('drill_probe_success{asset="web"}')

        [series] = wait_until("drill_probe_success in Prometheus", success_of_web, timeout_s=20)
        labels = series["metric"]
        assert isinstance(labels, dict)
        assert (labels["asset"], labels["probe"], labels["job"]) == ("web", "health", "drill-watch")
        assert labels["instance"] == f"127.0.0.1:{port}"
        sample = series["value"]
        assert isinstance(sample, list) and sample[1] == "1"
        [up] = scraper.query('up{job="drill-watch"}')
        assert up["value"][1] == "1"  # type: ignore[index]  # the scrape itself succeeded
        [observed] = wait_until(
            "observations in Prometheus",
            lambda: scraper.query('drill_probe_observations_total{asset="web",result="ok"} > 0'),
            timeout_s=10,
        )
        assert float(observed["value"][1]) > 0  # type: ignore[index]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        scraper.stop()
