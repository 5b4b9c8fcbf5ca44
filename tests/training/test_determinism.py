"""The same config and seed give bit-identical data, batches and parameters on the CPU."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from bindvae import training as train
from bindvae.config import DataConfig
from bindvae.data import datasets as data_lib
from bindvae.tracking import read_metrics
from tests.helpers.training import random_counts, small_config


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", False)


def test_data_split_and_batch_order_depend_only_on_the_seed():
    config = DataConfig(source="synthetic", n_sequences=40, sequence_length=60)
    a, b, c = (data_lib.load_dataset(config, seed=s) for s in (5, 5, 6))
    assert (a.X != b.X).nnz == 0 and a.names == b.names
    assert (a.X != c.X).nnz > 0
    split_a, split_b = data_lib.split_train_val(a.X, 0.2, 5), data_lib.split_train_val(b.X, 0.2, 5)
    np.testing.assert_array_equal(split_a[2], split_b[2])
    np.testing.assert_array_equal(data_lib.batch_rows(40, 8, 5, 0, 12), data_lib.batch_rows(40, 8, 5, 0, 12))
    # Resuming at step 7 sees exactly the batches a straight run sees from step 7 on.
    np.testing.assert_array_equal(data_lib.batch_rows(40, 8, 5, 7, 5), data_lib.batch_rows(40, 8, 5, 0, 12)[7:])


@pytest.mark.slow
def test_same_seed_gives_bit_identical_parameters(tmp_path):
    X = random_counts(40, 60)
    # The dense path is what compute_path=auto picks on the CPU.
    config = dict(steps=20, compute_path="dense", checkpoint_every=20, eval_every=20)
    runs = [train.fit(small_config(seed=1, **config), X[:36], X[36:], "fp", tmp_path / name) for name in "ab"]
    for x, y in zip(jax.tree.leaves(runs[0].params), jax.tree.leaves(runs[1].params)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    logged = [[{k: v for k, v in r.items() if k != "steps_per_sec"} for r in read_metrics(tmp_path / n)] for n in "ab"]
    assert logged[0] == logged[1]  # every logged loss, KL and validation number too
