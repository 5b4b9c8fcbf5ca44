"""model.topic_eta (ours, not the paper's): a MAP Dirichlet(eta) prior on the topics, on the XLA paths."""

from __future__ import annotations

import dataclasses
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bindvae import training as train
from bindvae.config import ModelConfig, RunConfig, TrainConfig, xla_only_variant
from bindvae.errors import ConfigError
from bindvae.training.step import batch_metrics, loss_and_metrics, resolve_compute_path, row_terms
from bindvae.vae import objectives
from bindvae.vae.network import build_model, init_params
from tests.helpers.numeric import central_differences
from tests.helpers.training import random_counts, small_config

N_KMERS = 50


def _batch(seed=0, batch=6, width=12):
    rng = np.random.default_rng(seed)
    indices = np.stack([rng.choice(N_KMERS, width, replace=False) for _ in range(batch)]).astype(np.int32)
    counts = rng.integers(1, 4, (batch, width)).astype(np.float32)
    counts[:, width - 3:] = 0.0
    return jnp.asarray(indices), jnp.asarray(counts)


def _params(model, seed=0):
    params = init_params(model, jax.random.key(seed))
    theta = jax.random.normal(jax.random.key(seed + 1), params["topic_kmer"]["theta"].shape)
    return {**params, "topic_kmer": {"theta": theta}}


@pytest.mark.parametrize("eta", [0.01, 0.5, 3.0])
def test_log_prior_gradient_matches_finite_differences(eta):
    rng = np.random.default_rng(1)
    theta = rng.normal(size=(3, 7))
    with jax.enable_x64(True):
        value = lambda t: float(objectives.topic_log_prior(jnp.asarray(t, jnp.float64), eta))  # noqa: E731
        grad = np.asarray(jax.grad(lambda t: objectives.topic_log_prior(t, eta))(jnp.asarray(theta, jnp.float64)))
        fd = central_differences(value, theta)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)
    # ... and the closed form (eta - 1) * (1 - D * phi) the docstring states.
    phi = np.exp(theta - theta.max(-1, keepdims=True))
    phi /= phi.sum(-1, keepdims=True)
    np.testing.assert_allclose(grad, (eta - 1) * (1 - theta.shape[1] * phi), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("path", ["sparse", "dense"])
def test_loss_gains_the_weighted_prior_and_its_gradient(path):
    eta, n_train = 0.2, 40
    off = build_model(ModelConfig(num_topics=3, hidden_sizes=(8,)), N_KMERS)
    on = build_model(ModelConfig(num_topics=3, hidden_sizes=(8,), topic_eta=eta), N_KMERS, n_train=n_train)
    params = _params(off)
    indices, counts = _batch()
    key = jax.random.key(3)

    (l_off, m_off), g_off = jax.value_and_grad(lambda p: loss_and_metrics(off, p, indices, counts, key, path),
                                               has_aux=True)(params)
    (l_on, m_on), g_on = jax.value_and_grad(lambda p: loss_and_metrics(on, p, indices, counts, key, path),
                                            has_aux=True)(params)
    theta = params["topic_kmer"]["theta"]
    expected = -objectives.topic_log_prior(theta, eta) / n_train
    np.testing.assert_allclose(float(l_on - l_off), float(expected), rtol=1e-4)
    assert float(m_on["loss"]) == float(l_on) and float(m_on["elbo"]) == float(m_off["elbo"])
    phi = jax.nn.softmax(theta, axis=-1)
    expected_grad = -(eta - 1) * (1 - N_KMERS * phi) / n_train
    np.testing.assert_allclose(np.asarray(g_on["topic_kmer"]["theta"] - g_off["topic_kmer"]["theta"]),
                               np.asarray(expected_grad), rtol=1e-3, atol=1e-6)
    # The encoder does not see the prior.
    np.testing.assert_array_equal(np.asarray(g_on["encoder"]["input_kernel"]),
                                  np.asarray(g_off["encoder"]["input_kernel"]))


@pytest.mark.parametrize("path", ["sparse", "dense"])
def test_default_loss_is_the_negative_elbo_bit_for_bit(path):
    # topic_eta = 0 (the default) leaves the paper's loss exactly as it was, whatever n_train says.
    model = build_model(ModelConfig(num_topics=3, hidden_sizes=(8,)), N_KMERS, n_train=40)
    assert model.topic_eta == 0.0
    params = _params(model)
    indices, counts = _batch()
    key = jax.random.key(3)
    loss, metrics = loss_and_metrics(model, params, indices, counts, key, path)
    reference, _ = batch_metrics(*row_terms(model, params, indices, counts, key, path), counts)
    assert float(loss) == float(reference) == float(metrics["loss"]) == -float(metrics["elbo"])


def test_numba_paths_refuse_the_prior_and_auto_falls_back(caplog):
    for path in ("sparse_cpu", "fused_cpu"):
        with pytest.raises(ConfigError, match="model.topic_eta"):
            resolve_compute_path(path, "cpu", variant=xla_only_variant(ModelConfig(topic_eta=0.5)))
        with pytest.raises(ConfigError, match="model.topic_eta"):
            RunConfig(model=ModelConfig(topic_eta=0.5), train=TrainConfig(compute_path=path))
        RunConfig(model=ModelConfig(), train=TrainConfig(compute_path=path))  # off: fine
    for path in ("auto", "sparse", "dense"):
        RunConfig(model=ModelConfig(topic_eta=0.5), train=TrainConfig(compute_path=path))
    with pytest.raises(ConfigError, match="model.topic_eta"):
        ModelConfig(topic_eta=-1.0)
    with caplog.at_level(logging.INFO, logger="bindvae.training.step"):
        assert resolve_compute_path("auto", "cpu", variant=xla_only_variant(ModelConfig(topic_eta=0.5))) == "sparse"
    lines = [r.getMessage() for r in caplog.records if "topic_eta" in r.getMessage()]
    assert len(lines) == 1 and "sparse" in lines[0]
    assert resolve_compute_path("auto", "cpu") == "fused_cpu"
    assert resolve_compute_path("auto", "gpu", variant=xla_only_variant(ModelConfig(topic_eta=0.5))) == "dense"


def test_training_with_a_sparse_prior_on_auto_gives_sparser_topics(tmp_path):
    X = random_counts(64, 120)

    def run(eta, name, path):
        config = small_config(steps=40, compute_path=path, eval_every=0, checkpoint_every=40)
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, topic_eta=eta))
        return train.fit(config, X, None, "fp", tmp_path / name)

    # auto (the numba fused_cpu path without the prior) falls back to the XLA sparse path.
    plain, sparse = run(0.0, "plain", "sparse"), run(0.01, "sparse", "auto")
    assert sparse.compute_path == "sparse"

    def entropy(result):
        phi = np.asarray(jax.nn.softmax(result.params["topic_kmer"]["theta"], axis=-1))
        return float(-(phi * np.log(phi)).sum(-1).mean())

    assert np.isfinite(sparse.metrics["loss"])
    assert entropy(sparse) < entropy(plain)
