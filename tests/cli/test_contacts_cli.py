"""`drill contacts test`: page every chain, wait for acks, produce a signed report."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from drill.cli import cli

PLAYBOOK = """\
apiVersion: drill/v1
kind: Playbook
metadata: {{name: phone-tree, owner: tests}}
tiers: [{{name: tier-0, rto: 5s}}]
contacts:
  chains:
    oncall:
      respond_within: 3s
      contacts:
        - {{name: silent, via: webhook, url: "{url}/silent", ack_within: 300ms}}
        - {{name: bot, via: webhook, url: "{url}/bot", ack_within: 2s}}
assets:
  - {{id: web, tier: tier-0, contact_chain: oncall, probes: [{{name: h, http: {{url: "{url}/never-probed"}}}}]}}
scenario:
  - {{name: declare, mark: disaster}}
"""


class AckingBot(BaseHTTPRequestHandler):
    """Receives webhook pages; on /bot it acknowledges through the page's ack link 100 ms later."""

    paths: list[str] = []

    def do_POST(self) -> None:
        page = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        AckingBot.paths.append(self.path)
        self.send_response(200)
        self.end_headers()
        if self.path == "/bot":
            threading.Thread(target=self._ack, args=(page["ack_url"],), daemon=True).start()

    @staticmethod
    def _ack(url: str) -> None:
        time.sleep(0.1)  # the bot's reaction time
        data = urllib.parse.urlencode({"by": "bot"}).encode()
        urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=5).read()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def bot() -> Iterator[str]:
    AckingBot.paths = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), AckingBot)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_contact_drill_escalates_measures_and_signs(bot: str, tmp_path: Path) -> None:
    playbook = tmp_path / "p.yaml"
    playbook.write_text(PLAYBOOK.format(url=bot))
    runner = CliRunner()
    key = tmp_path / "op_ed25519"
    assert runner.invoke(cli, ["keygen", str(key), "--no-passphrase"]).exit_code == 0
    result = runner.invoke(
        cli, ["contacts", "test", str(playbook), "--runs-dir", str(tmp_path / "runs"), "--sign-key", str(key)]
    )
    assert result.exit_code == 0, result.output
    assert AckingBot.paths == ["/silent", "/bot"]
    run_dir = next((tmp_path / "runs").iterdir())
    results = json.loads((run_dir / "results.json").read_text())
    pages = {p["contact"]: p for p in results["pages"]}
    assert pages["silent"]["ack_ms"] is None and 100 <= pages["bot"]["ack_ms"] <= 300
    assert results["chains"][0]["met"] is True and results["verdict"] == "pass"
    report = json.loads((run_dir / "report.json").read_text())
    assert report["people"]["chains"][0]["name"] == "oncall"
    assert (run_dir / "report.json.operator.sig").exists()
