"""TF families: which TF names belong together (JASPAR's ``tf_family`` annotation).

A family key is the TF's JASPAR families joined with ``"; "`` (e.g. ``Fos-related; Jun-related`` for
the FOS::JUN heterodimer), its classes where it has no family, and the TF's own name where the TF is
not in JASPAR (a user's probe table or MEME file): such a TF is a family of its own.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

SEPARATOR = "; "


def jaspar_families(release: str) -> dict[str, str]:
    """TF name -> family key, from pyjaspar's bundled CORE vertebrates.

    Args:
        release: pyjaspar release (e.g. ``JASPAR2024``).

    Returns:
        The mapping; empty when the release cannot be opened (names then stand for themselves).
    """
    from pyjaspar import jaspardb  # Deferred: pyjaspar opens its SQLite file on import of a release.

    try:
        records = jaspardb(release=release).fetch_motifs(collection="CORE", tax_group=["vertebrates"],
                                                         all_versions=False)
    except Exception as exc:  # pyjaspar raises bare exceptions for unknown releases
        logger.warning("no TF families: %s is not readable through pyjaspar (%s)", release, exc)
        return {}
    families: dict[str, str] = {}
    for record in records:
        labels = sorted(set(record.tf_family or [])) or sorted(set(record.tf_class or []))
        families.setdefault(record.name, SEPARATOR.join(labels) or record.name)
    # JASPAR names mouse matrices in mouse case (Spi1) and human ones in capitals; a user's SPI1 is the same
    # TF, so every name is also known in capitals (a name already there in capitals keeps its own entry).
    for name, family in list(families.items()):
        families.setdefault(name.upper(), family)
    return families


def family_of(tf: str, families: dict[str, str]) -> str:
    """The family key of ``tf`` (its own name when unknown)."""
    return families.get(tf, tf)


def same_family(first: str, second: str, families: dict[str, str]) -> bool:
    """Whether two TFs share at least one family (a heterodimer shares each of its partners')."""
    return bool(set(family_of(first, families).split(SEPARATOR)) & set(family_of(second, families).split(SEPARATOR)))
