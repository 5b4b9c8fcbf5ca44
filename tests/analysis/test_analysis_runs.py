"""Topics across runs: matching, reproducibility, seed spread, PCA, and the compare entry point."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bindvae.analysis import runs as runs_lib
from bindvae.config import LoggerConfig, ModelConfig, RunConfig, TrainConfig, to_dict
from bindvae.features.kmers import Vocabulary
from experiments import compare
from tests.conftest import REPO_ROOT
from tests.helpers.analysis import random_model

M = 6


@pytest.fixture(scope="module")
def vocab():
    return Vocabulary.gapped8()


def _config(seed: int = 0, alpha: float = 1.0, name: str | None = None) -> dict:
    return to_dict(RunConfig(model=ModelConfig(num_topics=M, alpha=alpha, hidden_sizes=(16, 16)),
                             train=TrainConfig(seed=seed), logger=LoggerConfig(name=name)))


def _save_run(run_dir, model, fingerprint: str, config: dict) -> None:
    from bindvae.checkpoint import save_checkpoint

    state = {"params": model.params, "opt_state": {"unused": np.zeros(1)}, "step": 5, "rng": np.zeros(2, np.uint32)}
    save_checkpoint(run_dir, state, {"config": config, "vocab_fingerprint": fingerprint,
                                     "n_kmers": model.network.n_kmers, "num_topics": model.num_topics})


def _run(label: str, clr: np.ndarray, config: dict | None = None) -> runs_lib.RunTopics:
    return runs_lib.RunTopics(label, label, clr, config or {})


def _topics(seed: int, n: int = M, width: int = 2000) -> np.ndarray:
    theta = np.random.default_rng(seed).normal(size=(n, width))
    return theta - theta.mean(axis=1, keepdims=True)


def test_run_compared_with_itself_reproduces_every_topic(tmp_path, vocab):
    model = random_model(vocab, num_topics=M, seed=3)
    _save_run(tmp_path / "a", model, vocab.fingerprint, _config())
    code = compare.main([f"runs={tmp_path / 'a'},{tmp_path / 'a'}", "labels=first,second"])
    assert code == 0
    out = tmp_path / "a" / "analysis" / "compare"
    matching = pd.read_csv(out / "topic_matching.tsv", sep="\t", comment="#")
    assert list(matching.columns) == ["run_a", "run_b", "topic_a", "topic_b", "similarity", "matched"]
    assert (matching["topic_a"] == matching["topic_b"]).all() and matching["matched"].all() and len(matching) == M
    np.testing.assert_allclose(matching["similarity"], 1.0, atol=1e-9)
    pairs = pd.read_csv(out / "reproducibility.tsv", sep="\t", comment="#")
    assert pairs[["fraction_a", "fraction_b"]].to_numpy().tolist() == [[1.0, 1.0]]
    spread = pd.read_csv(out / "seed_spread.tsv", sep="\t", comment="#")
    assert spread["runs"].tolist() == ["first,second"] and spread["fraction_mean"].tolist() == [1.0]
    pca = pd.read_csv(out / "theta_pca.tsv", sep="\t", comment="#")
    assert len(pca) == 2 * M
    first, second = pca[pca["run"] == "first"], pca[pca["run"] == "second"]
    np.testing.assert_allclose(first[["pc1", "pc2"]].to_numpy(), second[["pc1", "pc2"]].to_numpy(), atol=1e-9)
    assert (out / "theta_pca.png").stat().st_size > 0 and (out / "reproducibility.png").stat().st_size > 0
    header = (out / "topic_matching.tsv").read_text().splitlines()[0]
    assert "Pearson" in header and ">= 0.5" in header


def test_permuted_topics_are_matched_by_that_permutation():
    base = _topics(0)
    permutation = np.array([3, 0, 5, 1, 4, 2])
    noisy = base[permutation] + 0.3 * _topics(1)  # B's topic k is A's topic permutation[k], plus noise
    matching, pairs, _ = runs_lib.compare_topics([_run("a", base), _run("b", noisy), _run("c", _topics(2))])
    ab = matching[(matching["run_a"] == "a") & (matching["run_b"] == "b")].sort_values("topic_b")
    assert ab["topic_a"].tolist() == permutation.tolist() and ab["matched"].all()
    assert (ab["similarity"] > 0.9).all()
    # An unrelated run's topics are paired (Hungarian always pairs) but none is reproduced.
    assert pairs.set_index(["run_a", "run_b"]).loc[("a", "c"), "n_matched"] == 0
    assert not matching[matching["run_b"] == "c"]["matched"].any()


def test_runs_with_different_numbers_of_topics_leave_topics_unpaired():
    base = _topics(0)
    matching, pairs, _ = runs_lib.compare_topics([_run("a", base), _run("b", base[[4, 1]])])
    paired = matching[matching["topic_b"] >= 0].sort_values("topic_b")
    assert paired["topic_a"].tolist() == [4, 1] and paired["matched"].all()
    assert sorted(matching.loc[matching["topic_b"] < 0, "topic_a"]) == [0, 2, 3, 5]
    row = pairs.iloc[0]
    assert (row["n_matched"], row["fraction_a"], row["fraction_b"]) == (2, 2 / M, 1.0)


def test_seed_replicates_are_grouped_and_their_spread_is_exact():
    base = _topics(0)
    half = np.concatenate([base[:3], _topics(5)[3:]])  # shares topics 0-2 with base, not 3-5
    runs = [_run("s0", base, _config(seed=0, name="M6_s0")), _run("s1", base[::-1], _config(seed=1, name="M6_s1")),
            _run("s2", half, _config(seed=2)), _run("other", base, _config(seed=0, alpha=10.0))]
    assert runs_lib.seed_groups(runs) == [[0, 1, 2]]
    _, pairs, spread = runs_lib.compare_topics(runs)
    flags = pairs.set_index(["run_a", "run_b"])["seed_replicates"]
    assert flags[("s0", "s1")] and flags[("s1", "s2")] and not flags[("s0", "other")]
    row = spread.iloc[0]
    assert row["runs"] == "s0,s1,s2" and row["seeds"] == "0,1,2" and row["n_pairs"] == 3
    np.testing.assert_allclose([row["fraction_mean"], row["fraction_min"], row["fraction_max"]], [2 / 3, 0.5, 1.0])
    np.testing.assert_allclose(row["fraction_sd"], np.std([1.0, 1.0, 0.5, 0.5, 0.5, 0.5], ddof=1))


def test_pca_recovers_planted_axes_of_all_runs_together():
    # Topics = a large offset shared by all + a run shift along u + a per-topic spread along v (u, v, w orthogonal).
    rng = np.random.default_rng(0)
    u, v, w = np.linalg.qr(rng.normal(size=(2000, 3)))[0].T
    spread = rng.normal(size=(2, M))
    spread -= spread.mean(axis=1, keepdims=True)  # uncorrelated with the run, so u and v stay the axes
    runs = [_run(name, 100.0 * w + sign * 10.0 * u + 3.0 * spread[k][:, None] * v)
            for k, (name, sign) in enumerate([("a", -1.0), ("b", 1.0)])]
    table, explained = runs_lib.topic_pca(runs)
    run_sign = np.where(table["run"] == "a", -1.0, 1.0)
    assert abs(np.corrcoef(table["pc1"], run_sign)[0, 1]) > 0.999
    assert abs(np.corrcoef(table["pc2"], spread.ravel())[0, 1]) > 0.999
    np.testing.assert_allclose(explained.sum(), 1.0, atol=1e-9)  # nothing else varies
    assert explained[0] > explained[1]


def test_tfs_in_common_come_from_each_runs_analysis(tmp_path):
    for name, tfs in [("a", ["CTCF", "NRF1", "SP1"]), ("b", ["CTCF", "SP1", "YY1"])]:
        (tmp_path / name / "analysis").mkdir(parents=True)
        rows = [{"topic": "topic_000", "tf": tf, "assigned": True} for tf in tfs]
        rows.append({"topic": "topic_001", "tf": "MAX", "assigned": False})
        pd.DataFrame(rows).to_csv(tmp_path / name / "analysis" / "tf_mapping.tsv", sep="\t", index=False)
    runs = [dataclasses.replace(_run(n, _topics(0)), tfs=runs_lib.assigned_tfs(tmp_path / n)) for n in "ab"]
    _, pairs, _ = runs_lib.compare_topics(runs)
    assert pairs[["tfs_a", "tfs_b", "tfs_in_common"]].to_numpy().tolist() == [[3, 3, 2]]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error:"), err
    return err


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, vocab, capsys):
    model = random_model(vocab, num_topics=M, seed=3)
    _save_run(tmp_path / "a", model, vocab.fingerprint, _config())
    _save_run(tmp_path / "other_vocab", model, "0" * 64, _config())
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    cases = {
        f"runs={tmp_path / 'a'}": "at least two",
        f"runs={tmp_path / 'a'},{tmp_path / 'empty'}": "no finished checkpoint",
        f"runs={tmp_path / 'a'},{tmp_path / 'other_vocab'}": "vocabulary fingerprint",
        f"runs={tmp_path / 'a'},{tmp_path / 'missing'}": "not found",
    }
    for runs_arg, message in cases.items():
        assert compare.main([runs_arg, f"out={out}"]) == 2
        assert message in _error_line(capsys)
    assert compare.main([f"runs={tmp_path / 'a'},{tmp_path / 'a'}", f"out={out}"]) == 2  # same label twice
    assert "labels" in _error_line(capsys)
    assert compare.main([f"runs={tmp_path / 'a'},{tmp_path / 'a'}", "labels=x", f"out={out}"]) == 2
    assert compare.main(["nonsense=1"]) == 2
    capsys.readouterr()
    assert not out.exists() and not (tmp_path / "a" / "analysis").exists()


def test_help_prints_usage_and_writes_nothing(tmp_path, capsys):
    assert compare.main(["--help", f"out={tmp_path / 'x'}"]) == 0
    assert "python -m experiments.compare runs=" in capsys.readouterr().out
    assert not (tmp_path / "x").exists()


def test_module_answers_help_from_the_command_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-m", "experiments.compare", "--help"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "python -m experiments.compare" in result.stdout, result.stderr[-1000:]
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_configs_saved_by_training_group_two_seeds_and_not_another_learning_rate(tmp_path):
    from bindvae.checkpoint import load_checkpoint
    from bindvae.training import fit
    from tests.helpers.training import random_counts, small_config

    X = random_counts(32, 120)
    runs = []
    for seed in (0, 1):
        config = small_config(steps=2, prior_burn_in_steps=1, eval_every=0, checkpoint_every=2, seed=seed)
        fit(config, X, None, "fp", tmp_path / f"s{seed}")
        saved = load_checkpoint(tmp_path / f"s{seed}")
        theta = np.asarray(saved.params["topic_kmer"]["theta"], dtype=np.float64)
        runs.append(_run(f"seed{seed}", theta - theta.mean(axis=1, keepdims=True), saved.config))
    other = {**runs[0].config, "train": {**runs[0].config["train"], "learning_rate": 5e-3}}
    runs.append(dataclasses.replace(runs[0], label="lr", config=other))
    assert runs_lib.seed_groups(runs) == [[0, 1]]
    _, pairs, spread = runs_lib.compare_topics(runs)
    assert spread[["runs", "seeds", "n_pairs"]].values.tolist() == [["seed0,seed1", "0,1", 1]]
    assert pairs["seed_replicates"].tolist() == [True, False, False]
