"""OpenSSH Ed25519 keys and detached SSHSIG signatures, in Python (no ssh-keygen subprocess).

The signature format is OpenSSH's PROTOCOL.sshsig, exactly what `ssh-keygen -Y sign` writes
(hash sha512, Ed25519 signatures are deterministic), so an auditor checks our signatures with
`ssh-keygen -Y verify` and needs nothing of ours. One signature file per signer:
`report.json.<principal>.sig`, over the exact stored bytes of report.json.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from drill.errors import KeyProblem, UsageError
from drill.evidence.canonical import is_canonical
from drill.evidence.inputs import ALLOWED_SIGNERS_LIMIT, read_bounded

NAMESPACE = "drill-report-v1"
REPORT_FILE = "report.json"
SIG_SUFFIX = ".sig"
KEY_TYPE = "ssh-ed25519"
MAGIC = b"SSHSIG"
SIG_VERSION = 1
HASH_ALG = "sha512"
ARMOR_BEGIN = "-----BEGIN SSH SIGNATURE-----"
ARMOR_END = "-----END SSH SIGNATURE-----"
_ARMOR_WIDTH = 70  # ssh-keygen wraps the base64 body at 70 columns

# A principal becomes part of a file name and is matched against allowed_signers patterns,
# so it must not hold path separators, spaces, commas or the pattern characters * ? !.
_PRINCIPAL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,127}")

Passphrase = str | bytes | None


# ---------------------------------------------------------------- wire format


def ssh_string(value: bytes | str) -> bytes:
    """An SSH wire-format string: uint32 length, then the bytes."""
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack(">I", len(raw)) + raw


def public_key_blob(public_key: Ed25519PublicKey) -> bytes:
    """The SSH wire encoding of an Ed25519 public key (what .pub files hold in base64)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return ssh_string(KEY_TYPE) + ssh_string(raw)


def fingerprint(public_key: Ed25519PublicKey | bytes) -> str:
    """The key's fingerprint exactly as `ssh-keygen -l` prints it: SHA256:<unpadded base64>.

    Accepts a public key or its SSH wire-format blob (any key type).
    """
    blob = public_key if isinstance(public_key, bytes) else public_key_blob(public_key)
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def public_key_line(public_key: Ed25519PublicKey, comment: str = "") -> str:
    """One OpenSSH public key line: 'ssh-ed25519 AAAA... comment' (no newline)."""
    body = base64.b64encode(public_key_blob(public_key)).decode()
    return f"{KEY_TYPE} {body} {comment}".rstrip()


# ---------------------------------------------------------------- keys


