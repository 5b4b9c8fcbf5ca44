"""Labelled peak sets through a known model: AUROC per set and topic, best topics, UMAP, honest reporting."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bindvae.analysis import projection
from bindvae.features.kmers import Vocabulary
from experiments import project
from tests.analysis.test_report import _save_run
from tests.conftest import REPO_ROOT
from tests.helpers.analysis import planted_model

# Topic i of the planted model answers to PLANTED[i]: the CTCF set carries topic 2's site, MAFK topic 0's.
PLANTED = ["ATTGCATCAT", "GGGCCCGGGC", "GTCACGTGAC", "CTAATTAGCG"]
SITES = {"MAFK": PLANTED[0], "CTCF": PLANTED[2], "BG": None}
RC = str.maketrans("ACGT", "TGCA")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    vocab = Vocabulary.gapped8()
    path = tmp_path_factory.mktemp("run")
    _save_run(path, planted_model(vocab, PLANTED, num_topics=4), vocab)
    return path


def _peaks(rng, site: str | None, n: int, length: int = 100) -> list[str]:
    out = []
    for _ in range(n):
        seq = "".join(rng.choice(list("ACGT"), length))
        if site:
            at = int(rng.integers(0, length - len(site)))
            site_here = site if rng.random() < 0.5 else site[::-1].translate(RC)
            seq = seq[:at] + site_here + seq[at + len(site):]
        out.append(seq)
    return out


def _fasta(path, sequences, prefix: str, extra: dict | None = None):
    records = [(f"{prefix}{i}", s) for i, s in enumerate(sequences)] + list((extra or {}).items())
    path.write_text("".join(f">{name}\n{seq}\n" for name, seq in records))
    return path


def _sets(tmp_path, n: int = 40, seed: int = 0, extra: dict | None = None) -> str:
    rng = np.random.default_rng(seed)
    items = []
    for name, site in SITES.items():
        fasta = _fasta(tmp_path / f"{name}.fa", _peaks(rng, site, n), f"{name}_", extra if name == "CTCF" else None)
        items.append(f"{name}:{fasta}")
    return ",".join(items)


def _read(folder, name):
    return pd.read_csv(folder / name, sep="\t", comment="#", keep_default_na=False)


def test_planted_sets_best_topic_is_the_topic_of_their_motif(run_dir, tmp_path, capsys):
    assert project.main([f"run_dir={run_dir}", f"sets={_sets(tmp_path)}", "umap=false"]) == 0
    out = run_dir / "analysis" / "projection"
    auroc = _read(out, "set_topic_auroc.tsv")
    assert list(auroc.columns) == ["set", "topic", "auroc", "p_value", "best"]
    assert len(auroc) == 3 * 4 and auroc.groupby("set")["best"].sum().tolist() == [1, 1, 1]
    best = auroc[auroc["best"].astype(str) == "True"].set_index("set")
    assert best.loc["CTCF", "topic"] == 2 and best.loc["MAFK", "topic"] == 0
    for name in ("CTCF", "MAFK"):
        assert best.loc[name, "auroc"] > 0.95 and best.loc[name, "p_value"] < 1e-8
    table = _read(out, "projection.tsv")
    assert list(table.columns) == [
        "peak",
        "set",
        "umap_x",
        "umap_y",
        "topic_000",
        "topic_001",
        "topic_002",
        "topic_003",
    ]
    assert len(table) == 120 and table["set"].value_counts().to_dict() == {"MAFK": 40, "CTCF": 40, "BG": 40}
    np.testing.assert_allclose(table[["topic_000", "topic_001", "topic_002", "topic_003"]].sum(axis=1), 1.0, rtol=1e-5)
    assert (out / "best_topic_boxplots.png").stat().st_size > 0 and not (out / "umap.png").exists()
    assert "CTCF: best topic_002" in capsys.readouterr().out


def test_auroc_and_p_value_are_those_of_the_set_against_all_other_sets():
    rng = np.random.default_rng(3)
    scores = rng.random((30, 3))
    labels = ["a"] * 10 + ["b"] * 12 + ["c"] * 8
    scores[:10, 1] += 0.5  # set a is higher in topic 1
    table = projection.set_topic_auroc(scores, labels)
    own = np.array(labels) == "a"
    for m in range(3):
        row = table[(table["set"] == "a") & (table["topic"] == m)].iloc[0]
        u, p = stats.mannwhitneyu(scores[own, m], scores[~own, m], alternative="greater", method="asymptotic")
        np.testing.assert_allclose([row["auroc"], row["p_value"]], [u / (10 * 20), p], rtol=1e-10)
    assert table[table["best"]].set_index("set").loc["a", "topic"] == 1


def test_max_per_set_subsamples_and_says_so_and_windowless_sequences_are_listed(tmp_path):
    sets = projection.parse_sets(_sets(tmp_path, n=30, extra={"all_n": "N" * 50, "short": "ACGTAC"}))
    peaks = projection.read_sets(sets, max_per_set=12, seed=1)
    again = projection.read_sets(sets, max_per_set=12, seed=1)
    assert peaks.ids == again.ids and len(peaks.ids) == 36
    summary = peaks.summary.set_index("set")
    assert summary.loc["CTCF", "n_read"] == 32 and summary.loc["CTCF", "n_no_window"] == 2
    assert summary.loc["CTCF", "n_subsampled_out"] == 18 and bool(summary.loc["CTCF", "subsampled"])
    assert peaks.skipped[["set", "peak", "reason"]].values.tolist() == [["CTCF", "all_n", projection.NO_WINDOW],
                                                                       ["CTCF", "short", projection.NO_WINDOW]]
    assert "all_n" not in peaks.ids and "short" not in peaks.ids
    everything = projection.read_sets(sets)
    assert len(everything.ids) == 90 and not everything.summary["subsampled"].any()


def test_peak_files_are_cut_from_the_genome_and_missing_chromosomes_reported(run_dir, tmp_path):
    rng = np.random.default_rng(5)
    chrom = list("".join(rng.choice(list("ACGT"), 6000)))
    beds = {"CTCF": [], "MAFK": []}
    for k in range(20):
        for name, offset in (("CTCF", 0), ("MAFK", 3000)):
            start = offset + 50 + 140 * k
            chrom[start + 45: start + 55] = list(SITES[name])
            beds[name].append(f"chr1\t{start}\t{start + 100}\t{name}_{k}\n")
    (tmp_path / "genome.fa").write_text(">chr1\n" + "".join(chrom) + "\n")
    for name, lines in beds.items():
        (tmp_path / f"{name}.bed").write_text("".join(lines) + ("chrZ\t10\t110\tlost\n" if name == "MAFK" else ""))
    sets = f"CTCF:{tmp_path / 'CTCF.bed'},MAFK:{tmp_path / 'MAFK.bed'}"
    assert project.main([f"run_dir={run_dir}", f"sets={sets}", f"genome={tmp_path / 'genome.fa'}", "span=100",
                         "umap=false"]) == 0
    out = run_dir / "analysis" / "projection"
    best = _read(out, "set_topic_auroc.tsv").query("best == 'True' or best == True").set_index("set")
    assert best.loc["CTCF", "topic"] == 2 and best.loc["MAFK", "topic"] == 0
    assert _read(out, "skipped.tsv")[["peak", "reason"]].values.tolist() == [["lost", "chromosome not in the genome"]]
    assert _read(out, "sets.tsv").set_index("set").loc["MAFK", "n_read"] == 21


def test_umap_is_seeded_and_separates_the_planted_sets(run_dir, tmp_path):
    from sklearn.metrics import silhouette_score

    assert project.main([f"run_dir={run_dir}", f"sets={_sets(tmp_path, n=20)}", "n_neighbors=5", "seed=3"]) == 0
    out = run_dir / "analysis" / "projection"
    table = _read(out, "projection.tsv")
    coords = table[["umap_x", "umap_y"]].to_numpy(dtype=float)
    assert np.isfinite(coords).all() and (out / "umap.png").stat().st_size > 0
    planted = table["set"] != "BG"
    assert silhouette_score(coords[planted], table.loc[planted, "set"]) > 0.5
    scores = table[[c for c in table.columns if c.startswith("topic_")]].to_numpy(dtype=np.float32)
    first = projection.umap_embedding(scores, seed=3, n_neighbors=5)
    np.testing.assert_array_equal(first, projection.umap_embedding(scores, seed=3, n_neighbors=5))


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    from bindvae.features.kmers import Vocabulary

    vocab = Vocabulary.gapped8()
    run = tmp_path / "run"
    _save_run(run, planted_model(vocab, PLANTED, num_topics=4), vocab)
    good = _sets(tmp_path, n=5)
    (tmp_path / "nothing.fa").write_text(">x\nNNNNNNNNNNNN\n")
    (tmp_path / "empty_run").mkdir()
    cases = [
        ([f"run_dir={run}", f"sets=CTCF:{tmp_path / 'CTCF.fa'}"], "at least two sets"),
        ([f"run_dir={run}", f"sets={good},X:{tmp_path / 'missing.fa'}"], "no such file"),
        ([f"run_dir={run}", f"sets={good},X:{tmp_path / 'nothing.fa'}"], "no sequence with an 8 bp window"),
        ([f"run_dir={tmp_path / 'empty_run'}", f"sets={good}"], "no finished checkpoint"),
        ([f"run_dir={run}", f"sets={good}", "max_per_set=0"], "max_per_set"),
        ([f"run_dir={run}", f"sets={good}", "max_per_set=many"], "max_per_set"),
        ([f"run_dir={run}", f"sets={good}", "kind=median"], "kind"),
        ([f"run_dir={run}", "sets=CTCF"], "NAME:FILE"),
        ([f"run_dir={run}"], "sets"),
        ([f"run_dir={run}", f"sets={good}", "colour=red"], "unknown argument"),
    ]
    for argv, message in cases:
        assert project.main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and err.startswith("error:") and message in err, (argv, err)
    assert not (run / "analysis").exists() and not (tmp_path / "empty_run" / "analysis").exists()


def test_help_prints_usage_and_writes_nothing(tmp_path, capsys):
    assert project.main(["--help", f"run_dir={tmp_path}"]) == 0
    assert "python -m experiments.project run_dir=" in capsys.readouterr().out
    assert not (tmp_path / "analysis").exists()


def test_module_answers_help_from_the_command_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-m", "experiments.project", "--help"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "python -m experiments.project" in result.stdout, result.stderr[-1000:]
    assert not any(tmp_path.iterdir())


def test_expected_counts_rank_the_sets_by_their_topics_too(run_dir, tmp_path):
    # kind=counts: each topic's expected share of a peak's k-mers; the planted sets keep their topics,
    # and a row sums to the peak's k-mer count instead of 1.
    assert project.main([f"run_dir={run_dir}", f"sets={_sets(tmp_path)}", "umap=false", "kind=counts"]) == 0
    out = run_dir / "analysis" / "projection"
    best = _read(out, "set_topic_auroc.tsv")
    best = best[best["best"].astype(str) == "True"].set_index("set")
    assert best.loc["CTCF", "topic"] == 2 and best.loc["MAFK", "topic"] == 0
    assert best.loc["CTCF", "auroc"] > 0.95 and best.loc["MAFK", "auroc"] > 0.95
    table = _read(out, "projection.tsv")
    totals = table[[f"topic_{m:03d}" for m in range(4)]].sum(axis=1)
    assert totals.min() > 100  # a 100 bp peak holds hundreds of gapped 8-mer occurrences
    assert "latent score: counts" in (out / "projection.tsv").read_text().splitlines()[0]
