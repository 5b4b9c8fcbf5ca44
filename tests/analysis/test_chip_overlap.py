"""Accessible peaks labelled by ChIP-seq overlap through a known model (experiments.project peaks= chip=)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bindvae.analysis import chip_overlap
from bindvae.analysis.chip_overlap import Windows
from bindvae.features.kmers import Vocabulary
from experiments import project
from tests.analysis.test_report import _decoded_model, _save_run

# Topic i of the model answers to PLANTED[i] (encoder and decoder); topic 1 is a GC-rich decoy.
PLANTED = ["ATTGCATCAT", "GGGCCCGGGC", "GTCACGTGAC", "CTAATTAGCG"]
PROBE_TFS = {"MAFK": PLANTED[0], "CTCF": PLANTED[2], "HOXA": PLANTED[3], "DECOY": PLANTED[1]}


def write_probes(path, rng) -> list[tuple[str, str]]:
    """30 probes of 20 bp per PROBE_TFS entry, each with its site at 5-15, written as a probe TSV."""
    probes = []
    for tf, site in PROBE_TFS.items():
        for _ in range(30):
            seq = "".join(rng.choice(list("ACGT"), 20))
            probes.append((seq[:5] + site + seq[15:], tf))
    pd.DataFrame(probes, columns=["sequence", "tf"]).to_csv(path, sep="\t", index=False)
    return probes
N_PEAKS, STEP, WIDTH = 120, 150, 100  # accessible peaks: [100 + STEP i, + WIDTH), windows of span=WIDTH
CTCF, MAFK = range(0, 40), range(40, 80)  # carriers of each planted site; peaks 80.. are background


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    vocab = Vocabulary.gapped8()
    path = tmp_path_factory.mktemp("run")
    _save_run(path, _decoded_model(vocab, PLANTED, num_topics=4), vocab)
    return path


def _start(i: int) -> int:
    return 100 + STEP * i


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Genome, accessible peaks, three ChIP sets and probes, with known overlaps."""
    folder = tmp_path_factory.mktemp("chip")
    rng = np.random.default_rng(7)
    chrom = list("".join(rng.choice(list("ACGT"), 100 + STEP * N_PEAKS + 200)))
    for i in [*CTCF, *MAFK]:
        site = PROBE_TFS["CTCF" if i in CTCF else "MAFK"]
        at = _start(i) + 45
        chrom[at: at + 10] = list(site)
    (folder / "genome.fa").write_text(">chr1\n" + "".join(chrom) + "\n")
    (folder / "atac.bed").write_text("".join(f"chr1\t{_start(i)}\t{_start(i) + WIDTH}\tp{i}\n" for i in range(N_PEAKS)))
    # CTCF covers its carriers by 60 bp; background peak 80 by exactly 49 bp, peak 81 by exactly 50 bp.
    ctcf = [(_start(i) + 40, _start(i) + 140) for i in CTCF] + [(_start(80) + 51, _start(80) + 120),
                                                             (_start(81) + 50, _start(81) + 120)]
    mafk = [(_start(i) - 30, _start(i) + 70) for i in MAFK]  # 70 bp
    nrf1 = [(_start(i) + 20, _start(i) + 90) for i in range(90, 100)]  # background peaks, TF without probes
    for name, intervals in (("ctcf", ctcf), ("mafk", mafk), ("nrf1", nrf1)):
        (folder / f"{name}.bed").write_text("".join(f"chr1\t{s}\t{e}\n" for s, e in intervals))
    write_probes(folder / "probes.tsv", rng)
    return folder, {"CTCF": ctcf, "MAFK": mafk, "NRF1": nrf1}


def _chip_arg(folder) -> str:
    return f"CTCF:{folder / 'ctcf.bed'},MAFK:{folder / 'mafk.bed'},NRF1:{folder / 'nrf1.bed'}"


def _read(folder, name):
    return pd.read_csv(folder / name, sep="\t", comment="#", keep_default_na=False)


