"""Several initialisations, the best by validation ELBO trained on (``train.restarts``, ours)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bindvae import checkpoint as ckpt
from bindvae import training as train
from bindvae.config import TrainConfig
from bindvae.errors import ConfigError
from bindvae.tracking import read_metrics
from tests.helpers.training import random_counts, small_config


def _with_train(config, **changes):
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **changes))


def _theta(run_dir):
    return np.asarray(ckpt.load_checkpoint(run_dir).params["topic_kmer"]["theta"])


def test_restarts_train_on_from_the_start_with_the_best_validation_elbo(tmp_path):
    X, val = random_counts(48, 40), random_counts(16, 40, seed=3)
    config = _with_train(small_config(steps=20, eval_every=10, learning_rate=0.05), restarts=4, restart_steps=10)
    result = train.fit(config, X, val, "fp", tmp_path / "restarts")
    assert result.step == 20
    chosen = ckpt.load_checkpoint(tmp_path / "restarts").metadata["restarts"]
    tried = chosen["tried"]
    assert len(tried) == 4 and np.all(np.isfinite(tried)) and len(set(tried)) == 4  # four different starts
    assert chosen["chosen"] == int(np.argmax(tried))
    assert result.steps_per_sec * result.elapsed_s == pytest.approx(20 + 3 * 10)  # every step trained counts

    # Start 1 is the single start of restarts=1: same validation ELBO after the same 10 steps.
    single = train.fit(_with_train(config, restarts=1), X, val, "fp", tmp_path / "single")
    at_10 = next(r["val_elbo"] for r in read_metrics(tmp_path / "single") if r["step"] == 10)
    assert tried[0] == pytest.approx(at_10, rel=1e-5)
    # The run went on from the chosen start: its model is the single run's exactly when start 1 won.
    same = np.array_equal(_theta(tmp_path / "restarts"), _theta(tmp_path / "single"))
    assert same == (chosen["chosen"] == 0)
    assert single.step == 20


def test_a_restarted_run_resumes_like_an_uninterrupted_one(tmp_path):
    X, val = random_counts(48, 40), random_counts(16, 40, seed=3)
    config = _with_train(small_config(steps=20, eval_every=10, checkpoint_every=5, learning_rate=0.05,
                                      prior_burn_in_steps=10), restarts=3, restart_steps=10, seed=1)
    train.fit(config, X, val, "fp", tmp_path / "whole")
    train.fit(_with_train(config, steps=15), X, val, "fp", tmp_path / "parts")
    resumed = train.fit(_with_train(config, resume=True), X, val, "fp", tmp_path / "parts")
    assert resumed.step == 20
    chosen = ckpt.load_checkpoint(tmp_path / "whole").metadata["restarts"]
    assert ckpt.load_checkpoint(tmp_path / "parts").metadata["restarts"] == chosen  # kept across the resume
    np.testing.assert_allclose(_theta(tmp_path / "parts"), _theta(tmp_path / "whole"), rtol=1e-5, atol=1e-6)


def test_restarts_are_refused_without_validation_data_or_room_to_choose(tmp_path):
    with pytest.raises(ConfigError, match="train.val_fraction"):
        TrainConfig(steps=100, prior_burn_in_steps=10, restarts=2, restart_steps=10, val_fraction=0.0)
    with pytest.raises(ConfigError, match="train.restart_steps"):
        TrainConfig(steps=100, prior_burn_in_steps=10, restarts=2, restart_steps=100)
    with pytest.raises(ConfigError, match="train.restarts"):
        TrainConfig(steps=100, prior_burn_in_steps=10, restarts=0)
    config = _with_train(small_config(steps=20), restarts=2, restart_steps=10)
    with pytest.raises(ConfigError, match="no validation sequences"):
        train.fit(config, random_counts(24, 40), None, "fp", tmp_path)
    assert not ckpt.list_steps(tmp_path)
