"""Tomtom-style motif comparison: column similarity over all offsets and both strands.

Method (after Gupta et al. 2007, Genome Biology 8:R24, "Tomtom"):

* Column score: ``s(q, t) = -||q - t||_2`` (Tomtom's Euclidean distance score), discretised onto an
  integer grid of ``bins`` steps so that sums of column scores have an exact discrete distribution.
* Null: a target's columns are drawn independently from the pool of all database columns (both
  strands). For a query column, the null distribution of its score is the empirical distribution
  of its scores against that pool; an alignment's score over a contiguous run of query columns is a
  sum of independent column scores, whose distribution is the convolution of the column
  distributions. This gives an exact (under the null) p-value for every offset.
* Per target, the best offset (smallest p-value, over both strands) is kept and corrected for the
  number of offsets tried: ``p = 1 - (1 - p_min) ** n_offsets``. The correction is conservative
  because overlapping offsets are positively correlated.
* q-values: Benjamini-Hochberg over the targets, per query; E-value = p * number of targets.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from bindvae.analysis.stats import benjamini_hochberg
from bindvae.motif import Motif, reverse_complement_pwm

_MAX_DISTANCE = np.sqrt(2.0)
# Smallest p-value reported: below this, float64 tails are dominated by rounding.
_P_FLOOR = 1e-300


@dataclasses.dataclass(frozen=True)
class _Database:
    names: list[str]
    alt_names: list[str]
    pwms: np.ndarray  # [n_targets, max_width, 4] zero padded
    widths: np.ndarray  # [n_targets]
    pool: np.ndarray  # [n_columns, 4] all columns, both strands


def _prepare(targets: list[Motif]) -> _Database:
    widths = np.array([m.width for m in targets])
    pwms = np.zeros((len(targets), int(widths.max()), 4))
    for k, motif in enumerate(targets):
        pwms[k, : motif.width] = motif.pwm
    pool = np.concatenate([m.pwm for m in targets] + [reverse_complement_pwm(m.pwm) for m in targets])
    return _Database([m.name for m in targets], [m.alt_name for m in targets], pwms, widths, pool)


def _discretise(distance: np.ndarray, bins: int) -> np.ndarray:
    """Maps distances in [0, sqrt 2] to integer scores 0 (worst) .. bins (identical)."""
    return np.rint((1.0 - distance / _MAX_DISTANCE) * bins).astype(np.int64)


def _column_scores(query: np.ndarray, columns: np.ndarray, bins: int) -> np.ndarray:
    """Integer scores ``[..., width_q, n_columns]`` of each query column against each column."""
    diff = query[:, None, :] - columns[None, :, :]
    return _discretise(np.sqrt(np.sum(diff * diff, axis=-1)), bins)


def _survival_tables(query: np.ndarray, pool: np.ndarray, bins: int) -> np.ndarray:
    """Null tail probabilities for every contiguous run of query columns.

    Returns:
        ``[width, width + 1, width * bins + 2]``: entry ``[a, b, s]`` is P(score of columns a..b-1 >= s).
    """
    width = query.shape[0]
    scores = _column_scores(query, pool, bins)  # [width, n_pool]
    column_pmf = np.stack([np.bincount(row, minlength=bins + 1) for row in scores]) / scores.shape[1]
    n_scores = width * bins + 2
    table = np.zeros((width, width + 1, n_scores))
    for a in range(width):
        pmf = np.array([1.0])
        for b in range(a + 1, width + 1):
            pmf = np.convolve(pmf, column_pmf[b - 1])
            tail = np.cumsum(pmf[::-1])[::-1]
            table[a, b, : tail.size] = np.minimum(tail, 1.0)
    return table


def _offset_pvalues(query: np.ndarray, db: _Database, bins: int, min_overlap: int):
    """Best per-target offset p-values (uncorrected), their offsets, strands and number tried."""
    width, n_targets, max_w = query.shape[0], len(db.names), db.pwms.shape[1]
    table = _survival_tables(query, db.pool, bins)
    best_p = np.ones(n_targets)
    best_offset = np.zeros(n_targets, dtype=np.int64)
    best_strand = np.array(["+"] * n_targets, dtype=object)
    n_tried = np.zeros(n_targets, dtype=np.int64)
    rows = np.arange(width)
    for strand in "+-":
        pwms = db.pwms if strand == "+" else _reverse_padded(db.pwms, db.widths)
        diff = query[None, :, None, :] - pwms[:, None, :, :]
        scores = _discretise(np.sqrt(np.sum(diff * diff, axis=-1)), bins)  # [n_t, width, max_w]
        # offset o aligns query column i with target column i - o.
        for offset in range(-(max_w - 1), width):
            cols = rows - offset
            valid = (cols[None, :] >= 0) & (cols[None, :] < db.widths[:, None])  # [n_t, width]
            overlap = valid.sum(axis=1)
            usable = overlap >= np.minimum(min_overlap, np.minimum(width, db.widths))
            usable &= overlap > 0
            if not usable.any():
                continue
            picked = np.take_along_axis(scores, np.clip(cols, 0, max_w - 1)[None, :, None].repeat(n_targets, 0), 2)
            total = np.where(valid, picked[..., 0], 0).sum(axis=1)
            start = np.maximum(offset, 0)
            end = start + overlap
            p = table[start, np.minimum(end, width), np.minimum(total, table.shape[2] - 1)]
            p = np.where(usable, p, 1.0)
            n_tried += usable
            better = usable & (p < best_p)
            best_p = np.where(better, p, best_p)
            best_offset = np.where(better, offset, best_offset)
            best_strand = np.where(better, strand, best_strand)
    return best_p, best_offset, best_strand, n_tried


def _reverse_padded(pwms: np.ndarray, widths: np.ndarray) -> np.ndarray:
    out = np.zeros_like(pwms)
    for k, w in enumerate(widths):
        out[k, :w] = reverse_complement_pwm(pwms[k, :w])
    return out


def compare_motifs(
    queries: list[Motif],
    targets: list[Motif],
    bins: int = 100,
    min_overlap: int = 5,
) -> pd.DataFrame:
    """Compare every query motif with every target motif, Tomtom-style (see module docstring).

    Args:
        queries: motifs to name (e.g. one per topic).
        targets: the database, e.g. JASPAR or a MEME file.
        bins: integer steps of a column score (resolution of the null distribution).
        min_overlap: fewest aligned columns considered (capped at the shorter motif's width).

    Returns:
        One row per (query, target): ``query``, ``target``, ``target_name`` (alt name), ``offset``
        (query column aligned to target column 0), ``strand`` (``-``: target reverse-complemented),
        ``overlap_p`` (best offset's p-value), ``p_value`` (corrected for offsets), ``e_value``,
        ``q_value`` (BH per query) and ``rank`` (1 = best per query). Sorted by query then rank.
    """
    if not targets:
        raise ValueError("compare_motifs needs at least one target motif")
    db = _prepare(targets)
    frames = []
    for query in queries:
        best_p, offset, strand, n_tried = _offset_pvalues(query.pwm, db, bins, min_overlap)
        best_p = np.maximum(best_p, _P_FLOOR)
        corrected = -np.expm1(n_tried * np.log1p(-np.minimum(best_p, 1.0 - 1e-16)))
        corrected = np.clip(np.maximum(corrected, _P_FLOOR), 0.0, 1.0)
        frame = pd.DataFrame(
            {
                "query": query.name,
                "target": db.names,
                "target_name": db.alt_names,
                "offset": offset,
                "strand": strand.astype(str),
                "overlap_p": best_p,
                "p_value": corrected,
                "e_value": corrected * len(targets),
                "q_value": benjamini_hochberg(corrected),
            }
        )
        frame = frame.sort_values(["p_value", "overlap_p"], kind="stable").reset_index(drop=True)
        frame["rank"] = np.arange(1, len(frame) + 1)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def best_matches(table: pd.DataFrame, n_best: int = 3, max_q: float = 1.0) -> pd.DataFrame:
    """The top ``n_best`` rows per query with ``q_value <= max_q``.

    Args:
        table: output of :func:`compare_motifs`.
        n_best: rows kept per query.
        max_q: q-value threshold.

    Returns:
        A subset of ``table`` in the same order.
    """
    kept = table[(table["rank"] <= n_best) & (table["q_value"] <= max_q)]
    return kept.reset_index(drop=True)