def generate_keypair(
    private_path: Path | str, *, passphrase: Passphrase = None, comment: str = ""
) -> Ed25519PublicKey:
    """Write a new OpenSSH Ed25519 key pair: PATH (mode 0600) and PATH.pub; never overwrites.

    With a passphrase the private key is encrypted as ssh-keygen does (aes256-ctr, bcrypt KDF).
    """
    path = Path(private_path)
    pub_path = path.with_name(path.name + ".pub")
    for target in (path, pub_path):
        if target.exists() or target.is_symlink():
            raise KeyProblem(
                f"{target} already exists; refusing to overwrite a key", hint="choose a new path"
            )
    if "\n" in comment or "\r" in comment:
        raise UsageError("a key comment must be a single line")
    key = Ed25519PrivateKey.generate()
    secret = _passphrase_bytes(passphrase)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(secret) if secret else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption)
    try:
        # O_EXCL: a file that appeared since the check above is not clobbered either.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        os.chmod(path, 0o600)  # the umask cannot widen it, but be explicit
        fd = os.open(pub_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(public_key_line(key.public_key(), comment) + "\n")
    except FileExistsError as exc:
        raise KeyProblem(f"{exc.filename} already exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise KeyProblem(f"cannot write key {exc.filename or path}: {exc.strerror}") from None
    return key.public_key()


def check_new_key(private_path: Path | str, comment: str = "") -> None:
    """What generate_keypair would refuse, checked before anything is asked or written.

    KeyProblem when PATH or PATH.pub exists (or is a dangling symlink), UsageError for a
    comment of more than one line. generate_keypair checks again (with O_EXCL) when writing.
    """
    path = Path(private_path)
    for target in (path, path.with_name(path.name + ".pub")):
        if target.exists() or target.is_symlink():
            raise KeyProblem(
                f"{target} already exists; refusing to overwrite a key", hint="choose a new path"
            )
    if "\n" in comment or "\r" in comment:
        raise UsageError("a key comment must be a single line")


def make_private_folder(folder: Path | str) -> tuple[Path, ...]:
    """Create folder and its missing parents with mode 0700, as ssh-keygen makes ~/.ssh.

    Folders that exist are left exactly as they are (their mode is never loosened or changed).
    Returns the folders created, outermost first; KeyProblem when one cannot be made.
    """
    target = Path(folder)
    missing: list[Path] = []
    for candidate in (target, *target.parents):
        if candidate.is_dir():
            break
        missing.append(candidate)
    created: list[Path] = []
    for candidate in reversed(missing):
        try:
            candidate.mkdir(mode=0o700)
        except FileExistsError:
            if candidate.is_dir():
                continue  # made by someone else meanwhile: theirs, so not ours to chmod
            raise KeyProblem(f"cannot create folder {candidate}: a file of that name exists") from None
        except OSError as exc:
            raise KeyProblem(f"cannot create folder {candidate}: {exc.strerror}") from None
        os.chmod(candidate, 0o700)  # the umask can only narrow 0700, but say it exactly
        created.append(candidate)
    return tuple(created)


def allowed_signers_line(principal: str, public_key: Ed25519PublicKey, comment: str = "") -> str:
    """The allowed_signers line trusting public_key for principal on drill reports (no newline):
    `PRINCIPAL namespaces="drill-report-v1" ssh-ed25519 AAAA... comment`."""
    return f'{check_principal(principal)} namespaces="{NAMESPACE}" {public_key_line(public_key, comment)}'


@dataclass(frozen=True, slots=True)
class SignerAdded:
    """What add_allowed_signer did: the file, the line's number in it, and whether it was new."""

    file: Path
    line_number: int
    added: bool  # False: the exact line was already there, nothing was written
    created: bool  # the file did not exist before


def read_allowed_signers_file(path: Path | str) -> bytes | None:
    """The bytes of an allowed_signers file to be added to, None when it does not exist yet.

    InputRejected for anything but a regular file (a FIFO, a folder), KeyProblem when unreadable:
    call it before making a key, so that a bad FILE is found before anything is written.
    """
    target = Path(path)
    try:
        return read_bounded(target, ALLOWED_SIGNERS_LIMIT, "allowed signers file")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KeyProblem(f"cannot read allowed signers file {target}: {exc.strerror}") from None


def add_allowed_signer(path: Path | str, line: str) -> SignerAdded:
    """Append line to an allowed_signers file unless the same line is already in it.

    A new file is created with mode 0644 (its folder must exist); an existing one keeps its
    mode. Anything but a regular file is refused (InputRejected), as drill verify would.
    """
    target = Path(path)
    if "\n" in line or "\r" in line:
        raise UsageError("an allowed_signers entry must be a single line")
    existing = read_allowed_signers_file(target)
    if existing is not None:
        lines = existing.decode("utf-8", errors="replace").splitlines()
        for number, present in enumerate(lines, start=1):
            if present.strip() == line:
                return SignerAdded(target, number, added=False, created=False)
        prefix = "\n" if existing and not existing.endswith(b"\n") else ""
        flags = os.O_WRONLY | os.O_APPEND
        number = len(lines) + 1
    else:
        prefix, flags, number = "", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 1
    try:
        fd = os.open(target, flags, 0o644)
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            if existing is None:
                os.fchmod(out.fileno(), 0o644)  # the umask may have narrowed it; verifiers read it
            out.write(f"{prefix}{line}\n")
    except FileExistsError:
        raise KeyProblem(f"{target} appeared while it was being created; run again") from None
    except OSError as exc:
        raise KeyProblem(f"cannot write allowed signers file {target}: {exc.strerror}") from None
    return SignerAdded(target, number, added=True, created=existing is None)


def key_is_encrypted(path: Path | str) -> bool:
    """Whether an OpenSSH private key file needs a passphrase (KeyProblem if it is no such file)."""
    blob = _openssh_blob(Path(path), _read_key_file(Path(path)))
    (length,) = struct.unpack(">I", blob[15:19])
    return blob[19 : 19 + length] != b"none"


def load_private_key(path: Path | str, passphrase: Passphrase = None) -> Ed25519PrivateKey:
    """Read an OpenSSH Ed25519 private key (from `drill keygen` or `ssh-keygen -t ed25519`)."""
    key_path = Path(path)
    data = _read_key_file(key_path)
    _openssh_blob(key_path, data)
    secret = _passphrase_bytes(passphrase)
    try:
        key = serialization.load_ssh_private_key(data, secret or None)
    except TypeError as exc:
        if "not provided" in str(exc):
            raise KeyProblem(
                f"{key_path} is protected by a passphrase",
                hint="pass --passphrase-file FILE (a file holding the passphrase)",
            ) from None
        if "not encrypted" in str(exc):
            raise KeyProblem(
                f"{key_path} has no passphrase, but one was given", hint="drop --passphrase-file"
            ) from None
        raise
    except ValueError as exc:
        if secret and "checksum" in str(exc):
            raise KeyProblem(f"wrong passphrase for {key_path}") from None
        raise KeyProblem(f"{key_path} is not a readable OpenSSH private key ({exc})") from None
    except UnsupportedAlgorithm as exc:
        raise KeyProblem(f"{key_path}: unsupported key encryption ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyProblem(
            f"{key_path} is not an Ed25519 key",
            hint="make one with `drill keygen` or `ssh-keygen -t ed25519`",
        )
    return key


def _read_key_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyProblem(f"key file {path} does not exist") from None
    except OSError as exc:
        raise KeyProblem(f"cannot read key file {path}: {exc.strerror}") from None


def _openssh_blob(path: Path, data: bytes) -> bytes:
    """The decoded body of an 'OPENSSH PRIVATE KEY' file (KeyProblem for anything else)."""
    text = data.decode("ascii", errors="replace").strip()
    begin, end = "-----BEGIN OPENSSH PRIVATE KEY-----", "-----END OPENSSH PRIVATE KEY-----"
    if not (text.startswith(begin) and text.endswith(end)):
        hint = "make one with `drill keygen` or `ssh-keygen -t ed25519`"
        if text.startswith("ssh-"):
            hint = "that looks like a public key; pass the private key file (without .pub)"
        raise KeyProblem(f"{path} is not an OpenSSH private key", hint=hint)
    try:
        blob = base64.b64decode("".join(text[len(begin) : -len(end)].split()), validate=True)
    except ValueError:
        raise KeyProblem(f"{path} is not a readable OpenSSH private key (bad base64)") from None
    if not blob.startswith(b"openssh-key-v1\0") or len(blob) < 19:
        raise KeyProblem(f"{path} is not a readable OpenSSH private key (bad header)")
    return blob


def _passphrase_bytes(passphrase: Passphrase) -> bytes:
    if passphrase is None:
        return b""
    return passphrase.encode() if isinstance(passphrase, str) else passphrase


# ---------------------------------------------------------------- signatures


def signed_data(message_hash: bytes, namespace: str, hash_alg: str = HASH_ALG) -> bytes:
    """What the key actually signs (PROTOCOL.sshsig): magic, namespace, reserved, hash alg, H(message)."""
    return MAGIC + ssh_string(namespace) + ssh_string(b"") + ssh_string(hash_alg) + ssh_string(message_hash)


def sign_bytes(data: bytes, key: Ed25519PrivateKey, namespace: str = NAMESPACE) -> str:
    """An armored SSHSIG signature of data, byte-identical to `ssh-keygen -Y sign -n NAMESPACE`."""
    if not namespace:
        raise ValueError("an SSHSIG namespace must not be empty")
    digest = hashlib.sha512(data).digest()
    signature = key.sign(signed_data(digest, namespace))
    blob = (
        MAGIC
        + struct.pack(">I", SIG_VERSION)
        + ssh_string(public_key_blob(key.public_key()))
        + ssh_string(namespace)
        + ssh_string(b"")
        + ssh_string(HASH_ALG)
        + ssh_string(ssh_string(KEY_TYPE) + ssh_string(signature))
    )
    return armor(blob)


def armor(blob: bytes) -> str:
    """PEM-like armor as ssh-keygen writes it: base64 wrapped at 70 columns, trailing newline."""
    body = base64.b64encode(blob).decode()
    lines = [body[i : i + _ARMOR_WIDTH] for i in range(0, len(body), _ARMOR_WIDTH)]
    return "\n".join([ARMOR_BEGIN, *lines, ARMOR_END]) + "\n"


def check_principal(principal: str) -> str:
    """The principal, if it is safe as a file-name token and an allowed_signers identity."""
    if not _PRINCIPAL.fullmatch(principal):
        raise UsageError(
            f"signer name {principal!r} cannot be used",
            hint="use letters, digits and . _ @ + - (e.g. lead, observer, ana@example.com)",
        )
    return principal


def signature_path(report_dir: Path | str, principal: str) -> Path:
    """Where principal's signature of report_dir/report.json lives."""
    return Path(report_dir) / f"{REPORT_FILE}.{check_principal(principal)}{SIG_SUFFIX}"


def principal_of(sig_path: Path) -> str:
    """The principal named by a report.json.<principal>.sig file name."""
    return sig_path.name.removeprefix(f"{REPORT_FILE}.").removesuffix(SIG_SUFFIX)


def signer_identity(key_path: Path | str, principal: str, passphrase: Passphrase = None) -> tuple[str, str]:
    """(principal, fingerprint) of a signing key, for the report's prepared_by block."""
    key = load_private_key(key_path, passphrase)
    return check_principal(principal), fingerprint(key.public_key())


def sign_report(
    report_dir: Path | str, key_path: Path | str, principal: str, passphrase: Passphrase = None
) -> Path:
    """Sign the exact stored bytes of report_dir/report.json; writes report.json.<principal>.sig.

    Refuses to replace another signature by the same principal (re-signing with the same key
    writes the same bytes and is a no-op).
    """
    target = signature_path(report_dir, principal)
    data = read_report_bytes(report_dir)
    if not is_canonical(data):
        raise UsageError(
            f"{Path(report_dir) / REPORT_FILE} is not RFC 8785 canonical JSON; refusing to sign it",
            hint="was it edited by hand? rebuild it with `drill report JOURNAL`",
        )
    key = load_private_key(key_path, passphrase)
    _check_preparer(data, principal, fingerprint(key.public_key()))
    text = sign_bytes(data, key)
    if target.exists():
        if target.read_text(encoding="ascii", errors="replace") == text:
            return target
        raise UsageError(
            f"{target} already exists (a different signature by {principal!r})",
            hint="each signer signs once; delete the old file only if it is wrong",
        )
    _write_atomic(target, text)
    return target


def _check_preparer(data: bytes, principal: str, key_fingerprint: str) -> None:
    """Signing as the report's named preparer needs the preparer's key (verify would refuse it)."""
    report = json.loads(data)
    prepared = report.get("prepared_by") if isinstance(report, dict) else None
    if isinstance(prepared, dict) and prepared.get("principal") == principal:
        named = prepared.get("fingerprint")
        if named != key_fingerprint:
            raise KeyProblem(
                f"report.json names {principal!r} ({named}) as preparer; this key is {key_fingerprint}",
                hint="sign with the key the report was built for, or sign under another name",
            )


def countersign_report(
    report_dir: Path | str, key_path: Path | str, principal: str, passphrase: Passphrase = None
) -> Path:
    """Add principal's signature next to the existing ones (sign-off by the lead or an observer).

    Needs at least one signature by someone else, and every existing signature must still
    match report.json: nobody countersigns a report that changed after it was signed.
    """
    directory = Path(report_dir)
    check_countersignable(directory, read_report_bytes(directory), principal)
    return sign_report(directory, key_path, principal, passphrase)


def check_countersignable(directory: Path, data: bytes, principal: str) -> None:
    """UsageError unless someone else signed `data` (report.json's bytes) and every existing
    signature still matches it: nobody countersigns a report that changed after it was signed."""
    check_principal(principal)
    others = [p for p in existing_signatures(directory) if principal_of(p) != principal]
    if not others:
        raise UsageError(
            f"{directory / REPORT_FILE} has no signature by anyone else to countersign",
            hint="the operator signs first: `drill report sign DIR --key KEY --signer NAME`",
        )
    for sig in others:
        name = ascii(sig.name)[1:-1]  # a file name is not trusted text: no escape sequences
        try:
            intact = signature_matches(data, parse_signature(sig.read_bytes()))
        except (SignatureMalformed, OSError) as exc:
            raise UsageError(f"{name}: {exc}; refusing to countersign") from None
        if not intact:
            raise UsageError(
                f"{name} does not match report.json (changed after {ascii(principal_of(sig))[1:-1]} "
                "signed); refusing to countersign"
            )


def existing_signatures(report_dir: Path | str) -> list[Path]:
    """The report.json.<principal>.sig files in report_dir, sorted by name."""
    return sorted(Path(report_dir).glob(f"{REPORT_FILE}.*{SIG_SUFFIX}"))


def read_report_bytes(report_dir: Path | str) -> bytes:
    """The stored bytes of report_dir/report.json (UsageError when it is missing)."""
    path = Path(report_dir) / REPORT_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist", hint="build it with `drill report JOURNAL`") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def _write_atomic(target: Path, text: str) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.write_text(text, encoding="ascii")
        tmp.replace(target)
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror}") from None


# ---------------------------------------------------------------- reading signatures


class SignatureMalformed(ValueError):
    """Raised by parse_signature when text is not a well-formed SSHSIG signature."""


@dataclass(frozen=True, slots=True)
class ParsedSignature:
    """The fields of an SSHSIG blob (PROTOCOL.sshsig)."""

    public_key: bytes  # SSH wire-format public key blob
    namespace: str
    hash_alg: str
    sig_type: str
    signature: bytes

    @property
    def key_type(self) -> str:
        """The public key's type name, e.g. ssh-ed25519."""
        return _Reader(self.public_key).string().decode("ascii", errors="replace")

    @property
    def fingerprint(self) -> str:
        """SHA256:... of the signing key, as `ssh-keygen -l` prints it."""
        return fingerprint(self.public_key)


_HASHES = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}


