"""Naming topics with labelled probes: the paper's Algorithm 1, and where probes come from.

Algorithm 1 (Kshirsagar et al. 2022, Methods "Mapping latent dimensions to TFs"): for every latent
dimension m and TF t, test with a one-sided Mann-Whitney U whether t's probes score higher in m than
the probes of all other TFs; assign t to m when significant. We correct with Benjamini-Hochberg over
all (m, t) pairs and assign at q < 0.05; the mapping is many-to-many.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from bindvae.analysis.meme import ALPHABET, Motif
from bindvae.analysis.stats import benjamini_hochberg, mann_whitney_one_vs_rest
from bindvae.analysis.topics import topic_name
from bindvae.errors import InputError

MAPPING_COLUMNS = ["topic", "tf", "n_probes", "u", "p_value", "q_value", "effect_size", "assigned"]


def map_topics_to_tfs(scores: np.ndarray, labels, max_q: float = 0.05, topic_names=None) -> pd.DataFrame:
    """Algorithm 1 over every (dimension, TF) pair.

    Args:
        scores: ``[n_probes, M]`` latent scores of the probes.
        labels: ``n_probes`` TF names (at least two distinct).
        max_q: Benjamini-Hochberg level for an assignment.
        topic_names: ``M`` names (default ``topic_000`` ...).

    Returns:
        One row per (topic, TF): ``topic, tf, n_probes, u, p_value, q_value, effect_size`` (U / (n1 n2),
        the probability that a probe of t outscores one of the others) and ``assigned`` (q < max_q),
        sorted by p-value.
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
    table["assigned"] = table["q_value"] < max_q
    return table[MAPPING_COLUMNS].sort_values(["p_value", "topic"], kind="stable").reset_index(drop=True)


def assigned_tfs(mapping: pd.DataFrame) -> dict[str, list[str]]:
    """Topic -> its assigned TFs, best (smallest p) first."""
    hits = mapping[mapping["assigned"]]
    return {topic: group["tf"].tolist() for topic, group in hits.groupby("topic", sort=True)}


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
        InputError: missing columns, an unnamed block, or a sequence with letters other than ACGTN.
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

    A motif wider than ``length`` is cut to its central ``length`` columns.

    Args:
        rng: NumPy generator (the only source of randomness).
        motifs: the PWMs; the TF label is the motif's ``alt_name`` or else its ``name``.
        n_per_tf: probes per motif.
        length: probe length in bp.

    Returns:
        DataFrame with columns ``sequence``, ``tf`` (``n_per_tf`` rows per motif, in motif order).
    """
    letters = np.array(list(ALPHABET))
    sequences, labels = [], []
    for motif in motifs:
        pwm = motif.pwm
        if pwm.shape[0] > length:
            cut = (pwm.shape[0] - length) // 2
            pwm = pwm[cut : cut + length]
        width = pwm.shape[0]
        probes = rng.integers(0, 4, size=(n_per_tf, length))
        cumulative = np.cumsum(pwm, axis=1)
        sites = (rng.random((n_per_tf, width, 1)) > cumulative[None]).sum(axis=2).clip(0, 3)
        starts = rng.integers(0, length - width + 1, size=n_per_tf)
        for i in range(n_per_tf):
            probes[i, starts[i] : starts[i] + width] = sites[i]
        sequences += ["".join(row) for row in letters[probes]]
        labels += [motif.alt_name or motif.name] * n_per_tf
    return pd.DataFrame({"sequence": sequences, "tf": labels})
