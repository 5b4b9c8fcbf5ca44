"""Numba kernels of the CPU sparse training path (see ``bindvae.sparse_ops``).

A padded batch (indices, counts [B, K]) is first sorted by k-mer into column order (CSC): for
column j, entries ``col_ptr[j] .. col_ptr[j + 1]`` of ``rows``/``slots``/``values`` give the batch
row, the flat slot ``b * K + k`` and the count of each occurrence. Every kernel then walks a range
of columns in order, so the big [D, H] and [M, D] arrays are read and written in long sequential
runs instead of one random row per nonzero, and each thread owns a disjoint column range (no
write races). XLA calls them through its FFI (``bindvae._sparse_ffi``).

The FFI handlers are cached keyed on the sources of this module and ``_sparse_ffi.py``
(``bindvae._kernel_cache``): after editing a kernel here the next run compiles them again.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
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
        return builder.call(builder.module.declare_intrinsic("llvm.maxnum", [f32], ir.FunctionType(f32, [f32, f32])), args)

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
# Used only under a thread-safe threading layer (OpenMP or TBB; see bindvae.sparse_ops).


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
def column_order_parallel(indices, counts, n_kmers, col_ptr, rows, slots, values, n_parts):  # pragma: no cover - compiled
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
        _first_layer_forward_inline(col_ptr, rows, values, w1, bounds[t], bounds[t + 1], parts[t])
    out[:] = parts.sum(axis=0)


@numba.njit(cache=True, parallel=True, fastmath=True)
def first_layer_backward_parallel(col_ptr, rows, values, dh1, dw1, n_parts):  # pragma: no cover - compiled
    bounds = _column_bounds(dw1.shape[0], n_parts)
    for t in numba.prange(n_parts):
        _first_layer_backward_inline(col_ptr, rows, values, dh1, bounds[t], bounds[t + 1], dw1)


@numba.njit(cache=True, parallel=True, fastmath=True)
def mixture_forward_parallel(col_ptr, rows, slots, z, phi, p, n_parts):  # pragma: no cover - compiled
    bounds = _entry_bounds(col_ptr, n_parts)
    for t in numba.prange(n_parts):
        _mixture_forward_inline(col_ptr, rows, slots, z, phi, bounds[t], bounds[t + 1], p)


@numba.njit(cache=True, parallel=True, fastmath=True)
def mixture_backward_parallel(col_ptr, rows, slots, z, phi, dp, dz, dphi, n_parts):  # pragma: no cover - compiled
    bounds = _column_bounds(phi.shape[1], n_parts)
    parts = np.zeros((n_parts,) + dz.shape, dz.dtype)
    for t in numba.prange(n_parts):
        _mixture_backward_inline(col_ptr, rows, slots, z, phi, dp, bounds[t], bounds[t + 1], parts[t], dphi)
    dz[:] = parts.sum(axis=0)


# --- The fused step (``bindvae.fused``): gradients of W1 and theta consumed by Adam in place ----
# dW1 [D, H] and dtheta [M, D] are never written: the mixture's kernel hands back only what the
# rest of the step needs (p, its gradient dp and dz), and the Adam kernels rebuild each row (W1) or column tile (theta)
# of the gradient from the batch's nonzeros, add its squares to the gradient's norm and update
# the parameter and both moments of that row or tile at once. ``hyper`` is float32
# [ok, lr, 1 - b1, b1, 1 - b2, b2, eps, bias correction 1, bias correction 2]; ok = 0 leaves
# everything as it was (a skipped, non-finite step). The softmax over theta (``exp_transposed``)
# writes phi^T unnormalised; the other kernels take it with a per-topic scale.


def _mixture_value_and_dz(col_ptr, rows, slots, values, zs, phi_t, factor, j0, j1, p, dp, dz):  # pragma: no cover - compiled
    # For each nonzero (b, j), j in [j0, j1), in one walk: p[slot] = zs[b] . phi_t[j], the mixture;
    # dp[slot] = factor * count / p (0 where p is not above float32's smallest normal), the
    # gradient there; dz[b] += dp[slot] phi_t[j] into this thread's dz [B, M]. phi_t [D, M].
    n_topics = phi_t.shape[1]
    tiny = np.float32(1.17549435e-38)
    for j in range(j0, j1):
        for e in range(col_ptr[j], col_ptr[j + 1]):
            b = rows[e]
            acc = np.float32(0.0)  # a float64 accumulator halves the speed of this loop
            for m in range(n_topics):
                acc += zs[b, m] * phi_t[j, m]
            d = factor * values[e] / acc if acc > tiny else np.float32(0.0)
            p[slots[e]] = acc
            dp[slots[e]] = d
            for m in range(n_topics):
                dz[b, m] += d * phi_t[j, m]


def _row_max(theta, j0, j1, row_max, n_bad):  # pragma: no cover - compiled
    # row_max[m] = max of theta[m, j0:j1]; n_bad[0] += the count of inf/NaN entries there (an
    # exponent of all ones, tested on the integer bits, so that fast-math cannot drop the test).
    n_topics = theta.shape[0]
    bad = 0
    for m in range(n_topics):
        top = np.float32(-3.0e38)
        for j in range(j0, j1):
            v = theta[m, j]
            top = _fmax(top, v)
            bad += (_to_bits(v) & 0x7F800000) == 0x7F800000
        row_max[m] = top
    n_bad[0] += bad


def _exp_transposed(theta, row_max, j0, j1, out, row_sum):  # pragma: no cover - compiled
    # out[j, m] = e^(theta[m, j] - row_max[m]) for j in [j0, j1), and row_sum[m] += their sum
    # (float64 across tiles). Per tile: the exponentials row by row into a padded buffer, then
    # written out transposed, in order.
    n_topics = theta.shape[0]
    buf = np.empty((n_topics, WIDE_TILE + PAD), np.float32)
    for t0 in range(j0, j1, WIDE_TILE):
        nt = min(WIDE_TILE, j1 - t0)
        for m in range(n_topics):
            top = row_max[m]
            part = np.float32(0.0)
            for t in range(nt):
                v = _exp_nonpositive(theta[m, t0 + t] - top)
                buf[m, t] = v
                part += v
            row_sum[m] += part
        for t in range(nt):
            for m in range(n_topics):
                out[t0 + t, m] = buf[m, t]


_row_max_inline = _inline(_row_max)
_exp_transposed_inline = _inline(_exp_transposed)


@numba.njit(cache=True, nogil=True, fastmath=True)
def exp_transposed(theta, out, row_sum, n_bad):  # pragma: no cover - compiled
    # out = e^(theta - max_j theta)^T [D, M] of theta [M, D], row_sum[m] = sum_j out[j, m] (zeroed
    # here); n_bad[0] += the number of non-finite entries of theta.
    row_max = np.empty(theta.shape[0], np.float32)
    _row_max_inline(theta, 0, theta.shape[1], row_max, n_bad)
    row_sum[:] = 0.0
    _exp_transposed_inline(theta, row_max, 0, theta.shape[1], out, row_sum)


mixture_value_and_dz = _serial(_mixture_value_and_dz)
_mixture_value_and_dz_inline = _inline(_mixture_value_and_dz)


@numba.njit(inline="always")
def _adam_row(p, mu, nu, g, hyper):  # pragma: no cover - compiled
    # optax.adam's arithmetic on 1-D runs p, mu, nu with gradient g, in place.
    lr, one_b1, b1, one_b2, b2, eps, bc1, bc2 = hyper[1], hyper[2], hyper[3], hyper[4], hyper[5], hyper[6], hyper[7], hyper[8]
    for i in range(p.shape[0]):
        gi = g[i]
        m = one_b1 * gi + b1 * mu[i]
        v = one_b2 * (gi * gi) + b2 * nu[i]
        mu[i] = m
        nu[i] = v
        p[i] = p[i] + (-lr) * ((m / bc1) / (np.sqrt(v / bc2) + eps))


def _adam_first_layer(col_ptr, rows, values, dh1, w1, mu, nu, hyper, j0, j1, sq):  # pragma: no cover - compiled
    # For each row j of [j0, j1): g = dW1[j] = sum_e count_e dh1[b_e], then Adam on w1[j], mu[j],
    # nu[j] (skipped when hyper[0] == 0); sq[0] += sum of g^2 (float64), the gradient's squared norm.
    hidden = w1.shape[1]
    g = np.empty(hidden, np.float32)
    total = 0.0
    for j in range(j0, j1):
        g[:] = 0.0
        for e in range(col_ptr[j], col_ptr[j + 1]):
            b = rows[e]
            c = values[e]
            for h in range(hidden):
                g[h] += c * dh1[b, h]
        row = np.float32(0.0)
        for h in range(hidden):
            row += g[h] * g[h]
        total += row
        if hyper[0] != 0.0:
            _adam_row(w1[j], mu[j], nu[j], g, hyper)
    sq[0] += total


adam_first_layer = _serial(_adam_first_layer)
_adam_first_layer_inline = _inline(_adam_first_layer)


def _adam_theta(col_ptr, rows, slots, z, phi_t, scale, dp, s, theta, mu, nu, hyper, j0, j1, sq):  # pragma: no cover - compiled
    # For each column tile of [j0, j1): dphi from the entries, dtheta = phi (dphi - s[m]) (the
    # softmax's backward, s[m] = sum_j phi dphi over all columns) with phi = phi_t * scale[m]
    # (phi_t unnormalised), then Adam on theta, mu, nu there (skipped when hyper[0] == 0);
    # sq[0] += sum of dtheta^2 (float64), the gradient's squared norm.
    n_topics = phi_t.shape[1]
    grad = np.empty((n_topics, WIDE_TILE + PAD), np.float32)
    col = np.empty(n_topics, np.float32)
    total = 0.0
    for t0 in range(j0, j1, WIDE_TILE):
        nt = min(WIDE_TILE, j1 - t0)
        for t in range(nt):
            j = t0 + t
            col[:] = 0.0
            for e in range(col_ptr[j], col_ptr[j + 1]):
                b = rows[e]
                g = dp[slots[e]]
                for m in range(n_topics):
                    col[m] += g * z[b, m]
            for m in range(n_topics):
                grad[m, t] = phi_t[j, m] * scale[m] * (col[m] - s[m])
        for m in range(n_topics):
            row = np.float32(0.0)
            for t in range(nt):
                row += grad[m, t] * grad[m, t]
            total += row
            if hyper[0] != 0.0:
                _adam_row(theta[m, t0 : t0 + nt], mu[m, t0 : t0 + nt], nu[m, t0 : t0 + nt], grad[m, :nt], hyper)
    sq[0] += total


adam_theta = _serial(_adam_theta)
_adam_theta_inline = _inline(_adam_theta)


@numba.njit(cache=True, parallel=True, fastmath=True)
def mixture_value_and_dz_parallel(col_ptr, rows, slots, values, zs, phi_t, factor, p, dp, dz, n_parts):  # pragma: no cover - compiled
    bounds = _entry_bounds(col_ptr, n_parts)
    parts = np.zeros((n_parts,) + dz.shape, dz.dtype)
    for t in numba.prange(n_parts):
        _mixture_value_and_dz_inline(col_ptr, rows, slots, values, zs, phi_t, factor, bounds[t], bounds[t + 1], p, dp, parts[t])
    dz[:] = parts.sum(axis=0)


@numba.njit(cache=True, parallel=True, fastmath=True)
def adam_first_layer_parallel(col_ptr, rows, values, dh1, w1, mu, nu, hyper, sq, n_parts):  # pragma: no cover - compiled
    bounds = _column_bounds(w1.shape[0], n_parts)
    parts = np.zeros((n_parts, 1), np.float64)
    for t in numba.prange(n_parts):
        _adam_first_layer_inline(col_ptr, rows, values, dh1, w1, mu, nu, hyper, bounds[t], bounds[t + 1], parts[t])
    sq[0] += parts.sum()


@numba.njit(cache=True, parallel=True, fastmath=True)
def adam_theta_parallel(col_ptr, rows, slots, z, phi_t, scale, dp, s, theta, mu, nu, hyper, sq, n_parts):  # pragma: no cover - compiled
    n_kmers = theta.shape[1]
    bounds = np.empty(n_parts + 1, np.int64)
    for t in range(n_parts + 1):  # tile-aligned column ranges
        bounds[t] = min(n_kmers, (n_kmers * t // n_parts + WIDE_TILE - 1) // WIDE_TILE * WIDE_TILE)
    bounds[n_parts] = n_kmers
    parts = np.zeros((n_parts, 1), np.float64)
    for t in numba.prange(n_parts):
        _adam_theta_inline(col_ptr, rows, slots, z, phi_t, scale, dp, s, theta, mu, nu, hyper, bounds[t], bounds[t + 1], parts[t])
    sq[0] += parts.sum()


@numba.njit(cache=True, parallel=True, fastmath=True)
def exp_transposed_parallel(theta, out, row_sum, n_bad, n_parts):  # pragma: no cover - compiled
    n_topics, n_kmers = theta.shape
    bounds = np.empty(n_parts + 1, np.int64)
    for t in range(n_parts + 1):  # tile-aligned column ranges
        bounds[t] = min(n_kmers, (n_kmers * t // n_parts + WIDE_TILE - 1) // WIDE_TILE * WIDE_TILE)
    bounds[n_parts] = n_kmers
    part_max = np.empty((n_parts, n_topics), np.float32)
    part_bad = np.zeros((n_parts, 1), np.int64)
    for t in numba.prange(n_parts):
        _row_max_inline(theta, bounds[t], bounds[t + 1], part_max[t], part_bad[t])
    row_max = np.empty(n_topics, np.float32)
    for m in range(n_topics):
        top = part_max[0, m]
        for t in range(1, n_parts):
            top = max(top, part_max[t, m])
        row_max[m] = top
    part_sum = np.zeros((n_parts, n_topics), np.float64)
    for t in numba.prange(n_parts):
        _exp_transposed_inline(theta, row_max, bounds[t], bounds[t + 1], out, part_sum[t])
    row_sum[:] = part_sum.sum(axis=0)
    n_bad[0] += part_bad.sum()
