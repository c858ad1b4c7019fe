"""`drill keygen`, and the passphrase handling every signing command shares."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

import click

from drill.errors import UsageError
from drill.report.sign import (
    NAMESPACE,
    SignerAdded,
    add_allowed_signer,
    allowed_signers_line,
    check_new_key,
    check_principal,
    fingerprint,
    generate_keypair,
    key_is_encrypted,
    make_private_folder,
    public_key_line,
    read_allowed_signers_file,
)

passphrase_option = click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the key's passphrase (first line). Prompted for on a terminal when needed.",
)

# ssh-keygen's own prompts, so that making a key reads the same with either tool.
PROMPT_NEW = "Enter passphrase (empty for no passphrase): "
PROMPT_AGAIN = "Enter same passphrase again: "
_ATTEMPTS = 3  # then give up, as a mistyped passphrase three times running is not a typo


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
    if key_is_encrypted(key) and on_terminal():
        answer: str = click.prompt(f"Passphrase for {key}", hide_input=True, type=str, err=True)
        return answer
    return None  # load_private_key explains that a passphrase is needed


def on_terminal() -> bool:
    """Whether a person can be asked: stdin and stderr are both terminals (as ssh-keygen needs)."""
    return sys.stdin.isatty() and sys.stderr.isatty()


def prompt_new_passphrase() -> str:
    """Ask twice, as ssh-keygen does; "" (just Enter) means no passphrase. Asks again on a
    mismatch, and gives up with a UsageError after three mismatches."""
    for _ in range(_ATTEMPTS):
        try:
            first = getpass.getpass(PROMPT_NEW)
            second = getpass.getpass(PROMPT_AGAIN)
        except EOFError:
            raise UsageError("no passphrase entered (end of input); no key written") from None
        if first == second:
            return first
        click.echo("Passphrases do not match.  Try again.", err=True)
    raise UsageError(f"passphrases did not match {_ATTEMPTS} times; no key written")


def _new_key_passphrase(passphrase_file: Path | None, no_passphrase: bool) -> str | None:
    if no_passphrase:
        return None
    if passphrase_file is not None:
        return read_passphrase_file(passphrase_file)
    if on_terminal():
        return prompt_new_passphrase() or None
    raise UsageError(
        "no terminal to ask for a passphrase: pass --passphrase-file FILE (an encrypted key) "
        "or --no-passphrase (an unencrypted key)"
    )


@click.command("keygen")
@click.argument("path", type=click.Path(path_type=Path))
@passphrase_option
@click.option(
    "--no-passphrase",
    is_flag=True,
    help="Write the private key unencrypted (without a terminal, this or --passphrase-file is needed).",
)
@click.option("--comment", default="", help="Comment for the public key line (e.g. ana@example.com).")
@click.option(
    "--allowed-signers",
    "allowed_signers",
    metavar="FILE",
    type=click.Path(path_type=Path),
    help="Append the new key's line to this allowed_signers file (created, mode 0644). Needs --principal.",
)
@click.option(
    "--principal", metavar="NAME", help="Who signs with this key (e.g. lead), for --allowed-signers."
)
def keygen(
    path: Path,
    passphrase_file: Path | None,
    no_passphrase: bool,
    comment: str,
    allowed_signers: Path | None,
    principal: str | None,
) -> None:
    """Write an OpenSSH Ed25519 key pair: PATH (mode 0600) and PATH.pub. Never overwrites.

    Missing folders above PATH are created with mode 0700 (like ~/.ssh). On a terminal it asks
    for a passphrase twice (just Enter: no passphrase); otherwise pass --passphrase-file FILE
    or --no-passphrase. With --allowed-signers FILE --principal NAME the key's line is added
    to FILE, ready for `drill verify` and `ssh-keygen -Y verify`.
    """
    if passphrase_file is not None and no_passphrase:
        raise UsageError("--passphrase-file and --no-passphrase exclude each other; pass one of them")
    if (allowed_signers is None) != (principal is None):
        raise UsageError("--allowed-signers FILE and --principal NAME go together; pass both or neither")
    if principal is not None:
        check_principal(principal)
    check_new_key(path, comment)
    if allowed_signers is not None:
        read_allowed_signers_file(allowed_signers)  # a bad FILE is found before a key is made
    passphrase = _new_key_passphrase(passphrase_file, no_passphrase)
    folders = [path.parent] if allowed_signers is None else [path.parent, allowed_signers.parent]
    for folder in folders:
        for made in make_private_folder(folder):
            click.echo(f"created folder {made} (mode 0700)")
    public = generate_keypair(path, passphrase=passphrase, comment=comment)
    protection = "passphrase-protected" if passphrase else "no passphrase"
    click.echo(f"wrote {path} (private key, mode 0600, {protection}) and {path}.pub")
    click.echo(f"fingerprint: {fingerprint(public)}")
    if allowed_signers is None or principal is None:
        click.echo("allowed_signers line (replace PRINCIPAL with the signer's name):")
        click.echo(f'PRINCIPAL namespaces="{NAMESPACE}" {public_key_line(public, comment)}')
        return
    line = allowed_signers_line(principal, public, comment)
    _show_added(add_allowed_signer(allowed_signers, line))
    click.echo(line)


def _show_added(added: SignerAdded) -> None:
    if not added.added:
        click.echo(f"allowed_signers line already in {added.file} (line {added.line_number}); not added:")
        return
    made = ", created with mode 0644" if added.created else ""
    click.echo(f"allowed_signers line added to {added.file} (line {added.line_number}{made}):")
