"""The recovery benchmark's configuration (``conf/benchmark_recovery``), checked key by key."""

from __future__ import annotations

import dataclasses

from bindvae.config import RunConfig, check_switches, from_dict
from bindvae.data import synthetic
from bindvae.errors import ConfigError


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
    max_iterations: int = 20_000
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
        signature_q: a motif's AUROC is its matched topic's signature score (the topic plus the used
            topics whose motif matches its motif at this q-value, :mod:`bindvae.analysis.signatures`;
            ours, the same rule for every method); 0 scores the matched topic alone.
        signature_namesakes: signatures also add each topic's namesakes (the used topics whose motif
            matches the topic's best database motif at ``signature_q``, and those whose own best
            database match is that motif too at ``signature_piece_q``; ours, as the analysis does).
        signature_piece_q: see ``signature_namesakes`` (0: that second rule off).
        signature_apart_q: look-alikes whose best database matches differ, each at ``signature_q``, are
            not joined unless one matches the other's best at this q-value
            (:func:`bindvae.analysis.signatures.keep_apart`; ours, as the analysis does; 0: off).
        split_motifs: ours: a topic whose 10-mers hold two sites also gets a PWM of each
            (:func:`bindvae.analysis.motifs.split_motifs`), and a planted motif matches the best of a topic's
            motifs, for every method alike; false: one PWM per topic (the paper's).
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
    signature_q: float = 0.05
    signature_namesakes: bool = True
    signature_piece_q: float = 0.25
    signature_apart_q: float = 0.25
    split_motifs: bool = True


def _strict(cls, values: dict, section: str, convert: dict | None = None):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{section}.{unknown[0]}" if section else unknown[0], "unknown key")
    values = dict(values)
    for key, fn in (convert or {}).items():
        if key in values:
            values[key] = fn(values[key])
    check_switches(cls, values, section)
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
    if not 0.0 <= config.signature_q <= 1.0:
        raise ConfigError("signature_q", f"must be in [0, 1], got {config.signature_q}")
    for key in ("signature_piece_q", "signature_apart_q"):
        if not 0.0 <= getattr(config, key) <= 1.0:
            raise ConfigError(key, f"must be in [0, 1], got {getattr(config, key)}")
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
