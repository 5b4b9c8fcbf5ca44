"""The yardsticks that put each AUROC in context.

The oracle scans every peak with the planted PWM itself (best log-odds over positions and strands), and
the supervised limit is a cross-validated logistic regression on the k-mer presence matrix the models
see, told which peaks carry the feature.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import scipy.sparse as sp

from benchmarks.recovery.metrics import auroc
from bindvae import dna
from bindvae.data.synthetic import planted_labels

logger = logging.getLogger(__name__)


def base_background(codes: np.ndarray, kind: str = "corpus") -> np.ndarray:
    """Background base probabilities for log-odds scans.

    Args:
        codes: ``[n, L]`` base codes (:func:`bindvae.dna.encode_padded`).
        kind: ``corpus`` (the set's own base composition, averaged over both strands so that a
            motif and its reverse complement score alike) or ``uniform`` (0.25 each).

    Returns:
        ``[4]`` probabilities in A, C, G, T order.

    Raises:
        ValueError: unknown ``kind``.
    """
    if kind == "uniform":
        return np.full(4, 0.25)
    if kind != "corpus":
        raise ValueError(f"unknown background {kind!r}; corpus or uniform")
    counts = np.bincount(codes.ravel(), minlength=5)[:4].astype(np.float64) + 1.0
    counts = counts + counts[::-1]  # A<->T, C<->G
    return counts / counts.sum()


def max_log_odds(codes: np.ndarray, pwm: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Best log-odds site score of each sequence, over all positions and both strands.

    Args:
        codes: ``[n, L]`` base codes (:func:`bindvae.dna.encode_padded`); windows holding N never score well.
        pwm: ``[w, 4]`` probabilities (A, C, G, T).
        background: ``[4]`` background probabilities.

    Returns:
        ``[n]`` float64 maxima (``-inf`` for sequences shorter than ``w``).
    """
    width, length = pwm.shape[0], codes.shape[1]
    log_odds = np.log(np.maximum(pwm, 1e-4)) - np.log(background)
    log_odds = np.concatenate([log_odds, np.full((width, 1), -1e3)], axis=1)  # [w, 5] with N
    best = np.full(codes.shape[0], -np.inf)
    if length < width:
        return best
    n_windows = length - width + 1
    for matrix in (log_odds, log_odds[::-1][:, dna.COMPLEMENT]):
        total = np.zeros((codes.shape[0], n_windows))
        for j in range(width):
            total += matrix[j][codes[:, j:j + n_windows]]
        best = np.maximum(best, total.max(axis=1))
    return best


def oracle_aurocs(dataset, background: str = "corpus") -> dict:
    """AUROC of a scan with each planted PWM (the best a motif scanner that knows the motif can do).

    Args:
        dataset: a :class:`bindvae.data.synthetic.SyntheticSet` (``motifs`` maps feature names to PWMs).
        background: :func:`base_background` kind.

    Returns:
        ``{feature: AUROC}`` for each planted motif or pair member (features without a PWM are left out).
    """
    codes = dna.encode_padded(dataset.sequences)
    base = base_background(codes, background)
    result = {}
    for feature, motif in dataset.motifs.items():
        labels = planted_labels(dataset.truth, dataset.names, feature)
        result[feature] = auroc(max_log_odds(codes, motif.pwm, base), labels)
    return result


def binarize(counts: sp.csr_matrix) -> sp.csr_matrix:
    """Presence (1.0) of each k-mer: ``[n, n_kmers]`` float32 CSR with the same pattern as ``counts``."""
    binary = sp.csr_matrix(counts, dtype=np.float32, copy=True)
    binary.data[:] = 1.0
    return binary


def supervised_limit_scores(binary: sp.csr_matrix, labels: np.ndarray, c: float = 0.05, folds: int = 3,
                            seed: int = 0) -> np.ndarray:
    """Cross-validated decision function of an L2 logistic regression on k-mer presence.

    The classifier sees the labels, so its AUROC bounds what an unsupervised topic can reach on
    the same features (up to the regularisation and the folds' training-set size).

    Args:
        binary: ``[n, n_kmers]`` presence matrix (:func:`binarize`).
        labels: ``[n]`` bool, carrier peaks.
        c: inverse L2 strength (scikit-learn's ``C``).
        folds: stratified folds (shuffled with ``seed``).
        seed: fold assignment seed.

    Returns:
        ``[n]`` out-of-fold decision values; all NaN when a class has fewer than ``folds`` peaks.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    labels = np.asarray(labels, dtype=bool)
    if min(labels.sum(), (~labels).sum()) < folds:
        return np.full(labels.shape, np.nan)
    model = LogisticRegression(C=c, max_iter=1000)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(model, binary, labels, cv=cv, method="decision_function")


def supervised_limits(counts: sp.csr_matrix, truth: pd.DataFrame, names: list, c: float = 0.05, folds: int = 3,
                      seed: int = 0) -> dict:
    """:func:`supervised_limit_scores` AUROC for every planted feature of a truth table.

    Args:
        counts: ``[n_peaks, n_kmers]`` counts in the row order of ``names``.
        truth: the generator's truth table.
        names: ``n_peaks`` peak names.
        c, folds, seed: as :func:`supervised_limit_scores`.

    Returns:
        ``{feature: AUROC}``.
    """
    binary = binarize(counts)
    result = {}
    for feature in truth["feature"].unique():
        labels = planted_labels(truth, names, feature)
        scores = supervised_limit_scores(binary, labels, c, folds, seed)
        result[feature] = float("nan") if np.isnan(scores).any() else auroc(scores, labels)
        logger.info("supervised limit %s: AUROC %.3f", feature, result[feature])
    return result


# ---------------------------------------------------------------------------------------------------------------------
# The second peer: collapsed Gibbs LDA (tomotopy), each k-mer count one token.
