"""Cooperative binding: topics where a TF pair's probes outscore each partner's own probes, and composite motifs.

The paper (Kshirsagar et al. 2022, Fig. 3a-c, Table S3, Fig. S7) scores CAP-SELEX probes of TF pairs
and HT-SELEX probes of each partner through the encoder: a topic captures the pair's cooperative
binding when the pair's probes score higher than either partner's. Here, for every pair and topic,
two one-sided Mann-Whitney U tests (:func:`bindvae.analysis.stats.mann_whitney_greater`) ask whether
the pair's probes score higher than the first partner's and than the second partner's. Both must
hold, so the pair's p-value is the larger of the two (an intersection-union test, valid at the
nominal level); Benjamini-Hochberg runs over the whole (pair, topic) table. A pair is assigned to a
topic when q < ``max_q`` (0.05) and both effect sizes (AUROC of the pair's probes against the
partner's) are at least ``min_effect`` (:data:`bindvae.analysis.naming.MIN_EFFECT`, 0.75), and the
topic is not flagged as a non-TF topic (:mod:`bindvae.analysis.flags`).

Probes come from ``pairs=jaspar``: JASPAR's heterodimer matrices (names with ``::``, CORE
vertebrates via pyjaspar, offline) whose partners both have matrices of their own, each sampled like
Algorithm 1's probes (:func:`bindvae.analysis.naming.sample_probes`, ``PROBE_LENGTH`` bp of uniform
background around each site); or from ``pairs=FILE``: a TSV with columns ``pair`` and ``sequence``,
where ``pair`` is ``A::B`` for a pair's probes and ``A`` or ``B`` for a partner's.

Composite motifs (Fig. 3c): the paper scored 10% of all 15-mers. 4^15 is 1.07e9, so here a fixed
number (``n_15mers``, default :data:`N_15MERS`) is drawn uniformly with a seeded generator, scored
through the encoder (eight 8 bp windows each, :func:`bindvae.infer.concentration_from_windows`), and
each assigned topic's ``n_top`` (200) best build a PWM (:func:`bindvae.analysis.motifs.build_pwm`)
that is compared with the pair's JASPAR matrix (Tomtom-style, against the pair matrices and the
motif database together).
"""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np
import pandas as pd

from bindvae.analysis import naming
from bindvae.analysis.compare import compare_motifs
from bindvae.analysis.motifs import build_pwm, decode_kmers, window_codes_of_kmers
from bindvae.analysis.stats import benjamini_hochberg, mann_whitney_greater
from bindvae.errors import InputError
from bindvae.infer import Model, concentration_from_windows, to_scores
from bindvae.motif import Motif

logger = logging.getLogger(__name__)

SEPARATOR = "::"
PROBE_LENGTH = 30  # bp; CAP-SELEX ligands are 40 bp, the widest JASPAR pair matrix 17
N_15MERS = 1_000_000
COMPOSITE_K = 15
COOPERATIVE_COLUMNS = ["pair", "topic", "first", "second", "n_pair", "n_first", "n_second", "p_first", "p_second",
                       "effect_first", "effect_second", "p_value", "q_value", "status", "assigned"]
COMPOSITE_COLUMNS = ["pair", "topic", "composite", "consensus", "pair_matrix", "pair_matrix_q", "pair_matrix_rank",
                     "best_match", "best_match_q"]
COOPERATIVE, NOT_SIGNIFICANT, SMALL_EFFECT = "cooperative", "not significant", "small effect"


@dataclasses.dataclass(frozen=True)
class PairProbes:
    """Labelled probes of TF pairs and their partners.

    Attributes:
        probes: ``sequence``, ``group`` (a pair ``A::B`` or a partner ``A``).
        pairs: ``(pair, first, second)`` tested, in order.
        matrices: pair name -> its matrices (empty for probes read from a file).
        source: one line saying where the probes came from.
    """

    probes: pd.DataFrame
    pairs: list
    matrices: dict
    source: str


