"""Motifs from a topic's best 10-mers: enumerate canonical k-mers, align both strands, count, refine.

k-mers are handled as integer codes: base A=0, C=1, G=2, T=3, first base most significant, so a
10-mer is a 20-bit integer and its three 8 bp windows are ``code >> 4``, ``(code >> 2) & 0xFFFF`` and
``code & 0xFFFF``.
"""

from __future__ import annotations

import numpy as np

from bindvae.motif import ALPHABET, Motif, information_content

_LOOKUP = np.array(list(ALPHABET))


def reverse_complement_codes(codes: np.ndarray, k: int) -> np.ndarray:
    """Codes of the reverse complements.

    Args:
        codes: ``[n]`` integer k-mer codes.
        k: k-mer length.

    Returns:
        ``[n]`` int64 codes of the reverse-complement k-mers.
    """
    codes = np.asarray(codes, dtype=np.int64)
    out = np.zeros_like(codes)
    for _ in range(k):
        out = (out << 2) | (3 - (codes & 3))
        codes = codes >> 2
    return out


def canonical_kmer_codes(k: int = 10) -> np.ndarray:
    """Every k-mer that is lexicographically <= its reverse complement (one per strand pair).

    Args:
        k: k-mer length.

    Returns:
        ``[(4**k + 4**(k//2) [k even]) / 2]`` ascending int64 codes; 524,800 for k = 10.
    """
    codes = np.arange(4**k, dtype=np.int64)
    return codes[codes <= reverse_complement_codes(codes, k)]


def decode_kmers(codes: np.ndarray, k: int) -> list[str]:
    """Strings of integer k-mer codes.

    Args:
        codes: ``[n]`` codes.
        k: k-mer length.

    Returns:
        ``n`` ACGT strings.
    """
    codes = np.asarray(codes, dtype=np.int64)
    shifts = 2 * np.arange(k - 1, -1, -1)
    digits = (codes[:, None] >> shifts[None, :]) & 3
    return ["".join(row) for row in _LOOKUP[digits]]


def encode_kmers(kmers: list[str]) -> np.ndarray:
    """Integer codes of equal-length ACGT strings.

    Args:
        kmers: ``n`` strings of one length k (ACGT, case-insensitive).

    Returns:
        ``[n]`` int64 codes.
    """
    table = np.full(256, -1, dtype=np.int64)
    for i, base in enumerate(ALPHABET):
        table[ord(base)] = table[ord(base.lower())] = i
    out = np.zeros(len(kmers), dtype=np.int64)
    if not kmers:
        return out
    raw = np.frombuffer("".join(kmers).encode("ascii"), dtype=np.uint8).reshape(len(kmers), -1)
    digits = table[raw]
    if np.any(digits < 0):
        raise ValueError("k-mers must contain only A, C, G, T")
    for col in range(digits.shape[1]):
        out = (out << 2) | digits[:, col]
    return out


def window_codes_of_kmers(codes: np.ndarray, k: int, window: int = 8) -> np.ndarray:
    """Codes of the ``k - window + 1`` windows of each k-mer, in sequence order.

    Args:
        codes: ``[n]`` k-mer codes.
        k: k-mer length.
        window: window length.

    Returns:
        ``[n, k - window + 1]`` int64 window codes.
    """
    codes = np.asarray(codes, dtype=np.int64)
    mask = (1 << (2 * window)) - 1
    shifts = 2 * np.arange(k - window, -1, -1)
    return (codes[:, None] >> shifts[None, :]) & mask


def _one_hot(kmers: list[str]) -> np.ndarray:
    codes = encode_kmers(kmers)
    k = len(kmers[0])
    shifts = 2 * np.arange(k - 1, -1, -1)
    digits = (codes[:, None] >> shifts[None, :]) & 3
    return np.eye(4)[digits]  # [n, k, 4]


def _place(onehot: np.ndarray, log_odds: np.ndarray, n_offsets: int) -> tuple[np.ndarray, np.ndarray]:
    """Best (strand, offset) of each k-mer against the profile's log-odds ``[width, 4]``."""
    k = onehot.shape[1]
    strands = np.stack([onehot, onehot[:, ::-1, ::-1]])  # [2, n, k, 4]
    scores = np.stack(
        [np.einsum("snkb,kb->sn", strands, log_odds[o : o + k]) for o in range(n_offsets)], axis=-1
    )  # [2, n, n_offsets]
    flat = scores.transpose(1, 0, 2).reshape(onehot.shape[0], -1)
    best = np.argmax(flat, axis=1)
    return best // n_offsets, best % n_offsets


def build_pwm(
    kmers: list[str],
    weights: np.ndarray | None = None,
    name: str = "motif",
    max_shift: int = 3,
    n_iterations: int = 5,
    pseudocount: float = 0.25,
    min_information: float = 0.3,
) -> Motif:
    """Build a PWM from k-mers by aligning both strands to a seed, counting and refining.

    The first k-mer is the seed. Each k-mer is placed (strand and offset up to ``max_shift``) where it
    scores best against the current profile's log-odds; counts are re-made from the placements and
    the step repeats (a hard-EM refinement, like MEME's ZOOPS with one site per sequence). Flanks
    with under ``min_information`` bits, or covered by under half of the k-mers, are trimmed.

    Args:
        kmers: ``n`` equal-length ACGT strings, best first (e.g. a topic's top 200 10-mers).
        weights: ``[n]`` non-negative weight per k-mer (default: all 1).
        name: the motif's name.
        max_shift: largest offset of a k-mer relative to the seed, each side.
        n_iterations: alignment/count rounds.
        pseudocount: added to every count (per base) before normalising.
        min_information: bits below which a flank column is trimmed.

    Returns:
        The motif, oriented like the seed; ``nsites`` = number of k-mers.
    """
    if not kmers:
        raise ValueError("build_pwm needs at least one k-mer")
    onehot = _one_hot(kmers)
    n, k = onehot.shape[:2]
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    width, n_offsets = k + 2 * max_shift, 2 * max_shift + 1
    counts = np.zeros((width, 4))
    counts[max_shift : max_shift + k] = onehot[0]
    coverage = np.zeros(width)
    for _ in range(n_iterations):
        probs = (counts + pseudocount) / (counts + pseudocount).sum(axis=1, keepdims=True)
        strand, offset = _place(onehot, np.log(probs / 0.25), n_offsets)
        oriented = np.where(strand[:, None, None] == 0, onehot, onehot[:, ::-1, ::-1])
        counts = np.zeros((width, 4))
        coverage = np.zeros(width)
        for o in range(n_offsets):
            chosen = offset == o
            counts[o : o + k] += np.einsum("n,nkb->kb", w[chosen], oriented[chosen])
            coverage[o : o + k] += w[chosen].sum()
    probs = (counts + pseudocount) / (counts + pseudocount).sum(axis=1, keepdims=True)
    keep = (information_content(probs) >= min_information) & (coverage >= 0.5 * w.sum())
    if not keep.any():
        keep[max_shift : max_shift + k] = True
    first, last = np.flatnonzero(keep)[[0, -1]]
    return Motif(name=name, pwm=probs[first : last + 1], nsites=n)
