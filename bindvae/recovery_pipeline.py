"""The planted-motif recovery benchmark end to end: data, features, BindVAE and two LDA peers, yardsticks, tables.

``run_recovery`` generates (or reads) a planted set, featurizes it, trains BindVAE with
:func:`bindvae.train.fit`, reloads the model from its checkpoint (analyses read checkpoints only),
trains the peers on the same training rows (scikit-learn's online LDA for a fixed number of passes;
tomotopy's collapsed Gibbs LDA until BindVAE's training wall time is spent or its sweep limit is
reached), scores all with :mod:`bindvae.recovery`, measures each planted feature's yardsticks (oracle
PWM scan, cross-validated supervised limit) and writes ``recovery.tsv`` (per feature, methods side by
side with the yardsticks and each AUROC as a fraction of the limit), ``recovery_summary.tsv``,
``recovery.md`` (both tables as Markdown) and ``recovery.json`` into the output folder. Every file is
written to a temporary name and renamed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bindvae import recovery, synthetic
from bindvae.analysis.meme import read_meme, write_text_atomic
from bindvae.config import DataConfig, RunConfig, from_dict, to_dict
from bindvae.errors import ConfigError, InputError

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LdaConfig:
    """The LDA peer (scikit-learn, online variational Bayes).

    Attributes:
        enabled: train and score it.
        passes: epochs over the training rows.
        batch_size: documents per online update.
        n_jobs: scikit-learn's parallel E-step workers (1 = serial).
    """

    enabled: bool = True
    passes: int = 5
    batch_size: int = 256
    n_jobs: int = 1


@dataclasses.dataclass(frozen=True)
class GibbsLdaConfig:
    """The second peer: collapsed Gibbs LDA (tomotopy), each k-mer count one token.

    Attributes:
        enabled: train and score it.
        alpha: initial document-topic prior (tomotopy re-estimates it every 10 sweeps).
        eta: topic-word prior.
        workers: sampling threads (with more than one, tomotopy does not promise identical runs).
        max_iterations: Gibbs sweeps at most.
        match_bindvae_time: also stop when BindVAE's training wall time is spent (the sweep count
            then depends on the machine; it is recorded in the tables).
        chunk_iterations: sweeps between checks of the clock.
        infer_iterations: sampling sweeps per held-out peak in tomotopy's ``infer``.
    """

    enabled: bool = True
    alpha: float = 0.1
    eta: float = 0.01
    workers: int = 2
    max_iterations: int = 1000
    match_bindvae_time: bool = True
    chunk_iterations: int = 5
    infer_iterations: int = 100


@dataclasses.dataclass(frozen=True)
class YardstickConfig:
    """What a method's AUROC is measured against, per planted feature.

    Attributes:
        enabled: compute the oracle and the supervised limit.
        background: the oracle scan's background, ``corpus`` (the set's base composition, both
            strands) or ``uniform``.
        limit_c: inverse L2 strength of the supervised limit's logistic regression.
        limit_folds: stratified cross-validation folds (shuffled with the generator seed).
    """

    enabled: bool = True
    background: str = "corpus"
    limit_c: float = 0.05
    limit_folds: int = 3


@dataclasses.dataclass(frozen=True)
class RecoveryConfig:
    """One recovery benchmark.

    Attributes:
        name: label written into the tables (e.g. ``default``, ``full``).
        seed: generator seed (the model's seed is ``run.train.seed``).
        fasta: read this planted set (truth and motifs next to it) instead of generating one.
        data: what to generate.
        run: BindVAE model and training settings (``run.data`` is not used).
        lda: the online-LDA peer (scikit-learn).
        gibbs_lda: the collapsed-Gibbs LDA peer (tomotopy).
        yardsticks: the oracle scan and the supervised limit.
        n_top: 10-mers per topic motif.
        q_threshold: recovered when the best topic motif's q-value is below this.
        jaspar_release: motif database the topic motifs are compared with (CORE vertebrates).
        motif_db: ``jaspar`` (that release through pyjaspar) or a MEME file used instead; the
            planted motifs are added to it when missing.
        notes: free text printed under the tables (why a target is missed, what would close it).
        motif_ranking: how BindVAE's 10-mers are ranked per topic: ``decoder`` (the topic's k-mer
            log-ratios) or ``encoder`` (probes through the encoder); see
            :func:`bindvae.analysis.topics.topic_motifs`.
    """

    name: str = "default"
    seed: int = 0
    fasta: str | None = None
    data: synthetic.SyntheticConfig = dataclasses.field(default_factory=synthetic.SyntheticConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    lda: LdaConfig = dataclasses.field(default_factory=LdaConfig)
    gibbs_lda: GibbsLdaConfig = dataclasses.field(default_factory=GibbsLdaConfig)
    yardsticks: YardstickConfig = dataclasses.field(default_factory=YardstickConfig)
    n_top: int = 200
    q_threshold: float = 0.05
    jaspar_release: str = "JASPAR2024"
    motif_db: str = "jaspar"
    notes: str = ""
    motif_ranking: str = "decoder"


@dataclasses.dataclass
class MethodResult:
    """Scores of one method: the per-feature table, its summary, held-out perplexity, wall times (s)
    and how far it trained (``iterations`` in ``unit``: steps, passes or sweeps)."""

    table: pd.DataFrame
    summary: dict
    perplexity: float
    train_s: float
    analysis_s: float
    iterations: int = 0
    unit: str = ""


@dataclasses.dataclass
class RecoveryResult:
    """What :func:`run_recovery` returns: per-method results, the merged tables, output paths, and
    the yardsticks (``feature``, ``oracle_auroc``, ``limit_auroc``; empty when disabled)."""

    methods: dict
    features: pd.DataFrame
    summary: pd.DataFrame
    paths: dict
    yardsticks: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)


def load_planted_set(config: RecoveryConfig, out_dir: Path) -> tuple[synthetic.SyntheticSet, str]:
    """The planted set: generated and written under ``out_dir/data``, or read from ``config.fasta``.

    Returns:
        The set and the path of its FASTA.

    Raises:
        InputError: a FASTA without its truth or motif file next to it.
    """
    if config.fasta is None:
        dataset = synthetic.generate(np.random.default_rng(config.seed), config.data)
        paths = synthetic.write_set(dataset, out_dir / "data" / "planted.fa", config.data, seed=config.seed)
        return dataset, paths["fasta"]
    from bindvae.sequences import read_fasta

    records = read_fasta(config.fasta)
    truth = synthetic.read_truth(synthetic.truth_path_for(config.fasta))
    motif_path = Path(config.fasta).with_name(Path(config.fasta).name.rsplit(".", 1)[0] + ".motifs.meme")
    if not motif_path.is_file():
        raise InputError(motif_path, "planted motif file not found next to the FASTA")
    motifs = {m.alt_name or m.name: m for m in read_meme(motif_path)}
    return synthetic.SyntheticSet(records.names, records.sequences, truth, motifs), str(config.fasta)


def _database(config: RecoveryConfig, planted: list) -> list:
    if config.motif_db == "jaspar":
        return recovery.load_motif_database(config.jaspar_release, extra=planted)
    motifs = read_meme(config.motif_db)
    names = {m.name for m in motifs}
    return motifs + [m for m in planted if m.name not in names]


def _train_bindvae(config: RecoveryConfig, train_X, val_X, fingerprint: str, workdir: Path, metric_logger):
    from bindvae.train import fit

    start = time.perf_counter()
    result = fit(config.run, train_X, val_X, fingerprint, workdir, metric_logger)
    return result, time.perf_counter() - start


def _score_bindvae(config: RecoveryConfig, workdir: Path, X, dataset, database) -> tuple[pd.DataFrame, float]:
    from bindvae.analysis.topics import topic_motifs
    from bindvae.infer import latent_scores, load_model

    start = time.perf_counter()
    model = load_model(workdir)
    peak_scores = latent_scores(model, X)
    motifs, _ = topic_motifs(model, n_top=config.n_top, ranking=config.motif_ranking)
    table = recovery.score_recovery(motifs, peak_scores, dataset.names, dataset.truth, dataset.motifs, database,
                                    config.q_threshold)
    return table, time.perf_counter() - start


class _KmerProbes:
    """The 10-mers whose topic scores build the peers' motifs, featurized once for both peers.

    Args:
        codes: 10-mer codes to probe (None: all canonical 10-mers).
    """

    def __init__(self, codes: np.ndarray | None = None):
        self._codes = codes
        self._value = None

    def get(self):
        """``(codes [n_kmers10], counts [n_kmers10, n_kmers] CSR)``."""
        if self._value is None:
            from bindvae.analysis.motifs import canonical_kmer_codes, decode_kmers
            from bindvae.kmers import featurize

            codes = canonical_kmer_codes(10) if self._codes is None else self._codes
            self._value = codes, featurize(decode_kmers(codes, 10))
        return self._value


def _run_lda(config: RecoveryConfig, train_X, val_X, X, dataset, database, probes: _KmerProbes) -> MethodResult:
    start = time.perf_counter()
    lda = recovery.fit_lda(train_X, config.run.model.num_topics, config.run.train.seed, config.lda.passes,
                           config.lda.batch_size, config.lda.n_jobs)
    train_s = time.perf_counter() - start
    perplexity = float(lda.perplexity(val_X)) if val_X.shape[0] else float("nan")
    start = time.perf_counter()
    codes, probe_X = probes.get()
    kmer_scores = recovery.transform_in_chunks(lda.transform, probe_X, chunk=50_000)
    motifs = recovery.topic_motifs_from_scores(kmer_scores, codes, top_k=config.n_top, prefix="lda_topic")
    peak_scores = recovery.transform_in_chunks(lda.transform, X)
    table = recovery.score_recovery(motifs, peak_scores, dataset.names, dataset.truth, dataset.motifs, database,
                                    config.q_threshold)
    analysis_s = time.perf_counter() - start
    return MethodResult(table, recovery.summarize(table, config.q_threshold), perplexity, train_s, analysis_s,
                        config.lda.passes, "passes")


def _run_gibbs_lda(config: RecoveryConfig, X, val_rows: np.ndarray, dataset, database, probes: _KmerProbes,
                   budget_s: float) -> MethodResult:
    """The tomotopy peer: trained on the same rows as BindVAE within its wall time, scored like the others.

    Training rows get their sampled topic proportions, held-out rows tomotopy's ``infer``, and the
    10-mer probes the mean-field proportions under the Gibbs topics (as scikit-learn's ``transform``).
    """
    gibbs = config.gibbs_lda
    train_rows = np.setdiff1d(np.arange(X.shape[0]), val_rows)
    fitted = recovery.fit_gibbs_lda(X[train_rows], config.run.model.num_topics, config.run.train.seed, gibbs.alpha,
                                    gibbs.eta, gibbs.workers, gibbs.max_iterations,
                                    budget_s if gibbs.match_bindvae_time else None, gibbs.chunk_iterations)
    start = time.perf_counter()
    peak_scores = np.zeros((X.shape[0], config.run.model.num_topics), dtype=np.float32)
    peak_scores[train_rows] = recovery.gibbs_training_topics(fitted)
    peak_scores[val_rows], perplexity = recovery.gibbs_infer(fitted, X[val_rows], gibbs.infer_iterations,
                                                             gibbs.workers)
    codes, probe_X = probes.get()
    kmer_scores = recovery.variational_transform(recovery.gibbs_topic_word(fitted), fitted.model.alpha, probe_X)
    motifs = recovery.topic_motifs_from_scores(kmer_scores, codes, top_k=config.n_top, prefix="gibbs_topic")
    table = recovery.score_recovery(motifs, peak_scores, dataset.names, dataset.truth, dataset.motifs, database,
                                    config.q_threshold)
    analysis_s = time.perf_counter() - start
    return MethodResult(table, recovery.summarize(table, config.q_threshold), perplexity, fitted.seconds,
                        analysis_s, fitted.iterations, "sweeps")


def compute_yardsticks(config: RecoveryConfig, X, dataset) -> pd.DataFrame:
    """Oracle scan and supervised-limit AUROC of every planted feature.

    Args:
        config: the benchmark (its ``yardsticks`` section and generator seed).
        X: ``[n_peaks, n_kmers]`` counts, rows in ``dataset.names`` order (what the models see).
        dataset: the planted set.

    Returns:
        ``feature``, ``oracle_auroc`` (NaN for features without a PWM), ``limit_auroc``; the wall
        times in ``attrs`` (``oracle_s``, ``limit_s``).
    """
    sticks = config.yardsticks
    start = time.perf_counter()
    oracle = recovery.oracle_aurocs(dataset, sticks.background)
    oracle_s = time.perf_counter() - start
    limits = recovery.supervised_limits(X, dataset.truth, dataset.names, sticks.limit_c, sticks.limit_folds,
                                        config.seed)
    frame = pd.DataFrame({"feature": list(limits)})
    frame["oracle_auroc"] = frame["feature"].map(lambda f: oracle.get(f, float("nan"))).astype(float)
    frame["limit_auroc"] = frame["feature"].map(limits).astype(float)
    frame.attrs.update(oracle_s=oracle_s, limit_s=time.perf_counter() - start - oracle_s)
    return frame


def run_recovery(config: RecoveryConfig, out_dir: str | Path, metric_logger=None, machine: str = "",
                 run_subdir: str = "bindvae") -> RecoveryResult:
    """Runs the benchmark (module docstring).

    Args:
        config: the benchmark settings.
        out_dir: output folder; BindVAE's run directory is ``out_dir/<run_subdir>``.
        metric_logger: a :class:`bindvae.tracking.MetricLogger` for training (None: metrics.jsonl only).
        machine: a line describing the machine, written under the Markdown heading.
        run_subdir: BindVAE's run directory inside ``out_dir`` (``""``: ``out_dir`` itself).

    Returns:
        Per-method results, the merged tables and the written paths.
    """
    from bindvae.data import split_train_val
    from bindvae.kmers import Vocabulary, featurize

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset, fasta = load_planted_set(config, out_dir)
    vocabulary = Vocabulary.gapped8()
    X = featurize(dataset.sequences, vocabulary)
    train_X, val_X, val_rows = split_train_val(X, config.run.train.val_fraction, config.run.train.seed)
    database = _database(config, list(dataset.motifs.values()))
    logger.info("recovery benchmark %s: %d peaks (%d train / %d val) from %s", config.name, X.shape[0],
                train_X.shape[0], val_X.shape[0], fasta)

    workdir = out_dir / run_subdir if run_subdir else out_dir
    # The checkpoint's saved data config names the FASTA trained on, so an analysis without peaks=
    # scores these peaks (not the default synthetic set the run config would otherwise record).
    trained_on = DataConfig(source="fasta", path=str(Path(fasta).resolve()))
    config = dataclasses.replace(config, run=dataclasses.replace(config.run, data=trained_on))
    fitted, train_s = _train_bindvae(config, train_X, val_X, vocabulary.fingerprint, workdir, metric_logger)
    table, analysis_s = _score_bindvae(config, workdir, X, dataset, database)
    methods = {"BindVAE": MethodResult(table, recovery.summarize(table, config.q_threshold),
                                       float(fitted.val_metrics.get("val_perplexity", float("nan"))),
                                       train_s, analysis_s, config.run.train.steps, "steps")}
    probes = _KmerProbes()
    if config.lda.enabled:
        methods["LDA"] = _run_lda(config, train_X, val_X, X, dataset, database, probes)
    if config.gibbs_lda.enabled:
        methods["Gibbs LDA"] = _run_gibbs_lda(config, X, val_rows, dataset, database, probes, train_s)
    yardsticks = compute_yardsticks(config, X, dataset) if config.yardsticks.enabled else pd.DataFrame()
    if not yardsticks.empty:
        limits = dict(zip(yardsticks["feature"], yardsticks["limit_auroc"]))
        for result in methods.values():
            result.table = recovery.add_limit_fraction(result.table, limits)
            result.summary = recovery.summarize(result.table, config.q_threshold)
    features, summary = side_by_side(methods, yardsticks), summary_table(methods, config)
    paths = write_tables(out_dir, config, features, summary, methods, fasta, machine, yardsticks)
    return RecoveryResult(methods, features, summary, paths, yardsticks)


def side_by_side(methods: dict, yardsticks: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-feature table: the yardsticks (``oracle AUROC``, ``limit AUROC``) when given, then
    ``<method> topic / motif / q / recovered / AUROC`` and ``<method> auroc_vs_limit`` (AUROC over the
    supervised limit) for each method."""
    first = next(iter(methods.values())).table
    merged = first[["feature", "kind", "fraction", "matrix_id"]].copy()
    if yardsticks is not None and not yardsticks.empty:
        part = yardsticks.set_index("feature")
        merged["oracle AUROC"] = merged["feature"].map(part["oracle_auroc"])
        merged["limit AUROC"] = merged["feature"].map(part["limit_auroc"])
    for name, result in methods.items():
        part = result.table.set_index("feature")
        for column, label in (("topic", "topic"), ("consensus", "motif"), ("q_value", "q"),
                              ("recovered", "recovered"), ("auroc", "AUROC"), ("auroc_vs_limit", "auroc_vs_limit")):
            if column in part:
                merged[f"{name} {label}"] = merged["feature"].map(part[column])
    return merged


def _recovered_text(s: dict) -> str:
    return f"{s['n_recovered']}/{s['n_motifs']}"


def _rarest_text(s: dict) -> str:
    return f"{s['rarest']} ({s['rarest_fraction']:.0%}): {'yes' if s['rarest_recovered'] else 'no'}"


def summary_table(methods: dict, config: RecoveryConfig) -> pd.DataFrame:
    """One row per metric, one column per method, the target, and whether BindVAE meets it ``met``."""
    vae = methods["BindVAE"].summary
    n_motifs = vae["n_motifs"]
    n_needed = max(n_motifs - 1, 1)
    lda_perplexity = methods["LDA"].perplexity if "LDA" in methods else float("nan")

    def row(metric, target, text, met, gap=""):
        return {"metric": metric, "target": target, **{n: text(r) for n, r in methods.items()},
                "met": "yes" if met is True else ("no" if met is False else met), "gap": "" if met is True else gap}

    vae_perplexity = methods["BindVAE"].perplexity

    rows = [
        row(f"planted motifs recovered (q < {config.q_threshold:g})", f">= {n_needed}/{n_motifs}",
            lambda r: _recovered_text(r.summary), vae["n_recovered"] >= n_needed,
            f"{n_needed - vae['n_recovered']} motif(s) short"),
        row("rarest motif recovered", "yes", lambda r: _rarest_text(r.summary), vae["rarest_recovered"]),
        row("min AUROC, motifs in >= 10% of peaks", ">= 0.9", lambda r: f"{r.summary['min_auroc_common']:.3f}",
            vae["min_auroc_common"] >= 0.9, f"{0.9 - vae['min_auroc_common']:.3f} short"),
        row("held-out perplexity (ELBO bound per k-mer)", "< LDA", lambda r: f"{r.perplexity:,.0f}",
            "n/a" if np.isnan(lda_perplexity) else bool(vae_perplexity < lda_perplexity),
            "" if np.isnan(lda_perplexity) else f"{vae_perplexity / lda_perplexity - 1:+.1%} vs LDA"),
    ]
    if "n_at_limit" in vae:
        rows.append(row("motifs with AUROC >= 0.9 x supervised limit", f"{vae['n_with_limit']}/{vae['n_with_limit']}",
                        lambda r: f"{r.summary['n_at_limit']}/{r.summary['n_with_limit']}",
                        vae["n_at_limit"] == vae["n_with_limit"],
                        f"{vae['n_with_limit'] - vae['n_at_limit']} motif(s) short"))
        rows.append(row("min AUROC / supervised limit, motifs", ">= 0.9",
                        lambda r: f"{r.summary['min_auroc_vs_limit']:.3f}", vae["min_auroc_vs_limit"] >= 0.9,
                        f"{0.9 - vae['min_auroc_vs_limit']:.3f} short"))
    rows.append(row("mean AUROC, motifs", "", lambda r: f"{r.summary['mean_auroc_motifs']:.3f}", "", ""))
    for peer in ("LDA", "Gibbs LDA"):
        if peer not in methods:
            continue
        other = methods[peer].summary
        better = (vae["n_recovered"], vae["min_auroc_common"]) > (other["n_recovered"], other["min_auroc_common"])
        rows.append(row(f"recovery better than {peer} (motifs, then AUROC)", "yes", lambda r: "", bool(better),
                        f"{vae['n_recovered']} vs {other['n_recovered']} motifs"))
    if vae["has_pair"]:
        rows.append(row("cooperative pair", "found", lambda r: r.summary["pair"], vae["pair"] != "missed"))
    n_non_tf = int(vae["non_tf_own_topics"].split("/")[1])
    if n_non_tf:
        rows.append(row("repeats / GC-rich with their own topic (AUROC >= 0.9)", f"{n_non_tf}/{n_non_tf}",
                        lambda r: r.summary["non_tf_own_topics"], vae["non_tf_own_topics"] == f"{n_non_tf}/{n_non_tf}"))
    rows += [
        row("training length", "", lambda r: f"{r.iterations:,} {r.unit}", "", ""),
        row("train wall time (s)", "", lambda r: f"{r.train_s:.0f}", "", ""),
        row("analysis wall time (s)", "", lambda r: f"{r.analysis_s:.0f}", "", ""),
    ]
    return pd.DataFrame(rows)


def _markdown(frame: pd.DataFrame) -> str:
    def cell(value) -> str:
        if isinstance(value, (bool, np.bool_)):
            return "yes" if value else "no"
        if isinstance(value, (float, np.floating)):
            return "" if np.isnan(value) else f"{value:.3g}"
        return str(value)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in values) + " |" for values in frame.itertuples(index=False)]
    return "\n".join(lines)


