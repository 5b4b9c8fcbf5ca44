"""Topics across runs: PCA of the topics' k-mer distributions, topic matching, reproducibility.

Every topic is its k-mer distribution phi_m = softmax(theta_m) (a row of the decoder), written as a
centred log-ratio: ``clr(phi_m) = log phi_m - mean(log phi_m) = theta_m - mean(theta_m)`` (the
log-normaliser cancels), a ``[D]`` vector with no simplex constraint.

* PCA: the CLR rows of all runs stacked (``[sum of M, D]``), column-centred, projected on their first
  two principal axes (Figs. S6, S16).
* Similarity of two topics: the Pearson correlation of their CLR rows (equal to that of their theta
  rows). Between two runs, topics are paired by the Hungarian algorithm
  (``scipy.optimize.linear_sum_assignment``, maximising the summed similarity); a pair counts as a
  reproduced topic when its similarity is at least ``min_similarity`` (:data:`MIN_SIMILARITY`).
* Reproducibility of run A in run B: reproduced pairs / A's topics (``fraction_a``), and / B's topics
  (``fraction_b``).
* Seed replicates: runs whose saved configs are equal once ``train.seed`` and the keys that do not
  change what is learned (:data:`BOOKKEEPING_KEYS`, the ``logger`` section) are set aside. Their
  pairwise reproducibility gives the repeat-run spread.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from bindvae.errors import InputError
from bindvae.infer import Model

logger = logging.getLogger(__name__)

MIN_SIMILARITY = 0.5
# train keys that only say how a run was driven or reported; they do not change the learned topics.
BOOKKEEPING_KEYS = ("seed", "resume", "overwrite", "progress", "log_every", "topic_table_every", "topic_table_k",
                    "coordinator_address", "process_id", "max_minutes")


@dataclasses.dataclass(frozen=True)
class RunTopics:
    """One run's topics as seen by the comparison.

    Attributes:
        label: the run's name in tables and figures.
        run_dir: where it was loaded from.
        clr: ``[M, D]`` float64 centred log-ratios of the topics' k-mer distributions.
        config: the run's saved config (nested dict; empty when unknown).
        tfs: TFs assigned by Algorithm 1 in the run's ``analysis/tf_mapping.tsv``; None without one.
    """

    label: str
    run_dir: str
    clr: np.ndarray
    config: dict
    tfs: frozenset | None = None


def clr_topics(model: Model) -> np.ndarray:
    """Centred log-ratios of a model's topics.

    Args:
        model: from :func:`bindvae.infer.load_model` or :func:`bindvae.infer.model_from_params`.

    Returns:
        ``[M, D]`` float64: ``log softmax(theta) - row mean`` = ``theta - row mean``.
    """
    theta = np.asarray(model.params["topic_kmer"]["theta"], dtype=np.float64)
    return theta - theta.mean(axis=1, keepdims=True)


def assigned_tfs(run_dir: str | Path) -> frozenset | None:
    """The TFs Algorithm 1 assigned in ``<run_dir>/analysis/tf_mapping.tsv`` (None when not analysed)."""
    path = Path(run_dir) / "analysis" / "tf_mapping.tsv"
    if not path.is_file():
        return None
    table = pd.read_csv(path, sep="\t", comment="#", keep_default_na=False)
    return frozenset(table.loc[table["assigned"].astype(str) == "True", "tf"].astype(str))


def run_topics(model: Model, label: str) -> RunTopics:
    """A loaded model as :class:`RunTopics` (the TFs read from its analysis folder, if any)."""
    tfs = assigned_tfs(model.run_dir) if model.run_dir else None
    return RunTopics(label, model.run_dir, clr_topics(model), dict(model.config), tfs)


def check_comparable(runs: list[RunTopics]) -> None:
    """Raise InputError unless there are at least two runs, distinctly labelled, over one vocabulary."""
    if len(runs) < 2:
        raise InputError(runs[0].run_dir if runs else "runs", "a comparison needs at least two runs")
    labels = [r.label for r in runs]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise InputError(runs[0].run_dir, f"runs share the label(s) {', '.join(twice)}; give distinct labels=")
    width = runs[0].clr.shape[1]
    for run in runs[1:]:
        if run.clr.shape[1] != width:
            raise InputError(run.run_dir, f"{run.clr.shape[1]} k-mers, but {runs[0].label} has {width}: "
                                          "runs over different vocabularies cannot be compared")


def topic_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of every row of ``a`` with every row of ``b``.

    Args:
        a: ``[M_a, D]`` CLR topics.
        b: ``[M_b, D]`` CLR topics.

    Returns:
        ``[M_a, M_b]`` in [-1, 1] (0 for a constant row).
    """
    def standardise(x):
        x = x - x.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)

    return np.clip(standardise(a) @ standardise(b).T, -1.0, 1.0)


