"""Choosing the k-mers a model sees: those whose counts vary across peaks more than composition explains.

A binding site in a 200 bp peak changes only its own windows' counts, a few percent of the peak's
~3,000 gapped 8-mer counts; the rest follow the peak's base composition. A topic model over all
112,800 k-mers spends its topics on that composition. :func:`dispersion_scores` ranks each k-mer by
how far its counts depart from what the peaks' GC content alone predicts, and :func:`select_kmers`
keeps the most dispersed ones (``model.kmer_filter=dispersion``, ours, not the paper's).

The null model: in peak i with GC fraction g_i (estimated from its own counts) and N_i counts, a k-mer
with s strong (G/C) and w weak (A/T) letters is expected mu_iv = N_i * m_v * (g_i / 2)^s *
((1 - g_i) / 2)^w / Z(g_i) times, m_v = 2 for a k-mer that differs from its reverse complement (both
spellings count) and 1 for a palindrome, Z normalising over the vocabulary. The score is the Pearson
dispersion sum_i (x_iv - mu_iv)^2 / mu_iv / n, about 1 for a k-mer that only follows composition and
large for k-mers that come together in some peaks (motif sites, repeats). Peaks of unusual GC content
are explained by their own g_i, so GC-rich k-mers are not chosen merely for being GC-rich.
Computing it costs one pass over the nonzeros: sum_i x^2 / mu over the nonzeros, and sum_i mu_iv in
closed form per letter-count class (at most 45 classes).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from bindvae.features.kmers import Vocabulary

METHODS = ("none", "dispersion")


def letter_classes(vocabulary: Vocabulary) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per k-mer: strong letters s, weak letters w, and 1 (palindrome) or 2 (two spellings)."""
    kmers = vocabulary.kmers
    strong = np.fromiter((k.count("C") + k.count("G") for k in kmers), np.int64, len(kmers))
    weak = np.fromiter((k.count("A") + k.count("T") for k in kmers), np.int64, len(kmers))
    table = str.maketrans("ACGTN", "TGCAN")
    spellings = np.fromiter((1.0 if k[::-1].translate(table) == k else 2.0 for k in kmers), np.float64, len(kmers))
    return strong, weak, spellings


def dispersion_scores(X: sp.spmatrix, vocabulary: Vocabulary, gc_clip: float = 0.05) -> np.ndarray:
    """Pearson dispersion of each k-mer's counts against a GC-aware Poisson null (module docstring).

    Args:
        X: ``[n, len(vocabulary)]`` counts.
        vocabulary: the columns' k-mers.
        gc_clip: each peak's GC fraction is clipped to ``[gc_clip, 1 - gc_clip]``.

    Returns:
        ``[len(vocabulary)]`` float64 scores; 0 for a matrix without counts.
    """
    X = sp.csr_matrix(X, dtype=np.float64)
    n = X.shape[0]
    if n == 0 or X.nnz == 0:
        return np.zeros(X.shape[1])
    strong, weak, spellings = letter_classes(vocabulary)
    totals = np.asarray(X.sum(axis=1)).ravel()
    letters = X @ np.stack([strong, strong + weak], axis=1).astype(np.float64)  # [n, 2]
    gc = np.clip(letters[:, 0] / np.maximum(letters[:, 1], 1.0), gc_clip, 1.0 - gc_clip)
    classes, inverse = np.unique(strong * 16 + weak, return_inverse=True)
    s, w = classes // 16, classes % 16
    per_letter = (gc[:, None] / 2) ** s[None, :] * ((1 - gc[:, None]) / 2) ** w[None, :]  # [n, n_classes]
    weight = np.zeros(classes.size)
    np.add.at(weight, inverse, spellings)
    unit = (totals / (per_letter @ weight))[:, None] * per_letter  # expected count per spelling, [n, n_classes]
    expected_total = spellings * unit.sum(axis=0)[inverse]
    coo = X.tocoo()
    mu = spellings[coo.col] * unit[coo.row, inverse[coo.col]]
    squares = np.bincount(coo.col, weights=coo.data**2 / mu, minlength=X.shape[1])
    column_totals = np.asarray(X.sum(axis=0)).ravel()
    return (squares - 2 * column_totals + expected_total) / n


def select_kmers(X: sp.spmatrix, vocabulary: Vocabulary, size: int, method: str = "dispersion") -> np.ndarray:
    """The ``size`` columns a model should see.

    Args:
        X: ``[n, len(vocabulary)]`` training counts.
        vocabulary: the columns' k-mers.
        size: columns to keep (all when ``size >= len(vocabulary)``).
        method: ``dispersion`` (:func:`dispersion_scores`) or ``none`` (every column).

    Returns:
        Ascending column indices; ties broken towards the lower column.
    """
    if method not in METHODS:
        raise ValueError(f"unknown k-mer selection {method!r}; one of {METHODS}")
    if method == "none" or size >= X.shape[1]:
        return np.arange(X.shape[1])
    return top_columns(dispersion_scores(X, vocabulary), size)


def top_columns(scores: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` highest-scoring columns, ascending; ties broken towards the lower column."""
    order = np.lexsort((np.arange(scores.size), -scores))
    return np.sort(order[:size])