def _peers_text(config: RecoveryConfig) -> str:
    lda = f"LDA: scikit-learn online, {config.lda.passes} passes" if config.lda.enabled else "LDA not run"
    gibbs = config.gibbs_lda
    if not gibbs.enabled:
        return f"{lda}; Gibbs LDA not run"
    budget = " or BindVAE's training wall time, whichever first" if gibbs.match_bindvae_time else ""
    return (f"{lda}; Gibbs LDA: tomotopy collapsed Gibbs, alpha {gibbs.alpha:g} (re-estimated), eta {gibbs.eta:g}, "
            f"{gibbs.workers} worker(s), at most {gibbs.max_iterations:,} sweeps{budget}")


def _yardsticks_text(config: RecoveryConfig, yardsticks: pd.DataFrame | None) -> str:
    if yardsticks is None or yardsticks.empty:
        return ""
    sticks = config.yardsticks
    background = ("the set's base composition (both strands)" if sticks.background == "corpus"
                  else "a uniform background")
    return (f"Yardsticks per feature: oracle = AUROC of each peak's best log-odds score with the planted PWM over "
            f"both strands, against {background} ({yardsticks.attrs.get('oracle_s', 0):.0f} s); supervised limit = "
            f"scikit-learn L2 logistic regression (C = {sticks.limit_c:g}) on the binarised gapped 8-mer counts, "
            f"{sticks.limit_folds}-fold stratified cross-validated decision function (seed {config.seed}; "
            f"{yardsticks.attrs.get('limit_s', 0):.0f} s); `auroc_vs_limit` = a method's AUROC / the limit.\n")


