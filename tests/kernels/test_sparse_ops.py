"""The CPU sparse kernels (numba through XLA's FFI) against plain jax.numpy references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bindvae.vae import objectives

sparse_ops = pytest.importorskip("bindvae.kernels.sparse_ops")
pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA CPU targets")


def _batch(rng, batch, n_kmers, width):
    # Rows of different lengths, repeated ids within a row, padding (count 0) with arbitrary ids.
    indices = rng.integers(0, n_kmers, (batch, width)).astype(np.int32)
    counts = rng.integers(1, 4, (batch, width)).astype(np.float32)
    for b in range(batch):
        counts[b, rng.integers(width // 3, width):] = 0.0
    return jnp.asarray(indices), jnp.asarray(counts)


@pytest.fixture(scope="module")
def case():
    # D = 200 spans several 64-column tiles and a partial last tile.
    rng = np.random.default_rng(0)
    batch, n_kmers, width, hidden, topics = 6, 200, 30, 7, 5
    indices, counts = _batch(rng, batch, n_kmers, width)
    w1 = jnp.asarray(rng.standard_normal((n_kmers, hidden)), jnp.float32)
    theta = jnp.asarray(rng.standard_normal((topics, n_kmers)), jnp.float32)
    z = jax.nn.softmax(jnp.asarray(rng.standard_normal((batch, topics)), jnp.float32))
    return indices, counts, w1, theta, z


def test_column_order_is_a_counting_sort_of_nonzero_slots(case):
    indices, counts, *_ = case
    order = jax.jit(sparse_ops.column_order, static_argnums=2)(indices, counts, 200)
    nnz = int((counts > 0).sum())
    col_ptr = np.asarray(order.col_ptr)
    assert col_ptr[0] == 0 and col_ptr[-1] == nnz and np.all(np.diff(col_ptr) >= 0)
    slots = np.asarray(order.slots)[:nnz]
    flat_ids = np.asarray(indices).reshape(-1)[slots]
    np.testing.assert_array_equal(flat_ids, np.repeat(np.arange(200), np.diff(col_ptr)))
    np.testing.assert_array_equal(np.asarray(order.values)[:nnz], np.asarray(counts).reshape(-1)[slots])
    np.testing.assert_array_equal(np.asarray(order.rows)[:nnz], slots // indices.shape[1])


def test_column_order_on_several_threads_is_the_serial_one(case):
    # Each thread sorts its own block of rows; every column must still list its slots in batch
    # order, so the result is the serial kernel's, element for element (padding tail included).
    import numba

    from bindvae.kernels import _sparse_kernels

    if not sparse_ops.PARALLEL:
        pytest.skip("numba has no thread-safe threading layer here")
    indices, counts, *_ = case
    previous = numba.get_num_threads()
    results = []
    for n in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
        numba.set_num_threads(n)  # read when the call is traced
        try:
            results.append(jax.device_get(jax.jit(sparse_ops.column_order, static_argnums=2)(indices, counts, 200)))
        finally:
            numba.set_num_threads(previous)
    for serial, parallel in zip(*results):
        np.testing.assert_array_equal(parallel, serial)
    # More row blocks than threads, and blocks that get no rows (6 rows in 5 and 7 parts).
    for n_parts in (3, 5, 7):
        out = [
            np.zeros(201, np.int32),
            np.zeros(indices.size, np.int32),
            np.zeros(indices.size, np.int32),
            np.zeros(indices.size, np.float32),
        ]
        _sparse_kernels.column_order_parallel(np.asarray(indices), np.asarray(counts), 200, *out, n_parts)
        col_ptr, entries = out[0], out[1:]
        np.testing.assert_array_equal(col_ptr, results[0].col_ptr)
        nnz = int(col_ptr[-1])
        for got, want in zip(entries, results[0][1:]):
            np.testing.assert_array_equal(got[:nnz], want[:nnz])
    nnz = int((counts > 0).sum())
    col_ptr, slots = results[1].col_ptr, results[1].slots
    for j in range(200):
        run = slots[col_ptr[j] : col_ptr[j + 1]]
        assert np.all(np.diff(run) > 0)
    assert np.all(results[1].rows[nnz:] == 0)


def test_first_layer_value_and_gradient_match_dense_matmul(case):
    indices, counts, w1, *_ = case
    x = objectives.densify(indices, counts, 200)
    weights = jnp.linspace(-1.0, 1.0, 6 * 7).reshape(6, 7)

    def sparse(w):
        return jnp.sum(weights * jnp.tanh(sparse_ops.first_layer(w, sparse_ops.column_order(indices, counts, 200), 6)))

    def dense(w):
        return jnp.sum(weights * jnp.tanh(x @ w))

    value, grad = jax.jit(jax.value_and_grad(sparse))(w1)
    ref_value, ref_grad = jax.value_and_grad(dense)(w1)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    np.testing.assert_allclose(grad, ref_grad, atol=1e-5 * float(jnp.abs(ref_grad).max()))
    untouched = np.setdiff1d(np.arange(200), np.asarray(indices)[np.asarray(counts) > 0])
    assert np.all(np.asarray(grad)[untouched] == 0)


def test_log_likelihood_value_and_gradients_match_dense(case):
    indices, counts, _, theta, z = case
    x = objectives.densify(indices, counts, 200)
    row_weights = jnp.arange(1.0, 7.0)

    def sparse(t, zz):
        return jnp.sum(
            row_weights * sparse_ops.log_likelihood(zz, t, counts, sparse_ops.column_order(indices, counts, 200))
        )

    def dense(t, zz):
        return jnp.sum(row_weights * objectives.log_likelihood_dense(zz, t, x))

    value, grads = jax.jit(jax.value_and_grad(sparse, argnums=(0, 1)))(theta, z)
    ref_value, ref_grads = jax.value_and_grad(dense, argnums=(0, 1))(theta, z)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    for got, want in zip(grads, ref_grads):
        np.testing.assert_allclose(got, want, atol=1e-5 * float(jnp.abs(want).max()))


def test_out_of_range_ids_are_dropped_not_written(case):
    indices, counts, w1, *_ = case
    bad = indices.at[0, 0].set(10_000).at[1, 0].set(-3)
    kept = counts.at[0, 0].set(0.0).at[1, 0].set(0.0)
    h_bad = sparse_ops.first_layer(w1, sparse_ops.column_order(bad, counts, 200), 6)
    h_ref = sparse_ops.first_layer(w1, sparse_ops.column_order(indices, kept, 200), 6)
    np.testing.assert_allclose(h_bad, h_ref, rtol=1e-6)


def test_kernels_run_inside_scan(case):
    # The training loop calls the kernels from lax.scan; each iteration sees its own batch.
    indices, counts, w1, *_ = case

    def body(carry, shift):
        ids = (indices + shift) % 200
        h = sparse_ops.first_layer(w1, sparse_ops.column_order(ids, counts, 200), 6)
        return carry + jnp.sum(h), jnp.sum(h)

    _, sums = jax.jit(lambda: jax.lax.scan(body, 0.0, jnp.arange(3)))()
    for shift in range(3):
        x = objectives.densify((indices + shift) % 200, counts, 200)
        np.testing.assert_allclose(sums[shift], jnp.sum(x @ w1), rtol=1e-5)


def test_resolve_compute_path_picks_the_numba_paths_on_cpu_only():
    from bindvae.errors import ConfigError
    from bindvae.training import resolve_compute_path

    assert resolve_compute_path("auto", "cpu") == "fused_cpu"
    assert resolve_compute_path("auto", "gpu") == "dense"
    assert resolve_compute_path("sparse", "gpu") == "sparse"
    with pytest.raises(ConfigError, match="train.compute_path"):
        resolve_compute_path("sparse_cpu", "gpu")


def test_kernels_called_from_two_threads_at_once(case):
    # XLA, or a user's threads, may enter the kernels concurrently; with numba's thread pool this
    # needs a thread-safe threading layer (sparse_ops.PARALLEL is False otherwise).
    import threading

    indices, counts, w1, *_ = case
    fn = jax.jit(
        jax.grad(lambda w: jnp.sum(sparse_ops.first_layer(w, sparse_ops.column_order(indices, counts, 200), 6) ** 2))
    )
    want = np.asarray(fn(w1))
    results = []

    def work():
        results.extend(np.asarray(fn(w1 + 0.0)) for _ in range(20))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 60
    for got in results:
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_ffi_header_of_the_installed_jaxlib_matches_the_handlers_and_a_changed_one_is_named():
    from pathlib import Path

    from bindvae.kernels import _ffi_layout

    header = (Path(jax.ffi.include_dir()) / "xla" / "ffi" / "api" / "c_api.h").read_text()
    assert _ffi_layout.header_problem(header) is None
    newer = header.replace("#define XLA_FFI_API_MINOR 3", "#define XLA_FFI_API_MINOR 4")
    assert "API 0.4" in _ffi_layout.header_problem(newer)
    swapped = header.replace("  void* data;\n  int64_t rank;", "  int64_t rank;\n  void* data;")
    assert "XLA_FFI_Buffer" in _ffi_layout.header_problem(swapped)


def test_cpu_kernels_turned_off_by_a_changed_ffi_fall_back_under_auto_and_are_refused_by_name(monkeypatch, caplog):
    from bindvae.errors import ConfigError
    from bindvae.kernels import _ffi_layout
    from bindvae.training import resolve_compute_path

    monkeypatch.setattr(_ffi_layout, "problem", lambda: "XLA FFI API 0.4, the kernels read API 0.3")
    assert resolve_compute_path("auto", "cpu") == "sparse"
    assert "XLA FFI API 0.4" in caplog.text
    for path in ("sparse_cpu", "fused_cpu"):
        with pytest.raises(ConfigError, match="API 0.4"):
            resolve_compute_path(path, "cpu")
    with pytest.raises(ConfigError, match="API 0.4"):
        sparse_ops.load_kernels(("bindvae_not_loaded_yet",))
