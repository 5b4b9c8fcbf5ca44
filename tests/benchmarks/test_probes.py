"""The real-probe benchmark: best topic per family, the summary over seeds, a tiny run end to end, its CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from benchmarks.recovery import probes
from bindvae.errors import ConfigError, InputError
from tests.conftest import REPO_ROOT

FAMILIES = ["homeobox", "homeobox", "E-box", "homeobox", "block 4"]


def test_best_topics_finds_each_familys_topic_and_flags_shared_ones():
    families = np.array(["A"] * 4 + ["B"] * 4 + ["C"] * 4)
    scores = np.zeros((12, 3))
    scores[:4, 0] = 1.0                 # topic 0 separates A perfectly
    scores[4:8, 0] = 0.5                # B sits between A and C there: AUROC 0.5
    scores[4:6, 1] = 1.0                # topic 1 holds half of B: AUROC 0.75
    scores[8:, 0] = 0.2
    scores[[8, 9, 10], 2] = 1.0         # topic 2: three of C's four probes, AUROC 0.875
    frame = probes.best_topics(scores, families).set_index("family")
    assert frame.loc["A", "topic"] == 0 and frame.loc["A", "auroc"] == pytest.approx(1.0)
    assert frame.loc["B", "topic"] == 1 and frame.loc["B", "auroc"] == pytest.approx(0.75)
    assert frame.loc["C", "topic"] == 2 and frame.loc["C", "auroc"] == pytest.approx(0.875)
    assert frame["own_topic"].all()
    shared = np.zeros((12, 3))
    shared[:8, 0] = 1.0                 # one topic holds A and B (each at 0.75), C keeps its own
    shared[[8, 9, 10], 2] = 1.0
    frame = probes.best_topics(shared, families).set_index("family")
    assert list(frame["topic"]) == [0, 0, 2] and frame.loc["A", "auroc"] == pytest.approx(0.75)
    assert list(frame["own_topic"]) == [False, False, True]


def test_summary_counts_a_seed_only_when_every_family_meets_the_target_on_its_own_topic():
    table = pd.DataFrame({
        "seed": [0, 0, 1, 1, 2, 2], "score": ["mean"] * 6, "family": ["A", "B"] * 3,
        "topic": [0, 1, 0, 0, 2, 1], "auroc": [0.99, 0.96, 0.99, 0.97, 0.99, 0.90],
        "own_topic": [True, True, False, False, True, True], "limit": [1.0, 0.96] * 3})
    summary = probes.summarize(table, 0.95).set_index("family")
    assert summary.loc["A", "seeds_met"] == 2 and summary.loc["B", "seeds_met"] == 1
    assert summary.loc["all", "seeds_met"] == 1 and summary.loc["all", "seeds"] == 3
    assert summary.loc["B", "mean"] == pytest.approx((0.96 + 0.97 + 0.90) / 3)
    assert summary.loc["B", "fraction"] == pytest.approx(summary.loc["B", "mean"] / 0.96)
    assert summary.loc["A", "min"] == pytest.approx(0.99) and summary.loc["B", "max"] == pytest.approx(0.97)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="probes"):
        probes.config_from_dict({})
    with pytest.raises(ConfigError, match="colour"):
        probes.config_from_dict({"probes": "p.tsv", "colour": 1})
    with pytest.raises(ConfigError, match="scores"):
        probes.config_from_dict({"probes": "p.tsv", "scores": ["mean", "median"]})
    with pytest.raises(ConfigError, match="target"):
        probes.config_from_dict({"probes": "p.tsv", "target": 0.3})


def test_reading_names_the_file_when_families_are_missing(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("block\tsequence\n0\tACGTACGTACGT\n1\tTTTTACGTACGA\n2\tACGTACGTTTTT\n", encoding="ascii")
    with pytest.raises(InputError, match="3 blocks but only 2"):
        probes.read_families(probes.ProbesConfig(probes=str(path), families=("a", "b")))
    with pytest.raises(InputError, match="has 1 probes"):
        probes.read_families(probes.ProbesConfig(probes=str(path), families=("a", "b", "c")))


def test_supervised_limits_of_the_reference_probes(reference_dir):
    from bindvae.features.kmers import Vocabulary, featurize

    config = probes.ProbesConfig(probes=str(reference_dir / "selex_probes_sample100.tsv"), families=tuple(FAMILIES))
    sequences, families = probes.read_families(config)
    assert len(sequences) == 100 and (families == "homeobox").sum() == 60
    limits = probes.supervised_limits(featurize(sequences, Vocabulary.gapped8()), families, (0, 1), 0.05, 3)
    # measured: E-box 1.0, homeobox 0.986-0.988, block 4 0.943-0.958 (three of its 20 probes lack its site)
    assert limits["E-box"] == pytest.approx(1.0)
    assert 0.97 < limits["homeobox"] < 1.0
    assert 0.9 < limits["block 4"] < 0.98


def test_cli_runs_a_tiny_benchmark_and_the_e_box_family_gets_its_topic(reference_dir, tmp_path):
    out = tmp_path / "out"
    probe_table = reference_dir / "selex_probes_sample100.tsv"
    args = [sys.executable, "-m", "experiments.benchmark_probes", f"probes={probe_table}", "seeds=[0]",
            "scores=[mean,counts]", "run.train.steps=150", "run.train.restarts=1",
            "run.train.checkpoint_every=150", f"hydra.run.dir={out}"]
    done = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    table = pd.read_csv(out / "probes.tsv", sep="\t")
    assert set(table["score"]) == {"mean", "counts"} and set(table["family"]) == {"homeobox", "E-box", "block 4"}
    ebox = table[(table["family"] == "E-box") & (table["score"] == "mean")].iloc[0]
    assert ebox["auroc"] > 0.95 and ebox["limit"] == pytest.approx(1.0)
    assert (out / "seed_0" / "checkpoints").is_dir() and (out / "data" / "probes.fa").is_file()
    assert "| mean | all |" in done.stdout


def test_cli_error_is_one_line(tmp_path):
    args = [sys.executable, "-m", "experiments.benchmark_probes", f"probes={tmp_path / 'missing.tsv'}",
            f"hydra.run.dir={tmp_path / 'out'}"]
    done = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    message = done.stderr.strip()
    assert message.startswith("error:") and "missing.tsv" in message and len(message.splitlines()) == 1
    assert not (tmp_path / "out" / "probes.tsv").exists()
