"""Numba kernels of the CPU sparse training path (see ``bindvae.kernels.sparse_ops``).

A padded batch (indices, counts [B, K]) is first sorted by k-mer into column order (CSC): for
column j, entries ``col_ptr[j] .. col_ptr[j + 1]`` of ``rows``/``slots``/``values`` give the batch
row, the flat slot ``b * K + k`` and the count of each occurrence. Every kernel then walks a range
of columns in order, so the big [D, H] and [M, D] arrays are read and written in long sequential
runs instead of one random row per nonzero, and each thread owns a disjoint column range (no
write races). XLA calls them through its FFI (``bindvae.kernels._sparse_ffi``).

The FFI handlers are cached keyed on the sources of this module, ``_fused_kernels.py`` and ``_sparse_ffi.py``
(``bindvae.kernels._cache``): after editing a kernel here the next run compiles them again.
"""

from __future__ import annotations

import platform

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

# Columns per tile of the [M, D] decoder arrays: 64 float32 = 4 cache lines per topic row, so a
# tile of M = 100 rows (25 KB) stays in L1/L2 while its columns are used.
TILE = 64
# Columns per tile where a kernel walks theta's [M, D] rows and a [D, M] array's columns together
# (theta's Adam update, the transposed softmax): long runs of each topic row keep the hardware
# prefetcher on every stream, and the tile buffer's rows are padded by PAD floats so that walking
# its columns does not hit one cache set (a 4 KB stride). Measured on 2 cores, [100, 112,800]:
# theta's Adam 41 ms with 64-column tiles, 20 ms with 512-1024 padded; a transposing copy
# 12.5 ms with 64, 4-7 ms with 512.
WIDE_TILE = 512
PAD = 16


@intrinsic
def _fmax(typingctx, a, b):  # pragma: no cover - compiled
    # llvm.maxnum on float32: LLVM vectorizes it as a reduction, where max() compiles to a branch.
    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        return builder.call(
            builder.module.declare_intrinsic("llvm.maxnum", [f32], ir.FunctionType(f32, [f32, f32])), args
        )

    return types.float32(types.float32, types.float32), codegen


@intrinsic
def _from_bits(typingctx, bits):  # pragma: no cover - compiled
    # The float32 whose bit pattern is the int32 ``bits``.
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@intrinsic
def _to_bits(typingctx, x):  # pragma: no cover - compiled
    # The bit pattern of float32 ``x`` as an int32.
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


# --- One floating-point mode on every thread ------------------------------------------------------
# XLA computes with denormals flushed to zero (FTZ and DAZ set while it runs), but a thread's mode is
# its own: numba's pool threads keep the mode of the thread that started them, and XLA may call a
# handler from its own threads or from the caller's. A part of a kernel run on one thread or another
# then rounded a tiny product differently, and two identical runs drifted apart (rarely, in the last
# digit, then everywhere). So each handler, and each part of a parallel kernel, sets XLA's mode
# (x86 MXCSR: flush to zero, denormals are zero, round to nearest) and restores the thread's own
# when it is done. Elsewhere (no MXCSR) the mode is left as it is.
_MXCSR = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
_FLUSH_DENORMALS = 0x8040  # FTZ (bit 15) | DAZ (bit 6)
_ROUNDING = 0x6000  # bits 13-14; 0 = round to nearest


def _mxcsr_call(builder, context, name, slot):
    ptr = context.get_value_type(types.voidptr)
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [ptr]), name)
    builder.call(fn, [builder.bitcast(slot, ptr)])


@intrinsic
def _get_fp_mode(typingctx):  # pragma: no cover - compiled
    # This thread's MXCSR (0 where there is none).
    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        if not _MXCSR:
            return ir.Constant(i32, 0)
        slot = cgutils.alloca_once(builder, i32)
        _mxcsr_call(builder, context, "llvm.x86.sse.stmxcsr", slot)
        return builder.load(slot)

    return types.int32(), codegen


@intrinsic
def _set_fp_mode(typingctx, mode):  # pragma: no cover - compiled
    # Load ``mode`` into this thread's MXCSR (nothing where there is none).
    def codegen(context, builder, signature, args):
        if _MXCSR:
            slot = cgutils.alloca_once_value(builder, args[0])
            _mxcsr_call(builder, context, "llvm.x86.sse.ldmxcsr", slot)
        return context.get_dummy_value()

    return types.none(types.int32), codegen


