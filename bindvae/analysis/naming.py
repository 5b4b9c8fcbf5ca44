"""Naming topics with labelled probes: the paper's Algorithm 1, calibrated, and where probes come from.

Algorithm 1 (Kshirsagar et al. 2022, Methods "Mapping latent dimensions to TFs"): for every latent
dimension m and TF t, test with a one-sided Mann-Whitney U whether t's probes score higher in m than
the probes of all other TFs. We correct with Benjamini-Hochberg over all (m, t) pairs.

With thousands of probes every test has power to spare: effects of no biological size reach
q < 1e-40, and one topic collects hundreds of TFs. So a pair is assigned only when it is

* significant: ``q < max_q`` (default 0.05);
* sizeable: its common-language effect size (AUROC of t's probes against all others in m) is at
  least ``min_effect`` (default :data:`MIN_EFFECT`);
* among the first ``max_tfs_per_topic`` (default :data:`MAX_TFS_PER_TOPIC`) of the topic, in the
  order: TFs supported by the topic's motif-similarity matches first (same TF or family, when
  ``supported`` is given; the family of the best match first), then larger effect, smaller p, name.

:mod:`bindvae.analysis.titles` may then withdraw a topic's assignments when the topic is background,
low complexity or of skewed base composition (see there); the ``status`` column says which rule
decided each pair. Motif-similarity matches get the same treatment (:func:`assign_matches`).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from bindvae.analysis.stats import benjamini_hochberg, mann_whitney_one_vs_rest
from bindvae.analysis.topics import topic_name
from bindvae.errors import InputError
from bindvae.motif import ALPHABET, Motif

MIN_EFFECT = 0.75  # AUROC floor; see README "How topics get their names" for the measurement
MAX_TFS_PER_TOPIC = 3
MAPPING_COLUMNS = ["topic", "tf", "n_probes", "u", "p_value", "q_value", "effect_size", "motif_rank", "rank",
                   "status", "assigned"]
# Status of a (topic, TF) pair, in the order the rules are applied.
ASSIGNED, NOT_SIGNIFICANT, SMALL_EFFECT, OVER_CAP = "assigned", "not significant", "small effect", "over cap"


def map_topics_to_tfs(scores: np.ndarray, labels, max_q: float = 0.05, topic_names=None,
                      min_effect: float = MIN_EFFECT, max_tfs_per_topic: int = MAX_TFS_PER_TOPIC,
                      supported: dict[str, dict[str, int]] | None = None) -> pd.DataFrame:
    """Algorithm 1 over every (dimension, TF) pair, with an effect-size floor and a cap per topic.

    Args:
        scores: ``[n_probes, M]`` latent scores of the probes.
        labels: ``n_probes`` TF names (at least two distinct).
        max_q: Benjamini-Hochberg level for an assignment.
        topic_names: ``M`` names (default ``topic_000`` ...).
        min_effect: smallest effect size (AUROC) assigned.
        max_tfs_per_topic: most TFs assigned to one topic.
        supported: topic -> {TF: rank of the best motif-similarity match supporting it} (see
            :func:`supported_by_matches`); supported TFs come first within the cap, best match first.

    Returns:
        One row per (topic, TF): ``topic, tf, n_probes, u, p_value, q_value, effect_size`` (U / (n1 n2),
        the probability that a probe of t outscores one of the others), ``motif_rank`` (rank of the
        supporting database match, NaN when none), ``rank``
        (1 = first in the topic's order above), ``status`` (``assigned``, ``not significant``,
        ``small effect`` or ``over cap``) and ``assigned``; sorted by p-value.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray([str(x) for x in labels])
    if len(set(labels.tolist())) < 2:
        raise ValueError("Algorithm 1 needs probes from at least two TFs")
    names = topic_names or [topic_name(m) for m in range(scores.shape[1])]
    groups, u, p, effect = mann_whitney_one_vs_rest(scores, labels)
    counts = {tf: int(np.sum(labels == tf)) for tf in groups}
    table = pd.DataFrame({
        "topic": np.tile(names, len(groups)),
        "tf": np.repeat(groups, len(names)),
        "n_probes": np.repeat([counts[tf] for tf in groups], len(names)),
        "u": u.ravel(), "p_value": p.ravel(), "effect_size": effect.ravel(),
    })
    table["q_value"] = benjamini_hochberg(table["p_value"].to_numpy())
    supported = supported or {}
    table["motif_rank"] = [supported.get(topic, {}).get(tf, np.nan) for topic, tf in zip(table["topic"], table["tf"])]
    table = table.sort_values(["topic", "motif_rank", "effect_size", "p_value", "tf"],
                              ascending=[True, True, False, True, True], kind="stable", na_position="last")
    table["rank"] = table.groupby("topic").cumcount() + 1
    passing = (table["q_value"] < max_q) & (table["effect_size"] >= min_effect)
    within_cap = passing.groupby(table["topic"]).cumsum() <= max_tfs_per_topic
    table["status"] = np.select([table["q_value"] >= max_q, table["effect_size"] < min_effect, ~within_cap],
                                [NOT_SIGNIFICANT, SMALL_EFFECT, OVER_CAP], ASSIGNED)
    table["assigned"] = table["status"] == ASSIGNED
    return table[MAPPING_COLUMNS].sort_values(["p_value", "topic", "tf"], kind="stable").reset_index(drop=True)


