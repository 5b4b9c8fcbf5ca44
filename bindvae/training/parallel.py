"""Data-parallel training across devices and hosts with ``jax.sharding``.

One mesh axis, ``batch``, spans every device taking part (all local devices by default; every
device of every process after :func:`initialize_distributed`). Parameters and optimiser state are
replicated; each batch is split along its row axis, one slice per device. The loss is a mean over
the global batch, so XLA's SPMD partitioner inserts the all-reduce of the gradients itself: no
``pmap`` and no hand-written ``psum``. With ``jax_threefry_partitionable`` (JAX's default) random
draws do not depend on how an array is split, so N devices train the same trajectory as one device
at the same global batch, up to the order of float additions in the reduction.

Multi-host: every process runs the same program. Each one feeds only its own rows of the global
batch (:func:`process_rows`); :func:`put_batch` assembles the global array from the per-process
pieces with ``jax.make_array_from_process_local_data``.
"""

from __future__ import annotations

import logging
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bindvae.errors import ConfigError

logger = logging.getLogger(__name__)

BATCH_AXIS = "batch"


def initialize_distributed(
    coordinator_address: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> None:
    """Join a multi-host run (``jax.distributed.initialize``); call before any other JAX work.

    With no arguments JAX detects the cluster itself (Slurm, Open MPI, Kubernetes, Cloud TPU);
    on other clusters give all three values (the coordinator is process 0's ``host:port``).

    Args:
        coordinator_address: ``host:port`` of process 0, or None to auto-detect.
        num_processes: number of processes, or None to auto-detect.
        process_id: this process's rank in [0, num_processes), or None to auto-detect.

    Raises:
        ConfigError: JAX could not start or join the distributed runtime.
    """
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id
        )
    except (RuntimeError, ValueError) as err:
        raise ConfigError("train.distributed", f"jax.distributed.initialize failed: {err}") from None
    logger.info(
        "distributed: process %d of %d, %d local / %d global devices",
        jax.process_index(), jax.process_count(), jax.local_device_count(), jax.device_count(),
    )


def make_mesh(n_devices: int = 0) -> Mesh:
    """A 1-D mesh over the ``batch`` axis.

    Args:
        n_devices: how many devices; 0 = all devices (global across processes). A number other
            than 0 takes the first ``n_devices`` and is only allowed in a single-process run.

    Raises:
        ConfigError: more devices asked for than exist, or a subset in a multi-process run.
    """
    devices = jax.devices()
    if n_devices < 0 or n_devices > len(devices):
        raise ConfigError("train.devices", f"asked for {n_devices} device(s); {len(devices)} available (0 = all)")
    if n_devices and n_devices != len(devices) and jax.process_count() > 1:
        raise ConfigError("train.devices", "a multi-host run uses every device (set train.devices=0)")
    chosen = devices[: n_devices or len(devices)]
    return Mesh(np.asarray(chosen), (BATCH_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding of arrays held whole on every device (parameters, optimiser state, keys)."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh, ndim: int, axis: int = 0) -> NamedSharding:
    """The sharding that splits dimension ``axis`` of an ``ndim``-dimensional array over the mesh."""
    spec = [None] * ndim
    spec[axis] = BATCH_AXIS
    return NamedSharding(mesh, PartitionSpec(*spec))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """Raise ConfigError unless the global batch splits evenly over the mesh's devices."""
    n = mesh.devices.size
    if batch_size % n:
        raise ConfigError(
            "train.batch_size", f"{batch_size} does not split evenly over {n} devices (use a multiple of {n})"
        )


def process_rows(batch_size: int) -> slice:
    """This process's slice of a global batch's rows (the whole batch in a single-process run)."""
    n, rank = jax.process_count(), jax.process_index()
    if batch_size % n:
        raise ConfigError("train.batch_size", f"{batch_size} does not split over {n} processes")
    per = batch_size // n
    return slice(rank * per, (rank + 1) * per)


def replicate(tree, mesh: Mesh):
    """Place every leaf of ``tree`` whole on every device of ``mesh``."""
    return jax.device_put(tree, replicated(mesh))


def put_batch(local: np.ndarray, mesh: Mesh, axis: int = 0) -> jax.Array:
    """A global array split along ``axis`` over the mesh, from this process's rows.

    Args:
        local: this process's part, e.g. [S, B / n_processes, K] for ``axis=1``; in a
            single-process run, the whole global array.
        mesh: the ``batch`` mesh.
        axis: the batch dimension.

    Returns:
        jax.Array of the global shape (``local``'s with ``axis`` times the process count).
    """
    sharding = batch_sharding(mesh, local.ndim, axis)
    if jax.process_count() == 1:
        return jax.device_put(local, sharding)
    shape = list(local.shape)
    shape[axis] *= jax.process_count()
    return jax.make_array_from_process_local_data(sharding, local, tuple(shape))


def make_sharded_loop(apply_step: Callable, mesh: Mesh):
    """Jitted ``(state, indices, counts, key) -> (state, sums)`` over pre-gathered batches.

    Runs one step per leading entry of ``indices``/``counts`` (int32 / float32 [S, B, K], B split
    over the mesh) with ``lax.scan``. ``state`` is replicated and donated. ``sums`` (replicated
    scalars) holds the sum of each metric over the finite steps and ``n_finite``, as
    ``bindvae.training.make_train_loop`` returns them.

    Args:
        apply_step: ``(state, indices [B, K], counts [B, K], key) -> (state, metrics)`` with a
            boolean ``finite`` among the metrics (``bindvae.training``'s step body).
        mesh: the ``batch`` mesh.
    """
    rep, rows = replicated(mesh), batch_sharding(mesh, 3, axis=1)

    def run(state, indices, counts, key):
        def body(carry, batch):
            return apply_step(carry, batch[0], batch[1], key)

        state, metrics = jax.lax.scan(body, state, (indices, counts))
        finite = metrics.pop("finite")
        sums = {k: jnp.sum(jnp.where(finite, v, 0.0)) for k, v in metrics.items()}
        sums["n_finite"] = jnp.sum(finite.astype(jnp.int32))
        return state, sums

    return jax.jit(run, in_shardings=(rep, rows, rows, rep), out_shardings=(rep, rep), donate_argnums=0)


def gather_batches(
    indices: np.ndarray, counts: np.ndarray, rows: np.ndarray, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Host-side gather of padded rows: ([S, B, width] int32, [S, B, width] float32) for row ids [S, B]."""
    return indices[rows, :width], counts[rows, :width]
