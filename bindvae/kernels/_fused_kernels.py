"""Numba kernels of the fused CPU step (``bindvae.kernels.fused``): Adam applied inside the gradient kernels.

Built on the column-ordered batch and the helpers of ``bindvae.kernels._sparse_kernels``; cached with
them (``bindvae.kernels._cache`` keys on both sources).
"""

from __future__ import annotations

import numba
import numpy as np

from bindvae.kernels._sparse_kernels import (
    PAD,
    WIDE_TILE,
    _column_bounds,
    _entry_bounds,
    _exp_nonpositive,
    _fmax,
    _inline,
    _serial,
    _to_bits,
    restore_fp_mode,
    xla_fp_mode,
)

# --- The fused step (``bindvae.kernels.fused``): gradients of W1 and theta consumed by Adam in place ----
# dW1 [D, H] and dtheta [M, D] are never written: the mixture's kernel hands back only what the
# rest of the step needs (p, its gradient dp and dz), and the Adam kernels rebuild each row (W1) or column tile (theta)
# of the gradient from the batch's nonzeros, add its squares to the gradient's norm and update
# the parameter and both moments of that row or tile at once. ``hyper`` is float32
# [ok, lr, 1 - b1, b1, 1 - b2, b2, eps, bias correction 1, bias correction 2]; ok = 0 leaves
# everything as it was (a skipped, non-finite step). The softmax over theta (``exp_transposed``)
# writes phi^T unnormalised; the other kernels take it with a per-topic scale.


def _mixture_value_and_dz(
    col_ptr, rows, slots, values, zs, phi_t, factor, j0, j1, p, dp, dz
):  # pragma: no cover - compiled
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
    lr, one_b1, b1, one_b2, b2, eps, bc1, bc2 = (
        hyper[1],
        hyper[2],
        hyper[3],
        hyper[4],
        hyper[5],
        hyper[6],
        hyper[7],
        hyper[8],
    )
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


def _adam_theta(
    col_ptr, rows, slots, z, phi_t, scale, dp, s, theta, mu, nu, hyper, j0, j1, sq
):  # pragma: no cover - compiled
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
def mixture_value_and_dz_parallel(
    col_ptr, rows, slots, values, zs, phi_t, factor, p, dp, dz, n_parts
):  # pragma: no cover - compiled
    bounds = _entry_bounds(col_ptr, n_parts)
    parts = np.zeros((n_parts,) + dz.shape, dz.dtype)
    for t in numba.prange(n_parts):
        saved = xla_fp_mode()
        _mixture_value_and_dz_inline(
            col_ptr, rows, slots, values, zs, phi_t, factor, bounds[t], bounds[t + 1], p, dp, parts[t]
        )
        restore_fp_mode(saved)
    dz[:] = parts.sum(axis=0)


@numba.njit(cache=True, parallel=True, fastmath=True)
def adam_first_layer_parallel(
    col_ptr, rows, values, dh1, w1, mu, nu, hyper, sq, n_parts
):  # pragma: no cover - compiled
    bounds = _column_bounds(w1.shape[0], n_parts)
    parts = np.zeros((n_parts, 1), np.float64)
    for t in numba.prange(n_parts):
        saved = xla_fp_mode()
        _adam_first_layer_inline(col_ptr, rows, values, dh1, w1, mu, nu, hyper, bounds[t], bounds[t + 1], parts[t])
        restore_fp_mode(saved)
    sq[0] += parts.sum()


@numba.njit(cache=True, parallel=True, fastmath=True)
def adam_theta_parallel(
    col_ptr, rows, slots, z, phi_t, scale, dp, s, theta, mu, nu, hyper, sq, n_parts
):  # pragma: no cover - compiled
    n_kmers = theta.shape[1]
    bounds = np.empty(n_parts + 1, np.int64)
    for t in range(n_parts + 1):  # tile-aligned column ranges
        bounds[t] = min(n_kmers, (n_kmers * t // n_parts + WIDE_TILE - 1) // WIDE_TILE * WIDE_TILE)
    bounds[n_parts] = n_kmers
    parts = np.zeros((n_parts, 1), np.float64)
    for t in numba.prange(n_parts):
        saved = xla_fp_mode()
        _adam_theta_inline(
            col_ptr, rows, slots, z, phi_t, scale, dp, s, theta, mu, nu, hyper, bounds[t], bounds[t + 1], parts[t]
        )
        restore_fp_mode(saved)
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
        saved = xla_fp_mode()
        _row_max_inline(theta, bounds[t], bounds[t + 1], part_max[t], part_bad[t])
        restore_fp_mode(saved)
    row_max = np.empty(n_topics, np.float32)
    for m in range(n_topics):
        top = part_max[0, m]
        for t in range(1, n_parts):
            top = max(top, part_max[t, m])
        row_max[m] = top
    part_sum = np.zeros((n_parts, n_topics), np.float64)
    for t in numba.prange(n_parts):
        saved = xla_fp_mode()
        _exp_transposed_inline(theta, row_max, bounds[t], bounds[t + 1], out, part_sum[t])
        restore_fp_mode(saved)
    row_sum[:] = part_sum.sum(axis=0)
    n_bad[0] += part_bad.sum()
