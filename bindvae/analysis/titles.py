"""Topic titles from the best-supported evidence, and what a topic is when nothing names it.

Three measures per topic, read from the decoder (phi) over the topic's ``n_top`` (50) best k-mers,
each weighted by its phi:

* ``gc``: GC fraction of their bases (gap positions left out); ``gc_corpus`` is the same fraction
  for the mean topic over the whole vocabulary, the model's picture of an average peak.
* ``repeat_share``: the share that is a mono- or dinucleotide repeat (``AAAAAAAA``, ``CACANNCA``:
  gap positions match any base).
* ``fold``: their summed phi over the other topics' mean phi on the same k-mers, i.e. how far the
  topic stands out from the rest (leaving the topic itself out keeps the ratio from being capped at
  M). Topics that model the genomic background stay low.

Rules, first match wins (thresholds in :class:`TitleRules`):

Composition labels (thresholds in :class:`TitleRules`):

1. ``repeat_share >= min_repeat_share``: ``low complexity (AC)n``;
2. else ``fold < min_fold``: ``background``, with ``(AT-rich)``/``(GC-rich)`` when skewed as in 3;
3. else ``|gc - gc_corpus| >= min_gc_shift``: ``AT-rich`` or ``GC-rich``.

A topic with a significant motif-similarity match (:func:`bindvae.analysis.naming.assign_matches`,
to a database motif that is not itself a repeat) is titled by it, ``(motif similarity)``, then its
Algorithm 1 TFs ``(probes)``, then its composition label if any (a CTCF topic that also took the CA
repeat). Otherwise a composition label is the title; otherwise the Algorithm 1 TFs ``(probes)``;
otherwise ``unassigned``.

A composition label withdraws the topic's Algorithm 1 assignments, all of them without a match and
those the match does not support (no family in common) with one: probes sampled from PWMs sit in
uniform random flanks, so an AT-rich or background topic ranks the probes of AT-rich motifs above
the rest with effect sizes as large as a real motif topic's (on the demo, ZNF410 0.98 on the AT-rich
topic against 0.92-1.00 for the planted motifs' families); only the motif and its composition tell
them apart.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from bindvae import dna
from bindvae.analysis import naming
from bindvae.analysis.topics import topic_name
from bindvae.infer import Model
from bindvae.motif import Motif
from bindvae.vae import network as model_lib

TITLE_COLUMNS = ["topic", "title", "evidence", "probe_tfs", "motif_tfs", "gc", "gc_corpus", "repeat_share",
                 "repeat_unit", "fold"]


@dataclasses.dataclass(frozen=True)
class TitleRules:
    """Thresholds of the composition rules (see the module docstring for the measurements).

    Attributes:
        n_top: k-mers per topic that the measures read.
        min_repeat_share: repeat share from which a topic is ``low complexity``.
        min_fold: fold over the other topics below which a topic is ``background``. On the demo
            (16 topics) the seven topics that model the random background measure 3.4-13.2 and
            every planted motif, repeat, AT- and GC-rich topic 31-343.
        min_gc_shift: GC difference from the corpus from which a topic is ``AT-rich``/``GC-rich``.
    """

    n_top: int = 50
    min_repeat_share: float = 0.5
    min_fold: float = 20.0
    min_gc_shift: float = 0.25


def topic_composition(model: Model, n_top: int = 50) -> pd.DataFrame:
    """The measures of the module docstring for every topic.

    Args:
        model: the model.
        n_top: k-mers per topic.

    Returns:
        One row per topic: ``topic, gc, gc_corpus, repeat_share, repeat_unit, fold`` (``repeat_unit``:
        the unit of the topic's best repeat k-mer, e.g. ``AC``, or empty).
    """
    phi = np.asarray(model_lib.topic_kmer_matrix(model.params), dtype=np.float64)
    return composition_from_phi(phi, list(model.vocabulary.kmers), n_top)


def composition_from_phi(phi: np.ndarray, kmers: list[str], n_top: int = 50) -> pd.DataFrame:
    """:func:`topic_composition` from ``phi`` ``[M, n_kmers]`` and the k-mer strings (``N`` = gap)."""
    kmers = np.asarray(kmers)
    mean = phi.mean(axis=0)
    n_topics = phi.shape[0]
    gc_all, bases_all = _base_counts(kmers)
    rows = []
    for m in range(phi.shape[0]):
        top = np.argsort(-phi[m], kind="stable")[:n_top]
        weight = phi[m, top]
        units = [repeat_unit(k) for k in kmers[top]]
        rows.append({
            "topic": topic_name(m),
            "gc": float(weight @ gc_all[top] / max(weight @ bases_all[top], 1e-12)),
            "gc_corpus": float(mean @ gc_all / (mean @ bases_all)),
            "repeat_share": float(weight[[bool(u) for u in units]].sum() / weight.sum()),
            "repeat_unit": next((u for u in units if u), ""),
            "fold": float(weight.sum() / max((n_topics * mean[top] - weight).sum() / max(n_topics - 1, 1), 1e-300)),
        })
    return pd.DataFrame(rows)


def _base_counts(kmers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """G+C and A+C+G+T letters of each k-mer, ``[n]`` each."""
    joined = "".join(kmers)
    letters = np.frombuffer(joined.encode("ascii"), dtype=np.uint8).reshape(len(kmers), -1)
    gc = np.isin(letters, np.frombuffer(b"GC", np.uint8)).sum(axis=1)
    return gc.astype(np.float64), np.isin(letters, np.frombuffer(b"ACGT", np.uint8)).sum(axis=1).astype(np.float64)


def repeat_unit(kmer: str) -> str:
    """The unit of a mono- or dinucleotide repeat (gaps match anything), or ``""``.

    The unit is written in its smallest rotation over both strands: ``TTTTTTTT`` -> ``A``,
    ``GTGTNNGT`` -> ``AC``.
    """
    for period in (1, 2):
        unit: dict[int, str] = {}
        if all(unit.setdefault(i % period, c) == c for i, c in enumerate(kmer) if c in "ACGT"):
            if len(unit) < period:
                continue
            word = "".join(unit[i] for i in range(period))
            if period == 2 and word[0] == word[1]:
                word = word[0]
            rotations = {word[i:] + word[:i] for i in range(len(word))}
            rotations |= {dna.reverse_complement(r) for r in rotations}
            return min(rotations)
    return ""


def is_repeat_motif(motif: Motif, min_repeat_share: float = 0.5) -> bool:
    """Whether a database motif is itself a repeat: most 8 bp windows of its consensus are repeats.

    Of JASPAR2024's 879 CORE vertebrate motifs two are (ZNF384 ``AAAAAAAA``, VEZF1 ``CCCCCC``).
    """
    consensus = motif.consensus
    windows = [consensus[i : i + 8] for i in range(max(1, len(consensus) - 7))]
    return sum(bool(repeat_unit(w)) for w in windows) / len(windows) >= min_repeat_share


def title_topics(composition: pd.DataFrame, mapping: pd.DataFrame, matches: pd.DataFrame | None = None,
                 rules: TitleRules = TitleRules()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Title every topic and withdraw Algorithm 1 assignments the composition rules overrule.

    Args:
        composition: output of :func:`topic_composition`.
        mapping: Algorithm 1 table (:func:`bindvae.analysis.naming.map_topics_to_tfs`).
        matches: motif-similarity table with an ``assigned`` column
            (:func:`bindvae.analysis.naming.assign_matches`) and optionally ``repeat`` (the database
            motif is itself a repeat, e.g. ZNF384's poly-A: such a match names nothing), or None.
        rules: thresholds.

    Returns:
        ``(titles, mapping)``: one row per topic (:data:`TITLE_COLUMNS`; ``evidence`` lists
        ``motif similarity``, ``probes`` and ``composition`` as used, or is ``none``), and the mapping
        with withdrawn pairs' ``status`` set to ``low-complexity topic``, ``background topic`` or
        ``composition topic``.
    """
    motif_tfs = _motif_tfs(matches)
    full, partial = {}, {}
    for row in composition.itertuples(index=False):
        _, reason = _composition_label(row, rules)
        if reason:
            (partial if motif_tfs.get(row.topic) else full)[row.topic] = reason
    mapping = naming.withdraw(mapping, full, partial)
    probe_tfs = naming.assigned_tfs(mapping)
    rows = []
    for row in composition.itertuples(index=False):
        probes, motifs = probe_tfs.get(row.topic, []), motif_tfs.get(row.topic, [])
        title, evidence = _title(_composition_label(row, rules)[0], probes, motifs)
        rows.append({"topic": row.topic, "title": title, "evidence": evidence, "probe_tfs": ",".join(probes),
                     "motif_tfs": ",".join(motifs), "gc": row.gc, "gc_corpus": row.gc_corpus,
                     "repeat_share": row.repeat_share, "repeat_unit": row.repeat_unit, "fold": row.fold})
    return pd.DataFrame(rows, columns=TITLE_COLUMNS), mapping


def _motif_tfs(matches: pd.DataFrame | None) -> dict[str, list[str]]:
    """Topic -> TFs of its assigned matches to database motifs that are not themselves repeats."""
    if matches is None or not len(matches):
        return {}
    hits = matches[matches["assigned"] & ~matches.get("repeat", pd.Series(False, index=matches.index)).astype(bool)]
    hits = hits.sort_values(["query", "rank"], kind="stable")
    return {q: naming.match_names(g).tolist() for q, g in hits.groupby("query", sort=False)}


def _composition_label(row, rules: TitleRules) -> tuple[str, str]:
    """``(label, withdrawal reason)`` from composition alone (rules 1, 3, 4), or ``("", "")``."""
    shift = row.gc - row.gc_corpus
    skew = ("GC-rich" if shift > 0 else "AT-rich") if abs(shift) >= rules.min_gc_shift else ""
    if row.repeat_share >= rules.min_repeat_share:
        return f"low complexity ({row.repeat_unit})n", "low-complexity topic"
    if row.fold < rules.min_fold:
        return (f"background ({skew})" if skew else "background"), "background topic"
    return (skew, "composition topic") if skew else ("", "")


def _title(label: str, probes: list[str], motifs: list[str]) -> tuple[str, str]:
    """``(title, evidence)``: a motif match first, then the composition label, then probes alone."""
    if motifs:
        parts = [f"{', '.join(motifs)} (motif similarity)"] + ([f"{', '.join(probes)} (probes)"] if probes else [])
        sources = ["motif similarity"] + (["probes"] if probes else [])
        if label:
            parts, sources = parts + [label], sources + ["composition"]
        return "; ".join(parts), ", ".join(sources)
    if label:
        return label, "composition"
    if probes:
        return f"{', '.join(probes)} (probes)", "probes"
    return "unassigned", "none"
