"""model.decoder=product and model.background_topic (ours, not the paper's)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bindvae import training as train
from bindvae.config import ModelConfig, RunConfig, TrainConfig, xla_only_variant
from bindvae.errors import ConfigError
from bindvae.training.step import loss_and_metrics, resolve_compute_path
from bindvae.vae import objectives
from bindvae.vae.network import background_theta, build_model, init_params
from tests.helpers.numeric import central_differences
from tests.helpers.numeric import decoder_problem as _problem
from tests.helpers.training import random_counts, small_config


def _product_log_likelihood(z, theta, dense):
    logits = z @ theta
    top = logits.max(1, keepdims=True)
    log_p = logits - top - np.log(np.exp(logits - top).sum(1, keepdims=True))
    return (dense * log_p).sum(1)


def test_product_likelihood_is_the_normalised_product_on_both_paths():
    z, theta, indices, counts, dense = _problem()
    want = _product_log_likelihood(z, theta, dense)
    with jax.enable_x64(True):
        got_dense = objectives.log_likelihood_dense(jnp.asarray(z), jnp.asarray(theta), jnp.asarray(dense), "product")
        got_sparse = objectives.log_likelihood_sparse(jnp.asarray(z), jnp.asarray(theta), jnp.asarray(indices),
                                                      jnp.asarray(counts), "product")
        mixture = objectives.log_likelihood_sparse(jnp.asarray(z), jnp.asarray(theta), jnp.asarray(indices),
                                                   jnp.asarray(counts))
    np.testing.assert_allclose(np.asarray(got_dense), want, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(got_sparse), want, rtol=1e-12)
    assert np.all(np.abs(np.asarray(mixture) - want) > 1e-3)  # not the paper's mixture
    # A peak that is all one topic has that topic's own distribution softmax(theta_m) under both decoders.
    one = np.zeros_like(z)
    one[:, 2] = 1.0
    with jax.enable_x64(True):
        pure = [objectives.log_likelihood_dense(jnp.asarray(one), jnp.asarray(theta), jnp.asarray(dense), kind)
                for kind in ("product", "mixture")]
    np.testing.assert_allclose(np.asarray(pure[0]), np.asarray(pure[1]), rtol=1e-12)


def test_product_likelihood_gradient_matches_finite_differences():
    z, theta, indices, counts, _ = _problem(seed=1, batch=3, n_kmers=8, n_topics=3, width=5)

    def value(t, zz):
        return jnp.sum(objectives.log_likelihood_sparse(zz, t, jnp.asarray(indices), jnp.asarray(counts), "product"))

    with jax.enable_x64(True):
        grad_theta, grad_z = jax.grad(value, argnums=(0, 1))(jnp.asarray(theta), jnp.asarray(z))
        fd_theta = central_differences(lambda t: float(value(jnp.asarray(t), jnp.asarray(z))), theta)
        fd_z = central_differences(lambda zz: float(value(jnp.asarray(theta), jnp.asarray(zz))), z)
    np.testing.assert_allclose(np.asarray(grad_theta), fd_theta, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(np.asarray(grad_z), fd_z, rtol=1e-6, atol=1e-8)


def test_product_decoder_trains_on_the_xla_paths_only():
    product = ModelConfig(decoder="product")
    assert xla_only_variant(product)[0] == "model.decoder"
    assert xla_only_variant(ModelConfig()) is None
    for path in ("sparse_cpu", "fused_cpu"):
        with pytest.raises(ConfigError, match="model.decoder"):
            RunConfig(model=product, train=TrainConfig(compute_path=path))
        with pytest.raises(ConfigError, match="model.decoder"):
            resolve_compute_path(path, "cpu", variant=xla_only_variant(product))
        model = build_model(dataclasses.replace(product, num_topics=3, hidden_sizes=(8,)), 30)
        _, _, indices, counts, _ = _problem()
        params = init_params(model, jax.random.key(0))
        with pytest.raises(ConfigError, match="model.decoder"):
            loss_and_metrics(model, params, jnp.asarray(indices), jnp.asarray(counts, jnp.float32),
                             jax.random.key(1), path)
    assert resolve_compute_path("auto", "cpu", variant=xla_only_variant(product)) == "sparse"
    with pytest.raises(ConfigError, match="model.decoder"):
        ModelConfig(decoder="sum")


def test_product_run_trains_and_its_checkpoint_keeps_the_decoder(tmp_path):
    from bindvae.infer import load_model

    X = random_counts(64, 120)
    config = small_config(steps=30, compute_path="auto", eval_every=0, checkpoint_every=30)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, decoder="product"))
    result = train.fit(config, X, None, "fp", tmp_path / "run")
    assert result.compute_path == "sparse" and np.isfinite(result.metrics["loss"])
    assert load_model(tmp_path / "run", "fp").network.decoder == "product"


def test_background_topic_needs_the_background_start_and_two_topics():
    with pytest.raises(ConfigError, match="model.background_topic"):
        ModelConfig(background_topic=True, theta_init="glorot")
    with pytest.raises(ConfigError, match="model.background_topic"):
        ModelConfig(background_topic=True, num_topics=1)
    totals = np.arange(1.0, 11.0)
    theta = np.asarray(background_theta(totals, 3, jax.random.key(0), exact_last=True))
    corpus = np.log((totals + 0.5) / (totals + 0.5).sum())
    np.testing.assert_allclose(theta[-1], corpus, rtol=1e-6)
    assert np.abs(theta[0] - corpus).max() > 1e-4  # the others start with noise


@pytest.mark.parametrize("path", ["auto", "sparse"])
def test_background_topic_stays_the_corpus_while_the_others_learn(tmp_path, path):
    X = random_counts(64, 120)
    config = small_config(steps=30, compute_path=path, eval_every=0, checkpoint_every=30)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, background_topic=True))
    result = train.fit(config, X, None, "fp", tmp_path / path)
    theta = np.asarray(result.params["topic_kmer"]["theta"])
    totals = np.asarray(X.sum(axis=0)).ravel()
    start = np.asarray(background_theta(totals, 3, jax.random.key(0), exact_last=True))
    np.testing.assert_array_equal(theta[-1], start[-1])
    assert np.abs(theta[:-1] - start[:-1]).max() > 0.05
    if path == "auto":
        assert result.compute_path == "fused_cpu"  # the fused kernel's update of that row is undone


@pytest.mark.parametrize("path", ["sparse", "dense"])
def test_both_xla_paths_compute_the_decoder_the_model_names(path):
    from bindvae.training.step import row_terms

    _, _, indices, counts, _ = _problem(n_kmers=30)
    config = ModelConfig(num_topics=4, hidden_sizes=(8,))
    mixture, product = (build_model(dataclasses.replace(config, decoder=kind), 30) for kind in ("mixture", "product"))
    params = init_params(mixture, jax.random.key(0))
    params = {**params, "topic_kmer": {"theta": jax.random.normal(jax.random.key(2), (4, 30))}}
    args = (params, jnp.asarray(indices), jnp.asarray(counts, jnp.float32), jax.random.key(1))
    ll_product, ll_mixture = row_terms(product, *args, path)[0], row_terms(mixture, *args, path)[0]
    ll_sparse = row_terms(product, *args, "sparse")[0]
    np.testing.assert_allclose(np.asarray(ll_product), np.asarray(ll_sparse), rtol=1e-5)
    assert np.all(np.abs(np.asarray(ll_product) - np.asarray(ll_mixture)) > 1e-3)
