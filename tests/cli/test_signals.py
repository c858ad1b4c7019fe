"""Ctrl-C at every moment of `drill run`: a real subprocess, a real loopback server, real signals.

The first SIGINT (or SIGTERM) ends the scenario, rolls back under the rollback's own deadline and
waits for nobody (README, "Ctrl-C means stop"); the second stops at once with an unsigned report.
Each test measures, around the signal it sends, that the run ended within the product's bound and
that the evidence it left verifies and rebuilds. The drill is another process: the tests poll its
journal (or a file its command step writes) for the moment they need, never sleep to get there,
and kill it in a finally.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from drill.cli import cli
from drill.evidence.journal import read_events, verify_journal
from tests.conftest import SwitchableServer, drill_run_argv
from tests.support.servers import free_port

GRACE_S = 5.0  # the product's bound beyond the rollback steps' own deadlines (runner.ROLLBACK_GRACE_MS)
STOP_NOW_S = 2.0  # a second Ctrl-C: gone within 2 s
ABORTING = (
    "aborting: ending the scenario, rolling back, not waiting for acknowledgements; Ctrl-C again to stop now"
)
# after the scenario ended (rollback, acknowledgements) its verdict stands: the message says so
STOPPING = "stopping: the scenario has ended and its verdict stands"
WAIT_S = 60.0  # how long a test waits for a moment it does not measure (generous: a loaded machine)


# -- the drill as a user runs it ---------------------------------------------------------------
def _playbook(
    url: str,
    scenario: list[dict[str, Any]],
    rollback: list[dict[str, Any]],
    *,
    settings: dict[str, Any] | None = None,
    chain: bool = False,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One asset probed at url/health, the scenario and rollback given (the playbook as YAML data)."""
    probe: dict[str, Any] = {"url": f"{url}/health"}
    if headers:
        probe["headers"] = headers
    asset: dict[str, Any] = {"id": "web", "tier": "tier-0", "probes": [{"name": "health", "http": probe}]}
    doc: dict[str, Any] = {
        "apiVersion": "drill/v1",
        "kind": "Playbook",
        "metadata": {"name": "signal-test", "owner": "tests"},
        "settings": settings or {"interval": "100ms", "timeout": "500ms"},
        "tiers": [{"name": "tier-0", "rto": "5s", "rpo": "0"}],
        "assets": [asset],
        "scenario": scenario,
        "rollback": rollback,
    }
    if chain:  # a page with a 5 min ack window and a 15 min respond_within: nobody will answer
        asset["contact_chain"] = "oncall"
        ana = {"name": "Ana", "via": "webhook", "url": f"{url}/page", "ack_within": "5m"}
        doc["contacts"] = {"chains": {"oncall": {"respond_within": "15m", "contacts": [ana]}}}
    return doc


def _http(name: str, url: str, *, timeout: str, inject: bool = False) -> dict[str, Any]:
    step: dict[str, Any] = {"name": name, "action": {"http": {"url": url}}, "timeout": timeout}
    if inject:
        step["inject"] = True
    return step


def _sleeper(
    name: str, seconds: float, pid_file: Path, *, timeout: str, inject: bool = False
) -> dict[str, Any]:
    """A command step that writes its pid to pid_file (so a test knows it runs), then sleeps."""
    code = (
        f"import os, time; p = {str(pid_file)!r}; open(p + '.tmp', 'w').write(str(os.getpid()));"
        f" os.replace(p + '.tmp', p); time.sleep({seconds})"
    )
    step: dict[str, Any] = {
        "name": name,
        "action": {"command": {"argv": [sys.executable, "-c", code]}},
        "timeout": timeout,
    }
    if inject:
        step["inject"] = True
    return step


def _pause(name: str, duration: str) -> dict[str, Any]:
    return {"name": name, "pause": duration}


