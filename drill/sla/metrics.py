"""`drill watch --metrics`: the watch's own state on a Prometheus /metrics endpoint.

So a team's Grafana dashboards can show what the watch sees while it sees it. The journal stays
the evidence; these metrics are a live view of it and prove nothing (they are not signed, and a
restart resets the counters, as Prometheus counters are meant to reset).

Served by prometheus-client's own HTTP server (a thread of its own, beside the event loop) from a
registry of the watch's own, never the process-wide default one: what is exposed is exactly the
series below, not whatever else imported prometheus_client registered.

  drill_probe_success{asset,probe}                1 or 0: the last observation
  drill_probe_duration_seconds{asset,probe}       the last observation's latency
  drill_probe_observations_total{asset,probe,result}   result ok | fail, since this process started
  drill_asset_up{asset}                           1 up, 0 down (the monitor's fall/rise state)
  drill_watch_segment                             the open segment's number
  drill_watch_segment_events                      events journalled in it so far
  drill_watch_last_event_timestamp_seconds        UTC of the last event journalled (epoch seconds)

True over plausible: a probe not observed yet, or an asset whose state is still unknown, has no
sample at all (never a 0 that would read as "down"); the observation counters start at 0, which
is true (nothing counted yet). The watch-level series are read from the open segment when
Every series is built when Prometheus scrapes (one collector), from plain attributes the watch
writes: journalling an event costs nothing here, an observation a dict look-up and three
attribute writes (no lock, no label look-up; the label tuples are built once per probe).

Bound to 127.0.0.1 unless an address is given: asset and probe names describe the estate.
"""

from __future__ import annotations

import errno
import ipaddress
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from drill.clock import utc_ms
from drill.errors import DrillError, UsageError

DEFAULT_HOST = "127.0.0.1"
EXAMPLE = "e.g. --metrics 127.0.0.1:9464 (or just 9464)"


