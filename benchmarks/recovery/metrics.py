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
from bindvae.analysis.motifs import build_pwm, decode_kmers, split_motifs
from bindvae.analysis.peaks import topic_usage
from bindvae.analysis.signatures import DEFAULT_APART_Q, DEFAULT_PIECE_Q, signature_partners, signature_scores
from bindvae.data.synthetic import planted_labels
from bindvae.motif import COMPOSITE_ID, Motif

logger = logging.getLogger(__name__)

NON_TF_FEATURES = ("CA-repeat", "polyA", "GC-rich")


def topic_motifs_from_scores(kmer_scores: np.ndarray, kmer_codes: np.ndarray, k: int = 10, top_k: int = 200,
                             prefix: str = "topic", split: bool = False) -> list[list[Motif]]:
    """Each topic's PWM from its highest-scoring k-mers (SPEC 4: top 200 10-mers, align, count).

    Args:
        kmer_scores: ``[n_kmers, M]`` score of each k-mer in each topic.
        kmer_codes: ``[n_kmers]`` integer codes of those k-mers (:mod:`bindvae.analysis.motifs`).
        k: k-mer length.
        top_k: k-mers per topic.
        prefix: motifs are named ``{prefix}_{m:03d}``.
        split: ours: each list also holds the topic's two sites when its k-mers hold two
            (:func:`bindvae.analysis.motifs.split_motifs`).

    Returns:
        ``M`` lists, in topic order: the topic's motif, then its two parts if split.
    """
    sets = []
    for m in range(kmer_scores.shape[1]):
        column = kmer_scores[:, m]
        best = np.argpartition(-column, top_k - 1)[:top_k]
        best = best[np.argsort(-column[best], kind="stable")]
        kmers = decode_kmers(kmer_codes[best], k)
        whole = build_pwm(kmers, name=f"{prefix}_{m:03d}")
        sets.append([whole] + (split_motifs(kmers, name=whole.name) if split else []))
    return sets


def _log_topics(topic_word: np.ndarray) -> np.ndarray:
    """Log of a ``[M, n_kmers]`` non-negative topic-word matrix with its rows normalised (float64)."""
    topic_word = np.asarray(topic_word, dtype=np.float64)
    return np.log(np.maximum(topic_word, 1e-300)) - np.log(topic_word.sum(axis=1, keepdims=True))


def scan_topic_words(topic_word: np.ndarray, counts) -> np.ndarray:
    """Per-peak scan scores of any topic model: ``counts [n_peaks, n_kmers] @ weights.T``, the weights from
    its ``[M, n_kmers]`` non-negative topic-word matrix (normalised here) by
    :func:`bindvae.infer.scan_weights` (BindVAE's ``latent_scores(kind="decoder")`` for another model)."""
    from bindvae.infer import scan_weights

    log_phi = _log_topics(topic_word)
    return np.asarray(counts @ scan_weights(log_phi).T.astype(np.float64))


def topic_word_counts(topic_word: np.ndarray, proportions: np.ndarray, counts) -> np.ndarray:
    """Per-peak expected k-mer counts of each topic of any topic model, from its ``[M, n_kmers]``
    non-negative topic-word matrix (normalised here) and its ``[n_peaks, M]`` proportions, by
    :func:`bindvae.infer.expected_topic_counts` (BindVAE's ``latent_scores(kind="counts")`` for another model)."""
    from bindvae.infer import expected_topic_counts

    log_phi = _log_topics(topic_word)
    return expected_topic_counts(counts, proportions, log_phi)


def counts_and_shares(counts: np.ndarray, proportions: np.ndarray, totals: np.ndarray | None = None) -> dict:
    """``{"counts": counts, "shares": ..., "density": ...}``: a model's expected k-mer counts per topic,
    those counts as shares of each peak's k-mers in the model's columns (:func:`bindvae.infer.topic_shares`;
    rows sum to 1) and, given ``totals`` (each peak's count of all gapped 8-mers), over those
    (:func:`bindvae.infer.topic_density`, ``latent_scores``' default)."""
    from bindvae.infer import topic_density, topic_shares

    out = {"counts": counts, "shares": topic_shares(counts, proportions)}
    if totals is not None:
        out["density"] = topic_density(counts, totals)
    return out