def parse_signature(armored: str | bytes) -> ParsedSignature:
    """Decode an armored SSHSIG signature (SignatureMalformed when it is not one)."""
    text = armored.decode("ascii", errors="replace") if isinstance(armored, bytes) else armored
    text = text.strip()
    if not (text.startswith(ARMOR_BEGIN) and text.endswith(ARMOR_END)):
        raise SignatureMalformed(f"not an SSH signature (no {ARMOR_BEGIN} ... {ARMOR_END} armor)")
    try:
        blob = base64.b64decode("".join(text[len(ARMOR_BEGIN) : -len(ARMOR_END)].split()), validate=True)
    except ValueError:
        raise SignatureMalformed("not an SSH signature (bad base64)") from None
    reader = _Reader(blob)
    if reader.take(len(MAGIC)) != MAGIC:
        raise SignatureMalformed("not an SSH signature (bad magic)")
    (version,) = struct.unpack(">I", reader.take(4))
    if version != SIG_VERSION:
        raise SignatureMalformed(f"unsupported SSH signature version {version}")
    public_key = reader.string()
    namespace = reader.string().decode("utf-8", errors="replace")
    reader.string()  # reserved
    hash_alg = reader.string().decode("ascii", errors="replace")
    inner = _Reader(reader.string())
    sig_type = inner.string().decode("ascii", errors="replace")
    signature = inner.string()
    if hash_alg not in _HASHES:
        raise SignatureMalformed(f"unsupported signature hash algorithm {hash_alg!r}")
    return ParsedSignature(public_key, namespace, hash_alg, sig_type, signature)


