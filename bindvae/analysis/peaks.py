"""Per-peak TF calls and per-topic accessibility (the paper's Fig. 3d)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bindvae.analysis.topics import topic_name


def tf_scores(scores: np.ndarray, mapping: dict[str, list[str]], topic_names: list[str] | None = None) -> pd.DataFrame:
    """Each TF's score per peak: the highest score among the topics it is assigned to.

    Args:
        scores: ``[n_peaks, M]`` latent scores.
        mapping: topic name -> assigned TFs (see ``naming.assigned_tfs``).
        topic_names: ``M`` names (default ``topic_000`` ...).

    Returns:
        ``[n_peaks, n_tfs]`` DataFrame (columns: TFs in first-assignment order).
    """
    names = topic_names or [topic_name(m) for m in range(scores.shape[1])]
    column = {name: j for j, name in enumerate(names)}
    topics_of: dict[str, list[int]] = {}
    for topic, tfs in mapping.items():
        for tf in tfs:
            topics_of.setdefault(tf, []).append(column[topic])
    data = {tf: scores[:, cols].max(axis=1) for tf, cols in topics_of.items()}
    return pd.DataFrame(data, index=pd.RangeIndex(scores.shape[0], name="peak"))


def top_tfs_per_peak(scores: np.ndarray, mapping: dict[str, list[str]], peak_ids: list[str] | None = None,
                     n_top: int = 3, topic_names: list[str] | None = None) -> pd.DataFrame:
    """The ``n_top`` best TFs of every peak, through the topic -> TF mapping.

    Args:
        scores: ``[n_peaks, M]`` latent scores.
        mapping: topic name -> assigned TFs.
        peak_ids: ``n_peaks`` identifiers (default ``0 .. n-1``).
        n_top: TFs per peak.
        topic_names: ``M`` names.

    Returns:
        One row per peak: ``peak``, then ``tf_1, score_1, ... tf_n, score_n`` (empty TF and NaN score
        where fewer TFs are mapped).
    """
    per_tf = tf_scores(scores, mapping, topic_names)
    ids = peak_ids if peak_ids is not None else [str(i) for i in range(scores.shape[0])]
    out = pd.DataFrame({"peak": ids})
    values = per_tf.to_numpy()
    tfs = np.asarray(per_tf.columns, dtype=object)
    order = np.argsort(-values, axis=1, kind="stable") if values.size else np.zeros((len(ids), 0), int)
    for rank in range(n_top):
        if rank < values.shape[1]:
            out[f"tf_{rank + 1}"] = tfs[order[:, rank]]
            out[f"score_{rank + 1}"] = np.take_along_axis(values, order[:, rank : rank + 1], axis=1)[:, 0]
        else:
            out[f"tf_{rank + 1}"] = ""
            out[f"score_{rank + 1}"] = np.nan
    return out


def accessibility(scores: np.ndarray, mapping: dict[str, list[str]] | None = None,
                  topic_names: list[str] | None = None) -> pd.DataFrame:
    """Accessibility score per topic: the sum of its scores over all peaks.

    Args:
        scores: ``[n_peaks, M]`` latent scores.
        mapping: topic name -> assigned TFs, used to label topics (optional).
        topic_names: ``M`` names.

    Returns:
        One row per topic: ``topic``, ``tfs`` (comma-separated, may be empty), ``accessibility``,
        ``mean_score``.
    """
    names = topic_names or [topic_name(m) for m in range(scores.shape[1])]
    mapping = mapping or {}
    return pd.DataFrame({
        "topic": names,
        "tfs": [",".join(mapping.get(name, [])) for name in names],
        "accessibility": scores.sum(axis=0).astype(np.float64),
        "mean_score": scores.mean(axis=0).astype(np.float64) if len(scores) else np.nan,
    })


def compare_accessibility(first: pd.DataFrame, second: pd.DataFrame, labels: tuple[str, str]) -> pd.DataFrame:
    """Accessibility of the TFs mapped in either of two runs (cell types), one row per TF.

    A TF on several topics gets the sum over them; relative scores divide by each run's total so runs
    with different peak counts compare.

    Args:
        first, second: outputs of :func:`accessibility` with TF labels.
        labels: names of the two runs.

    Returns:
        Columns ``tf``, ``<label>`` (relative accessibility, 0 when unmapped) for both runs, sorted by
        the first run's value.
    """
    merged = pd.concat([accessibility_per_tf(first).rename(labels[0]),
                        accessibility_per_tf(second).rename(labels[1])], axis=1).fillna(0.0)
    merged = merged.sort_values(labels[0], kind="stable")
    return merged.rename_axis("tf").reset_index()


def accessibility_per_tf(table: pd.DataFrame) -> pd.Series:
    """Relative accessibility per mapped TF: its topics' summed accessibility over the run's total.

    Args:
        table: output of :func:`accessibility` with TF labels.

    Returns:
        Series indexed by TF (empty when no topic is mapped).
    """
    rows = [(tf, acc) for tfs, acc in zip(table["tfs"], table["accessibility"]) for tf in str(tfs).split(",") if tf]
    series = pd.DataFrame(rows, columns=["tf", "acc"]).groupby("tf")["acc"].sum()
    return series / max(float(table["accessibility"].sum()), 1e-12)
