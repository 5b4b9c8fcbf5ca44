"""The configuration schema: frozen dataclasses, validated on construction.

These dataclasses are the single source of truth for every option. ``experiments/`` registers them
with Hydra's ConfigStore so YAML files cannot add keys they lack; library functions only ever see
these objects (never a DictConfig). Defaults are the paper's settings (Kshirsagar et al. 2022):
M = 100 topics, alpha = 10, batch 128, Adam lr 3e-4, 300,000 steps with a 150,000-step prior burn-in.

Every invalid value raises :class:`bindvae.errors.ConfigError` naming the dotted key, before any
computation starts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from bindvae.errors import ConfigError

ACTIVATIONS = ("relu", "gelu", "softplus", "tanh", "elu", "silu")
COMPUTE_PATHS = ("auto", "sparse", "sparse_cpu", "fused_cpu", "dense")
NUMBA_COMPUTE_PATHS = ("sparse_cpu", "fused_cpu")  # numba kernels that re-derive the gradient by hand
SAMPLERS = ("fast", "exact")
OPTIMIZERS = ("adam", "adamw")
THETA_INITS = ("glorot", "background")
INPUT_TRANSFORMS = ("counts", "log1p", "binary")
INPUT_NORMS = ("none", "l1", "l2")
KMER_SELECTIONS = ("none", "dispersion")
DECODERS = ("mixture", "product")
DECODER_UPDATES = ("adam", "online_em")
EM_ESTEPS = ("sample", "mean")
DATA_SOURCES = ("synthetic", "npz", "fasta", "reference", "shards")
LOGGER_KINDS = ("wandb", "none")


def _require(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise ConfigError(key, problem)


@dataclass(frozen=True)
class ModelConfig:
    """The Dirichlet VAE (SPEC section 3).

    Attributes:
        num_topics: M, the number of latent topics (Dirichlet dimensions).
        alpha: initial prior concentration (the swept hyper-parameter); the prior is
            Dirichlet(alpha * 1_M) until the burn-in ends, then learned per topic.
        hidden_sizes: encoder MLP widths, first layer reads the k-mer count vector.
        activation: encoder nonlinearity, one of ``ACTIVATIONS``.
        min_concentration: lower clip of posterior and prior concentrations.
        max_concentration: upper clip of posterior and prior concentrations.
        theta_init: decoder logits at step 0: ``glorot`` (the reference's Glorot-normal logits, so
            every topic starts near the uniform distribution over k-mers) or ``background`` (the log
            of the training k-mer frequencies plus N(0, 0.01^2) noise: topics start at the corpus
            background and only learn deviations from it; see ``bindvae.vae.network.background_theta``).
            The default is ``background``: with Glorot logits the topics spend their first thousands
            of updates learning the same background and stay alike, so short runs recover few motifs
            (measured in BENCHMARKS.md); ``glorot`` reproduces the reference exactly.
        input_transform: what the encoder's first layer reads of each k-mer count c: ``counts``
            (c, the paper's), ``log1p`` (log(1 + c)) or ``binary`` (1 where c > 0); ours, behind
            config. The likelihood always uses the counts themselves.
        input_norm: how each peak's transformed counts are then scaled before the encoder reads them:
            ``none`` (the paper's), ``l1`` (they sum to 1) or ``l2`` (unit Euclidean length), so that
            the encoder sees a peak's k-mer make-up and not its number of k-mers; ours, behind config.
            Measured in BENCHMARKS.md ("The encoder's input and depth"): more motifs recovered, CTCF's
            and FOS::JUN's carriers ranked worse; not a gain.
        topic_eta: a symmetric Dirichlet(eta) prior on each topic's k-mer distribution phi_m (LDA's
            eta), MAP treatment: the loss gains -(eta - 1) * sum_m sum_v log phi_mv / n_train per batch
            (the prior counts once per epoch). 0 (the default) = off = the paper's model; eta < 1
            rewards sparse topics, eta > 1 smooths them towards uniform. Ours, not the paper's; only
            the XLA paths (``train.compute_path`` ``sparse`` / ``dense``) implement it (``auto`` picks
            ``sparse`` on the CPU when it is set).
        kmer_selection: which k-mers the model sees: ``none`` (all 112,800, the paper's) or
            ``dispersion`` (ours): the ``kmer_selection_size`` k-mers whose training counts vary across
            peaks most beyond what each peak's GC content predicts (``bindvae.features.selection``).
            The chosen columns are saved with every checkpoint; inference on sequences or on full
            gapped 8-mer features uses them. Measured in BENCHMARKS.md ("Choosing the k-mers").
        kmer_selection_size: k-mers kept by ``kmer_selection=dispersion``.
        decoder: how a peak's topic proportions z make its k-mer distribution: ``mixture`` (the paper's,
            p = z @ softmax(theta)) or ``product`` (ours, a product of experts as in ProdLDA:
            p = softmax(z @ theta), so each topic adds log-odds to the k-mers it favours instead of
            owning a share of the peak's k-mers). Each topic's own distribution (``softmax(theta_m)``,
            what the analysis reads) is the peak's distribution when it is all that topic, and
            ``latent_scores(kind="counts")`` shares a peak's k-mers among those distributions as for
            the mixture. Only the XLA paths implement ``product`` (``auto`` picks ``sparse`` on the
            CPU). Measured in BENCHMARKS.md ("Three decoder variants"): not a gain on the planted set.
        background_topic: ours: the last topic is the corpus itself: it starts at the training
            k-mer frequencies without noise (needs ``theta_init=background``) and is put back there
            after every update, so that the other topics need only hold what a peak has beyond the
            background. Measured in BENCHMARKS.md ("Three decoder variants"): not a gain.
    """

    num_topics: int = 100
    alpha: float = 10.0
    hidden_sizes: tuple = (300, 300, 300)
    activation: str = "relu"
    min_concentration: float = 0.1
    max_concentration: float = 1000.0
    theta_init: str = "background"
    input_transform: str = "counts"
    input_norm: str = "none"
    topic_eta: float = 0.0
    kmer_selection: str = "none"
    kmer_selection_size: int = 5000
    decoder: str = "mixture"
    background_topic: bool = False

    def __post_init__(self):
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in self.hidden_sizes))
        _require(int(self.num_topics) >= 1, "model.num_topics", f"must be >= 1, got {self.num_topics}")
        _require(float(self.alpha) > 0, "model.alpha", f"must be > 0, got {self.alpha}")
        _require(len(self.hidden_sizes) >= 1, "model.hidden_sizes", "needs at least one layer")
        _require(
            all(h >= 1 for h in self.hidden_sizes),
            "model.hidden_sizes",
            f"widths must be >= 1, got {self.hidden_sizes}",
        )
        _require(
            self.activation in ACTIVATIONS, "model.activation", f"unknown {self.activation!r}; one of {ACTIVATIONS}"
        )
        _require(
            self.theta_init in THETA_INITS, "model.theta_init", f"unknown {self.theta_init!r}; one of {THETA_INITS}"
        )
        _require(self.input_transform in INPUT_TRANSFORMS, "model.input_transform",
                 f"unknown {self.input_transform!r}; one of {INPUT_TRANSFORMS}")
        _require(self.input_norm in INPUT_NORMS, "model.input_norm",
                 f"unknown {self.input_norm!r}; one of {INPUT_NORMS}")
        _require(float(self.topic_eta) >= 0, "model.topic_eta", f"must be >= 0 (0 = off), got {self.topic_eta}")
        _require(self.kmer_selection in KMER_SELECTIONS, "model.kmer_selection",
                 f"unknown {self.kmer_selection!r}; one of {KMER_SELECTIONS}")
        _require(int(self.kmer_selection_size) >= 1, "model.kmer_selection_size",
                 f"must be >= 1, got {self.kmer_selection_size}")
        _require(self.decoder in DECODERS, "model.decoder", f"unknown {self.decoder!r}; one of {DECODERS}")
        _require(not self.background_topic or self.theta_init == "background", "model.background_topic",
                 f"needs model.theta_init=background (the corpus frequencies it is held at), got {self.theta_init!r}")
        _require(not self.background_topic or int(self.num_topics) >= 2, "model.background_topic",
                 f"needs model.num_topics >= 2 (one topic is the background), got {self.num_topics}")
        _require(
            0 < self.min_concentration < self.max_concentration,
            "model.min_concentration",
            f"need 0 < min ({self.min_concentration}) < max ({self.max_concentration})",
        )
        _require(
            self.min_concentration <= self.alpha <= self.max_concentration,
            "model.alpha",
            f"{self.alpha} is outside the clip range [{self.min_concentration}, {self.max_concentration}]",
        )


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, schedule, evaluation and checkpointing.

    Attributes:
        steps: total optimiser steps (the run stops at this global step).
        batch_size: sequences per step.
        learning_rate: Adam learning rate.
        prior_burn_in_steps: the prior concentration is frozen while ``step < prior_burn_in_steps``.
        seed: root seed; the run's keys and its batch order are functions of it alone.
        log_every: steps between metric lines (metrics.jsonl, logger, progress bar).
        eval_every: steps between held-out ELBO / perplexity evaluations (0 = only at the end).
        checkpoint_every: steps between checkpoints (the last step is always saved).
        keep_checkpoints: how many most recent checkpoints to keep.
        val_fraction: fraction of sequences held out for validation.
        resume: continue from the run directory's latest checkpoint.
        overwrite: delete an existing run's checkpoints and start over.
        compute_path: ``sparse`` (gathers at nonzero k-mers), ``dense`` (count matrix), the CPU-only
            ``sparse_cpu`` (numba kernels) and ``fused_cpu`` (the same kernels with Adam applied to
            W1 and theta inside them, ``bindvae.kernels.fused``), or ``auto`` (the fastest measured for the
            backend: see ``bindvae.training.resolve_compute_path``).
        sampler: Dirichlet sampler for z: ``fast`` (fixed-width Marsaglia-Tsang, no rejection loop;
            see ``bindvae.vae.sampling``) or ``exact`` (``jax.random.dirichlet``); both give implicit gradients.
        steps_per_call: optimiser steps per device dispatch (``lax.scan``); 0 = auto
            (1 on CPU, 100 on accelerators).
        n_length_buckets: at most this many padded nnz lengths, to bound recompiles.
        max_bad_steps: this many consecutive non-finite steps (skipped, not applied) stop the run.
        topic_table_every: steps between tables of each topic's top k-mers in the logger (0 = never).
        topic_table_k: k-mers per topic in that table.
        optimizer_state_dtype: ``float32`` (default) or ``bfloat16`` Adam moments (changes numerics).
        optimizer: ``adam`` (the paper's) or ``adamw`` (ours: Adam with decoupled weight decay
            ``weight_decay`` on the network's parameters, not on the prior). ``fused_cpu`` implements Adam
            only: with ``adamw`` it is refused and ``auto`` picks ``sparse_cpu``.
        weight_decay: AdamW's decoupled weight decay (used by ``optimizer=adamw`` only).
        progress: show a progress bar.
        eval_batches: cap on validation batches per evaluation (0 = whole validation set).
        devices: data-parallel devices: 0 = all (every device of every process in a multi-host
            run), N = the first N local ones. Parameters are replicated, each batch is split over
            them (``batch_size`` must be a multiple); see ``bindvae.training.parallel``.
        distributed: join a multi-host run with ``jax.distributed.initialize`` before training.
        coordinator_address: ``host:port`` of process 0 (None: detected, e.g. from Slurm).
        num_processes: number of processes (0: detected).
        process_id: this process's rank (-1: detected).
        warmup_steps: the learning rate rises linearly from 0 over this many steps (0 = none; ours,
            not the paper's).
        decay: ``none`` (the paper's constant rate) or ``cosine`` (after warm-up, down to
            ``final_lr_fraction`` x the rate at ``steps``; ours). The prior's rate stays constant.
        final_lr_fraction: the cosine decay's end point, as a fraction of ``learning_rate``.
        max_minutes: stop after this many minutes of training (0 = no limit); the step reached is
            checkpointed and the run can be resumed. A time-limited run's last step depends on the
            machine's speed.
        patience: stop when this many evaluations in a row (``eval_every``) have not improved the
            best validation ELBO (0 = never).
        keep_best: also keep the checkpoint with the best validation ELBO in ``<run dir>/best``;
            analysis reads it instead of the latest.
        restarts: initialisations to try (ours; 1 = the paper's single start). Each is trained for
            ``restart_steps`` steps on the same batches; the one with the best validation ELBO is
            trained on to ``steps`` and the others are dropped. Needs validation data and one device
            with the data in memory.
        restart_steps: steps each initialisation gets before the choice (< ``steps``).
        learn_prior: learn the prior concentration after ``prior_burn_in_steps`` (the paper's
            schedule). False (ours) keeps it at ``model.alpha`` for the whole run: a learned prior lets
            a topic's concentration fall to ``model.min_concentration``, after which no peak uses it.
        decoder_update: how the topics (decoder logits theta) learn: ``adam`` (the paper's: the
            optimiser on the ELBO's gradient) or ``online_em`` (ours, online LDA's stochastic EM:
            each step's expected topic-k-mer counts, scaled to the training set, are blended into
            the topics with weight ``(em_offset + step) ** -em_decay``; the encoder and prior keep
            the optimiser; ``bindvae.vae.objectives.online_em_logits``). ``fused_cpu`` implements
            Adam only: with ``online_em`` it is refused and ``auto`` picks ``sparse_cpu``.
        em_eta: ``online_em``'s pseudo-count per topic and k-mer (LDA's eta), > 0.
        em_offset: ``online_em``'s step-size offset (online LDA's tau0), >= 1.
        em_decay: ``online_em``'s step-size decay (online LDA's kappa), in [0.5, 1].
        em_estep: the topic proportions of ``online_em``'s E-step: ``sample`` (the ELBO's own
            Dirichlet sample of the step) or ``mean`` (the encoder's posterior mean).
    """

    steps: int = 300_000
    batch_size: int = 128
    learning_rate: float = 3e-4
    prior_burn_in_steps: int = 150_000
    seed: int = 0
    log_every: int = 100
    eval_every: int = 5_000
    checkpoint_every: int = 10_000
    keep_checkpoints: int = 3
    val_fraction: float = 0.05
    resume: bool = False
    overwrite: bool = False
    compute_path: str = "auto"
    sampler: str = "fast"
    steps_per_call: int = 0
    n_length_buckets: int = 4
    max_bad_steps: int = 20
    topic_table_every: int = 5_000
    topic_table_k: int = 10
    optimizer_state_dtype: str = "float32"
    optimizer: str = "adam"
    weight_decay: float = 1e-4
    progress: bool = True
    eval_batches: int = 0
    devices: int = 0
    distributed: bool = False
    coordinator_address: Optional[str] = None
    num_processes: int = 0
    process_id: int = -1
    warmup_steps: int = 0
    decay: str = "none"
    final_lr_fraction: float = 0.1
    max_minutes: float = 0.0
    patience: int = 0
    keep_best: bool = False
    restarts: int = 1
    restart_steps: int = 2_000
    learn_prior: bool = True
    decoder_update: str = "adam"
    em_eta: float = 0.01
    em_offset: float = 10.0
    em_decay: float = 0.5
    em_estep: str = "sample"

    def __post_init__(self):
        _require(self.steps >= 1, "train.steps", f"must be >= 1, got {self.steps}")
        _require(self.batch_size >= 1, "train.batch_size", f"must be >= 1, got {self.batch_size}")
        _require(self.learning_rate > 0, "train.learning_rate", f"must be > 0, got {self.learning_rate}")
        _require(
            self.prior_burn_in_steps >= 0, "train.prior_burn_in_steps", f"must be >= 0, got {self.prior_burn_in_steps}"
        )
        _require(
            not self.learn_prior or self.prior_burn_in_steps <= self.steps,  # no burn-in without learning
            "train.prior_burn_in_steps",
            f"burn-in ({self.prior_burn_in_steps}) is longer than train.steps ({self.steps}); "
            "the prior would never be learned",
        )
        for key in ("log_every", "checkpoint_every", "keep_checkpoints", "max_bad_steps", "n_length_buckets"):
            _require(getattr(self, key) >= 1, f"train.{key}", f"must be >= 1, got {getattr(self, key)}")
        for key in ("eval_every", "topic_table_every", "steps_per_call", "eval_batches"):
            _require(getattr(self, key) >= 0, f"train.{key}", f"must be >= 0, got {getattr(self, key)}")
        _require(self.topic_table_k >= 1, "train.topic_table_k", f"must be >= 1, got {self.topic_table_k}")
        _require(0.0 <= self.val_fraction < 1.0, "train.val_fraction", f"must be in [0, 1), got {self.val_fraction}")
        _require(
            self.compute_path in COMPUTE_PATHS,
            "train.compute_path",
            f"unknown {self.compute_path!r}; one of {COMPUTE_PATHS}",
        )
        _require(self.sampler in SAMPLERS, "train.sampler", f"unknown {self.sampler!r}; one of {SAMPLERS}")
        _require(
            self.optimizer_state_dtype in ("float32", "bfloat16"),
            "train.optimizer_state_dtype",
            f"unknown {self.optimizer_state_dtype!r}; float32 or bfloat16",
        )
        _require(self.optimizer in OPTIMIZERS, "train.optimizer", f"unknown {self.optimizer!r}; one of {OPTIMIZERS}")
        _require(float(self.weight_decay) >= 0, "train.weight_decay", f"must be >= 0, got {self.weight_decay}")
        _require(self.decoder_update in DECODER_UPDATES, "train.decoder_update",
                 f"unknown {self.decoder_update!r}; one of {DECODER_UPDATES}")
        _require(float(self.em_eta) > 0, "train.em_eta", f"must be > 0, got {self.em_eta}")
        _require(float(self.em_offset) >= 1, "train.em_offset", f"must be >= 1, got {self.em_offset}")
        _require(0.5 <= float(self.em_decay) <= 1, "train.em_decay", f"must be in [0.5, 1], got {self.em_decay}")
        _require(self.em_estep in EM_ESTEPS, "train.em_estep", f"unknown {self.em_estep!r}; one of {EM_ESTEPS}")
        _require(not (self.resume and self.overwrite), "train.resume", "resume and overwrite cannot both be true")
        _require(self.devices >= 0, "train.devices", f"must be >= 0 (0 = all), got {self.devices}")
        _require(self.num_processes >= 0, "train.num_processes", f"must be >= 0 (0 = detect), got {self.num_processes}")
        _require(self.process_id >= -1, "train.process_id", f"must be >= -1 (-1 = detect), got {self.process_id}")
        _require(
            0 <= self.warmup_steps < self.steps,
            "train.warmup_steps",
            f"must be in [0, train.steps), got {self.warmup_steps}",
        )
        _require(self.decay in ("none", "cosine"), "train.decay", f"unknown {self.decay!r}; none or cosine")
        _require(
            0.0 <= self.final_lr_fraction <= 1.0,
            "train.final_lr_fraction",
            f"must be in [0, 1], got {self.final_lr_fraction}",
        )
        _require(self.max_minutes >= 0, "train.max_minutes", f"must be >= 0 (0 = no limit), got {self.max_minutes}")
        _require(self.patience >= 0, "train.patience", f"must be >= 0 (0 = never), got {self.patience}")
        _require(not ((self.patience or self.keep_best) and self.val_fraction == 0), "train.val_fraction",
                 "train.patience and train.keep_best need validation data (val_fraction > 0)")
        _require(self.restarts >= 1, "train.restarts", f"must be >= 1 (1 = one start), got {self.restarts}")
        if self.restarts > 1:
            _require(0 < self.restart_steps < self.steps, "train.restart_steps",
                     f"must be in [1, train.steps={self.steps}), got {self.restart_steps}")
            _require(self.val_fraction > 0, "train.val_fraction",
                     "train.restarts chooses by validation ELBO and needs validation data (val_fraction > 0)")


@dataclass(frozen=True)
class DataConfig:
    """Where the training sequences come from (one group file per ``source``).

    Attributes:
        source: ``synthetic`` (generated peaks), ``npz`` (features saved by ``experiments.featurize``),
            ``fasta`` (peak sequences, featurized on the fly) or ``reference`` (a reference-format
            feature file plus the reference vocabulary) or ``shards`` (a sharded dataset folder written
            by ``experiments.featurize ... shard_size=N``, streamed during training).
        path: the ``.npz`` or FASTA file, or the shards folder (sources ``npz``, ``fasta``, ``shards``).
        features: reference-format feature file (source ``reference``).
        vocabulary: reference vocabulary ``.npy`` (source ``reference``).
        n_sequences: number of synthetic sequences.
        sequence_length: length of synthetic sequences in bp.
        max_sequences: keep at most this many sequences (0 = all).
        shuffle_buffer: rows kept back to mix across shards when streaming (0 = one shard's worth).
        prefetch: shards read ahead by a background thread when streaming.
    """

    source: str = "synthetic"
    path: Optional[str] = None
    features: Optional[str] = None
    vocabulary: Optional[str] = None
    n_sequences: int = 2_000
    sequence_length: int = 200
    max_sequences: int = 0
    shuffle_buffer: int = 0
    prefetch: int = 2

    def __post_init__(self):
        _require(self.source in DATA_SOURCES, "data.source", f"unknown {self.source!r}; one of {DATA_SOURCES}")
        if self.source in ("npz", "fasta", "shards"):
            _require(bool(self.path), "data.path", f"is required for data={self.source}")
        if self.source == "reference":
            _require(bool(self.features), "data.features", "is required for data=reference")
            _require(bool(self.vocabulary), "data.vocabulary", "is required for data=reference")
        _require(self.n_sequences >= 1, "data.n_sequences", f"must be >= 1, got {self.n_sequences}")
        _require(self.sequence_length >= 8, "data.sequence_length", f"must be >= 8, got {self.sequence_length}")
        _require(self.max_sequences >= 0, "data.max_sequences", f"must be >= 0, got {self.max_sequences}")
        _require(self.shuffle_buffer >= 0, "data.shuffle_buffer", f"must be >= 0, got {self.shuffle_buffer}")
        _require(self.prefetch >= 1, "data.prefetch", f"must be >= 1, got {self.prefetch}")


@dataclass(frozen=True)
class LoggerConfig:
    """Experiment tracking; ``metrics.jsonl`` in the run directory is always written.

    Attributes:
        kind: ``wandb`` or ``none`` (metrics.jsonl only).
        mode: wandb mode: ``offline`` (default, no network), ``online`` or ``disabled``.
        project: wandb project.
        entity: wandb entity (team or user), None for the default.
        group: wandb group; sweeps set it to the sweep name.
        name: run name; None gives ``M{num_topics}_a{alpha}_s{seed}``.
        tags: wandb tags.
    """

    kind: str = "wandb"
    mode: str = "offline"
    project: str = "bindvae"
    entity: Optional[str] = None
    group: Optional[str] = None
    name: Optional[str] = None
    tags: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "tags", tuple(self.tags))
        _require(self.kind in LOGGER_KINDS, "logger.kind", f"unknown {self.kind!r}; one of {LOGGER_KINDS}")
        _require(self.mode in ("offline", "online", "disabled"), "logger.mode", f"unknown {self.mode!r}")


@dataclass(frozen=True)
class RunConfig:
    """One training run: the root of the Hydra config."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self):
        refuse_on_numba(xla_only_variant(self.model), self.train.compute_path)
        if self.train.decoder_update == "online_em":
            _require(self.model.decoder == "mixture", "train.decoder_update",
                     f"online_em fits the paper's mixture decoder, not model.decoder={self.model.decoder}")
            _require(not self.model.topic_eta, "train.decoder_update",
                     "online_em replaces the topics' gradient, so model.topic_eta (a prior in that gradient) "
                     "would be ignored; its own pseudo-count is train.em_eta")


def xla_only_variant(model) -> tuple[str, str] | None:
    """``(config key, what)`` of a model variant that the numba CPU paths do not implement, or None.

    ``model`` is a :class:`ModelConfig` or a built ``BindVAE`` (both carry ``topic_eta`` and ``decoder``).
    """
    if model.topic_eta:
        return "model.topic_eta", f"the topic prior (topic_eta={model.topic_eta})"
    if model.decoder != "mixture":
        return "model.decoder", f"the {model.decoder} decoder (decoder={model.decoder})"
    return None


def refuse_on_numba(variant: tuple[str, str] | None, path: str) -> None:
    """Raise ConfigError naming the variant's key when ``path`` is a numba path, which does not implement it."""
    if variant is not None and path in NUMBA_COMPUTE_PATHS:
        raise ConfigError(variant[0], f"{variant[1]} is implemented on the XLA paths only; "
                                      f"train.compute_path={path} does not apply it: use auto, sparse or dense")


def run_name(config: RunConfig) -> str:
    """The run's display name: ``logger.name`` or ``M{num_topics}_a{alpha}_s{seed}``."""
    if config.logger.name:
        return config.logger.name
    alpha = config.model.alpha
    alpha_text = f"{alpha:g}"
    return f"M{config.model.num_topics}_a{alpha_text}_s{config.train.seed}"


def to_dict(config: Any) -> dict:
    """A JSON-ready nested dict of a config dataclass (tuples become lists)."""

    def convert(value):
        if isinstance(value, tuple):
            return [convert(v) for v in value]
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return value

    return convert(dataclasses.asdict(config))


def check_switches(cls, values: dict, section: str = "") -> None:
    """Raise ConfigError when a ``bool`` field of dataclass ``cls`` is given anything but true or false.

    A switch given a word (``overwrite=maybe``, ``resume=no``) would otherwise read as true.
    """
    for spec in dataclasses.fields(cls):
        if spec.type in ("bool", bool) and spec.name in values and not isinstance(values[spec.name], bool):
            key = f"{section}.{spec.name}" if section else spec.name
            raise ConfigError(key, f"must be true or false, got {values[spec.name]!r}")


def from_dict(values: dict) -> RunConfig:
    """Rebuild a :class:`RunConfig` from :func:`to_dict` output (e.g. a checkpoint's config).

    Raises:
        ConfigError: for an unknown key or an invalid value.
    """
    parts = {}
    for name, cls in (("model", ModelConfig), ("train", TrainConfig), ("data", DataConfig), ("logger", LoggerConfig)):
        section = dict(values.get(name, {}))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ConfigError(f"{name}.{unknown[0]}", "unknown key")
        for key in ("hidden_sizes", "tags"):
            if key in section and isinstance(section[key], list):
                section[key] = tuple(section[key])
        check_switches(cls, section, name)
        parts[name] = cls(**section)
    return RunConfig(**parts)
