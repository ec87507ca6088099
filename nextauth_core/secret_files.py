"""Secrets a process generates for itself on first start and keeps in its data folder."""

import os
from collections.abc import Callable
from pathlib import Path


def write_private(path: Path, content: bytes) -> None:
    """Write a new file only its owner can read (0600). Never overwrites: an existing file raises
    FileExistsError, so a secret somebody else planted there is not silently taken over."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)


def secret_file(path: Path, generate: Callable[[], str]) -> str:
    """The secret kept in ``path``, made by ``generate`` and written there (0600) the first time, so it stays
    the same across restarts."""
    if not path.exists():
        try:
            write_private(path, (generate() + "\n").encode("utf-8"))
        except FileExistsError:  # another process made it between the check and the write: use theirs
            pass
    return path.read_text().strip()
