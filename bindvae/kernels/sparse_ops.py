"""The CPU sparse training path: the encoder's first layer and the likelihood at nonzero k-mers.

XLA:CPU lowers gathers and scatter-adds elementwise, so the pure-XLA sparse path spends most of a
step in them. Here the two sparse pieces of a step run as numba kernels (``bindvae.kernels._sparse_kernels``)
called by XLA itself through its FFI (``jax.ffi.ffi_call``; handlers in ``bindvae.kernels._sparse_ffi``), each with
a ``jax.custom_vjp`` whose
backward pass is a kernel too:

    h1[b]   = sum_k counts[b, k] * W1[indices[b, k]]            (:func:`first_layer`)
    p[b, k] = sum_m z[b, m] * phi[m, indices[b, k]]              (:func:`topic_mixture`)

with phi = softmax(theta) formed by XLA. The batch is sorted by k-mer once per step
(:func:`column_order`) and the kernels walk columns in order, so W1 [D, H] and phi [M, D] are
streamed, not gathered row by row, and dW1 / dphi are written once, densely, in the parameters'
own layout (the parameter tree is unchanged). The FFI handlers receive XLA's buffers directly;
``jax.pure_callback`` would copy W1, phi and their gradients on every call (measured: ~100 ms per
135 MB on a 2-core CPU), more than the whole step should cost.

The heavy kernels run on numba's thread pool when its threading layer is thread-safe (OpenMP
or TBB, see :data:`PARALLEL`), single-threaded otherwise. The handlers are XLA CPU targets named ``bindvae_*``,
registered when first called (:func:`load_kernels`). They exist on the CPU backend only:
``bindvae.training.resolve_compute_path`` picks this path on the CPU alone.
All arrays are float32 / int32.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import threading
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numba
import numpy as np

from bindvae.errors import ConfigError
from bindvae.kernels import _cache as _kernel_cache
from bindvae.kernels import _ffi_layout

# The kernels each CPU path runs, loaded together so that a cold cache is filled in one go.
SPARSE_CPU_KERNELS = ("bindvae_column_order", "bindvae_first_layer_forward", "bindvae_first_layer_backward",
                      "bindvae_mixture_forward", "bindvae_mixture_backward")
FUSED_CPU_KERNELS = ("bindvae_column_order", "bindvae_first_layer_forward", "bindvae_exp_transposed",
                     "bindvae_mixture_value_and_dz", "bindvae_adam_first_layer", "bindvae_adam_theta",
                     "bindvae_mixture_forward")
# XLA target name -> its loaded handler. XLA's target registry is process-wide, and the handler
# object owns the compiled code behind the registered address, so both live as long as the process.
_LOADED: dict = {}
_LOADING = threading.Lock()  # XLA may trace two steps at once; each target is registered once


def load_kernels(names) -> None:
    """Register the XLA CPU targets ``names``, loading their handlers from numba's cache.

    Kernels missing from the cache are compiled once, in a child process (a log line says so and
    how long it takes): see ``bindvae.kernels._cache`` for why a process never runs a kernel it
    compiled itself. Called for a whole path when a run starts; each call below ensures its own.
    """
    if all(name in _LOADED for name in names):
        return
    problem = _ffi_layout.problem()
    if problem:  # never hand XLA a handler that would read the wrong words of its call frame
        raise ConfigError("train.compute_path", f"the CPU kernels are off: {problem}; use train.compute_path=sparse")
    with _LOADING:
        _load_kernels([name for name in names if name not in _LOADED])


def _load_kernels(todo: list) -> None:
    new_capsule = ctypes.pythonapi.PyCapsule_New
    new_capsule.restype = ctypes.py_object
    new_capsule.argtypes = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)
    for name, handler in _kernel_cache.load_handlers(todo).items():
        jax.ffi.register_ffi_target(
            name, new_capsule(handler.address, b"xla._CUSTOM_CALL_TARGET", None), platform="cpu"
        )
        _LOADED[name] = handler


def _thread_safe_layer() -> bool:
    """Whether numba's parallel kernels may be entered from several threads at once.

    The OpenMP and TBB threading layers allow that; the fallback ``workqueue`` layer aborts the
    process, and XLA may call two handlers (or a user two jitted functions) concurrently.
    """
    if numba.config.THREADING_LAYER == "workqueue":
        return False
    for module in ("numba.np.ufunc.tbbpool", "numba.np.ufunc.omppool"):
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        return True
    return False


# Whether the heavy kernels may use numba's thread pool (decided once per process; a constant).
PARALLEL = _thread_safe_layer()


def _thread_count() -> jax.Array:
    # The kernels' thread count, read when a step is traced (numba.set_num_threads applies).
    return jnp.asarray(np.array([numba.get_num_threads() if PARALLEL else 1], np.int32))


class ColumnOrder(NamedTuple):
    """A padded batch's nonzero slots sorted by k-mer id (CSC).

    Attributes:
        col_ptr: int32 [D + 1]; column j's entries are ``col_ptr[j] .. col_ptr[j + 1]``.
        rows: int32 [B * K] batch row of each entry (entries past ``col_ptr[D]`` unused).
        slots: int32 [B * K] flat slot ``b * K + k`` of each entry.
        values: float32 [B * K] count of each entry.
    """

    col_ptr: jax.Array
    rows: jax.Array
    slots: jax.Array
    values: jax.Array


def _call(name: str, shapes, *args):
    load_kernels((name,))
    return jax.ffi.ffi_call(name, shapes, vmap_method="sequential")(*args)


def _call_in_place(name: str, aliases: dict, shapes, *args):
    load_kernels((name,))
    return jax.ffi.ffi_call(name, shapes, vmap_method="sequential", input_output_aliases=aliases)(*args)


def column_order(indices: jax.Array, counts: jax.Array, n_kmers: int) -> ColumnOrder:
    """Sort a padded batch's nonzero slots by k-mer id (slots with count 0 are dropped).

    Args:
        indices: int32 [B, K] k-mer ids in [0, n_kmers) (ids outside are dropped).
        counts: float32 [B, K] counts; 0 marks padding.
        n_kmers: D.

    Returns:
        The :class:`ColumnOrder` (no gradient flows through it).
    """
    size = indices.shape[0] * indices.shape[1]
    shapes = (
        jax.ShapeDtypeStruct((n_kmers + 1,), jnp.int32),
        jax.ShapeDtypeStruct((size,), jnp.int32),
        jax.ShapeDtypeStruct((size,), jnp.int32),
        jax.ShapeDtypeStruct((size,), jnp.float32),
    )
    counts = jax.lax.stop_gradient(counts).astype(jnp.float32)
    return ColumnOrder(*_call("bindvae_column_order", shapes, indices.astype(jnp.int32), counts, _thread_count()))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def first_layer(w1: jax.Array, order: ColumnOrder, n_batch: int) -> jax.Array:
    """h1 = x @ W1 for the sparse batch x described by ``order`` (bias not included).

    Args:
        w1: float32 [D, H] first-layer kernel.
        order: the batch's :func:`column_order`.
        n_batch: B.

    Returns:
        [B, H]; differentiable in ``w1`` (dW1 [D, H] is written densely, zero rows included).
    """
    shape = jax.ShapeDtypeStruct((n_batch, w1.shape[1]), jnp.float32)
    return _call("bindvae_first_layer_forward", shape, order.col_ptr, order.rows, order.values, w1, _thread_count())


def _first_layer_fwd(w1, order, n_batch):
    return first_layer(w1, order, n_batch), order


def _first_layer_bwd(n_batch, order, dh1):
    shape = jax.ShapeDtypeStruct((order.col_ptr.shape[0] - 1, dh1.shape[1]), jnp.float32)
    dw1 = _call(
        "bindvae_first_layer_backward",
        shape,
        order.col_ptr,
        order.rows,
        order.values,
        dh1.astype(jnp.float32),
        _thread_count(),
    )
    return dw1, None


first_layer.defvjp(_first_layer_fwd, _first_layer_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def topic_mixture(z: jax.Array, phi: jax.Array, order: ColumnOrder, width: int) -> jax.Array:
    """p[b, k] = (z @ phi)[b, indices[b, k]] at a padded batch's nonzero slots.

    Args:
        z: float32 [B, M] topic proportions.
        phi: float32 [M, D] topic k-mer distributions.
        order: the batch's :func:`column_order`.
        width: K, the padded width of the batch.

    Returns:
        [B, K]; padding slots hold 1. Differentiable in z and phi.
    """
    shape = jax.ShapeDtypeStruct((z.shape[0], width), jnp.float32)
    return _call("bindvae_mixture_forward", shape, order.col_ptr, order.rows, order.slots, z, phi, _thread_count())


def _topic_mixture_fwd(z, phi, order, width):
    return topic_mixture(z, phi, order, width), (z, phi, order)


def _topic_mixture_bwd(width, residuals, dp):
    z, phi, order = residuals
    shapes = (jax.ShapeDtypeStruct(z.shape, jnp.float32), jax.ShapeDtypeStruct(phi.shape, jnp.float32))
    dz, dphi = _call(
        "bindvae_mixture_backward",
        shapes,
        order.col_ptr,
        order.rows,
        order.slots,
        z,
        phi,
        dp.astype(jnp.float32),
        _thread_count(),
    )
    return dz, dphi, None


topic_mixture.defvjp(_topic_mixture_fwd, _topic_mixture_bwd)


def log_likelihood(z: jax.Array, theta: jax.Array, counts: jax.Array, order: ColumnOrder) -> jax.Array:
    """sum_k counts[b, k] log p[b, k], as ``bindvae.vae.objectives.log_likelihood_sparse``.

    Args:
        z: [B, M] topic proportions.
        theta: [M, D] decoder logits.
        counts: [B, K] counts (0 in padding slots).
        order: the batch's :func:`column_order`.

    Returns:
        [B] float32 log-likelihoods.
    """
    phi = jax.nn.softmax(theta.astype(jnp.float32), axis=-1)
    p = topic_mixture(z.astype(jnp.float32), phi, order, counts.shape[1])
    log_p = jnp.log(jnp.maximum(p, jnp.finfo(p.dtype).tiny))
    return jnp.sum(jnp.where(counts > 0, counts * log_p, 0.0), axis=-1)


# --- Pieces of the fused step (``bindvae.kernels.fused``) ---------------------------------------------


def first_layer_value(w1: jax.Array, order: ColumnOrder, n_batch: int) -> jax.Array:
    """h1 = x @ W1 with no gradient (the fused step builds W1's gradient inside Adam)."""
    shape = jax.ShapeDtypeStruct((n_batch, w1.shape[1]), jnp.float32)
    return _call("bindvae_first_layer_forward", shape, order.col_ptr, order.rows, order.values, w1, _thread_count())


def exp_transposed(theta: jax.Array, out: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """softmax(theta, axis=-1)^T unnormalised: e^(theta - row max)^T [D, M] of float32 theta [M, D].

    One kernel instead of XLA's max, exponentials, sum and a transpose (each a pass over 45 MB at
    the paper's size, and two 45 MB temporaries): the row maxima in one pass, then the
    exponentials written transposed while they are summed. phi^T = result / row_sum (the fused
    step folds the division into its other kernels' inputs). Exponentials within a few ulp of
    float32's; entries more than 87 below their row's maximum (e^-87 ~ 1e-38) are 0. The result
    is written into ``out`` (float32 [D, M], its contents unused; aliased to the result: donate it).

    Returns:
        (float32 [D, M], row_sum float32 [M] (summed in float64), float32 [1] the number of
        non-finite entries of theta; the first two are not meaningful when it is above 0).
    """
    shapes = (
        jax.ShapeDtypeStruct(theta.shape[::-1], jnp.float32),
        jax.ShapeDtypeStruct(theta.shape[:1], jnp.float32),
        jax.ShapeDtypeStruct((1,), jnp.float32),
    )
    return _call_in_place("bindvae_exp_transposed", {1: 0}, shapes, theta.astype(jnp.float32), out, _thread_count())


def mixture_value_and_dz(zs: jax.Array, phi_t: jax.Array, order: ColumnOrder, width: int, factor: float):
    """The mixture at the batch's nonzeros, its gradient there and dz, in one walk over phi_t.

    With phi_t [D, M] (phi^T, or any scaling of its columns) and zs [B, M]:

        p[b, k]  = zs[b] . phi_t[indices[b, k]]                  (padding slots: 1)
        dp[b, k] = factor * counts[b, k] / p[b, k]                 (0 where p <= float32 tiny, padding 0)
        dz[b]    = sum_k dp[b, k] phi_t[indices[b, k]]

    For the loss -mean_b sum_k counts log p, ``factor`` is -1 / B. No gradient flows through it.

    Returns:
        (p [B, width], dp [B, width], dz [B, M]), float32.
    """
    n_batch = zs.shape[0]
    slot = jax.ShapeDtypeStruct((n_batch, width), jnp.float32)
    shapes = (slot, slot, jax.ShapeDtypeStruct(zs.shape, jnp.float32))
    return _call(
        "bindvae_mixture_value_and_dz", shapes, order.col_ptr, order.rows, order.slots, order.values,
        zs.astype(jnp.float32), phi_t, jnp.full((1,), factor, jnp.float32), _thread_count(),
    )


def adam_first_layer(order: ColumnOrder, dh1, w1, mu, nu, hyper) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Adam on W1 with dW1 = x^T dh1 rebuilt row by row from the batch (never written whole).

    Args:
        order: the batch's :func:`column_order`.
        dh1: float32 [B, H] gradient of the loss at the first layer's output.
        w1, mu, nu: float32 [D, H] parameter and Adam moments, updated in place (their buffers
            are aliased to the results; donate them).
        hyper: float32 [9] ``bindvae.kernels.fused.adam_hyper`` (ok flag, learning rate, decays, eps,
            bias corrections); ok = 0 returns the three unchanged.

    Returns:
        (w1, mu, nu) after the update and [1] the squared norm of dW1 (summed in float64).
    """
    shape = jax.ShapeDtypeStruct(w1.shape, jnp.float32)
    return _call_in_place(
        "bindvae_adam_first_layer", {4: 0, 5: 1, 6: 2}, (shape, shape, shape, jax.ShapeDtypeStruct((1,), jnp.float32)),
        order.col_ptr, order.rows, order.values, dh1, w1, mu, nu, hyper, _thread_count(),
    )


def adam_theta(
    order: ColumnOrder, z, phi_t, scale, dp, s, theta, mu, nu, hyper
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Adam on theta with dtheta = phi (dphi - s) rebuilt per column tile (never written whole).

    Args:
        order: the batch's :func:`column_order`.
        z: [B, M] topic proportions; dp: [B, K] gradient at p.
        phi_t, scale: phi^T = phi_t * scale[None, :] (``exp_transposed``'s result and 1 / row_sum).
        s: [M] sum_j phi dphi (= sum_b z[b] dz[b]).
        theta, mu, nu: float32 [M, D], updated in place (aliased to the results).
        hyper: as for :func:`adam_first_layer`; ok = 0 leaves the three unchanged.

    Returns:
        (theta, mu, nu) after the update and [1] the squared norm of dtheta (summed in float64).
    """
    shape = jax.ShapeDtypeStruct(theta.shape, jnp.float32)
    return _call_in_place(
        "bindvae_adam_theta", {8: 0, 9: 1, 10: 2}, (shape, shape, shape, jax.ShapeDtypeStruct((1,), jnp.float32)),
        order.col_ptr, order.rows, order.slots, z, phi_t, scale, dp, s, theta, mu, nu, hyper, _thread_count(),
    )
