"""What the key=value entry points share: ``--help`` prints the module's usage text and exits 0."""

from __future__ import annotations

import sys

HELP_FLAGS = ("-h", "--help")


def help_requested(argv: list[str], usage: str | None) -> bool:
    """Write ``usage`` (the entry point's docstring) to stdout when ``argv`` asks for help.

    Returns:
        True when help was asked for (the caller then exits 0 without doing anything else).
    """
    if not any(arg in HELP_FLAGS for arg in argv):
        return False
    sys.stdout.write((usage or "").strip() + "\n")
    return True


def parse_key_values(argv: list[str], known) -> dict[str, str]:
    """``key=value`` arguments as a dict; the keys must be among ``known``.

    Raises:
        ConfigError: an argument without ``=`` or with an unknown key (the message lists the known ones).
    """
    from bindvae.errors import ConfigError

    args = {}
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep or key not in known:
            raise ConfigError(key or item, f"unknown argument {item!r}; known: {', '.join(known)}")
        args[key] = value
    return args
