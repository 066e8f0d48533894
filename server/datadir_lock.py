"""One server per data dir: an exclusive, non-blocking lock on `<data_dir>/gateway.lock`.

`serve` takes it before the database is opened, so a second server on the same data dir refuses at
once and touches nothing: it never runs migrations, never closes the live server's in-flight
requests as "interrupted", never binds. The lock is `flock(2)` on an open file: the kernel drops it
when the holder exits, however it exits (kill -9 included), so a stale lock file never blocks a
restart. The holder writes its PID into the file so the refusal can name it.

Fails with `DataDirLocked` (another live process holds it) or `OSError` (the folder cannot be
created or the file cannot be opened: permissions).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "gateway.lock"


class DataDirLocked(Exception):
    """Another process holds the data dir; the message names it and the folder."""


class DataDirLock:
    """Holds the lock until `release()` or process exit."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def acquire(data_dir: Path) -> DataDirLock:
    """Take the data dir's lock or raise DataDirLocked at once (never waits)."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = data_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DataDirLocked(f"another gateway (pid {holder}) is serving {data_dir}; stop it first") from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return DataDirLock(path, fd)
