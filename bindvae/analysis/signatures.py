"""Signatures: a topic together with the topics whose motifs look like its own (ours, not the paper's).

A model with more topics than binding signatures often splits one signature over two or three topics:
the common FOS::JUN site over topics that each hold some of its k-mers, the long CTCF site over one
topic per half. Each such topic ranks the site's carriers only in part, because every carrier peak
gives its share to whichever of the look-alikes explains it best. The signature score of topic ``m``
adds the proportions of ``m`` and of its look-alikes: the used topics whose motif matches ``m``'s
motif, Tomtom-style, at ``q < max_q`` in either direction, and, where a motif database is given, its
namesakes: the used topics whose motif matches the database motif that ``m``'s motif matches best,
both at ``q < max_q``, and the used topics whose own best database match (of their motif or either of
its two parts, near-ties included: :data:`BEST_TIE`) is also ``m``'s best, at ``q < piece_q``
(:data:`DEFAULT_PIECE_Q`, 0.25): a piece of a long site matches the whole site weakly, but matches it
better than anything else, or as well.
Namesakes join the pieces of a long site that do not overlap enough to look like each other (the
ends of CTCF's long site) but each match the whole site in the database. It is each topic's own
neighbourhood, not a partition: a chain of weak resemblances (A like B, B like C) does not join A
with C, nor do two topics that share only a lesser database match (a forkhead and an ETS topic that
both match a composite FOX::ETS motif).

Two look-alikes that the database tells apart are not joined (:func:`keep_apart`): where each of the
two topics' best database match is at ``q < max_q`` and neither topic matches the other's best even as
weakly as a piece would (``q < apart_q``, :data:`DEFAULT_APART_Q`), their motifs look alike only
through a shared short word (a C/EBP topic, TTGCGCAAT, and an NRF1 topic, GCGCAGGCG, through GCGCA),
and adding one's proportions to the other's ranks each TF's carriers worse.

The motifs compared are the decoder's (each topic's most enriched 10-mers,
``topic_motifs(model, ranking="decoder")``): motifs built from probes through the encoder are blurrier and
join more unrelated topics. Measured in ``BENCHMARKS.md`` ("Signatures"): on the planted set the signature
score of the topic matched to a motif ranks its carriers closer to the supervised limit than the topic
alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bindvae.analysis.compare import compare_motifs
from bindvae.analysis.motifs import PART_SUFFIXES
from bindvae.motif import Motif

DEFAULT_MAX_Q = 0.05
# A topic whose best database match (at any q below this) is another topic's best joins that topic's
# signature as a piece of the same long site. Measured in BENCHMARKS.md ("Pieces of a long site"): on
# eight planted-set checkpoints 0.25 raised CTCF to 0.928-0.959 of its supervised limit on every seed
# (0.10: to 0.92 on average, every planted motif in >= 5% of peaks at 0.9 x its limit on 4 of 8 seeds
# against 5 at 0.25); four fresh seeds confirmed it.
DEFAULT_PIECE_Q = 0.25
# A topic's best database matches are those within this relative margin of its smallest q-value: a
# short piece of a long site matches several similar database motifs about equally (a CTCF piece,
# ACCTGGTGGC, at q 0.095 against ERF::FIGLA and 0.097 against CTCF), and which of them comes first
# is chance. Measured in BENCHMARKS.md ("Look-alikes the database tells apart"): 5% joined that
# piece on one of 28 planted-set checkpoints and changed no other signature; 10% also joins the
# two sites of a mixed topic (an NFKB1 part at q 0.0078, a CTCF part at 0.0084) and costs NFKB1.
BEST_TIE = 0.05
# Two look-alike topics each confidently matched to a database motif stay apart unless one matches the
# other's best at a q-value below this (as weakly as a piece of it may). Measured in BENCHMARKS.md
# ("Look-alikes the database tells apart"): on 28 planted-set checkpoints this changed 22 planted
# motifs' signatures on 12 seeds, 21 for the better (C/EBP, NRF1, TP53, NFKB1, FOXA1, TEAD1; +0.036 of
# the supervised limit on average) and RUNX1 on one seed by 0.002; at 0.05 it also split CTCF's pieces
# that match an E-box motif (FIGLA) best, CTCF down to 0.88 of its limit.
DEFAULT_APART_Q = 0.25


def lookalikes(motifs: list[Motif], used: np.ndarray | None = None, max_q: float = DEFAULT_MAX_Q) -> list[list[int]]:
    """Each topic's look-alikes: the other used topics whose motif matches its motif at ``q < max_q``.

    Args:
        motifs: one motif per topic, topic order (names must be distinct).
        used: ``[M]`` booleans; topics that are False have no look-alikes and are no one's
            (default: all used). See :func:`bindvae.analysis.peaks.topic_usage`.
        max_q: q-value below which two topic motifs are alike (the smaller of the two directions'
            q-values, each comparing one topic's motif against all the topics' motifs); 0 turns
            signatures off (no topic has look-alikes).

    Returns:
        ``M`` sorted lists of topic indices, the topic itself left out.
    """
    n = len(motifs)
    used = np.ones(n, dtype=bool) if used is None else np.asarray(used, dtype=bool)
    if n < 2 or max_q <= 0:
        return [[] for _ in range(n)]
    q = motif_q_matrix(motifs)
    alike = (q < max_q) & used[:, None] & used[None, :]
    np.fill_diagonal(alike, False)
    return [[int(j) for j in np.flatnonzero(row)] for row in alike]


def namesakes(matches: pd.DataFrame, names: list[str], used: np.ndarray | None = None,
              max_q: float = DEFAULT_MAX_Q, piece_q: float = DEFAULT_PIECE_Q) -> list[list[int]]:
    """Each topic's namesakes: the other used topics whose motif matches this topic's best database
    motif at ``q < max_q``, when this topic's own best match is at ``q < max_q`` (else none); and the
    used topics whose best database match is this topic's best too, at ``q < piece_q`` (a piece of
    the same long site; module docstring).

    Args:
        matches: topic motifs against a database, every pair (:func:`bindvae.analysis.compare.compare_motifs`:
            ``query``, ``target``, ``p_value``, ``q_value``); queries are topic names, or a topic's
            name plus a :data:`bindvae.analysis.motifs.PART_SUFFIXES` letter for its two parts.
        names: the topic names, topic order.
        used: ``[M]`` booleans, as :func:`lookalikes`.
        max_q: q-value of both matches of the first rule, and of this topic's best match; 0 turns
            namesakes off.
        piece_q: q-value below which the other topic's best match counts (second rule); 0 turns the
            second rule off.

    Returns:
        ``M`` sorted lists of topic indices, the topic itself left out.
    """
    n = len(names)
    used = np.ones(n, dtype=bool) if used is None else np.asarray(used, dtype=bool)
    out: list[list[int]] = [[] for _ in range(n)]
    if max_q <= 0 or matches is None or not len(matches):
        return out
    index = {name: i for i, name in enumerate(names)}
    hits = matches[(matches["q_value"] < max_q) & matches["query"].isin(index)]
    holders: dict[str, set[int]] = {}
    for query, target in zip(hits["query"], hits["target"]):
        if used[index[query]]:
            holders.setdefault(target, set()).add(index[query])
    best = hits.sort_values(["q_value", "p_value"], kind="stable").drop_duplicates("query")
    for query, target in zip(best["query"], best["target"]):
        m = index[query]
        if used[m]:
            out[m] = sorted(holders[target] - {m})
    if piece_q > 0:
        tops = best_matches(matches, names)
        for m, (q_m, targets_m) in tops.items():
            if not used[m] or q_m >= max_q:
                continue
            pieces = {j for j, (q_j, targets_j) in tops.items()
                      if j != m and used[j] and q_j < piece_q and targets_j & targets_m}
            out[m] = sorted(set(out[m]) | pieces)
    return out


def best_matches(matches: pd.DataFrame, names: list[str], tie: float = BEST_TIE) -> dict[int, tuple[float, set[str]]]:
    """Per topic with any match: its smallest q-value over its motif and its parts, and the database
    motifs matched at that q-value or within a relative ``tie`` of it (:data:`BEST_TIE`)."""
    index = _topic_index(names)
    topic = matches["query"].map(index)
    frame = matches.assign(topic=topic)[topic.notna()]
    out: dict[int, tuple[float, set[str]]] = {}
    for m, group in frame.groupby("topic"):
        q = float(group["q_value"].min())
        out[int(m)] = (q, set(group.loc[group["q_value"] <= q * (1 + tie) * (1 + 1e-12), "target"]))
    return out


def _topic_index(names: list[str]) -> dict[str, int]:
    """Topic index by motif name: each topic's name and its two parts' names."""
    index = {name: i for i, name in enumerate(names)}
    index.update({name + suffix: i for i, name in enumerate(names) for suffix in PART_SUFFIXES
                  if name + suffix not in index})
    return index


def combine(*partners: list[list[int]]) -> list[list[int]]:
    """Per topic, the union of several partner lists (look-alikes, namesakes), sorted."""
    return [sorted(set().union(*lists)) for lists in zip(*partners)]


def signature_partners(motifs: list[Motif], used: np.ndarray | None = None, max_q: float = DEFAULT_MAX_Q,
                       matches: pd.DataFrame | None = None, piece_q: float = DEFAULT_PIECE_Q,
                       apart_q: float = DEFAULT_APART_Q) -> list[list[int]]:
    """Each topic's partners in its signature: its look-alikes and, given ``matches`` (the same motifs,
    and their parts, against a database, every pair), less those the database tells apart
    (:func:`keep_apart`, at ``apart_q``), and its namesakes. Arguments as :func:`lookalikes`,
    :func:`namesakes` and :func:`keep_apart`."""
    alike = lookalikes(motifs, used, max_q)
    if matches is None:
        return alike
    names = [m.name for m in motifs]
    return combine(keep_apart(alike, matches, names, max_q, apart_q), namesakes(matches, names, used, max_q, piece_q))


def keep_apart(alike: list[list[int]], matches: pd.DataFrame, names: list[str], max_q: float = DEFAULT_MAX_Q,
               apart_q: float = DEFAULT_APART_Q) -> list[list[int]]:
    """Look-alikes less the pairs that the database tells apart (module docstring): both topics' best
    database matches (:func:`best_matches`, over each motif and its parts) at ``q < max_q``, and neither
    topic matching any of the other's best at ``q < apart_q``.

    Args:
        alike: from :func:`lookalikes`.
        matches: as :func:`namesakes`.
        names: the topic names, topic order.
        max_q: q-value of a confident best match.
        apart_q: q-value below which a topic still matches the other's best; 0 turns this off (every
            look-alike kept).

    Returns:
        ``alike`` with those pairs removed (both directions), sorted lists.
    """
    if apart_q <= 0 or matches is None or not len(matches):
        return [list(others) for others in alike]
    tops = best_matches(matches, names)
    index = _topic_index(names)
    weak = matches[matches["q_value"] < apart_q]
    matched: dict[int, set[str]] = {}
    for query, target in zip(weak["query"], weak["target"]):
        if query in index:
            matched.setdefault(index[query], set()).add(target)

    def apart(m: int, j: int) -> bool:
        if m not in tops or j not in tops or tops[m][0] >= max_q or tops[j][0] >= max_q:
            return False
        return not (tops[m][1] & matched.get(j, set())) and not (tops[j][1] & matched.get(m, set()))

    return [sorted(j for j in others if not apart(m, j)) for m, others in enumerate(alike)]


def motif_q_matrix(motifs: list[Motif]) -> np.ndarray:
    """``[M, M]`` Tomtom-style q-values of every topic motif against every other, symmetrised (the
    smaller direction); the diagonal is 1."""
    index = {motif.name: i for i, motif in enumerate(motifs)}
    if len(index) != len(motifs):
        raise ValueError("topic motifs need distinct names")
    table = compare_motifs(motifs, motifs)
    q = np.ones((len(motifs), len(motifs)))
    rows, cols = table["query"].map(index).to_numpy(), table["target"].map(index).to_numpy()
    np.minimum.at(q, (rows, cols), table["q_value"].to_numpy())
    q = np.minimum(q, q.T)
    np.fill_diagonal(q, 1.0)
    return q


def signature_scores(proportions: np.ndarray, alike: list[list[int]]) -> np.ndarray:
    """Each topic's signature score per peak: its proportion plus its look-alikes' (``[n_peaks, M]``).

    Args:
        proportions: ``[n_peaks, M]`` topic proportions.
        alike: from :func:`lookalikes`.
    """
    proportions = np.asarray(proportions, dtype=np.float64)
    out = proportions.copy()
    for m, others in enumerate(alike):
        if others:
            out[:, m] += proportions[:, others].sum(axis=1)
    return out


def lookalikes_column(names: list[str], alike: list[list[int]]) -> list[str]:
    """Each topic's look-alikes as comma-separated names (empty when none), topic order."""
    return [",".join(names[j] for j in others) for others in alike]
