"""Rank tests and multiple-testing correction used to name topics (vectorised over columns)."""

from __future__ import annotations

import numpy as np
from scipy import special, stats


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), any shape, NaN-free input.

    Args:
        p_values: p-values in [0, 1], any shape.

    Returns:
        q-values of the same shape: ``min_{j >= i} p_(j) * n / j`` on the sorted values, capped at 1.
    """
    p = np.asarray(p_values, dtype=np.float64)
    flat = p.ravel()
    n = flat.size
    if n == 0:
        return p.copy()
    order = np.argsort(flat, kind="stable")
    scaled = flat[order] * n / np.arange(1, n + 1)
    q_sorted = np.minimum.accumulate(scaled[::-1])[::-1]
    q = np.empty(n)
    q[order] = np.minimum(q_sorted, 1.0)
    return q.reshape(p.shape)


def mann_whitney_greater(positives: np.ndarray, negatives: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-sided Mann-Whitney U test, per column: do ``positives`` score higher than ``negatives``?

    Uses the normal approximation with tie correction and continuity correction, exactly as
    ``scipy.stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic")``.

    Args:
        positives: ``[n1, n_columns]`` scores of the group tested for being higher.
        negatives: ``[n2, n_columns]`` scores of the reference group.

    Returns:
        ``(u, p, effect)``, each ``[n_columns]``: U statistic of ``positives``, one-sided p-value, and
        the common-language effect size ``U / (n1 n2)`` = P(positive > negative) + ties / 2.
    """
    x = np.asarray(positives, dtype=np.float64)
    y = np.asarray(negatives, dtype=np.float64)
    if x.ndim == 1:
        x, y = x[:, None], y[:, None]
    n1, n2 = x.shape[0], y.shape[0]
    if n1 == 0 or n2 == 0:
        raise ValueError("mann_whitney_greater needs at least one value in each group")
    pooled = np.concatenate([x, y], axis=0)
    ranks = stats.rankdata(pooled, axis=0)
    u = ranks[:n1].sum(axis=0) - n1 * (n1 + 1) / 2.0
    n = n1 + n2
    tie_term = _tie_term(pooled)
    sigma = np.sqrt(n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))))
    mean = n1 * n2 / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (u - mean - 0.5) / sigma
    p = np.where(sigma > 0, special.ndtr(-z), 1.0)
    return u, np.clip(p, 0.0, 1.0), u / (n1 * n2)


def _tie_term(pooled: np.ndarray) -> np.ndarray:
    """Sum over tie groups of ``t^3 - t``, per column."""
    ordered = np.sort(pooled, axis=0)
    out = np.zeros(pooled.shape[1])
    for col in range(pooled.shape[1]):
        _, counts = np.unique(ordered[:, col], return_counts=True)
        out[col] = np.sum(counts.astype(np.float64) ** 3 - counts)
    return out


def mann_whitney_one_vs_rest(scores: np.ndarray, labels) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """:func:`mann_whitney_greater` of each label's rows against all other rows, for every column.

    Ranks (and the tie correction) depend only on the pooled scores, so they are computed once per
    column and shared by all labels; the result equals calling :func:`mann_whitney_greater` per label.

    Args:
        scores: ``[n, n_columns]``.
        labels: ``n`` group names (at least two groups).

    Returns:
        ``(groups, u, p, effect)``: the groups in first-seen order, and ``[n_groups, n_columns]`` arrays.
    """
    x = np.asarray(scores, dtype=np.float64)
    labels = np.asarray([str(v) for v in labels])
    groups = list(dict.fromkeys(labels.tolist()))
    n = x.shape[0]
    ranks = stats.rankdata(x, axis=0)
    tie_term = _tie_term(x)
    u = np.empty((len(groups), x.shape[1]))
    p = np.empty_like(u)
    effect = np.empty_like(u)
    for g, group in enumerate(groups):
        own = labels == group
        n1 = int(own.sum())
        n2 = n - n1
        u[g] = ranks[own].sum(axis=0) - n1 * (n1 + 1) / 2.0
        sigma = np.sqrt(n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))))
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (u[g] - n1 * n2 / 2.0 - 0.5) / sigma
        p[g] = np.clip(np.where(sigma > 0, special.ndtr(-z), 1.0), 0.0, 1.0)
        effect[g] = u[g] / (n1 * n2)
    return groups, u, p, effect
