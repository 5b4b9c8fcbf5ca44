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


def _placement_scores(onehot: np.ndarray, log_odds: np.ndarray, n_offsets: int) -> np.ndarray:
    """``[n, 2 * n_offsets]`` each k-mer's score against the log-odds ``[width, 4]``, strand-major."""
    k = onehot.shape[1]
    strands = np.stack([onehot, onehot[:, ::-1, ::-1]])  # [2, n, k, 4]
    scores = np.stack(
        [np.einsum("snkb,kb->sn", strands, log_odds[o : o + k]) for o in range(n_offsets)], axis=-1
    )  # [2, n, n_offsets]
    return scores.transpose(1, 0, 2).reshape(onehot.shape[0], -1)


def _place(onehot: np.ndarray, log_odds: np.ndarray, n_offsets: int) -> tuple[np.ndarray, np.ndarray]:
    """Best (strand, offset) of each k-mer against the profile's log-odds ``[width, 4]``."""
    best = np.argmax(_placement_scores(onehot, log_odds, n_offsets), axis=1)
    return best // n_offsets, best % n_offsets


def _refine(onehot: np.ndarray, w: np.ndarray, max_shift: int, n_iterations: int,
            pseudocount: float) -> tuple[np.ndarray, np.ndarray]:
    """Untrimmed profile ``[k + 2 max_shift, 4]`` and its coverage, seeded by the first k-mer (hard EM)."""
    k = onehot.shape[1]
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
    return (counts + pseudocount) / (counts + pseudocount).sum(axis=1, keepdims=True), coverage


def _fit(onehot: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``[n]`` each k-mer's best log-odds score against an untrimmed profile (either strand, any offset)."""
    n_offsets = probs.shape[0] - onehot.shape[1] + 1
    return _placement_scores(onehot, np.log(probs / 0.25), n_offsets).max(axis=1)


def _trimmed(probs: np.ndarray, coverage: np.ndarray, total: float, name: str, nsites: int, max_shift: int,
             min_information: float) -> Motif:
    keep = (information_content(probs) >= min_information) & (coverage >= 0.5 * total)
    if not keep.any():
        keep[max_shift : probs.shape[0] - max_shift] = True
    first, last = np.flatnonzero(keep)[[0, -1]]
    return Motif(name=name, pwm=probs[first : last + 1], nsites=nsites)


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
    w = np.ones(len(kmers)) if weights is None else np.asarray(weights, dtype=np.float64)
    probs, coverage = _refine(onehot, w, max_shift, n_iterations, pseudocount)
    return _trimmed(probs, coverage, w.sum(), name, len(kmers), max_shift, min_information)


PART_SUFFIXES = ("a", "b")  # a topic's two sites are named like its motif plus these


def split_motifs(
    kmers: list[str],
    name: str = "motif",
    split_fit: float = 0.5,
    min_share: float = 0.25,
    n_rounds: int = 5,
    max_shift: int = 3,
    n_iterations: int = 5,
    pseudocount: float = 0.25,
    min_information: float = 0.3,
) -> list[Motif]:
    """The two sites in a topic's k-mers, when it holds two, as two PWMs (ours).

    A topic can hold two unrelated sites (e.g. an NF-kB and a forkhead site); the one PWM that
    :func:`build_pwm` aligns to the best k-mer then blurs both and matches neither. Here the k-mers
    that fit the best k-mer alone poorly (best log-odds score under ``split_fit`` times the seed's own,
    either strand, any offset up to ``max_shift``) seed a second group; the two groups are then refined
    as a two-profile hard EM (each k-mer goes to the profile it fits better, each profile is rebuilt as
    :func:`build_pwm` builds one, seeded by its best-ranked k-mer) for up to ``n_rounds`` rounds. No
    split when fewer than ``min_share`` of the k-mers fit the seed poorly or either group ends below
    that share.

    Args:
        kmers: ``n`` equal-length ACGT strings, best first.
        name: the parts are named ``name`` plus :data:`PART_SUFFIXES`.
        split_fit: fraction of the seed k-mer's score below which a k-mer fits it poorly.
        min_share: smallest share of the k-mers a part is built from.
        n_rounds: rounds of the two-profile assignment.
        max_shift, n_iterations, pseudocount, min_information: as :func:`build_pwm`.

    Returns:
        ``[]`` (one site) or the two parts; the first is built from the group that holds the best
        k-mer. ``nsites`` is the number of k-mers each was built from.
    """
    if not kmers:
        raise ValueError("split_motifs needs at least one k-mer")
    onehot = _one_hot(kmers)
    n = len(kmers)
    seed_fit = _fit(onehot, _refine(onehot[:1], np.ones(1), max_shift, 1, pseudocount)[0])
    group = (seed_fit < split_fit * seed_fit[0]).astype(int)

    def profiles_of(group: np.ndarray):
        """The two groups' members and profiles, or None when either is under ``min_share``."""
        members = [np.flatnonzero(group == g) for g in (0, 1)]
        if min(len(m) for m in members) < min_share * n:
            return None
        return members, [_refine(onehot[m], np.ones(len(m)), max_shift, n_iterations, pseudocount) for m in members]

    for _ in range(n_rounds):
        built = profiles_of(group)
        if built is None:
            return []
        members, profiles = built
        new = np.argmax(np.stack([_fit(onehot, probs) for probs, _ in profiles]), axis=0)
        if new[0] != 0:  # the group holding the best k-mer stays first
            new = 1 - new
        if np.array_equal(new, group):
            break
        group = new
    else:  # not settled in n_rounds: the profiles of the last assignment
        built = profiles_of(group)
        if built is None:
            return []
        members, profiles = built
    return [_trimmed(probs, coverage, len(m), name + suffix, len(m), max_shift, min_information)
            for (probs, coverage), m, suffix in zip(profiles, members, PART_SUFFIXES)]
