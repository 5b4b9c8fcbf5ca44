"""Invalid configs fail before compute with the key named; the KL stays >= 0; non-finite steps never
reach the parameters; a diverging run stops with its last good checkpoint intact."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import digamma as digamma64
from scipy.special import gammaln as gammaln64

from bindvae import checkpoint as ckpt
from bindvae import training as train
from bindvae.config import DataConfig, ModelConfig, RunConfig, TrainConfig, from_dict
from bindvae.data import datasets as data_lib
from bindvae.errors import ConfigError
from bindvae.tracking import read_metrics
from bindvae.vae import objectives
from bindvae.vae.network import build_model
from tests.conftest import REPO_ROOT
from tests.helpers.training import random_counts, small_config


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", False)


def cli_train(*args, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "experiments.train", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=180)


# --- config --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "key"),
    [
        (lambda: ModelConfig(num_topics=0), "model.num_topics"),
        (lambda: ModelConfig(alpha=0.0), "model.alpha"),
        (lambda: ModelConfig(alpha=-1.0), "model.alpha"),
        (lambda: TrainConfig(batch_size=0), "train.batch_size"),
        (lambda: TrainConfig(steps=100, prior_burn_in_steps=101), "train.prior_burn_in_steps"),
        (lambda: DataConfig(source="bam"), "data.source"),
        (lambda: DataConfig(source="npz"), "data.path"),
        (lambda: from_dict({"train": {"stpes": 3}}), "train.stpes"),
        (lambda: from_dict({"train": {"overwrite": "maybe"}}), "train.overwrite"),  # a word would read as true
    ],
)
def test_invalid_config_names_the_key(build, key):
    with pytest.raises(ConfigError) as err:
        build()
    assert err.value.key == key and str(err.value).startswith(f"config {key}: ")


def test_cli_invalid_values_rejected_before_any_output(tmp_path):
    result = cli_train("tiny=smoke", "logger=none", "model.alpha=-2", "data.source=bam",
                       f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: config model.alpha: must be > 0"), result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "metrics.jsonl").exists()


def test_cli_unwritable_run_dir_is_one_line(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    result = cli_train("tiny=smoke", "logger=none", f"hydra.run.dir={tmp_path / 'a_file' / 'run'}", cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: config hydra.run.dir: cannot write to "), result.stderr
    assert (tmp_path / "a_file").read_text() == "not a folder"


def test_unwritable_workdir_rejected_before_data_is_loaded(tmp_path, monkeypatch):
    from experiments import train as train_cli

    def not_reached(*args, **kwargs):
        raise AssertionError("data was loaded before the output folder was checked")

    monkeypatch.setattr(data_lib, "load_dataset", not_reached)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ConfigError) as err:
        train_cli.run(RunConfig(), tmp_path / "a_file" / "run")
    assert "cannot write to" in str(err.value)
    with pytest.raises(ConfigError, match="cannot write to"):  # the library checks too
        train.fit(small_config(), random_counts(8, 30), None, "fp", tmp_path / "a_file" / "run")


# --- numerics ------------------------------------------------------------------------------


def _kl64(a, b):
    a, b = np.asarray(a, np.float64), np.broadcast_to(np.asarray(b, np.float64), np.shape(a))
    a0, b0 = a.sum(-1), b.sum(-1)
    return (gammaln64(a0) - gammaln64(b0) + (gammaln64(b) - gammaln64(a)).sum(-1)
            + ((a - b) * (digamma64(a) - digamma64(a0)[..., None])).sum(-1))


concentrations = st.floats(float(np.float32(0.1)), 1000.0, width=32)


@settings(max_examples=100, deadline=None)
@given(
    # Three widths only: each new shape costs a compile.
    a=st.sampled_from([1, 7, 40]).flatmap(lambda m: st.lists(concentrations, min_size=m, max_size=m)),
    scale=st.floats(0.5, 2.0),
    jitter=st.floats(0.0, 1e-3),
)
def test_kl_never_below_zero_and_matches_float64(a, scale, jitter):
    a = np.asarray(a, np.float32)[None, :]
    # The prior is close to the posterior (the cancellation-prone case) or a rescaled copy of it.
    b = np.clip(a[0] * np.float32(scale) * (1 + np.float32(jitter)), 0.1, 1000.0).astype(np.float32)
    for prior in (b, a[0] * np.float32(1 + jitter)):
        kl = np.asarray(objectives.dirichlet_kl(jnp.asarray(a), jnp.asarray(prior)))
        assert np.all(np.isfinite(kl)) and kl.min() >= -1e-6
        exact = _kl64(a, prior)
        # float32 lgamma of sums up to 4e4: absolute error grows with the magnitude of the terms.
        tolerance = 1e-3 * max(1.0, float(exact.max())) + 2e-6 * float(gammaln64(a.astype(np.float64).sum()))
        np.testing.assert_allclose(kl, exact, atol=tolerance)


def test_kl_of_model_on_extreme_inputs_is_finite_and_nonnegative():
    model = build_model(ModelConfig(num_topics=5, alpha=10.0, hidden_sizes=(8,)), 40)
    state = train.create_train_state(model, TrainConfig(steps=2, prior_burn_in_steps=0), jax.random.key(0))
    indices = jnp.tile(jnp.arange(16, dtype=jnp.int32), (4, 1))
    counts = jnp.stack([jnp.zeros(16), jnp.full(16, 1e5), jnp.ones(16), jnp.full(16, 1e-3)]).astype(jnp.float32)
    terms = jax.jit(lambda params, key: train.row_terms(model, params, indices, counts, key, "sparse"))
    _, kl, _ = terms(state.params, jax.random.key(1))
    kl = np.asarray(kl)
    assert np.all(np.isfinite(kl)) and kl.min() >= -1e-6


def _with_inf_row(X: sp.csr_matrix, row: int) -> sp.csr_matrix:
    X = X.tolil(copy=True)
    X[row, 0] = np.inf
    return X.tocsr()


def test_inf_counts_are_skipped_counted_and_never_reach_the_parameters(tmp_path):
    X = _with_inf_row(random_counts(16, 40), row=5)
    config = small_config(steps=20, batch_size=8, log_every=5, checkpoint_every=10, max_bad_steps=5)
    result = train.fit(config, X, None, "fp", tmp_path)
    rows = data_lib.batch_rows(16, 8, config.train.seed, 0, 20)
    expected = int(sum(5 in r for r in rows))
    assert expected > 0 and result.skipped_steps == expected
    for leaf in jax.tree.leaves(result.params):
        assert np.all(np.isfinite(np.asarray(leaf)))
    records = read_metrics(tmp_path)
    assert records[-1]["skipped_steps"] == expected
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["elbo"]) for r in records)
    restored = ckpt.load_checkpoint(tmp_path)
    assert int(restored.extra["skipped_steps"]) == expected


@pytest.mark.slow
def test_consecutive_bad_steps_stop_the_run_and_keep_the_last_good_checkpoint(tmp_path):
    good = random_counts(16, 40)
    first = train.fit(small_config(steps=20, max_bad_steps=4, log_every=5), good, None, "fp", tmp_path)
    before = {s: (tmp_path / "checkpoints" / str(s)).stat().st_mtime_ns for s in ckpt.list_steps(tmp_path)}
    poisoned = good.copy()
    poisoned.data[:] = np.inf
    with pytest.raises(train.TrainingDiverged) as err:
        train.fit(small_config(steps=40, max_bad_steps=4, log_every=5, resume=True), poisoned, None, "fp", tmp_path)
    message = str(err.value)
    # The count is read at the next log or checkpoint point, so the run stops within log_every steps.
    n_bad = int(re.search(r"(\d+) consecutive non-finite steps", message).group(1))
    assert 4 <= n_bad < 4 + 5, message
    assert "last good checkpoint (step 20) is kept" in message
    assert ckpt.list_steps(tmp_path) == [10, 20]
    assert {s: (tmp_path / "checkpoints" / str(s)).stat().st_mtime_ns for s in ckpt.list_steps(tmp_path)} == before
    kept = ckpt.load_checkpoint(tmp_path)
    for a, b in zip(jax.tree.leaves(first.params), jax.tree.leaves(kept.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_max_bad_steps_is_configurable():
    with pytest.raises(ConfigError, match="train.max_bad_steps"):
        TrainConfig(max_bad_steps=0)
    assert RunConfig(train=TrainConfig(max_bad_steps=3, steps=10, prior_burn_in_steps=5)).train.max_bad_steps == 3
