"""The CLI's shared conventions: lazy commands, global log options, logs on stderr with one time
field, `--format json` on every reporting command, `validate -` and folders, runs/latest."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from drill.cli import COMMANDS, cli
from drill.log import level_from_counts
from tests.conftest import SwitchableServer, drill_run_argv

FIXTURE_JOURNAL = Path(__file__).parent.parent / "report" / "fixtures" / "journal.jsonl"
DEMO = Path(__file__).parent.parent.parent / "playbooks" / "demo.yaml"

PLAYBOOK = """\
apiVersion: drill/v1
kind: Playbook
metadata: {{name: conventions, owner: tests}}
settings: {{interval: 50ms, timeout: 500ms, fall: 1, rise: 1}}
tiers: [{{name: tier-0, rto: 5s, rpo: "0", waive: {{rpo: "stateless test service"}}}}]
assets:
  - id: web
    tier: tier-0
    probes:
      - {{name: health, http: {{url: "{url}/health"}}}}
scenario:
  - {{name: declare, mark: disaster}}
  - {{name: hold, pause: 100ms}}
"""
# The service never goes down, so no recovery is demonstrated: the verdict is `incomplete`,
# exit 1, every time (these tests are about output, not about a failover).
INCOMPLETE = 1


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_listed_command_loads_under_its_name(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None and command.name == name


def test_help_and_version_import_no_command_and_no_driver() -> None:
    heavy = ["httpx", "psycopg", "redis", "jsonschema", "structlog", "asyncio", "rich", "drill.cli.run"]
    code = (
        "import sys\nfrom drill.cli import cli\n"
        "for args in (['--help'], ['--version']):\n"
        "    try:\n        cli(args, prog_name='drill')\n    except SystemExit:\n        pass\n"
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    assert _python(code).splitlines()[-1] == "[]"


def test_validate_imports_no_probe_driver() -> None:
    code = (
        "import sys\nfrom drill.cli import cli\n"
        f"try:\n    cli(['validate', {str(DEMO)!r}], prog_name='drill')\nexcept SystemExit as e:\n    code = e.code\n"
        "print(code, [m for m in ('httpx', 'psycopg', 'redis', 'dns', 'jsonschema') if m in sys.modules])"
    )
    assert _python(code).splitlines()[-1] == "0 []"


@pytest.mark.parametrize(
    ("verbose", "quiet", "level"),
    [(0, 0, "info"), (1, 0, "debug"), (3, 0, "debug"), (0, 1, "warning"), (0, 2, "error"), (0, 5, "error")],
)
def test_verbose_and_quiet_counts_are_levels(verbose: int, quiet: int, level: str) -> None:
    assert level_from_counts(verbose, quiet) == level


def test_logs_go_to_stderr_as_json_with_one_time_field(tmp_path: Path, http_server: SwitchableServer) -> None:
    playbook = tmp_path / "p.yaml"
    playbook.write_text(PLAYBOOK.format(url=http_server.url))
    argv = drill_run_argv(playbook, tmp_path / "runs")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == INCOMPLETE, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert lines, done.stderr
    for line in lines:
        assert "utc" in line and "timestamp" not in line, line
        assert line["utc"].endswith("+00:00")
    assert not any(line.startswith("{") for line in done.stdout.splitlines())  # stdout: the summary only


def test_quiet_keeps_info_lines_out_and_global_format_applies(
    tmp_path: Path, http_server: SwitchableServer
) -> None:
    playbook = tmp_path / "p.yaml"
    playbook.write_text(PLAYBOOK.format(url=http_server.url))
    argv = [sys.executable, "-m", "drill", "-q", "--log-format", "json", "run", str(playbook)]
    argv += ["--runs-dir", str(tmp_path / "runs"), "--yes"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == INCOMPLETE, done.stderr
    levels = {json.loads(line)["level"] for line in done.stderr.splitlines() if line.startswith("{")}
    assert levels <= {"warning", "error"}, levels
    loud = subprocess.run([*argv[:3], "--log-format", "json", *argv[6:]], capture_output=True, text=True)
    assert "info" in {json.loads(x)["level"] for x in loud.stderr.splitlines() if x.startswith("{")}


def test_run_format_json_is_one_document_and_latest_points_at_the_run(
    tmp_path: Path, http_server: SwitchableServer
) -> None:
    playbook = tmp_path / "p.yaml"
    playbook.write_text(PLAYBOOK.format(url=http_server.url))
    runs = tmp_path / "runs"
    done = subprocess.run(
        [*drill_run_argv(playbook, runs), "--format", "json"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == INCOMPLETE, done.stderr
    data = json.loads(done.stdout)  # nothing else on stdout
    assert data["verdict"] == "incomplete" and data["exit_code"] == INCOMPLETE
    assert data["results"]["verdict"] == "incomplete" and data["verdict_reason"]
    assert "report.json" in data["evidence"] and "journal.jsonl" in data["evidence"]
    latest = runs / "latest"
    assert latest.is_symlink() and latest.resolve() == (runs / data["run_id"]).resolve()
    second = subprocess.run(
        [*drill_run_argv(playbook, runs), "--format", "json"], capture_output=True, text=True, timeout=60
    )
    newer = json.loads(second.stdout)["run_id"]
    assert newer != data["run_id"] and latest.resolve().name == newer  # moved to the newest run


def test_a_latest_that_is_not_a_symlink_is_left_alone(tmp_path: Path, http_server: SwitchableServer) -> None:
    playbook = tmp_path / "p.yaml"
    playbook.write_text(PLAYBOOK.format(url=http_server.url))
    runs = tmp_path / "runs"
    (runs / "latest").mkdir(parents=True)
    (runs / "latest" / "mine.txt").write_text("the user's own")
    done = subprocess.run(drill_run_argv(playbook, runs), capture_output=True, text=True, timeout=60)
    assert done.returncode == INCOMPLETE, done.stderr
    assert (runs / "latest" / "mine.txt").read_text() == "the user's own"


def test_dry_run_format_json(tmp_path: Path, http_server: SwitchableServer) -> None:
    playbook = tmp_path / "p.yaml"
    playbook.write_text(PLAYBOOK.format(url=http_server.url))
    result = CliRunner().invoke(cli, ["run", "--dry-run", str(playbook), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ready"] is True
    assert {"what": "probe web/health", "ok": True, "checked": True, "reason": ""} in data["checks"]


def test_journal_verify_format_json(tmp_path: Path) -> None:
    ok = CliRunner().invoke(cli, ["journal", "verify", str(FIXTURE_JOURNAL), "--format", "json"])
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data["ok"] is True and data["events"] > 10 and len(data["head"]) == 64
    broken = tmp_path / "journal.jsonl"
    lines = FIXTURE_JOURNAL.read_bytes().splitlines(keepends=True)
    broken.write_bytes(b"".join([*lines[:3], lines[4], lines[3], *lines[5:]]))  # two lines swapped
    bad = CliRunner().invoke(cli, ["journal", "verify", str(broken), "--format", "json"])
    assert bad.exit_code == 1
    failure = json.loads(bad.stdout)
    assert failure["ok"] is False and "line 4" in failure["error"]


def test_validate_reads_stdin_and_folders(tmp_path: Path) -> None:
    stdin = CliRunner().invoke(cli, ["validate", "-"], input=DEMO.read_text())
    assert stdin.exit_code == 0 and stdin.stdout.startswith("<stdin>: valid"), stdin.output
    bad = CliRunner().invoke(cli, ["validate", "-", "--format", "json"], input="apiVersion: drill/v1\n")
    assert bad.exit_code == 2 and json.loads(bad.stdout)["files"][0]["file"] == "<stdin>"
    folder = tmp_path / "pb"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.yaml").write_text(DEMO.read_text())
    (folder / "sub" / "a.yml").write_text(DEMO.read_text())
    (folder / "vars.yaml").write_text("REGION: eu-west-1\n")  # not a playbook: skipped
    found = CliRunner().invoke(cli, ["validate", str(folder)])
    assert found.exit_code == 0, found.output
    assert [line.split(":")[0] for line in found.stdout.splitlines()] == [
        str(folder / "b.yaml"),
        str(folder / "sub" / "a.yml"),
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    none = CliRunner().invoke(cli, ["validate", str(empty)])
    assert none.exit_code == 2 and "no playbook in this folder" in none.output


def test_completion_scripts_for_three_shells() -> None:
    for shell, marker in (
        ("bash", "_DRILL_COMPLETE=bash_complete"),
        ("zsh", "compdef"),
        ("fish", "complete"),
    ):
        result = CliRunner().invoke(cli, ["completion", shell])
        assert result.exit_code == 0 and marker in result.stdout, (shell, result.output)
    env = {"_DRILL_COMPLETE": "bash_complete", "COMP_WORDS": "drill ver", "COMP_CWORD": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "drill"], env={**env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True
    )
    assert "verify" in done.stdout.split() or "plain,verify" in done.stdout, done.stdout + done.stderr


def test_a_reader_that_leaves_early_is_not_an_internal_error() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head` that already exited: every write fails with EPIPE
    try:
        done = subprocess.run(
            [sys.executable, "-m", "drill", "validate", str(DEMO.parent)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 141, done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr


def test_the_readme_documents_every_command_with_its_exit_codes() -> None:
    readme = (Path(__file__).parent.parent.parent / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Commands, exit codes, machine output", 1)[1].split("\n\n", 2)[1]
    rows = [line for line in table.splitlines() if line.startswith("| `drill ")]
    documented = {line.split("`drill ", 1)[1].split()[0].split("`")[0] for line in rows}
    assert documented == set(COMMANDS), documented ^ set(COMMANDS)
    for row in rows:
        cells = re.split(r"(?<!\\)\|", row)  # `\|` inside a cell is not a column
        assert re.search(r"\b0\b", cells[3]), row  # every row states its exit codes


def test_log_lines_follow_stderr_as_it_is_when_they_are_written(capsys: pytest.CaptureFixture[str]) -> None:
    """The live view swaps sys.stderr for its own while it draws; a log line written then must go
    through the swapped stream (above the frame), not the one seen at configuration."""
    import io

    from drill.log import configure_logging, get_logger

    configure_logging(fmt="json", level="info")
    swapped = io.StringIO()
    original, sys.stderr = sys.stderr, swapped
    try:
        get_logger("drill.test").warning("while.drawing", n=1)
    finally:
        sys.stderr = original
    assert '"event": "while.drawing"' in swapped.getvalue()
    assert "while.drawing" not in capsys.readouterr().err
