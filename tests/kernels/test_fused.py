"""The fused CPU step (Adam applied to W1 and theta inside their gradient kernels) against the
unfused sparse_cpu step, which runs optax on dense gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numba
import numpy as np
import pytest

from bindvae import training as train
from bindvae.config import ModelConfig, TrainConfig
from bindvae.errors import ConfigError
from bindvae.vae.network import build_model

pytest.importorskip("bindvae.kernels.sparse_ops")
pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA CPU targets")

N_KMERS = 2200  # several 64-column tiles, four 512-column tiles of theta and partial last ones


def _batches(n, seed=0, batch=8, width=40):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        indices = rng.integers(0, N_KMERS, (batch, width)).astype(np.int32)
        counts = rng.integers(1, 4, (batch, width)).astype(np.float32)
        for b in range(batch):
            counts[b, rng.integers(width // 4, width):] = 0.0  # padding, arbitrary ids
        out.append({"indices": jnp.asarray(indices), "counts": jnp.asarray(counts)})
    return out


def _run(path, batches, config, threads=None, input_transform="counts", input_norm="none"):
    network = ModelConfig(num_topics=6, hidden_sizes=(32, 16), input_transform=input_transform, input_norm=input_norm)
    model = build_model(network, N_KMERS)
    state = train.create_train_state(model, config, jax.random.key(0))
    previous = numba.get_num_threads()
    if threads:
        numba.set_num_threads(threads)  # read when the step is traced
    try:
        step = train.make_train_step(model, path)
        metrics = []
        for batch in batches:
            state, m = step(state, batch, jax.random.key(3))
            metrics.append(jax.device_get(m))
    finally:
        numba.set_num_threads(previous)
    return state, metrics


def _assert_trees_close(a, b, what, atol=2e-6):
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        scale = max(float(np.abs(x).max()), 1e-30)
        np.testing.assert_allclose(x / scale, y / scale, atol=atol, err_msg=f"{what}{jax.tree_util.keystr(path)}")


@pytest.mark.parametrize("threads", [1, 2])
def test_fused_step_matches_optax_on_dense_gradients(threads):
    # Six steps across the prior's thaw (burn-in 3): parameters, both Adam moments of every leaf,
    # the step counts and every metric (l2_grads included) agree with the unfused path.
    config = TrainConfig(batch_size=8, prior_burn_in_steps=3, learning_rate=0.01)
    batches = _batches(6)
    ref, ref_metrics = _run("sparse_cpu", batches, config)
    fused, fused_metrics = _run("fused_cpu", batches, config, threads)
    _assert_trees_close(ref.params, fused.params, "params")
    _assert_trees_close(ref.opt_state, fused.opt_state, "opt_state")
    assert int(fused.step) == 6 and int(fused.skipped_steps) == 0
    for r, f in zip(ref_metrics, fused_metrics):
        for key in train.METRIC_KEYS:
            np.testing.assert_allclose(f[key], r[key], rtol=2e-5, err_msg=key)
    # The parameters did move (W1 and theta are the fused ones).
    start, _ = _run("fused_cpu", [], config)
    for leaf in (("encoder", "input_kernel"), ("topic_kmer", "theta")):
        assert float(jnp.abs(fused.params[leaf[0]][leaf[1]] - start.params[leaf[0]][leaf[1]]).max()) > 1e-3


def test_fused_step_skips_a_non_finite_batch_and_changes_nothing():
    config = TrainConfig(batch_size=8, prior_burn_in_steps=0, learning_rate=0.01)
    good = _batches(2, seed=1)
    bad = {"indices": good[1]["indices"], "counts": good[1]["counts"].at[0, 0].set(jnp.inf)}
    before, _ = _run("fused_cpu", good[:1], config)
    after, metrics = _run("fused_cpu", [good[0], bad], config)
    assert not bool(metrics[-1]["finite"])
    assert int(after.skipped_steps) == 1 and int(after.bad_steps) == 1
    _assert_trees_close(before.params, after.params, "params")
    _assert_trees_close(before.opt_state, after.opt_state, "opt_state")


def test_fused_step_skips_a_batch_whose_gradient_norm_overflows_as_optax_does():
    # A finite count of 1e30 gives a finite loss but a gradient whose squared norm overflows
    # float32: the unfused path sees a non-finite global norm and skips; the fused step must too,
    # from its bound on theta's gradient (decided before any update).
    config = TrainConfig(batch_size=8, prior_burn_in_steps=0, learning_rate=0.01)
    good = _batches(2, seed=2)
    huge = {"indices": good[1]["indices"], "counts": good[1]["counts"].at[0, 0].set(1e30)}
    for path in ("sparse_cpu", "fused_cpu"):
        before, _ = _run(path, good[:1], config)
        after, metrics = _run(path, [good[0], huge], config)
        assert np.isfinite(metrics[-1]["loss"]), path
        assert not bool(metrics[-1]["finite"]), path
        assert int(after.skipped_steps) == 1, path
        _assert_trees_close(before.params, after.params, f"{path} params")


def test_auto_picks_the_fused_step_on_the_cpu_only_where_it_applies():
    assert train.resolve_compute_path("auto", "cpu") == "fused_cpu"
    assert train.resolve_compute_path("auto", "cpu", moment_dtype="bfloat16") == "sparse_cpu"
    assert train.resolve_compute_path("auto", "cpu", n_devices=2) == "sparse_cpu"
    assert train.resolve_compute_path("auto", "gpu") == "dense"
    with pytest.raises(ConfigError, match="bfloat16|float32"):
        train.resolve_compute_path("fused_cpu", "cpu", moment_dtype="bfloat16")
    with pytest.raises(ConfigError, match="CPU backend only"):
        train.resolve_compute_path("fused_cpu", "gpu")


@pytest.mark.parametrize("threads", [1, 2])
def test_exp_transposed_kernel_is_the_softmax_transposed(threads):
    from bindvae.kernels import sparse_ops

    rng = np.random.default_rng(4)
    theta = (rng.standard_normal((7, 2500)) * 25).astype(np.float32)  # rows span more than e^-87
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        run = jax.jit(sparse_ops.exp_transposed, donate_argnums=1)
        e_t, row_sum, n_bad = run(jnp.asarray(theta), jnp.zeros(theta.shape[::-1], jnp.float32))
        bad = theta.copy()
        bad[2, 100], bad[5, 2400] = np.nan, np.inf
        _, _, n_bad_of_bad = run(jnp.asarray(bad), jnp.zeros(theta.shape[::-1], jnp.float32))
    finally:
        numba.set_num_threads(previous)
    shifted = (theta - theta.max(axis=1, keepdims=True)).astype(np.float64)  # the float32 difference
    expected = np.exp(shifted)
    got = np.asarray(e_t).T.astype(np.float64)
    normal = shifted >= -87.0
    np.testing.assert_allclose(got[normal], expected[normal], rtol=1e-6)
    assert np.all(got[~normal] == 0.0) and (~normal).sum() > 1000
    np.testing.assert_allclose(np.asarray(row_sum), expected.sum(axis=1), rtol=1e-6)
    softmax = got / np.asarray(row_sum, np.float64)[:, None]
    np.testing.assert_allclose(softmax.sum(axis=1), 1.0, rtol=1e-6)
    assert float(n_bad[0]) == 0.0 and float(n_bad_of_bad[0]) == 2.0


def test_adamw_is_refused_by_the_fused_step_and_auto_falls_back():
    from bindvae.training.optim import optimizer_spec

    adamw = optimizer_spec(TrainConfig(optimizer="adamw", weight_decay=1e-2))
    assert train.resolve_compute_path("auto", "cpu", optimizer=adamw) == "sparse_cpu"
    with pytest.raises(ConfigError, match="train.optimizer"):
        train.resolve_compute_path("fused_cpu", "cpu", optimizer=adamw)
    # A state built for AdamW never reaches the fused kernels, which would skip its weight decay.
    config = TrainConfig(optimizer="adamw", weight_decay=1e-2, learning_rate=1e-2)
    with pytest.raises(ConfigError, match="train.optimizer"):
        _run("fused_cpu", _batches(1), config)


def test_adamw_decays_the_network_and_not_the_prior():
    import optax

    model = build_model(ModelConfig(num_topics=3, hidden_sizes=(4,)), 50)
    config = TrainConfig(learning_rate=0.1, prior_burn_in_steps=0, optimizer="adamw", weight_decay=0.5)
    state = train.create_train_state(model, config, jax.random.key(0))
    zeros = jax.tree.map(jnp.zeros_like, state.params)
    updates, _ = state.tx.update(zeros, state.opt_state, state.params)
    after = optax.apply_updates(state.params, updates)
    # With no gradient Adam moves nothing; AdamW's decoupled decay shrinks each weight by lr x decay.
    w, w_after = state.params["encoder"]["input_kernel"], after["encoder"]["input_kernel"]
    np.testing.assert_allclose(np.asarray(w_after), np.asarray(w) * (1 - 0.1 * 0.5), rtol=1e-6)
    np.testing.assert_array_equal(
        np.asarray(after["prior"]["raw_alpha"]), np.asarray(state.params["prior"]["raw_alpha"])
    )
    plain = train.create_train_state(model, TrainConfig(learning_rate=0.1, prior_burn_in_steps=0), jax.random.key(0))
    updates, _ = plain.tx.update(zeros, plain.opt_state, plain.params)
    np.testing.assert_array_equal(np.asarray(optax.apply_updates(plain.params, updates)["encoder"]["input_kernel"]),
                                  np.asarray(w))


def test_the_vae_package_never_imports_the_kernels():
    import ast
    import pathlib

    import bindvae.vae

    for source in pathlib.Path(bindvae.vae.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            assert not any(n.startswith("bindvae.kernels") for n in names), source.name
    from bindvae.vae import backends

    assert backends.get("fused_cpu").fuses_update and not backends.get("sparse").fuses_update
