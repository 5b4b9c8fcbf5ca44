"""The analyze entry point end to end on a small known model, and its report in a headless browser."""

from __future__ import annotations

import dataclasses
import json
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
from tests.helpers.analysis import planted_model, random_model

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


def _save_run(run_dir, model, vocab, data=None):
    """A checkpoint as training saves it; ``data``: the data config to record (a dict), if any."""
    from bindvae.checkpoint import save_checkpoint
    from bindvae.config import ModelConfig

    net = model.network
    config = ModelConfig(num_topics=net.num_topics, alpha=net.alpha, hidden_sizes=tuple(net.hidden_sizes))
    state = {"params": model.params, "opt_state": {"unused": np.zeros(1)}, "step": 3, "rng": np.zeros(2, np.uint32)}
    saved = {"model": dataclasses.asdict(config), **({"data": data, "train": {"seed": 0}} if data else {})}
    save_checkpoint(run_dir, state, {"config": saved, "vocab_fingerprint": vocab.fingerprint,
                                     "n_kmers": len(vocab), "num_topics": net.num_topics})


def _write_metrics(run_dir, val_perplexities, every=100, train_perplexities=None, first=None):
    """A metrics.jsonl as training writes it: a record per log step, validation every ``every`` steps
    (the first at ``first``, default ``every``)."""
    lines = []
    first = every if first is None else first
    for i, value in enumerate(val_perplexities):
        train = value if train_perplexities is None else train_perplexities[i]
        record = {"step": first + every * i, "elbo": -float(np.log(train)) * 100, "perplexity": train,
                  "loss": float(np.log(train)) * 100}
        if value is not None:
            record.update(val_elbo=-float(np.log(value)) * 100, val_perplexity=value)
        lines.append(json.dumps(record))
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")


# An unconverged run: validation perplexity 1% below its start after 500 steps (the rule's "flat").
FLAT = [100_000.0, 99_800.0, 99_500.0, 99_200.0, 99_000.0]


def _summary_order(html: str, table_id: str) -> list[str]:
    table = re.search(rf'<table class="summary" id="{table_id}">(.*?)</table>', html, re.S)
    return re.findall(r'<tr data-topic="([^"]+)"', table.group(1)) if table else []


@pytest.fixture(scope="module")
def analysed(tmp_path_factory, reference_dir):
    vocab = Vocabulary.gapped8()
    run_dir = tmp_path_factory.mktemp("run")
    _save_run(run_dir, _decoded_model(vocab, PLANTED, num_topics=4), vocab)
    _write_metrics(run_dir, FLAT)
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
                 "accessibility.png", "topic_sites.tsv", "training_curve.png", "report.html"):
        assert (analysed / name).is_file(), name
    # Each topic's logo, and its logo above its best database match's (every topic has one here).
    assert sorted(os.listdir(analysed / "logos")) == sorted(
        [f"topic_{m:03d}.png" for m in range(4)] + [f"topic_{m:03d}_match.png" for m in range(4)])
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


def test_the_summary_counts_unused_topics_apart_and_never_lists_them_as_named(tmp_path):
    from bindvae.analysis import report_content

    pd.DataFrame({"topic": ["topic_000", "topic_001", "topic_002"], "title": ["CTCF (motif similarity)", "unused",
                                                                             "GC-rich background"],
                  "evidence": ["motif similarity", "unused", "composition"]}).to_csv(
        tmp_path / "topic_titles.tsv", sep="\t", index=False)
    pd.DataFrame({"query": ["topic_000", "topic_001"], "q_value": [1e-4, 1e-6], "assigned": [True, False]}).to_csv(
        tmp_path / "motif_matches.tsv", sep="\t", index=False)
    pd.DataFrame(columns=["topic", "q_value", "assigned"]).to_csv(tmp_path / "tf_mapping.tsv", sep="\t", index=False)
    lines = report_content.summary_text(tmp_path).splitlines()
    assert lines[0] == ("3 topics: 1 named by motif similarity or probes, 1 by composition (repeat, background, "
                        "AT/GC-rich), 1 unused (no peak made of them), 0 unassigned.")
    assert len(lines) == 3 and lines[1].startswith("  topic_000")


