"""train.decoder_update=online_em (ours): the topics learn by online EM, the encoder by Adam."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bindvae import training as train
from bindvae.config import ModelConfig, RunConfig, TrainConfig
from bindvae.errors import ConfigError
from bindvae.training.optim import optimizer_spec
from bindvae.training.state import create_train_state
from bindvae.training.step import apply_step, resolve_compute_path
from bindvae.vae import objectives
from bindvae.vae.network import build_model, posterior_concentration_sparse
from tests.helpers.numeric import decoder_problem
from tests.helpers.training import random_counts, small_config


def _problem(seed=0, batch=4):
    return decoder_problem(seed, batch, n_kmers=12, n_topics=3, width=6)[:4]


def _shared_out(z, theta, indices, counts):
    """The E-step by loops: each count split over the topics in proportion to z_bm phi_mj."""
    phi = np.exp(theta) / np.exp(theta).sum(1, keepdims=True)
    want = np.zeros_like(theta)
    for b in range(indices.shape[0]):
        for k in range(indices.shape[1]):
            j = indices[b, k]
            joint = z[b] * phi[:, j]
            want[:, j] += counts[b, k] * joint / joint.sum()
    return want


def test_topic_kmer_counts_share_each_count_out_by_its_responsibilities():
    z, theta, indices, counts = _problem()
    with jax.enable_x64(True):
        got = np.asarray(objectives.topic_kmer_counts(*map(jnp.asarray, (z, theta, indices, counts))))

        # phi times the likelihood's gradient in phi: the same counts by another route.
        def total(log_phi):
            return jnp.sum(jnp.asarray(counts) * jnp.log(jnp.einsum(
                "bkm,bm->bk", jnp.take(jnp.exp(log_phi).T, jnp.asarray(indices), axis=0), jnp.asarray(z))))

        log_phi = jax.nn.log_softmax(jnp.asarray(theta), axis=-1)
        by_gradient = np.asarray(jax.grad(total)(log_phi))
    np.testing.assert_allclose(got, _shared_out(z, theta, indices, counts), rtol=1e-12)
    np.testing.assert_allclose(got, by_gradient, rtol=1e-10, atol=1e-12)
    assert got.sum() == pytest.approx(counts.sum())  # every count shared out once, padding none


def test_online_em_logits_blend_the_scaled_counts_into_the_topics():
    _, theta, _, _ = _problem()
    stats = np.random.default_rng(3).gamma(1.0, 2.0, theta.shape)
    with jax.enable_x64(True):
        got = np.asarray(objectives.online_em_logits(jnp.asarray(theta), jnp.asarray(stats), 5, 40.0, 0.01, 10.0, 0.7))
        first = np.asarray(objectives.online_em_logits(jnp.asarray(theta), jnp.asarray(stats), 0, 40.0, 0.01, 1.0, 0.7))
    rho = 15.0 ** -0.7
    np.testing.assert_allclose(np.exp(got), (1 - rho) * np.exp(theta) + rho * (0.01 + 40.0 * stats), rtol=1e-12)
    np.testing.assert_allclose(np.exp(first), 0.01 + 40.0 * stats, rtol=1e-12)  # rho = 1: the new estimate only


def _em_state(estep="sample", n_train=40, n_kmers=12):
    model_config = ModelConfig(num_topics=3, alpha=1.0, hidden_sizes=(8,))
    train_config = TrainConfig(steps=10, learning_rate=1e-2, prior_burn_in_steps=5, decoder_update="online_em",
                               em_estep=estep, em_decay=0.7)
    model = build_model(model_config, n_kmers, n_train=n_train)
    state = create_train_state(model, train_config, jax.random.key(0),
                               theta=jax.random.normal(jax.random.key(5), (3, n_kmers)))
    return model, state


@pytest.mark.parametrize("estep", ["sample", "mean"])
def test_a_step_moves_the_topics_by_em_and_the_encoder_by_adam(estep):
    model, state = _em_state(estep)
    _, _, indices, counts = _problem(batch=4)
    indices, counts = jnp.asarray(indices), jnp.asarray(counts, jnp.float32)
    key = jax.random.key(9)
    before = state.params
    new, metrics = apply_step(model, "sparse", state, indices, counts, key)
    assert bool(metrics["finite"])
    conc = posterior_concentration_sparse(model, before, indices, counts)
    if estep == "sample":  # the step's own sample of the ELBO (same key, same sampler)
        z = objectives.sample_topics(jax.random.fold_in(key, 0), conc)
    else:
        z = conc / conc.sum(-1, keepdims=True)
    stats = objectives.topic_kmer_counts(z, before["topic_kmer"]["theta"], indices, counts)
    want = objectives.online_em_logits(before["topic_kmer"]["theta"], stats, 0, 40 / 4, 0.01, 10.0, 0.7)
    np.testing.assert_allclose(np.asarray(new.params["topic_kmer"]["theta"]), np.asarray(want), rtol=1e-5, atol=1e-5)
    moments = new.opt_state.inner_states["net"].inner_state[0]
    assert not np.any(np.asarray(moments.mu["topic_kmer"]["theta"]))  # Adam never saw the topics
    assert np.abs(np.asarray(new.params["encoder"]["input_kernel"] - before["encoder"]["input_kernel"])).max() > 1e-4


def test_online_em_refuses_what_it_cannot_apply():
    em = TrainConfig(decoder_update="online_em")
    spec = optimizer_spec(em)
    assert resolve_compute_path("auto", "cpu", optimizer=spec) == "sparse_cpu"
    assert resolve_compute_path("auto", "cpu", optimizer=optimizer_spec(TrainConfig())) == "fused_cpu"
    with pytest.raises(ConfigError, match="train.decoder_update"):
        resolve_compute_path("fused_cpu", "cpu", optimizer=spec)
    with pytest.raises(ConfigError, match="train.decoder_update"):
        RunConfig(model=ModelConfig(decoder="product"), train=em)
    with pytest.raises(ConfigError, match="train.decoder_update"):
        RunConfig(model=ModelConfig(topic_eta=0.5), train=em)
    for bad in (dict(decoder_update="newton"), dict(em_decay=0.3), dict(em_eta=0.0), dict(em_offset=0.5),
                dict(em_estep="mode")):
        with pytest.raises(ConfigError, match="train.(decoder_update|em_)"):
            TrainConfig(**bad)
    model = build_model(ModelConfig(num_topics=3, hidden_sizes=(8,)), 12)  # no n_train: no scale to the data
    _, state = _em_state()
    _, _, indices, counts = _problem()
    with pytest.raises(ValueError, match="n_train"):
        apply_step(model, "sparse", state, jnp.asarray(indices), jnp.asarray(counts, jnp.float32), jax.random.key(0))


@pytest.mark.parametrize("path", ["auto", "sparse"])
def test_online_em_fit_separates_the_two_planted_groups(tmp_path, path):
    X = random_counts(64, 120)  # even rows favour k-mers 0-59, odd rows 60-119
    config = small_config(steps=60, compute_path=path, eval_every=0, checkpoint_every=60,
                          decoder_update="online_em")
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, theta_init="background"))
    result = train.fit(config, X, None, "fp", tmp_path / path)
    assert result.compute_path == ("sparse_cpu" if path == "auto" else "sparse")
    phi = np.asarray(jax.nn.softmax(result.params["topic_kmer"]["theta"], axis=-1))
    first_half = phi[:, :60].sum(1)
    # One topic holds (mostly) the even rows' k-mers, another the odd rows'; from the background
    # start every topic held half of each.
    assert first_half.max() > 0.8 and first_half.min() < 0.2
