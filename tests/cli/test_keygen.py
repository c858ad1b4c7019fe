"""`drill keygen` the OpenSSH way (issue 13, bullet 2): folders made 0700, a passphrase or an
explicit --no-passphrase, the allowed_signers line written for the auditor, and a key that real
`ssh-keygen -Y verify` accepts. The terminal prompts are in test_keygen_terminal.py."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from drill.cli import cli
from drill.report.sign import (
    add_allowed_signer,
    allowed_signers_line,
    fingerprint,
    key_is_encrypted,
    load_private_key,
)
from tests.report.signing_helpers import make_key, make_report_dir, ssh_keygen, ssh_verify


def keygen(*args: str | Path) -> Result:
    """`drill keygen ARGS` in process: stdin is not a terminal there."""
    return CliRunner().invoke(cli, ["keygen", *(str(a) for a in args)])


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def one_error_line(result: Result, *needles: str) -> None:
    """Exit 2, no traceback, one `drill: ...` line (plus at most a hint) holding every needle."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines and lines[0].startswith("drill: ") and "Traceback" not in result.output, result.output
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("  hint: ")), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_missing_folders_are_made_0700_like_a_fresh_ssh_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"  # a fresh machine: no ~/.ssh, not even HOME
    key = home / ".ssh" / "drill" / "lead_ed25519"
    result = keygen(key, "--no-passphrase")
    assert result.exit_code == 0, result.output
    assert [mode(p) for p in (home, home / ".ssh", home / ".ssh" / "drill")] == [0o700] * 3
    assert (mode(key), mode(Path(f"{key}.pub"))) == (0o600, 0o644)
    assert result.stdout.splitlines()[:3] == [
        f"created folder {home} (mode 0700)",
        f"created folder {home / '.ssh'} (mode 0700)",
        f"created folder {home / '.ssh' / 'drill'} (mode 0700)",
    ]
    assert not key_is_encrypted(key)


@pytest.mark.parametrize("existing_mode", [0o755, 0o711, 0o777])
def test_an_existing_folders_mode_is_left_alone(tmp_path: Path, existing_mode: int) -> None:
    folder = tmp_path / "keys"
    folder.mkdir()
    os.chmod(folder, existing_mode)
    result = keygen(folder / "new" / "k", "--no-passphrase")
    assert result.exit_code == 0, result.output
    assert (mode(folder), mode(folder / "new")) == (existing_mode, 0o700)
    created = [line for line in result.stdout.splitlines() if line.startswith("created folder")]
    assert created == [f"created folder {folder / 'new'} (mode 0700)"]


def test_without_a_terminal_it_refuses_and_names_both_options(tmp_path: Path) -> None:
    result = keygen(tmp_path / "k")
    one_error_line(result, "no terminal", "--passphrase-file", "--no-passphrase")
    assert list(tmp_path.iterdir()) == []


def test_no_passphrase_writes_an_unencrypted_key_and_says_so(tmp_path: Path) -> None:
    result = keygen(tmp_path / "k", "--no-passphrase", "--comment", "ana@example.com")
    assert result.exit_code == 0, result.output
    public = load_private_key(tmp_path / "k").public_key()
    pub_line = (tmp_path / "k.pub").read_text().strip()
    assert result.stdout.splitlines() == [
        f"wrote {tmp_path / 'k'} (private key, mode 0600, no passphrase) and {tmp_path / 'k'}.pub",
        f"fingerprint: {fingerprint(public)}",
        "allowed_signers line (replace PRINCIPAL with the signer's name):",
        f'PRINCIPAL namespaces="drill-report-v1" {pub_line}',
    ]


