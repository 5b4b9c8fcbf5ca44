"""Atomic file output: a reader never sees half a file.

Every file the package writes goes through :func:`atomic_write`: the content is written to a
temporary name in the destination's own folder (so the final rename never crosses a file system),
flushed and fsync'ed, then renamed over the destination with :func:`os.replace`, which is atomic on
POSIX and Windows. If writing fails or the process dies, the destination keeps its previous
content (or stays absent) and the temporary file is removed when Python gets the chance; a hard
kill can leave a hidden ``.<name>.<pid>.<random>.tmp`` next to it, never a truncated ``<name>``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from bindvae.errors import ConfigError

TEMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO[Any]]:
    """Opens a temporary file next to ``path``; on a clean exit it is renamed to ``path``.

    Args:
        path: the destination file.
        mode: ``"wb"`` or ``"w"`` (text; ``encoding`` defaults to UTF-8).
        encoding: text encoding for ``mode="w"``.

    Yields:
        The open temporary file.

    Raises:
        ValueError: ``mode`` is not a write mode.
        OSError: the folder is missing or not writable (nothing is left behind).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    tmp_name = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    # O_EXCL: never write through someone else's file; mode 0o666 lets the umask apply, as open() does.
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        text = mode == "w"
        with os.fdopen(fd, mode, encoding=(encoding or "utf-8") if text else None) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Calls ``write(handle)`` on a binary temporary file next to ``path``, then renames it into place.

    Args:
        path: the destination file.
        write: writes the whole content to the handle it is given (e.g.
            ``lambda f: np.savez(f, **arrays)`` or ``lambda f: fig.savefig(f, format="png")``).
    """
    with atomic_open(path, "wb") as handle:
        write(handle)


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8", *, parents: bool = False) -> None:
    """Writes ``text`` to ``path`` atomically; ``parents`` creates the missing folders first."""
    if parents:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w", encoding=encoding) as handle:
        handle.write(text)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def check_writable_dir(path: str | os.PathLike, key: str) -> Path:
    """Creates ``path`` if needed and checks that files can be written in it.

    Run it before any computation so that a run never spends hours and then fails to save.

    Args:
        path: the output folder.
        key: the config key or argument that named it (for the error).

    Returns:
        ``path`` as a Path.

    Raises:
        ConfigError: the folder cannot be created or written to (names ``key``).
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise ConfigError(key, f"cannot write to {path} ({err.strerror or err})") from None
    return path
