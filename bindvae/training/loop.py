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
import time
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

import bindvae.training.parallel as parallel
import bindvae.training.rundir as rundir
from bindvae import checkpoint as ckpt
from bindvae.config import RunConfig, TrainConfig, run_name, to_dict, xla_only_variant
from bindvae.data import datasets as data_lib
from bindvae.errors import BindVAEError, ConfigError
from bindvae.features.shards import ShardIndex
from bindvae.tracking import MetricLogger, MetricsFile, NullLogger, read_metrics
from bindvae.training.feeds import host_feed, kmer_totals, resident_feed
from bindvae.training.kmer_choice import choose_kmers
from bindvae.training.optim import optimizer_spec
from bindvae.training.resume import drop_best, prepare_run_dir, restore, state_tree
from bindvae.training.state import TrainState, create_train_state
from bindvae.training.step import (
    apply_step,
    make_eval_step,
    make_train_loop,
    resolve_compute_path,
    resolve_steps_per_call,
)
from bindvae.vae.network import background_theta, build_model

logger = logging.getLogger(__name__)

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
            (``bindvae.features.shards.open_shards``) streamed from disk; its rows drawn for validation by
            ``bindvae.data.stream.validation_mask`` (``train.val_fraction``) are skipped.
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
    if train_X.shape[0] == 0:
        raise ConfigError("data", "no training sequences")
    if tc.restarts > 1 and isinstance(train_X, ShardIndex):
        raise ConfigError("train.restarts", "needs the data in memory, not streamed from shards")
    if tc.restarts > 1 and (val_X is None or val_X.shape[0] == 0):
        raise ConfigError("train.restarts", "chooses by validation ELBO and there are no validation sequences")
    existing = prepare_run_dir(workdir, tc)
    choice = choose_kmers(config.model, train_X, vocab_fingerprint)
    if choice is not None:
        train_X = choice.vocabulary.restrict(train_X)
        val_X = choice.vocabulary.restrict(val_X) if val_X is not None else None
        vocab_fingerprint, kmers = choice.vocabulary.fingerprint, choice.vocabulary.kmers
        choice.write_table(workdir)
    n_kmers = int(train_X.shape[1])
    per_call = resolve_steps_per_call(tc.steps_per_call)
    model = build_model(config.model, n_kmers, n_train=int(train_X.shape[0]))
    init_key, train_key, eval_key = jax.random.split(jax.random.key(tc.seed), 3)
    totals = kmer_totals(train_X) if config.model.theta_init == "background" and not existing else None

    def fresh_state(key):
        if totals is None:
            return create_train_state(model, tc, key)
        theta = background_theta(totals, config.model.num_topics, jax.random.fold_in(key, 1),
                                 exact_last=config.model.background_topic)
        return create_train_state(model, tc, key, theta)

    state = fresh_state(init_key)
    carried = {"restarts": None}
    if existing:
        state = restore(state, workdir, config, vocab_fingerprint, n_kmers, carried)
    start = int(jax.device_get(state.step))
    if existing and start >= tc.steps:
        logger.info("%s: already complete at step %d (train.steps=%d): nothing to train", workdir, start, tc.steps)
        return FitResult(params=jax.device_get(state.params), step=start, metrics={}, val_metrics={},
                         workdir=str(workdir), compute_path="none", steps_per_call=0, steps_per_sec=0.0,
                         elapsed_s=0.0, skipped_steps=int(jax.device_get(state.skipped_steps)), already_complete=True)
    run = _Run(config, workdir, metric_logger, n_kmers, vocab_fingerprint)
    if choice is not None:
        run.metadata.update(choice.metadata())
    if carried["restarts"] is not None:
        run.metadata["restarts"] = carried["restarts"]
    run.metrics_file.truncate_after(start)
    drop_best(workdir, after=start)
    run.replay_validation(start)
    metric_logger.log_config(to_dict(config))
    val_data = data_lib.pad_rows(val_X, tc.n_length_buckets) if val_X is not None and val_X.shape[0] else None
    mesh = parallel.make_mesh(tc.devices)
    path = resolve_compute_path(tc.compute_path, n_devices=int(mesh.devices.size), optimizer=optimizer_spec(tc),
                                variant=xla_only_variant(config.model))
    loop, eval_step = make_train_loop(model, path, tc.sampler), make_eval_step(model, path, tc.sampler)
    if mesh.devices.size == 1 and not isinstance(train_X, ShardIndex):
        feed, n_train, close_feed = resident_feed(tc, train_X, loop)
    else:
        if tc.restarts > 1:
            raise ConfigError("train.restarts", "needs one device (train.devices=1)")
        state = parallel.replicate(state, mesh)
        sharded_loop = parallel.make_sharded_loop(functools.partial(apply_step, model, path, sampler=tc.sampler), mesh)
        feed, n_train, close_feed = host_feed(config, train_X, mesh, start, sharded_loop)
    logger.info(
        "training %s: %d train / %d val sequences, D=%d, M=%d, path=%s, %d step(s) per call, %d device(s)%s",
        run_name(config), n_train, 0 if val_data is None else val_data.n_rows, n_kmers, config.model.num_topics,
        path, per_call, mesh.devices.size, ", streamed from shards" if isinstance(train_X, ShardIndex) else "",
    )
    intervals = (tc.log_every, tc.eval_every, tc.checkpoint_every, tc.topic_table_every)
    t0 = time.perf_counter()
    restarting = tc.restarts > 1 and start == 0
    progress = _progress_bar(tc, start, extra=(tc.restarts - 1) * tc.restart_steps if restarting else 0)
    first, discarded = start, 0  # discarded: steps of the starts not chosen (counted in the run's speed)
    if restarting:
        state, chosen = _choose_start(fresh_state, init_key, feed, train_key, per_call, tc,
                                      lambda params: evaluate(eval_step, params, val_data, tc.batch_size,
                                                              eval_key, tc.eval_batches), progress, t0)
        start = tc.restart_steps
        run.metadata["restarts"] = chosen
        discarded = (len(chosen["tried"]) - 1) * tc.restart_steps
    step = start
    run.mark_time, run.mark_step = time.perf_counter(), start
    try:
        while step < tc.steps:
            stop = _next_stop(step, tc.steps, intervals)
            state, step = _advance(feed, state, step, stop, per_call, train_key, progress, run.accumulate)
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
        steps_per_sec=(step - first + discarded) / max(elapsed, 1e-9),
        elapsed_s=elapsed,
        skipped_steps=int(jax.device_get(state.skipped_steps)),
        stop_reason=run.stop_reason,
        best_step=run.best_step if tc.keep_best else -1,
    )
    logger.info("%s", summary(result))
    return result