@numba.njit(inline="always")
def xla_fp_mode():  # pragma: no cover - compiled
    """Set XLA's floating-point mode on this thread; returns the mode to restore."""
    saved = _get_fp_mode()
    _set_fp_mode((saved & ~_ROUNDING) | _FLUSH_DENORMALS)
    return saved


@numba.njit(inline="always")
def restore_fp_mode(saved):  # pragma: no cover - compiled
    _set_fp_mode(saved)


@numba.njit(inline="always", fastmath=True)
def _exp_nonpositive(x):  # pragma: no cover - compiled
    # e^x in float32 for x <= 0, vectorizable (numba's np.exp is a scalar libm call): x = n ln 2 + r
    # with |r| <= ln 2 / 2, e^r by Cephes' expf polynomial, 2^n put into the exponent bits
    # (within ~2 ulp of e^x). Below -87 (where float32 leaves normal numbers) the result is 0.
    xc = _fmax(x, np.float32(-87.0))
    n = np.floor(xc * np.float32(1.4426950408889634) + np.float32(0.5))
    r = xc - n * np.float32(0.693359375) - n * np.float32(-2.12194440e-4)
    q = np.float32(1.9875691500e-4)
    q = q * r + np.float32(1.3981999507e-3)
    q = q * r + np.float32(8.3334519073e-3)
    q = q * r + np.float32(4.1665795894e-2)
    q = q * r + np.float32(1.6666665459e-1)
    q = q * r + np.float32(5.0000001201e-1)
    y = (q * r * r + r + np.float32(1.0)) * _from_bits((np.int32(n) + np.int32(127)) << 23)
    return y if x >= np.float32(-87.0) else np.float32(0.0)


def _serial(body):
    # The single-threaded kernel called by the FFI handlers (compiled once, cached).
    return numba.njit(cache=True, nogil=True, fastmath=True)(body)


def _inline(body):
    # The same body inlined into a parallel kernel's prange loop: compiled there, LLVM may assume
    # its arrays do not alias and vectorizes the inner loops (measured: Adam over W1 55 -> 24 ms
    # on 2 cores when inlined, against calling the compiled serial kernel per thread).
    return numba.njit(inline="always", fastmath=True)(body)


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


def _first_layer_forward(col_ptr, rows, values, w1, j0, j1, out):  # pragma: no cover - compiled
    # out[b] += sum over columns j in [j0, j1) of count(b, j) * w1[j]; out [B, H] is this thread's.
    hidden = w1.shape[1]
    for j in range(j0, j1):
        for e in range(col_ptr[j], col_ptr[j + 1]):
            b = rows[e]
            c = values[e]
            for h in range(hidden):
                out[b, h] += c * w1[j, h]

first_layer_forward = _serial(_first_layer_forward)
_first_layer_forward_inline = _inline(_first_layer_forward)


def _first_layer_backward(col_ptr, rows, values, dh1, j0, j1, dw1):  # pragma: no cover - compiled
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

first_layer_backward = _serial(_first_layer_backward)
_first_layer_backward_inline = _inline(_first_layer_backward)


def _mixture_forward(col_ptr, rows, slots, z, phi, j0, j1, p):  # pragma: no cover - compiled
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
                acc = np.float32(0.0)  # a float64 accumulator halves the speed of this loop
                for m in range(n_topics):
                    acc += z[b, m] * tile[t, m]
                p[slots[e]] = acc

mixture_forward = _serial(_mixture_forward)
_mixture_forward_inline = _inline(_mixture_forward)


def _mixture_backward(col_ptr, rows, slots, z, phi, dp, j0, j1, dz, dphi):  # pragma: no cover - compiled
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

mixture_backward = _serial(_mixture_backward)
_mixture_backward_inline = _inline(_mixture_backward)


# --- The same kernels on numba's thread pool (parallel=True) ---------------------------------
# Each thread takes one column range (balanced by entries for the forward kernels, by columns for
# the backward ones, which write every column); per-thread [B, .] accumulators are summed at the
# end. ``n_parts`` is the thread count (numba.get_num_threads() would make the kernels uncacheable).
# Used only under a thread-safe threading layer (OpenMP or TBB; see bindvae.kernels.sparse_ops).


