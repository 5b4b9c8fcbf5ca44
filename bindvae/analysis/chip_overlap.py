"""Accessible peaks labelled by ChIP-seq overlap, and each mapped TF's topic scored against the labels.

The paper (Fig. 4c, e; Figs. S14, S17, S18) labels an ATAC-seq peak with a TF when it overlaps one of
the TF's ChIP-seq peaks by at least 50 bp, then shows, for every TF mapped to a topic, the peaks
sorted by that topic's score next to their ChIP labels, and box plots of the topic's score for
overlapping against non-overlapping peaks.

Overlap is measured on the window the model scores (``span`` bp around the summit, as in training),
so a label says that the ChIP peak reaches into the sequence the topic scores were computed from.

The overlap test is exact and vectorised (sorting and binary search, no per-interval loop): an
accessible window ``[a, b)`` and a ChIP interval ``[s, e)`` overlap by ``min(b, e) - max(a, s)`` bp,
which is at least ``k`` exactly when ``b - a >= k``, ``e - s >= k``, ``s <= b - k`` and ``e >= a + k``.
Among ChIP intervals of length at least ``k``, every one with ``e < a + k`` also has ``s < a <= b - k``,
so the number of ChIP intervals overlapping the window by ``k`` bp or more is
``#{s <= b - k} - #{e < a + k}``: two ``searchsorted`` calls on the sorted starts and ends.
"""

from __future__ import annotations

import dataclasses
import logging
import re

import numpy as np
import pandas as pd

from bindvae.analysis.naming import match_names
from bindvae.analysis.stats import mann_whitney_greater
from bindvae.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

DEFAULT_MIN_OVERLAP = 50  # bp, the paper's threshold
_TF_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
ALGORITHM_1, MOTIF_SIMILARITY = "Algorithm 1", "motif similarity"
SCORE_COLUMNS = ["tf", "source", "n_overlapping", "n_other", "topic", "mapped_by", "auroc", "p_value", "best_topic",
                 "best_auroc", "best_p_value"]


