"""A planted TF pair scored by the cooperative-binding route (the recovery benchmark's check).

Composite probes carry both partners' sites at the planted spacing; each partner's probes carry its
site alone. The pair is found as one composite topic (its probes beat both partners' there), as two
topics (each partner's probes best on a topic of its own), or missed.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from bindvae.analysis import naming
from bindvae.analysis.cooperative import PROBE_LENGTH, SEPARATOR, find_cooperative_pairs
from bindvae.analysis.stats import benjamini_hochberg, mann_whitney_greater
from bindvae.infer import Model
from bindvae.motif import Motif


def composite_probes(rng: np.random.Generator, first: Motif, second: Motif, spacing: int, n: int,
                     length: int = PROBE_LENGTH) -> list[str]:
    """``n`` probes each holding a composite site: a site of ``first``, ``spacing`` random bp, a site of
    ``second`` (same strand; the whole block on either strand), at a random offset in uniform background.

    Args:
        rng: NumPy generator.
        first, second: the partners' PWMs.
        spacing: bp between the two sites.
        n: probes.
        length: bp per probe (at least the block's width).

    Returns:
        ``n`` ACGT strings.
    """
    from bindvae.data.synthetic import sample_sites

    block = np.concatenate([sample_sites(rng, first.pwm, n), rng.integers(0, 4, size=(n, spacing)),
                            sample_sites(rng, second.pwm, n)], axis=1).astype(np.int64)
    minus = rng.random(n) < 0.5
    block[minus] = (3 - block[minus])[:, ::-1]
    width = block.shape[1]
    length = max(length, width)
    probes = rng.integers(0, 4, size=(n, length))
    starts = rng.integers(0, length - width + 1, size=n)
    for i in range(n):
        probes[i, starts[i] : starts[i] + width] = block[i]
    return ["".join(row) for row in np.array(list("ACGT"))[probes]]


PAIR_ROUTES = ("one composite topic", "two topics", "missed")


def planted_pair_route(model: Model, first: Motif, second: Motif, spacing: int, seed: int = 0, n: int = 200,
                       max_q: float = 0.05, min_effect: float = naming.MIN_EFFECT, kind: str = "mean") -> dict:
    """How a model holds a planted pair, by probes: one composite topic, two topics, or missed.

    Probes of the composite (:func:`composite_probes`, the planted spacing) and of each partner are
    scored through the encoder. ``one composite topic``: some topic passes the cooperative test
    (:func:`find_cooperative_pairs`). Otherwise ``two topics``: each partner's probes outscore the
    other partner's (one-sided Mann-Whitney, BH over both partners and all topics, q < ``max_q``,
    effect >= ``min_effect``) in a topic of its own, different topics. Otherwise ``missed``.

    Returns:
        ``route`` (one of :data:`PAIR_ROUTES`), ``topic`` (the composite topic, or the two topics
        ``a,b``, or empty), ``q_value`` (the composite's, else the larger of the partners', NaN when missed).
    """
    from bindvae.infer import latent_scores

    rng = np.random.default_rng(seed)
    a, b = first.alt_name or first.name, second.alt_name or second.name
    pair = f"{a}{SEPARATOR}{b}"
    partners = naming.sample_probes(rng, [dataclasses.replace(first, alt_name=a),
                                          dataclasses.replace(second, alt_name=b)], n, PROBE_LENGTH)
    sequences = composite_probes(rng, first, second, spacing, n) + partners["sequence"].tolist()
    groups = np.array([pair] * n + partners["tf"].tolist())
    scores = latent_scores(model, sequences, kind=kind)
    names = [f"topic_{m:03d}" for m in range(scores.shape[1])]
    table = find_cooperative_pairs(scores, groups, [(pair, a, b)], names, max_q, min_effect)
    hits = table[table["assigned"]]
    if len(hits):
        return {"route": PAIR_ROUTES[0], "topic": hits["topic"].iloc[0], "q_value": float(hits["q_value"].iloc[0])}
    _, p_a, e_a = mann_whitney_greater(scores[groups == a], scores[groups == b])
    _, p_b, e_b = mann_whitney_greater(scores[groups == b], scores[groups == a])
    q = benjamini_hochberg(np.stack([p_a, p_b]))
    passing = (q < max_q) & (np.stack([e_a, e_b]) >= min_effect)
    best = [int(np.argmin(np.where(passing[i], q[i], np.inf))) for i in range(2)]
    if not passing.any(axis=1).all() or best[0] == best[1]:
        return {"route": PAIR_ROUTES[2], "topic": "", "q_value": float("nan")}
    return {"route": PAIR_ROUTES[1], "topic": f"{names[best[0]]},{names[best[1]]}",
            "q_value": float(max(q[0, best[0]], q[1, best[1]]))}


def planted_pair(truth: pd.DataFrame, motifs: dict) -> tuple[Motif, Motif, int] | None:
    """``(first, second, spacing)`` of a generated set's planted pair, read from its truth table.

    On the + strand the first member's site comes first; the spacing is the bp between the two sites
    (the most common value). None when the set has no pair or its motifs are missing.
    """
    pair = truth[(truth["kind"] == "pair") & (truth["strand"] == "+")]
    if pair.empty:
        return None
    ordered = pair.sort_values(["peak", "start"], kind="stable")
    firsts, seconds = ordered.groupby("peak").nth(0), ordered.groupby("peak").nth(1)
    if len(seconds) == 0:
        return None
    first, second = firsts["feature"].mode().iloc[0], seconds["feature"].mode().iloc[0]
    if first not in motifs or second not in motifs:
        return None
    spacing = int((seconds["start"].to_numpy() - firsts["end"].to_numpy()[: len(seconds)]).astype(int)[0])
    return motifs[first], motifs[second], spacing