def _progress_bar(config: TrainConfig, start: int, extra: int = 0):
    from tqdm.auto import tqdm

    return tqdm(total=config.steps + extra, initial=start, unit="step", disable=not config.progress,
                dynamic_ncols=True)


def _advance(feed, state, step: int, stop: int, per_call: int, train_key, progress, on_sums=None):
    """Train from ``step`` to ``stop`` (``per_call`` steps per dispatch, single steps for the rest)."""
    while step < stop:
        n = per_call if stop - step >= per_call else 1
        state, sums = feed(state, step, n, train_key)
        if on_sums is not None:
            on_sums(sums)
        step += n
        progress.update(n)
    return state, step


def _choose_start(fresh_state, init_key, feed, train_key, per_call: int, tc: TrainConfig, validate, progress, t0):
    """``train.restarts`` initialisations, each trained ``train.restart_steps`` steps on the same batches and
    noise; the one with the best validation ELBO is kept (ours, not the paper's).

    Initialisation 0 is the single start of ``restarts=1``; initialisation r > 0 draws its parameters from
    ``fold_in(init_key, r)``. A non-finite validation ELBO loses. When ``train.max_minutes`` runs out,
    the initialisations tried so far are compared.

    Returns:
        (the chosen state at step ``restart_steps``, ``{"tried": [val ELBO of each], "chosen": r}``).
    """
    best, tried = None, []
    for r in range(tc.restarts):
        state = fresh_state(init_key if r == 0 else jax.random.fold_in(init_key, r))
        state, step = _advance(feed, state, 0, tc.restart_steps, per_call, train_key, progress)
        val_elbo = float(validate(state.params)["val_elbo"])
        val_elbo = val_elbo if np.isfinite(val_elbo) else -float("inf")
        tried.append(val_elbo)
        logger.info("start %d of %d: validation ELBO %.2f after %d steps", r + 1, tc.restarts, val_elbo, step)
        if best is None or val_elbo > best[0]:
            best = (val_elbo, r, state)
        if tc.max_minutes and (time.perf_counter() - t0) / 60 >= tc.max_minutes:
            logger.info("train.max_minutes reached after %d of %d starts", r + 1, tc.restarts)
            break
    val_elbo, chosen, state = best
    logger.info("training on from start %d (validation ELBO %.2f)", chosen + 1, val_elbo)
    return state, {"tried": tried, "chosen": chosen}


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
            ckpt.save_checkpoint(run.workdir, state_tree(state, train_key), run.metadata, keep=1, folder=ckpt.BEST_DIR)
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
        run.logger.log_table(
            step,
            "topics/top_kmers",
            ["topic", "rank", "kmer", "phi"],
            topic_table(state.params, tc.topic_table_k, kmers),
        )
    if _is_due(step, tc.checkpoint_every, tc.steps) or run.stop_reason:
        _check_divergence(state, tc, run.workdir)
        ckpt.save_checkpoint(run.workdir, state_tree(state, train_key), run.metadata, keep=tc.keep_checkpoints)


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
