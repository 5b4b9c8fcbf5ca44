"""The fused CPU training step (``train.compute_path=fused_cpu``, what ``auto`` picks on the CPU).

On a CPU the paper-size step is bound by memory traffic: W1 [D, H] and theta [M, D] hold 45M of the
model's 45M parameters, and Adam alone reads and writes their values and both moments. The
``sparse_cpu`` step adds to that the dense gradients dW1 and dtheta (written by the backward
kernels, read again by Adam and by the gradient norm) and their zero fills. Here they are never
formed: the backward pass stops at dh1 [B, H] (the first layer's output) and at dp [B, K] (the
mixture at the batch's nonzeros), and two Adam kernels (``bindvae.kernels.sparse_ops.adam_first_layer``,
``adam_theta``) rebuild each row of dW1 / column tile of dtheta from the batch's nonzeros and
update the parameter and its moments there, in place.

The softmax over theta is one kernel too (``exp_transposed``: XLA's version made two 45 MB
temporaries and four passes over them), writing phi^T unnormalised into a buffer kept across steps
(``TrainState.workspace``), so no step allocates (and page-faults in) a fresh 45 MB array.

The arithmetic is optax.adam's (b1 0.9, b2 0.999, eps 1e-8, the learning rate of the run), element
by element, and the step keeps the rest of ``bindvae.training``'s contract: the gradient's global norm
(``l2_grads``) covers every parameter (W1's and theta's parts summed by their Adam kernels), and a
step whose loss or gradient is not finite changes nothing. That is decided before any update,
from the loss, the small parameters' gradients and a bound on theta's gradient norm that holds
because the likelihood's gradient at the mixture is never positive (see :func:`fused_step`; dW1 =
x^T dh1 is finite whenever dh1 is, and dh1 reaches the first layer's bias gradient). The other parameters
(the small encoder layers, the prior with its burn-in) go through the run's optax transformation
as before, and the optimiser state keeps optax's layout, so checkpoints are interchangeable with
the other paths'. Adam moments in bfloat16 are not supported here (``auto`` then picks
``sparse_cpu``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from bindvae.kernels import sparse_ops
from bindvae.vae import objectives
from bindvae.vae.network import BindVAE, encoder_order, prior_alpha

_W1 = ("encoder", "input_kernel")
_THETA = ("topic_kmer", "theta")


def _get(tree, path):
    return tree[path[0]][path[1]]


def _put(tree, path, value):
    return {**tree, path[0]: {**tree[path[0]], path[1]: value}}


def _net_adam(opt_state):
    """The ``net`` branch's optax.adam state (count, mu, nu) inside ``make_optimizer``'s state."""
    adam = opt_state.inner_states["net"].inner_state[0]
    if not isinstance(adam, optax.ScaleByAdamState):  # pragma: no cover - guards a change of optax's layout
        raise TypeError(f"unexpected optimiser state layout: {type(adam).__name__}")
    return adam


def _with_net_adam(opt_state, adam):
    net = opt_state.inner_states["net"]
    inner = (adam,) + tuple(net.inner_state[1:])
    return opt_state._replace(inner_states={**opt_state.inner_states, "net": net._replace(inner_state=inner)})


def adam_hyper(ok: jax.Array, learning_rate: float, count: jax.Array, spec) -> jax.Array:
    """float32 [9] for the Adam kernels: [ok, lr, 1 - b1, b1, 1 - b2, b2, eps, 1 - b1^t, 1 - b2^t].

    ``count`` is Adam's step count after this update (t), as optax's bias correction uses it; ``spec``
    is the run's ``bindvae.training.optim.OptimizerSpec`` (b1, b2, eps: the optimiser's own).
    """
    b1, b2, eps = spec.b1, spec.b2, spec.eps
    values = [ok.astype(jnp.float32), learning_rate, 1 - b1, b1, 1 - b2, b2, eps, 1 - b1**count, 1 - b2**count]
    return jnp.stack([jnp.asarray(v, jnp.float32) for v in values])


def new_workspace(model: BindVAE) -> dict:
    """The fused step's buffers kept across steps (``TrainState.workspace``): e^theta^T [D, M].

    Each step overwrites it (``sparse_ops.exp_transposed`` writes into it in place), so a step allocates
    no 45 MB temporary; at the paper's size a fresh one cost ~18 ms of first-touch page faults
    per step on a 2-core CPU, about as much as the kernel that fills it.
    """
    return {"exp_theta_t": jnp.zeros((model.n_kmers, model.num_topics), jnp.float32)}


def fused_step(model: BindVAE, state, indices, counts, key, sampler: str, learning_rate: float, metrics_fn):
    """One training step with W1 and theta updated inside their gradient kernels.

    Args:
        model: the BindVAE.
        state: ``bindvae.training.TrainState`` with its ``workspace`` (:func:`new_workspace`).
        indices, counts: the padded batch [B, K].
        key: this step's PRNG key.
        sampler: Dirichlet sampler.
        learning_rate: Adam's learning rate (the run's): a float, or a schedule of the update count
            (``bindvae.training.learning_rate_schedule``).
        metrics_fn: ``(ll, kl, prior, counts) -> (loss, metrics)`` of ``bindvae.training``.

    Returns:
        (params, opt_state, metrics, grad_norm, ok, workspace); unchanged params and state when not ok.
    """
    params = state.params
    w1, theta = _get(params, _W1), _get(params, _THETA)
    n_batch, width = indices.shape
    order = sparse_ops.column_order(indices, counts, model.n_kmers)
    # The encoder reads transformed counts (model.input_transform); the likelihood the counts.
    enc_order = encoder_order(order, counts, model.input_transform, model.input_norm)
    h1 = sparse_ops.first_layer_value(w1, enc_order, n_batch)
    frozen_w1, frozen_theta = jax.lax.stop_gradient(w1), jax.lax.stop_gradient(theta)

    def head(small, h1):
        full = _put(_put(small, _W1, frozen_w1), _THETA, frozen_theta)
        conc = model.apply({"params": full}, h1 + full["encoder"]["input_bias"], method=BindVAE.from_preactivation)
        prior = prior_alpha(full, model.min_concentration, model.max_concentration)
        z = objectives.sample_topics(key, conc, sampler)
        return z.astype(jnp.float32), objectives.dirichlet_kl(conc, prior), prior

    small = _put(_put(params, _W1, None), _THETA, None)
    (z, kl, prior), head_vjp = jax.vjp(head, small, h1)
    # phi^T [D, M] = e_t * scale: the kernels read each k-mer's topic probabilities as one
    # contiguous run; the softmax's division is folded into their inputs (z * scale, dz * scale).
    e_t, row_sum, theta_bad = sparse_ops.exp_transposed(theta, state.workspace["exp_theta_t"])
    scale = 1.0 / row_sum
    # loss = -mean_b(ll_b - kl_b): d loss / d p[b, k] = -counts[b, k] / (B p[b, k]), d loss / d kl_b = 1 / B.
    p, dp, dz_unscaled = sparse_ops.mixture_value_and_dz(z * scale, e_t, order, width, -1.0 / n_batch)
    dz = dz_unscaled * scale
    tiny = jnp.finfo(jnp.float32).tiny
    ll = jnp.sum(jnp.where(counts > 0, counts * jnp.log(jnp.maximum(p, tiny)), 0.0), axis=-1)
    loss, metrics = metrics_fn(ll, kl, prior, counts)
    d_small, dh1 = head_vjp((dz, jnp.full_like(kl, 1.0 / n_batch), jnp.zeros_like(prior)))
    # The softmax's backward: dtheta = phi (dphi - s) with s[m] = sum_j phi dphi = sum_b z[b, m] dz[b, m].
    s = jnp.sum(z * dz, axis=0)

    sq_small = sum(jnp.sum(jnp.square(g)) for g in jax.tree.leaves(d_small))
    # Whether the step is taken is decided before W1 and theta are updated, so from bounds: dp <= 0,
    # z, phi >= 0 make dphi <= 0 and s a phi-weighted mean of dphi, hence |dphi - s| <= max(|dphi|, |s|)
    # and |dtheta|^2 = sum phi^2 (dphi - s)^2 <= 2 sum_m s_m^2 (sum_j phi = 1, sum_j phi |dphi| = |s|).
    # With sum |dp| finite no partial sum of dphi overflows, so a finite bound means a finite
    # dtheta and a finite norm. dW1 = x^T dh1 is finite when dh1 is, and dh1 enters sq_small
    # through the first layer's bias gradient (sum_b dh1[b]). The norms themselves come out of the
    # Adam kernels, which form each row of dW1 / tile of dtheta.
    theta_bound = 2.0 * jnp.sum(jnp.square(s))
    ok = (
        jnp.isfinite(loss)
        & jnp.isfinite(sq_small + theta_bound - jnp.sum(dp))
        & (theta_bad[0] == 0)
    )

    # The small parameters through the run's optax transformation; its results for W1 and theta
    # (zero gradients here) are replaced by the kernels' below, so XLA removes their computation.
    grads = _put(_put(d_small, _W1, jnp.zeros_like(w1)), _THETA, jnp.zeros_like(theta))
    updates, new_opt = state.tx.update(grads, state.opt_state, params)
    keep = lambda new, old: jnp.where(ok, new, old)  # noqa: E731
    new_params = jax.tree.map(keep, optax.apply_updates(params, updates), params)
    new_opt = jax.tree.map(keep, new_opt, state.opt_state)

    old_adam = _net_adam(state.opt_state)
    # A schedule is read at the number of updates before this one, as optax's scale_by_schedule does.
    rate = learning_rate(old_adam.count) if callable(learning_rate) else learning_rate
    hyper = adam_hyper(ok, rate, _net_adam(new_opt).count, state.optimizer)
    w1_new, w1_mu, w1_nu, sq_w1 = sparse_ops.adam_first_layer(
        enc_order, dh1, w1, _get(old_adam.mu, _W1), _get(old_adam.nu, _W1), hyper
    )
    th_new, th_mu, th_nu, sq_theta = sparse_ops.adam_theta(
        order, z, e_t, scale, dp, s, theta, _get(old_adam.mu, _THETA), _get(old_adam.nu, _THETA), hyper
    )
    grad_norm = jnp.sqrt(sq_small + sq_theta[0] + sq_w1[0])
    new_params = _put(_put(new_params, _W1, w1_new), _THETA, th_new)
    adam = _net_adam(new_opt)
    adam = adam._replace(
        mu=_put(_put(adam.mu, _W1, w1_mu), _THETA, th_mu), nu=_put(_put(adam.nu, _W1, w1_nu), _THETA, th_nu)
    )
    return new_params, _with_net_adam(new_opt, adam), metrics, grad_norm, ok, {"exp_theta_t": e_t}