def supported_by_matches(matches: pd.DataFrame, tfs, families: dict[str, str]) -> dict[str, dict[str, int]]:
    """Topic -> {TF among ``tfs``: rank of its best assigned database match of the same family}.

    Args:
        matches: motif-similarity table with ``assigned`` (:func:`assign_matches`).
        tfs: candidate TF names (e.g. the probe labels).
        families: TF name -> family key (a TF missing from it is its own family).

    Returns:
        The mapping (topics without an assigned match are absent; unsupported TFs too).
    """
    from bindvae.analysis.families import SEPARATOR, family_of

    def keys(tf: str) -> set[str]:
        return set(family_of(tf, families).split(SEPARATOR))

    candidates = {tf: keys(tf) for tf in dict.fromkeys(str(t) for t in tfs)}
    hits = matches[matches["assigned"]] if len(matches) else matches
    out: dict[str, dict[str, int]] = {}
    for topic, group in hits.sort_values("rank", kind="stable").groupby("query", sort=False):
        best: dict[str, int] = {}
        for name, rank in zip(match_names(group), group["rank"]):
            for tf, own in candidates.items():
                if tf not in best and own & keys(name):
                    best[tf] = int(rank)
        out[str(topic)] = best
    return out


def withdraw(mapping: pd.DataFrame, reasons: dict[str, str], unsupported: dict[str, str] | None = None) -> pd.DataFrame:
    """A copy of ``mapping`` whose assigned pairs on the given topics are withdrawn.

    Args:
        mapping: output of :func:`map_topics_to_tfs`.
        reasons: topic -> the status written instead of ``assigned`` (e.g. ``background topic``).
        unsupported: the same, for topics where only pairs without motif support (``motif_rank``
            NaN) are withdrawn.

    Returns:
        The updated table (same rows and order).
    """
    out = mapping.copy()
    reason = out["topic"].map(reasons)
    partial = out["topic"].map(unsupported or {})
    hit = out["assigned"] & (reason.notna() | (partial.notna() & out["motif_rank"].isna()))
    out.loc[hit, "status"] = reason.fillna(partial)[hit]
    out["assigned"] = out["status"] == ASSIGNED
    return out


def assigned_tfs(mapping: pd.DataFrame) -> dict[str, list[str]]:
    """Topic -> its assigned TFs, largest effect first."""
    hits = mapping[mapping["assigned"]].sort_values(["topic", "rank"], kind="stable")
    return {topic: group["tf"].tolist() for topic, group in hits.groupby("topic", sort=True)}