def test_analyze_prints_a_short_summary(analysed, monkeypatch, capsys):
    from bindvae.analysis import pipeline, report_content

    text = report_content.summary_text(analysed)
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
    assert analyze.main([f"run_dir={tmp_path / 'run'}", "call_ratio=-1", "motif_db=none"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: config call_ratio") and err.count("\n") == 1


def _expected_ranking(analysis) -> tuple[list[str], list[str]]:
    """The summary tables' order recomputed from the written TSVs by the report's stated rule."""
    matches = pd.read_csv(analysis / "motif_matches.tsv", sep="\t", comment="#")
    mapping = pd.read_csv(analysis / "tf_mapping.tsv", sep="\t", comment="#")
    sites = pd.read_csv(analysis / "topic_sites.tsv", sep="\t").set_index("topic")
    titles = pd.read_csv(analysis / "topic_titles.tsv", sep="\t", keep_default_na=False).set_index("topic")
    match_q = matches[matches["rank"] == 1].set_index("query")["q_value"]
    probe_q = mapping[mapping["assigned"]].groupby("topic")["q_value"].min()
    key = {t: (min(match_q.get(t, np.inf), probe_q.get(t, np.inf)), sites.loc[t, "enrichment_p"], t)
           for t in titles.index}
    ranked = sorted(titles.index, key=key.get)
    background = [t for t in ranked if titles.loc[t, "evidence"] == "composition"]
    return [t for t in ranked if t not in background], background


def test_report_summary_table_ranks_topics_from_the_written_tables(analysed):
    html = (analysed / "report.html").read_text()
    motif_topics, background = _expected_ranking(analysed)
    assert _summary_order(html, "summary-table") == motif_topics == ["topic_000", "topic_002", "topic_001"]
    assert _summary_order(html, "background-table") == background == ["topic_003"]  # the GC-rich decoy
    # The summary comes first, above the per-topic sections; every row shows the numbers of the TSVs.
    assert (
        html.index('id="summary-table"')
        < html.index('id="background-table"')
        < html.index("<h2>Topics (3)")
        < html.index("Flagged topics")
    )
    sites = pd.read_csv(analysed / "topic_sites.tsv", sep="\t").set_index("topic")
    matches = pd.read_csv(analysed / "motif_matches.tsv", sep="\t", comment="#", keep_default_na=False)
    best = matches[matches["rank"] == 1].set_index("query")
    for topic in motif_topics:
        row = re.search(rf'<tr data-topic="{topic}">(.*?)</tr>', html).group(1)
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
        assert f'src="logos/{topic}_match.png"' in cells[3]
        name = f"{best.loc[topic, 'target']} {best.loc[topic, 'target_name']}".strip()
        assert cells[4].startswith(f"{name} ({best.loc[topic, 'strand']} strand)")
        assert cells[7] == f"{best.loc[topic, 'q_value']:.2g}"
        assert (
            cells[8] == f"{sites.loc[topic, 'pct_peaks']:.1f}"
            and cells[9] == f"{sites.loc[topic, 'pct_background']:.1f}"
        )
        assert cells[10] == f"{sites.loc[topic, 'enrichment_p']:.2g}"
    # The planted sites: every named topic's motif sits in far more peaks than background peaks.
    assert (sites.loc[motif_topics, "pct_peaks"] >= 10 * sites.loc[motif_topics, "pct_background"].clip(lower=1)).all()
    for name in ("motifs.meme", *sorted(n for n in os.listdir(analysed) if n.endswith(".tsv"))):
        assert f'<a href="{name}">' in html, name


def test_summary_rows_are_ranked_and_background_topics_kept_apart():
    from bindvae.analysis.report import SummaryRow, render_report

    rows = [SummaryRow("topic_000", "AT-rich", "composition", "a.png", q=1e-9, enrichment_p=1e-3),
            SummaryRow("topic_001", "CTCF (motif similarity)", "motif similarity", "b.png", match="MA0139.2 CTCF",
                       strand="-", p=1e-7, e=1e-5, q=1e-4, assigned=True, pct_peaks=20.0, pct_background=1.5,
                       enrichment_p=1e-30, site_auroc=0.934, accessibility=12.5),
            SummaryRow("topic_002", "FOS (probes)", "probes", "c.png", probe_q=1e-6, enrichment_p=1e-2),
            SummaryRow("topic_003", "unassigned", "none", "d.png", enrichment_p=1e-8),
            SummaryRow("topic_004", "JUN (probes)", "probes", "e.png", probe_q=1e-6, enrichment_p=1e-5),
            SummaryRow("topic_005", "low complexity (A)n", "composition", "f.png", q=0.5, enrichment_p=0.2,
                       match="MA1125.2 ZNF384", strand="+"),
            SummaryRow("topic_006", "background", "composition", "g.png", match="MA1529.2 NHLH2", strand="+",
                       q=0.048, flagged=True, pct_peaks=1.7, pct_background=1.4, enrichment_p=0.14)]
    html = render_report("r", {}, [], [], summary=rows)
    # Best q of match or probes first; equal q by enrichment p; no q at all last.
    assert _summary_order(html, "summary-table") == ["topic_004", "topic_002", "topic_001", "topic_003"]
    assert _summary_order(html, "background-table") == ["topic_000", "topic_006", "topic_005"]
    # A match that does not name its topic says why: not significant, or a flagged topic (its sites too few).
    row = {t: re.search(rf'<tr data-topic="{t}">(.*?)</tr>', html).group(1) for t in ("topic_005", "topic_006")}
    assert "MA1125.2 ZNF384 (+ strand) <span class=\"muted\">(not significant)</span>" in row["topic_005"]
    assert "MA1529.2 NHLH2 (+ strand) <span class=\"muted\">(flagged topic: names nothing)</span>" in row["topic_006"]
    ctcf = re.search(r'<tr data-topic="topic_001">(.*?)</tr>', html).group(1)
    assert re.findall(r'<td class="num">(.*?)</td>', ctcf) == [
        "1e-07",
        "1e-05",
        "0.0001",
        "20.0",
        "1.5",
        "1e-30",
        "0.93",
        "12.5",
    ]
    assert "MA0139.2 CTCF (- strand)" in ctcf and '<img class="pair" src="b.png"' in ctcf


def test_convergence_banner_only_for_an_unconverged_run(tmp_path):
    from bindvae.analysis.convergence import RULE, training_summary
    from bindvae.analysis.report import render_report
    from bindvae.tracking import read_metrics

    def report_for(values, **kwargs):
        run = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        run.mkdir()
        _write_metrics(run, values, **kwargs)
        training = training_summary(read_metrics(run))
        return training, render_report("r", {}, [], [], training=training)

    converged = [100_000.0, 80_000.0, 70_000.0, 69_800.0, 69_700.0]  # 30% down, 0.1% in the last quarter
    falling = [100_000.0, 95_000.0, 90_000.0, 85_000.0, 80_000.0]  # 20% down, 5.9% in the last quarter
    training, html = report_for(converged)
    assert training.status == "converged" and 'id="convergence-banner"' not in html
    assert RULE in html.replace("&#x27;", "'") and "69,700.0" in html  # final validation perplexity
    for values, status in ((FLAT, "flat"), (falling, "still falling")):
        training, html = report_for(values)
        assert training.status == status
        banner = re.search(r'<div class="banner warn" id="convergence-banner">(.*?)</div>', html).group(1)
        assert f"has not converged ({status})" in banner
    # Too few validation evaluations: the training perplexity is judged instead.
    training, html = report_for(
        [None, None, None, 70_000.0], train_perplexities=[90_000.0, 85_000.0, 80_000.0, 75_000.0]
    )
    assert (training.status, training.judged_on) == ("still falling", "training") and "banner warn" in html
    training, html = report_for([70_000.0])
    assert training.status == "unknown" and '<div class="banner note" id="convergence-banner">' in html
    # Several starts (train.restarts) trained 2,000 steps before the log begins: a flat log is not "flat".
    training, html = report_for(FLAT, first=2100)
    assert training.status == "converged" and 'id="convergence-banner"' not in html
    assert "the first 2,000 steps were not logged" in training.reason
    training, _ = report_for(falling, first=2100)
    assert training.status == "still falling"


def test_heatmap_colour_scale_survives_one_extreme_row():
    from bindvae import plotting

    matrix = pd.DataFrame([[500.0, 400.0, 1.0], [0.02, 0.01, 0.04], [0.0, 0.003, 0.001]],
                          index=["polyA", "ebox", "weak"], columns=["AAAAAAAA", "CACGTGNN", "GGGGCCCC"])
    raw, _, vmax, _ = plotting.scaled_heatmap_values(matrix, "none")
    assert raw[1].max() / vmax < 1e-3  # unscaled, every other topic is flat against the poly-A row
    rows, vmin, vmax, label = plotting.scaled_heatmap_values(matrix, "row")
    assert np.allclose(rows.max(axis=1), 1.0) and (vmin, vmax) == (0.0, 1.0) and "per row" in label
    assert np.allclose(rows[1], [0.5, 0.25, 1.0])
    clipped, low, high, label = plotting.scaled_heatmap_values(matrix, "clip")
    assert (
        high == pytest.approx(np.percentile(matrix.to_numpy(), 99)) and clipped.max() == high and "percentile" in label
    )
    fig = plotting.heatmap_figure(matrix, "phi", "8-mer", "topic", scaling="row")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(matrix.columns)
    assert "per row" in fig.axes[1].get_ylabel() and "per row" in ax.get_title()


def test_topic_kmer_heatmap_is_labelled_and_scaled_per_topic(monkeypatch, tmp_path):
    from bindvae import plotting
    from bindvae.analysis import pipeline

    drawn = []
    monkeypatch.setattr(plotting, "save_figure", lambda fig, path: drawn.append(fig))
    figures = []
    pipeline._kmer_heatmap(_decoded_model(Vocabulary.gapped8(), PLANTED, num_topics=4), tmp_path, figures)
    # With many topics each gives fewer k-mers, so the columns stay few enough to keep their labels.
    pipeline._kmer_heatmap(random_model(Vocabulary.gapped8(), num_topics=40, hidden_sizes=(4,)), tmp_path, figures)
    for fig, n_topics in zip(drawn, (4, 40)):
        ax, bar = fig.axes
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert len(labels) == ax.images[0].get_array().shape[1] >= 2 * n_topics  # every column labelled
        assert all(len(k) == 8 for k in labels)
        assert "scaled per row" in bar.get_ylabel()
        assert np.allclose(ax.images[0].get_array().max(axis=1), 1.0)
    assert "colour scaled per topic" in figures[0][0]


def test_aligned_logos_put_the_match_in_the_learned_motifs_orientation():
    from bindvae.plotting import aligned_pwms

    def onehot(seq):
        return np.array([np.eye(4)["ACGT".index(b)] for b in seq])

    def read(pwm):
        return "".join("ACGT"[i] if row.sum() else "." for i, row in zip(pwm.argmax(axis=1), pwm))

    query = onehot("TTGCGCAA")
    top, bottom = aligned_pwms(query, onehot("ATTGCGCAAT"), -1, "+")
    assert (read(top), read(bottom)) == (".TTGCGCAA.", "ATTGCGCAAT")
    # Stored on the other strand: drawn reverse-complemented, starting at the learned motif's column 2.
    top, bottom = aligned_pwms(query, onehot("TTGCG"), 2, "-")
    assert (read(top), read(bottom)) == ("TTGCGCAA", "..CGCAA.")


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(analysed, tmp_path):
    from PIL import Image

    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    url = (analysed / "report.html").as_uri()
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    for m in range(4):
        assert f'id="topic_{m:03d}"' in dom
    # Banner, then the ranked summary, the background group, the training summary, the topic sections.
    positions = [dom.index(marker) for marker in ('id="convergence-banner"', 'id="summary-table"',
                                                  'id="background-table"', 'id="training"', 'id="topic_000"')]
    assert positions == sorted(positions)
    banner = re.search(r'id="convergence-banner">(.*?)</div>', dom, re.S).group(1)
    assert "has not converged (flat)" in banner and "99,000.0" in banner
    motif_topics, background = _expected_ranking(analysed)
    assert (
        _summary_order(dom, "summary-table") == motif_topics and _summary_order(dom, "background-table") == background
    )
    for topic in motif_topics + background:  # the learned logo and its match, side by side in one aligned image
        row = re.search(rf'<tr data-topic="{topic}">(.*?)</tr>', dom, re.S).group(1)
        pair = re.search(r'<img class="pair" src="([^"]+)"', row).group(1)
        assert pair == f"logos/{topic}_match.png"
        assert Image.open(analysed / pair).height > 1.5 * Image.open(analysed / "logos" / f"{topic}.png").height
    sources = re.findall(r'<img[^>]* src="([^"]+)"', dom)
    # A logo per topic section, a pair per summary row, training curve, k-mer and probe heatmaps, accessibility.
    assert len(sources) == 4 + 4 + 4
    for src in sources:
        assert (analysed / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", src
    assert not re.search(r'(src|href)="(https?:)?//', dom)  # offline: nothing fetched from a network
    shot = tmp_path / "report.png"
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1200,1600", url],
                   capture_output=True, timeout=120)
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("BINDVAE_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def test_analyze_without_peaks_scores_the_runs_training_sequences(tmp_path, reference_dir, capsys):
    vocab = Vocabulary.gapped8()
    probes = pd.read_csv(reference_dir / "selex_probes_sample100.tsv", sep="\t")
    fasta = tmp_path / "train.fa"
    fasta.write_text("".join(f">train_{i}\n{s}\n" for i, s in enumerate(probes["sequence"][:60])))
    run = tmp_path / "run"
    _save_run(run, _decoded_model(vocab, PLANTED, num_topics=4), vocab, data={"source": "fasta", "path": str(fasta)})
    args = [f"probes={reference_dir / 'selex_probes_sample100.tsv'}", "tf_per_block=HOX_A,HOX_B,EBOX,HOX_C,B4",
            "motif_db=none"]
    assert analyze.main([f"run_dir={run}", *args]) == 0
    peak_tfs = pd.read_csv(run / "analysis" / "peak_tfs.tsv", sep="\t", keep_default_na=False)
    assert peak_tfs["peak"].tolist() == [f"train_{i}" for i in range(60)]
    assert (peak_tfs.loc[40:59, "tf_1"] == "EBOX").mean() > 0.8  # the E-box block, as with peaks= the same file
    assert pd.read_csv(run / "analysis" / "accessibility.tsv", sep="\t")["accessibility"].sum() == pytest.approx(60)
    assert pd.read_csv(run / "analysis" / "topic_sites.tsv", sep="\t")["n_peaks"].eq(60).all()
    assert (
        "the run&#x27;s training data (fasta: train.fa, 60 sequences)" in (run / "analysis" / "report.html").read_text()
    )
    capsys.readouterr()
    # A peak's calls are measured against the training peaks' mean, so they do not depend on which other
    # peaks are analysed with it: the E-box block alone gets the calls it got among all 60.
    ebox = tmp_path / "ebox.fa"
    ebox.write_text("".join(f">train_{i}\n{s}\n" for i, s in enumerate(probes["sequence"][:60]) if i >= 40))
    assert analyze.main([f"run_dir={run}", f"peaks={ebox}", *args]) == 0
    alone = pd.read_csv(run / "analysis" / "peak_tfs.tsv", sep="\t", keep_default_na=False)
    among_all = peak_tfs.iloc[40:].reset_index(drop=True)
    names = ["peak", "tf_1", "tf_2", "tf_3", "topic_1", "topic_2", "topic_3"]
    assert alone[names].astype(str).equals(among_all[names].astype(str))
    for column in ["score_1", "score_2", "score_3"]:
        np.testing.assert_allclose(pd.to_numeric(alone[column]), pd.to_numeric(among_all[column]), rtol=1e-5)
    assert "over the training peaks" in (run / "analysis" / "report.html").read_text()
    capsys.readouterr()
    # The training file is gone, or the run never saved one: one line naming the way out.
    fasta.unlink()
    assert analyze.main([f"run_dir={run}", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read the run's training data" in err and "give peaks=" in err
    bare = tmp_path / "bare"
    _save_run(bare, _decoded_model(vocab, PLANTED, num_topics=4), vocab)
    assert analyze.main([f"run_dir={bare}", *args]) == 2
    assert "names no training data: give peaks=" in capsys.readouterr().err


def test_training_peaks_of_a_synthetic_run_are_the_generated_sequences():
    from bindvae.analysis.peak_input import training_peaks
    from bindvae.config import DataConfig
    from bindvae.data.datasets import load_dataset
    from bindvae.features.kmers import featurize

    vocab = Vocabulary.gapped8()
    data = {"source": "synthetic", "n_sequences": 12, "sequence_length": 60}
    model = dataclasses.replace(planted_model(vocab, PLANTED, num_topics=4),
                                config={"data": data, "train": {"seed": 5}}, run_dir="run")
    peaks = training_peaks(model)
    trained = load_dataset(DataConfig(**data), seed=5)
    assert peaks.ids == trained.names and len(peaks.sequences) == 12
    assert (featurize(peaks.sequences, vocab) != trained.X).nnz == 0  # the very rows training saw


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
