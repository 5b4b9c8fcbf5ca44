"""How many peaks hold a site of each topic's motif, against background peaks (the report's site columns).

Method (after HOMER's known-motif table and MEME-ChIP's shuffled controls):

* Background peaks: one per scored peak, of the same length, drawn from a first-order Markov chain
  fitted on all scored peaks (their dinucleotide frequencies), seeded; a non-ACGT position of the
  peak stays non-ACGT in its background copy.
* Site: a window on either strand whose log-odds score (the motif's PWM, with 2% of the peaks' base
  frequencies mixed in so no base has probability 0, against those base frequencies) reaches the
  threshold at which a random window of that composition scores as high with probability
  :data:`SITE_P` (the exact score distribution, as FIMO's default p < 1e-4).
* Per topic: the percentage of peaks and of background peaks with at least one site, and the
  one-sided Fisher exact p-value that peaks hold sites more often than background peaks.
* ``site_auroc`` (ours), given the peaks' topic scores: how well the topic's own score ranks the
  peaks that hold a site of its motif above those that do not (Mann-Whitney effect size, 0.5 = not
  at all). A motif can be common in the peaks while the topic it came from is not about it: on the
  five 20,000-peak recovery runs, nine background topics had motifs that matched AP-1 or CTCF (in 30%
  and 20% of the peaks), so sites in 1.9-4.6 times as many peaks as background peaks, and measured
  0.31-0.60; the topics of planted motifs on the same runs measured a median of 0.93 (0.58 for a weak
  TEAD1 topic to 0.99). :mod:`bindvae.analysis.flags` reads it.

At most :data:`MAX_PEAKS` peaks are scanned (a seeded sample); the report says how many.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from bindvae import dna
from bindvae.analysis.stats import mann_whitney_greater
from bindvae.motif import Motif, reverse_complement_pwm

SITE_P = 1e-4
MAX_PEAKS = 5_000
PSEUDO = 0.02  # share of the base frequencies mixed into a PWM (no log of 0)
_SCALE = 100  # log-odds steps per bit in the exact score distribution
SITE_COLUMNS = ["topic", "n_peaks", "peaks_with_site", "pct_peaks", "background_with_site", "pct_background",
                "enrichment_p", "threshold_bits", "site_auroc"]


def base_frequencies(codes: np.ndarray) -> np.ndarray:
    """A, C, G, T frequencies over the ACGT positions of ``codes`` (uniform when there are none)."""
    counts = np.bincount(codes[codes < 4].ravel(), minlength=4).astype(np.float64)
    return counts / counts.sum() if counts.sum() else np.full(4, 0.25)


def markov_background(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Background peaks: same lengths and non-ACGT positions, bases from the peaks' dinucleotide chain.

    Args:
        codes: ``[n, length]`` from :func:`encode`.
        rng: random generator.

    Returns:
        ``[n, length]`` codes.
    """
    pairs = (codes[:, :-1] < 4) & (codes[:, 1:] < 4)
    trans = np.ones((4, 4))  # one pseudo-count per transition
    np.add.at(trans, (codes[:, :-1][pairs], codes[:, 1:][pairs]), 1.0)
    cum = np.cumsum(trans / trans.sum(axis=1, keepdims=True), axis=1)
    first = np.cumsum(base_frequencies(codes))
    out = np.full_like(codes, 4)
    prev = np.searchsorted(first, rng.random(len(codes)), side="right").clip(0, 3).astype(np.int8)
    for j in range(codes.shape[1]):
        draw = rng.random(len(codes))
        step = (draw[:, None] > cum[prev]).sum(axis=1).clip(0, 3).astype(np.int8) if j else prev
        out[:, j] = np.where(codes[:, j] < 4, step, 4)
        prev = step
    return out


