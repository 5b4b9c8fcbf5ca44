"""Training state: parameters, optimiser state and the step's bookkeeping (skipped steps)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from flax.training import train_state

from bindvae.config import TrainConfig
from bindvae.training.optim import OptimizerSpec, learning_rate_schedule, make_optimizer, optimizer_spec
from bindvae.vae.network import BindVAE, init_params


class TrainState(train_state.TrainState):
    """Flax TrainState plus non-finite step counters (int32 scalars).

    ``learning_rate`` and ``optimizer`` (static) are the optimiser's settings, which the fused
    CPU step (``bindvae.kernels.fused``) applies itself to W1 and theta. ``workspace`` holds that step's
    buffers kept from one step to the next (``bindvae.kernels.fused.new_workspace``; None on the other
    paths); it is derived data, never checkpointed.
    """

    bad_steps: jax.Array
    skipped_steps: jax.Array
    workspace: Any = None
    learning_rate: Any = struct.field(pytree_node=False, default=0.0)  # a float, or a schedule of the update count
    optimizer: OptimizerSpec = struct.field(pytree_node=False, default=OptimizerSpec())

    @property
    def moment_dtype(self) -> str:
        return self.optimizer.moment_dtype


def create_train_state(
    model: BindVAE, config: TrainConfig, key: jax.Array, theta: jax.Array | None = None
) -> TrainState:
    """Fresh parameters (from ``key``) and optimiser state, at step 0.

    Args:
        model: the network.
        config: the training section (optimiser).
        key: PRNG key of the initialisation.
        theta: optional decoder logits [M, n_kmers] replacing the Glorot ones (e.g.
            :func:`bindvae.vae.network.background_theta`).
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
        optimizer=optimizer_spec(config),
    )
