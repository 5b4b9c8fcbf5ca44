"""Per-peak TF calls and per-topic accessibility (the paper's Fig. 3d)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bindvae.analysis.topics import topic_name


def topic_usage(proportions: np.ndarray) -> np.ndarray:
    """Each topic's share of peaks where it holds at least an even share (1 / M) of the peak: ``[M]``.

    A topic that no peak uses (its encoder concentration stays at the floor everywhere) still has
    decoder logits and so a motif, made of whatever its 10-mers scored highest on; that motif can
    match a database motif by chance. The ``unused`` flag (:mod:`bindvae.analysis.flags`) reads this
    share.

    Args:
        proportions: ``[n_peaks, M]`` topic proportions (rows sum to 1: ``latent_scores(kind="mean")``).
    """
    proportions = np.asarray(proportions)
    if proportions.shape[0] == 0:
        return np.zeros(proportions.shape[1])
    return (proportions >= 1.0 / proportions.shape[1]).mean(axis=0)


# The per-peak TF calls read each topic's density (``latent_scores(kind="density")``: its expected k-mers
# as a fraction of all the peak's gapped 8-mers) and call where it reaches DEFAULT_CALL_RATIO times its
# mean over the training peaks. Measured in BENCHMARKS.md, "Each topic's density in a peak": on 28 seeds
# of the recovery preset they are right more often and find more carriers, at as many calls per peak,
# than proportions at 1.5 (before).
CALL_SCORES = ("density", "shares", "counts", "mean", "concentration")
DEFAULT_CALL_SCORE = "density"
DEFAULT_CALL_RATIO = 2.0


def relative_scores(scores: np.ndarray, baseline: np.ndarray | None = None) -> np.ndarray:
    """Each topic's score in each peak over its usual score: ``[n_peaks, M]`` (ours).

    A peak where a topic holds twice its usual share scores 2. The per-peak TF calls read this rather
    than the score itself: under a strong prior (``train=budget``'s fixed alpha of 10) every topic
    holds about an even share (1 / M) of every peak, so "more than an even share" says little, while a
    binding signature holds several times its usual share of the peaks that carry its site
    (``BENCHMARKS.md``, "Per-peak TF calls"). A topic whose usual score is 0 scores 0.

    Args:
        scores: ``[n_peaks, M]`` per-peak scores.
        baseline: ``[M]`` each topic's usual score (the analysis: its mean over the training peaks);
            None: its mean over these peaks.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if baseline is None:
        baseline = scores.mean(axis=0) if scores.shape[0] else np.ones(scores.shape[1])
    baseline = np.broadcast_to(np.asarray(baseline, dtype=np.float64).reshape(1, -1), scores.shape)
    return np.divide(scores, baseline, out=np.zeros_like(scores), where=baseline > 0)


def tf_scores(scores: np.ndarray, strengths: dict[str, dict[str, float]], topic_names: list[str] | None = None,
              min_topic_score: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each assigned TF's score per peak: topic score times assignment strength, best topic.

    Args:
        scores: ``[n_peaks, M]`` latent scores.
        strengths: topic name -> {assigned TF: strength} (see ``naming.assignment_strengths``: the
            effect size). TFs without an assigned topic are absent and so never called.
        topic_names: ``M`` names (default ``topic_000`` ...).
        min_topic_score: a topic scoring below this in a peak gives no TF there (its product is NaN).

    Returns:
        ``(values, topics)``: ``[n_peaks, n_tfs]`` DataFrames of the best product (NaN when no topic
        of the TF reaches ``min_topic_score``) and of the topic that gave it (columns: TFs by name).
    """
    names = topic_names or [topic_name(m) for m in range(scores.shape[1])]
    column = {name: j for j, name in enumerate(names)}
    per_tf: dict[str, list[tuple[int, float]]] = {}
    for topic, tfs in strengths.items():
        for tf, strength in tfs.items():
            per_tf.setdefault(tf, []).append((column[topic], float(strength)))
    index = pd.RangeIndex(scores.shape[0], name="peak")
    values, topics = {}, {}
    for tf in sorted(per_tf):
        cols = np.array([c for c, _ in per_tf[tf]])
        topic_scores = np.asarray(scores, dtype=np.float64)[:, cols]
        product = topic_scores * np.array([s for _, s in per_tf[tf]])
        weighted = np.where(topic_scores >= min_topic_score, product, -np.inf)
        best = np.argmax(weighted, axis=1)
        top = weighted[np.arange(len(best)), best]
        values[tf] = np.where(np.isfinite(top), top, np.nan)
        topics[tf] = np.asarray(names, dtype=object)[cols[best]]
    return pd.DataFrame(values, index=index), pd.DataFrame(topics, index=index)


def top_tfs_per_peak(scores: np.ndarray, strengths: dict[str, dict[str, float]], peak_ids: list[str] | None = None,
                     n_top: int = 3, topic_names: list[str] | None = None, per_topic: int | None = 1,
                     min_topic_score: float = 0.0) -> pd.DataFrame:
    """The ``n_top`` best TFs of every peak, through the assigned topics only.

    A TF's score in a peak is the peak's topic score times the assignment's strength, maximised over
    the TF's assigned topics. Ties are broken by the larger strength, then by the TF's name, and
    flagged in ``tied``. With ``per_topic=1`` (the default) a topic speaks through its strongest TF
    only, so the calls name different binding signals: a peak with an AP-1 and a CTCF site gets both
    rather than three AP-1 alternatives (which stay in ``tf_mapping.tsv``).

    Args:
        scores: ``[n_peaks, M]`` latent scores.
        strengths: topic name -> {assigned TF: strength}.
        peak_ids: ``n_peaks`` identifiers (default ``0 .. n-1``).
        n_top: TFs per peak.
        topic_names: ``M`` names.
        per_topic: strongest TFs kept per topic (ties: name); None keeps every assigned TF.
        min_topic_score: a topic scoring below this in a peak calls no TF there (the pipeline uses
            ``1 / M``, an even share: a topic must hold more than that of the peak to name it).

    Returns:
        One row per peak: ``peak``, then ``tf_i, topic_i, score_i`` for i = 1 .. n_top (empty TF and
        topic, NaN score where fewer TFs qualify), and ``tied``: whether two of the reported TFs,
        or the last reported and the next one, had equal scores.
    """
    if per_topic is not None:
        strengths = {topic: dict(sorted(tfs.items(), key=lambda kv: (-kv[1], kv[0]))[:per_topic])
                     for topic, tfs in strengths.items()}
    values, topics = tf_scores(scores, strengths, topic_names, min_topic_score)
    ids = peak_ids if peak_ids is not None else [str(i) for i in range(scores.shape[0])]
    out = pd.DataFrame({"peak": ids})
    tfs = np.asarray(values.columns, dtype=object)
    v = values.to_numpy()
    strength = np.array([max(s.get(tf, 0.0) for s in strengths.values()) for tf in tfs])
    tie_rank = np.argsort(np.lexsort((np.arange(len(tfs)), -strength)))  # larger strength, then name, first
    # lexsort sorts by its last key first: score descending (NaN last), then the tie rank.
    order = np.lexsort((np.broadcast_to(tie_rank, v.shape), -v), axis=-1)
    ranked = np.take_along_axis(v, order, axis=1)
    rows = np.arange(len(ids))
    for rank in range(n_top):
        if rank < v.shape[1]:
            called = ~np.isnan(ranked[:, rank])
            out[f"tf_{rank + 1}"] = np.where(called, tfs[order[:, rank]], "")
            out[f"topic_{rank + 1}"] = np.where(called, topics.to_numpy()[rows, order[:, rank]], "")
            out[f"score_{rank + 1}"] = ranked[:, rank]
        else:
            out[f"tf_{rank + 1}"], out[f"topic_{rank + 1}"], out[f"score_{rank + 1}"] = "", "", np.nan
    shown = ranked[:, : min(n_top + 1, ranked.shape[1])]
    out["tied"] = (np.diff(shown, axis=1) == 0).any(axis=1) if shown.shape[1] > 1 else False
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
