"""DNA letters as integer codes: one alphabet, one code table, one "not a base" marker.

``A C G T`` are 0..3 in either case; anything else (``N``, IUPAC letters, non-ASCII) is
:data:`NOT_A_BASE`, so a window or site holding it is skipped by whoever reads the codes. The
complement of code ``c < 4`` is ``3 - c``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BASES = "ACGT"
NOT_A_BASE = 4


def _code_table() -> np.ndarray:
    table = np.full(256, NOT_A_BASE, dtype=np.int8)
    for code, base in enumerate(BASES):
        table[ord(base)] = table[ord(base.lower())] = code
    table.setflags(write=False)
    return table


# byte -> code (int8 [256]); index it with ``np.frombuffer(text.encode("ascii", "replace"), np.uint8)``.
BASE_CODE = _code_table()
# code -> its complement's code (N stays N): reverses a code matrix's strand with ``[..., ::-1]``.
COMPLEMENT = np.array([3, 2, 1, 0, NOT_A_BASE], dtype=np.int8)
_COMPLEMENT_LETTERS = str.maketrans("ACGTacgt", "TGCAtgca")


def codes(sequence: str) -> np.ndarray:
    """int8 [len(sequence)] codes of one sequence (non-ASCII letters become :data:`NOT_A_BASE`)."""
    return BASE_CODE[np.frombuffer(sequence.encode("ascii", errors="replace"), dtype=np.uint8)]


def encode_padded(sequences: Sequence[str]) -> np.ndarray:
    """int8 ``[n, longest]`` codes, each row padded with :data:`NOT_A_BASE`."""
    width = max((len(s) for s in sequences), default=0)
    out = np.full((len(sequences), width), NOT_A_BASE, dtype=np.int8)
    for row, sequence in enumerate(sequences):
        out[row, : len(sequence)] = codes(sequence)
    return out


def reverse_complement(sequence: str) -> str:
    """The other strand of ``sequence`` (ACGT in either case complemented; other letters kept)."""
    return sequence.translate(_COMPLEMENT_LETTERS)[::-1]
