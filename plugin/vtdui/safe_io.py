"""Bounded reads of files named by an operator: regular files only, never more than a limit.

A path in a configuration or on the command line may name ``/dev/zero``, a FIFO or a directory; reading it
naively hangs or exhausts the memory. These helpers refuse anything but a regular file and stop at the limit.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["UnsafeFileError", "read_bounded"]


class UnsafeFileError(OSError):
    """The path is not a regular file, or is larger than allowed; the message says which."""


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
            raise UnsafeFileError(f"{path} is {info.st_size} bytes, more than the {limit} allowed")
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:  # the file grew after fstat
                raise UnsafeFileError(f"{path} is more than the {limit} bytes allowed")
        return b"".join(chunks)
    finally:
        os.close(fd)
