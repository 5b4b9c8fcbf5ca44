"""Numba kernels of the CPU sparse training path (see ``bindvae.sparse_ops``).

A padded batch (indices, counts [B, K]) is first sorted by k-mer into column order (CSC): for
column j, entries ``col_ptr[j] .. col_ptr[j + 1]`` of ``rows``/``slots``/``values`` give the batch
row, the flat slot ``b * K + k`` and the count of each occurrence. Every kernel then walks a range
of columns in order, so the big [D, H] and [M, D] arrays are read and written in long sequential
runs instead of one random row per nonzero, and each thread owns a disjoint column range (no
write races). The kernels run single-threaded inside XLA's own executor (numba's ``parallel=True``
threading layer aborts when two threads enter a parallel kernel at once, which XLA may do).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import carray, types
from numba.extending import intrinsic

# Columns per tile of the [M, D] decoder arrays: 64 float32 = 4 cache lines per topic row, so a
# tile of M = 100 rows (25 KB) stays in L1/L2 while its columns are used.
TILE = 64


@numba.njit(cache=True, nogil=True)
def column_order(indices, counts, n_kmers, col_ptr, rows, slots, values):  # pragma: no cover - compiled
    # Counting sort of the nonzero slots of a padded batch by k-mer id (padding: count 0, skipped).
    n_batch, width = indices.shape
    col_ptr[:] = 0
    # Slots with count 0 (padding) or an id outside [0, n_kmers) are dropped, never written out of bounds.
    for b in range(n_batch):
        for k in range(width):
            if counts[b, k] != 0 and 0 <= indices[b, k] < n_kmers:
                col_ptr[indices[b, k] + 1] += 1
    for j in range(n_kmers):
        col_ptr[j + 1] += col_ptr[j]
    fill = col_ptr[:-1].copy()
    for b in range(n_batch):
        for k in range(width):
            if counts[b, k] != 0 and 0 <= indices[b, k] < n_kmers:
                j = indices[b, k]
                e = fill[j]
                fill[j] = e + 1
                rows[e] = b
                slots[e] = b * width + k
                values[e] = counts[b, k]


@numba.njit(cache=True, nogil=True, fastmath=True)
def first_layer_forward(col_ptr, rows, values, w1, j0, j1, out):  # pragma: no cover - compiled
    # out[b] += sum over columns j in [j0, j1) of count(b, j) * w1[j]; out [B, H] is this thread's.
    hidden = w1.shape[1]
    for j in range(j0, j1):
        for e in range(col_ptr[j], col_ptr[j + 1]):
            b = rows[e]
            c = values[e]
            for h in range(hidden):
                out[b, h] += c * w1[j, h]


@numba.njit(cache=True, nogil=True, fastmath=True)
def first_layer_backward(col_ptr, rows, values, dh1, j0, j1, dw1):  # pragma: no cover - compiled
    # dw1[j] = sum_b count(b, j) * dh1[b] for j in [j0, j1); untouched rows are written as 0.
    hidden = dh1.shape[1]
    for j in range(j0, j1):
        for h in range(hidden):
            dw1[j, h] = 0.0
        for e in range(col_ptr[j], col_ptr[j + 1]):
            b = rows[e]
            c = values[e]
            for h in range(hidden):
                dw1[j, h] += c * dh1[b, h]


@numba.njit(cache=True, nogil=True, fastmath=True)
def mixture_forward(col_ptr, rows, slots, z, phi, j0, j1, p):  # pragma: no cover - compiled
    # p[slot] = sum_m z[b, m] phi[m, j] for each nonzero (b, j), j in [j0, j1).
    n_topics = phi.shape[0]
    tile = np.empty((TILE, n_topics), phi.dtype)
    for t0 in range(j0, j1, TILE):
        nt = min(TILE, j1 - t0)
        for m in range(n_topics):
            for t in range(nt):
                tile[t, m] = phi[m, t0 + t]
        for t in range(nt):
            j = t0 + t
            for e in range(col_ptr[j], col_ptr[j + 1]):
                b = rows[e]
                acc = 0.0
                for m in range(n_topics):
                    acc += z[b, m] * tile[t, m]
                p[slots[e]] = acc


@numba.njit(cache=True, nogil=True, fastmath=True)
def mixture_backward(col_ptr, rows, slots, z, phi, dp, j0, j1, dz, dphi):  # pragma: no cover - compiled
    # dphi[m, j] = sum_e dp[slot_e] z[b_e, m] (every column of [j0, j1) written);
    # dz[b, m] += sum_e dp[slot_e] phi[m, j] into this thread's dz [B, M].
    n_topics = phi.shape[0]
    tile = np.empty((TILE, n_topics), phi.dtype)
    grad = np.empty((TILE, n_topics), phi.dtype)
    for t0 in range(j0, j1, TILE):
        nt = min(TILE, j1 - t0)
        for m in range(n_topics):
            for t in range(nt):
                tile[t, m] = phi[m, t0 + t]
        grad[:nt] = 0.0
        for t in range(nt):
            j = t0 + t
            for e in range(col_ptr[j], col_ptr[j + 1]):
                b = rows[e]
                g = dp[slots[e]]
                for m in range(n_topics):
                    grad[t, m] += g * z[b, m]
                    dz[b, m] += g * tile[t, m]
        for m in range(n_topics):
            for t in range(nt):
                dphi[m, t0 + t] = grad[t, m]


# --- XLA FFI handlers -------------------------------------------------------------------------
# Each kernel is exposed to XLA:CPU as a typed-FFI handler (``XLA_FFI_Error* handler(XLA_FFI_CallFrame*)``)
# compiled by numba, so XLA hands the kernels its own buffers: no copy of W1 [D, H] or phi [M, D]
# in or of their gradients out (``jax.pure_callback`` copies every argument and result, ~20 ms
# per 100 MB). Word offsets below follow xla/ffi/api/c_api.h (FFI API 0.3, shipped in jaxlib):
# CallFrame: [1] extension_start, [4] stage, [9] args.args, [14] rets.rets (void** of XLA_FFI_Buffer*);
# XLA_FFI_Buffer: [3] data, [4] rank, [5] dims. A call frame whose extension is the metadata
# extension asks for the handler's FFI version, which is written back instead of running.

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
_HANDLER = types.int64(types.CPointer(types.int64))


@numba.cfunc(_HANDLER, cache=True)
def column_order_handler(frame):  # pragma: no cover - compiled
    if _not_execute(frame):
        return 0
    a0, d0 = _buffer(frame, 9, 0)
    a1, _ = _buffer(frame, 9, 1)
    r0, e0 = _buffer(frame, 14, 0)
    r1, e1 = _buffer(frame, 14, 1)
    r2, _ = _buffer(frame, 14, 2)
    r3, _ = _buffer(frame, 14, 3)
    shape = (d0[0], d0[1])
    n_kmers = e0[0] - 1
    rows, slots, values = _i32(r1, (e1[0],)), _i32(r2, (e1[0],)), _f32(r3, (e1[0],))
    rows[:] = 0
    slots[:] = 0
    values[:] = 0.0
    column_order(_i32(a0, shape), _f32(a1, shape), n_kmers, _i32(r0, (e0[0],)), rows, slots, values)
    return 0


@numba.cfunc(_HANDLER, cache=True)
def first_layer_forward_handler(frame):  # pragma: no cover - compiled
    if _not_execute(frame):
        return 0
    a0, d0 = _buffer(frame, 9, 0)
    a1, d1 = _buffer(frame, 9, 1)
    a2, _ = _buffer(frame, 9, 2)
    a3, d3 = _buffer(frame, 9, 3)
    r0, e0 = _buffer(frame, 14, 0)
    out = _f32(r0, (e0[0], e0[1]))
    out[:] = 0.0
    first_layer_forward(_i32(a0, (d0[0],)), _i32(a1, (d1[0],)), _f32(a2, (d1[0],)), _f32(a3, (d3[0], d3[1])),
                        0, d0[0] - 1, out)
    return 0


@numba.cfunc(_HANDLER, cache=True)
def first_layer_backward_handler(frame):  # pragma: no cover - compiled
    if _not_execute(frame):
        return 0
    a0, d0 = _buffer(frame, 9, 0)
    a1, d1 = _buffer(frame, 9, 1)
    a2, _ = _buffer(frame, 9, 2)
    a3, d3 = _buffer(frame, 9, 3)
    r0, e0 = _buffer(frame, 14, 0)
    first_layer_backward(_i32(a0, (d0[0],)), _i32(a1, (d1[0],)), _f32(a2, (d1[0],)), _f32(a3, (d3[0], d3[1])),
                         0, d0[0] - 1, _f32(r0, (e0[0], e0[1])))
    return 0


@numba.cfunc(_HANDLER, cache=True)
def mixture_forward_handler(frame):  # pragma: no cover - compiled
    if _not_execute(frame):
        return 0
    a0, d0 = _buffer(frame, 9, 0)
    a1, d1 = _buffer(frame, 9, 1)
    a2, _ = _buffer(frame, 9, 2)
    a3, d3 = _buffer(frame, 9, 3)
    a4, d4 = _buffer(frame, 9, 4)
    r0, e0 = _buffer(frame, 14, 0)
    p = _f32(r0, (e0[0] * e0[1],))
    p[:] = 1.0  # padding slots: p = 1, log p = 0
    mixture_forward(_i32(a0, (d0[0],)), _i32(a1, (d1[0],)), _i32(a2, (d1[0],)), _f32(a3, (d3[0], d3[1])),
                    _f32(a4, (d4[0], d4[1])), 0, d0[0] - 1, p)
    return 0


@numba.cfunc(_HANDLER, cache=True)
def mixture_backward_handler(frame):  # pragma: no cover - compiled
    if _not_execute(frame):
        return 0
    a0, d0 = _buffer(frame, 9, 0)
    a1, d1 = _buffer(frame, 9, 1)
    a2, _ = _buffer(frame, 9, 2)
    a3, d3 = _buffer(frame, 9, 3)
    a4, d4 = _buffer(frame, 9, 4)
    a5, d5 = _buffer(frame, 9, 5)
    r0, _ = _buffer(frame, 14, 0)
    r1, _ = _buffer(frame, 14, 1)
    dz = _f32(r0, (d3[0], d3[1]))
    dz[:] = 0.0
    mixture_backward(_i32(a0, (d0[0],)), _i32(a1, (d1[0],)), _i32(a2, (d1[0],)), _f32(a3, (d3[0], d3[1])),
                     _f32(a4, (d4[0], d4[1])), _f32(a5, (d5[0] * d5[1],)), 0, d0[0] - 1, dz, _f32(r1, (d4[0], d4[1])))
    return 0


HANDLERS = {
    "bindvae_column_order": column_order_handler,
    "bindvae_first_layer_forward": first_layer_forward_handler,
    "bindvae_first_layer_backward": first_layer_backward_handler,
    "bindvae_mixture_forward": mixture_forward_handler,
    "bindvae_mixture_backward": mixture_backward_handler,
}
