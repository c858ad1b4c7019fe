"""`drill keygen`, and the passphrase handling every signing command shares."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from drill.errors import UsageError
from drill.report.sign import NAMESPACE, fingerprint, generate_keypair, key_is_encrypted, public_key_line

passphrase_option = click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the key's passphrase (first line). Prompted for on a terminal when needed.",
)


def read_passphrase_file(path: Path | None) -> str | None:
    """The passphrase in a file: its first line exactly (no stripping beyond the line end)."""
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read passphrase file {path}: {exc.strerror}") from None
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise UsageError(f"passphrase file {path} is empty")
    return lines[0]


def passphrase_for(key: Path, passphrase_file: Path | None) -> str | None:
    """The passphrase from a file, else a prompt when the key is encrypted and we are on a terminal."""
    given = read_passphrase_file(passphrase_file)
    if given is not None:
        return given
    if key_is_encrypted(key) and sys.stdin.isatty():
        answer: str = click.prompt(f"Passphrase for {key}", hide_input=True, type=str)
        return answer
    return None  # load_private_key explains that a passphrase is needed


@click.command("keygen")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@passphrase_option
@click.option("--comment", default="", help="Comment for the public key line (e.g. ana@example.com).")
def keygen(path: Path, passphrase_file: Path | None, comment: str) -> None:
    """Write an OpenSSH Ed25519 key pair: PATH (mode 0600) and PATH.pub. Never overwrites."""
    public = generate_keypair(path, passphrase=read_passphrase_file(passphrase_file), comment=comment)
    click.echo(f"wrote {path} and {path}.pub")
    click.echo(f"fingerprint: {fingerprint(public)}")
    line = public_key_line(public, comment)
    click.echo(f'allowed_signers line: PRINCIPAL namespaces="{NAMESPACE}" {line}')