def markdown_report(config: RecoveryConfig, features: pd.DataFrame, summary: pd.DataFrame, machine: str = "",
                    yardsticks: pd.DataFrame | None = None) -> str:
    """Both tables as Markdown under a heading naming the set, the model, the peers and the yardsticks."""
    model, train = config.run.model, config.run.train
    data = config.data
    lda = _peers_text(config)
    database = (f"{config.jaspar_release} CORE vertebrates (pyjaspar)" if config.motif_db == "jaspar"
                else Path(config.motif_db).name)
    shown = features.copy()
    shown["fraction"] = [f"{f:.0%}" for f in shown["fraction"]]
    head = (f"### Planted-motif recovery: `{config.name}`\n\n"
            f"{data.n_peaks:,} peaks x {data.length} bp (seed {config.seed}), M = {model.num_topics} topics, "
            f"hidden {list(model.hidden_sizes)}, alpha {model.alpha:g}, {train.steps:,} steps of batch {train.batch_size}, "
            f"lr {train.learning_rate:g}; {lda}. Motif database: {database}. {machine}\n\n"
            f"{_yardsticks_text(config, yardsticks)}")
    notes = f"\n{config.notes.strip()}\n" if config.notes.strip() else ""
    return f"{head}\n{_markdown(summary)}\n\n{_markdown(shown)}\n{notes}"


