"""XLA FFI handlers for the CPU sparse kernels (``bindvae.kernels._sparse_kernels``), compiled by numba.

Each kernel is exposed to XLA:CPU as a typed-FFI handler ``XLA_FFI_Error* handler(XLA_FFI_CallFrame*)``
so that XLA hands the kernels its own buffers: no copy of W1 [D, H] or phi [M, D] in, or of their
gradients out (``jax.pure_callback`` copies every argument and result, measured ~100 ms per 135 MB
on a shared 2-core CPU). Word offsets follow xla/ffi/api/c_api.h (FFI API 0.3, shipped in jaxlib):
CallFrame: [1] extension_start, [4] stage, [9] args.args, [14] rets.rets (void** of XLA_FFI_Buffer*);
XLA_FFI_Buffer: [3] data, [4] rank, [5] dims. A call frame whose extension is the metadata
extension asks for the handler's FFI version, which is written back instead of running.
Handlers return NULL (success): the arrays are shaped and validated where they are built.

The heavy handlers take a last int32 [1] argument, a thread count: above 1 the kernel's
``*_parallel`` variant runs on numba's thread pool, else the single-threaded one
(``bindvae.kernels.sparse_ops`` decides, once per process).

Every handler runs in XLA's floating-point mode (denormals flushed; ``_sparse_kernels.xla_fp_mode``)
whichever thread XLA calls it from, and gives the thread its own mode back when it returns.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import carray, types
from numba.extending import intrinsic

from bindvae.kernels import _fused_kernels as fk
from bindvae.kernels import _sparse_kernels as k

# Start numba's thread pool before the handlers below are compiled or loaded from the cache: their
# parallel kernels link against the pool's scheduler symbols (allocate_sched, ...), which exist
# only once the pool runs; a cached handler loaded without it fails with "Symbol not found".
numba.get_num_threads()

_FFI_API_MAJOR, _FFI_API_MINOR = 0, 3
_STAGE_EXECUTE = 3
_EXTENSION_METADATA = 1
_API_VERSION_STRUCT_SIZE = 24


@intrinsic
def _pointer(typingctx, address):  # pragma: no cover - compiled
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(types.voidptr))

    return types.voidptr(types.int64), codegen


@numba.njit(inline="always")
def _words(address, n):  # pragma: no cover - compiled
    return carray(_pointer(address), (n,), np.int64)


@numba.njit(inline="always")
def _buffer(frame, which, i):  # pragma: no cover - compiled
    # (data address, dims array) of argument (which=9) or result (which=14) i.
    buf = _words(_words(frame[which] + 8 * i, 1)[0], 6)
    return buf[3], carray(_pointer(buf[5]), (buf[4],), np.int64)


@numba.njit(inline="always")
def _not_execute(frame):  # pragma: no cover - compiled
    # True when this call only asks for metadata (filled in here) or is not the execute stage.
    ext = frame[1]
    if ext != 0:
        base = _words(ext, 4)
        if (base[1] & 0xFFFFFFFF) == _EXTENSION_METADATA:
            meta = _words(base[3], 5)
            meta[1] = _API_VERSION_STRUCT_SIZE
            meta[2] = 0
            meta[3] = _FFI_API_MAJOR | (_FFI_API_MINOR << 32)
            meta[4] = 0  # traits
            return True
    return (frame[4] & 0xFFFFFFFF) != _STAGE_EXECUTE


def _f32(address, shape):  # pragma: no cover - compiled (used inside handlers only)
    return carray(_pointer(address), shape, np.float32)


def _i32(address, shape):  # pragma: no cover - compiled
    return carray(_pointer(address), shape, np.int32)


_f32 = numba.njit(inline="always")(_f32)
_i32 = numba.njit(inline="always")(_i32)
# Every handler is XLA_FFI_Error* handler(XLA_FFI_CallFrame*): compiled as a C callback of this
# signature by bindvae.kernels._cache, which loads it from numba's cache.
SIGNATURE = types.int64(types.CPointer(types.int64))


@numba.njit(inline="always")
def _n_threads(frame, i):  # pragma: no cover - compiled
    return _i32(_buffer(frame, 9, i)[0], (1,))[0]


def column_order_handler(frame):  # pragma: no cover - compiled
    if _not_execute(frame):
        return 0
    saved = k.xla_fp_mode()
    a0, d0 = _buffer(frame, 9, 0)
    a1, _ = _buffer(frame, 9, 1)
    r0, e0 = _buffer(frame, 14, 0)
    r1, e1 = _buffer(frame, 14, 1)
    r2, _ = _buffer(frame, 14, 2)
    r3, _ = _buffer(frame, 14, 3)
    shape = (d0[0], d0[1])
    rows, slots, values = _i32(r1, (e1[0],)), _i32(r2, (e1[0],)), _f32(r3, (e1[0],))
    indices, counts, col_ptr = _i32(a0, shape), _f32(a1, shape), _i32(r0, (e0[0],))
    n_threads = _n_threads(frame, 2)
    if n_threads > 1:
        k.column_order_parallel(indices, counts, e0[0] - 1, col_ptr, rows, slots, values, n_threads)
    else:
        k.column_order(indices, counts, e0[0] - 1, col_ptr, rows, slots, values)
    used = col_ptr[e0[0] - 1]  # the slots past the nonzeros are never read; zeroed all the same
    rows[used:] = 0
    slots[used:] = 0
    values[used:] = 0.0
    k.restore_fp_mode(saved)
    return 0


def first_layer_forward_handler(frame):  # pragma: no cover - compiled
    if _not_execute(frame):
        return 0
    saved = k.xla_fp_mode()
    a0, d0 = _buffer(frame, 9, 0)
    a1, d1 = _buffer(frame, 9, 1)
    a2, _ = _buffer(frame, 9, 2)
    a3, d3 = _buffer(frame, 9, 3)
    r0, e0 = _buffer(frame, 14, 0)
    col_ptr, rows, values = _i32(a0, (d0[0],)), _i32(a1, (d1[0],)), _f32(a2, (d1[0],))
    w1, out = _f32(a3, (d3[0], d3[1])), _f32(r0, (e0[0], e0[1]))
    n_threads = _n_threads(frame, 4)
    if n_threads > 1:
        k.first_layer_forward_parallel(col_ptr, rows, values, w1, out, n_threads)
    else:
        out[:] = 0.0
        k.first_layer_forward(col_ptr, rows, values, w1, 0, d0[0] - 1, out)
    k.restore_fp_mode(saved)
    return 0


def first_layer_backward_handler(frame):  # pragma: no cover - compiled
    if _not_execute(frame):
        return 0
    saved = k.xla_fp_mode()
    a0, d0 = _buffer(frame, 9, 0)
    a1, d1 = _buffer(frame, 9, 1)
    a2, _ = _buffer(frame, 9, 2)
    a3, d3 = _buffer(frame, 9, 3)
    r0, e0 = _buffer(frame, 14, 0)
    col_ptr, rows, values = _i32(a0, (d0[0],)), _i32(a1, (d1[0],)), _f32(a2, (d1[0],))
    dh1, dw1 = _f32(a3, (d3[0], d3[1])), _f32(r0, (e0[0], e0[1]))
    n_threads = _n_threads(frame, 4)
    if n_threads > 1:
        k.first_layer_backward_parallel(col_ptr, rows, values, dh1, dw1, n_threads)
    else:
        k.first_layer_backward(col_ptr, rows, values, dh1, 0, d0[0] - 1, dw1)
    k.restore_fp_mode(saved)
    return 0


def mixture_forward_handler(frame):  # pragma: no cover - compiled
    if _not_execute(frame):
        return 0
    saved = k.xla_fp_mode()
    a0, d0 = _buffer(frame, 9, 0)
    a1, d1 = _buffer(frame, 9, 1)
    a2, _ = _buffer(frame, 9, 2)
    a3, d3 = _buffer(frame, 9, 3)
    a4, d4 = _buffer(frame, 9, 4)
    r0, e0 = _buffer(frame, 14, 0)
    col_ptr, rows, slots = _i32(a0, (d0[0],)), _i32(a1, (d1[0],)), _i32(a2, (d1[0],))
    z, phi = _f32(a3, (d3[0], d3[1])), _f32(a4, (d4[0], d4[1]))
    p = _f32(r0, (e0[0] * e0[1],))
    p[:] = 1.0  # padding slots: p = 1, log p = 0
    n_threads = _n_threads(frame, 5)
    if n_threads > 1:
        k.mixture_forward_parallel(col_ptr, rows, slots, z, phi, p, n_threads)
    else:
        k.mixture_forward(col_ptr, rows, slots, z, phi, 0, d0[0] - 1, p)
    k.restore_fp_mode(saved)
    return 0


def mixture_backward_handler(frame):  # pragma: no cover - compiled
    if _not_execute(frame):
        return 0
    saved = k.xla_fp_mode()
    a0, d0 = _buffer(frame, 9, 0)
    a1, d1 = _buffer(frame, 9, 1)
    a2, _ = _buffer(frame, 9, 2)
    a3, d3 = _buffer(frame, 9, 3)
    a4, d4 = _buffer(frame, 9, 4)
    a5, d5 = _buffer(frame, 9, 5)
    r0, _ = _buffer(frame, 14, 0)
    r1, _ = _buffer(frame, 14, 1)
    col_ptr, rows, slots = _i32(a0, (d0[0],)), _i32(a1, (d1[0],)), _i32(a2, (d1[0],))
    z, phi, dp = _f32(a3, (d3[0], d3[1])), _f32(a4, (d4[0], d4[1])), _f32(a5, (d5[0] * d5[1],))
    dz, dphi = _f32(r0, (d3[0], d3[1])), _f32(r1, (d4[0], d4[1]))
    n_threads = _n_threads(frame, 6)
    if n_threads > 1:
        k.mixture_backward_parallel(col_ptr, rows, slots, z, phi, dp, dz, dphi, n_threads)
    else:
        dz[:] = 0.0
        k.mixture_backward(col_ptr, rows, slots, z, phi, dp, 0, d0[0] - 1, dz, dphi)
    k.restore_fp_mode(saved)
    return 0


# --- The fused step's handlers (``bindvae.kernels.fused``) ---------------------------------------------
# The Adam handlers' parameter and moment results alias their arguments (``input_output_aliases``),
# so they are updated in place; should XLA ever hand over distinct buffers, the arguments are copied
# into the results first.


@numba.njit(inline="always")
def _same_or_copy(src, dst, shape):  # pragma: no cover - compiled
    # src, dst: buffer addresses of an argument and the result that aliases it.
    if src != dst:
        _f32(dst, shape)[:] = _f32(src, shape)


def exp_transposed_handler(frame):  # pragma: no cover - compiled
    if _not_execute(frame):
        return 0
    saved = k.xla_fp_mode()
    a0, d0 = _buffer(frame, 9, 0)
    r0, _ = _buffer(frame, 14, 0)
    r1, _ = _buffer(frame, 14, 1)
    r2, _ = _buffer(frame, 14, 2)
    theta, out = _f32(a0, (d0[0], d0[1])), _f32(r0, (d0[1], d0[0]))  # argument 1 aliases out; unread
    row_sum = np.zeros(d0[0], np.float64)
    n_bad = np.zeros(1, np.int64)
    n_threads = _n_threads(frame, 2)
    if n_threads > 1:
        fk.exp_transposed_parallel(theta, out, row_sum, n_bad, n_threads)
    else:
        fk.exp_transposed(theta, out, row_sum, n_bad)
    sums = _f32(r1, (d0[0],))
    for m in range(d0[0]):
        sums[m] = row_sum[m]
    _f32(r2, (1,))[0] = n_bad[0]
    k.restore_fp_mode(saved)
    return 0


def mixture_value_and_dz_handler(frame):  # pragma: no cover - compiled
    if _not_execute(frame):
        return 0
    saved = k.xla_fp_mode()
    a0, d0 = _buffer(frame, 9, 0)
    a1, d1 = _buffer(frame, 9, 1)
    a2, _ = _buffer(frame, 9, 2)
    a3, _ = _buffer(frame, 9, 3)
    a4, d4 = _buffer(frame, 9, 4)
    a5, d5 = _buffer(frame, 9, 5)
    a6, _ = _buffer(frame, 9, 6)
    r0, e0 = _buffer(frame, 14, 0)
    r1, _ = _buffer(frame, 14, 1)
    r2, _ = _buffer(frame, 14, 2)
    col_ptr, rows, slots = _i32(a0, (d0[0],)), _i32(a1, (d1[0],)), _i32(a2, (d1[0],))
    values, zs, phi_t = _f32(a3, (d1[0],)), _f32(a4, (d4[0], d4[1])), _f32(a5, (d5[0], d5[1]))
    factor = _f32(a6, (1,))[0]
    p, dp, dz = _f32(r0, (e0[0] * e0[1],)), _f32(r1, (e0[0] * e0[1],)), _f32(r2, (d4[0], d4[1]))
    p[:] = 1.0  # padding slots: p = 1 (log p = 0), dp = 0
    dp[:] = 0.0
    n_threads = _n_threads(frame, 7)
    if n_threads > 1:
        fk.mixture_value_and_dz_parallel(col_ptr, rows, slots, values, zs, phi_t, factor, p, dp, dz, n_threads)
    else:
        dz[:] = 0.0
        fk.mixture_value_and_dz(col_ptr, rows, slots, values, zs, phi_t, factor, 0, d0[0] - 1, p, dp, dz)
    k.restore_fp_mode(saved)
    return 0


def adam_first_layer_handler(frame):  # pragma: no cover - compiled
    if _not_execute(frame):
        return 0
    saved = k.xla_fp_mode()
    a0, d0 = _buffer(frame, 9, 0)
    a1, d1 = _buffer(frame, 9, 1)
    a2, _ = _buffer(frame, 9, 2)
    a3, d3 = _buffer(frame, 9, 3)
    a4, d4 = _buffer(frame, 9, 4)
    a5, _ = _buffer(frame, 9, 5)
    a6, _ = _buffer(frame, 9, 6)
    a7, d7 = _buffer(frame, 9, 7)
    r0, _ = _buffer(frame, 14, 0)
    r1, _ = _buffer(frame, 14, 1)
    r2, _ = _buffer(frame, 14, 2)
    r3, _ = _buffer(frame, 14, 3)
    col_ptr, rows, values = _i32(a0, (d0[0],)), _i32(a1, (d1[0],)), _f32(a2, (d1[0],))
    dh1, hyper = _f32(a3, (d3[0], d3[1])), _f32(a7, (d7[0],))
    shape = (d4[0], d4[1])
    _same_or_copy(a4, r0, shape)
    _same_or_copy(a5, r1, shape)
    _same_or_copy(a6, r2, shape)
    w1, mu, nu = _f32(r0, shape), _f32(r1, shape), _f32(r2, shape)
    sq = np.zeros(1, np.float64)
    n_threads = _n_threads(frame, 8)
    if n_threads > 1:
        fk.adam_first_layer_parallel(col_ptr, rows, values, dh1, w1, mu, nu, hyper, sq, n_threads)
    else:
        fk.adam_first_layer(col_ptr, rows, values, dh1, w1, mu, nu, hyper, 0, d0[0] - 1, sq)
    _f32(r3, (1,))[0] = sq[0]
    k.restore_fp_mode(saved)
    return 0


def adam_theta_handler(frame):  # pragma: no cover - compiled
    if _not_execute(frame):
        return 0
    saved = k.xla_fp_mode()
    a0, d0 = _buffer(frame, 9, 0)
    a1, d1 = _buffer(frame, 9, 1)
    a2, _ = _buffer(frame, 9, 2)
    a3, d3 = _buffer(frame, 9, 3)
    a4, d4 = _buffer(frame, 9, 4)
    a5, _ = _buffer(frame, 9, 5)
    a6, d6 = _buffer(frame, 9, 6)
    a7, _ = _buffer(frame, 9, 7)
    a8, _ = _buffer(frame, 9, 8)
    a9, _ = _buffer(frame, 9, 9)
    a10, _ = _buffer(frame, 9, 10)
    a11, d11 = _buffer(frame, 9, 11)
    r0, _ = _buffer(frame, 14, 0)
    r1, _ = _buffer(frame, 14, 1)
    r2, _ = _buffer(frame, 14, 2)
    r3, _ = _buffer(frame, 14, 3)
    col_ptr, rows, slots = _i32(a0, (d0[0],)), _i32(a1, (d1[0],)), _i32(a2, (d1[0],))
    shape = (d4[1], d4[0])  # theta [M, D]; phi_t is [D, M]
    z, phi_t, scale = _f32(a3, (d3[0], d3[1])), _f32(a4, (d4[0], d4[1])), _f32(a5, (d4[1],))
    dp, s, hyper = _f32(a6, (d6[0] * d6[1],)), _f32(a7, (d4[1],)), _f32(a11, (d11[0],))
    _same_or_copy(a8, r0, shape)
    _same_or_copy(a9, r1, shape)
    _same_or_copy(a10, r2, shape)
    theta, mu, nu = _f32(r0, shape), _f32(r1, shape), _f32(r2, shape)
    sq = np.zeros(1, np.float64)
    n_threads = _n_threads(frame, 12)
    if n_threads > 1:
        fk.adam_theta_parallel(col_ptr, rows, slots, z, phi_t, scale, dp, s, theta, mu, nu, hyper, sq, n_threads)
    else:
        fk.adam_theta(col_ptr, rows, slots, z, phi_t, scale, dp, s, theta, mu, nu, hyper, 0, d0[0] - 1, sq)
    _f32(r3, (1,))[0] = sq[0]
    k.restore_fp_mode(saved)
    return 0


# XLA target name -> the handler's Python source (compiled by bindvae.kernels._cache.load_handlers).
HANDLERS = {
    "bindvae_column_order": column_order_handler,
    "bindvae_first_layer_forward": first_layer_forward_handler,
    "bindvae_first_layer_backward": first_layer_backward_handler,
    "bindvae_mixture_forward": mixture_forward_handler,
    "bindvae_mixture_backward": mixture_backward_handler,
    "bindvae_exp_transposed": exp_transposed_handler,
    "bindvae_mixture_value_and_dz": mixture_value_and_dz_handler,
    "bindvae_adam_first_layer": adam_first_layer_handler,
    "bindvae_adam_theta": adam_theta_handler,
}
