"""TF retrieval scores (Table S4): precision, recall and F1 of named TFs against a gold list."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bindvae.analysis import retrieval
from bindvae.features.kmers import Vocabulary
from bindvae.motif import Motif, write_meme
from experiments import analyze
from tests.analysis.test_chip_overlap import PLANTED, write_probes
from tests.analysis.test_report import _decoded_model, _save_run


def test_scores_equal_hand_computed_values():
    named = ["CTCF", "mafk", "Nrf1", "ZNF9", "MAX::MYC"]
    nameable = ["CTCF", "MAFK", "NRF1", "ZNF9", "SP1", "MAX::MYC"]
    gold = ["ctcf", "NRF1", "SP1", "MYC", "GATA1"]  # GATA1 cannot be named: not counted
    # named {CTCF, MAFK, NRF1, ZNF9, MAX, MYC} = 6; gold {CTCF, NRF1, SP1, MYC} = 4; both {CTCF, NRF1, MYC} = 3.
    got = retrieval.scores(named, nameable, gold)
    assert got == {"n_nameable": 7, "n_gold": 4, "n_named": 6, "true_positives": 3, "precision": 0.5,
                   "recall": 0.75, "f1": 0.6, "baseline_precision": 4 / 7}
    nothing = retrieval.scores([], nameable, ["GATA1"])
    assert nothing["true_positives"] == 0 and all(math.isnan(nothing[k]) for k in ("precision", "recall", "f1"))
    assert retrieval.scores(["CTCF"], nameable, ["GATA1"])["f1"] == 0.0


def test_read_gold_skips_comments_and_blank_lines(tmp_path):
    path = tmp_path / "gold.txt"
    path.write_text("# expressed in GM12878\nCTCF\tENSG00000102974\n\n  NRF1\n")
    assert retrieval.read_gold(path) == ["CTCF", "NRF1"]
    path.write_text("# nothing\n\n")
    with pytest.raises(retrieval.InputError, match="names no TF"):
        retrieval.read_gold(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A run whose topics carry planted sites, probes of four TFs and a database of five motifs."""
    folder = tmp_path_factory.mktemp("retrieval")
    vocab = Vocabulary.gapped8()
    _save_run(folder / "run", _decoded_model(vocab, PLANTED, num_topics=4), vocab)
    rng = np.random.default_rng(3)
    probes = write_probes(folder / "probes.tsv", rng)
    # The run saves no training data, so the analysis is given peaks to score.
    (folder / "peaks.fa").write_text("".join(f">p{i}\n{seq}\n" for i, (seq, _) in enumerate(probes[::10])))
    eye = np.eye(4) * 0.94 + 0.015
    motifs = [Motif(f"MA{i}", eye[["ACGT".index(c) for c in site]], tf)
              for i, (tf, site) in enumerate({"MAFK": PLANTED[0], "CTCF": PLANTED[2], "HOXA": PLANTED[3],
                                              "SP1": "GGGGCGGGGC", "GATA1": "AGATAAGGCA"}.items())]
    write_meme(folder / "db.meme", motifs)
    (folder / "gold.txt").write_text("CTCF\nHOXA\nDECOY\nSP1\nGATA1\nPOU2F2\n")
    return folder