def write_tables(out_dir: Path, config: RecoveryConfig, features: pd.DataFrame, summary: pd.DataFrame,
                 methods: dict, fasta: str, machine: str = "", yardsticks: pd.DataFrame | None = None) -> dict:
    """Writes recovery.tsv, recovery_summary.tsv, recovery.md and recovery.json; returns their paths."""
    paths = {"features": out_dir / "recovery.tsv", "summary": out_dir / "recovery_summary.tsv",
             "markdown": out_dir / "recovery.md", "json": out_dir / "recovery.json"}
    write_text_atomic(paths["features"], features.to_csv(sep="\t", index=False, float_format="%.4g"))
    write_text_atomic(paths["summary"], summary.to_csv(sep="\t", index=False))
    write_text_atomic(paths["markdown"], markdown_report(config, features, summary, machine, yardsticks))
    record = {"name": config.name, "fasta": fasta, "config": to_dict(config),
              "methods": {n: {"summary": r.summary, "perplexity": r.perplexity, "train_s": r.train_s,
                              "analysis_s": r.analysis_s, "iterations": r.iterations, "unit": r.unit}
                          for n, r in methods.items()}}
    if yardsticks is not None and not yardsticks.empty:
        record["yardsticks"] = {"per_feature": yardsticks.to_dict(orient="records"), **yardsticks.attrs}
    write_text_atomic(paths["json"], json.dumps(record, indent=1, default=str) + "\n")
    return {k: str(v) for k, v in paths.items()}