def test_a_passphrase_file_encrypts_the_key(tmp_path: Path) -> None:
    (tmp_path / "pass").write_text("correct horse\n")
    result = keygen(tmp_path / "k", "--passphrase-file", tmp_path / "pass")
    assert result.exit_code == 0, result.output
    assert "passphrase-protected" in result.stdout.splitlines()[0]
    assert key_is_encrypted(tmp_path / "k")
    assert load_private_key(tmp_path / "k", "correct horse") is not None


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--no-passphrase", "--passphrase-file", "pass"], ("--passphrase-file", "--no-passphrase")),
        (["--no-passphrase", "--principal", "lead"], ("--allowed-signers", "--principal")),
        (["--no-passphrase", "--allowed-signers", "allowed"], ("--allowed-signers", "--principal")),
        (["--no-passphrase", "--allowed-signers", "allowed", "--principal", "ana smith"], ("'ana smith'",)),
        (["--no-passphrase", "--allowed-signers", "allowed", "--principal", "*"], ("'*'",)),
        (["--no-passphrase", "--allowed-signers", "allowed", "--principal", "lead,op"], ("'lead,op'",)),
        (["--no-passphrase", "--comment", "two\nlines"], ("single line",)),
    ],
)
def test_option_mistakes_exit_2_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], needles: tuple[str, ...]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pass").write_text("correct horse\n")
    one_error_line(keygen("k", *args), *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pass"]


def test_it_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "k.pub").write_text("precious\n")
    one_error_line(keygen(tmp_path / "k", "--no-passphrase"), "already exists", "refusing to overwrite")
    assert (tmp_path / "k.pub").read_text() == "precious\n" and not (tmp_path / "k").exists()


def test_the_allowed_signers_line_is_appended_and_printed(tmp_path: Path) -> None:
    allowed = tmp_path / "trust" / "allowed_signers"
    first = keygen(
        tmp_path / "lead",
        "--no-passphrase",
        "--comment",
        "ana@example.com",
        "--allowed-signers",
        allowed,
        "--principal",
        "lead",
    )
    assert first.exit_code == 0, first.output
    public = load_private_key(tmp_path / "lead").public_key()
    line = allowed_signers_line("lead", public, "ana@example.com")
    assert line.startswith('lead namespaces="drill-report-v1" ssh-ed25519 AAAA') and line.endswith(
        " ana@example.com"
    )
    assert allowed.read_text() == line + "\n"
    assert (mode(allowed), mode(allowed.parent)) == (0o644, 0o700)
    assert first.stdout.splitlines()[-3:] == [
        f"fingerprint: {fingerprint(public)}",
        f"allowed_signers line added to {allowed} (line 1, created with mode 0644):",
        line,
    ]
    # A second signer's key goes below it; the file keeps the mode its owner gave it.
    os.chmod(allowed, 0o600)
    with allowed.open("a") as out:
        out.write("# observers below")  # no newline at the end: the new line must not join it
    second = keygen(
        tmp_path / "obs", "--no-passphrase", "--allowed-signers", allowed, "--principal", "observer"
    )
    assert second.exit_code == 0, second.output
    lines = allowed.read_text().splitlines()
    assert lines[:2] == [line, "# observers below"] and lines[2].startswith('observer namespaces="drill-')
    assert mode(allowed) == 0o600
    assert f"allowed_signers line added to {allowed} (line 3):" in second.stdout


def test_a_line_already_present_is_not_added_again(tmp_path: Path) -> None:
    key = make_key(tmp_path, "k")
    line = allowed_signers_line("lead", load_private_key(key).public_key(), "k@test")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"# trust\n{line}\n")
    again = add_allowed_signer(allowed, line)
    assert (again.added, again.line_number, again.created) == (False, 2, False)
    assert allowed.read_text() == f"# trust\n{line}\n"


def test_an_allowed_signers_path_that_is_not_a_file_is_refused_before_a_key_is_made(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # a read of it would block: it must be refused, not opened for reading
    for target, what in ((fifo, "is a FIFO"), (tmp_path, "is a directory")):
        result = keygen(tmp_path / "k", "--no-passphrase", "--allowed-signers", target, "--principal", "lead")
        one_error_line(result, "allowed signers file", what)
        assert not (tmp_path / "k").exists()


def test_a_key_made_this_way_verifies_with_ssh_keygen_and_drill(tmp_path: Path) -> None:
    ssh_keygen()
    allowed = tmp_path / "auditor" / "allowed_signers"
    key = tmp_path / "keys" / "operator_ed25519"
    made = keygen(key, "--no-passphrase", "--allowed-signers", allowed, "--principal", "operator")
    assert made.exit_code == 0, made.output
    run = make_report_dir(tmp_path, signer=("operator", key))
    done = ssh_verify(run, allowed, "operator")
    assert done.returncode == 0, done.stderr
    expected = f'Good "drill-report-v1" signature for operator with ED25519 key {fingerprint(load_private_key(key).public_key())}'
    assert done.stdout.decode().strip() == expected
    verified = CliRunner().invoke(
        cli, ["verify", str(run), "--allowed-signers", str(allowed), "--require", "operator"]
    )
    assert verified.exit_code == 0, verified.output
    assert f"    trusted by:   {allowed}:1\n" in verified.stdout