def _direct_labels(intervals, min_overlap: int) -> list[int]:
    """Label of every accessible window by a plain interval comparison."""
    return [int(any(min(_start(i) + WIDTH, e) - max(_start(i), s) >= min_overlap for s, e in intervals))
            for i in range(N_PEAKS)]


def test_planted_chip_sets_score_their_mapped_topics(run_dir, files, capsys):
    folder, intervals = files
    assert project.main([f"run_dir={run_dir}", f"peaks={folder / 'atac.bed'}", f"genome={folder / 'genome.fa'}",
                         f"chip={_chip_arg(folder)}", f"span={WIDTH}", f"probes={folder / 'probes.tsv'}",
                         "motif_db=none"]) == 0
    out = run_dir / "analysis" / "chip_overlap"
    labels = _read(out, "peak_labels.tsv")
    assert labels["peak"].tolist() == [f"p{i}" for i in range(N_PEAKS)]
    assert labels["start"].tolist() == [_start(i) for i in range(N_PEAKS)]
    for tf in ("CTCF", "MAFK", "NRF1"):
        assert labels[tf].tolist() == _direct_labels(intervals[tf], 50), tf
    assert labels.loc[80, "CTCF"] == 0 and labels.loc[81, "CTCF"] == 1  # 49 bp vs 50 bp

    scores = _read(out, "overlap_scores.tsv").set_index("tf")
    assert list(scores.columns) == chip_overlap.SCORE_COLUMNS[1:]
    assert scores.loc["CTCF", "topic"] == 2 and scores.loc["MAFK", "topic"] == 0
    for tf in ("CTCF", "MAFK"):
        row = scores.loc[tf]
        assert row["mapped_by"] == "Algorithm 1" and float(row["auroc"]) > 0.9 and float(row["p_value"]) < 1e-10
        assert row["best_topic"] == row["topic"]
    assert scores.loc["CTCF", "n_overlapping"] == 41 and scores.loc["CTCF", "n_other"] == N_PEAKS - 41
    assert scores.loc["NRF1", "topic"] == -1 and scores.loc["NRF1", "mapped_by"] == ""
    assert scores.loc["NRF1", "auroc"] == "" and float(scores.loc["NRF1", "best_auroc"]) > 0.5

    rows = _read(out, "heatmap_rows.tsv")
    assert rows["tf"].tolist() == ["CTCF"] * 41 + ["MAFK"] * 40  # largest block first; NRF1 is unmapped
    assert sorted(rows.loc[rows["tf"] == "CTCF", "peak"]) == [*CTCF, 81]
    for tf, block in rows.groupby("tf"):
        assert (np.diff(block["score"].to_numpy(dtype=float)) <= 0).all(), tf  # sorted by the topic's score
    topic_scores = labels[[f"topic_{m:03d}" for m in range(4)]].to_numpy(dtype=float)
    np.testing.assert_allclose(rows["score"].to_numpy(dtype=float),
                               topic_scores[rows["peak"].to_numpy(), rows["topic"].to_numpy()], rtol=1e-5)
    for name in ("clr_heatmap.png", "chip_labels.png", "overlap_boxplots.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert 'id="chip-overlap"' in (out / "report.html").read_text()
    printed = capsys.readouterr().out
    assert "CTCF: topic_002 (Algorithm 1)" in printed and "NRF1: not mapped to a topic" in printed


def test_overlap_counts_equal_a_direct_comparison_and_honour_the_threshold():
    rng = np.random.default_rng(11)
    for _ in range(50):
        def draw(n):
            starts = rng.integers(0, 2000, n)
            return Windows.from_lists(rng.choice(["chr1", "chr2", "chrX"], n), starts, starts + rng.integers(0, 300, n))

        windows, chip = draw(int(rng.integers(1, 60))), draw(int(rng.integers(0, 60)))
        k = int(rng.integers(1, 120))
        direct = [sum(c == w_c and min(w_e, e) - max(w_s, s) >= k for c, s, e in zip(chip.chrom, chip.start, chip.end))
                  for w_c, w_s, w_e in zip(windows.chrom, windows.start, windows.end)]
        assert chip_overlap.overlap_counts(windows, chip, k).tolist() == direct
    windows = Windows.from_lists(["chr1", "chr1", "chr2"], [0, 1000, 0], [200, 1200, 200])
    chip = Windows.from_lists(["chr1", "chr1", "chr1"], [151, 1150, 0], [400, 1300, 49])
    # chr1 window 0 meets [151, 400) by 49 bp and [0, 49) by 49 bp; window 1 meets [1150, 1300) by 50 bp.
    assert chip_overlap.overlap_counts(windows, chip, 50).tolist() == [0, 1, 0]
    assert chip_overlap.overlap_counts(windows, chip, 49).tolist() == [2, 1, 0]


def test_tf_topics_by_motif_similarity_when_no_probes():
    # Names match ignoring case, a dimer names both partners, the smallest q wins, unassigned matches name nothing.
    matches = pd.DataFrame({"query": ["topic_003", "topic_001", "topic_002", "topic_000", "topic_003"],
                            "target": ["MA1", "MA2", "MA3", "MA4", "MA5"],
                            "target_name": ["CTCF", "MAX::MYC", "CTCF", "Nrf1", "ZNF1"],
                            "q_value": [1e-5, 1e-4, 1e-3, 1e-2, 1e-9], "rank": [1, 1, 1, 1, 2],
                            "assigned": [True, True, True, True, False]})
    topics = chip_overlap.tf_topics(["CTCF", "MYC", "NRF1", "ZNF1"], None, matches).set_index("tf")
    assert topics.loc["CTCF", "topic"] == 3 and topics.loc["CTCF", "mapped_by"] == chip_overlap.MOTIF_SIMILARITY
    assert topics.loc["MYC", "topic"] == 1 and topics.loc["NRF1", "topic"] == 0
    assert topics.loc["ZNF1", "topic"] == -1 and topics.loc["ZNF1", "mapped_by"] == ""


def test_bad_input_is_one_line_and_writes_nothing(files, tmp_path, capsys):
    folder, _ = files
    vocab = Vocabulary.gapped8()
    run = tmp_path / "run"
    _save_run(run, _decoded_model(vocab, PLANTED, num_topics=4), vocab)
    (tmp_path / "elsewhere.bed").write_text("chrZ\t100\t300\n")
    base = [f"run_dir={run}", f"peaks={folder / 'atac.bed'}", f"genome={folder / 'genome.fa'}",
            f"probes={folder / 'probes.tsv'}", "motif_db=none", f"span={WIDTH}"]
    chip = f"chip={_chip_arg(folder)}"
    cases = [
        ([*base, f"chip=CTCF={folder / 'ctcf.bed'}"], "TF:FILE"),
        ([*base, f"chip=CT CF:{folder / 'ctcf.bed'}"], "not a name"),
        ([*base, f"chip=CTCF:{folder / 'ctcf.bed'},ctcf:{folder / 'mafk.bed'}"], "given twice"),
        ([*base, f"chip=CTCF:{tmp_path / 'missing.bed'}"], "missing.bed: no such file"),
        ([*base, f"chip=CTCF:{tmp_path / 'elsewhere.bed'}"], "no accessible peak overlaps it by >= 50 bp"),
        ([*base[:2], base[3], chip], "genome= is required"),
        ([*base[:2], f"genome={tmp_path / 'g.fa'}", *base[3:], chip], "g.fa: no such file"),
        ([*base[:1], f"peaks={tmp_path / 'atac.bed'}", *base[2:], chip], "atac.bed: no such file"),
        ([*base, chip, "min_overlap=0"], "min_overlap"),
        ([*base, chip, "min_overlap=fifty"], "min_overlap"),
        ([*base, chip, "max_per_set=3"], "belongs to sets="),
        ([*base[:3], "motif_db=none", chip], "needs probes="),
    ]
    for argv, message in cases:
        assert project.main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and err.startswith("error:") and message in err, (argv, err)
    assert not (run / "analysis").exists()
