"""Files the library writes: whole or not at all, with the mode the user's umask gives."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

__all__ = ["atomic_write", "atomic_write_text", "exclusive", "file_mode"]


def file_mode() -> int:
    """The mode a new file gets under the process's umask (0o666 & ~umask)."""
    try:  # Linux 4.7+: read without changing it
        status = Path("/proc/self/status").read_text()
        umask = next(int(line.split()[1], 8) for line in status.splitlines() if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0o022)  # elsewhere reading the umask means setting it: put it straight back
        os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """``write(temporary)`` fills a temporary file beside ``path``, which then replaces ``path`` in one
    rename; the file gets the umask's mode (mkstemp alone would leave it 0600). An OSError on the way (a
    read-only folder, a full disk) names ``path``, and leaves an earlier ``path`` whole and no temporary."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        _raise_naming(error, path)
    os.close(handle)
    try:
        os.chmod(temporary, file_mode())
        write(temporary)
        os.replace(temporary, path)
    except OSError as error:
        _raise_naming(error, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`atomic_write` of ``text`` (UTF-8)."""
    return atomic_write(path, lambda temporary: Path(temporary).write_text(text, encoding="utf-8"))


def _raise_naming(error: OSError, path: Path) -> NoReturn:
    """Raise ``error`` again as the same OSError subclass naming ``path``, the file being written, instead
    of a temporary file or no file at all (a full disk's write names none); as it is without an errno."""
    if error.errno is None:
        raise error
    raise OSError(error.errno, error.strerror or str(error), str(path)) from error


@contextmanager
def exclusive(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold an exclusive ``fcntl.flock`` on ``<path>.lock`` (created, never removed: removing it would
    let a waiter lock a file no newcomer sees) while the block runs; other processes wait. The OS
    drops the lock when its holder dies, killed or not, so a crashed build never blocks the next."""
    lock = Path(path)
    lock = lock.with_name(lock.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(lock, os.O_RDWR | os.O_CREAT, file_mode())
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield lock
    finally:
        os.close(handle)  # closing the last descriptor releases the flock
