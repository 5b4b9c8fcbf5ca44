"""The optimiser: Adam with the prior's burn-in freeze and the learning-rate schedule.

The only place that builds the optimiser; the fused CPU step reads its hyper-parameters from here.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from bindvae.config import TrainConfig


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
        return optax.warmup_cosine_decay_schedule(
            0.0, lr, config.warmup_steps, config.steps, lr * config.final_lr_fraction
        )
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