def match_topics(similarity: np.ndarray, min_similarity: float = MIN_SIMILARITY) -> pd.DataFrame:
    """Hungarian matching of two runs' topics.

    Args:
        similarity: ``[M_a, M_b]`` from :func:`topic_similarity`.
        min_similarity: a pair is a reproduced topic from this similarity on.

    Returns:
        One row per topic of either run: ``topic_a``, ``topic_b`` (integer indices; -1 for a topic
        left without a partner when M_a != M_b), ``similarity`` (NaN without a partner) and
        ``matched``; paired rows first, by ``topic_a``.
    """
    rows, cols = linear_sum_assignment(similarity, maximize=True)
    values = similarity[rows, cols]
    frame = pd.DataFrame({"topic_a": rows, "topic_b": cols, "similarity": values, "matched": values >= min_similarity})
    lone_a = sorted(set(range(similarity.shape[0])) - set(rows.tolist()))
    lone_b = sorted(set(range(similarity.shape[1])) - set(cols.tolist()))
    lone = pd.DataFrame({"topic_a": lone_a + [-1] * len(lone_b), "topic_b": [-1] * len(lone_a) + lone_b,
                         "similarity": np.nan, "matched": False})
    return pd.concat([frame, lone], ignore_index=True) if len(lone) else frame


def _learning_config(config: dict) -> str:
    """The saved config without what does not change the learned topics (see the module docstring)."""
    kept = {k: v for k, v in config.items() if k != "logger"}
    kept["train"] = {k: v for k, v in dict(kept.get("train", {})).items() if k not in BOOKKEEPING_KEYS}
    return json.dumps(kept, sort_keys=True, default=str)


def seed_groups(runs: list[RunTopics]) -> list[list[int]]:
    """Indices of runs that differ only in ``train.seed``: groups of two or more, in input order.

    Runs without a saved config are never grouped.
    """
    groups: dict[str, list[int]] = {}
    for i, run in enumerate(runs):
        if run.config:
            groups.setdefault(_learning_config(run.config), []).append(i)
    return [members for members in groups.values() if len(members) > 1]


def _seed(run: RunTopics):
    return dict(run.config.get("train", {})).get("seed", "")