# Per-peak scores besides the proportions that every method is also measured with (ours): a scan with
# each topic's most enriched k-mers, each topic's expected k-mer counts, those counts as shares of the
# peak's k-mers in the model's columns, and over all its gapped 8-mers (density).
EXTRA_SCORES = ("scan", "counts", "shares", "density", "concentration")  # concentration: BindVAE's encoder output only


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    if labels.all() or not labels.any():
        return float("nan")
    return float(roc_auc_score(labels, scores))


def score_recovery(topic_motifs: list, peak_scores: np.ndarray, peak_names: list, truth: pd.DataFrame,
                   planted: dict, database: list[Motif], q_threshold: float = 0.05,
                   min_used_fraction: float = FlagRules().min_used_fraction,
                   signature_q: float = 0.0, extra_scores: dict | None = None,
                   namesakes: bool = True, piece_q: float = DEFAULT_PIECE_Q,
                   apart_q: float = DEFAULT_APART_Q) -> pd.DataFrame:
    """Which planted features a topic model recovered.

    Args:
        topic_motifs: per topic in topic order, its motif or a list of motifs (its motif, which makes its
            signature, then its parts, :func:`topic_motifs_from_scores`); a planted motif is matched to the
            topic whose own motif matches it best, or, when none does at ``q < q_threshold``, to the best
            of all, parts included.
        peak_scores: ``[n_peaks, M]`` per-peak topic proportions (rows sum to 1).
        peak_names: ``n_peaks`` names in the row order of ``peak_scores``.
        truth: the generator's truth table.
        planted: ``{tf_name: Motif}`` planted motifs (ids must be in ``database``).
        database: target motifs for the comparison.
        q_threshold: recovered when the best topic's q-value is below this.
        min_used_fraction: topics at >= 1 / M of fewer than this share of peaks are not matched to motifs.
        signature_q: above 0, a motif's AUROC is that of its matched topic's signature score (the topic's
            proportion plus its look-alikes', :mod:`bindvae.analysis.signatures`, at this q-value);
            0 scores the matched topic alone.
        namesakes: the signature also adds the topic's namesakes (the used topics whose motif matches the
            topic's best database motif, :func:`bindvae.analysis.signatures.namesakes`), as the analysis does.
        piece_q: namesakes also take the used topics whose own best database match (of their motif or
            its parts) is the topic's best too, at this q-value (0: off).
        apart_q: with ``namesakes``, look-alikes that the database tells apart are dropped
            (:func:`bindvae.analysis.signatures.keep_apart`, at this q-value; 0: off).
        extra_scores: ``{name: [n_peaks, M]}`` other per-peak scores of the same topics, names from
            :data:`EXTRA_SCORES` (``scan``: :func:`scan_topic_words`; ``counts``: :func:`topic_word_counts`;
            ``shares``: those counts as shares of each peak's k-mers, :func:`bindvae.infer.topic_shares`;
            ``concentration``: BindVAE's Dirichlet concentration, what the reference implementation outputs);
            each gives ``<name>_auroc`` (with the same look-alikes).

    Returns:
        One row per planted feature: ``feature``, ``kind``, ``fraction`` (of peaks), ``matrix_id``,
        ``topic`` (index), ``consensus`` (of the matched motif), ``part`` (that motif is one of the topic's
        two sites), ``q_value``, ``recovered``, ``auroc``,
        ``topic_auroc`` (the topic alone) and ``lookalikes`` (indices added to its score, comma-separated);
        and one ``<name>_auroc`` per extra score.
        Motifs get the best-matching used topic; non-TF features the topic with the highest AUROC.
        ``attrs["unused_topics"]`` counts the topics left out.
    """
    names = [m.name for m in database]
    missing = [m.name for m in planted.values() if m.name not in names]
    if missing:
        raise ValueError(f"planted motifs {missing} are not in the comparison database")
    sets = [list(entry) if isinstance(entry, (list, tuple)) else [entry] for entry in topic_motifs]
    firsts = [motifs[0] for motifs in sets]
    first_names = {motif.name for motif in firsts}
    by_name = {motif.name: motif for motifs in sets for motif in motifs}
    index = {motif.name: m for m, motifs in enumerate(sets) for motif in motifs}
    table = compare_motifs(list(by_name.values()), database)
    used = topic_usage(peak_scores) >= min_used_fraction
    alike = signature_partners(firsts, used, signature_q, table if namesakes else None, piece_q, apart_q)
    signature = signature_scores(peak_scores, alike)
    extra_scores = dict(extra_scores or {})
    unknown = sorted(set(extra_scores) - set(EXTRA_SCORES))
    if unknown:
        raise ValueError(f"unknown extra scores {unknown}; known: {EXTRA_SCORES}")
    extra_signatures = {name: signature_scores(scores, alike) for name, scores in extra_scores.items()}
    if used.any():
        table = table[used[table["query"].map(index).to_numpy()]]
    rows = []
    n_peaks = len(peak_names)
    for feature, group in truth.groupby("feature", sort=False):
        labels = planted_labels(truth, peak_names, feature)
        kind = group["kind"].iloc[0]
        row = {"feature": feature, "kind": kind, "fraction": labels.sum() / n_peaks,
               "matrix_id": group["matrix_id"].iloc[0]}
        if kind in ("motif", "pair"):
            hits = table[table["target"] == row["matrix_id"]].sort_values(["q_value", "p_value"], kind="stable")
            # A topic's own motif first, as the analysis names topics (parts are listed, never names): a
            # part is matched only when no used topic's motif matches at q < q_threshold.
            whole = hits[hits["query"].isin(first_names) & (hits["q_value"] < q_threshold)]
            hits = whole if len(whole) else hits
            motif = by_name[hits["query"].iloc[0]]
            topic = index[motif.name]
            row.update(q_value=float(hits["q_value"].iloc[0]), recovered=bool(hits["q_value"].iloc[0] < q_threshold))
        else:
            aurocs = [auroc(peak_scores[:, m], labels) for m in range(peak_scores.shape[1])]
            topic = int(np.nanargmax(aurocs))
            motif = firsts[topic]
            row.update(q_value=float("nan"), recovered=bool(aurocs[topic] >= 0.9))
        motif_row = kind in ("motif", "pair")
        row.update(topic=topic, consensus=motif.consensus, part=motif is not firsts[topic],
                   auroc=auroc((signature if motif_row else peak_scores)[:, topic], labels),
                   topic_auroc=auroc(peak_scores[:, topic], labels),
                   lookalikes=",".join(map(str, alike[topic])) if motif_row else "")
        for name, scores in extra_scores.items():
            row[f"{name}_auroc"] = auroc((extra_signatures[name] if motif_row else scores)[:, topic], labels)
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
        >= 0.9 x their supervised limit), ``n_with_limit``, ``min_auroc_vs_limit``, ``n_common_at_limit`` of
        ``n_common`` (motifs in >= 5% of peaks) and, for each extra score ``<s>`` (``scan``, ``counts``),
        ``mean_<s>_auroc_motifs``, ``n_<s>_at_limit``, ``n_common_<s>_at_limit`` and ``mean_<s>_vs_limit``; with
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
            **{f"mean_{name}_auroc_motifs": float(motifs[f"{name}_auroc"].mean())
               for name in EXTRA_SCORES if f"{name}_auroc" in motifs},
            "unused_topics": int(frame.attrs.get("unused_topics", 0)),
            **({"pair_probes": frame.attrs["pair_probes"]} if frame.attrs.get("pair_probes") else {})}


COMMON_FRACTION = 0.05  # motifs in at least this share of peaks: the target "every motif at 0.9 x its limit"


def _limit_summary(motifs: pd.DataFrame) -> dict:
    if "auroc_vs_limit" not in motifs:
        return {}
    fractions = motifs["auroc_vs_limit"]
    common = motifs["fraction"] >= COMMON_FRACTION - 1e-9
    out = {"n_at_limit": int((fractions >= 0.9).sum()), "n_with_limit": int(fractions.notna().sum()),
           "min_auroc_vs_limit": float(fractions.min()),
           "n_common_at_limit": int((fractions[common] >= 0.9).sum()), "n_common": int(common.sum())}
    for name in EXTRA_SCORES:
        if f"{name}_vs_limit" in motifs:
            other = motifs[f"{name}_vs_limit"]
            out.update({f"n_{name}_at_limit": int((other >= 0.9).sum()),
                        f"n_common_{name}_at_limit": int((other[common] >= 0.9).sum()),
                        f"mean_{name}_vs_limit": float(other.mean())})
    return out


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
    for name in EXTRA_SCORES:
        if f"{name}_auroc" in out:
            out[f"{name}_vs_limit"] = out[f"{name}_auroc"] / out["limit_auroc"]
    return out
