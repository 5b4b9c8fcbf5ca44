"""A run killed with SIGKILL resumes to the same parameters; partial checkpoints never look valid;
an existing run is never overwritten without train.resume or train.overwrite."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from bindvae import checkpoint as ckpt
from bindvae import training as train
from bindvae.config import TrainConfig
from bindvae.errors import ConfigError
from bindvae.features.formats import FEATURES_FORMAT
from tests.conftest import REPO_ROOT
from tests.helpers.training import random_counts, small_config

STEPS = 100
# A tiny model on 120 k-mers: the run is dominated by checkpoint writes, so a kill lands mid-run.
OVERRIDES = [
    "model.num_topics=3", "model.hidden_sizes=[8]", f"train.steps={STEPS}", "train.batch_size=8",
    "train.prior_burn_in_steps=40", "train.learning_rate=0.01", "train.checkpoint_every=20", "train.log_every=20",
    "train.eval_every=0", "train.topic_table_every=0", "train.compute_path=sparse", "train.progress=false",
    "train.val_fraction=0.1", "train.keep_checkpoints=2", "logger=none", "train.seed=3",
]


def write_tiny_features(path: Path) -> None:
    """A feature dataset over a made-up 120-k-mer vocabulary (the .npz layout of bindvae.features.kmers)."""
    X = random_counts(48, 120, seed=1)
    np.savez(path, format=np.array(FEATURES_FORMAT), fingerprint=np.array("tiny-test-vocabulary"),
             shape=np.array(X.shape, np.int64), indptr=X.indptr.astype(np.int64), indices=X.indices.astype(np.int32),
             data=X.data.astype(np.float32), names=np.array([f"s{i}" for i in range(48)]))


def train_command(features: Path, run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "experiments.train", "data=npz", f"data.path={features}", *OVERRIDES,
            f"hydra.run.dir={run_dir}", *extra]


def env() -> dict:
    # Compile-time optimisations off (as in the straight run below): the same numbers, compiled faster.
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "WANDB_MODE": "disabled", "JAX_DISABLE_MOST_OPTIMIZATIONS": "1"}


def finished_steps(run_dir: Path) -> list[int]:
    folder = run_dir / "checkpoints"
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else []


def tree_digest(run_dir: Path) -> dict:
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((run_dir / "checkpoints").rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_matches_straight_run(tmp_path):
    features = tmp_path / "tiny.npz"
    write_tiny_features(features)
    run_dir = tmp_path / "run"
    victim = subprocess.Popen(train_command(features, run_dir), cwd=tmp_path, env=env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 150
    while not finished_steps(run_dir) and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL, victim.stderr.read().decode()[-2000:]
    killed_at = ckpt.list_steps(run_dir)
    assert killed_at and killed_at[-1] < STEPS
    for step in killed_at:  # whatever the kill interrupted, every listed checkpoint is whole
        assert ckpt.load_checkpoint(run_dir, step=step).step == step

    # Without train.resume the run directory is refused and left exactly as it is.
    before = tree_digest(run_dir)
    with pytest.raises(ConfigError, match="train.resume"):
        train.prepare_run_dir(run_dir, TrainConfig(steps=STEPS, prior_burn_in_steps=40))
    assert tree_digest(run_dir) == before

    resumed = subprocess.run(train_command(features, run_dir, "train.resume=true"), cwd=tmp_path, env=env(),
                             capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming from step {killed_at[-1]}" in resumed.stdout + resumed.stderr
    final = ckpt.load_checkpoint(run_dir)
    assert final.step == STEPS

    # The straight run in a process of its own, like the killed and resumed ones: a run inside the
    # test process inherits whatever earlier tests left in it.
    straight = subprocess.run(train_command(features, tmp_path / "straight"), cwd=tmp_path, env=env(),
                              capture_output=True, text=True, timeout=180)
    assert straight.returncode == 0, straight.stderr[-2000:]
    reference = ckpt.load_checkpoint(tmp_path / "straight")
    leaves = jax.tree_util.tree_leaves_with_path(reference.params)
    assert len(leaves) == len(jax.tree.leaves(final.params))
    for (path, expected), got in zip(leaves, jax.tree.leaves(final.params)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(expected), err_msg=jax.tree_util.keystr(path))
    steps = [r["step"] for r in map(__import__("json").loads, (run_dir / "metrics.jsonl").read_text().splitlines())]
    assert steps == list(range(20, STEPS + 1, 20))  # no step logged twice after the resume


@pytest.mark.slow
def test_partial_or_damaged_checkpoints_are_skipped_on_restore_and_redone_on_resume(tmp_path):
    X = random_counts(24, 40)
    train.fit(small_config(steps=20), X, None, "fp", tmp_path)
    folder = tmp_path / "checkpoints"
    # A checkpoint damaged after it was written (half of each file): restore falls back to step 10.
    for path in (folder / "20" / "state").rglob("*"):
        if path.is_file() and path.stat().st_size > 0:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    # What a kill can leave: orbax's temporary folder, and a step folder whose files are incomplete.
    (folder / "30.orbax-checkpoint-tmp-1234567" / "state").mkdir(parents=True)
    (folder / "40" / "state").mkdir(parents=True)
    (folder / "40" / "state" / "_METADATA").write_bytes(b'{"tree_metadata": ')
    assert ckpt.list_steps(tmp_path) == [10, 20]
    assert ckpt.load_checkpoint(tmp_path).step == 10
    resumed = train.fit(small_config(steps=30, resume=True), X, None, "fp", tmp_path)
    assert resumed.step == 30 and ckpt.list_steps(tmp_path)[-2:] == [20, 30]
    assert ckpt.load_checkpoint(tmp_path, step=20).step == 20  # redone, readable again
    assert sorted(p.name for p in folder.iterdir() if "unusable" in p.name) == ["20.unusable", "40.unusable"]
