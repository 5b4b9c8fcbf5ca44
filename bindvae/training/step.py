"""Compute paths and jitted steps: the loss of a batch on each path, one step, many steps per call."""

from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp
import optax

from bindvae.config import refuse_on_numba, xla_only_variant
from bindvae.errors import ConfigError
from bindvae.training.optim import OptimizerSpec
from bindvae.training.state import TrainState
from bindvae.vae import backends, objectives
from bindvae.vae.network import BindVAE, posterior_concentration_sparse

logger = logging.getLogger(__name__)

METRIC_KEYS = ("loss", "elbo", "reconstruction", "kl", "perplexity", "prior_alpha_mean", "l2_grads")

def resolve_compute_path(
    path: str, backend: str | None = None, *, moment_dtype: str = "float32", n_devices: int = 1,
    optimizer: OptimizerSpec | None = None,
    variant: tuple[str, str] | None = None,
) -> str:
    """``fused_cpu``, ``sparse_cpu``, ``sparse`` or ``dense`` for a configured path; ``auto`` picks per backend.

    Measured with ``python -m experiments.benchmark only=train`` (batch 128, M = 100, D = 112,800):
    on the CPU, ``fused_cpu`` (``bindvae.kernels.fused``: numba kernels that stream W1 and phi in k-mer
    order and apply Adam to W1 and theta inside their gradient kernels) is the fastest, then
    ``sparse_cpu`` (the same kernels writing dense gradients for optax), well ahead of ``dense`` and
    of ``sparse``, whose XLA gathers and scatter-adds run elementwise. The numba kernels exist only
    on the CPU; on GPUs the dense path's matmuls win. ``fused_cpu`` implements Adam with float32
    moments on one device only, so ``auto`` picks ``sparse_cpu`` on the CPU otherwise (e.g. AdamW).
    The numba kernels implement the paper's mixture decoder without a topic prior: with
    ``model.topic_eta`` or ``model.decoder=product`` set, ``auto`` picks ``sparse`` on the CPU.

    Args:
        path: ``train.compute_path``.
        backend: JAX backend (default: the current one).
        moment_dtype: ``train.optimizer_state_dtype`` (used when ``optimizer`` is not given).
        n_devices: data-parallel devices.
        optimizer: the run's :class:`bindvae.training.optim.OptimizerSpec`.
        variant: :func:`bindvae.config.xla_only_variant` of the model (a variant the numba paths do not
            implement), or None.

    Raises:
        ConfigError: a CPU path asked for on another backend, or ``fused_cpu`` with an optimiser it does
            not implement (naming that key) or several devices, or a numba path with such a variant.
    """
    backend = backend or jax.default_backend()
    optimizer = optimizer or OptimizerSpec(moment_dtype=moment_dtype)
    refuse_on_numba(variant, path)
    if path in ("sparse_cpu", "fused_cpu") and backend != "cpu":
        raise ConfigError(
            "train.compute_path", f"{path} runs on the CPU backend only, not {backend}; use auto, sparse or dense"
        )
    if path in ("sparse", "dense") or (path == "auto" and backend != "cpu"):
        return "dense" if path == "auto" else path
    if variant is not None:  # auto on the CPU: the numba paths do not implement the variant
        logger.info("compute path: sparse (XLA), not the numba CPU paths, which do not implement %s", variant[1])
        return "sparse"
    kernels_off = backends.get("sparse_cpu").unsupported(optimizer)
    if kernels_off is not None:
        if path != "auto":
            raise ConfigError(kernels_off[0], f"{path}: {kernels_off[1]}; use train.compute_path=auto or sparse")
        logger.warning("%s; training on the XLA sparse path", kernels_off[1])
        return "sparse"
    if path == "sparse_cpu":
        return path
    refused = backends.get("fused_cpu").unsupported(optimizer)
    if refused is None and n_devices != 1:
        refused = ("train.compute_path", "fused_cpu runs on one device (train.devices)")
    if path == "fused_cpu" and refused is not None:
        key, why = refused
        raise ConfigError(key, f"{why}; use train.compute_path=auto or sparse_cpu")
    return "fused_cpu" if refused is None else "sparse_cpu"


def load_cpu_kernels(path: str) -> None:
    """Load every numba kernel that ``path`` runs (once per process; compiled first when not cached)."""
    if path in ("sparse_cpu", "fused_cpu"):
        from bindvae.kernels import sparse_ops

        sparse_ops.load_kernels(backends.get(path).kernels)


def resolve_steps_per_call(steps_per_call: int, backend: str | None = None) -> int:
    """Steps per dispatch: the configured value, or (0 = auto) 1 on CPU and 100 on accelerators."""
    if steps_per_call > 0:
        return steps_per_call
    backend = backend or jax.default_backend()
    return 1 if backend == "cpu" else 100


def row_terms(model: BindVAE, params, indices, counts, key, path: str, sampler: str = "fast"):
    """Per-sequence ELBO pieces of a padded batch on compute path ``path`` (:mod:`bindvae.vae.backends`).

    Args:
        model: the BindVAE.
        params: its parameters.
        indices: int32 [B, K] k-mer ids (padding: any id, count 0).
        counts: float32 [B, K].
        key: PRNG key for z.
        path: ``sparse``, ``sparse_cpu`` or ``fused_cpu`` (numba kernels, CPU only; the same terms) or ``dense``
            (same values up to float rounding).
        sampler: ``fast`` or ``exact`` Dirichlet sampler (``bindvae.vae.objectives.sample_topics``).

    Returns:
        (log_likelihood [B], kl [B], prior_alpha [M]).
    """
    return backends.get(path).row_terms(model, params, indices, counts, key, sampler)


