"""Training: burn-in freeze, skipped non-finite steps, end-to-end fit, resume equality, run-dir safety."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bindvae import training as train
from bindvae.config import ModelConfig, TrainConfig
from bindvae.errors import ConfigError
from bindvae.tracking import read_metrics
from bindvae.vae.network import build_model
from tests.helpers.training import random_counts, small_config

pytestmark = pytest.mark.usefixtures("fast_compile")



def _batch(X, rows):
    from bindvae.data.datasets import pad_rows

    padded = pad_rows(X[rows])
    return {"indices": jnp.asarray(padded.indices), "counts": jnp.asarray(padded.counts)}


def test_prior_is_frozen_during_burn_in_then_moves():
    X = random_counts(16, 40)
    model = build_model(ModelConfig(num_topics=3, alpha=2.0, hidden_sizes=(8,)), 40)
    state = train.create_train_state(
        model, TrainConfig(steps=6, prior_burn_in_steps=3, learning_rate=0.05), jax.random.key(0)
    )
    step = train.make_train_step(model, "sparse")
    batch, key = _batch(X, np.arange(8)), jax.random.key(1)
    raws, thetas = [], []
    for _ in range(6):
        state, metrics = step(state, batch, key)
        raws.append(np.asarray(state.params["prior"]["raw_alpha"]))
        thetas.append(np.asarray(state.params["topic_kmer"]["theta"]))
    from bindvae.vae.network import softplus_inverse

    initial = np.full(3, softplus_inverse(2.0))
    np.testing.assert_array_equal(raws[0], raws[2])  # steps 1-3: frozen
    np.testing.assert_allclose(raws[0], initial, rtol=1e-6)
    assert not np.allclose(raws[2], raws[3])  # step 4 updates the prior
    assert not np.allclose(thetas[0], thetas[1])  # the rest trains from the start
    assert int(state.step) == 6


@pytest.mark.parametrize("path", ["sparse", "fused_cpu"])
def test_prior_stays_at_alpha_when_it_is_not_learned(path):
    # train.learn_prior=False (ours): the prior never moves, past the burn-in too; the network still trains.
    from bindvae.vae.network import softplus_inverse

    if path == "fused_cpu" and jax.default_backend() != "cpu":
        pytest.skip("the fused step is a CPU kernel")
    X = random_counts(16, 40)
    model = build_model(ModelConfig(num_topics=3, alpha=2.0, hidden_sizes=(8,)), 40)
    config = TrainConfig(steps=6, prior_burn_in_steps=2, learning_rate=0.05, learn_prior=False)
    state = train.create_train_state(model, config, jax.random.key(0))
    theta0 = np.asarray(state.params["topic_kmer"]["theta"])
    step = train.make_train_step(model, path)
    batch, key = _batch(X, np.arange(8)), jax.random.key(1)
    for _ in range(6):
        state, _ = step(state, batch, key)
    np.testing.assert_allclose(np.asarray(state.params["prior"]["raw_alpha"]), np.full(3, softplus_inverse(2.0)),
                               rtol=1e-6)
    assert not np.allclose(np.asarray(state.params["topic_kmer"]["theta"]), theta0)


def test_non_finite_step_is_skipped_and_counted():
    X = random_counts(8, 40)
    model = build_model(ModelConfig(num_topics=3, hidden_sizes=(8,)), 40)
    state = train.create_train_state(model, TrainConfig(steps=4, prior_burn_in_steps=0), jax.random.key(0))
    step = train.make_train_step(model, "sparse")
    batch = _batch(X, np.arange(8))
    bad = {"indices": batch["indices"], "counts": batch["counts"].at[0, 0].set(jnp.nan)}
    before = jax.tree.map(np.asarray, state.params)
    state, metrics = step(state, bad, jax.random.key(1))
    assert not bool(metrics["finite"])
    assert int(state.skipped_steps) == 1 and int(state.bad_steps) == 1 and int(state.step) == 1
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(state.params)):
        np.testing.assert_array_equal(a, np.asarray(b))
    state, metrics = step(state, batch, jax.random.key(1))
    assert bool(metrics["finite"]) and int(state.bad_steps) == 0 and int(state.skipped_steps) == 1


def test_fit_writes_outputs_and_improves_elbo(tmp_path):
    X = random_counts(72, 120)
    config = small_config(steps=60, log_every=10, eval_every=30, checkpoint_every=30, topic_table_every=30)
    # Random counts have no structure beyond their k-mer frequencies, which a background start
    # already holds; from Glorot logits the run has those frequencies to learn, so the ELBO must rise.
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, theta_init="glorot"))
    result = train.fit(config, X[:64], X[64:], "fp-test", tmp_path, kmers=[f"k{i}" for i in range(120)])
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == [10, 20, 30, 40, 50, 60]
    for key in ("loss", "elbo", "reconstruction", "kl", "perplexity", "prior_alpha_mean", "steps_per_sec"):
        assert all(np.isfinite(r[key]) for r in records), key
    assert {"val_elbo", "val_perplexity"} <= set(records[2]) and "val_elbo" not in records[1]
    assert records[-1]["elbo"] > records[0]["elbo"] + 0.3
    assert all(r["kl"] >= -1e-6 for r in records)
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == [30, 60]
    assert result.step == 60 and result.val_metrics["val_perplexity"] > 1


@pytest.mark.slow
def test_resume_gives_same_parameters_as_straight_run(tmp_path):
    X = random_counts(40, 60)
    straight = train.fit(small_config(steps=20), X, None, "fp", tmp_path / "straight")
    train.fit(small_config(steps=10), X, None, "fp", tmp_path / "resumed")
    resumed = train.fit(small_config(steps=20, resume=True), X, None, "fp", tmp_path / "resumed")
    for a, b in zip(jax.tree.leaves(straight.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_array_equal(a, b)
    steps = [r["step"] for r in read_metrics(tmp_path / "resumed")]
    assert steps == [5, 10, 15, 20]


@pytest.mark.slow
def test_existing_run_dir_needs_resume_or_overwrite(tmp_path):
    X = random_counts(20, 30)
    train.fit(small_config(steps=10, prior_burn_in_steps=5), X, None, "fp", tmp_path)
    with pytest.raises(ConfigError, match="train.resume"):
        train.fit(small_config(steps=10, prior_burn_in_steps=5), X, None, "fp", tmp_path)
    with pytest.raises(Exception, match="vocabulary fingerprint"):
        train.fit(small_config(steps=20, prior_burn_in_steps=5, resume=True), X, None, "other", tmp_path)
    result = train.fit(small_config(steps=10, prior_burn_in_steps=5, overwrite=True), X, None, "fp", tmp_path)
    assert result.step == 10


def test_train_config_rejects_burn_in_longer_than_run():
    with pytest.raises(ConfigError, match="train.prior_burn_in_steps"):
        TrainConfig(steps=10, prior_burn_in_steps=20)
    # a prior that is never learned has no burn-in to fit into the run
    assert TrainConfig(steps=10, prior_burn_in_steps=20, learn_prior=False).steps == 10
    with pytest.raises(ConfigError, match="train.batch_size"):
        TrainConfig(batch_size=0)
