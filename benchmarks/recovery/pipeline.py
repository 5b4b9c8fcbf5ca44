"""The planted-motif recovery benchmark end to end: data, features, BindVAE and two LDA peers, yardsticks, tables.

``run_recovery`` generates (or reads) a planted set, featurizes it, trains BindVAE with
:func:`bindvae.training.fit`, reloads the model from its checkpoint (analyses read checkpoints only),
trains the peers on the same training rows (scikit-learn's online LDA for a fixed number of passes;
tomotopy's collapsed Gibbs LDA until BindVAE's training wall time is spent or its sweep limit is
reached), scores all with :mod:`benchmarks.recovery.metrics`, measures each planted feature's yardsticks (oracle
PWM scan, cross-validated supervised limit) and writes ``recovery.tsv`` (per feature, methods side by
side with the yardsticks and each AUROC as a fraction of the limit), ``recovery_summary.tsv``,
``recovery.md`` (both tables as Markdown) and ``recovery.json`` into the output folder. Every file is
written to a temporary name and renamed.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.recovery import metrics as recovery
from benchmarks.recovery import peers, yardsticks
from benchmarks.recovery.config import RecoveryConfig
from benchmarks.recovery.tables import side_by_side, summary_table, write_tables
from bindvae.config import DataConfig
from bindvae.data import synthetic
from bindvae.errors import InputError
from bindvae.motif import load_motif_database, read_meme

logger = logging.getLogger(__name__)


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
    from bindvae.features.sequences import read_fasta

    records = read_fasta(config.fasta)
    truth = synthetic.read_truth(synthetic.truth_path_for(config.fasta))
    motif_path = Path(config.fasta).with_name(Path(config.fasta).name.rsplit(".", 1)[0] + ".motifs.meme")
    if not motif_path.is_file():
        raise InputError(motif_path, "planted motif file not found next to the FASTA")
    motifs = {m.alt_name or m.name: m for m in read_meme(motif_path)}
    return synthetic.SyntheticSet(records.names, records.sequences, truth, motifs), str(config.fasta)


def _database(config: RecoveryConfig, planted: list) -> list:
    if config.motif_db == "jaspar":
        return load_motif_database(config.jaspar_release, extra=planted)
    motifs = read_meme(config.motif_db)
    names = {m.name for m in motifs}
    return motifs + [m for m in planted if m.name not in names]


def _train_bindvae(config: RecoveryConfig, train_X, val_X, fingerprint: str, workdir: Path, metric_logger):
    from bindvae.training import fit

    start = time.perf_counter()
    result = fit(config.run, train_X, val_X, fingerprint, workdir, metric_logger)
    return result, time.perf_counter() - start


def _score_bindvae(config: RecoveryConfig, workdir: Path, X, dataset, database,
                   totals: np.ndarray | None = None) -> tuple[pd.DataFrame, float]:
    from bindvae.analysis.topics import topic_motif_sets
    from bindvae.infer import latent_scores, load_model

    start = time.perf_counter()
    model = load_model(workdir)
    peak_scores = latent_scores(model, X, kind="mean")  # proportions, as every method's headline; shares beside
    motifs, _ = topic_motif_sets(model, n_top=config.n_top, ranking=config.motif_ranking, split=config.split_motifs)
    table = recovery.score_recovery(motifs, peak_scores, dataset.names, dataset.truth, dataset.motifs, database,
                                    config.q_threshold, signature_q=config.signature_q,
                                    namesakes=config.signature_namesakes, piece_q=config.signature_piece_q,
                                    apart_q=config.signature_apart_q,
                                    extra_scores={"scan": latent_scores(model, X, kind="decoder"),
                                                  **recovery.counts_and_shares(latent_scores(model, X, kind="counts"),
                                                                               peak_scores, totals),
                                                  "concentration": latent_scores(model, X, kind="concentration")})
    table.attrs["pair_probes"] = _pair_by_probes(model, dataset, config.seed)
    return table, time.perf_counter() - start


def _chosen_vocabulary(workdir: Path):
    """The k-mers BindVAE trained on when it chose them (``model.kmer_selection``), else None."""
    from bindvae.infer import load_model

    chosen = load_model(workdir).vocabulary
    return chosen if chosen.parent is not None else None


def _pair_by_probes(model, dataset, seed: int) -> str:
    """The planted pair scored by the cooperative-binding route: one composite topic, two topics or missed."""
    from bindvae.analysis import pair_route

    planted = pair_route.planted_pair(dataset.truth, dataset.motifs)
    if planted is None:
        return ""
    found = pair_route.planted_pair_route(model, *planted, seed=seed)
    return f"{found['route']} ({found['topic']}, q {found['q_value']:.2g})" if found["topic"] else found["route"]


class _KmerProbes:
    """The 10-mers whose topic scores build the peers' motifs, featurized once for both peers.

    Args:
        codes: 10-mer codes to probe (None: all canonical 10-mers).
    """

    def __init__(self, codes: np.ndarray | None = None, vocabulary=None):
        self._codes = codes
        self._vocabulary = vocabulary
        self._value = None

    def get(self):
        """``(codes [n_kmers10], counts [n_kmers10, n_kmers] CSR)``."""
        if self._value is None:
            from bindvae.analysis.motifs import canonical_kmer_codes, decode_kmers
            from bindvae.features.kmers import featurize

            codes = canonical_kmer_codes(10) if self._codes is None else self._codes
            self._value = codes, featurize(decode_kmers(codes, 10), self._vocabulary)
        return self._value


def _run_lda(config: RecoveryConfig, train_X, val_X, X, dataset, database, probes: _KmerProbes,
             totals: np.ndarray | None = None) -> MethodResult:
    start = time.perf_counter()
    lda = peers.fit_lda(train_X, config.run.model.num_topics, config.run.train.seed, config.lda.passes,
                           config.lda.batch_size, config.lda.n_jobs)
    train_s = time.perf_counter() - start
    perplexity = float(lda.perplexity(val_X)) if val_X.shape[0] else float("nan")
    start = time.perf_counter()
    codes, probe_X = probes.get()
    kmer_scores = peers.transform_in_chunks(lda.transform, probe_X, chunk=50_000)
    motifs = recovery.topic_motifs_from_scores(kmer_scores, codes, top_k=config.n_top, prefix="lda_topic",
                                                 split=config.split_motifs)
    peak_scores = peers.transform_in_chunks(lda.transform, X)
    extra = {"scan": recovery.scan_topic_words(lda.components_, X),
             **recovery.counts_and_shares(recovery.topic_word_counts(lda.components_, peak_scores, X), peak_scores,
                                          totals)}
    table = recovery.score_recovery(motifs, peak_scores, dataset.names, dataset.truth, dataset.motifs, database,
                                    config.q_threshold, signature_q=config.signature_q,
                                    namesakes=config.signature_namesakes, piece_q=config.signature_piece_q,
                                    apart_q=config.signature_apart_q,
                                    extra_scores=extra)
    analysis_s = time.perf_counter() - start
    return MethodResult(table, recovery.summarize(table, config.q_threshold), perplexity, train_s, analysis_s,
                        config.lda.passes, "passes")


def _run_gibbs_lda(config: RecoveryConfig, X, val_rows: np.ndarray, dataset, database, probes: _KmerProbes,
                   budget_s: float, totals: np.ndarray | None = None) -> MethodResult:
    """The tomotopy peer: trained on the same rows as BindVAE within its wall time, scored like the others.

    Training rows get their sampled topic proportions, held-out rows tomotopy's ``infer``, and the
    10-mer probes the mean-field proportions under the Gibbs topics (as scikit-learn's ``transform``).
    """
    gibbs = config.gibbs_lda
    train_rows = np.setdiff1d(np.arange(X.shape[0]), val_rows)
    fitted = peers.fit_gibbs_lda(X[train_rows], config.run.model.num_topics, config.run.train.seed, gibbs.alpha,
                                    gibbs.eta, gibbs.workers, gibbs.max_iterations,
                                    budget_s if gibbs.match_bindvae_time else None, gibbs.chunk_iterations)
    start = time.perf_counter()
    peak_scores = np.zeros((X.shape[0], config.run.model.num_topics), dtype=np.float32)
    peak_scores[train_rows] = peers.gibbs_training_topics(fitted)
    peak_scores[val_rows], perplexity = peers.gibbs_infer(fitted, X[val_rows], gibbs.infer_iterations,
                                                             gibbs.workers)
    codes, probe_X = probes.get()
    topic_word = peers.gibbs_topic_word(fitted)
    kmer_scores = peers.variational_transform(topic_word, fitted.model.alpha, probe_X)
    motifs = recovery.topic_motifs_from_scores(kmer_scores, codes, top_k=config.n_top, prefix="gibbs_topic",
                                                 split=config.split_motifs)
    table = recovery.score_recovery(motifs, peak_scores, dataset.names, dataset.truth, dataset.motifs, database,
                                    config.q_threshold, signature_q=config.signature_q,
                                    namesakes=config.signature_namesakes, piece_q=config.signature_piece_q,
                                    apart_q=config.signature_apart_q,
                                    extra_scores={"scan": recovery.scan_topic_words(topic_word, X),
                                                  **recovery.counts_and_shares(
                                                      recovery.topic_word_counts(topic_word, peak_scores, X),
                                                      peak_scores, totals)})
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
    oracle = yardsticks.oracle_aurocs(dataset, sticks.background)
    oracle_s = time.perf_counter() - start
    limits = yardsticks.supervised_limits(X, dataset.truth, dataset.names, sticks.limit_c, sticks.limit_folds,
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
    from bindvae.data.datasets import split_train_val
    from bindvae.features.kmers import Vocabulary, featurize

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset, fasta = load_planted_set(config, out_dir)
    vocabulary = Vocabulary.gapped8()
    X = featurize(dataset.sequences, vocabulary)
    totals = np.asarray(X.sum(axis=1), dtype=np.float64).ravel()  # every gapped 8-mer of a peak: density's denominator
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
    table, analysis_s = _score_bindvae(config, workdir, X, dataset, database, totals)
    methods = {"BindVAE": MethodResult(table, recovery.summarize(table, config.q_threshold),
                                       float(fitted.val_metrics.get("val_perplexity", float("nan"))),
                                       train_s, analysis_s, config.run.train.steps, "steps")}
    # Same features for every method: when BindVAE chose its k-mers (model.kmer_selection), the peers
    # get the same columns (the yardsticks keep all of them: they measure what the features hold).
    chosen = _chosen_vocabulary(workdir)
    if chosen is not None:
        X, train_X, val_X = (chosen.restrict(m) for m in (X, train_X, val_X))
    probes = _KmerProbes(vocabulary=chosen)
    if config.lda.enabled:
        methods["LDA"] = _run_lda(config, train_X, val_X, X, dataset, database, probes, totals)
    if config.gibbs_lda.enabled:
        methods["Gibbs LDA"] = _run_gibbs_lda(config, X, val_rows, dataset, database, probes, train_s, totals)
    all_kmers = featurize(dataset.sequences, vocabulary) if chosen is not None else X
    yardsticks = compute_yardsticks(config, all_kmers, dataset) if config.yardsticks.enabled else pd.DataFrame()
    if not yardsticks.empty:
        limits = dict(zip(yardsticks["feature"], yardsticks["limit_auroc"]))
        for result in methods.values():
            result.table = recovery.add_limit_fraction(result.table, limits)
            result.summary = recovery.summarize(result.table, config.q_threshold)
    features, summary = side_by_side(methods, yardsticks), summary_table(methods, config)
    paths = write_tables(out_dir, config, features, summary, methods, fasta, machine, yardsticks)
    return RecoveryResult(methods, features, summary, paths, yardsticks)
