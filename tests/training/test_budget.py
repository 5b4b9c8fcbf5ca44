"""Training on a budget: learning-rate warm-up and cosine decay (the same on every compute path),
a time limit, early stopping on validation ELBO, and the best checkpoint kept for analysis."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import optax
import pytest

from bindvae import checkpoint as ckpt
from bindvae import training as train
from bindvae.config import TrainConfig
from bindvae.errors import ConfigError
from bindvae.tracking import read_metrics
from tests.helpers.training import random_counts, small_config


def _with_train(config, **changes):
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **changes))


def test_schedule_warms_up_then_decays_to_the_final_fraction():
    config = TrainConfig(steps=100, prior_burn_in_steps=10, learning_rate=1e-2, warmup_steps=10, decay="cosine",
                         final_lr_fraction=0.1)
    schedule = train.learning_rate_schedule(config)
    rates = np.array([float(schedule(i)) for i in range(101)])
    np.testing.assert_allclose(rates[[0, 5, 10]], [0.0, 5e-3, 1e-2], rtol=1e-6)
    assert np.all(np.diff(rates[10:]) <= 1e-9) and rates[100] == pytest.approx(1e-3)
    assert train.learning_rate_schedule(TrainConfig(steps=100, prior_burn_in_steps=10)) == 3e-4  # the paper's
    warm = train.learning_rate_schedule(TrainConfig(steps=100, prior_burn_in_steps=10, warmup_steps=4))
    assert [float(warm(i)) for i in (0, 2, 4, 50)] == pytest.approx([0.0, 1.5e-4, 3e-4, 3e-4])
    with pytest.raises(ConfigError, match="train.decay"):
        TrainConfig(steps=100, prior_burn_in_steps=10, decay="step")
    with pytest.raises(ConfigError, match="train.val_fraction"):
        TrainConfig(steps=100, prior_burn_in_steps=10, patience=2, val_fraction=0.0)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the fused path is CPU only")
def test_fused_step_follows_the_schedule_like_optax():
    # Six steps through warm-up and decay: the fused kernels' Adam reads the rate optax would use.
    from tests.kernels.test_fused import _assert_trees_close, _batches, _run

    config = TrainConfig(
        steps=6,
        batch_size=8,
        prior_burn_in_steps=3,
        learning_rate=0.01,
        warmup_steps=2,
        decay="cosine",
        final_lr_fraction=0.2,
    )
    batches = _batches(6)
    fused, fused_metrics = _run("fused_cpu", batches, config)
    reference, ref_metrics = _run("sparse_cpu", batches, config)
    _assert_trees_close(reference.params, fused.params, "params")
    _assert_trees_close(reference.opt_state, fused.opt_state, "opt_state")
    constant, _ = _run("fused_cpu", batches, dataclasses.replace(config, warmup_steps=0, decay="none"))
    theta = lambda s: np.asarray(s.params["topic_kmer"]["theta"])  # noqa: E731
    assert np.abs(theta(constant) - theta(fused)).max() > 1e-3  # the schedule changed the run


def test_time_limit_stops_with_a_checkpoint_that_resumes(tmp_path):
    X = random_counts(24, 40)
    config = _with_train(small_config(steps=40, checkpoint_every=40, eval_every=0), max_minutes=1e-6)
    result = train.fit(config, X, None, "fp", tmp_path)
    assert "time limit" in result.stop_reason and result.step < 40
    assert ckpt.list_steps(tmp_path)[-1] == result.step
    resumed = train.fit(_with_train(config, max_minutes=0.0, resume=True), X, None, "fp", tmp_path)
    assert resumed.step == 40 and not resumed.stop_reason


def test_patience_stops_when_validation_stops_improving(tmp_path):
    X, val = random_counts(24, 40), random_counts(8, 40, seed=3)
    # A learning rate too small to move the ELBO: every evaluation after the first is no better.
    config = _with_train(small_config(steps=40, eval_every=5, learning_rate=1e-30), patience=2)
    result = train.fit(config, X, val, "fp", tmp_path)
    assert "has not improved for 2 evaluations" in result.stop_reason
    assert result.step == 15 and ckpt.list_steps(tmp_path)[-1] == 15
    assert "stopped early" in train.summary(result)


def test_keep_best_keeps_the_checkpoint_with_the_best_validation_elbo(tmp_path):
    from bindvae.infer import load_model

    X, val = random_counts(48, 40), random_counts(16, 40, seed=3)
    config = _with_train(small_config(steps=40, eval_every=5, learning_rate=0.05), keep_best=True)
    result = train.fit(config, X, val, "fp", tmp_path)
    records = [r for r in read_metrics(tmp_path) if "val_elbo" in r]
    best = max(records, key=lambda r: r["val_elbo"])["step"]
    assert result.best_step == best
    assert ckpt.list_steps(tmp_path, ckpt.BEST_DIR) == [best]
    model = load_model(tmp_path, features_fingerprint="fp")
    assert model.step == best
    np.testing.assert_array_equal(
        np.asarray(model.params["topic_kmer"]["theta"]),
        np.asarray(ckpt.load_checkpoint(tmp_path, folder=ckpt.BEST_DIR).params["topic_kmer"]["theta"]),
    )
    # Starting over drops the old best checkpoint with the old run.
    train.fit(
        _with_train(config, steps=10, overwrite=True, keep_best=False, prior_burn_in_steps=5), X, val, "fp", tmp_path
    )
    assert not ckpt.checkpoint_dir(tmp_path, ckpt.BEST_DIR).exists()


def test_paper_optimiser_state_layout_is_unchanged():
    # A constant rate builds exactly optax.adam's state, so checkpoints of paper runs still load.
    config = TrainConfig(steps=10, prior_burn_in_steps=5)
    params = {"encoder": {"w": np.zeros(2, np.float32)}, "prior": {"raw": np.zeros(1, np.float32)}}
    state = train.make_optimizer(config).init(params)
    net = state.inner_states["net"].inner_state
    assert isinstance(net[0], optax.ScaleByAdamState) and isinstance(net[1], optax.EmptyState)