def split_pair(name: str) -> tuple[str, str] | None:
    """``("A", "B")`` of ``"A::B"``; None for a name that is not a pair of two."""
    parts = name.split(SEPARATOR)
    return (parts[0], parts[1]) if len(parts) == 2 and all(parts) else None


def jaspar_pair_probes(database: list[Motif], n_per_group: int, seed: int, source: str = "JASPAR") -> PairProbes:
    """Probes of every heterodimer matrix in ``database`` whose partners have matrices of their own.

    Partner names are matched case-insensitively (``Pou5f1::Sox2`` -> ``POU5F1``, ``SOX2``). A pair with
    several matrices (``FOS::JUN``) has its probes split among them, as Algorithm 1's probes are.

    Args:
        database: motifs with the TF name as ``alt_name`` (e.g. :func:`bindvae.motif.load_motif_database`).
        n_per_group: probes per pair and per partner.
        seed: seed of the sampler.
        source: the database, for the description.

    Returns:
        The probes; ``matrices`` holds each pair's matrices.
    """
    by_name: dict[str, list[Motif]] = {}
    for motif in database:
        by_name.setdefault((motif.alt_name or motif.name).upper(), []).append(motif)
    pairs, matrices, labelled = [], {}, []
    for name, motifs in by_name.items():
        parts = split_pair(name)
        if parts is None or not all(p in by_name for p in parts):
            continue
        label = SEPARATOR.join(parts)
        pairs.append((label, *parts))
        matrices[label] = motifs
        labelled += [dataclasses.replace(m, alt_name=label) for m in motifs]
    partners = dict.fromkeys(p for _, a, b in pairs for p in (a, b))
    labelled += [dataclasses.replace(m, alt_name=p) for p in partners for m in by_name[p]]
    probes = naming.sample_probes(np.random.default_rng(seed), labelled, n_per_group, PROBE_LENGTH)
    text = (f"{len(pairs)} pairs from {source} ({n_per_group} probes per pair and per partner, "
            f"{PROBE_LENGTH} bp, seed {seed})")
    return PairProbes(probes.rename(columns={"tf": "group"}), pairs, matrices, text)


def read_pair_probes(path: str | os.PathLike) -> PairProbes:
    """Pair probes from a TSV with columns ``pair`` (``A::B``, or ``A`` for a partner's probes) and ``sequence``.

    Raises:
        InputError: unreadable file, missing columns, a sequence with letters other than ACGTN, or no
            pair whose probes and both partners' probes are present.
    """
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot read pair probe table ({err.__class__.__name__})") from None
    if not {"pair", "sequence"} <= set(table.columns):
        raise InputError(path, "pair probe table needs columns 'pair' and 'sequence'", 1)
    for row, seq in enumerate(table["sequence"], start=2):
        if not seq or set(seq.upper()) - set("ACGTN"):
            raise InputError(path, f"probe sequence {seq!r} has letters other than ACGTN", row)
    groups = set(table["pair"])
    pairs = [(g, *split_pair(g)) for g in dict.fromkeys(table["pair"]) if split_pair(g)]
    pairs = [p for p in pairs if p[1] in groups and p[2] in groups]
    if not pairs:
        raise InputError(path, "no pair 'A::B' with probes of its own and of both partners 'A' and 'B'")
    probes = pd.DataFrame({"sequence": table["sequence"].str.upper(), "group": table["pair"]})
    return PairProbes(probes, pairs, {}, f"{os.path.basename(path)} ({len(pairs)} pairs)")


