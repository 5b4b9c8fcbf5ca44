"""The optimiser: Adam (or AdamW) with the prior's burn-in freeze and the learning-rate schedule.

The only place that builds the optimiser. :func:`optimizer_spec` describes what it builds; the fused
CPU step, which applies the network's update itself, reads its hyper-parameters from that and refuses
what it does not implement.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bindvae.config import TrainConfig


class FreezeState(NamedTuple):
    count: jax.Array
    inner: Any


NEVER = int(np.iinfo(np.int32).max)  # a freeze longer than any run: the update count never reaches it


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


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """The network's update rule as :func:`make_optimizer` builds it (optax's Adam defaults)."""

    name: str = "adam"  # adam | adamw
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0  # decoupled (AdamW); 0 for adam
    moment_dtype: str = "float32"
    # How the topics learn (train.decoder_update): adam (the rule above) or online_em (ours), whose
    # step-size schedule and pseudo-count are the em_* fields.
    decoder_update: str = "adam"
    em_eta: float = 0.01
    em_offset: float = 10.0
    em_decay: float = 0.5
    em_estep: str = "sample"


def optimizer_spec(config: TrainConfig) -> OptimizerSpec:
    """What :func:`make_optimizer` applies to the network's parameters for this config."""
    decay = float(config.weight_decay) if config.optimizer == "adamw" else 0.0
    return OptimizerSpec(name=config.optimizer, weight_decay=decay, moment_dtype=config.optimizer_state_dtype,
                         decoder_update=config.decoder_update, em_eta=float(config.em_eta),
                         em_offset=float(config.em_offset), em_decay=float(config.em_decay), em_estep=config.em_estep)


def _network_rule(spec: OptimizerSpec, learning_rate) -> optax.GradientTransformation:
    mu_dtype = jnp.bfloat16 if spec.moment_dtype == "bfloat16" else None
    if spec.name == "adamw":
        return optax.adamw(learning_rate, b1=spec.b1, b2=spec.b2, eps=spec.eps, weight_decay=spec.weight_decay,
                           mu_dtype=mu_dtype)
    return optax.adam(learning_rate, b1=spec.b1, b2=spec.b2, eps=spec.eps, mu_dtype=mu_dtype)


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """Adam (``train.optimizer``) on every parameter; the prior's is frozen for ``prior_burn_in_steps`` updates
    (for the whole run with ``learn_prior=False``).

    The network follows :func:`learning_rate_schedule`; the prior keeps the constant rate (its
    updates start only after burn-in) and plain Adam (no weight decay on the prior).
    """
    spec = optimizer_spec(config)
    prior_rule = _network_rule(dataclasses.replace(spec, name="adam", weight_decay=0.0), config.learning_rate)
    return optax.multi_transform(
        {
            "net": _network_rule(spec, learning_rate_schedule(config)),
            # learn_prior=False: frozen for good (the same state layout, so checkpoints stay compatible).
            "prior": freeze_for(prior_rule, config.prior_burn_in_steps if config.learn_prior else NEVER),
        },
        _param_labels,
    )
