"""Secrets are resolved at run time and appear in no output: every file of the run, and the logs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import SwitchableServer, drill_run_argv

SECRET = "s3cr3t-TOKEN-value-91f2"

PLAYBOOK = """\
apiVersion: drill/v1
kind: Playbook
metadata: {{name: secrets-test, owner: tests}}
settings: {{interval: 100ms, timeout: 500ms}}
tiers: [{{name: tier-0, rto: 5s}}]
contacts:
  chains:
    oncall:
      contacts:
        - {{name: bot, via: webhook, url: "{url}/hook?token=${{env:DRILL_TEST_TOKEN}}", ack_within: 200ms}}
assets:
  - id: web
    tier: tier-0
    contact_chain: oncall
    probes:
      - name: health
        http: {{url: "{url}/health", headers: {{Authorization: "Bearer ${{env:DRILL_TEST_TOKEN}}"}}}}
      - name: secret-in-url
        http: {{url: "{url}/status?key=${{file:token.txt}}", expect_status: 418}}
scenario:
  - {{name: declare, mark: disaster}}
  - name: leaky command
    action: {{command: {{argv: ["{python}", "-c", "import sys; print('token is', sys.argv[1]); sys.exit(1)", "${{env:DRILL_TEST_TOKEN}}"]}}}}
"""


def test_no_output_file_or_log_line_contains_the_secret(
    tmp_path: Path, http_server: SwitchableServer
) -> None:
    (tmp_path / "token.txt").write_text(SECRET + "\n")
    playbook = tmp_path / "p.yaml"
    playbook.write_text(PLAYBOOK.format(url=http_server.url, python=sys.executable))
    runs = tmp_path / "runs"
    proc = subprocess.run(
        drill_run_argv(playbook, runs, "--allow-degraded"),  # the web asset is meant to fail
        capture_output=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "DRILL_TEST_TOKEN": SECRET},
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr.decode()[-2000:]
    assert any(SECRET in path for path in http_server.requests)  # the secret really was used
    outputs = {"stdout": proc.stdout, "stderr": proc.stderr}
    outputs |= {str(p): p.read_bytes() for p in runs.rglob("*") if p.is_file()}
    assert {name for name in outputs if name.endswith(("journal.jsonl", "report.json", "report.html"))}
    leaks = [name for name, data in outputs.items() if SECRET.encode() in data]
    assert leaks == []
    assert "«redacted»".encode() in b"".join(outputs.values())  # the failing action's output was scrubbed