@dataclass
class Drill:
    """`drill run` in a subprocess; its stdout and stderr go to files (a full pipe would stall it)."""

    proc: subprocess.Popen[bytes]
    runs: Path
    err: Path

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def assert_running(self) -> None:
        assert self.proc.poll() is None, f"drill exited {self.proc.returncode}:\n{self.stderr()}"

    def journal_with(self, needle: bytes, timeout_s: float = WAIT_S) -> Path:
        """Poll the journal until it holds `needle` (another process: there is no event to await)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for path in self.runs.glob("*/journal.jsonl"):
                if needle in path.read_bytes():
                    return path
            self.assert_running()
            time.sleep(0.01)
        raise AssertionError(f"the journal never showed {needle!r}:\n{self.stderr()}")

    def file_appears(self, path: Path, timeout_s: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not path.exists():
            assert time.monotonic() < deadline, f"{path} never appeared:\n{self.stderr()}"
            self.assert_running()
            time.sleep(0.01)

    def interrupt(self, sig: signal.Signals = signal.SIGINT, timeout_s: float = 120) -> tuple[int, float]:
        """Send `sig`, wait for the exit: the exit code and the seconds from the signal to the exit."""
        sent = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout_s)
        return code, time.monotonic() - sent


@contextmanager
def _drill(tmp_path: Path, playbook: dict[str, Any]) -> Iterator[Drill]:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(playbook, sort_keys=False))
    runs = tmp_path / "runs"
    err = tmp_path / "drill.err"
    with (tmp_path / "drill.out").open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            drill_run_argv(path, runs), stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL
        )
    try:
        yield Drill(proc, runs, err)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        for pid_file in tmp_path.glob("*.pid"):  # a command step drill left behind
            pid = _sleeper_running(pid_file)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)


def _types(journal: Path) -> list[str]:
    return [e.type for e in read_events(journal)]


def _data(journal: Path, type_: str) -> list[dict[str, Any]]:
    lines = journal.read_text().splitlines()
    return [json.loads(line)["data"] for line in lines if f'"type":"{type_}"' in line]


def _step(journal: Path, name: str) -> dict[str, Any]:
    (finished,) = [s for s in _data(journal, "step.finished") if s["step"] == name]
    return finished


def _evidence_verifies(journal: Path) -> dict[str, Any]:
    """The journal's chain verifies, `drill report JOURNAL` exits 0, and the report the run wrote is
    byte for byte the one the journal rebuilds; results.json, as data."""
    verify_journal(journal)  # what `drill journal verify` runs
    written = (journal.parent / "report.json").read_bytes()
    rebuilt = CliRunner().invoke(cli, ["report", str(journal)])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert (journal.parent / "report.json").read_bytes() == written  # complete: all the journal holds
    for view in ("report.html", "report.md", "report.junit.xml"):
        assert (journal.parent / view).is_file(), view
    results: dict[str, Any] = json.loads((journal.parent / "results.json").read_text())
    return results


def _sleeper_running(pid_file: Path) -> int | None:
    """The pid of the _sleeper that wrote pid_file if it still runs (its command line names the
    file: a recycled pid is never taken for it)."""
    try:
        pid = int(pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if str(pid_file).encode() in cmdline else None


# -- one SIGINT at each moment of a drill ------------------------------------------------------
@dataclass(frozen=True)
class Moment:
    """When the signal arrives: the playbook, the moment to wait for, what must hold afterwards."""

    name: str
    playbook: Callable[[str, Path], dict[str, Any]]  # (server url, tmp_path) -> playbook
    needle: bytes  # in the journal when the moment has come
    rollback_deadline_s: float  # the rollback steps' own bounds: the run ends within this + 5 s
    check: Callable[[Path, dict[str, Any], SwitchableServer, Path], None]  # journal, results, server, tmp
    ready: str = ""  # and, for a command step, the pid file that says it is running
    sig: signal.Signals = signal.SIGINT


def _baseline_playbook(url: str, tmp: Path) -> dict[str, Any]:
    """A slow baseline: two probes 1 s apart give the asset its state, so a signal sent after the
    first arrives during the baseline even when the test process is slow to send it."""
    return _playbook(
        url,
        [_http("kill", f"{url}/kill", timeout="2s", inject=True), _pause("hold", "60s")],
        [_http("fail back", f"{url}/failback", timeout="2s")],
        settings={"interval": "1s", "timeout": "500ms", "fall": 2, "rise": 2},
    )


def _baseline_check(journal: Path, results: dict[str, Any], server: SwitchableServer, tmp: Path) -> None:
    types = _types(journal)
    assert types.index("signal.received") < types.index("steady.state")  # it came during the baseline
    assert "failure.injected" not in types
    assert "/kill" not in server.requests  # nothing was injected: no action reached the world


def _injection_playbook(url: str, tmp: Path) -> dict[str, Any]:
    """The injection is a command that takes 30 s; the signal arrives while it runs."""
    return _playbook(
        url,
        [_sleeper("kill", 30, tmp / "kill.pid", timeout="60s", inject=True), _pause("hold", "60s")],
        [_http("fail back", f"{url}/failback", timeout="3s")],
    )


def _injection_check(journal: Path, results: dict[str, Any], server: SwitchableServer, tmp: Path) -> None:
    assert _step(journal, "kill")["status"] == "aborted"
    assert "failure.injected" not in _types(journal)
    assert (tmp / "kill.pid").exists()
    assert _sleeper_running(tmp / "kill.pid") is None  # the interrupted command was killed, not left behind
    assert server.requests.count("/failback") == 1
    assert results["rollback"] == {"ran": True, "status": "ok"}


def _pause_playbook(url: str, tmp: Path) -> dict[str, Any]:
    return _playbook(
        url,
        [_http("kill", f"{url}/kill", timeout="2s", inject=True), _pause("hold", "60s")],
        [_http("fail back", f"{url}/failback", timeout="3s")],
    )


def _pause_check(journal: Path, results: dict[str, Any], server: SwitchableServer, tmp: Path) -> None:
    assert "failure.injected" in _types(journal)
    assert _step(journal, "hold")["status"] == "aborted"
    assert server.requests.count("/kill") == 1 and server.requests.count("/failback") == 1
    assert results["rollback"] == {"ran": True, "status": "ok"}


def _rollback_playbook(url: str, tmp: Path) -> dict[str, Any]:
    """The injection fails at once (nothing listens, no retry): the rollback, 3 s of 10, starts by itself."""
    closed = f"http://127.0.0.1:{free_port()}/kill"
    return _playbook(
        url,
        [_http("kill", closed, timeout="2s", inject=True), _pause("hold", "60s")],
        [_sleeper("fail back", 3, tmp / "failback.pid", timeout="10s")],
    )


def _rollback_check(journal: Path, results: dict[str, Any], server: SwitchableServer, tmp: Path) -> None:
    types = _types(journal)
    assert types.index("rollback.started") < types.index("signal.received") < types.index("rollback.finished")
    assert _step(journal, "fail back")["status"] == "ok"  # the signal did not cut the rollback short
    assert results["rollback"] == {"ran": True, "status": "ok"}


def _acks_playbook(url: str, tmp: Path) -> dict[str, Any]:
    """The scenario passes through at once; then the run waits (15 min) for an acknowledgement."""
    return _playbook(
        url,
        [_http("kill", f"{url}/kill", timeout="2s", inject=True)],
        [_http("fail back", f"{url}/failback", timeout="3s")],
        chain=True,
    )


def _acks_check(journal: Path, results: dict[str, Any], server: SwitchableServer, tmp: Path) -> None:
    assert [p["acked_utc"] for p in results["pages"]] == [None]  # who had not acknowledged is on record
    (wait,) = [w for w in results["waits"] if w["what"] == "acknowledgements"]
    assert (wait["outcome"], wait["detail"]) == ("ended by the operator", "not acknowledged: oncall")
    assert not (journal.parent / "ack.url").exists()


BASELINE = Moment("baseline", _baseline_playbook, b'"type":"probe.observed"', 2, _baseline_check)
INJECTION = Moment("injection", _injection_playbook, b'"step":"kill"', 3, _injection_check, ready="kill.pid")
PAUSE = Moment("pause", _pause_playbook, b'"step":"hold"', 3, _pause_check)
PAUSE_TERM = Moment("pause-SIGTERM", _pause_playbook, b'"step":"hold"', 3, _pause_check, sig=signal.SIGTERM)
ROLLBACK = Moment("rollback", _rollback_playbook, b'"step":"fail back"', 10, _rollback_check, "failback.pid")
ACKS = Moment("acknowledgements", _acks_playbook, b'"type":"wait.started"', 3, _acks_check)
# The baseline waits for the first probe.observed, not run.started: drill installs its signal
# handlers after run.started (see test_sigint_before_the_handlers_are_installed_still_aborts).


def _interrupt_at(tmp_path: Path, server: SwitchableServer, moment: Moment) -> tuple[int, float, Path, str]:
    """Run the moment's drill, signal it at the moment: (exit code, seconds to exit, journal, stderr)."""
    with _drill(tmp_path, moment.playbook(server.url, tmp_path)) as drill:
        journal = drill.journal_with(moment.needle)
        if moment.ready:  # the command runs, not just about to
            drill.file_appears(tmp_path / moment.ready)
        code, took_s = drill.interrupt(moment.sig)
    print(f"{moment.name}: exit {code} {took_s:.2f} s after {moment.sig.name}")
    return code, took_s, journal, drill.stderr()


