"""Errors that name a user's mistake.

Entry points catch :class:`BindVAEError` and print its message as one line with a non-zero exit,
so a user sees which file (and line) is wrong instead of a traceback.
"""

from __future__ import annotations

import os


class BindVAEError(Exception):
    """Base class of every error caused by user input or configuration."""


class InputError(BindVAEError, ValueError):
    """A file the user gave is missing, unreadable or malformed.

    Args:
        path: the offending file.
        problem: what is wrong, in a few words.
        line: 1-based line number, when it applies.
    """

    def __init__(self, path: str | os.PathLike, problem: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


class ConfigError(BindVAEError, ValueError):
    """A configuration value is invalid; the message names the key."""

    def __init__(self, key: str, problem: str):
        self.key = key
        super().__init__(f"config {key}: {problem}")
