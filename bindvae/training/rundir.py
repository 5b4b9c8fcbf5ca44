"""One owner per run directory: an OS file lock that a training holds for as long as it runs.

The lock is ``flock`` on ``<run_dir>/.owner.lock`` (the file also names the owning process). The
kernel releases it when the process exits for any reason, SIGKILL included, so a dead run never
leaves a stale lock behind, and a second training (or a resume while the first still runs) is
refused before it writes anything. Readers (analysis) never take the lock: they ask
:func:`owner` and say that they read a run in progress.

Within one process the lock is re-entrant: an entry point may take it before Hydra writes the
run's config, and ``bindvae.training.fit`` takes it again around training.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from bindvae.errors import BindVAEError
from bindvae.io import check_writable_dir

LOCK_NAME = ".owner.lock"
# A reader's probe holds a shared lock for microseconds; a starting owner retries for this long
# before it concludes that another process owns the directory.
_RETRY_SECONDS = 0.5

# Locks this process holds: resolved run directory -> [open lock file descriptor, depth].
_HELD: dict[Path, list] = {}


class RunDirectoryBusy(BindVAEError):
    """Another process owns (is training in) the run directory."""

    def __init__(self, run_dir: Path, holder: str):
        self.run_dir = run_dir
        super().__init__(f"{run_dir}: in use by {holder}; wait for it to finish or use another hydra.run.dir")


def _holder(lock_path: Path) -> str:
    with contextlib.suppress(OSError):
        text = lock_path.read_text().strip()
        if text:
            return text
    return "another process"


def _try_lock(fd: int) -> bool:
    deadline = time.monotonic() + _RETRY_SECONDS
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK) or time.monotonic() > deadline:
                return False
            time.sleep(0.02)


def acquire(run_dir: str | os.PathLike) -> None:
    """Take the run directory's lock for this process (or deepen it when already held here).

    Creates the directory if needed. Released by :func:`release` or when the process exits.

    Raises:
        RunDirectoryBusy: another process holds it (the message names the process).
        ConfigError: the directory cannot be created or written to (key ``workdir``).
    """
    path = Path(run_dir).resolve()
    held = _HELD.get(path)
    if held is not None:
        held[1] += 1
        return
    check_writable_dir(path, "workdir")
    lock_path = path / LOCK_NAME
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    if not _try_lock(fd):
        os.close(fd)
        raise RunDirectoryBusy(path, _holder(lock_path))
    os.ftruncate(fd, 0)
    os.write(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode())
    _HELD[path] = [fd, 1]


def release(run_dir: str | os.PathLike) -> None:
    """Undo one :func:`acquire` of this process; the last one unlocks the directory."""
    path = Path(run_dir).resolve()
    held = _HELD.get(path)
    if held is None:
        return
    held[1] -= 1
    if held[1] == 0:
        del _HELD[path]
        os.close(held[0])  # closing the only descriptor releases the flock


@contextlib.contextmanager
def owned(run_dir: str | os.PathLike) -> Iterator[Path]:
    """``with owned(run_dir):`` holds the lock for the block (see :func:`acquire`)."""
    acquire(run_dir)
    try:
        yield Path(run_dir)
    finally:
        release(run_dir)


def owner(run_dir: str | os.PathLike) -> str | None:
    """Who is training in ``run_dir`` now ("process N on HOST"), or None when nobody is.

    Never blocks and never takes the lock for longer than the probe itself.
    """
    path = Path(run_dir).resolve()
    if path in _HELD:
        return f"process {os.getpid()} on {socket.gethostname()} (this one)"
    lock_path = path / LOCK_NAME
    try:
        fd = os.open(lock_path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _holder(lock_path)
    finally:
        os.close(fd)
    return None
