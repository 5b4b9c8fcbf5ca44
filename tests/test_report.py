"""The analyze entry point end to end on a small known model, and its report in a headless browser."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from html import escape

import numpy as np
import pandas as pd
import pytest

from bindvae.features.kmers import Vocabulary
from experiments import analyze
from tests.helpers_analysis import planted_model

CHROMIUM = "/usr/bin/chromium"
# E-box (block 2 of the probe sample), a homeobox site (blocks 0, 1, 3), block 4's site, and a decoy.
PLANTED = ["GTCACGTGAC", "CTAATTAGCG", "ATTGCATCAT", "GGGCCCGGGC"]


def _decoded_model(vocab, planted, num_topics):
    """:func:`planted_model` whose decoder agrees: topic i's phi favours ``planted[i]``'s k-mers.

    The composition rules read the decoder; a random one would make every topic background.
    """
    from bindvae.features.kmers import featurize

    model = planted_model(vocab, planted, num_topics=num_topics)
    theta = np.zeros((num_topics, len(vocab)), np.float32)
    for i, kmer in enumerate(planted):
        theta[i, featurize([kmer], vocab).indices] = 5.0
    params = {**model.params, "topic_kmer": {**model.params["topic_kmer"], "theta": theta}}
    return dataclasses.replace(model, params=params)


def _save_run(run_dir, model, vocab):
    from bindvae.checkpoint import save_checkpoint
    from bindvae.config import ModelConfig

    net = model.network
    config = ModelConfig(num_topics=net.num_topics, alpha=net.alpha, hidden_sizes=tuple(net.hidden_sizes))
    state = {"params": model.params, "opt_state": {"unused": np.zeros(1)}, "step": 3, "rng": np.zeros(2, np.uint32)}
    save_checkpoint(
        run_dir,
        state,
        {
            "config": {"model": dataclasses.asdict(config)},
            "vocab_fingerprint": vocab.fingerprint,
            "n_kmers": len(vocab),
            "num_topics": net.num_topics,
        },
    )


@pytest.fixture(scope="module")
def analysed(tmp_path_factory, reference_dir):
    vocab = Vocabulary.gapped8()
    run_dir = tmp_path_factory.mktemp("run")
    _save_run(run_dir, _decoded_model(vocab, PLANTED, num_topics=4), vocab)
    probes = pd.read_csv(reference_dir / "selex_probes_sample100.tsv", sep="\t")
    fasta = run_dir / "peaks.fa"
    fasta.write_text("".join(f">p{i}\n{s}\n" for i, s in enumerate(probes["sequence"])))
    code = analyze.main(
        [
            f"run_dir={run_dir}",
            f"peaks={fasta}",
            f"probes={reference_dir / 'selex_probes_sample100.tsv'}",
            "tf_per_block=HOX_A,HOX_B,EBOX,HOX_C,B4",
            f"motif_db={reference_dir / 'jolma_selex_pwms_converted_all.meme'}",
        ]
    )
    assert code == 0
    return run_dir / "analysis"


def test_analyze_writes_every_output(analysed):
    for name in ("topic_kmers.tsv", "topic_10mers.tsv", "motifs.meme", "motif_matches.tsv", "tf_mapping.tsv",
                 "peak_tfs.tsv", "accessibility.tsv", "topic_kmer_heatmap.png", "probe_heatmap.png",
                 "accessibility.png", "report.html"):
        assert (analysed / name).is_file(), name
    assert sorted(os.listdir(analysed / "logos")) == [f"topic_{m:03d}.png" for m in range(4)]
    assert not [n for n in os.listdir(analysed) if n.startswith(".tmp_")]
    assert "jolma_selex_pwms_converted_all.meme (295 motifs)" in (analysed / "motif_matches.tsv").read_text()


def test_analyze_names_planted_topics(analysed):
    mapping = pd.read_csv(analysed / "tf_mapping.tsv", sep="\t", comment="#")
    best = mapping.sort_values("p_value").groupby("tf").first()
    assert best.loc["EBOX", "topic"] == "topic_000" and best.loc["EBOX", "assigned"]
    assert best.loc["HOX_A", "topic"] == "topic_001" and best.loc["HOX_A", "assigned"]
    assert best.loc["HOX_B", "topic"] == "topic_001" and best.loc["HOX_B", "assigned"]
    assert best.loc["B4", "topic"] == "topic_002" and best.loc["B4", "assigned"]
    # Block 3's probes rank highest on the GC-rich decoy topic: a composition topic names no TF.
    assert best.loc["HOX_C", "topic"] == "topic_003" and best.loc["HOX_C", "status"] == "composition topic"
    assert mapping.loc[mapping["assigned"]].groupby("topic").size().max() <= 3
    matches = pd.read_csv(analysed / "motif_matches.tsv", sep="\t", comment="#")
    top = matches[matches["rank"] == 1].set_index("query")
    assert top.loc["topic_000", "q_value"] < 0.05  # the E-box motif finds a bHLH match
    titles = pd.read_csv(analysed / "topic_titles.tsv", sep="\t", keep_default_na=False).set_index("topic")
    assert (
        titles.loc["topic_003", "title"] == "GC-rich background"
        and titles.loc["topic_003", "evidence"] == "composition"
    )
    title = titles.loc["topic_000", "title"]
    assert title.endswith("EBOX (probes)") and "(motif similarity)" in title
    peak_tfs = pd.read_csv(analysed / "peak_tfs.tsv", sep="\t", keep_default_na=False)
    assert (peak_tfs.loc[40:59, "tf_1"] == "EBOX").mean() > 0.8  # block 2 = probes 40..59
    called = set(peak_tfs[["tf_1", "tf_2", "tf_3"]].to_numpy().ravel()) - {""}
    assert called <= set(mapping.loc[mapping["assigned"], "tf"]) and "HOX_C" not in called
    assert not peak_tfs["tied"].any()


def test_analyze_prints_a_short_summary(analysed, monkeypatch, capsys):
    from bindvae.analysis import pipeline

    text = pipeline.summary_text(analysed)
    lines = text.splitlines()
    assert lines[0] == ("4 topics: 3 named by motif similarity or probes, 1 by composition (repeat, background, "
                        "AT/GC-rich), 0 unassigned.")
    assert len(lines) == 5 and lines[-1] == f"Report: {analysed / 'report.html'}"
    assert all(" motif q " in line and "probes q" in line for line in lines[1:4])
    monkeypatch.setattr(pipeline, "analyze_run", lambda run_dir, options: analysed)
    assert analyze.main(["run_dir=anything"]) == 0
    assert capsys.readouterr().out == text


def test_analyze_bad_input_is_one_line_error(tmp_path, capsys):
    assert analyze.main([f"run_dir={tmp_path / 'missing'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert analyze.main(["colour=blue"]) == 2


def test_analyze_motif_ranking_is_an_accepted_argument(tmp_path, capsys):
    # Parsed and validated: an unknown ranking is named, a known one gets as far as the missing run.
    assert analyze.main([f"run_dir={tmp_path / 'missing'}", "motif_ranking=decoder"]) == 2
    err = capsys.readouterr().err
    assert "run directory not found" in err and "unknown argument" not in err
    vocab = Vocabulary.gapped8()
    _save_run(tmp_path / "run", planted_model(vocab, PLANTED, num_topics=4), vocab)
    assert analyze.main([f"run_dir={tmp_path / 'run'}", "motif_ranking=sideways", "motif_db=none"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: config motif_ranking") and "sideways" in err and err.count("\n") == 1


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(analysed, tmp_path):
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    url = (analysed / "report.html").as_uri()
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    for m in range(4):
        assert f'id="topic_{m:03d}"' in dom
    sources = re.findall(r'<img[^>]* src="([^"]+)"', dom)
    assert len(sources) == 4 + 3  # one logo per topic + three figures
    for src in sources:
        assert (analysed / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", src
    shot = tmp_path / "report.png"
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1200,1600", url],
                   capture_output=True, timeout=120)
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("BINDVAE_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def test_analyze_sweep_selects_runs(tmp_path, reference_dir):
    vocab = Vocabulary.gapped8()
    _save_run(tmp_path / "a", _decoded_model(vocab, PLANTED, num_topics=4), vocab)
    _save_run(tmp_path / "b", _decoded_model(vocab, PLANTED[3:] + PLANTED[:1], num_topics=2), vocab)
    code = analyze.main([f"sweep_dir={tmp_path}", f"probes={reference_dir / 'selex_probes_sample100.tsv'}",
                         "tf_per_block=HOX_A,HOX_B,EBOX,HOX_C,B4", "motif_db=none", "n_best=1"])
    assert code == 0
    summary = pd.read_csv(tmp_path / "analysis" / "model_selection.tsv", sep="\t", comment="#")
    assert summary["run"].tolist() == ["a", "b"] and summary["selected"].tolist() == [True, False]
    # Without JASPAR every TF is its own family; HOX_C sits on run a's GC-rich decoy topic.
    assert summary.loc[0, "n_families"] == 4 and summary.loc[1, "n_families"] == 1
    ensemble = pd.read_csv(tmp_path / "analysis" / "ensemble.tsv", sep="\t", comment="#")
    assert set(ensemble["run"]) == {"a"} and set(",".join(ensemble["new_tfs"]).split(",")) == {
        "HOX_A", "HOX_B", "EBOX", "B4"}


def test_topic_with_many_assigned_tfs_names_a_few_and_points_to_the_table():
    # Probes sampled from a whole database can assign hundreds of TFs to one (e.g. GC-rich) topic.
    from bindvae.analysis.report import HEADING_TFS, TABLE_TFS, TopicSection, render_report

    tfs = [(f"TF{i:02d}", 1e-6 * (i + 1), 0.9 - 0.01 * i) for i in range(30)]
    section = TopicSection("topic_000", "logos/topic_000.png", "ACGT", [], [], [], tfs)
    html = render_report("r", {}, [section], [])
    heading = re.search(r"<h3>(.*?)</h3>", html).group(1)
    assert heading == "topic_000: " + ", ".join(f"TF{i:02d}" for i in range(HEADING_TFS)) + " (+25 more)"
    assert html.count("<td>TF") == TABLE_TFS and "TF09" in html and "TF10" not in html
    assert "20 more assigned TFs in tf_mapping.tsv" in html
    few = render_report("r", {}, [TopicSection("topic_001", "l.png", "A", [], [], [], tfs[:2])], [])
    assert "<h3>topic_001: TF00, TF01</h3>" in few and "more" not in few


def test_accessibility_figure_keeps_the_most_accessible_tfs(tmp_path, monkeypatch):
    from bindvae import plotting
    from bindvae.analysis import pipeline

    n_topics = pipeline.FIGURE_TFS + 20
    acc = pd.DataFrame({"topic": [f"topic_{m:03d}" for m in range(n_topics)],
                        "tfs": [f"TF{m:02d}" for m in range(n_topics)],
                        "accessibility": np.arange(1.0, n_topics + 1.0), "mean_score": 0.0})
    drawn = {}
    monkeypatch.setattr(plotting, "accessibility_figure", lambda table, labels: drawn.setdefault("t", table))
    monkeypatch.setattr(plotting, "save_figure", lambda fig, path: None)
    figures = []
    pipeline._accessibility_figure(acc, tmp_path / "run", None, tmp_path, figures)
    assert list(drawn["t"]["tf"]) == [f"TF{m:02d}" for m in range(20, n_topics)]  # ascending, the top 40
    assert figures == [(f"Accessibility per mapped TF (Fig. 3d): the 40 most accessible of {n_topics}",
                        "accessibility.png")]


def test_topic_heading_is_its_title_and_says_the_evidence():
    from bindvae.analysis.report import NAMING_NOTE, TopicSection, render_report

    tfs = [(f"TF{i:02d}", 1e-6, 0.9) for i in range(3)]
    section = TopicSection("topic_003", "l.png", "AAAA", [], [], [], tfs, title="low complexity (A)n",
                           evidence="composition")
    html = render_report("r", {}, [section], [])
    assert "<h3>topic_003: low complexity (A)n</h3>" in html and "title from composition" in html
    assert escape(NAMING_NOTE) in html
