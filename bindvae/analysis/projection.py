"""Labelled peak sets (e.g. ChIP-seq peaks of several TFs) in a trained model's latent space (Fig. 4a, b).

Every peak gets its latent scores (:func:`bindvae.infer.latent_scores`, the posterior mean by default).
For every set and every topic, the AUROC of that topic's score for the set's peaks against the peaks
of all other sets, with the one-sided Mann-Whitney p-value (do the set's peaks score higher?); the
topic with the largest AUROC is the set's best. A UMAP of the scores (umap-learn, seeded) shows the
sets together.

Nothing is dropped silently: sets larger than ``max_per_set`` are subsampled (seeded) and the table
of sets says so; sequences without a single 8 bp window of A/C/G/T (they carry no k-mer) and peaks
the genome cannot give are listed with the reason and left out of the statistics.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from bindvae.analysis.stats import mann_whitney_one_vs_rest
from bindvae.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

NO_WINDOW = "no 8 bp window of A/C/G/T"
_VALID_WINDOW = re.compile(r"[ACGTacgt]{8}")
_FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fa.gz", ".fasta.gz", ".fna.gz")


@dataclasses.dataclass
class LabelledPeaks:
    """The peaks of all sets that are scored, and what was left out.

    Attributes:
        ids: ``n`` peak names.
        sets: ``n`` set names, one per peak.
        sequences: ``n`` sequences.
        summary: one row per set: ``set``, ``source``, ``n_read``, ``n_no_window``, ``n_subsampled_out``,
            ``n_used``, ``subsampled``, ``length_min``, ``length_median``, ``length_max`` (of the used peaks).
        skipped: one row per left-out record: ``set``, ``peak``, ``reason``, ``where``.
    """

    ids: list[str]
    sets: list[str]
    sequences: list[str]
    summary: pd.DataFrame
    skipped: pd.DataFrame


def parse_sets(text: str) -> dict[str, str]:
    """``NAME:PATH,NAME:PATH,...`` -> {name: path}, at least two distinct names.

    Raises:
        ConfigError: a malformed item, a repeated name, or fewer than two sets.
    """
    sets: dict[str, str] = {}
    for item in (t for t in text.split(",") if t):
        name, sep, path = item.partition(":")
        if not sep or not name or not path:
            raise ConfigError("sets", f"each set is NAME:FILE, got {item!r}")
        if name in sets:
            raise ConfigError("sets", f"set {name!r} given twice")
        sets[name] = path
    if len(sets) < 2:
        raise ConfigError("sets", f"a projection needs at least two sets (NAME:FILE,NAME:FILE), got {len(sets)}")
    return sets


def _read_set(path: str, genome: str | None, span: int):
    from bindvae.features.sequences import read_fasta_or_explain, read_peaks

    if genome and not path.lower().endswith(_FASTA_SUFFIXES):
        return read_peaks(path, genome, span=span)
    return read_fasta_or_explain(path)


def read_sets(sets: dict[str, str], genome: str | None = None, span: int = 200, max_per_set: int | None = None,
              seed: int = 0) -> LabelledPeaks:
    """Read every set (FASTA, or BED/narrowPeak cut from ``genome``), checking all of them first.

    Args:
        sets: set name -> FASTA file, or BED/narrowPeak file when ``genome`` is given.
        genome: genome FASTA for peak files (None: every set is FASTA).
        span: window cut around each peak's summit, bp (peak files only).
        max_per_set: keep at most this many peaks per set, drawn without replacement (None: all).
        seed: seed of that draw.

    Returns:
        The :class:`LabelledPeaks`.

    Raises:
        InputError: an unreadable file, or a set left without any usable peak.
        ConfigError: ``max_per_set`` < 1.
    """
    if max_per_set is not None and max_per_set < 1:
        raise ConfigError("max_per_set", f"must be at least 1, got {max_per_set}")
    rng = np.random.default_rng(seed)
    ids, labels, sequences, rows, skipped = [], [], [], [], []
    for name, path in sets.items():
        records = _read_set(path, genome, span)
        skipped += [{"set": name, "peak": s.name, "reason": s.reason, "where": s.where} for s in records.skipped]
        usable = [i for i, s in enumerate(records.sequences) if _VALID_WINDOW.search(s)]
        skipped += [{"set": name, "peak": records.names[i], "reason": NO_WINDOW, "where": records.where(i)}
                    for i in sorted(set(range(len(records))) - set(usable))]
        if not usable:
            raise InputError(path, f"set {name}: no sequence with an 8 bp window of A/C/G/T")
        kept = usable
        if max_per_set is not None and len(usable) > max_per_set:
            kept = sorted(rng.choice(usable, max_per_set, replace=False).tolist())
            logger.info("set %s: %d of %d usable peaks drawn (max_per_set=%d, seed %d)", name, len(kept),
                        len(usable), max_per_set, seed)
        lengths = np.array([len(records.sequences[i]) for i in kept])
        rows.append({"set": name, "source": Path(path).name, "n_read": len(records) + len(records.skipped),
                     "n_no_window": len(records) - len(usable), "n_subsampled_out": len(usable) - len(kept),
                     "n_used": len(kept), "subsampled": len(kept) < len(usable), "length_min": int(lengths.min()),
                     "length_median": float(np.median(lengths)), "length_max": int(lengths.max())})
        ids += [records.names[i] for i in kept]
        labels += [name] * len(kept)
        sequences += [records.sequences[i] for i in kept]
    if skipped:
        logger.warning(
            "%d records left out (see skipped.tsv): %s",
            len(skipped),
            ", ".join(f"{n} {r}" for r, n in pd.Series([s["reason"] for s in skipped]).value_counts().items()),
        )
    return LabelledPeaks(ids, labels, sequences, pd.DataFrame(rows),
                         pd.DataFrame(skipped, columns=["set", "peak", "reason", "where"]))


def set_topic_auroc(scores: np.ndarray, labels) -> pd.DataFrame:
    """Each topic's AUROC and one-sided Mann-Whitney p for each set against all other sets.

    Args:
        scores: ``[n, M]`` latent scores.
        labels: ``n`` set names (two or more sets).

    Returns:
        One row per (set, topic): ``set``, ``topic`` (integer index), ``auroc`` (P(set peak > other
        peak) + ties / 2), ``p_value`` and ``best`` (the set's largest AUROC; ties to the smaller p,
        then the lower topic). Sets in first-seen order, topics ascending.
    """
    groups, _, p, effect = mann_whitney_one_vs_rest(scores, labels)
    if len(groups) < 2:
        raise ValueError("set_topic_auroc needs at least two sets")
    n_topics = effect.shape[1]
    table = pd.DataFrame({"set": np.repeat(groups, n_topics), "topic": np.tile(np.arange(n_topics), len(groups)),
                          "auroc": effect.ravel(), "p_value": p.ravel()})
    order = table.sort_values(["set", "auroc", "p_value", "topic"], ascending=[True, False, True, True], kind="stable")
    best = order.groupby("set", sort=False).head(1).index
    table["best"] = table.index.isin(best)
    return table


def umap_embedding(scores: np.ndarray, seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
    """2-d UMAP of latent scores (umap-learn, seeded, so single-threaded and repeatable).

    Args:
        scores: ``[n, M]``, n >= 3.
        seed: UMAP's ``random_state``.
        n_neighbors: UMAP's neighbourhood size (capped at n - 1).

    Returns:
        ``[n, 2]`` float64 coordinates.
    """
    import warnings

    import umap  # Deferred: importing umap compiles numba functions.

    n = scores.shape[0]
    if n < 3:
        raise InputError("sets", f"a UMAP needs at least 3 peaks, got {n}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "n_jobs overridden by random_state": we want the seed
        reducer = umap.UMAP(n_neighbors=min(n_neighbors, n - 1), random_state=seed, n_jobs=1,
                            init="spectral" if n > 10 else "random")
        return np.asarray(reducer.fit_transform(np.asarray(scores, dtype=np.float32)), dtype=np.float64)


def closing_lines(folder) -> list[str]:
    """The last lines of a projection's printed summary: what was left out (``skipped.tsv``) and where it all is."""
    skipped = pd.read_csv(Path(folder) / "skipped.tsv", sep="\t", comment="#")
    lines = []
    if len(skipped):
        counts = ", ".join(f"{n} {reason}" for reason, n in skipped["reason"].value_counts().items())
        lines.append(f"left out: {counts} (skipped.tsv)")
    return lines + [f"Tables and figures: {folder}"]
