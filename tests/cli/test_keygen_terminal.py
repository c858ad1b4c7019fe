"""`drill keygen` on a real terminal: a pseudo-terminal (os.openpty) as stdin and stderr of a
real `python -m drill keygen` process, answered only after each prompt has appeared (no sleeps).

The process starts in a new session, so it has no controlling terminal and /dev/tty cannot
be opened: getpass then reads stdin and prompts on stderr, exactly the pty under test.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import pytest

from drill.errors import KeyProblem
from drill.report.sign import countersign_report, fingerprint, key_is_encrypted, load_private_key
from tests.report.signing_helpers import make_key, make_report_dir, ssh_keygen, ssh_verify

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs POSIX pseudo-terminals")

FIRST = "Enter passphrase (empty for no passphrase): "
AGAIN = "Enter same passphrase again: "
MISMATCH = "Passphrases do not match.  Try again."
WAIT_S = 30  # for a slow CI machine; each exchange takes milliseconds


class Terminal:
    """A process whose stdin and stderr are a pty we type into; stdout is a pipe."""

    def __init__(self, *args: str | Path, cwd: Path) -> None:
        self.master, slave = os.openpty()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "drill", *(str(a) for a in args)],
                stdin=slave,
                stdout=subprocess.PIPE,
                stderr=slave,
                cwd=cwd,
                start_new_session=True,  # no controlling terminal: getpass uses stdin/stderr
            )
        finally:
            os.close(slave)
        self.seen = b""
        self._pos = 0

    def __enter__(self) -> Terminal:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=WAIT_S)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        os.close(self.master)

    def expect(self, text: str) -> None:
        """Read the terminal until text appears after what earlier calls consumed."""
        wanted = text.encode()
        deadline = time.monotonic() + WAIT_S
        while (found := self.seen.find(wanted, self._pos)) < 0:
            left = deadline - time.monotonic()
            assert left > 0, f"no {text!r} on the terminal; it showed {self.seen!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready and not self._read():
                raise AssertionError(f"terminal closed before {text!r}; it showed {self.seen!r}")
        self._pos = found + len(wanted)

    def answer(self, line: str) -> None:
        os.write(self.master, f"{line}\n".encode())

    def finish(self) -> tuple[int, str, str]:
        """(exit code, stdout, the rest of the terminal's output) once the process has ended."""
        out, _ = self.proc.communicate(timeout=WAIT_S)
        while select.select([self.master], [], [], 0)[0] and self._read():
            pass
        rest = self.seen[self._pos :].decode(errors="replace").replace("\r\n", "\n")
        return self.proc.returncode, out.decode(), rest

    def _read(self) -> bool:
        try:
            chunk = os.read(self.master, 4096)
        except OSError:  # EIO: every slave end is closed (the process ended)
            return False
        self.seen += chunk
        return bool(chunk)


def test_the_passphrase_is_asked_twice_and_encrypts_the_key(tmp_path: Path) -> None:
    keygen = ssh_keygen()
    key = tmp_path / "keys" / "lead_ed25519"
    allowed = tmp_path / "allowed_signers"
    with Terminal("keygen", key, "--allowed-signers", allowed, "--principal", "lead", cwd=tmp_path) as tty:
        tty.expect(FIRST)
        tty.answer("open sesame")
        tty.expect(AGAIN)
        tty.answer("open sesame")
        code, out, rest = tty.finish()
    assert code == 0, (out, rest)
    assert f"wrote {key} (private key, mode 0600, passphrase-protected)" in out
    assert key_is_encrypted(key)
    with pytest.raises(KeyProblem, match="protected by a passphrase"):
        load_private_key(key)
    public = load_private_key(key, "open sesame").public_key()
    derived = subprocess.run(
        [keygen, "-y", "-P", "open sesame", "-f", str(key)],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        check=False,
    )
    assert derived.returncode == 0, derived.stderr
    assert derived.stdout.split()[:2] == Path(f"{key}.pub").read_text().split()[:2]
    # The encrypted key signs a report (with its passphrase) that ssh-keygen verifies with the
    # allowed_signers line keygen wrote.
    run = make_report_dir(tmp_path, signer=("operator", make_key(tmp_path, "op")))
    countersign_report(run, key, "lead", "open sesame")
    done = ssh_verify(run, allowed, "lead")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() == (
        f'Good "drill-report-v1" signature for lead with ED25519 key {fingerprint(public)}'
    )


def test_a_mismatch_asks_again(tmp_path: Path) -> None:
    key = tmp_path / "k"
    with Terminal("keygen", key, cwd=tmp_path) as tty:
        tty.expect(FIRST)
        tty.answer("correct horse")
        tty.expect(AGAIN)
        tty.answer("correct hose")
        tty.expect(MISMATCH)
        tty.expect(FIRST)
        tty.answer("battery staple")
        tty.expect(AGAIN)
        tty.answer("battery staple")
        code, out, rest = tty.finish()
    assert code == 0, (out, rest)
    assert load_private_key(key, "battery staple") is not None
    with pytest.raises(KeyProblem, match="wrong passphrase"):
        load_private_key(key, "correct horse")


def test_three_mismatches_give_up_without_writing_a_key(tmp_path: Path) -> None:
    key = tmp_path / "k"
    with Terminal("keygen", key, cwd=tmp_path) as tty:
        for attempt in range(3):
            tty.expect(FIRST)
            tty.answer(f"one {attempt}")
            tty.expect(AGAIN)
            tty.answer(f"two {attempt}")
            tty.expect(MISMATCH)
        code, out, rest = tty.finish()
    assert code == 2, (out, rest)
    assert rest.strip() == "drill: passphrases did not match 3 times; no key written"
    assert not key.exists() and not Path(f"{key}.pub").exists()


def test_an_empty_answer_on_a_terminal_means_no_passphrase(tmp_path: Path) -> None:
    key = tmp_path / "k"
    with Terminal("keygen", key, cwd=tmp_path) as tty:
        tty.expect(FIRST)
        tty.answer("")
        tty.expect(AGAIN)
        tty.answer("")
        code, out, rest = tty.finish()
    assert code == 0, (out, rest)
    assert "(private key, mode 0600, no passphrase)" in out
    assert not key_is_encrypted(key)


def test_no_passphrase_on_a_terminal_asks_nothing(tmp_path: Path) -> None:
    key = tmp_path / "k"
    with Terminal("keygen", key, "--no-passphrase", cwd=tmp_path) as tty:
        code, out, rest = tty.finish()
    assert code == 0, (out, rest)
    assert FIRST not in tty.seen.decode() and not key_is_encrypted(key)
