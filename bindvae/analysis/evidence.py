"""All the evidence that names one run's topics: motifs, database matches, Algorithm 1, composition.

Shared by the analysis of a run and by model selection across a sweep, so both name topics alike.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd

from bindvae.analysis import flags as flags_lib
from bindvae.analysis import naming, sites, titles, topics
from bindvae.analysis.compare import compare_motifs
from bindvae.analysis.families import family_of
from bindvae.infer import Model, latent_scores
from bindvae.motif import Motif

MATCH_COLUMNS = ["query", "target", "target_name", "offset", "strand", "overlap_p", "p_value", "e_value", "q_value",
                 "rank", "repeat", "assigned"]
logger = logging.getLogger(__name__)
MATCHES_KEPT = 10  # database matches per topic written to motif_matches.tsv


@dataclasses.dataclass(frozen=True)
class NamingRules:
    """Thresholds of every naming rule (defaults and their measurements in the README).

    Attributes:
        max_q: Benjamini-Hochberg level of Algorithm 1.
        min_effect: Algorithm 1's effect-size (AUROC) floor.
        max_tfs_per_topic: most TFs assigned per topic, by probes and by motif similarity each.
        motif_max_q: q-value level of motif-similarity matches.
        titles: composition thresholds (:class:`bindvae.analysis.titles.TitleRules`).
        flags: non-TF flag thresholds (:class:`bindvae.analysis.flags.FlagRules`).
    """

    max_q: float = 0.05
    min_effect: float = naming.MIN_EFFECT
    max_tfs_per_topic: int = naming.MAX_TFS_PER_TOPIC
    motif_max_q: float = 0.05
    titles: titles.TitleRules = titles.TitleRules()
    flags: flags_lib.FlagRules = flags_lib.FlagRules()


@dataclasses.dataclass(frozen=True)
class TopicNames:
    """What :func:`name_topics` found.

    Attributes:
        motifs: one motif per topic.
        tenmers: the 10-mers each motif was built from (``topic, rank, kmer, score``).
        matches: the best :data:`MATCHES_KEPT` database matches per topic, with ``assigned``.
        mapping: Algorithm 1 table after the composition rules, with each TF's ``family``.
        titles: one row per topic (:data:`bindvae.analysis.titles.TITLE_COLUMNS`).
        probe_data: ``(scores [n_probes, M], labels)``, or None without probes.
        flags: non-TF flags of every topic (:data:`bindvae.analysis.flags.FLAG_COLUMNS`).
        comparison: every (topic motif, database motif) pair compared, before any was kept or assigned
            (:func:`bindvae.analysis.compare.compare_motifs`); None without a database.
        sites: peaks and background peaks with a site of each topic's motif, then of each part's (its
            ``site_auroc`` measured with its topic's score) (:func:`bindvae.analysis.sites.site_table`);
            None when no sequences were given.
        part_motifs: the two sites of each topic whose 10-mers hold two (named like the topic plus
            :data:`bindvae.analysis.motifs.PART_SUFFIXES`, :func:`bindvae.analysis.motifs.split_motifs`); their
            database matches are in ``matches`` under their own names, listed but never assigned: titles,
            flags, sites and signatures rest on each topic's motif and the probes.
    """

    motifs: list
    tenmers: pd.DataFrame
    matches: pd.DataFrame
    mapping: pd.DataFrame
    titles: pd.DataFrame
    probe_data: tuple | None
    flags: pd.DataFrame | None = None
    comparison: pd.DataFrame | None = None
    sites: pd.DataFrame | None = None
    part_motifs: list = dataclasses.field(default_factory=list)


def name_topics(model: Model, database: list[Motif], probes: pd.DataFrame | None, families: dict[str, str],
                rules: NamingRules = NamingRules(), kind: str = "mean", ranking: str = "encoder",
                bias_motifs: list[Motif] | None = None, usage: np.ndarray | None = None,
                sequences: list[str] | None = None, seed: int = 0, peak_scores: np.ndarray | None = None,
                split_motifs: bool = False) -> TopicNames:
    """Motifs, database matches, Algorithm 1 and titles of every topic.

    Args:
        model: the model.
        database: motifs to match against (may be empty).
        probes: labelled probes (``sequence``, ``tf``), or None.
        families: TF name -> family key (:mod:`bindvae.analysis.families`).
        rules: thresholds.
        kind: latent score (``mean`` or ``concentration``).
        ranking: how topic 10-mers are ranked (:data:`bindvae.analysis.topics.RANKINGS`).
        bias_motifs: cutting-bias motifs for the flags (None: the bundled ones).
        usage: each topic's share of the analysed peaks (:func:`bindvae.analysis.peaks.topic_usage`) for
            the ``unused`` flag; None: not measured.
        sequences: the analysed peaks' sequences: each topic motif's sites are counted in them
            (:func:`bindvae.analysis.sites.site_table`, seeded by ``seed``), and a TF match lifts a
            composition flag only when they are enriched (:mod:`bindvae.analysis.flags`); None: not counted.
        seed: seed of the site count's peak sample and background peaks.
        peak_scores: ``[n_peaks, M]`` the same peaks' topic proportions, for each motif's ``site_auroc``
            (None: not measured).
        split_motifs: ours: a topic whose 10-mers hold two sites also gets a motif of each
            (:func:`bindvae.analysis.topics.topic_motif_sets`), compared with the database too.

    Returns:
        The evidence, the titles and the non-TF flags (a flagged topic's title is its flag).
    """
    sets, tenmers = topics.topic_motif_sets(model, kind=kind, ranking=ranking, split=split_motifs)
    motifs, parts = [whole for whole, *_ in sets], [part for _, *rest in sets for part in rest]
    matches, comparison = pd.DataFrame(columns=MATCH_COLUMNS), None
    if database:
        matches = comparison = compare_motifs(motifs + parts, database)
        repeats = {m.name for m in database if titles.is_repeat_motif(m)}
        matches["repeat"] = matches["target"].isin(repeats)
        matches = naming.assign_matches(matches, rules.motif_max_q, rules.max_tfs_per_topic)
        matches.loc[matches["query"].isin({m.name for m in parts}), "assigned"] = False
        matches = matches[matches["rank"] <= MATCHES_KEPT].reset_index(drop=True)
    probe_data = None
    mapping = pd.DataFrame(columns=naming.MAPPING_COLUMNS).astype(
        {"assigned": bool, "motif_rank": float, "effect_size": float})
    if probes is not None and probes["tf"].nunique() < 2:
        logger.warning("Algorithm 1 skipped: the probes come from a single TF")
    elif probes is not None:
        probe_data = (latent_scores(model, probes["sequence"].tolist(), kind=kind), probes["tf"].tolist())
        supported = naming.supported_by_matches(matches, probe_data[1], families)
        mapping = naming.map_topics_to_tfs(*probe_data, max_q=rules.max_q, min_effect=rules.min_effect,
                                           max_tfs_per_topic=rules.max_tfs_per_topic, supported=supported)
    composition = titles.topic_composition(model, rules.titles.n_top)
    table, mapping = titles.title_topics(composition, mapping, matches, rules.titles)
    site_stats = None if sequences is None else sites.site_table(motifs, sequences, seed=seed, scores=peak_scores)
    flags = _flags(model, motifs, composition, matches, database, bias_motifs, rules, usage, site_stats)
    if parts and sequences is not None:  # each part's sites, followed (site_auroc) by its topic's score
        owner = {m.name: k for k, m in enumerate(motifs)}
        columns = [owner[part.name[:-1]] for part in parts]
        part_scores = None if peak_scores is None else np.asarray(peak_scores)[:, columns]
        part_sites = sites.site_table(parts, sequences, seed=seed, scores=part_scores)
        site_stats = pd.concat([site_stats, part_sites], ignore_index=True)
    table, mapping, matches = flags_lib.apply_flags(table, mapping, matches, flags)
    mapping.insert(2, "family", [family_of(tf, families) for tf in mapping["tf"]])
    return TopicNames(motifs, tenmers, matches, mapping, table, probe_data, flags, comparison, site_stats, parts)


def _flags(model: Model, motifs, composition, matches, database, bias_motifs, rules: NamingRules,
           usage: np.ndarray | None = None, site_stats: pd.DataFrame | None = None) -> pd.DataFrame:
    from bindvae.vae import network as model_lib

    phi = np.asarray(model_lib.topic_kmer_matrix(model.params), dtype=np.float64)
    entropy = flags_lib.entropy_measures(phi, list(model.vocabulary.kmers), rules.titles.n_top, rules.flags.max_entropy)
    bias = flags_lib.bias_matches(motifs, flags_lib.bias_motifs() if bias_motifs is None else bias_motifs, database)
    return flags_lib.flag_topics(composition, entropy, bias, matches, rules.flags, rules.titles, usage, site_stats)


def sampled_probes(database: list[Motif], n_per_tf: int, seed: int) -> pd.DataFrame | None:
    """Probes sampled from the database's PWMs (None for an empty database)."""
    return naming.sample_probes(np.random.default_rng(seed), database, n_per_tf) if database else None