@pytest.mark.parametrize(
    "moment", [BASELINE, INJECTION, PAUSE, PAUSE_TERM, ROLLBACK, ACKS], ids=lambda m: str(m.name)
)
def test_first_signal_ends_the_drill_within_its_bound(
    tmp_path: Path, http_server: SwitchableServer, moment: Moment
) -> None:
    code, took_s, journal, err = _interrupt_at(tmp_path, http_server, moment)
    bound_s = moment.rollback_deadline_s + GRACE_S
    assert took_s < bound_s, f"took {took_s:.1f} s, bound {bound_s:.0f} s"
    said = STOPPING if moment in (ROLLBACK, ACKS) else ABORTING
    assert said in err and "Traceback" not in err
    results = _evidence_verifies(journal)
    assert f"signal {moment.sig.name}" in [s["condition"] for s in results["stops"]]
    moment.check(journal, results, http_server, tmp_path)
    if moment in (ROLLBACK, ACKS):
        return  # the scenario had ended before the signal: see test_signal_after_the_scenario_still_aborts
    assert code == 3, err
    assert results["status"] == "aborted", results["reason"]
    assert results["reason"] == f"{moment.sig.name} received: the operator interrupted the drill"


def test_a_signal_after_the_scenario_keeps_its_verdict_and_ends_what_is_left(
    tmp_path: Path, http_server: SwitchableServer
) -> None:
    """Decided (README): once the scenario has ended its verdict is decided; a Ctrl-C during the
    rollback or the wait for acknowledgements shortens what is left, it does not abort the drill."""
    code, _took_s, journal, err = _interrupt_at(tmp_path, http_server, ACKS)
    results: dict[str, Any] = json.loads((journal.parent / "results.json").read_text())
    assert results["status"] == "completed", f"{results['reason']}\n{err}"
    assert code == (0 if results["verdict"] == "pass" else 1), err
    assert "the scenario has ended and its verdict stands" in err