@numba.njit(inline="always")
def _entry_bounds(col_ptr, n_parts):  # pragma: no cover - compiled
    n_kmers = len(col_ptr) - 1
    bounds = np.empty(n_parts + 1, np.int64)
    bounds[0], bounds[n_parts] = 0, n_kmers
    for t in range(1, n_parts):
        bounds[t] = max(bounds[t - 1], min(n_kmers, np.searchsorted(col_ptr, col_ptr[n_kmers] * t // n_parts)))
    return bounds


@numba.njit(inline="always")
def _column_bounds(n_kmers, n_parts):  # pragma: no cover - compiled
    bounds = np.empty(n_parts + 1, np.int64)
    for t in range(n_parts + 1):
        bounds[t] = n_kmers * t // n_parts
    return bounds


@numba.njit(cache=True, parallel=True)
def column_order_parallel(
    indices, counts, n_kmers, col_ptr, rows, slots, values, n_parts
):  # pragma: no cover - compiled
    # column_order with each thread counting, then placing, the nonzeros of its own block of rows:
    # thread t's entries of column j go after those of threads < t, so every column still lists
    # its rows in increasing order (the serial kernel's result, exactly).
    n_batch, width = indices.shape
    block = (n_batch + n_parts - 1) // n_parts
    seen = np.zeros((n_parts, n_kmers), np.int32)
    for t in numba.prange(n_parts):
        for b in range(t * block, min(n_batch, (t + 1) * block)):
            for k in range(width):
                j = indices[b, k]
                if counts[b, k] != 0 and 0 <= j < n_kmers:
                    seen[t, j] += 1
    col_ptr[0] = 0
    for j in range(n_kmers):  # seen[t, j] becomes thread t's first slot in column j
        total = col_ptr[j]
        for t in range(n_parts):
            c = seen[t, j]
            seen[t, j] = total
            total += c
        col_ptr[j + 1] = total
    for t in numba.prange(n_parts):
        fill = seen[t]
        for b in range(t * block, min(n_batch, (t + 1) * block)):
            for k in range(width):
                j = indices[b, k]
                if counts[b, k] != 0 and 0 <= j < n_kmers:
                    e = fill[j]
                    fill[j] = e + 1
                    rows[e] = b
                    slots[e] = b * width + k
                    values[e] = counts[b, k]


@numba.njit(cache=True, parallel=True, fastmath=True)
def first_layer_forward_parallel(col_ptr, rows, values, w1, out, n_parts):  # pragma: no cover - compiled
    bounds = _entry_bounds(col_ptr, n_parts)
    parts = np.zeros((n_parts,) + out.shape, out.dtype)
    for t in numba.prange(n_parts):
        saved = xla_fp_mode()
        _first_layer_forward_inline(col_ptr, rows, values, w1, bounds[t], bounds[t + 1], parts[t])
        restore_fp_mode(saved)
    out[:] = parts.sum(axis=0)


@numba.njit(cache=True, parallel=True, fastmath=True)
def first_layer_backward_parallel(col_ptr, rows, values, dh1, dw1, n_parts):  # pragma: no cover - compiled
    bounds = _column_bounds(dw1.shape[0], n_parts)
    for t in numba.prange(n_parts):
        saved = xla_fp_mode()
        _first_layer_backward_inline(col_ptr, rows, values, dh1, bounds[t], bounds[t + 1], dw1)
        restore_fp_mode(saved)


@numba.njit(cache=True, parallel=True, fastmath=True)
def mixture_forward_parallel(col_ptr, rows, slots, z, phi, p, n_parts):  # pragma: no cover - compiled
    bounds = _entry_bounds(col_ptr, n_parts)
    for t in numba.prange(n_parts):
        saved = xla_fp_mode()
        _mixture_forward_inline(col_ptr, rows, slots, z, phi, bounds[t], bounds[t + 1], p)
        restore_fp_mode(saved)


@numba.njit(cache=True, parallel=True, fastmath=True)
def mixture_backward_parallel(col_ptr, rows, slots, z, phi, dp, dz, dphi, n_parts):  # pragma: no cover - compiled
    bounds = _column_bounds(phi.shape[1], n_parts)
    parts = np.zeros((n_parts,) + dz.shape, dz.dtype)
    for t in numba.prange(n_parts):
        saved = xla_fp_mode()
        _mixture_backward_inline(col_ptr, rows, slots, z, phi, dp, bounds[t], bounds[t + 1], parts[t], dphi)
        restore_fp_mode(saved)
    dz[:] = parts.sum(axis=0)