def loss_and_metrics(model: BindVAE, params, indices, counts, key, path: str, sampler: str = "fast"):
    """Loss = -mean ELBO of a batch and its metrics (scalars).

    With ``model.topic_eta`` set, the loss also subtracts the topics' log prior
    (:func:`bindvae.vae.objectives.topic_log_prior`) times ``model.topic_prior_weight`` (1 / n_train);
    the ELBO metrics stay the ELBO's. The numba paths refuse it (:func:`resolve_compute_path`).

    Returns:
        (loss, {"loss", "elbo", "reconstruction", "kl", "perplexity", "prior_alpha_mean"}).
        ``reconstruction`` is the mean log-likelihood (<= 0).
    """
    refuse_on_numba(xla_only_variant(model), path)
    loss, metrics = batch_metrics(*row_terms(model, params, indices, counts, key, path, sampler), counts)
    if model.topic_eta:
        log_prior = objectives.topic_log_prior(params["topic_kmer"]["theta"], model.topic_eta)
        loss = loss - model.topic_prior_weight * log_prior
        metrics = {**metrics, "loss": loss}
    return loss, metrics


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


def _with_theta(tree, theta):
    return {**tree, "topic_kmer": {**tree["topic_kmer"], "theta": theta}}


def online_em_step(model: BindVAE, state: TrainState, indices, counts, key, sampler: str = "fast"):
    """The topics' logits after one online-EM step on a batch (``train.decoder_update=online_em``, ours).

    The E-step shares each k-mer count out over the topics (:func:`bindvae.vae.objectives.topic_kmer_counts`)
    by the step's topic proportions: with ``em_estep=sample`` the same Dirichlet sample as the step's
    ELBO (same key), with ``mean`` the encoder's posterior mean; the M-step blends the counts, scaled
    from the batch to the training set (``model.topic_prior_weight`` is 1 / n_train), into the topics
    (:func:`bindvae.vae.objectives.online_em_logits`). Reads the parameters before the step's update.
    """
    if not model.topic_prior_weight:
        raise ValueError("online_em scales a batch to the training set: build the model with n_train (build_model)")
    spec, params = state.optimizer, state.params
    concentration = posterior_concentration_sparse(model, params, indices, counts)
    if spec.em_estep == "sample":
        z = objectives.sample_topics(key, concentration, sampler)
    else:
        z = concentration / jnp.sum(concentration, axis=-1, keepdims=True)
    theta = params["topic_kmer"]["theta"]
    batch_counts = objectives.topic_kmer_counts(jax.lax.stop_gradient(z), theta, indices, counts)
    scale = 1.0 / (model.topic_prior_weight * indices.shape[0])
    return objectives.online_em_logits(theta, batch_counts, state.step, scale, spec.em_eta, spec.em_offset,
                                       spec.em_decay)


def apply_step(model: BindVAE, path: str, state: TrainState, indices, counts, key, sampler: str = "fast"):
    step_key = jax.random.fold_in(key, state.step)
    compute = backends.get(path)
    held = state.params["topic_kmer"]["theta"][-1] if model.background_topic else None
    if compute.fuses_update:
        refuse_on_numba(xla_only_variant(model), path)
        refused = compute.unsupported(state.optimizer)
        if refused is not None or not state.learning_rate:
            key_name, why = refused or ("train.compute_path", "the fused step needs a state from create_train_state")
            raise ConfigError(key_name, why)
        params, opt_state, metrics, grad_norm, ok, workspace = compute.update(
            model, state, indices, counts, step_key, sampler, batch_metrics
        )
        state = state.replace(workspace=workspace)
    else:
        grad_fn = jax.value_and_grad(
            lambda p: loss_and_metrics(model, p, indices, counts, step_key, path, sampler), has_aux=True
        )
        (loss, metrics), grads = grad_fn(state.params)
        em_theta = None
        if state.optimizer.decoder_update == "online_em":  # the topics learn by EM, not by the optimiser
            em_theta = online_em_step(model, state, indices, counts, step_key, sampler)
            grads = _with_theta(grads, jnp.zeros_like(em_theta))  # their Adam moments stay zero
        grad_norm = optax.global_norm(grads)
        ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        if em_theta is not None:  # a non-finite EM update skips the whole step, as a non-finite gradient does
            ok = ok & jnp.all(jnp.isfinite(em_theta))
        params, opt_state = _update_if(ok, state, grads)
        if em_theta is not None:
            params = _with_theta(params, jnp.where(ok, em_theta, state.params["topic_kmer"]["theta"]))
    if held is not None:  # model.background_topic: the last topic stays the corpus (its update is undone)
        params = _with_theta(params, params["topic_kmer"]["theta"].at[-1].set(held))
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
        return apply_step(model, path, state, batch["indices"], batch["counts"], key, sampler)

    return _with_workspace(jax.jit(step, donate_argnums=0), model, path)


def _with_workspace(jitted, model: BindVAE, path: str):
    # The fused step keeps buffers across steps in ``state.workspace``; a state without them gets
    # them here, before the first call, so that the jitted step sees one pytree structure only.
    compute = backends.get(path)
    if not compute.fuses_update:
        return jitted

    @functools.wraps(jitted)
    def call(state, *args, **kwargs):
        if state.workspace is None:
            state = state.replace(workspace=compute.new_workspace(model))
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
            return apply_step(model, path, carry, indices, counts, key, sampler)

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