def test_analyze_writes_retrieval_scores_of_both_namings(inputs, capsys):
    run = inputs / "run"
    assert analyze.main([f"run_dir={run}", f"probes={inputs / 'probes.tsv'}", f"motif_db={inputs / 'db.meme'}",
                         f"gold={inputs / 'gold.txt'}", f"peaks={inputs / 'peaks.fa'}"]) == 0
    mapping = pd.read_csv(run / "analysis" / "tf_mapping.tsv", sep="\t", comment="#")
    assert set(mapping.loc[mapping["assigned"], "tf"]) == {"MAFK", "CTCF", "HOXA"}  # DECOY's topic is GC-rich
    matches = pd.read_csv(run / "analysis" / "motif_matches.tsv", sep="\t", comment="#")
    assert set(matches.loc[matches["assigned"], "target_name"]) == {"MAFK", "CTCF", "HOXA"}
    table = pd.read_csv(run / "analysis" / "retrieval.tsv", sep="\t", comment="#").set_index("method")
    assert list(table.columns) == retrieval.COLUMNS[:1] + retrieval.COLUMNS[2:]
    # Algorithm 1: universe = the 4 probe TFs; gold there {CTCF, HOXA, DECOY}; named {MAFK, CTCF, HOXA}.
    a1 = table.loc[retrieval.ALGORITHM_1]
    assert a1[["n_nameable", "n_gold", "n_named", "true_positives"]].tolist() == [4, 3, 3, 2]
    np.testing.assert_allclose(a1[["precision", "recall", "f1", "baseline_precision"]].to_numpy(float),
                               [2 / 3, 2 / 3, 2 / 3, 3 / 4], rtol=1e-5)  # written to 6 digits
    # Motif similarity: universe = the 5 database TFs; gold there {CTCF, HOXA, SP1, GATA1}.
    ms = table.loc[retrieval.MOTIF_SIMILARITY]
    assert ms[["n_nameable", "n_gold", "n_named", "true_positives"]].tolist() == [5, 4, 3, 2]
    np.testing.assert_allclose(ms[["precision", "recall", "f1", "baseline_precision"]].to_numpy(float),
                               [2 / 3, 1 / 2, 4 / 7, 4 / 5], rtol=1e-5)
    assert "TF retrieval against gold.txt (Table S4)" in (run / "analysis" / "report.html").read_text()
    assert "TF retrieval (run, Algorithm 1): precision 0.667 (2/3 named), recall 0.667 (2/3 gold)" in \
        capsys.readouterr().out


def test_sweep_scores_each_run_and_the_ensemble_of_the_best(inputs, tmp_path):
    vocab = Vocabulary.gapped8()
    # Run a names MAFK and HOXA, run b only CTCF (the decoy topics name nothing): the ensemble names all three.
    _save_run(tmp_path / "a", _decoded_model(vocab, [PLANTED[0], PLANTED[1], PLANTED[3]], num_topics=3), vocab)
    _save_run(tmp_path / "b", _decoded_model(vocab, PLANTED[1:3], num_topics=2), vocab)
    assert analyze.main([f"sweep_dir={tmp_path}", f"probes={inputs / 'probes.tsv'}", "motif_db=none", "n_best=2",
                         f"gold={inputs / 'gold.txt'}"]) == 0
    table = pd.read_csv(tmp_path / "analysis" / "retrieval.tsv", sep="\t", comment="#")
    assert table["run"].tolist() == ["a", "b", "ensemble of 2 best"]
    assert set(table["method"]) == {retrieval.ALGORITHM_1}  # no database: no motif similarity
    rows = table.set_index("run")
    assert rows.loc["a", ["n_named", "true_positives"]].tolist() == [2, 1]  # HOXA is gold, MAFK is not
    assert rows.loc["b", ["n_named", "true_positives"]].tolist() == [1, 1]
    ensemble = rows.loc["ensemble of 2 best"]
    assert ensemble[["n_named", "true_positives", "n_gold"]].tolist() == [3, 2, 3]


def test_gold_errors_are_one_line(inputs, tmp_path, capsys):
    run = inputs / "run"
    cases = [([f"run_dir={run}", "motif_db=none", f"gold={inputs / 'gold.txt'}"], "gold: retrieval scores need"),
             ([f"run_dir={run}", "motif_db=none", f"probes={inputs / 'probes.tsv'}", f"gold={tmp_path / 'no.txt'}"],
              "no.txt: no such file")]
    for argv, message in cases:
        assert analyze.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and err.startswith("error:") and message in err, err
