"""Files named by an operator, and files vtdui writes.

Reading: a path in a configuration or on the command line may name ``/dev/zero``, a FIFO or a directory;
reading it naively hangs or exhausts the memory. :func:`read_bounded` refuses anything but a regular file
and stops at the limit.

Writing: everything vtdui keeps that holds payloads or secrets (SQLite databases and their ``-wal``/``-shm``
files, exchange log, quarantine, evidence) is 0600 in a 0700 directory (:func:`private_dir`,
:func:`private_file`), whatever the umask.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["UnsafeFileError", "private_dir", "private_file", "read_bounded"]


class UnsafeFileError(OSError):
    """The path is not a regular file, or is larger than allowed (:attr:`too_large`); the message says which."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


def read_bounded(path: Path, limit: int) -> bytes:
    """Read a whole regular file of at most ``limit`` bytes.

    The file is opened without blocking (a FIFO with no writer would otherwise hang ``open``), then
    checked on the open descriptor so that a swap between check and read changes nothing.

    Raises:
        UnsafeFileError: not a regular file (directory, device, FIFO, socket) or larger than ``limit``.
        OSError: the file cannot be opened (missing, permission denied).
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = ("a directory" if stat.S_ISDIR(info.st_mode) else "a FIFO" if stat.S_ISFIFO(info.st_mode)
                    else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "not a file")
            raise UnsafeFileError(f"{path} is {kind}, not a regular file")
        if info.st_size > limit:
            raise UnsafeFileError(f"{path} is {info.st_size} bytes, more than the {limit} allowed", too_large=True)
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:  # the file grew after fstat
                raise UnsafeFileError(f"{path} is more than the {limit} bytes allowed", too_large=True)
        return b"".join(chunks)
    finally:
        os.close(fd)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) if needed and make it 0700: it holds payloads or secrets."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != 0o700:
        path.chmod(0o700)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty if missing, 0600 from the start (never readable by others, not even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return path