# ------------------------------------------------------------------------ the address
@dataclass(frozen=True, slots=True)
class Listen:
    """Where /metrics is served: an IP literal and a port."""

    host: str
    port: int

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.host).is_loopback

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_listen(text: str) -> Listen:
    """PORT (on 127.0.0.1), HOST:PORT or [IPV6]:PORT; HOST is an IP address or localhost.

    A bare `:PORT` (every interface, in Go's convention) is refused rather than guessed: to
    listen beyond loopback, name the address (0.0.0.0)."""
    given = text.strip()
    if given.isdigit():
        return Listen(DEFAULT_HOST, _port(text, given))
    host, sep, port = given.rpartition(":")
    if not sep:
        raise UsageError(f"--metrics {text!r}: not HOST:PORT or PORT; {EXAMPLE}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise UsageError(f"--metrics {text!r}: write an IPv6 address in brackets, e.g. [::1]:9464")
    if not host:
        raise UsageError(
            f"--metrics {text!r}: no address; give 127.0.0.1:PORT, or 0.0.0.0:PORT for every interface"
        )
    if host == "localhost":
        host = DEFAULT_HOST
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(
            f"--metrics {text!r}: {host!r} is not an IP address (or localhost); {EXAMPLE}"
        ) from None
    return Listen(str(address), _port(text, port))


def _port(text: str, port: str) -> int:
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UsageError(f"--metrics {text!r}: the port must be a number from 1 to 65535; {EXAMPLE}")
    return int(port)


# ------------------------------------------------------------------------ the metrics
# The open segment as a scrape sees it: (number, events so far, UTC of the last event or ""),
# None while no segment is open (start-up, the instant of a rotation, after the stop).
WatchView = Callable[[], tuple[int, int, str] | None]

_PROBE_LABELS = ("asset", "probe")


class _ProbeSeries:
    """One probe's last observation and counts: plain attributes the loop thread writes and a
    scrape (the server thread) reads, each read whole; nothing is allocated per observation
    but the latency's float."""

    __slots__ = ("duration_s", "fail", "labels", "ok", "seen", "success")

    def __init__(self, asset: str, probe: str) -> None:
        self.labels = (asset, probe)
        self.seen = False  # no sample before the first observation
        self.success = 0
        self.duration_s = 0.0
        self.ok = 0
        self.fail = 0

    def observed(self, ok: bool, latency_us: int) -> None:
        self.duration_s = latency_us / 1e6
        if ok:
            self.success = 1
            self.ok += 1
        else:
            self.success = 0
            self.fail += 1
        self.seen = True


class _Collector(Collector):
    """Every series, built when Prometheus scrapes from what the watch last wrote."""

    def __init__(self, metrics: WatchMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        families = self._families()
        success, duration, observations, asset_up, segment, events, last = families
        metrics = self.metrics
        for series in metrics.probes.values():  # never resized after __init__: safe to iterate here
            if series.seen:
                success.add_metric(series.labels, series.success)
                duration.add_metric(series.labels, series.duration_s)
            observations.add_metric((*series.labels, "ok"), series.ok)
            observations.add_metric((*series.labels, "fail"), series.fail)
        for asset, up in metrics.assets.items():
            if up is not None:
                asset_up.add_metric((asset,), up)
        view = metrics.view
        found = view() if view is not None else None
        if found is not None:
            number, count, last_utc = found
            segment.add_metric((), number)
            events.add_metric((), count)
            if last_utc:
                last.add_metric((), utc_ms(last_utc) / 1000)
        return list(families)

    @staticmethod
    def _families() -> tuple[
        GaugeMetricFamily,
        GaugeMetricFamily,
        CounterMetricFamily,
        GaugeMetricFamily,
        GaugeMetricFamily,
        GaugeMetricFamily,
        GaugeMetricFamily,
    ]:
        return (
            GaugeMetricFamily(
                "drill_probe_success",
                "1 when the probe's last observation succeeded, 0 when it failed.",
                labels=_PROBE_LABELS,
            ),
            GaugeMetricFamily(
                "drill_probe_duration_seconds",
                "Latency of the probe's last observation.",
                labels=_PROBE_LABELS,
            ),
            # no _created series: one more per label set, and half the cost of a scrape
            CounterMetricFamily(
                "drill_probe_observations",
                "Probe observations since this watch process started, by result (ok or fail).",
                labels=(*_PROBE_LABELS, "result"),
            ),
            GaugeMetricFamily(
                "drill_asset_up",
                "1 when the asset is up, 0 when down (after the probes' fall/rise); absent while unknown.",
                labels=("asset",),
            ),
            GaugeMetricFamily("drill_watch_segment", "Number of the journal segment being written."),
            GaugeMetricFamily("drill_watch_segment_events", "Events journalled in the current segment."),
            GaugeMetricFamily(
                "drill_watch_last_event_timestamp_seconds",
                "UTC of the last event journalled, in seconds since the epoch.",
            ),
        )


class WatchMetrics:
    """What a watch updates and its server exposes, in a registry of its own (never the
    process-wide default one)."""

    def __init__(self, probes: Iterable[tuple[str, str]]) -> None:
        self.probes = {key: _ProbeSeries(*key) for key in probes}
        self.assets: dict[str, int | None] = dict.fromkeys((asset for asset, _ in self.probes), None)
        self.view: WatchView | None = None
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_Collector(self))

    def follow(self, view: WatchView | None) -> None:
        """Read the watch-level gauges from `view` from now on (None: no watch running)."""
        self.view = view

    def observed(self, asset: str, probe: str, ok: bool, latency_us: int) -> None:
        self.probes[asset, probe].observed(ok, latency_us)

    def asset_state(self, asset: str, up: bool) -> None:
        self.assets[asset] = 1 if up else 0


# ------------------------------------------------------------------------ the server
class MetricsServer:
    """prometheus-client's HTTP server in its daemon thread; stop() shuts it and joins it."""

    def __init__(self, listen: Listen, httpd: WSGIServer, thread: threading.Thread) -> None:
        self.listen = listen
        self.httpd = httpd
        self.thread = thread

    @classmethod
    def start(cls, listen: Listen, metrics: WatchMetrics) -> MetricsServer:
        """Bind now (before the watch touches its folder), so a taken port fails fast: exit 3
        for an address in use or not allowed (the input is well-formed, this host refuses it
        now, as with a second watch on one folder), exit 2 for an address this host lacks."""
        try:
            httpd, thread = start_http_server(listen.port, listen.host, registry=metrics.registry)
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise UsageError(f"--metrics {listen}: not an address of this host") from None
            if exc.errno == errno.EADDRINUSE:
                raise DrillError(f"--metrics {listen}: the address is already in use") from None
            raise DrillError(f"--metrics {listen}: cannot listen: {exc.strerror or exc}") from None
        return cls(listen, httpd, thread)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
