"""`python -m experiments.train` end to end: outputs, overrides, sweeps, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bindvae.features.formats import FEATURES_FORMAT
from tests.conftest import REPO_ROOT
from tests.helpers.training import random_counts


def _write_features(path: Path) -> None:
    X = random_counts(80, 100)
    np.savez(path, format=FEATURES_FORMAT, fingerprint="test-vocab", shape=np.array(X.shape), indptr=X.indptr,
             indices=X.indices, data=X.data, names=np.array([f"s{i}" for i in range(X.shape[0])]))


def _train(*overrides, check=True):
    env = {**os.environ, "WANDB_MODE": "disabled", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-m", "experiments.train", *overrides], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr[-3000:])
    return proc


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "features.npz"
    _write_features(path)
    return path


@pytest.fixture(scope="module")
def smoke_run(features, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "smoke"
    _train("tiny=smoke", "data=npz", f"data.path={features}", "train.steps=50", "train.learning_rate=0.01",
           "train.log_every=10", "model.num_topics=3", "model.alpha=2", "train.seed=1", "logger=none",
           f"hydra.run.dir={run_dir}")
    return run_dir


@pytest.mark.slow
def test_cli_tiny_run_writes_all_outputs_and_elbo_improves(smoke_run):
    records = [json.loads(line) for line in (smoke_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20, 25, 30, 40, 50]  # 25: an evaluation step
    assert records[-1]["elbo"] > records[0]["elbo"]
    assert "val_elbo" in records[-1] and "val_perplexity" in records[-1]
    assert (smoke_run / ".hydra" / "config.yaml").exists()
    steps = sorted(int(p.name) for p in (smoke_run / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [25, 50]
    meta = json.loads((smoke_run / "checkpoints" / "50" / "metadata" / "metadata").read_text())
    assert meta["vocab_fingerprint"] == "test-vocab" and meta["config"]["model"]["num_topics"] == 3
    assert meta["config"]["model"]["alpha"] == 2.0 and meta["config"]["train"]["seed"] == 1


@pytest.mark.slow
def test_cli_refuses_to_overwrite_and_resumes(smoke_run):
    proc = _train(
        "tiny=smoke", "data=npz", "data.path=unused.npz", "logger=none", f"hydra.run.dir={smoke_run}", check=False
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "train.resume=true" in lines[0] and "Traceback" not in proc.stderr


def test_cli_missing_required_path_is_one_line_error(tmp_path):
    proc = _train("data=npz", "logger=none", f"hydra.run.dir={tmp_path}", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "error: config data.path" in proc.stderr


@pytest.mark.slow
def test_cli_multirun_two_values_gives_two_runs(features, tmp_path):
    _train("-m", "tiny=smoke", "data=npz", f"data.path={features}", "train.steps=10", "train.prior_burn_in_steps=5",
           "model.alpha=1,5", "logger=none", f"hydra.sweep.dir={tmp_path}")
    runs = sorted(p.name for p in tmp_path.iterdir() if (p / "metrics.jsonl").exists())
    assert runs == ["0_M4_a1.0_s0", "1_M4_a5.0_s0"]


def test_budget_preset_trains_on_chosen_kmers_and_the_paper_on_all():
    """train=budget (ours) also sets model.kmer_selection; train=paper keeps the paper's features."""
    from hydra import compose, initialize_config_dir

    from experiments.train import to_run_config  # registers the schema the train config extends

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        paper = compose("train")
        budget = compose("train", overrides=["train=budget"])
        mine = compose("train", overrides=["train=budget", "model.kmer_selection=none", "model.num_topics=20"])
    assert paper.model.kmer_selection == "none" and paper.train.learning_rate == 3e-4
    assert budget.model.kmer_selection == "dispersion" and budget.model.kmer_selection_size == 5000
    assert budget.train.learning_rate == 3e-3 and budget.train.max_minutes == 15 and budget.train.keep_best
    assert budget.model.num_topics == paper.model.num_topics == 100
    assert mine.model.kmer_selection == "none" and mine.model.num_topics == 20
    assert to_run_config(budget).model.kmer_selection == "dispersion"
    assert to_run_config(budget).train.restarts == 3 and to_run_config(paper).train.restarts == 1
    assert not to_run_config(budget).train.learn_prior and to_run_config(paper).train.learn_prior
