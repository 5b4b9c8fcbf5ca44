"""Training streamed from a sharded data set: it trains, skips validation rows, and resumes exactly."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from bindvae import training as train
from bindvae.config import DataConfig, RunConfig
from bindvae.data import stream
from bindvae.features import shards
from bindvae.tracking import read_metrics
from experiments.train import load_training_data
from tests.helpers.training import random_counts, small_config


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", False)


@pytest.fixture
def sharded(tmp_path):
    X = random_counts(96, 120)
    return shards.write_shards(tmp_path / "set", X, [f"s{i}" for i in range(96)], "fp-test", shard_size=16)


def test_fit_streams_shards_and_improves_elbo(sharded, tmp_path):
    config = small_config(steps=40, log_every=10, eval_every=20, checkpoint_every=20, val_fraction=0.1)
    val_X = stream.load_validation(sharded, 0.1, config.train.seed, max_rows=sharded.shard_size)
    assert 3 <= val_X.shape[0] <= 16
    result = train.fit(config, sharded, val_X, "fp-test", tmp_path / "run")
    records = read_metrics(tmp_path / "run")
    assert [r["step"] for r in records] == [10, 20, 30, 40] and result.step == 40
    assert "val_elbo" in records[1] and np.isfinite(records[-1]["val_elbo"])
    assert records[-1]["elbo"] > records[0]["elbo"]


def test_streamed_run_resumes_to_the_same_parameters(sharded, tmp_path):
    full = train.fit(small_config(steps=20, checkpoint_every=10), sharded, None, "fp-test", tmp_path / "a")
    train.fit(small_config(steps=10, checkpoint_every=10), sharded, None, "fp-test", tmp_path / "b")
    resumed = train.fit(
        small_config(steps=20, checkpoint_every=10, resume=True), sharded, None, "fp-test", tmp_path / "b"
    )
    for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_shards_source_loads_validation_and_training_stream(sharded):
    base = small_config(val_fraction=0.25)
    config = RunConfig(model=base.model, train=base.train, data=DataConfig(source="shards", path=str(sharded.path)))
    train_rows, val_X, fingerprint, kmers = load_training_data(config)
    assert isinstance(train_rows, shards.ShardIndex) and fingerprint == "fp-test" and kmers is None
    expected = sum(int(stream.validation_mask(i, 16, 0.25, base.train.seed).sum()) for i in range(6))
    assert val_X.shape == (min(expected, 16), 120)