def signature_matches(data: bytes, parsed: ParsedSignature) -> bool:
    """Whether parsed is a valid signature of data by the key it carries (no trust decision)."""
    key = _ed25519_public_key(parsed.public_key)
    if key is None or parsed.sig_type != KEY_TYPE:
        raise SignatureMalformed(
            f"unsupported signature key type {parsed.key_type!r} (drill verifies {KEY_TYPE} only)"
        )
    digest = _HASHES[parsed.hash_alg](data).digest()
    try:
        key.verify(parsed.signature, signed_data(digest, parsed.namespace, parsed.hash_alg))
    except InvalidSignature:
        return False
    return True


def _ed25519_public_key(blob: bytes) -> Ed25519PublicKey | None:
    try:
        reader = _Reader(blob)
        if reader.string() != KEY_TYPE.encode():
            return None
        raw = reader.string()
        return Ed25519PublicKey.from_public_bytes(raw) if len(raw) == 32 else None
    except (SignatureMalformed, ValueError):
        return None


class _Reader:
    """Reads SSH wire-format fields from a byte string."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def take(self, size: int) -> bytes:
        end = self._pos + size
        if end > len(self._data):
            raise SignatureMalformed("not an SSH signature (truncated)")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def string(self) -> bytes:
        (length,) = struct.unpack(">I", self.take(4))
        return self.take(length)
