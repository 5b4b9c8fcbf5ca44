"""Numba kernels of the CPU sparse training path (see ``bindvae.sparse_ops``).

A padded batch (indices, counts [B, K]) is first sorted by k-mer into column order (CSC): for
column j, entries ``col_ptr[j] .. col_ptr[j + 1]`` of ``rows``/``slots``/``values`` give the batch
row, the flat slot ``b * K + k`` and the count of each occurrence. Every kernel then walks a range
of columns in order, so the big [D, H] and [M, D] arrays are read and written in long sequential
runs instead of one random row per nonzero, and each thread owns a disjoint column range (no
write races). XLA calls them through its FFI (``bindvae._sparse_ffi``).
"""

from __future__ import annotations

import numba
import numpy as np

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
def first_layer_forward_parallel(col_ptr, rows, values, w1, out, n_parts):  # pragma: no cover - compiled
    bounds = _entry_bounds(col_ptr, n_parts)
    parts = np.zeros((n_parts,) + out.shape, out.dtype)
    for t in numba.prange(n_parts):
        first_layer_forward(col_ptr, rows, values, w1, bounds[t], bounds[t + 1], parts[t])
    out[:] = parts.sum(axis=0)


@numba.njit(cache=True, parallel=True)
def first_layer_backward_parallel(col_ptr, rows, values, dh1, dw1, n_parts):  # pragma: no cover - compiled
    bounds = _column_bounds(dw1.shape[0], n_parts)
    for t in numba.prange(n_parts):
        first_layer_backward(col_ptr, rows, values, dh1, bounds[t], bounds[t + 1], dw1)


@numba.njit(cache=True, parallel=True)
def mixture_forward_parallel(col_ptr, rows, slots, z, phi, p, n_parts):  # pragma: no cover - compiled
    bounds = _entry_bounds(col_ptr, n_parts)
    for t in numba.prange(n_parts):
        mixture_forward(col_ptr, rows, slots, z, phi, bounds[t], bounds[t + 1], p)


@numba.njit(cache=True, parallel=True)
def mixture_backward_parallel(col_ptr, rows, slots, z, phi, dp, dz, dphi, n_parts):  # pragma: no cover - compiled
    bounds = _column_bounds(phi.shape[1], n_parts)
    parts = np.zeros((n_parts,) + dz.shape, dz.dtype)
    for t in numba.prange(n_parts):
        mixture_backward(col_ptr, rows, slots, z, phi, dp, bounds[t], bounds[t + 1], parts[t], dphi)
    dz[:] = parts.sum(axis=0)