# -- the second Ctrl-C -------------------------------------------------------------------------
def test_second_sigint_stops_at_once_with_an_unsigned_complete_report(
    tmp_path: Path, http_server: SwitchableServer
) -> None:
    url = http_server.url
    playbook = _playbook(
        url,
        [_http("kill", f"{url}/kill", timeout="2s", inject=True), _pause("hold", "60s")],
        [_pause("wait back", "60s")],  # a rollback that takes a minute: the operator will not wait
        chain=True,  # ack.url is written while the run serves acknowledgements
    )
    with _drill(tmp_path, playbook) as drill:
        journal = drill.journal_with(b'"step":"hold"')
        ack_url = journal.parent / "ack.url"
        drill.proc.send_signal(signal.SIGINT)
        drill.journal_with(b'"type":"signal.received"')
        drill.journal_with(b'"step":"wait back"')  # the 60 s rollback runs
        assert ack_url.exists()
        code, took_s = drill.interrupt()
    err = drill.stderr()
    print(f"second SIGINT: exit {code} {took_s:.2f} s after it")
    assert took_s < STOP_NOW_S, f"took {took_s:.2f} s"  # the product's bound, no margin
    assert code == 3, err
    assert "report NOT signed" in err and "Traceback" not in err
    run_dir = journal.parent
    assert (run_dir / "report.json").is_file()
    assert not list(run_dir.glob("*.sig"))
    assert not ack_url.exists()  # no stale endpoint for `drill ack`
    finished = _data(journal, "run.finished")
    assert len(finished) == 1 and finished[0]["status"] == "aborted"
    assert finished[0]["reason"].startswith("interrupted twice")
    assert _types(journal)[-1] == "run.finished"
    assert [s["signal"] for s in _data(journal, "signal.received")] == ["SIGINT", "SIGINT"]
    results = _evidence_verifies(journal)  # and the unsigned report is all the journal rebuilds
    assert results["status"] == "aborted" and results["reason"].startswith("interrupted twice")


