"""`${file:PATH}` reads only regular, small files inside the playbook's folder or an allowed folder."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from drill.errors import SecretUnresolved
from drill.secrets import MAX_SECRET_FILE_BYTES, SECRET_DIRS_ENV, Secrets


@pytest.fixture
def playbook_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "drills" / "prod"
    folder.mkdir(parents=True)
    (folder / "token.txt").write_text("s3cret-token\n", encoding="utf-8")
    (folder / "keys").mkdir()
    (folder / "keys" / "db.txt").write_text("db-pass-1234", encoding="utf-8")
    return folder


def test_a_file_inside_the_playbook_folder_is_read_and_redacted(playbook_dir: Path) -> None:
    secrets = Secrets(env={}, base_dir=playbook_dir)
    assert secrets.resolve_text("${file:token.txt}/${file:keys/db.txt}") == "s3cret-token/db-pass-1234"
    assert secrets.redact_text("t=s3cret-token") == "t=«redacted»"


@pytest.mark.parametrize("reference", ["../../etc/hostname", "/etc/passwd", "keys/../../../outside.txt"])
def test_a_path_outside_the_allowed_folders_is_refused(
    playbook_dir: Path, reference: str, tmp_path: Path
) -> None:
    (tmp_path / "outside.txt").write_text("not for drills", encoding="utf-8")
    (tmp_path / "etc").mkdir(exist_ok=True)
    (tmp_path / "etc" / "hostname").write_text("host-secret", encoding="utf-8")
    secrets = Secrets(env={}, base_dir=playbook_dir)
    with pytest.raises(SecretUnresolved) as caught:
        secrets.resolve_text(f"${{file:{reference}}}", "contact ops/pd")
    text = str(caught.value) + str(getattr(caught.value, "hint", ""))
    assert f"secret file {reference} (at contact ops/pd) is outside the folders" in text
    assert str(playbook_dir.resolve()) in text and SECRET_DIRS_ENV in text
    assert "not for drills" not in text and "host-secret" not in text and "root:" not in text


def test_a_symlink_inside_pointing_outside_is_refused(playbook_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("outside-content", encoding="utf-8")
    (playbook_dir / "link.txt").symlink_to(target)
    secrets = Secrets(env={}, base_dir=playbook_dir)
    with pytest.raises(
        SecretUnresolved, match=r"link\.txt is outside .*it resolves to .*elsewhere\.txt"
    ) as caught:
        secrets.resolve_text("${file:link.txt}")
    assert "outside-content" not in str(caught.value)


def test_a_symlink_to_an_allowed_folder_is_followed(playbook_dir: Path) -> None:
    (playbook_dir / "alias.txt").symlink_to(playbook_dir / "keys" / "db.txt")
    assert Secrets(env={}, base_dir=playbook_dir).resolve_text("${file:alias.txt}") == "db-pass-1234"


def test_drill_secret_dirs_and_file_roots_allow_more_folders(playbook_dir: Path, tmp_path: Path) -> None:
    vault, other = tmp_path / "vault", tmp_path / "other"
    for folder, text in ((vault, "from-vault"), (other, "from-other")):
        folder.mkdir()
        (folder / "s.txt").write_text(text, encoding="utf-8")
    refused = Secrets(env={}, base_dir=playbook_dir)
    with pytest.raises(SecretUnresolved, match="outside"):
        refused.resolve_text(f"${{file:{vault / 's.txt'}}}")
    env = {SECRET_DIRS_ENV: os.pathsep.join(["", str(vault), str(tmp_path / "missing")])}
    allowed = Secrets(env=env, base_dir=playbook_dir)
    assert allowed.resolve_text(f"${{file:{vault / 's.txt'}}}") == "from-vault"
    rooted = Secrets(env={}, base_dir=playbook_dir, file_roots=(other,))
    assert rooted.resolve_text(f"${{file:{other / 's.txt'}}}") == "from-other"
    with pytest.raises(SecretUnresolved, match="outside"):
        rooted.resolve_text(f"${{file:{vault / 's.txt'}}}")


def test_a_fifo_is_refused_without_blocking(playbook_dir: Path) -> None:
    fifo = playbook_dir / "pipe"
    os.mkfifo(fifo)
    secrets = Secrets(env={}, base_dir=playbook_dir)
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            secrets.resolve_text("${file:pipe}")
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    worker.join(timeout=5)
    if worker.is_alive():  # unblock the reader so the test run ends, then fail
        with open(fifo, "w"):
            pass
        pytest.fail("reading a FIFO blocked")
    assert len(outcome) == 1 and isinstance(outcome[0], SecretUnresolved)
    assert "pipe is not a regular file" in str(outcome[0])


def test_a_folder_is_refused(playbook_dir: Path) -> None:
    with pytest.raises(SecretUnresolved, match="keys is not a regular file"):
        Secrets(env={}, base_dir=playbook_dir).resolve_text("${file:keys}")


def test_a_big_file_is_refused(playbook_dir: Path) -> None:
    (playbook_dir / "big.txt").write_text("x" * (MAX_SECRET_FILE_BYTES + 1), encoding="utf-8")
    (playbook_dir / "limit.txt").write_text("y" * MAX_SECRET_FILE_BYTES, encoding="utf-8")
    secrets = Secrets(env={}, base_dir=playbook_dir)
    with pytest.raises(SecretUnresolved, match=r"big\.txt is larger than 64 KiB") as caught:
        secrets.resolve_text("${file:big.txt}")
    assert "xxxx" not in str(caught.value)
    assert secrets.resolve_text("${file:limit.txt}") == "y" * MAX_SECRET_FILE_BYTES


def test_a_missing_or_binary_file_is_named_not_quoted(playbook_dir: Path) -> None:
    (playbook_dir / "bin.key").write_bytes(b"\xff\xfe\x00secret")
    secrets = Secrets(env={}, base_dir=playbook_dir)
    with pytest.raises(SecretUnresolved, match=r"cannot read secret file nope\.txt"):
        secrets.resolve_text("${file:nope.txt}")
    with pytest.raises(SecretUnresolved, match=r"bin\.key is not UTF-8 text"):
        secrets.resolve_text("${file:bin.key}")