def compare_topics(runs: list[RunTopics], min_similarity: float = MIN_SIMILARITY):
    """Match the topics of every two runs and summarise how many are reproduced.

    Args:
        runs: two or more runs over one vocabulary (:func:`check_comparable`).
        min_similarity: threshold of a reproduced topic.

    Returns:
        ``(matching, pairs, spread)`` DataFrames: ``matching`` one row per topic per pair of runs
        (``run_a``, ``run_b``, ``topic_a``, ``topic_b``, ``similarity``, ``matched``); ``pairs`` one row
        per pair of runs (topic counts, ``n_matched``, ``fraction_a``, ``fraction_b``,
        ``mean_similarity`` of the reproduced pairs, ``seed_replicates``, and the Algorithm 1 TFs
        of each run and in common where both were analysed); ``spread`` one row per group of seed
        replicates (mean, sd, min and max of their pairwise ``fraction_a``/``fraction_b``).
    """
    check_comparable(runs)
    groups = seed_groups(runs)
    group_of = {i: g for g, members in enumerate(groups) for i in members}
    matching, pairs = [], []
    for i, j in itertools.combinations(range(len(runs)), 2):
        a, b = runs[i], runs[j]
        table = match_topics(topic_similarity(a.clr, b.clr), min_similarity)
        table.insert(0, "run_b", b.label)
        table.insert(0, "run_a", a.label)
        matching.append(table)
        n_matched = int(table["matched"].sum())
        both = a.tfs is not None and b.tfs is not None
        pairs.append({
            "run_a": a.label, "run_b": b.label, "n_topics_a": a.clr.shape[0], "n_topics_b": b.clr.shape[0],
            "n_matched": n_matched, "fraction_a": n_matched / a.clr.shape[0], "fraction_b": n_matched / b.clr.shape[0],
            "mean_similarity": float(table.loc[table["matched"], "similarity"].mean()) if n_matched else np.nan,
            "seed_replicates": i in group_of and group_of.get(i) == group_of.get(j),
            "tfs_a": len(a.tfs) if a.tfs is not None else np.nan, "tfs_b": len(b.tfs) if b.tfs is not None else np.nan,
            "tfs_in_common": len(a.tfs & b.tfs) if both else np.nan,
        })
    pairs_frame = pd.DataFrame(pairs)
    spread = []
    for g, members in enumerate(groups):
        labels = {runs[i].label for i in members}
        inside = pairs_frame[pairs_frame["run_a"].isin(labels) & pairs_frame["run_b"].isin(labels)]
        fractions = np.concatenate([inside["fraction_a"].to_numpy(), inside["fraction_b"].to_numpy()])
        spread.append({
            "group": g, "runs": ",".join(runs[i].label for i in members),
            "seeds": ",".join(str(_seed(runs[i])) for i in members), "n_pairs": len(inside),
            "fraction_mean": fractions.mean(), "fraction_sd": fractions.std(ddof=1) if len(fractions) > 1 else 0.0,
            "fraction_min": fractions.min(), "fraction_max": fractions.max(),
            "similarity_mean": float(inside["mean_similarity"].mean()),
        })
    spread_columns = ["group", "runs", "seeds", "n_pairs", "fraction_mean", "fraction_sd", "fraction_min",
                      "fraction_max", "similarity_mean"]
    return pd.concat(matching, ignore_index=True), pairs_frame, pd.DataFrame(spread, columns=spread_columns)


def topic_pca(runs: list[RunTopics], n_components: int = 2) -> tuple[pd.DataFrame, np.ndarray]:
    """PCA of all runs' CLR topics together.

    Args:
        runs: the runs (one vocabulary).
        n_components: principal components kept.

    Returns:
        ``(table, explained)``: one row per (run, topic) with ``run``, ``topic`` and ``pc1``..; and
        ``[n_components]`` explained variance ratios. Each axis's sign is fixed so that its largest
        loading is positive (the same inputs give the same picture).
    """
    stacked = np.concatenate([r.clr for r in runs])
    centred = stacked - stacked.mean(axis=0)
    # The Gram matrix is [sum M, sum M]: cheap for hundreds of topics over 10^5 k-mers.
    values, vectors = np.linalg.eigh(centred @ centred.T)
    order = np.argsort(values)[::-1][: min(n_components, len(values))]
    values, vectors = np.clip(values[order], 0.0, None), vectors[:, order]
    loadings = centred.T @ vectors
    signs = np.sign(loadings[np.abs(loadings).argmax(axis=0), np.arange(len(order))])
    signs[signs == 0] = 1.0
    coords = vectors * np.sqrt(values) * signs
    total = float(np.sum(centred * centred))  # all the variance, not only the kept components'
    explained = values / total if total > 0 else np.zeros_like(values)
    table = pd.DataFrame({"run": np.repeat([r.label for r in runs], [r.clr.shape[0] for r in runs]),
                          "topic": np.concatenate([np.arange(r.clr.shape[0]) for r in runs])})
    for k in range(coords.shape[1]):
        table[f"pc{k + 1}"] = coords[:, k]
    return table, explained
