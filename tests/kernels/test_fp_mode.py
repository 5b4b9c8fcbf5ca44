"""The CPU kernels compute in XLA's floating-point mode whichever thread runs them.

XLA flushes denormals to zero; numba's pool threads keep the mode of the thread that started them,
and XLA calls a handler from one thread or another. Before the kernels set the mode themselves, two
identical training runs could drift apart in the last digit (the reliability test's rare failure).
Here every pool thread is put in the other mode first: the kernels' results must not change.
"""

from __future__ import annotations

import platform

import jax.numpy as jnp
import numba
import numpy as np
import pytest

sparse_ops = pytest.importorskip("bindvae.kernels.sparse_ops")
from bindvae.kernels import _fused_kernels as fk  # noqa: E402
from bindvae.kernels import _sparse_kernels as k  # noqa: E402

pytestmark = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64") or not sparse_ops.PARALLEL
    or numba.get_num_threads() < 2,
    reason="needs x86 (MXCSR) and numba's thread pool on two threads or more",
)

IEEE = 0x1F80  # exceptions masked, round to nearest, denormals kept
FLUSH = 0x9FC0  # the same with FTZ and DAZ: XLA's mode


@numba.njit(parallel=True)
def _put_modes(modes, before):
    # Each pool thread (and the caller, part 0) takes modes[t] and reports its previous mode.
    for t in numba.prange(modes.shape[0]):
        before[t] = k._get_fp_mode()
        k._set_fp_mode(modes[t])


def _with_thread_modes(mode, fn):
    n = numba.get_num_threads()
    before = np.zeros(n, np.int32)
    _put_modes(np.full(n, mode, np.int32), before)
    try:
        return fn()
    finally:
        _put_modes(before, np.zeros(n, np.int32))


def _case(n_kmers=300, batch=4, hidden=3):
    # Every k-mer in every row, W1 entries denormal: x @ W1 is denormal unless denormals are zero.
    indices = np.tile(np.arange(n_kmers, dtype=np.int32), (batch, 1))
    counts = np.ones((batch, n_kmers), np.float32)
    col_ptr = np.arange(0, batch * n_kmers + 1, batch, dtype=np.int32)
    rows = np.tile(np.arange(batch, dtype=np.int32), n_kmers)
    slots = (rows * n_kmers + np.repeat(np.arange(n_kmers), batch)).astype(np.int32)
    w1 = np.full((n_kmers, hidden), 1e-40, np.float32)
    return indices, counts, col_ptr, rows, slots, w1


def test_first_layer_on_threads_in_either_mode_is_xlas_result():
    indices, counts, col_ptr, rows, slots, w1 = _case()
    values = np.ones(len(rows), np.float32)
    n = numba.get_num_threads()

    def forward():
        out = np.full((indices.shape[0], w1.shape[1]), np.nan, np.float32)
        k.first_layer_forward_parallel(col_ptr, rows, values, w1, out, n)
        return out

    xla = np.asarray(jnp.asarray(counts) @ jnp.asarray(w1))  # XLA: denormal inputs read as zero
    assert np.all(xla == 0.0)
    for mode in (IEEE, FLUSH):
        np.testing.assert_array_equal(_with_thread_modes(mode, forward), xla, err_msg=hex(mode))
    # Left to itself in IEEE mode the same sum is not zero: the test can see a kernel that forgets.
    assert _with_thread_modes(IEEE, lambda: (counts @ w1)[0, 0]) != 0.0


def test_fused_softmax_and_adam_on_threads_in_either_mode_agree():
    # Adam's second moment of a tiny gradient is denormal in IEEE mode, zero in XLA's.
    rng = np.random.default_rng(0)
    n_topics, n_kmers = 3, 1100
    theta = rng.standard_normal((n_topics, n_kmers)).astype(np.float32) * 30
    n = numba.get_num_threads()

    def run():
        out = np.zeros((n_kmers, n_topics), np.float32)
        row_sum, n_bad = np.zeros(n_topics), np.zeros(1, np.int64)
        fk.exp_transposed_parallel(theta, out, row_sum, n_bad, n)
        dh1 = np.full((4, 2), 2.5e-20, np.float32)  # dW1 = 1e-19 in every entry
        col_ptr = np.arange(0, 4 * n_kmers + 1, 4, dtype=np.int32)
        rows = np.tile(np.arange(4, dtype=np.int32), n_kmers)
        values = np.ones(len(rows), np.float32)
        w1, mu, nu = (np.full((n_kmers, 2), v, np.float32) for v in (0.5, 0.0, 0.0))
        hyper = np.array([1, 0.01, 0.1, 0.9, 0.001, 0.999, 1e-8, 0.1, 0.001], np.float32)
        sq = np.zeros(1)
        fk.adam_first_layer_parallel(col_ptr, rows, values, dh1, w1, mu, nu, hyper, sq, n)
        return out, row_sum, w1, mu, nu

    flushed, ieee = _with_thread_modes(FLUSH, run), _with_thread_modes(IEEE, run)
    for a, b in zip(flushed, ieee):
        np.testing.assert_array_equal(a, b)
    assert np.all(flushed[4] == 0.0)  # nu = (1 - b2) (1e-19)^2 = 1e-41: denormal, so zero in XLA's mode
    assert np.all(flushed[3] > 0.0)