def find_cooperative_pairs(scores: np.ndarray, groups, pairs: list, topic_names: list[str], max_q: float = 0.05,
               min_effect: float = naming.MIN_EFFECT, flagged: set | None = None) -> pd.DataFrame:
    """The cooperative test of the module docstring for every (pair, topic).

    Args:
        scores: ``[n_probes, M]`` latent scores.
        groups: ``n_probes`` labels (pair or partner name).
        pairs: ``(pair, first, second)`` to test.
        topic_names: ``M`` names.
        max_q: BH level.
        min_effect: floor on both effect sizes.
        flagged: topics flagged as non-TF (never assigned; status ``flagged topic``).

    Returns:
        :data:`COOPERATIVE_COLUMNS`, one row per (pair, topic), sorted by p-value.
    """
    scores = np.asarray(scores, dtype=np.float64)
    groups = np.asarray([str(g) for g in groups])
    frames = []
    for pair, first, second in pairs:
        own = scores[groups == pair]
        u1, p1, e1 = mann_whitney_greater(own, scores[groups == first])
        u2, p2, e2 = mann_whitney_greater(own, scores[groups == second])
        frames.append(pd.DataFrame({
            "pair": pair, "topic": topic_names, "first": first, "second": second, "n_pair": len(own),
            "n_first": int(np.sum(groups == first)), "n_second": int(np.sum(groups == second)),
            "p_first": p1, "p_second": p2, "effect_first": e1, "effect_second": e2, "p_value": np.maximum(p1, p2)}))
    table = pd.concat(frames, ignore_index=True)
    table["q_value"] = benjamini_hochberg(table["p_value"].to_numpy())
    small = np.minimum(table["effect_first"], table["effect_second"]) < min_effect
    status = np.select([table["q_value"] >= max_q, small], [NOT_SIGNIFICANT, SMALL_EFFECT], COOPERATIVE)
    table["status"] = np.where((status == COOPERATIVE) & table["topic"].isin(list(flagged or ())), "flagged topic",
                               status)
    table["assigned"] = table["status"] == COOPERATIVE
    return table[COOPERATIVE_COLUMNS].sort_values(["p_value", "pair", "topic"], kind="stable").reset_index(drop=True)


def sample_kmer_codes(rng: np.random.Generator, n: int, k: int = COMPOSITE_K) -> np.ndarray:
    """``n`` distinct k-mer codes drawn uniformly from all 4^k (fewer when duplicates were drawn), sorted."""
    return np.unique(rng.integers(0, 4**k, size=n, dtype=np.int64))


def composite_motifs(model: Model, topics: list[int], names: list[str], n_kmers: int = N_15MERS, seed: int = 0,
                     n_top: int = 200, kind: str = "mean") -> tuple[list[Motif], int]:
    """One 15-mer PWM per topic from the best of a uniform, seeded sample of 15-mers scored by the encoder.

    Args:
        model: the model.
        topics: topic indices to build motifs for.
        names: the motifs' names (one per topic; e.g. ``composite_topic_003``).
        n_kmers: 15-mers drawn.
        seed: seed of the draw.
        n_top: best 15-mers per topic used for the PWM.
        kind: latent score.

    Returns:
        ``(motifs, n_scored)``: the PWMs and how many distinct 15-mers were scored.
    """
    codes = sample_kmer_codes(np.random.default_rng(seed), n_kmers)
    windows = window_codes_of_kmers(codes, COMPOSITE_K).astype(np.int32)
    scores = to_scores(concentration_from_windows(model, windows), kind)
    motifs = []
    for topic, name in zip(topics, names):
        best = np.argsort(-scores[:, topic], kind="stable")[:n_top]
        motifs.append(build_pwm(decode_kmers(codes[best], COMPOSITE_K), name=name))
    return motifs, len(codes)