def log_odds(pwm: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``[width, 4]`` log2 odds of the PWM (with :data:`PSEUDO` of the background mixed in)."""
    p = (1.0 - PSEUDO) * np.asarray(pwm, np.float64) + PSEUDO * background
    return np.log2(p / background)


def threshold(scores: np.ndarray, background: np.ndarray, p: float = SITE_P) -> float:
    """Smallest log-odds score reached by a random window with probability at most ``p``.

    The window's bases are independent draws from ``background``; the score distribution is exact on
    a grid of 1/:data:`_SCALE` bit.
    """
    steps = np.rint(scores * _SCALE).astype(np.int64)
    low = int(steps.min(axis=1).sum())
    dist = np.ones(1)
    for row in steps - steps.min(axis=1, keepdims=True):
        new = np.zeros(len(dist) + int(row.max()))
        for b in range(4):
            new[row[b]: row[b] + len(dist)] += background[b] * dist
        dist = new
    tail = np.cumsum(dist[::-1])[::-1]  # tail[i] = P(score >= (low + i) / _SCALE)
    index = int(np.flatnonzero(tail <= p)[0]) if (tail <= p).any() else len(dist) - 1
    return (low + index) / _SCALE


def has_site(codes: np.ndarray, scores: np.ndarray, cutoff: float) -> np.ndarray:
    """``[n]`` bool: a window on either strand scores at least ``cutoff`` (log-odds ``scores``, bits)."""
    width = scores.shape[0]
    n_pos = codes.shape[1] - width + 1
    found = np.zeros(len(codes), bool)
    if n_pos < 1:
        return found
    for table in (scores, reverse_complement_pwm(scores)):
        lookup = np.hstack([table, np.full((width, 1), -np.inf)])  # code 4 (N, padding) never scores
        total = np.zeros((len(codes), n_pos))
        for j in range(width):
            total += lookup[j][codes[:, j: j + n_pos]]
        # Steps of 1/_SCALE bit: the grid the threshold was found on.
        found |= (np.rint(total * _SCALE) >= np.rint(cutoff * _SCALE)).any(axis=1)
    return found


def site_table(motifs: list[Motif], sequences: list[str], seed: int = 0, max_peaks: int = MAX_PEAKS,
               scores: np.ndarray | None = None) -> pd.DataFrame:
    """Peaks and background peaks with a site of each motif (the module docstring's method).

    Args:
        motifs: one per topic (``name`` = topic name).
        sequences: the peaks' sequences.
        seed: seed of the peak sample and the background.
        max_peaks: most peaks scanned (a seeded sample when there are more).
        scores: ``[n_peaks, len(motifs)]`` the peaks' topic scores, motif order, for ``site_auroc``
            (None: NaN).

    Returns:
        One row per motif: :data:`SITE_COLUMNS` (``site_auroc`` NaN also when all or none of the
        scanned peaks hold a site).
    """
    rng = np.random.default_rng([int(seed), 4242])
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (len(sequences), len(motifs)):
            raise ValueError(f"scores {scores.shape} do not fit {len(sequences)} peaks x {len(motifs)} motifs")
    if len(sequences) > max_peaks:
        pick = np.sort(rng.choice(len(sequences), max_peaks, replace=False))
        sequences = [sequences[i] for i in pick]
        scores = None if scores is None else scores[pick]
    codes = dna.encode_padded(list(sequences))
    bg_codes = markov_background(codes, rng)
    freqs = base_frequencies(codes)
    rows = []
    for k, motif in enumerate(motifs):
        odds = log_odds(motif.pwm, freqs)
        cutoff = threshold(odds, freqs)
        found = has_site(codes, odds, cutoff)
        hits, bg_hits = int(found.sum()), int(has_site(bg_codes, odds, cutoff).sum())
        n = len(codes)
        p = stats.fisher_exact([[hits, n - hits], [bg_hits, n - bg_hits]], alternative="greater")[1] if n else np.nan
        agreement = np.nan
        if scores is not None and 0 < hits < n:
            agreement = float(mann_whitney_greater(scores[found, k], scores[~found, k])[2][0])
        rows.append({"topic": motif.name, "n_peaks": n, "peaks_with_site": hits, "pct_peaks": 100.0 * hits / max(n, 1),
                     "background_with_site": bg_hits, "pct_background": 100.0 * bg_hits / max(n, 1),
                     "enrichment_p": float(p), "threshold_bits": cutoff, "site_auroc": agreement})
    return pd.DataFrame(rows, columns=SITE_COLUMNS)