def assignment_strengths(mapping: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Topic -> {assigned TF: its effect size}, the weights of the per-peak calls."""
    hits = mapping[mapping["assigned"]].sort_values(["topic", "rank"], kind="stable")
    return {topic: dict(zip(group["tf"], group["effect_size"].astype(float)))
            for topic, group in hits.groupby("topic", sort=True)}


def match_names(matches: pd.DataFrame) -> pd.Series:
    """The TF a database match names: its alt name (``target_name``), else its id (``target``)."""
    alt = matches["target_name"].fillna("").astype(str)
    return alt.where(alt != "", matches["target"].astype(str))


def assign_matches(matches: pd.DataFrame, max_q: float = 0.05,
                   max_tfs_per_topic: int = MAX_TFS_PER_TOPIC) -> pd.DataFrame:
    """Motif-similarity naming with the same rules: significant, and at most a few TFs per topic.

    A Tomtom-style p-value already measures how alike two matrices are column by column, not how many
    observations there were, so q is not inflated by sample size and no separate effect floor is used.

    Args:
        matches: output of :func:`bindvae.analysis.compare.compare_motifs` (``query``, ``target_name``,
            ``rank``, ``q_value``, ...).
        max_q: q-value threshold.
        max_tfs_per_topic: most distinct TF names assigned per topic, best rank first.

    Returns:
        ``matches`` with an ``assigned`` column (a TF named by several matrices counts once: its best).
    """
    out = matches.sort_values(["query", "rank"], kind="stable").copy()
    name = match_names(out)
    first = ~pd.DataFrame({"q": out["query"], "n": name}).duplicated()
    significant = (out["q_value"] < max_q) & first
    out["assigned"] = significant & (significant.groupby(out["query"]).cumsum() <= max_tfs_per_topic)
    return out.loc[matches.index]


def read_probes_tsv(path: str | os.PathLike, tf_per_block: list[str] | None = None) -> pd.DataFrame:
    """Read labelled probes from a TSV with a header.

    Accepted layouts: columns ``sequence`` and ``tf``; or ``sequence`` and ``block`` (the reference
    sample's layout), where ``tf_per_block`` names block 0, 1, ... (default ``block_<b>``).

    Args:
        path: the TSV file.
        tf_per_block: TF name of each block, in block order.

    Returns:
        DataFrame with columns ``sequence``, ``tf``.

    Raises:
        InputError: missing columns, an unnamed block, a sequence with letters other than ACGTN, or
            probes of a single TF.
    """
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot read probe table ({err.__class__.__name__})") from None
    if "sequence" not in table.columns or not ({"tf", "block"} & set(table.columns)):
        raise InputError(path, "probe table needs a 'sequence' column and a 'tf' or 'block' column", 1)
    if "tf" in table.columns:
        labels = table["tf"].tolist()
    else:
        blocks = table["block"].tolist()
        order = sorted(set(blocks), key=lambda b: (len(b), b))
        if tf_per_block is not None and len(tf_per_block) < len(order):
            raise InputError(path, f"{len(order)} blocks but only {len(tf_per_block)} TF names given")
        names = dict(zip(order, tf_per_block or [f"block_{b}" for b in order]))
        labels = [names[b] for b in blocks]
    for row, seq in enumerate(table["sequence"], start=2):
        if not seq or set(seq.upper()) - set("ACGTN"):
            raise InputError(path, f"probe sequence {seq!r} has letters other than ACGTN", row)
    if len(set(labels)) < 2:
        raise InputError(path, "probe table needs probes of at least two TFs (each TF is compared with the others)")
    return pd.DataFrame({"sequence": table["sequence"].str.upper().tolist(), "tf": labels})


def labels_per_block(tf_per_block: list[str], n_probes: int) -> list[str]:
    """Labels of ``n_probes`` probes stored as equal consecutive blocks, one TF per block.

    Args:
        tf_per_block: TF name of each block, in file order.
        n_probes: number of probes (lines of a reference feature file).

    Returns:
        ``n_probes`` labels.

    Raises:
        ValueError: ``n_probes`` is not a multiple of the number of blocks.
    """
    if not tf_per_block or n_probes % len(tf_per_block):
        raise ValueError(f"{n_probes} probes cannot be split into {len(tf_per_block)} equal blocks")
    size = n_probes // len(tf_per_block)
    return [tf for tf in tf_per_block for _ in range(size)]


def sample_probes(rng: np.random.Generator, motifs: list[Motif], n_per_tf: int = 200, length: int = 20) -> pd.DataFrame:
    """Probes sampled from motif PWMs, each inside a uniform random background.

    Every TF gets exactly ``n_per_tf`` probes, so the tests compare equal groups: a TF with several
    matrices (e.g. JASPAR's three CTCF ones) has its probes split among them in turn. A motif wider
    than ``length`` is cut to its central ``length`` columns.

    Args:
        rng: NumPy generator (the only source of randomness).
        motifs: the PWMs; the TF label is the motif's ``alt_name`` or else its ``name``.
        n_per_tf: probes per TF.
        length: probe length in bp.

    Returns:
        DataFrame with columns ``sequence``, ``tf`` (``n_per_tf`` rows per TF, TFs in first-seen order).
    """
    by_tf: dict[str, list[Motif]] = {}
    for motif in motifs:
        by_tf.setdefault(motif.alt_name or motif.name, []).append(motif)
    sequences, labels = [], []
    for tf, group in by_tf.items():
        for j, motif in enumerate(group):
            n = n_per_tf // len(group) + (j < n_per_tf % len(group))
            sequences += _sample_sites(rng, motif.pwm, n, length)
        labels += [tf] * n_per_tf
    return pd.DataFrame({"sequence": sequences, "tf": labels})


def _sample_sites(rng: np.random.Generator, pwm: np.ndarray, n: int, length: int) -> list[str]:
    """``n`` probes of ``length`` bp, each a PWM site at a random offset in uniform background."""
    if pwm.shape[0] > length:
        cut = (pwm.shape[0] - length) // 2
        pwm = pwm[cut : cut + length]
    width = pwm.shape[0]
    probes = rng.integers(0, 4, size=(n, length))
    cumulative = np.cumsum(pwm, axis=1)
    sites = (rng.random((n, width, 1)) > cumulative[None]).sum(axis=2).clip(0, 3)
    starts = rng.integers(0, length - width + 1, size=n)
    for i in range(n):
        probes[i, starts[i] : starts[i] + width] = sites[i]
    return ["".join(row) for row in np.array(list(ALPHABET))[probes]]
