"""Training: state, optimiser with the prior's burn-in, jitted steps, evaluation.

A step is one pure function of (state, batch, key), jitted once with the state donated. The key is
the run's training key; each step folds in its own step number, so the noise of step s is the same
whether the run was resumed or not. The prior's freeze is part of the optimiser (a transformation
whose updates and moments stay at zero until it has seen ``prior_burn_in_steps`` updates), so
there is no Python branch and no recompile when it thaws.

Steps whose loss or gradient is not finite are skipped (parameters and optimiser state are kept),
counted, and reported; ``fit`` stops after ``max_bad_steps`` in a row. The loop over many steps per
dispatch (``make_train_loop``) keeps the padded data on the device and scans over row ids;
``fit`` runs a whole schedule (logging, evaluation, checkpoints, resume) from plain arrays.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.sparse as sp
from flax import struct
from flax.training import train_state

from bindvae import checkpoint as ckpt
from bindvae import data as data_lib
from bindvae import parallel, rundir, stream
from bindvae import objectives
from bindvae.config import RunConfig, TrainConfig, run_name, to_dict
from bindvae.errors import BindVAEError, ConfigError, InputError
from bindvae.io import check_writable_dir
from bindvae.shards import ShardIndex, read_shard
from bindvae.model import BindVAE, background_theta, build_model, init_params, prior_alpha, transform_counts
from bindvae.tracking import MetricLogger, MetricsFile, NullLogger, read_metrics

logger = logging.getLogger(__name__)

METRIC_KEYS = ("loss", "elbo", "reconstruction", "kl", "perplexity", "prior_alpha_mean", "l2_grads")


class TrainState(train_state.TrainState):
    """Flax TrainState plus non-finite step counters (int32 scalars).

    ``learning_rate`` and ``moment_dtype`` (static) are the optimiser's settings, which the fused
    CPU step (``bindvae.fused``) applies itself to W1 and theta. ``workspace`` holds that step's
    buffers kept from one step to the next (``bindvae.fused.new_workspace``; None on the other
    paths); it is derived data, never checkpointed.
    """

    bad_steps: jax.Array
    skipped_steps: jax.Array
    workspace: Any = None
    learning_rate: Any = struct.field(pytree_node=False, default=0.0)  # a float, or a schedule of the update count
    moment_dtype: str = struct.field(pytree_node=False, default="float32")


class FreezeState(NamedTuple):
    count: jax.Array
    inner: Any


def freeze_for(inner: optax.GradientTransformation, n_frozen: int) -> optax.GradientTransformation:
    """Wrap ``inner`` so that its first ``n_frozen`` updates are zero and leave its state untouched.

    This is the reference's prior burn-in: while frozen the prior neither moves nor accumulates
    Adam moments; afterwards ``inner`` runs as if it had just started.
    """

    def init_fn(params):
        return FreezeState(jnp.zeros([], jnp.int32), inner.init(params))

    def update_fn(updates, state, params=None):
        new_updates, new_inner = inner.update(updates, state.inner, params)
        active = state.count >= n_frozen
        new_updates = jax.tree.map(lambda u: jnp.where(active, u, jnp.zeros_like(u)), new_updates)
        new_inner = jax.tree.map(lambda n, o: jnp.where(active, n, o), new_inner, state.inner)
        return new_updates, FreezeState(state.count + 1, new_inner)

    return optax.GradientTransformation(init_fn, update_fn)


def _param_labels(params):
    return {name: jax.tree.map(lambda _: "prior" if name == "prior" else "net", sub) for name, sub in params.items()}


def learning_rate_schedule(config: TrainConfig):
    """The network's learning rate: the paper's constant (a float), or a function of the update count.

    ``train.warmup_steps`` > 0 ramps it linearly from 0; ``train.decay=cosine`` then lowers it to
    ``final_lr_fraction`` x ``learning_rate`` at ``train.steps`` (optax's warmup-cosine schedule).
    """
    lr = config.learning_rate
    if config.decay == "cosine":
        return optax.warmup_cosine_decay_schedule(0.0, lr, config.warmup_steps, config.steps, lr * config.final_lr_fraction)
    if config.warmup_steps:
        return optax.join_schedules([optax.linear_schedule(0.0, lr, config.warmup_steps), optax.constant_schedule(lr)],
                                    [config.warmup_steps])
    return lr


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """Adam on every parameter; the prior's part is frozen for ``prior_burn_in_steps`` updates.

    The network follows :func:`learning_rate_schedule`; the prior keeps the constant rate (its
    updates start only after burn-in).
    """
    mu_dtype = jnp.bfloat16 if config.optimizer_state_dtype == "bfloat16" else None
    return optax.multi_transform(
        {
            "net": optax.adam(learning_rate_schedule(config), mu_dtype=mu_dtype),
            "prior": freeze_for(optax.adam(config.learning_rate, mu_dtype=mu_dtype), config.prior_burn_in_steps),
        },
        _param_labels,
    )


def create_train_state(model: BindVAE, config: TrainConfig, key: jax.Array, theta: jax.Array | None = None) -> TrainState:
    """Fresh parameters (from ``key``) and optimiser state, at step 0.

    Args:
        model: the network.
        config: the training section (optimiser).
        key: PRNG key of the initialisation.
        theta: optional decoder logits [M, n_kmers] replacing the Glorot ones (e.g.
            :func:`bindvae.model.background_theta`).
    """
    params = init_params(model, key)
    if theta is not None:
        params = {**params, "topic_kmer": {**params["topic_kmer"], "theta": jnp.asarray(theta, jnp.float32)}}
    return TrainState.create(
        apply_fn=model.apply,
        params=params,
        tx=make_optimizer(config),
        bad_steps=jnp.zeros([], jnp.int32),
        skipped_steps=jnp.zeros([], jnp.int32),
        learning_rate=learning_rate_schedule(config),
        moment_dtype=config.optimizer_state_dtype,
    )


def resolve_compute_path(path: str, backend: str | None = None, *, moment_dtype: str = "float32", n_devices: int = 1) -> str:
    """``fused_cpu``, ``sparse_cpu``, ``sparse`` or ``dense`` for a configured path; ``auto`` picks per backend.

    Measured with ``python -m experiments.benchmark only=train`` (batch 128, M = 100, D = 112,800):
    on the CPU, ``fused_cpu`` (``bindvae.fused``: numba kernels that stream W1 and phi in k-mer
    order and apply Adam to W1 and theta inside their gradient kernels) is the fastest, then
    ``sparse_cpu`` (the same kernels writing dense gradients for optax), well ahead of ``dense`` and
    of ``sparse``, whose XLA gathers and scatter-adds run elementwise. The numba kernels exist only
    on the CPU; on GPUs the dense path's matmuls win. ``fused_cpu`` needs float32 Adam moments and
    one device, so ``auto`` picks ``sparse_cpu`` on the CPU otherwise.

    Raises:
        ConfigError: a CPU path asked for on another backend, or ``fused_cpu`` with bfloat16
            moments or several devices.
    """
    backend = backend or jax.default_backend()
    if path in ("sparse_cpu", "fused_cpu") and backend != "cpu":
        raise ConfigError(
            "train.compute_path", f"{path} runs on the CPU backend only, not {backend}; use auto, sparse or dense"
        )
    fusable = moment_dtype == "float32" and n_devices == 1
    if path == "fused_cpu" and not fusable:
        raise ConfigError(
            "train.compute_path",
            "fused_cpu needs float32 Adam moments (train.optimizer_state_dtype) and one device (train.devices); use auto or sparse_cpu",
        )
    if path != "auto":
        return path
    if backend != "cpu":
        return "dense"
    return "fused_cpu" if fusable else "sparse_cpu"


def load_cpu_kernels(path: str) -> None:
    """Load every numba kernel that ``path`` runs (once per process; compiled first when not cached)."""
    if path in ("sparse_cpu", "fused_cpu"):
        from bindvae import sparse_ops

        sparse_ops.load_kernels(sparse_ops.FUSED_CPU_KERNELS if path == "fused_cpu" else sparse_ops.SPARSE_CPU_KERNELS)


def resolve_steps_per_call(steps_per_call: int, backend: str | None = None) -> int:
    """Steps per dispatch: the configured value, or (0 = auto) 1 on CPU and 100 on accelerators."""
    if steps_per_call > 0:
        return steps_per_call
    backend = backend or jax.default_backend()
    return 1 if backend == "cpu" else 100


def row_terms(model: BindVAE, params, indices, counts, key, path: str, sampler: str = "fast"):
    """Per-sequence ELBO pieces of a padded batch.

    Args:
        model: the BindVAE.
        params: its parameters.
        indices: int32 [B, K] k-mer ids (padding: any id, count 0).
        counts: float32 [B, K].
        key: PRNG key for z.
        path: ``sparse``, ``sparse_cpu`` or ``fused_cpu`` (numba kernels, CPU only; the same terms) or ``dense`` (same values up to float rounding).
        sampler: ``fast`` or ``exact`` Dirichlet sampler (``bindvae.objectives.sample_topics``).

    Returns:
        (log_likelihood [B], kl [B], prior_alpha [M]).
    """
    if path in ("sparse_cpu", "fused_cpu"):  # fused_cpu differs in its update only (bindvae.fused)
        from bindvae import sparse_ops  # numba kernels as XLA CPU targets: loaded only on this path

        order = sparse_ops.column_order(indices, counts, model.n_kmers)
        enc = params["encoder"]
        enc_order = order._replace(values=transform_counts(order.values, model.input_transform))
        h1 = sparse_ops.first_layer(enc["input_kernel"], enc_order, indices.shape[0]) + enc["input_bias"]
        conc = model.apply({"params": params}, h1, method=BindVAE.from_preactivation)
        prior = prior_alpha(params, model.min_concentration, model.max_concentration)
        z = objectives.sample_topics(key, conc, sampler)
        ll = sparse_ops.log_likelihood(z, params["topic_kmer"]["theta"], counts, order)
    elif path == "sparse":
        conc, theta, prior = model.apply({"params": params}, indices, counts, method=BindVAE.sparse)
        z = objectives.sample_topics(key, conc, sampler)
        ll = objectives.log_likelihood_sparse(z, theta, indices, counts)
    else:
        x = objectives.densify(indices, counts, model.n_kmers)
        conc, theta, prior = model.apply({"params": params}, x)
        z = objectives.sample_topics(key, conc, sampler)
        ll = objectives.log_likelihood_dense(z, theta, x)
    return ll, objectives.dirichlet_kl(conc, prior), prior


def loss_and_metrics(model: BindVAE, params, indices, counts, key, path: str, sampler: str = "fast"):
    """Loss = -mean ELBO of a batch and its metrics (scalars).

    Returns:
        (loss, {"loss", "elbo", "reconstruction", "kl", "perplexity", "prior_alpha_mean"}).
        ``reconstruction`` is the mean log-likelihood (<= 0).
    """
    return batch_metrics(*row_terms(model, params, indices, counts, key, path, sampler), counts)


def batch_metrics(ll, kl, prior, counts):
    """(loss, metrics) of :func:`loss_and_metrics` from the per-sequence terms of a batch."""
    elbo = ll - kl
    loss = -jnp.mean(elbo)
    metrics = {
        "loss": loss,
        "elbo": jnp.mean(elbo),
        "reconstruction": jnp.mean(ll),
        "kl": jnp.mean(kl),
        "perplexity": objectives.perplexity(elbo, jnp.sum(counts, axis=-1)),
        "prior_alpha_mean": jnp.mean(prior),
    }
    return loss, metrics


def _update_if(ok, state: TrainState, grads):
    """(params, opt_state) after one optimiser update, or unchanged when ``ok`` is False.

    A non-finite step is skipped: the previous parameters and moments are kept. On the CPU this is
    a ``lax.cond``: only the taken branch runs, and Adam updates parameters and moments in place as
    in a bare update. An elementwise select of new against old values instead makes XLA:CPU copy
    the old moments of W1 and theta (315 MB) every step, because each of the separate parameter,
    mu and nu fusions still reads them (measured: 480 -> 295 ms CPU per step). On accelerators a
    cond would wait for the host each step, so there the select (fused into Adam) is kept.
    """

    def update(operands):
        params, opt_state = operands
        updates, opt_state = state.tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    if jax.default_backend() == "cpu":
        return jax.lax.cond(ok, update, lambda operands: operands, (state.params, state.opt_state))
    params, opt_state = update((state.params, state.opt_state))
    keep = lambda new, old: jnp.where(ok, new, old)  # noqa: E731
    return jax.tree.map(keep, params, state.params), jax.tree.map(keep, opt_state, state.opt_state)


def _apply_step(model: BindVAE, path: str, state: TrainState, indices, counts, key, sampler: str = "fast"):
    step_key = jax.random.fold_in(key, state.step)
    if path == "fused_cpu":
        from bindvae import fused  # numba kernels as XLA CPU targets: loaded only on this path

        if state.moment_dtype != "float32" or not state.learning_rate:
            raise ConfigError("train.compute_path", "fused_cpu needs float32 Adam moments and a state from create_train_state")
        params, opt_state, metrics, grad_norm, ok, workspace = fused.fused_step(
            model, state, indices, counts, step_key, sampler, state.learning_rate, batch_metrics
        )
        state = state.replace(workspace=workspace)
    else:
        grad_fn = jax.value_and_grad(lambda p: loss_and_metrics(model, p, indices, counts, step_key, path, sampler), has_aux=True)
        (loss, metrics), grads = grad_fn(state.params)
        grad_norm = optax.global_norm(grads)
        ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        params, opt_state = _update_if(ok, state, grads)
    state = state.replace(
        step=state.step + 1,
        params=params,
        opt_state=opt_state,
        bad_steps=jnp.where(ok, 0, state.bad_steps + 1).astype(jnp.int32),
        skipped_steps=(state.skipped_steps + jnp.where(ok, 0, 1)).astype(jnp.int32),
    )
    return state, {**metrics, "l2_grads": grad_norm, "finite": ok}


def make_train_step(model: BindVAE, path: str, sampler: str = "fast"):
    """The jitted step ``(state, batch, key) -> (state, metrics)``; ``state`` is donated.

    ``batch`` is ``{"indices": int32 [B, K], "counts": float32 [B, K]}``; ``key`` is the run's training
    key (the step folds in ``state.step``). Metrics are device scalars (``METRIC_KEYS`` and ``finite``).
    """
    load_cpu_kernels(path)  # all of the path's kernels at once (one compile when the cache is cold)

    def step(state, batch, key):
        return _apply_step(model, path, state, batch["indices"], batch["counts"], key, sampler)

    return _with_workspace(jax.jit(step, donate_argnums=0), model, path)


def _with_workspace(jitted, model: BindVAE, path: str):
    # The fused step keeps buffers across steps in ``state.workspace``; a state without them gets
    # them here, before the first call, so that the jitted step sees one pytree structure only.
    if path != "fused_cpu":
        return jitted

    @functools.wraps(jitted)
    def call(state, *args, **kwargs):
        if state.workspace is None:
            from bindvae import fused

            state = state.replace(workspace=fused.new_workspace(model))
        return jitted(state, *args, **kwargs)

    return call


def make_train_loop(model: BindVAE, path: str, sampler: str = "fast"):
    """Jitted ``(state, data_indices, data_counts, rows, key, width) -> (state, sums)``, state donated.

    Runs one step per row of ``rows`` (int32 [S, B] ids into the device-resident padded data
    [N, K_max]) with ``lax.scan``; each batch is cut to the static ``width`` <= K_max.
    ``sums`` holds the sum of each metric over the finite steps and ``n_finite``.
    """
    load_cpu_kernels(path)

    def run(state, data_indices, data_counts, rows, key, width):
        def body(carry, row_ids):
            indices = data_indices[row_ids, :width]
            counts = data_counts[row_ids, :width]
            return _apply_step(model, path, carry, indices, counts, key, sampler)

        state, metrics = jax.lax.scan(body, state, rows)
        finite = metrics.pop("finite")
        sums = {k: jnp.sum(jnp.where(finite, v, 0.0)) for k, v in metrics.items()}
        sums["n_finite"] = jnp.sum(finite.astype(jnp.int32))
        return state, sums

    return _with_workspace(jax.jit(run, static_argnames=("width",), donate_argnums=0), model, path)


def make_eval_step(model: BindVAE, path: str, sampler: str = "fast"):
    """Jitted ``(params, indices, counts, weights, key) -> sums`` of ELBO terms over weighted rows.

    ``weights`` [B] is 1 for real rows and 0 for padding rows; sums are ``elbo``, ``reconstruction``,
    ``kl``, ``log_perplexity`` (sum of -elbo_b / n_b) and ``n`` (sum of weights).
    """
    load_cpu_kernels(path)

    def run(params, indices, counts, weights, key):
        ll, kl, _ = row_terms(model, params, indices, counts, key, path, sampler)
        elbo = ll - kl
        n_counts = jnp.sum(counts, axis=-1)
        w = weights * (n_counts > 0)
        log_perp = jnp.where(w > 0, -elbo / jnp.maximum(n_counts, 1.0), 0.0)
        return {
            "elbo": jnp.sum(w * elbo),
            "reconstruction": jnp.sum(w * ll),
            "kl": jnp.sum(w * kl),
            "log_perplexity": jnp.sum(log_perp),
            "n": jnp.sum(w),
        }

    return jax.jit(run)


class TrainingDiverged(BindVAEError):
    """Too many consecutive non-finite steps; the last good checkpoint is left as it was."""


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        params: final parameters (host numpy tree).
        step: global step reached.
        metrics: the last logged training metrics (plain keys).
        val_metrics: the last validation metrics (``val_elbo``, ``val_perplexity``, ...), may be empty.
        workdir: the run directory.
        compute_path: the resolved path (``dense``, ``sparse``, ``sparse_cpu`` or ``fused_cpu``), as used.
        steps_per_call: steps per dispatch, as used.
        steps_per_sec: optimiser steps per second over this call (compilation included).
        elapsed_s: wall time of the training loop.
        skipped_steps: non-finite steps skipped over the whole run.
        already_complete: the run directory already held a checkpoint at ``train.steps`` (or later),
            so nothing was trained (metrics are then empty).
        stop_reason: why training stopped before ``train.steps`` (time limit, no validation
            improvement), or "".
        best_step: the step of the best checkpoint by validation ELBO (``train.keep_best``), or -1.
    """

    params: Any
    step: int
    metrics: dict
    val_metrics: dict
    workdir: str
    compute_path: str
    steps_per_call: int
    steps_per_sec: float
    elapsed_s: float
    skipped_steps: int
    already_complete: bool = False
    stop_reason: str = ""
    best_step: int = -1


def _state_tree(state: TrainState, key: jax.Array) -> dict:
    return {
        "params": state.params,
        "opt_state": state.opt_state,
        "step": state.step,
        "rng": jax.random.key_data(key),
        "bad_steps": state.bad_steps,
        "skipped_steps": state.skipped_steps,
    }


def prepare_run_dir(workdir: str | Path, config: TrainConfig) -> list[int]:
    """Check what ``workdir`` holds before training; returns the checkpoint steps to resume from.

    Raises:
        ConfigError: the directory has checkpoints and neither ``train.resume`` nor ``train.overwrite`` is set,
            or it cannot be created or written to (key ``workdir``).
    """
    workdir = check_writable_dir(workdir, "workdir")
    steps = ckpt.list_steps(workdir)
    if steps and config.overwrite:
        logger.warning("train.overwrite: deleting %d checkpoint(s) in %s", len(steps), workdir)
        # Rename first so that a kill during the deletion never leaves a half-deleted checkpoint in place.
        doomed = workdir / f".{ckpt.CHECKPOINT_DIR}.deleting-{os.getpid()}"
        try:
            os.replace(ckpt.checkpoint_dir(workdir), doomed)
        except FileNotFoundError:  # another process of a multi-host run moved it first
            pass
        shutil.rmtree(doomed, ignore_errors=True)
        MetricsFile(workdir).remove()
        _drop_best(workdir)
        return []
    if steps and not config.resume:
        raise ConfigError(
            "train.resume",
            f"{workdir} already has checkpoints (latest step {steps[-1]}); "
            "set train.resume=true to continue or train.overwrite=true to start over",
        )
    if not steps:
        if config.resume:
            logger.info("train.resume: no checkpoint in %s, starting from step 0", workdir)
        ckpt.set_aside_after(workdir, -1)  # folders left by a run killed while writing its first checkpoint
        MetricsFile(workdir).remove()
        _drop_best(workdir)
    return steps


def _drop_best(workdir: Path, after: int = -1) -> None:
    # The best-by-validation checkpoint of a run that starts over (or resumes before it) is stale.
    best = ckpt.list_steps(workdir, ckpt.BEST_DIR)
    if (best and best[-1] > after) or (not best and ckpt.checkpoint_dir(workdir, ckpt.BEST_DIR).exists()):
        shutil.rmtree(ckpt.checkpoint_dir(workdir, ckpt.BEST_DIR), ignore_errors=True)


def _restore(state: TrainState, workdir, config: RunConfig, vocab_fingerprint: str, n_kmers: int) -> TrainState:
    restored = ckpt.load_checkpoint(workdir, target=_state_tree(state, jax.random.key(0)))
    ckpt.check_vocab(restored, vocab_fingerprint, ckpt.checkpoint_dir(workdir))
    if restored.metadata.get("n_kmers") != n_kmers:
        raise InputError(ckpt.checkpoint_dir(workdir), f"checkpoint has n_kmers={restored.metadata.get('n_kmers')}, data has {n_kmers}")
    saved_model = restored.config.get("model", {})
    # Keys added to the model config after a checkpoint was written take their current values.
    if saved_model and {**to_dict(config)["model"], **saved_model} != to_dict(config)["model"]:
        raise ConfigError("model", f"differs from the checkpoint's model config {saved_model}; cannot resume")
    ckpt.set_aside_after(workdir, restored.step)  # later folders are unreadable or cut short; redone from here
    logger.info("resuming from step %d in %s", restored.step, workdir)
    return state.replace(
        params=restored.params,
        opt_state=restored.opt_state,
        step=jnp.asarray(restored.step, jnp.int32),
        bad_steps=jnp.asarray(restored.extra.get("bad_steps", 0), jnp.int32),
        skipped_steps=jnp.asarray(restored.extra.get("skipped_steps", 0), jnp.int32),
    )


def evaluate(eval_step, params, padded: data_lib.PaddedData, batch_size: int, key, max_batches: int = 0) -> dict:
    """Held-out ELBO terms and perplexity over all rows of ``padded`` (batches padded and masked).

    Returns:
        ``{"val_elbo", "val_reconstruction", "val_kl", "val_perplexity"}`` (means over sequences), or {} when empty.
    """
    n = padded.n_rows
    if n == 0:
        return {}
    totals = None
    starts = range(0, n, batch_size)
    if max_batches:
        starts = list(starts)[:max_batches]
    for start in starts:
        rows = np.arange(start, start + batch_size)
        weights = (rows < n).astype(np.float32)
        rows = np.where(rows < n, rows, 0)
        width = data_lib.bucket_for(int(padded.nnz[rows].max()), padded.buckets)
        sums = eval_step(params, padded.indices[rows, :width], padded.counts[rows, :width], weights, key)
        totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    totals = {k: float(v) for k, v in jax.device_get(totals).items()}
    count = max(totals["n"], 1.0)
    return {
        "val_elbo": totals["elbo"] / count,
        "val_reconstruction": totals["reconstruction"] / count,
        "val_kl": totals["kl"] / count,
        "val_perplexity": float(np.exp(totals["log_perplexity"] / count)),
    }


def topic_table(params, k: int, kmers: Sequence[str] | None) -> list[list]:
    """Rows ``[topic, rank, kmer, probability]`` of each topic's top-k k-mers by phi."""
    phi = jax.nn.softmax(params["topic_kmer"]["theta"], axis=-1)
    values, ids = jax.device_get(jax.lax.top_k(phi, k))
    rows = []
    for topic in range(values.shape[0]):
        for rank in range(k):
            col = int(ids[topic, rank])
            rows.append([topic, rank + 1, kmers[col] if kmers is not None else str(col), float(values[topic, rank])])
    return rows


def _next_stop(step: int, total: int, intervals: Sequence[int]) -> int:
    stops = [total] + [(step // n + 1) * n for n in intervals if n > 0]
    return min(stops)


def _is_due(step: int, every: int, total: int) -> bool:
    return step == total or (every > 0 and step % every == 0)


class _Run:
    """The mutable bookkeeping of one :func:`fit` call (kept out of the jitted functions)."""

    def __init__(self, config: RunConfig, workdir: Path, metric_logger: MetricLogger, n_kmers: int, fingerprint: str):
        self.config = config
        self.workdir = workdir
        self.logger = metric_logger
        self.metrics_file = MetricsFile(workdir)
        self.metadata = {
            "config": to_dict(config),
            "vocab_fingerprint": fingerprint,
            "n_kmers": int(n_kmers),
            "num_topics": config.model.num_topics,
            "run_name": run_name(config),
        }
        self.last_metrics: dict = {}
        self.last_val: dict = {}
        # Early stopping: the best validation ELBO so far, its step, evaluations since it.
        self.best_val, self.best_step, self.stale_evals = -float("inf"), -1, 0
        self.stop_reason = ""
        self.sums = None
        self.mark_time = time.perf_counter()
        self.mark_step = 0

    def replay_validation(self, start: int) -> None:
        """Rebuild the early-stopping record from ``metrics.jsonl`` rows up to ``start`` (a resume)."""
        for record in read_metrics(self.workdir):
            if record.get("step", 0) <= start and record.get("val_elbo") is not None:
                self.track_validation(int(record["step"]), float(record["val_elbo"]))

    def track_validation(self, step: int, val_elbo: float) -> bool:
        """Record an evaluation; True when it is the best so far."""
        if val_elbo > self.best_val:
            self.best_val, self.best_step, self.stale_evals = val_elbo, step, 0
            return True
        self.stale_evals += 1
        return False

    def accumulate(self, sums):
        self.sums = sums if self.sums is None else jax.tree.map(jnp.add, self.sums, sums)

    def log(self, step: int, state: TrainState, extra: dict) -> dict:
        sums = {k: float(v) for k, v in jax.device_get(self.sums).items()}
        n_finite = max(sums.pop("n_finite"), 1)
        now = time.perf_counter()
        record = {k: v / n_finite for k, v in sums.items()}
        record["steps_per_sec"] = (step - self.mark_step) / max(now - self.mark_time, 1e-9)
        record["skipped_steps"] = int(jax.device_get(state.skipped_steps))
        record.update(extra)
        self.mark_time, self.mark_step, self.sums = now, step, None
        if jax.process_index() == 0:  # in a multi-host run every process holds the same metrics
            self.metrics_file.write(step, record)
            self.logger.log_scalars(step, record)
        self.last_metrics = record
        return record


def _check_divergence(state: TrainState, config: TrainConfig, workdir: Path) -> None:
    bad = int(jax.device_get(state.bad_steps))
    if bad >= config.max_bad_steps:
        steps = ckpt.list_steps(workdir)
        last = f"the last good checkpoint (step {steps[-1]}) is kept" if steps else "no checkpoint was written"
        raise TrainingDiverged(
            f"training diverged: {bad} consecutive non-finite steps up to step {int(jax.device_get(state.step))}; "
            f"{last} in {ckpt.checkpoint_dir(workdir)} (try a lower train.learning_rate or another model.alpha)"
        )


def _resident_feed(tc: TrainConfig, train_X: sp.csr_matrix, loop):
    """One device, data in memory: padded rows live on the device; each dispatch scans over row ids."""
    data = data_lib.pad_rows(train_X, tc.n_length_buckets)
    device_indices, device_counts = jax.device_put(data.indices), jax.device_put(data.counts)

    def feed(state, step: int, n: int, key):
        rows = data_lib.batch_rows(data.n_rows, tc.batch_size, tc.seed, step, n)
        width = data_lib.bucket_for(int(data.nnz[rows].max()), data.buckets)
        return loop(state, device_indices, device_counts, rows, key, width=width)

    return feed, data.n_rows, lambda: None


def _host_feed(config: RunConfig, train, mesh, start: int, sharded_loop):
    """Several devices or a sharded data set: batches are cut on the host and split over the mesh.

    In-memory rows follow the same (seed, step) order as the one-device path; a sharded set is
    streamed (``bindvae.stream.ShardStream``). Each process feeds only its own rows of a batch.
    """
    tc = config.train
    parallel.check_batch_size(tc.batch_size, mesh)
    local = parallel.process_rows(tc.batch_size)
    if isinstance(train, ShardIndex):
        source = stream.ShardStream(
            train, tc.batch_size, tc.seed, shuffle_buffer=config.data.shuffle_buffer or None,
            prefetch=config.data.prefetch, val_fraction=tc.val_fraction, n_buckets=tc.n_length_buckets,
            local_rows=local, start_step=start,
        )
        next_block, n_rows, close = (lambda step, n: source.next_block(n)), train.n_sequences, source.close
    else:
        data = data_lib.pad_rows(train, tc.n_length_buckets)

        def next_block(step: int, n: int):
            rows = data_lib.batch_rows(data.n_rows, tc.batch_size, tc.seed, step, n)
            width = data_lib.bucket_for(int(data.nnz[rows].max()), data.buckets)
            return parallel.gather_batches(data.indices, data.counts, rows[:, local], width)

        n_rows, close = data.n_rows, lambda: None

    def feed(state, step: int, n: int, key):
        indices, counts = next_block(step, n)
        return sharded_loop(state, parallel.put_batch(indices, mesh, 1), parallel.put_batch(counts, mesh, 1), key)

    return feed, n_rows, close


def _kmer_totals(train_X: sp.csr_matrix | ShardIndex) -> np.ndarray:
    """[n_kmers] k-mer totals over the training rows (a sharded set: over its first shard, an estimate).

    Non-finite counts are left out: such a row is skipped by the train step, and it must not make
    every topic's starting logits infinite.
    """
    if isinstance(train_X, ShardIndex):
        train_X = read_shard(train_X, 0)[0]
    train_X = sp.csr_matrix(train_X)
    weights = np.where(np.isfinite(train_X.data), train_X.data, 0.0).astype(np.float64)
    return np.bincount(train_X.indices, weights=weights, minlength=train_X.shape[1])


def fit(
    config: RunConfig,
    train_X: sp.csr_matrix | ShardIndex,
    val_X: sp.csr_matrix | None,
    vocab_fingerprint: str,
    workdir: str | Path,
    logger_: MetricLogger | None = None,
    kmers: Sequence[str] | None = None,
) -> FitResult:
    """Train the Dirichlet VAE for ``config.train.steps`` global steps, resuming if asked.

    Args:
        config: the run config (model and train sections are used here).
        train_X: csr_matrix [n_train, n_kmers] of k-mer counts, or a sharded data set
            (``bindvae.shards.open_shards``) streamed from disk; its rows drawn for validation by
            ``bindvae.stream.validation_mask`` (``train.val_fraction``) are skipped.
        val_X: csr_matrix [n_val, n_kmers] held out for val_elbo / val_perplexity, or None.
        vocab_fingerprint: the columns' vocabulary fingerprint (stored in checkpoints, checked on resume).
        workdir: run directory: ``metrics.jsonl`` and ``checkpoints/`` are written there.
        logger_: a MetricLogger (None = :class:`NullLogger`); metrics.jsonl is written regardless.
        kmers: column k-mer strings for the topic tables (None: column ids).

    Returns:
        The :class:`FitResult`.

    Raises:
        ConfigError: an existing run directory without resume/overwrite, or a model config mismatch.
        InputError: a checkpoint trained on another vocabulary.
        TrainingDiverged: ``train.max_bad_steps`` consecutive non-finite steps.
        RunDirectoryBusy: another process is training in ``workdir`` (nothing is written).
    """
    with rundir.owned(workdir):
        return _fit(config, train_X, val_X, vocab_fingerprint, Path(workdir), logger_ or NullLogger(), kmers)


def _fit(config: RunConfig, train_X, val_X, vocab_fingerprint: str, workdir: Path, metric_logger, kmers) -> FitResult:
    tc = config.train
    n_kmers = int(train_X.shape[1])
    if train_X.shape[0] == 0:
        raise ConfigError("data", "no training sequences")
    existing = prepare_run_dir(workdir, tc)
    per_call = resolve_steps_per_call(tc.steps_per_call)
    model = build_model(config.model, n_kmers)
    init_key, train_key, eval_key = jax.random.split(jax.random.key(tc.seed), 3)
    theta = None
    if config.model.theta_init == "background" and not existing:
        theta = background_theta(_kmer_totals(train_X), config.model.num_topics, jax.random.fold_in(init_key, 1))
    state = create_train_state(model, tc, init_key, theta)
    if existing:
        state = _restore(state, workdir, config, vocab_fingerprint, n_kmers)
    start = int(jax.device_get(state.step))
    if existing and start >= tc.steps:
        logger.info("%s: already complete at step %d (train.steps=%d): nothing to train", workdir, start, tc.steps)
        return FitResult(params=jax.device_get(state.params), step=start, metrics={}, val_metrics={},
                         workdir=str(workdir), compute_path="none", steps_per_call=0, steps_per_sec=0.0,
                         elapsed_s=0.0, skipped_steps=int(jax.device_get(state.skipped_steps)), already_complete=True)
    run = _Run(config, workdir, metric_logger, n_kmers, vocab_fingerprint)
    run.metrics_file.truncate_after(start)
    _drop_best(workdir, after=start)
    run.replay_validation(start)
    metric_logger.log_config(to_dict(config))
    val_data = data_lib.pad_rows(val_X, tc.n_length_buckets) if val_X is not None and val_X.shape[0] else None
    mesh = parallel.make_mesh(tc.devices)
    path = resolve_compute_path(tc.compute_path, moment_dtype=tc.optimizer_state_dtype, n_devices=int(mesh.devices.size))
    loop, eval_step = make_train_loop(model, path, tc.sampler), make_eval_step(model, path, tc.sampler)
    if mesh.devices.size == 1 and not isinstance(train_X, ShardIndex):
        feed, n_train, close_feed = _resident_feed(tc, train_X, loop)
    else:
        state = parallel.replicate(state, mesh)
        sharded_loop = parallel.make_sharded_loop(functools.partial(_apply_step, model, path, sampler=tc.sampler), mesh)
        feed, n_train, close_feed = _host_feed(config, train_X, mesh, start, sharded_loop)
    logger.info(
        "training %s: %d train / %d val sequences, D=%d, M=%d, path=%s, %d step(s) per call, %d device(s)%s",
        run_name(config), n_train, 0 if val_data is None else val_data.n_rows, n_kmers, config.model.num_topics,
        path, per_call, mesh.devices.size, ", streamed from shards" if isinstance(train_X, ShardIndex) else "",
    )
    intervals = (tc.log_every, tc.eval_every, tc.checkpoint_every, tc.topic_table_every)
    step, t0 = start, time.perf_counter()
    run.mark_time, run.mark_step = t0, start
    progress = _progress_bar(tc, start)
    try:
        while step < tc.steps:
            stop = _next_stop(step, tc.steps, intervals)
            while step < stop:
                n = per_call if stop - step >= per_call else 1
                state, sums = feed(state, step, n, train_key)
                run.accumulate(sums)
                step += n
                progress.update(n)
            _at_stop(run, state, step, tc, eval_step, val_data, eval_key, kmers, progress, train_key, t0)
            if run.stop_reason:
                logger.info("stopping at step %d: %s", step, run.stop_reason)
                break
    finally:
        progress.close()
        close_feed()
    elapsed = time.perf_counter() - t0
    result = FitResult(
        params=jax.device_get(state.params),
        step=step,
        metrics=run.last_metrics,
        val_metrics=run.last_val,
        workdir=str(workdir),
        compute_path=path,
        steps_per_call=per_call,
        steps_per_sec=(step - start) / max(elapsed, 1e-9),
        elapsed_s=elapsed,
        skipped_steps=int(jax.device_get(state.skipped_steps)),
        stop_reason=run.stop_reason,
        best_step=run.best_step if tc.keep_best else -1,
    )
    logger.info("%s", summary(result))
    return result


def _progress_bar(config: TrainConfig, start: int):
    from tqdm.auto import tqdm

    return tqdm(total=config.steps, initial=start, unit="step", disable=not config.progress, dynamic_ncols=True)


def _at_stop(run: _Run, state, step, tc: TrainConfig, eval_step, val_data, eval_key, kmers, progress, train_key, t0):
    extra = {}
    minutes = (time.perf_counter() - t0) / 60
    if tc.max_minutes and minutes >= tc.max_minutes and step < tc.steps:
        run.stop_reason = f"the time limit of {tc.max_minutes:g} min (train.max_minutes) is reached"
    evaluate_now = _is_due(step, tc.eval_every, tc.steps) or (run.stop_reason and tc.keep_best)
    if val_data is not None and evaluate_now:
        run.last_val = evaluate(eval_step, state.params, val_data, tc.batch_size, eval_key, tc.eval_batches)
        extra.update(run.last_val)
        if run.track_validation(step, run.last_val["val_elbo"]) and tc.keep_best:
            ckpt.save_checkpoint(run.workdir, _state_tree(state, train_key), run.metadata, keep=1, folder=ckpt.BEST_DIR)
        if tc.patience and run.stale_evals >= tc.patience and not run.stop_reason:
            run.stop_reason = (f"validation ELBO has not improved for {run.stale_evals} evaluations (train.patience); "
                               f"best {run.best_val:.2f} at step {run.best_step}")
    if _is_due(step, tc.log_every, tc.steps) or extra or run.stop_reason:
        record = run.log(step, state, extra)
        postfix = {"elbo": f"{record.get('elbo', float('nan')):.1f}", "steps_s": f"{record['steps_per_sec']:.1f}"}
        if run.best_step >= 0:
            postfix["val_elbo"] = f"{run.last_val.get('val_elbo', float('nan')):.1f}"
        if tc.max_minutes:
            postfix["min_left"] = f"{max(tc.max_minutes - minutes, 0):.1f}"
        progress.set_postfix(**postfix)
        _check_divergence(state, tc, run.workdir)
    if tc.topic_table_every and step % tc.topic_table_every == 0:
        run.logger.log_table(step, "topics/top_kmers", ["topic", "rank", "kmer", "phi"], topic_table(state.params, tc.topic_table_k, kmers))
    if _is_due(step, tc.checkpoint_every, tc.steps) or run.stop_reason:
        _check_divergence(state, tc, run.workdir)
        ckpt.save_checkpoint(run.workdir, _state_tree(state, train_key), run.metadata, keep=tc.keep_checkpoints)


def summary(result: FitResult) -> str:
    """A few lines describing a finished run."""
    if result.already_complete:
        return f"run {result.workdir}: already complete at step {result.step}"
    m, v = result.metrics, result.val_metrics
    lines = [
        f"run {result.workdir}: {result.step} steps, {result.steps_per_sec:.1f} steps/s ({result.compute_path} path, "
        f"{result.steps_per_call} step(s)/call), {result.skipped_steps} non-finite step(s) skipped",
        f"  train: elbo {m.get('elbo', float('nan')):.2f}  reconstruction {m.get('reconstruction', float('nan')):.2f}  "
        f"kl {m.get('kl', float('nan')):.3f}  perplexity {m.get('perplexity', float('nan')):.1f}  "
        f"prior alpha mean {m.get('prior_alpha_mean', float('nan')):.3f}",
    ]
    if v:
        lines.append(f"  val:   elbo {v['val_elbo']:.2f}  perplexity {v['val_perplexity']:.1f}")
    if result.stop_reason:
        lines.append(f"  stopped early: {result.stop_reason}")
    if result.best_step >= 0:
        lines.append(f"  best checkpoint by validation ELBO: step {result.best_step} (best/; analysis reads it)")
    return "\n".join(lines)
