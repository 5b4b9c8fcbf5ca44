"""The whole analysis of one run (or of a sweep), written into ``<run_dir>/analysis/``.

Reads checkpoints only; every file is written atomically (temporary name, then rename).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from bindvae import plotting
from bindvae.analysis import (
    convergence,
    cooperative,
    evidence,
    families,
    flags,
    naming,
    other_analyses,
    peaks,
    report,
    retrieval,
    selection,
    signatures,
    topics,
)
from bindvae.analysis.compare import compare_motifs
from bindvae.analysis.peak_input import read_peaks, training_peaks
from bindvae.analysis.peaks import CALL_SCORES, DEFAULT_CALL_RATIO, DEFAULT_CALL_SCORE
from bindvae.analysis.report_content import FILES, pair_logos, sites_fact, summary_rows, topic_sections
from bindvae.errors import ConfigError, InputError
from bindvae.infer import Model, has_kmer_totals, latent_scores, load_model
from bindvae.io import check_writable_dir, write_text_atomic
from bindvae.motif import Motif, read_meme, write_meme
from bindvae.tracking import read_metrics

logger = logging.getLogger(__name__)

DEFAULT_JASPAR = "JASPAR2024"
FIGURE_TFS = 40  # bars in the accessibility figure (the most accessible TFs when more are mapped)


@dataclasses.dataclass(frozen=True)
class AnalysisOptions:
    """What to analyse and how.

    Attributes:
        peaks: FASTA of peak sequences or a ``.npz`` feature file (None: skip per-peak outputs).
        probes: labelled probe TSV (None: sample probes from the motif database's PWMs).
        tf_per_block: TF names of the probe table's blocks.
        motif_db: ``"jaspar"`` (pyjaspar, offline), ``"none"``, or a MEME file.
        jaspar_release: pyjaspar release used for ``motif_db="jaspar"``.
        compare: another run directory whose ``analysis/accessibility.tsv`` is overlaid (Fig. 3d).
        kind: latent score used everywhere (``mean`` or ``concentration``).
        motif_ranking: how each topic's 10-mers are ranked for its motif: ``encoder`` (probes through
            the encoder) or ``decoder`` (the topic's k-mer log-ratios); see
            :func:`bindvae.analysis.topics.topic_motifs`.
        n_probes_per_tf: probes sampled per TF (split among its matrices) when no probes are given;
            the number is written in ``tf_mapping.tsv``'s header and the report.
        rules: thresholds of Algorithm 1, motif similarity and the titles (:class:`evidence.NamingRules`).
        max_topics_per_tf: model selection counts a TF assigned to at most this many topics.
        seed: seed of the probe sampler (and of the pair probes and the 15-mer sample).
        pairs: ``"jaspar"`` or a TSV of pair probes for the cooperative-binding test (None: skipped);
            see :mod:`bindvae.analysis.cooperative`.
        n_15mers: 15-mers drawn for the composite motifs.
        bias_motifs: MEME file of cutting-bias motifs for the flags (None: the bundled Tn5 motif).
        gold: file of gold-standard TF names (e.g. those expressed in the cell type): writes
            ``retrieval.tsv`` (:mod:`bindvae.analysis.retrieval`); None: no retrieval scores.
        signature_q: ours: topics whose motifs match at this q-value are one signature's look-alikes,
            and with a database so are the topics matching a topic's best database motif at it (namesakes,
            :mod:`bindvae.analysis.signatures`); the per-peak TF calls score each topic together with
            them. 0 scores every topic alone.
        signature_piece_q: ours: a topic whose best database match is another topic's best too, at a
            q-value below this, joins that topic's signature as a piece of the same long site
            (:func:`bindvae.analysis.signatures.namesakes`); 0: off.
        signature_apart_q: ours: two look-alike topics whose best database matches differ (each at
            ``signature_q``) stay apart unless one matches the other's best at a q-value below this
            (:func:`bindvae.analysis.signatures.keep_apart`); 0: off.
        call_score: ours: the per-peak score the TF calls read (a :func:`bindvae.infer.latent_scores`
            kind): ``density`` (the default: each topic's expected k-mers as a fraction of all the peak's
            gapped 8-mers; features that hold only a model's chosen k-mers fall back to ``shares``),
            ``shares``, ``counts``, ``mean`` or ``concentration``.
        call_ratio: ours: a topic calls its TF in a peak (``peak_tfs.tsv``) only where its signature
            score is at least this many times its mean over the run's training peaks (the analysed
            peaks' own when those cannot be read; :func:`bindvae.analysis.peaks.relative_scores`);
            0 calls wherever the topic is assigned.
        split_motifs: ours: a topic whose 10-mers hold two unrelated sites also gets a motif of each,
            ``topic_NNNa`` and ``topic_NNNb`` (:func:`bindvae.analysis.motifs.split_motifs`), written and
            compared with the database beside its motif; listed, never used for names. False: one motif
            per topic, as the paper.
    """

    peaks: str | None = None
    probes: str | None = None
    tf_per_block: tuple = ()
    motif_db: str = "jaspar"
    jaspar_release: str = DEFAULT_JASPAR
    compare: str | None = None
    kind: str = "mean"
    motif_ranking: str = "encoder"
    n_probes_per_tf: int = 200
    rules: evidence.NamingRules = evidence.NamingRules()
    max_topics_per_tf: int = selection.MAX_TOPICS_PER_TF
    seed: int = 0
    gold: str | None = None
    pairs: str | None = None
    n_15mers: int = cooperative.N_15MERS
    bias_motifs: str | None = None
    signature_q: float = signatures.DEFAULT_MAX_Q
    signature_piece_q: float = signatures.DEFAULT_PIECE_Q
    signature_apart_q: float = signatures.DEFAULT_APART_Q
    call_score: str = DEFAULT_CALL_SCORE
    call_ratio: float = DEFAULT_CALL_RATIO  # (the field `peaks` hides the module here)
    split_motifs: bool = True


def check_options(options: AnalysisOptions) -> None:
    """Raise ConfigError for an option out of range (before anything slow runs)."""
    if options.motif_ranking not in topics.RANKINGS:
        raise ConfigError("motif_ranking", f"must be one of {topics.RANKINGS}, got {options.motif_ranking!r}")
    if options.kind not in ("mean", "concentration"):
        raise ConfigError("kind", f"must be 'mean' or 'concentration', got {options.kind!r}")
    rules = options.rules
    fractions = [("max_q", rules.max_q), ("motif_max_q", rules.motif_max_q), ("min_effect", rules.min_effect),
                 ("min_repeat_share", rules.titles.min_repeat_share), ("min_gc_shift", rules.titles.min_gc_shift),
                 ("min_low_entropy_share", rules.flags.min_low_entropy_share), ("bias_max_q", rules.flags.bias_max_q),
                 ("min_used_fraction", rules.flags.min_used_fraction), ("signature_q", options.signature_q),
                 ("signature_piece_q", options.signature_piece_q), ("signature_apart_q", options.signature_apart_q)]
    for key, value in fractions:
        if not 0.0 <= value <= 1.0:
            raise ConfigError(key, f"must be in [0, 1], got {value}")
    for key, value in [("max_tfs_per_topic", rules.max_tfs_per_topic), ("n_probes_per_tf", options.n_probes_per_tf),
                       ("max_topics_per_tf", options.max_topics_per_tf), ("n_15mers", options.n_15mers)]:
        if value < 1:
            raise ConfigError(key, f"must be at least 1, got {value}")
    if options.call_score not in CALL_SCORES:
        raise ConfigError("call_score", f"must be one of {', '.join(CALL_SCORES)}, got {options.call_score!r}")
    if not options.call_ratio >= 0:
        raise ConfigError("call_ratio", f"must be at least 0, got {options.call_ratio}")
    if rules.titles.min_fold < 0:
        raise ConfigError("min_fold", f"must be at least 0, got {rules.titles.min_fold}")


def read_gold(options: AnalysisOptions) -> list[str] | None:
    """The gold TF list, checked before anything slow runs (None without ``gold``)."""
    if not options.gold:
        return None
    if options.motif_db == "none" and not options.probes:
        raise ConfigError("gold", "retrieval scores need TFs to be named: give probes= or a motif database")
    return retrieval.read_gold(options.gold)


def _retrieval_rows(run: str, gold: list[str], named: evidence.TopicNames, database: list[Motif]) -> list[dict]:
    """Algorithm 1's and motif similarity's retrieval rows of one run (those its inputs allow)."""
    probes = named.probe_data
    return retrieval.run_rows(run, gold, named.mapping if probes is not None else None, probes[1] if probes else [],
                              named.matches if database else None, _database_tfs(database))


def _database_tfs(database: list[Motif]) -> list[str]:
    return [m.alt_name or m.name for m in database]


def _write_retrieval(rows: list[dict], out: Path, options: AnalysisOptions, gold: list[str], note: str) -> pd.DataFrame:
    frame = retrieval.table(rows)
    _write_tsv(frame, out / "retrieval.tsv", f"gold: {os.path.basename(options.gold)} ({len(gold)} TFs listed; n_gold "
                                             f"counts those the method can name); {note}")
    return frame


def load_families(options: AnalysisOptions) -> dict[str, str]:
    """TF name -> family key: JASPAR's with ``motif_db=jaspar``, else none (each TF its own family)."""
    return families.jaspar_families(options.jaspar_release) if options.motif_db == "jaspar" else {}


def load_database(options: AnalysisOptions) -> tuple[list[Motif], str]:
    """The motif database and a one-line description of its source (recorded in every output)."""
    if options.motif_db == "none":
        return [], "none"
    if options.motif_db == "jaspar":
        from bindvae.motif import load_motif_database

        motifs = load_motif_database(options.jaspar_release)
        return motifs, f"{options.jaspar_release} CORE vertebrates via pyjaspar ({len(motifs)} motifs)"
    motifs = read_meme(options.motif_db)
    return motifs, f"{os.path.basename(options.motif_db)} ({len(motifs)} motifs)"


def _write_tsv(frame: pd.DataFrame, path: Path, source: str = "") -> None:
    header = f"# motif database: {source}\n" if source else ""
    write_text_atomic(path, header + frame.to_csv(sep="\t", index=False, float_format="%.6g"), parents=True)


def _probe_table(options: AnalysisOptions, database: list[Motif], table: pd.DataFrame | None) -> pd.DataFrame | None:
    """Labelled probes: the given table, or probes sampled from the database, or None."""
    if table is None and options.probes:
        table = naming.read_probes_tsv(options.probes, list(options.tf_per_block) or None)
    return table if table is not None else evidence.sampled_probes(database, options.n_probes_per_tf, options.seed)


def _probe_source(options: AnalysisOptions, source: str) -> str:
    if options.probes:
        return os.path.basename(options.probes)
    return f"{options.n_probes_per_tf} per TF sampled from {source} (seed {options.seed})"


def _rules_line(options: AnalysisOptions) -> str:
    r, t = options.rules, options.rules.titles
    return (f"Algorithm 1: q < {r.max_q}, effect size >= {r.min_effect}, at most {r.max_tfs_per_topic} TFs per "
            f"topic; motif similarity: q < {r.motif_max_q}, at most {r.max_tfs_per_topic}; composition: repeat share "
            f">= {t.min_repeat_share}, fold < {t.min_fold}, |GC - corpus| >= {t.min_gc_shift} (top {t.n_top} k-mers)")


def _lacks_totals(model: Model, data, kind: str) -> bool:
    """Whether ``kind`` is density and ``data`` are features cut to the model's chosen k-mers, which no
    longer hold every gapped 8-mer of a peak that density divides by."""
    return kind == "density" and sp.issparse(data) and not has_kmer_totals(model, data)


def _call_scores(model: Model, data, kind: str) -> tuple[np.ndarray, str]:
    """The per-peak scores the TF calls read, and their kind (``shares`` where density cannot be had)."""
    if _lacks_totals(model, data, kind):
        logger.warning("per-peak calls by shares: the features hold only the model's chosen k-mers, not every "
                       "gapped 8-mer that density divides by")
        kind = "shares"
    return np.asarray(latent_scores(model, data, kind=kind), dtype=np.float64), kind


def _usual_scores(model: Model, options: AnalysisOptions, scores: np.ndarray, kind: str) -> tuple[np.ndarray, str]:
    """Each topic's mean score (of ``kind``) over the training peaks, the per-peak calls' baseline, and
    where it came from: the analysed peaks themselves when they are the training peaks, or when
    ``peaks=`` is given and the training data cannot be read (then a peak set that is mostly one TF's
    raises its bar)."""
    if not options.peaks:
        return np.asarray(scores, dtype=np.float64).mean(axis=0), "the training peaks"
    try:
        train = training_peaks(model)
        if _lacks_totals(model, train.data, kind):
            raise InputError(model.run_dir, "the training features hold only the chosen k-mers")
    except InputError as err:
        logger.warning("per-peak calls measured against the analysed peaks' own mean: %s", err)
        return np.asarray(scores, dtype=np.float64).mean(axis=0), "the analysed peaks (training data not readable)"
    usual = np.asarray(latent_scores(model, train.data, kind=kind), dtype=np.float64).mean(axis=0)
    return usual, "the training peaks"


def _compared_accessibility(compare: str) -> Path:
    other_path = Path(compare) / "analysis" / "accessibility.tsv"
    if not other_path.is_file():
        raise InputError(other_path, "run to compare has no accessibility.tsv (analyse it with peaks first)")
    return other_path


def _figure(fig, out: Path, name: str, caption: str, figures: list) -> None:
    plotting.save_figure(fig, out / name)
    figures.append((caption, name))


HEATMAP_KMERS = 160  # k-mer columns of the topic heatmap at most, so every column keeps its label
def analyze_run(run_dir: str | os.PathLike, options: AnalysisOptions = AnalysisOptions()) -> Path:
    """Analyse one trained run; see the module docstring and ``experiments/analyze.py``.

    Without ``options.peaks`` the run's own training sequences (its saved data config) are scored.

    Args:
        run_dir: the run directory (holding ``checkpoints/``).
        options: inputs and settings.

    Returns:
        The ``analysis`` folder, holding topic_kmers.tsv, topic_10mers.tsv, motifs.meme, logos/,
        motif_matches.tsv, tf_mapping.tsv, topic_titles.tsv, peak_tfs.tsv, accessibility.tsv,
        topic_sites.tsv (when the peaks' sequences are known), PNG figures and report.html.

    Raises:
        InputError, ConfigError: unreadable inputs or bad options.
    """
    check_options(options)
    model = load_model(run_dir)
    # Every input is read and checked before the slow steps, so a bad file fails in seconds.
    database, source = load_database(options)
    tf_families = load_families(options)
    gold = read_gold(options)
    bias = flags.bias_motifs(options.bias_motifs)
    pair_probes = cooperative.load_pair_probes(options.pairs, database, options.motif_db, options.jaspar_release,
                                               options.n_probes_per_tf, options.seed) if options.pairs else None
    out = Path(run_dir) / "analysis"
    check_writable_dir(out / "logos", "run_dir")
    peak_set = read_peaks(model, options.peaks) if options.peaks else training_peaks(model)
    if options.compare:
        _compared_accessibility(options.compare)
    training = convergence.training_summary(read_metrics(run_dir))
    probe_table = naming.read_probes_tsv(options.probes, list(options.tf_per_block) or None) if options.probes else None
    names = [topics.topic_name(m) for m in range(model.num_topics)]
    figures: list[tuple[str, str]] = []

    kmer_table = topics.topic_kmer_table(model)
    _write_tsv(kmer_table, out / "topic_kmers.tsv")
    _kmer_heatmap(model, out, figures)
    proportions = latent_scores(model, peak_set.data, kind="mean")
    scores = proportions if options.kind == "mean" else latent_scores(model, peak_set.data, kind=options.kind)
    named = evidence.name_topics(model, database, _probe_table(options, database, probe_table), tf_families,
                                 options.rules, options.kind, options.motif_ranking, bias,
                                 peaks.topic_usage(proportions), peak_set.sequences, options.seed, proportions,
                                 options.split_motifs)
    flags.write_flags(named.flags, out / "topic_flags.tsv", options.rules.flags, options.rules.titles,
                      os.path.basename(options.bias_motifs or flags.BIAS_MEME))
    _write_tsv(named.tenmers, out / "topic_10mers.tsv")
    write_meme(out / "motifs.meme", named.motifs + named.part_motifs,
               comment=f"BindVAE topic motifs of {Path(run_dir).name} (top 200 10-mers)")
    for motif in named.motifs + named.part_motifs:
        plotting.save_figure(plotting.logo_figure(motif.pwm, motif.name), out / "logos" / f"{motif.name}.png")
    paired_logos = pair_logos(named, database, out)
    _write_tsv(named.matches, out / "motif_matches.tsv", source)
    if named.probe_data is not None:
        matrix = plotting.probe_heatmap_matrix(*named.probe_data, names)
        if len(matrix) <= 400:
            _figure(plotting.heatmap_figure(matrix, "mean probe score per topic", "topic", "TF", scaling="clip"), out,
                    "probe_heatmap.png", "Probe x topic latent scores", figures)
    probe_source = _probe_source(options, source)
    mapping_table = named.mapping
    _write_tsv(mapping_table, out / "tf_mapping.tsv", f"{source}; probes: {probe_source}")
    usable = ~named.flags["flagged"].to_numpy(dtype=bool)  # unused topics are flagged (rule 0), so left out too
    # Look-alikes are judged on the decoder's motifs (each topic's own most enriched k-mers), as measured in
    # BENCHMARKS.md, whichever ranking built the motifs that name the topics: the encoder's probes blur them.
    by_decoder = options.motif_ranking == "decoder"
    decoder_motifs = named.motifs if by_decoder else topics.topic_motifs(model, ranking="decoder")[0]
    # Namesakes (topics matching a topic's best database motif) join the pieces of a long site, e.g. CTCF's;
    # the decoder's motifs were compared with the database already when they named the topics.
    matches = None
    if database and options.signature_q > 0:
        matches = named.comparison if by_decoder else compare_motifs(decoder_motifs, database)
    alike = signatures.signature_partners(decoder_motifs, usable, options.signature_q, matches,
                                          options.signature_piece_q, options.signature_apart_q)
    _write_tsv(named.titles.assign(lookalikes=signatures.lookalikes_column(names, alike)), out / "topic_titles.tsv")
    mapping = naming.assigned_tfs(mapping_table)
    tables = {}
    if gold is not None:
        frame = _write_retrieval(_retrieval_rows(Path(run_dir).name, gold, named, database), out, options, gold,
                                 f"{source}; probes: {probe_source}")
        tables[f"TF retrieval against {os.path.basename(options.gold)} (Table S4)"] = frame

    ids = peak_set.ids
    strengths = naming.assignment_strengths(mapping_table)
    # A topic calls its TF where its signature holds at least call_ratio times its mean over the training peaks.
    call_scores, call_kind = ((scores, options.kind) if options.call_score == options.kind
                              else _call_scores(model, peak_set.data, options.call_score))
    usual, usual_label = _usual_scores(model, options, call_scores, call_kind)
    relative = peaks.relative_scores(signatures.signature_scores(call_scores, alike),
                                     signatures.signature_scores(usual[None, :], alike)[0])
    calls = peaks.top_tfs_per_peak(relative, strengths, ids, min_topic_score=options.call_ratio)
    _write_tsv(calls, out / "peak_tfs.tsv")
    acc = peaks.accessibility(scores, mapping)
    _write_tsv(acc, out / "accessibility.tsv")
    _accessibility_figure(acc, run_dir, options.compare, out, figures)
    site_stats = named.sites
    if site_stats is not None:
        _write_tsv(site_stats, out / "topic_sites.tsv")
    loss_curve = None
    if len(training.curve) > 1:
        plotting.save_figure(plotting.loss_curve_figure(training.curve, f"Training of {Path(run_dir).name}"),
                             out / "training_curve.png")
        loss_curve = "training_curve.png"

    if pair_probes is not None:
        found = cooperative.analyze_pairs(model, pair_probes, database, names, flags.flagged_topics(named.flags),
                                          options.rules.max_q, options.rules.min_effect, options.n_15mers,
                                          options.seed, options.kind)
        pair_figures, pair_tables = cooperative.write_cooperative(found, out, Path(run_dir).name)
        tables.update(pair_tables)
        figures += pair_figures

    sections = topic_sections(names, named, kmer_table, acc, alike, options.rules.flags.min_site_auroc)
    facts = {"run directory": Path(run_dir).name, "checkpoint step": model.step, "topics": model.num_topics,
             "latent score": options.kind, "motif database": source, "probes": probe_source,
             "peaks": peak_set.label, "site counts": sites_fact(site_stats),
             "naming rules": _rules_line(options),
             "per-peak calls": f"signature score ({call_kind}) >= {options.call_ratio:g} x its mean over {usual_label}",
             "TFs mapped (Algorithm 1)": len(set(mapping_table.loc[mapping_table["assigned"], "tf"]))}
    files = [(name, what) for name, what in FILES if (out / name).is_file()]
    html = report.render_report(f"BindVAE analysis: {Path(run_dir).name}", facts, sections, figures, tables,
                                summary=summary_rows(named, paired_logos, site_stats, acc), training=training,
                                loss_curve=loss_curve, files=files)
    write_text_atomic(out / "report.html", html, parents=True)
    other_analyses.refresh(out)  # projection, ChIP overlap, comparison: a section each when they were run
    return out


def _kmer_heatmap(model: Model, out: Path, figures: list) -> None:
    # Few enough k-mers per topic that every column is labelled; colour scaled per topic so that one
    # poly-A topic with a huge phi does not wash out every other row.
    n_top = max(2, min(20, HEATMAP_KMERS // model.num_topics))
    matrix = topics.topic_kmer_heatmap_matrix(model, n_top=n_top)
    _figure(plotting.heatmap_figure(matrix, f"phi: union of each topic's top {n_top} 8-mers", "8-mer", "topic",
                                    scaling="row"),
            out, "topic_kmer_heatmap.png", f"Topic x 8-mer weights (Fig. 1b): each topic's top {n_top} 8-mers, "
            "colour scaled per topic (1 = the topic's largest weight shown); topic_kmers.tsv has the values", figures)


def _accessibility_figure(acc: pd.DataFrame, run_dir, compare: str | None, out: Path, figures: list) -> None:
    label = Path(run_dir).name
    if compare:
        other_path = _compared_accessibility(compare)
        other = pd.read_csv(other_path, sep="\t", comment="#", keep_default_na=False)
        labels = (label, Path(compare).name)
        table = peaks.compare_accessibility(acc, other, labels)
    else:
        labels = (label,)
        table = peaks.accessibility_per_tf(acc).sort_values(kind="stable").rename(label).rename_axis("tf").reset_index()
    if len(table):
        caption = "Accessibility per mapped TF (Fig. 3d)"
        if len(table) > FIGURE_TFS:  # a bar per TF stays readable; accessibility.tsv keeps them all
            caption += f": the {FIGURE_TFS} most accessible of {len(table)}"
            top = table[list(labels)].max(axis=1).nlargest(FIGURE_TFS).index
            table = table.loc[sorted(top)]
        _figure(plotting.accessibility_figure(table, list(labels)), out, "accessibility.png", caption, figures)


def analyze_sweep(sweep_dir: str | os.PathLike, options: AnalysisOptions = AnalysisOptions(), n_best: int = 3) -> Path:
    """Model selection across a sweep: every run's topics named as by :func:`analyze_run`, runs ranked.

    The ranking (distinct TF families named, ties by held-out ELBO) is
    :func:`bindvae.analysis.selection.select_runs`'s.

    Args:
        sweep_dir: folder holding run directories.
        options: probes / motif database and rules used to name topics.
        n_best: runs in the ensemble.

    Returns:
        ``<sweep_dir>/analysis`` with ``model_selection.tsv`` and ``ensemble.tsv``.

    Raises:
        InputError: no run found, or no probes and no database to sample them from.
    """
    check_options(options)
    runs = selection.find_runs(sweep_dir)
    if not runs:
        raise InputError(sweep_dir, "no run directory with checkpoints/ found")
    database, source = load_database(options)
    tf_families = load_families(options)
    gold = read_gold(options)
    probes = _probe_table(options, database, None)
    if probes is None:
        raise InputError(sweep_dir, "model selection needs probes= or a motif database to sample probes from")
    out = check_writable_dir(Path(sweep_dir) / "analysis", "sweep_dir")
    mappings, elbos, gold_rows, matches = {}, {}, [], {}
    for run in runs:
        name = str(run.relative_to(sweep_dir))
        named = evidence.name_topics(load_model(run), database, probes, tf_families, options.rules, options.kind,
                                     options.motif_ranking, flags.bias_motifs(options.bias_motifs))
        mappings[name], elbos[name], matches[name] = named.mapping, selection.held_out_elbo(run), named.matches
        if gold is not None:
            gold_rows += _retrieval_rows(name, gold, named, database)
    summary, ensemble = selection.select_runs(mappings, n_best, tf_families, elbos, options.max_topics_per_tf)
    note = f"{source}; probes: {_probe_source(options, source)}; {_rules_line(options)}"
    _write_tsv(summary, out / "model_selection.tsv", note)
    _write_tsv(ensemble, out / "ensemble.tsv", note)
    if gold is not None:
        best = summary.loc[summary["selected"], "run"].tolist()
        # The ensemble names the TFs of its topics (all the best runs' assigned TFs) and, by motif
        # similarity, every TF the best runs' topics match.
        tfs = sorted({tf for text in ensemble["tfs"] for tf in str(text).split(",") if tf})
        union = pd.DataFrame({"tf": tfs, "assigned": True})
        hits = pd.concat([matches[run] for run in best], ignore_index=True) if best else None
        gold_rows += retrieval.run_rows(f"ensemble of {len(best)} best", gold, union, probes["tf"].tolist(),
                                        hits if database else None, _database_tfs(database))
        _write_retrieval(gold_rows, out, options, gold, note)
    return out
