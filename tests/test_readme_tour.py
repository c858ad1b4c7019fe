"""README.md's "A five-minute tour" runs verbatim: every line, in order, with the exit status it states.

The commands are read from the README itself (the fenced block under "## A five-minute tour"),
so the tour cannot drift from what drill does. They run in one bash, as a person pastes them,
started in the checkout (the first line activates its .venv) with an empty temporary HOME; the
tour moves to an empty folder under it. Whatever happens, the lab is stopped at the end (`drill
lab down`, then SIGKILL by the PID in its state file) and no process of the tour is left.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from drill.lab.daemon import STATE_FILE, check_ports_free, is_lab_process, process_alive, read_state
from drill.lab.lab import DEFAULT_PORT_BASE

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
VENV_BIN = ROOT / ".venv" / "bin"
EXIT = re.compile(r"\(exit (\d+)\)\s*$")
BUDGET_S = 60.0  # the whole tour; it takes about 10 s here
TOUR_DIR = "drill-tour"  # where the tour's second line moves to, under HOME
MARK = "::tour-step"


@dataclass(frozen=True, slots=True)
class Step:
    number: int  # 1-based, counting command lines only
    line: str  # exactly as in the README
    expected: int


def tour_steps(readme: str) -> list[Step]:
    """The command lines of the tour block, each with the exit status its comment states."""
    section = readme.split("\n## A five-minute tour\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"^```sh\n(.*?)^```", section, re.S | re.M)
    assert found, "no ```sh block under '## A five-minute tour'"
    steps: list[Step] = []
    for line in found.group(1).splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        stated = EXIT.search(line)
        assert stated, f"a tour line states no exit status (end its comment with '(exit N)'): {line}"
        steps.append(Step(len(steps) + 1, line, int(stated.group(1))))
    return steps


def test_every_tour_line_states_its_exit_status_and_the_lab_is_stopped_last() -> None:
    steps = tour_steps(README.read_text(encoding="utf-8"))
    assert len(steps) >= 10
    assert steps[0].line.startswith(". .venv/bin/activate")
    assert [s.line.split("#")[0].split() for s in steps if "drill lab" in s.line] == [
        ["drill", "lab", "up"],
        ["drill", "lab", "down"],
    ]
    assert steps[-1].line.startswith("drill lab down")


def _script(steps: list[Step], status_file: Path) -> str:
    """One bash session running each line verbatim, writing "NUMBER STATUS" after each."""
    out = ["set +e", f"exec 3>>{shlex.quote(str(status_file))}"]
    for step in steps:
        out.append(f"printf '\\n{MARK} {step.number}\\n'; printf '\\n{MARK} {step.number}\\n' >&2")
        out.append(step.line)
        out.append(f'echo "{step.number} $?" >&3')
    return "\n".join(out) + "\n"


def _sections(text: str) -> dict[int, str]:
    """The output of each step, split at the markers the script prints."""
    parts: dict[int, str] = {}
    current = 0
    for line in text.splitlines():
        if line.startswith(MARK + " "):
            current = int(line.split()[1])
            parts[current] = ""
        elif current:
            parts[current] += line + "\n"
    return parts


def _processes_under(folder: Path) -> list[int]:
    """PIDs whose working folder or command line is inside `folder` (the tour's leftovers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if (cwd.startswith(str(folder)) or str(folder) in cmdline) and process_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _stop_lab(env: dict[str, str], tour: Path) -> None:
    """`drill lab down` in the tour's folder, then SIGKILL by the state file's PID if still there."""
    if tour.is_dir():
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                [str(VENV_BIN / "drill"), "lab", "down"], cwd=tour, env=env, capture_output=True, timeout=30
            )
    state_dir = tour / ".drill-lab"
    if (state_dir / STATE_FILE).exists():
        with contextlib.suppress(Exception):
            state = read_state(state_dir)
            if state is not None and is_lab_process(state.pid):
                os.kill(state.pid, signal.SIGKILL)


@pytest.fixture
def tour_env(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRILL_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(HOME=str(home), PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}")
    tour = home / TOUR_DIR
    try:
        yield env, tour
    finally:
        _stop_lab(env, tour)
        for pid in _left_after(tmp_path, 5.0):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _left_after(folder: Path, timeout_s: float) -> list[int]:
    """The processes still under `folder` once `timeout_s` passed (or none are left). They are
    not our children, so there is no exit to await: poll /proc, bounded."""
    deadline = time.monotonic() + timeout_s
    while (left := _processes_under(folder)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.mark.timeout(150)
def test_the_readme_tour_runs_verbatim(tour_env: tuple[dict[str, str], Path], tmp_path: Path) -> None:
    if not (VENV_BIN / "drill").exists():
        pytest.fail(f"{VENV_BIN / 'drill'} is missing: run `make install` first")
    check_ports_free(DEFAULT_PORT_BASE)  # the tour's lab uses the documented default ports
    env, tour = tour_env
    steps = tour_steps(README.read_text(encoding="utf-8"))
    status_file = tmp_path / "status"
    started = time.monotonic()
    proc = subprocess.Popen(
        ["bash", "--noprofile", "--norc", "-c", _script(steps, status_file)],
        cwd=ROOT,  # the first line activates the checkout's .venv; the second moves to an empty folder
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=BUDGET_S * 2)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    elapsed = time.monotonic() - started
    _stop_lab(env, tour)  # the fixture does it too; here, so that the leftover check below means something

    statuses = dict(
        (int(n), int(code)) for n, code in (line.split() for line in status_file.read_text().splitlines())
    )
    outs, errs = _sections(out), _sections(err)
    wrong = []
    for step in steps:
        got = statuses.get(step.number)
        if got != step.expected:
            detail = (errs.get(step.number, "") + outs.get(step.number, "")).strip().splitlines()[-4:]
            shown = "never ran" if got is None else f"exit {got}"
            wrong.append(
                f"step {step.number}: {step.line.split('#')[0].strip()}\n"
                f"    expected exit {step.expected}, {shown}\n" + "".join(f"    | {d}\n" for d in detail)
            )
    assert not wrong, f"{len(wrong)} of {len(steps)} tour steps failed:\n" + "".join(wrong)
    assert elapsed < BUDGET_S, f"the tour took {elapsed:.1f} s (budget {BUDGET_S:g} s)"
    assert tour.is_dir() and (tour / "my-drill.yaml").is_file() and (tour / "drill.schema.json").is_file()
    assert not (tour / ".drill-lab" / STATE_FILE).exists()  # `drill lab down` removed it
    assert (tour / ".drill-lab" / "lab.log").is_file()
    assert _left_after(tmp_path, 5.0) == [], "the tour left processes behind"
