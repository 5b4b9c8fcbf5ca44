"""Scoring what a topic model recovers from a planted-motif set, and the LDA peer scored the same way.

A method under test supplies two arrays: per-peak topic scores ``[n_peaks, M]`` and per-10-mer topic
scores ``[n_kmers10, M]`` (all canonical 10-mers, or any subset with their codes). Each topic's best
10-mers become a PWM (:func:`bindvae.analysis.motifs.build_pwm`), the PWMs are compared with a motif
database that holds the planted motifs (:func:`bindvae.analysis.compare.compare_motifs`, Tomtom-style
q-values), and the planted truth says which peaks carry what. For each planted motif the table gives
the best-matching topic, its q-value (recovered at q < threshold) and the per-peak AUROC of that
topic's score for carrier vs. other peaks; for the non-TF features (repeats, GC-rich background) the
topic with the highest AUROC. Topics that no peak uses (:func:`bindvae.analysis.peaks.topic_usage` below
the analysis' ``unused`` threshold, the same rule for every method) are not matched: their motifs are
made of whatever scored highest on a topic nothing is made of, and they can match by chance.

The peers live in :mod:`benchmarks.recovery.peers`, the yardsticks in :mod:`benchmarks.recovery.yardsticks`.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from bindvae.analysis.compare import compare_motifs
from bindvae.analysis.flags import FlagRules
from bindvae.analysis.motifs import build_pwm, decode_kmers
from bindvae.analysis.peaks import topic_usage
from bindvae.data.synthetic import planted_labels
from bindvae.motif import COMPOSITE_ID, Motif

logger = logging.getLogger(__name__)

NON_TF_FEATURES = ("CA-repeat", "polyA", "GC-rich")


def topic_motifs_from_scores(kmer_scores: np.ndarray, kmer_codes: np.ndarray, k: int = 10, top_k: int = 200,
                             prefix: str = "topic") -> list[Motif]:
    """One PWM per topic from its highest-scoring k-mers (SPEC 4: top 200 10-mers, align, count).

    Args:
        kmer_scores: ``[n_kmers, M]`` score of each k-mer in each topic.
        kmer_codes: ``[n_kmers]`` integer codes of those k-mers (:mod:`bindvae.analysis.motifs`).
        k: k-mer length.
        top_k: k-mers per topic.
        prefix: motif names are ``{prefix}_{m:03d}``.

    Returns:
        ``M`` motifs, in topic order.
    """
    motifs = []
    for m in range(kmer_scores.shape[1]):
        column = kmer_scores[:, m]
        best = np.argpartition(-column, top_k - 1)[:top_k]
        best = best[np.argsort(-column[best], kind="stable")]
        motifs.append(build_pwm(decode_kmers(kmer_codes[best], k), name=f"{prefix}_{m:03d}"))
    return motifs


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    if labels.all() or not labels.any():
        return float("nan")
    return float(roc_auc_score(labels, scores))


def score_recovery(topic_motifs: list[Motif], peak_scores: np.ndarray, peak_names: list, truth: pd.DataFrame,
                   planted: dict, database: list[Motif], q_threshold: float = 0.05,
                   min_used_fraction: float = FlagRules().min_used_fraction) -> pd.DataFrame:
    """Which planted features a topic model recovered.

    Args:
        topic_motifs: ``M`` motifs, topic order (from :func:`topic_motifs_from_scores`).
        peak_scores: ``[n_peaks, M]`` per-peak topic proportions (rows sum to 1).
        peak_names: ``n_peaks`` names in the row order of ``peak_scores``.
        truth: the generator's truth table.
        planted: ``{tf_name: Motif}`` planted motifs (ids must be in ``database``).
        database: target motifs for the comparison.
        q_threshold: recovered when the best topic's q-value is below this.
        min_used_fraction: topics at >= 1 / M of fewer than this share of peaks are not matched to motifs.

    Returns:
        One row per planted feature: ``feature``, ``kind``, ``fraction`` (of peaks), ``matrix_id``,
        ``topic`` (index), ``consensus`` (of the topic motif), ``q_value``, ``recovered``, ``auroc``.
        Motifs get the best-matching used topic; non-TF features the topic with the highest AUROC.
        ``attrs["unused_topics"]`` counts the topics left out.
    """
    names = [m.name for m in database]
    missing = [m.name for m in planted.values() if m.name not in names]
    if missing:
        raise ValueError(f"planted motifs {missing} are not in the comparison database")
    table = compare_motifs(topic_motifs, database)
    index = {m.name: i for i, m in enumerate(topic_motifs)}
    used = topic_usage(peak_scores) >= min_used_fraction
    if used.any():
        table = table[table["query"].isin([m.name for m, kept in zip(topic_motifs, used) if kept])]
    rows = []
    n_peaks = len(peak_names)
    for feature, group in truth.groupby("feature", sort=False):
        labels = planted_labels(truth, peak_names, feature)
        kind = group["kind"].iloc[0]
        row = {"feature": feature, "kind": kind, "fraction": labels.sum() / n_peaks,
               "matrix_id": group["matrix_id"].iloc[0]}
        if kind in ("motif", "pair"):
            hits = table[table["target"] == row["matrix_id"]].sort_values(["q_value", "p_value"], kind="stable")
            topic = index[hits["query"].iloc[0]]
            row.update(q_value=float(hits["q_value"].iloc[0]), recovered=bool(hits["q_value"].iloc[0] < q_threshold))
        else:
            aurocs = [auroc(peak_scores[:, m], labels) for m in range(peak_scores.shape[1])]
            topic = int(np.nanargmax(aurocs))
            row.update(q_value=float("nan"), recovered=bool(aurocs[topic] >= 0.9))
        row.update(topic=topic, consensus=topic_motifs[topic].consensus,
                   auroc=auroc(peak_scores[:, topic], labels))
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs["unused_topics"] = int((~used).sum())
    order = {"motif": 0, "pair": 1, "repeat": 2, "background": 3}
    frame = frame.sort_values(["kind", "fraction"], key=lambda c: c.map(order) if c.name == "kind" else -c,
                              kind="stable").reset_index(drop=True)
    if COMPOSITE_ID in names:
        composite = table[table["target"] == COMPOSITE_ID].sort_values("q_value", kind="stable").iloc[0]
        frame.attrs["composite_q"] = float(composite["q_value"])
        frame.attrs["composite_topic"] = index[composite["query"]]
    return frame


def summarize(frame: pd.DataFrame, q_threshold: float = 0.05) -> dict:
    """Headline numbers of a :func:`score_recovery` table.

    Returns:
        ``n_motifs``, ``n_recovered``, ``rarest`` (feature), ``rarest_recovered``,
        ``min_auroc_common`` (over motifs in >= 10% of peaks), ``pair`` (``one topic`` /
        ``two topics`` / ``missed``), ``has_pair``, ``non_tf_own_topics`` (how many of repeats/GC have a topic with
        AUROC >= 0.9 that is no planted motif's best topic), ``mean_auroc_motifs``; with an
        ``auroc_vs_limit`` column (:func:`add_limit_fraction`) also ``n_at_limit`` (motifs at
        >= 0.9 x their supervised limit), ``n_with_limit`` and ``min_auroc_vs_limit``; with
        ``attrs["pair_probes"]`` (BindVAE's planted pair by the cooperative-binding route,
        :func:`bindvae.analysis.pair_route.planted_pair_route`) also ``pair_probes``.
    """
    motifs = frame[frame["kind"] == "motif"]
    rarest = motifs.sort_values("fraction", kind="stable").iloc[0]
    common = motifs[motifs["fraction"] >= 0.10 - 1e-9]
    pair = frame[frame["kind"] == "pair"]
    if not pair.empty and pair["recovered"].all():
        pair_text = "one topic" if pair["topic"].nunique() == 1 else "two topics"
    else:
        pair_text = "missed" if pair.empty or not pair["recovered"].any() else "one member"
    if frame.attrs.get("composite_q", 1.0) < q_threshold:
        pair_text += " (composite matched)"
    motif_topics = set(frame.loc[frame["kind"].isin(["motif", "pair"]) & frame["recovered"], "topic"])
    non_tf = frame[frame["kind"].isin(["repeat", "background"])]
    own = int(((non_tf["auroc"] >= 0.9) & ~non_tf["topic"].isin(motif_topics)).sum())
    return {"n_motifs": len(motifs), "n_recovered": int(motifs["recovered"].sum()), "has_pair": not pair.empty,
            "rarest": rarest["feature"], "rarest_fraction": float(rarest["fraction"]),
            "rarest_recovered": bool(rarest["recovered"]),
            "min_auroc_common": float(common["auroc"].min()) if len(common) else float("nan"),
            "pair": pair_text, "non_tf_own_topics": f"{own}/{len(non_tf)}",
            "mean_auroc_motifs": float(motifs["auroc"].mean()), **_limit_summary(motifs),
            "unused_topics": int(frame.attrs.get("unused_topics", 0)),
            **({"pair_probes": frame.attrs["pair_probes"]} if frame.attrs.get("pair_probes") else {})}


def _limit_summary(motifs: pd.DataFrame) -> dict:
    if "auroc_vs_limit" not in motifs:
        return {}
    fractions = motifs["auroc_vs_limit"]
    return {"n_at_limit": int((fractions >= 0.9).sum()), "n_with_limit": int(fractions.notna().sum()),
            "min_auroc_vs_limit": float(fractions.min())}


def add_limit_fraction(frame: pd.DataFrame, limits: dict) -> pd.DataFrame:
    """A :func:`score_recovery` table with ``limit_auroc`` and ``auroc_vs_limit`` (AUROC / limit) added.

    Args:
        frame: per-feature table with ``feature`` and ``auroc``.
        limits: ``{feature: supervised-limit AUROC}`` (:func:`supervised_limits`); missing -> NaN.

    Returns:
        A copy with the two columns (attrs kept).
    """
    out = frame.copy()
    out["limit_auroc"] = out["feature"].map(lambda f: limits.get(f, float("nan"))).astype(float)
    out["auroc_vs_limit"] = out["auroc"] / out["limit_auroc"]
    return out