def compare_composites(motifs: dict, rows: list, matrices: dict, database: list[Motif]) -> pd.DataFrame:
    """Composite motifs against their pair's matrices, among the pair matrices and the database.

    Args:
        motifs: topic -> its composite :class:`Motif`.
        rows: ``(pair, topic)`` to report.
        matrices: pair -> its matrices (a pair without any gets empty ``pair_matrix`` columns).
        database: the motif database (may be empty).

    Returns:
        One row per ``(pair, topic)``: ``pair``, ``topic``, ``composite`` (motif name), ``consensus``,
        ``pair_matrix`` (the pair's best-matching matrix), ``pair_matrix_q``, ``pair_matrix_rank``
        (1 = the best match of all targets), ``best_match`` (``id name``), ``best_match_q``.
    """
    known = {m.name for m in database}
    targets = list(database) + [m for ms in matrices.values() for m in ms if m.name not in known]
    targets = list({m.name: m for m in targets}.values())
    table = compare_motifs(list(motifs.values()), targets) if targets and motifs else pd.DataFrame()
    out = []
    for pair, topic in rows:
        motif = motifs[topic]
        row = {"pair": pair, "topic": topic, "composite": motif.name, "consensus": motif.consensus,
               "pair_matrix": "", "pair_matrix_q": np.nan, "pair_matrix_rank": np.nan, "best_match": "",
               "best_match_q": np.nan}
        if len(table):
            own = table[table["query"] == motif.name]
            best = own.iloc[0]
            row.update(
                best_match=f"{best['target']} {best['target_name']}".strip(), best_match_q=float(best["q_value"])
            )
            hit = own[own["target"].isin({m.name for m in matrices.get(pair, [])})]
            if len(hit):
                row.update(pair_matrix=str(hit["target"].iloc[0]), pair_matrix_q=float(hit["q_value"].iloc[0]),
                           pair_matrix_rank=int(hit["rank"].iloc[0]))
        out.append(row)
    return pd.DataFrame(out, columns=COMPOSITE_COLUMNS)


def pair_matrices(pairs: list, database: list[Motif]) -> dict:
    """Pair -> the database's matrices of the same two TFs (case-insensitive, either order), for probes from a file."""
    def key(name: str):
        parts = split_pair(name.upper())
        return frozenset(parts) if parts else None

    return {pair: [m for m in database if key(m.alt_name or m.name) == key(pair)] for pair, *_ in pairs}


@dataclasses.dataclass(frozen=True)
class Cooperative:
    """What :func:`analyze_pairs` found.

    Attributes:
        table: :data:`COOPERATIVE_COLUMNS` plus the composite columns on assigned rows.
        motifs: composite motifs, one per topic with an assigned pair (alt name: its pairs).
        n_scored: distinct 15-mers scored.
        note: header line for ``cooperative.tsv`` (probe source, tests, the 15-mer sample).
    """

    table: pd.DataFrame
    motifs: list
    n_scored: int
    note: str


def analyze_pairs(model: Model, pair_probes: PairProbes, database: list[Motif], topic_names: list[str],
                  flagged: set, max_q: float = 0.05, min_effect: float = naming.MIN_EFFECT,
                  n_15mers: int = N_15MERS, seed: int = 0, kind: str = "mean") -> Cooperative:
    """The cooperative test on every (pair, topic), and a composite motif for every topic with an assigned pair.

    Args:
        model: the model.
        pair_probes: :func:`jaspar_pair_probes` or :func:`read_pair_probes`.
        database: motif database the composites are also compared with.
        topic_names: ``M`` names.
        flagged: topics flagged as non-TF.
        max_q, min_effect: assignment rules (:func:`find_cooperative_pairs`).
        n_15mers: 15-mers drawn for the composite motifs.
        seed: seed of that draw.
        kind: latent score.

    Returns:
        The table, the composite motifs and the number of 15-mers scored.
    """
    from bindvae.infer import latent_scores

    probes = pair_probes.probes
    scores = latent_scores(model, probes["sequence"].tolist(), kind=kind)
    table = find_cooperative_pairs(scores, probes["group"], pair_probes.pairs, topic_names, max_q, min_effect, flagged)
    hits = table[table["assigned"]]
    topics = list(dict.fromkeys(sorted(hits["topic"])))
    motifs, n_scored = [], 0
    if topics:  # the 15-mer sample is scored only when some topic needs a composite motif
        motifs, n_scored = composite_motifs(model, [topic_names.index(t) for t in topics],
                                            [f"composite_{t}" for t in topics], n_15mers, seed, kind=kind)
    by_topic = {}
    for topic, motif in zip(topics, motifs):
        pairs = hits.loc[hits["topic"] == topic, "pair"].tolist()
        by_topic[topic] = dataclasses.replace(motif, alt_name=",".join(pairs))
    matrices = pair_probes.matrices or pair_matrices(pair_probes.pairs, database)
    composites = compare_composites(by_topic, list(zip(hits["pair"], hits["topic"])), matrices, database)
    table = table.merge(composites, on=["pair", "topic"], how="left")
    fraction = n_scored / 4**COMPOSITE_K
    note = (f"pairs: {pair_probes.source}; one-sided Mann-Whitney of the pair's probes against each partner's, "
            f"p = max of the two, BH over the table; assigned at q < {max_q:g} with both effect sizes >= "
            f"{min_effect:g}; composite motifs: {n_scored:,} distinct 15-mers drawn uniformly (seed {seed}, "
            f"{fraction:.3%} of all 4^15), top 200 per topic")
    return Cooperative(table, list(by_topic.values()), n_scored, note)


