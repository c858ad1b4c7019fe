"""A real Prometheus scraping a real blackbox exporter, both on free loopback ports.

The blackbox exporter probes one HTTP target the test controls (module `http_2xx`: probe_success
is 1 on a 2xx answer, 0 otherwise); Prometheus scrapes it every second. Both are the Debian
packages `prometheus` (2.42) and `prometheus-blackbox-exporter` (0.23), started from a temp dir
and stopped by their PIDs; nothing here touches a system service. A missing binary raises
Unavailable (the test skips, or fails under DRILL_REQUIRE_INTEGRATION=1: see start_or_skip).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx

from tests.support.servers import Proc, Unavailable, free_port, spawn, wait_until

SCRAPE_INTERVAL_MS = 1000
PACKAGES = "apt-get install prometheus prometheus-blackbox-exporter"

_BLACKBOX_CONFIG = """\
modules:
  http_2xx:
    prober: http
    timeout: 800ms
    http:
      preferred_ip_protocol: ip4
"""

_PROMETHEUS_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
scrape_configs:
  - job_name: blackbox
    metrics_path: /probe
    params:
      module: [http_2xx]
    static_configs:
      - targets: ["{target}"]
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: 127.0.0.1:{blackbox_port}
"""


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise Unavailable(f"{name} is not installed ({PACKAGES})")
    return path


@dataclass
class PrometheusStack:
    """Prometheus and a blackbox exporter probing `target`; `url` is Prometheus' base URL."""

    workdir: Path
    target: str
    blackbox_port: int
    prometheus_port: int
    procs: dict[str, Proc] = field(default_factory=dict)

    @classmethod
    def start(cls, target: str) -> PrometheusStack:
        prometheus, blackbox = _binary("prometheus"), _binary("prometheus-blackbox-exporter")
        stack = cls(Path(tempfile.mkdtemp(prefix="drill-prometheus-")), target, free_port(), free_port())
        try:
            stack._start(prometheus, blackbox)
        except BaseException:
            stack.stop()
            raise
        return stack

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    def _start(self, prometheus: str, blackbox: str) -> None:
        bb_config = self.workdir / "blackbox.yml"
        bb_config.write_text(_BLACKBOX_CONFIG, encoding="utf-8")
        self.procs["blackbox"] = spawn(
            "blackbox",
            [blackbox, f"--config.file={bb_config}", f"--web.listen-address=127.0.0.1:{self.blackbox_port}"],
            self.workdir,
        )
        config = self.workdir / "prometheus.yml"
        config.write_text(
            _PROMETHEUS_CONFIG.format(target=self.target, blackbox_port=self.blackbox_port), encoding="utf-8"
        )
        self.procs["prometheus"] = spawn(
            "prometheus",
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.prometheus_port}",
            ],
            self.workdir,
        )
        self._ready(f"http://127.0.0.1:{self.blackbox_port}/-/healthy", "blackbox")
        self._ready(f"{self.url}/-/ready", "prometheus")

    def _ready(self, url: str, name: str) -> None:
        def answered() -> bool:
            proc = self.procs[name]
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{name} exited: {proc.tail()}")
            return httpx.get(url, timeout=0.5, trust_env=False).status_code == 200

        wait_until(f"{name} ready", answered, timeout_s=20)

    def latest(self, metric: str = "probe_success") -> tuple[int, str] | None:
        """The newest raw sample of `metric`'s first series: (scrape time in epoch ms, value), or None.

        A range selector returns the samples as scraped, each with its own timestamp (an
        instant query would answer with the evaluation time instead)."""
        answer = httpx.get(
            f"{self.url}/api/v1/query", params={"query": f"{metric}[10s]"}, timeout=2, trust_env=False
        ).json(parse_float=Decimal)
        result = answer["data"]["result"]
        if not result or not result[0]["values"]:
            return None
        stamp, value = result[0]["values"][-1]
        return int(Decimal(stamp) * 1000), str(value)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