@dataclasses.dataclass
class Windows:
    """Intervals on chromosomes: ``chrom`` names and 0-based half-open ``start``, ``end`` (numpy arrays)."""

    chrom: np.ndarray
    start: np.ndarray
    end: np.ndarray

    @classmethod
    def from_lists(cls, chrom, start, end) -> "Windows":
        return cls(np.asarray(chrom, dtype=object), np.asarray(start, dtype=np.int64), np.asarray(end, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.start)


def parse_chip(text: str) -> dict[str, str]:
    """``TF:FILE,TF:FILE,...`` -> {TF: file}, at least one.

    A TF name is letters, digits, ``.``, ``_``, ``+`` and ``-`` (it is matched against the names
    the probes or the motif database give, ignoring case).

    Raises:
        ConfigError: a malformed item, a bad TF name, or the same TF twice.
    """
    sets: dict[str, str] = {}
    for item in (t for t in text.split(",") if t):
        name, sep, path = item.partition(":")
        if not sep or not path:
            raise ConfigError("chip", f"each ChIP set is TF:FILE (e.g. CTCF:ctcf.bed), got {item!r}")
        if not _TF_NAME.fullmatch(name):
            raise ConfigError("chip", f"TF label {name!r} in {item!r} is not a name (letters, digits, . _ + -)")
        if name.upper() in (n.upper() for n in sets):
            raise ConfigError("chip", f"TF {name!r} given twice")
        sets[name] = path
    if not sets:
        raise ConfigError("chip", "give at least one ChIP set as TF:FILE")
    return sets


def overlap_counts(windows: Windows, chip: Windows, min_overlap: int = DEFAULT_MIN_OVERLAP) -> np.ndarray:
    """How many ChIP intervals overlap each window by at least ``min_overlap`` bp (see the module docstring).

    Args:
        windows: ``n`` query intervals (the accessible peaks' windows).
        chip: ChIP intervals (may overlap each other; need not be sorted).
        min_overlap: smallest overlap in bp, at least 1.

    Returns:
        ``[n]`` int64 counts; a window is labelled with the TF when its count is positive.
    """
    k = int(min_overlap)
    if k < 1:
        raise ValueError(f"min_overlap must be at least 1 bp, got {min_overlap}")
    long_enough = (chip.end - chip.start) >= k
    chip = Windows(chip.chrom[long_enough], chip.start[long_enough], chip.end[long_enough])
    names, codes = np.unique(np.concatenate([windows.chrom, chip.chrom]).astype(str), return_inverse=True)
    query_code, chip_code = codes[:len(windows)].astype(np.int64), codes[len(windows):].astype(np.int64)
    # One sorted axis for all chromosomes: chromosome c occupies [c * stride, (c + 1) * stride), with room
    # for the shifted positions b - k >= -k and a + k on either side.
    top = max(int(windows.end.max(initial=0)), int(chip.end.max(initial=0)))
    stride = top + 2 * k + 2
    base = query_code * stride + k + 1
    starts = np.sort(chip_code * stride + k + 1 + chip.start)
    ends = np.sort(chip_code * stride + k + 1 + chip.end)
    count = (np.searchsorted(starts, base + windows.end - k, side="right")
             - np.searchsorted(ends, base + windows.start + k, side="left"))
    return np.where(windows.end - windows.start >= k, count, 0).astype(np.int64)


def read_chip(path: str) -> Windows:
    """A ChIP-seq BED / narrowPeak file as intervals (see :func:`bindvae.features.sequences.read_intervals`)."""
    from bindvae.features.sequences import read_intervals

    records = read_intervals(path)
    return Windows.from_lists(records["chrom"], records["start"], records["end"])


def label_peaks(windows: Windows, chip_sets: dict[str, str], min_overlap: int = DEFAULT_MIN_OVERLAP) -> pd.DataFrame:
    """Read every ChIP set and label the windows: one boolean column per TF, in the given order.

    Raises:
        InputError: an unreadable file, a set that no window overlaps by ``min_overlap`` bp (the
            message compares the chromosome names, the usual cause), or one that every window
            overlaps (nothing to compare with).
    """
    labels = {}
    for tf, path in chip_sets.items():
        chip = read_chip(path)
        hits = overlap_counts(windows, chip, min_overlap) > 0
        if not hits.any():
            raise InputError(path, f"ChIP set {tf}: no accessible peak overlaps it by >= {min_overlap} bp "
                                   f"(its chromosomes: {_few(chip.chrom)}; the peaks': {_few(windows.chrom)})")
        if hits.all():
            raise InputError(path, f"ChIP set {tf}: every accessible peak overlaps it by >= {min_overlap} bp; "
                                   "no other peaks to compare with")
        labels[tf] = hits
    return pd.DataFrame(labels)


def _few(chroms, n: int = 3) -> str:
    names = list(dict.fromkeys(str(c) for c in chroms))
    return ", ".join(names[:n]) + (f" (+{len(names) - n} more)" if len(names) > n else "")


def _names_of(name: str) -> set[str]:
    """Upper-case names a database or probe label answers to: itself and, for a dimer ``A::B``, A and B."""
    name = str(name).upper()
    return {name, *(part for part in name.split("::") if part)}


def tf_topics(tfs, mapping: pd.DataFrame | None, matches: pd.DataFrame | None) -> pd.DataFrame:
    """The topic each ChIP TF is mapped to: by Algorithm 1 when a mapping is given, else by motif similarity.

    Names match ignoring case; a dimer label ``A::B`` answers to A and to B. A TF mapped to several
    topics keeps the strongest: Algorithm 1's largest effect size (then smallest p), or motif
    similarity's smallest q (then best rank).

    Args:
        tfs: the ChIP TF names.
        mapping: Algorithm 1 table with ``assigned`` (:func:`bindvae.analysis.naming.map_topics_to_tfs`), or None.
        matches: motif-similarity table with ``assigned`` (:func:`bindvae.analysis.naming.assign_matches`).

    Returns:
        One row per TF: ``tf``, ``topic`` (integer index, -1 when unmapped), ``mapped_by``
        (:data:`ALGORITHM_1`, :data:`MOTIF_SIMILARITY` or empty).
    """
    if mapping is not None:
        hits = mapping[mapping["assigned"]].sort_values(["effect_size", "p_value", "topic"],
                                                        ascending=[False, True, True], kind="stable")
        named, how = list(zip(hits["tf"], hits["topic"])), ALGORITHM_1
    elif matches is not None and len(matches):
        hits = matches[matches["assigned"].astype(bool)].sort_values(["q_value", "rank", "query"], kind="stable")
        named, how = list(zip(match_names(hits), hits["query"])), MOTIF_SIMILARITY
    else:
        named, how = [], ""
    rows = []
    for tf in tfs:
        topic = next((t for name, t in named if tf.upper() in _names_of(name)), None)
        rows.append({"tf": tf, "topic": -1 if topic is None else _topic_index(topic),
                     "mapped_by": how if topic is not None else ""})
    return pd.DataFrame(rows, columns=["tf", "topic", "mapped_by"])


def _topic_index(name: str) -> int:
    return int(str(name).rsplit("_", 1)[-1])


def overlap_scores(scores: np.ndarray, labels: pd.DataFrame, topics: pd.DataFrame,
                   sources: dict[str, str]) -> pd.DataFrame:
    """Per ChIP TF, its topic's score for overlapping against non-overlapping peaks (Figs. S17, S18).

    Args:
        scores: ``[n, M]`` latent scores of the accessible peaks.
        labels: ``n`` rows, one boolean column per TF (:func:`label_peaks`).
        topics: :func:`tf_topics`'s table.
        sources: TF -> its ChIP file name.

    Returns:
        One row per TF (:data:`SCORE_COLUMNS`): peaks overlapping and not, the mapped ``topic`` (-1:
        unmapped) with its AUROC (P(overlapping peak > other) + ties / 2) and one-sided Mann-Whitney p
        (overlapping peaks score higher; empty when unmapped), and, for comparison, the topic with the
        largest AUROC (``best_topic``; ties to the smaller p, then the lower index), whose p is not
        corrected for the M topics tried.
    """
    rows = []
    by_tf = topics.set_index("tf")
    for tf in labels.columns:
        own = labels[tf].to_numpy(dtype=bool)
        _, p, auroc = mann_whitney_greater(scores[own], scores[~own])
        best = int(np.lexsort((np.arange(len(p)), p, -auroc))[0])
        topic = int(by_tf.loc[tf, "topic"])
        rows.append({"tf": tf, "source": sources.get(tf, ""), "n_overlapping": int(own.sum()),
                     "n_other": int((~own).sum()), "topic": topic, "mapped_by": by_tf.loc[tf, "mapped_by"],
                     "auroc": auroc[topic] if topic >= 0 else np.nan, "p_value": p[topic] if topic >= 0 else np.nan,
                     "best_topic": best, "best_auroc": auroc[best], "best_p_value": p[best]})
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def clr(scores: np.ndarray) -> np.ndarray:
    """Centred log-ratio of each row: ``log z - mean(log z)`` over the M topics (scores are positive)."""
    logs = np.log(np.maximum(np.asarray(scores, dtype=np.float64), np.finfo(np.float64).tiny))
    return logs - logs.mean(axis=1, keepdims=True)


def heatmap_rows(scores: np.ndarray, labels: pd.DataFrame, table: pd.DataFrame, ids) -> pd.DataFrame:
    """The rows of the CLR heatmap and the label matrix beside it (Fig. 4c, e; Fig. S14).

    One block per mapped TF, the TF with the most overlapping peaks first (ties by name); a block
    holds the TF's overlapping peaks sorted by its topic's score, highest first (ties by peak
    order). A peak that overlaps several mapped TFs appears in each of their blocks, so co-binding
    shows in the label matrix.

    Returns:
        ``row``, ``tf`` (the block), ``topic``, ``peak`` (index into the peaks), ``peak_id``, ``score``.
    """
    mapped = table[table["topic"] >= 0].sort_values(["n_overlapping", "tf"], ascending=[False, True], kind="stable")
    blocks = []
    for tf, topic in zip(mapped["tf"], mapped["topic"]):
        members = np.flatnonzero(labels[tf].to_numpy(dtype=bool))
        values = scores[members, int(topic)]
        members = members[np.lexsort((members, -values))]
        blocks.append(pd.DataFrame({"tf": tf, "topic": int(topic), "peak": members,
                                    "peak_id": np.asarray(ids, dtype=object)[members],
                                    "score": scores[members, int(topic)]}))
    out = pd.concat(blocks, ignore_index=True) if blocks else pd.DataFrame(
        columns=["tf", "topic", "peak", "peak_id", "score"])
    out.insert(0, "row", np.arange(len(out)))
    return out