def test_second_sigint_while_the_evidence_is_written(tmp_path: Path, http_server: SwitchableServer) -> None:
    with _drill(tmp_path, _pause_playbook(http_server.url, tmp_path)) as drill:
        drill.journal_with(b'"step":"hold"')
        drill.proc.send_signal(signal.SIGINT)
        journal = drill.journal_with(b'"type":"run.finished"')  # the first Ctrl-C's run is over
        code, took_s = drill.interrupt()
    print(f"second SIGINT after run.finished: exit {code} {took_s:.2f} s after it")
    assert code == 3, drill.stderr()
    assert (journal.parent / "results.json").is_file() and (journal.parent / "report.json").is_file()
    _evidence_verifies(journal)


# -- moments around the handlers: before the run exists, the baseline, the evidence -----------
def test_sigint_during_a_slow_baseline_ends_it_and_runs_nothing_of_the_scenario(
    tmp_path: Path, http_server: SwitchableServer
) -> None:
    playbook = _playbook(
        http_server.url,
        [{"name": "declare", "mark": "disaster"}, _pause("hold", "60s")],
        [],  # no rollback: the bound is the grace alone
        settings={"interval": "5500ms", "timeout": "500ms", "fall": 2, "rise": 2},
        chain=True,
    )
    with _drill(tmp_path, playbook) as drill:
        journal = drill.journal_with(b'"type":"probe.observed"')  # the first of the two it needs
        code, took_s = drill.interrupt()
    print(f"slow baseline: exit {code} {took_s:.2f} s after SIGINT")
    types = _types(journal)
    assert types.index("signal.received") < types.index("steady.state")  # it came during the baseline
    assert took_s < GRACE_S, f"took {took_s:.1f} s"
    assert "failure.injected" not in types and "/page" not in http_server.requests
    assert code == 3


def test_sigint_as_soon_as_the_run_starts_still_aborts(tmp_path: Path, http_server: SwitchableServer) -> None:
    """A SIGINT the moment run.started is journalled (before the run's handlers existed, this was
    "internal error: the run was cancelled", a rollback against the world, no report, exit 130).
    Now the signal is held from the start of run_drill and replayed once the run exists; the
    deterministic side of that is tests/run/test_signal_router.py."""
    url = http_server.url
    playbook = _playbook(
        url,
        [_http("kill", f"{url}/kill", timeout="2s", inject=True), _pause("hold", "60s")],
        [_http("fail back", f"{url}/failback", timeout="2s")],
    )
    with _drill(tmp_path, playbook) as drill:
        journal = drill.journal_with(b'"type":"run.started"')
        code, _took_s = drill.interrupt()
    err = drill.stderr()
    assert code == 3, err
    assert "signal.received" in _types(journal)
    results = _evidence_verifies(journal)
    assert results["status"] == "aborted" and "internal error" not in results["reason"]