def load_pair_probes(pairs: str, database: list[Motif], motif_db: str, jaspar_release: str, n_per_group: int,
                     seed: int) -> PairProbes:
    """The probes ``pairs=`` asks for: ``jaspar`` (sampled from JASPAR's heterodimers) or a TSV file.

    Raises:
        InputError: an unreadable or malformed file; ConfigError: no JASPAR pair with both partners.
    """
    from bindvae.errors import ConfigError

    if pairs != "jaspar":
        return read_pair_probes(pairs)
    if motif_db != "jaspar":
        from bindvae.motif import load_motif_database  # Deferred: pyjaspar opens its SQLite file.

        database = load_motif_database(jaspar_release)
    probes = jaspar_pair_probes(database, n_per_group, seed, f"{jaspar_release} CORE vertebrates via pyjaspar")
    if not probes.pairs:
        raise ConfigError("pairs", f"{jaspar_release} has no pair matrix whose partners both have matrices")
    return probes


def write_cooperative(result: Cooperative, out, run_name: str) -> tuple[list, dict]:
    """Writes ``cooperative.tsv``, ``composite.meme`` and each composite's logo (``logos/composite_<topic>.png``).

    Args:
        result: :func:`analyze_pairs`.
        out: the analysis folder.
        run_name: named in ``composite.meme``'s comment.

    Returns:
        ``(figures, tables)`` for the report: ``(caption, logo path)`` per composite motif, and the
        assigned pairs as a small table under its caption.
    """
    from pathlib import Path

    from bindvae import plotting
    from bindvae.io import write_text_atomic
    from bindvae.motif import write_meme

    out = Path(out)
    write_text_atomic(
        out / "cooperative.tsv",
        f"# {result.note}\n" + result.table.to_csv(sep="\t", index=False, float_format="%.6g"),
        parents=True,
    )
    write_meme(
        out / "composite.meme",
        result.motifs,
        comment=f"BindVAE composite motifs of {run_name} ({result.n_scored:,} sampled 15-mers, top 200 per topic)",
    )
    figures = []
    hits = result.table[result.table["assigned"]]
    for motif in result.motifs:
        path = f"logos/{motif.name}.png"
        plotting.save_figure(plotting.logo_figure(motif.pwm, f"{motif.name} ({motif.alt_name})"), out / path)
        row = hits[hits["composite"] == motif.name].iloc[0]
        match = (f"; pair matrix {row['pair_matrix']} q {row['pair_matrix_q']:.2g}, rank {int(row['pair_matrix_rank'])}"
                 if row["pair_matrix"] else "")
        figures.append((f"Composite motif of {row['topic']} ({motif.alt_name}) from sampled 15-mers{match}", path))
    shown = hits[["pair", "topic", "q_value", "effect_first", "effect_second", "consensus", "pair_matrix",
                  "pair_matrix_q", "best_match"]].head(50)
    caption = (f"Cooperative binding: {len(hits)} (pair, topic) assigned of {len(result.table)} tested "
               f"(cooperative.tsv; {result.note})")
    return figures, {caption: shown}
