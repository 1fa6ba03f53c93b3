"""The one atomic writer: all or nothing, and one permission policy."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from deepfake_cli.errors import UsageError
from deepfake_cli.files import PendingFile, write_atomically


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _open_mode() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def test_a_new_file_gets_what_open_would_give(tmp_path: Path) -> None:
    path = tmp_path / "new.txt"
    write_atomically(path, "text")
    assert path.read_text() == "text" and _mode(path) == _open_mode()
    assert [p.name for p in tmp_path.iterdir()] == ["new.txt"]  # no temporary left


def test_a_replaced_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "kept.txt"
    path.write_text("old")
    path.chmod(0o640)
    write_atomically(path, b"new", durable=True)
    assert path.read_bytes() == b"new" and _mode(path) == 0o640


def test_a_writer_that_replaces_the_temporary_file_still_gets_the_policy(tmp_path: Path) -> None:
    # safetensors writes its own file over the temporary one, with mkstemp's 0600.
    path = tmp_path / "weights.bin"
    with PendingFile(path) as pending:
        pending.temporary.unlink()
        pending.temporary.write_bytes(b"tensors")
        pending.temporary.chmod(0o600)
    assert path.read_bytes() == b"tensors" and _mode(path) == _open_mode()


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "kept.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), PendingFile(path) as pending:
        pending.temporary.write_text("half")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["kept.txt"]


def test_a_missing_folder_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="Cannot write"):
        write_atomically(tmp_path / "missing" / "file.txt", "text")
