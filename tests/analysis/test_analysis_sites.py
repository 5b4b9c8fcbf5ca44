"""Motif sites in peaks against background peaks: the report's site columns."""

from __future__ import annotations

import itertools

import numpy as np

from bindvae import dna
from bindvae.analysis import sites
from bindvae.motif import Motif


def _random(rng, n, length):
    return ["".join("ACGT"[i] for i in rng.integers(0, 4, length)) for _ in range(n)]


def _pwm(consensus, strength=0.94):
    pwm = np.full((len(consensus), 4), (1 - strength) / 3)
    pwm[np.arange(len(consensus)), ["ACGT".index(b) for b in consensus]] = strength
    return pwm


def test_site_threshold_is_the_exact_tail_of_random_windows():
    rng = np.random.default_rng(3)
    background = np.array([0.3, 0.2, 0.2, 0.3])
    scores = sites.log_odds(rng.dirichlet(np.ones(4), size=5), background)
    cutoff = sites.threshold(scores, background, p=0.01)
    # Every 5-mer with its probability under the background: P(score >= cutoff) <= 0.01, and the next
    # lower grid step already exceeds it.
    words = np.array(list(itertools.product(range(4), repeat=5)))
    grid = np.rint(scores[np.arange(5), words] * 100).sum(axis=1)
    prob = background[words].prod(axis=1)
    tail = prob[grid >= round(cutoff * 100)].sum()
    assert tail <= 0.01 < prob[grid >= round(cutoff * 100) - 1].sum()


def test_site_table_counts_planted_sites_against_background_peaks():
    rng = np.random.default_rng(0)
    peaks = _random(rng, 900, 150)
    for i in range(0, 900, 3):  # a third carry TGACTCA, every other one on the reverse strand (TGAGTCA)
        site = "TGACTCA" if i % 2 else "TGAGTCA"
        peaks[i] = peaks[i][:40] + site + peaks[i][47:]
    peaks[1] = "N" * 150  # no ACGT window: never a site, not an error
    table = sites.site_table([Motif("topic_000", _pwm("TGACTCA")), Motif("topic_001", _pwm("GGGCCCATTA"))], peaks)
    ap1, absent = table.set_index("topic").loc["topic_000"], table.set_index("topic").loc["topic_001"]
    assert list(table.columns) == sites.SITE_COLUMNS and table["n_peaks"].eq(900).all()
    assert 33.3 <= ap1["pct_peaks"] <= 40 and ap1["pct_background"] < 5 and ap1["enrichment_p"] < 1e-50
    assert absent["pct_peaks"] < 3 and absent["enrichment_p"] > 0.01


def test_background_peaks_keep_length_ns_and_dinucleotides():
    peaks = ["CGCGCGCGATAT" * 10 + "NN" + "ACGT" * 3, "CG" * 20]
    codes = dna.encode_padded(peaks)
    background = sites.markov_background(codes, np.random.default_rng(2))
    assert background.shape == codes.shape and ((background == 4) == (codes == 4)).all()
    cg = np.mean((background[:, :-1] == 1) & (background[:, 1:] == 2))  # CpG stays frequent
    assert cg > 0.2


def test_site_table_samples_at_most_max_peaks():
    rng = np.random.default_rng(0)
    table = sites.site_table([Motif("topic_000", _pwm("ACGTAC"))], _random(rng, 50, 40), max_peaks=20)
    assert len(table) == 1 and table.loc[0, "n_peaks"] == 20


def test_site_auroc_says_whether_the_topic_score_follows_its_motifs_sites():
    rng = np.random.default_rng(5)
    peaks = _random(rng, 600, 120)
    carriers = np.arange(600) % 3 == 0
    peaks = [p[:50] + "TGAGTCA" + p[57:] if c else p for p, c in zip(peaks, carriers)]
    # Topic 0 follows the carriers; topic 1 has the same motif but a score that ignores them (a background
    # topic whose motif resembles a common site); topic 2's motif is longer than the peaks: no site anywhere.
    scores = np.column_stack([carriers + rng.normal(0, 0.3, 600), rng.random(600), rng.random(600)])
    motifs = [Motif(f"topic_00{k}", _pwm(c)) for k, c in enumerate(["TGAGTCA", "TGAGTCA", "ACGTTGCA" * 16])]
    table = sites.site_table(motifs, peaks, scores=scores).set_index("topic")
    assert table.loc["topic_000", "site_auroc"] > 0.95 and 0.4 < table.loc["topic_001", "site_auroc"] < 0.6
    assert np.isnan(table.loc["topic_002", "site_auroc"])  # no peak with a site: nothing to rank
    assert table.loc["topic_000", "pct_peaks"] == table.loc["topic_001", "pct_peaks"]  # same motif, same sites
    # The sample of peaks takes the same rows of the scores; without scores the column is NaN.
    sampled = sites.site_table(motifs[:1], peaks, max_peaks=300, scores=scores[:, :1])
    assert sampled.loc[0, "n_peaks"] == 300 and sampled.loc[0, "site_auroc"] > 0.95
    assert np.isnan(sites.site_table(motifs[:1], peaks)["site_auroc"]).all()