def _strict(cls, values: dict, section: str, convert: dict | None = None):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{section}.{unknown[0]}" if section else unknown[0], "unknown key")
    values = dict(values)
    for key, fn in (convert or {}).items():
        if key in values:
            values[key] = fn(values[key])
    return cls(**values)


def config_from_dict(values: dict) -> RecoveryConfig:
    """Builds a :class:`RecoveryConfig` from plain nested dicts/lists (e.g. a resolved Hydra config).

    ``data.motifs`` is a list of ``{name, matrix_id, fraction}``, ``data.pair`` a list of two
    ``{name, matrix_id}`` (or empty); ``run`` has ``model``, ``train`` and ``logger`` sections.

    Raises:
        ConfigError: an unknown key or an invalid value.
    """
    values = dict(values)

    def motifs(items):
        try:
            return tuple((str(m["name"]), str(m.get("matrix_id") or ""), float(m["fraction"])) for m in items)
        except (KeyError, TypeError) as exc:
            raise ConfigError("data.motifs", f"each entry needs name, matrix_id and fraction ({exc})") from None

    def pair(items):
        items = list(items or [])
        if items and len(items) != 2:
            raise ConfigError("data.pair", f"needs exactly two motifs, got {len(items)}")
        return tuple((str(m["name"]), str(m.get("matrix_id") or "")) for m in items)

    data = _strict(synthetic.SyntheticConfig, values.pop("data", {}) or {}, "data",
                   {"motifs": motifs, "pair": pair})
    run = from_dict(dict(values.pop("run", {}) or {}))
    lda = _strict(LdaConfig, values.pop("lda", {}) or {}, "lda")
    gibbs = _strict(GibbsLdaConfig, values.pop("gibbs_lda", {}) or {}, "gibbs_lda")
    sticks = _strict(YardstickConfig, values.pop("yardsticks", {}) or {}, "yardsticks")
    config = _strict(RecoveryConfig, values, "", {})
    config = dataclasses.replace(config, data=data, run=run, lda=lda, gibbs_lda=gibbs, yardsticks=sticks)
    if not 0 < config.q_threshold < 1:
        raise ConfigError("q_threshold", f"must lie in (0, 1), got {config.q_threshold}")
    if config.motif_ranking not in ("encoder", "decoder"):
        raise ConfigError("motif_ranking", f"unknown {config.motif_ranking!r}; encoder or decoder")
    if config.n_top < 10:
        raise ConfigError("n_top", f"must be >= 10, got {config.n_top}")
    if config.lda.passes < 1 or config.lda.batch_size < 1:
        raise ConfigError("lda.passes", "passes and batch_size must be >= 1")
    _check_gibbs(config.gibbs_lda)
    _check_yardsticks(config.yardsticks)
    return config


def _check_gibbs(gibbs: GibbsLdaConfig) -> None:
    for key in ("alpha", "eta"):
        if not getattr(gibbs, key) > 0:
            raise ConfigError(f"gibbs_lda.{key}", f"must be > 0, got {getattr(gibbs, key)}")
    for key in ("workers", "max_iterations", "chunk_iterations", "infer_iterations"):
        if not (isinstance(getattr(gibbs, key), int) and getattr(gibbs, key) >= 1):
            raise ConfigError(f"gibbs_lda.{key}", f"must be an integer >= 1, got {getattr(gibbs, key)!r}")


def _check_yardsticks(sticks: YardstickConfig) -> None:
    if sticks.background not in ("corpus", "uniform"):
        raise ConfigError("yardsticks.background", f"unknown {sticks.background!r}; corpus or uniform")
    if not sticks.limit_c > 0:
        raise ConfigError("yardsticks.limit_c", f"must be > 0, got {sticks.limit_c}")
    if not (isinstance(sticks.limit_folds, int) and sticks.limit_folds >= 2):
        raise ConfigError("yardsticks.limit_folds", f"must be an integer >= 2, got {sticks.limit_folds!r}")
