"""Non-TF topic flags: the bundled bias motifs, the entropy measure, and which flag wins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bindvae.analysis import flags


def test_bundled_bias_file_is_what_the_module_writes_and_cites_its_source():
    text = flags.BIAS_MEME.read_text()
    assert text == flags.format_bias_meme()
    assert "Goryshin" in text and "PNAS 95:10716" in text
    (tn5,) = flags.bias_motifs()
    assert (tn5.name, tn5.alt_name, tn5.consensus[:2], tn5.width) == ("Tn5_target", "Tn5", "AG", 11)
    assert np.allclose(tn5.pwm[2], 0.25) and np.allclose(tn5.pwm[4], [0.01, 0.49, 0.01, 0.49])  # N, Y


@pytest.mark.parametrize("kmer, bits", [("AAAAAAAA", 0.0), ("ACACACAC", 0.985228), ("ACNNACAC", 0.811278),
                                        ("ATTAATTA", 1.950212), ("ACGTTGCA", 2.807355)])
def test_dinucleotide_entropy(kmer, bits):
    assert flags.dinucleotide_entropy(kmer) == pytest.approx(bits, abs=1e-6)


def test_entropy_measures_weight_low_complexity_kmers_by_phi():
    kmers = ["AAAAAAAA", "ACACACAC", "ACGTTGCA", "ANANANAN", "ATTAATTA"]
    phi = np.array([[0.4, 0.3, 0.2, 0.05, 0.05], [0.05, 0.05, 0.4, 0.1, 0.4]])
    table = flags.entropy_measures(phi, kmers, n_top=5)
    # A k-mer without adjacent bases counts when it is a repeat (ANANANAN is poly-A).
    assert table["low_entropy_share"].tolist() == pytest.approx([0.75, 0.2])


def _flags(**overrides):
    comp = {"topic": "topic_000", "gc": 0.5, "gc_corpus": 0.5, "repeat_unit": "", "fold": 50.0}
    ent = {"low_entropy_share": 0.0, "mean_entropy": 2.4}
    bias = {"bias_motif": "Tn5", "bias_q": 0.9, "bias_is_best": False}
    for part in (comp, ent, bias):
        part.update({k: v for k, v in overrides.items() if k in part})
    matches = overrides.get("matches")
    usage = np.array([overrides["used"]]) if "used" in overrides else None
    sites = overrides.get("sites")
    return flags.flag_topics(pd.DataFrame([comp]), pd.DataFrame([ent]), pd.DataFrame([bias]), matches,
                             usage=usage, sites=sites).iloc[0]


def _sites(pct_peaks, pct_background, p, site_auroc=float("nan")):
    return pd.DataFrame({"topic": ["topic_000"], "pct_peaks": [pct_peaks], "pct_background": [pct_background],
                         "enrichment_p": [p], "site_auroc": [site_auroc]})


def _match(name="CTCF"):
    return pd.DataFrame({"query": ["topic_000"], "target": ["MA0139.2"], "target_name": [name], "rank": [1],
                         "q_value": [1e-5], "assigned": [True], "repeat": [False]})


def test_flags_first_rule_wins_and_every_rule_is_listed():
    row = _flags(low_entropy_share=0.9, repeat_unit="A", gc=0.1, bias_q=0.001, bias_is_best=True)
    assert row["flag"] == "cutting bias" and row["flags"] == "cutting bias; low complexity; AT-rich background"
    assert flags.flag_title(row) == "cutting bias (Tn5)"
    row = _flags(low_entropy_share=0.9, repeat_unit="AC")
    assert row["flag"] == "low complexity" and flags.flag_title(row) == "low complexity (AC)n"
    assert _flags(gc=0.9)["flag"] == "GC-rich background"
    assert _flags(fold=5.0)["flag"] == "background"
    tf = _flags()
    assert tf["flag"] == "" and not tf["flagged"]


def test_a_bias_match_that_is_not_the_best_match_or_not_significant_does_not_flag():
    assert _flags(bias_q=0.001, bias_is_best=False)["flag"] == ""
    assert _flags(bias_q=0.2, bias_is_best=True)["flag"] == ""


def test_a_tf_match_keeps_composition_flags_off_but_not_cutting_bias():
    row = _flags(low_entropy_share=0.9, repeat_unit="AC", matches=_match())
    assert row["flag"] == "" and row["flags"] == "low complexity" and row["tf_match"] == "CTCF"
    assert _flags(bias_q=0.001, bias_is_best=True, matches=_match())["flag"] == "cutting bias"


def test_a_tf_match_lifts_a_composition_flag_only_where_its_sites_are_enriched_in_the_peaks():
    # The demo's background topic that matched NHLH2 at q 0.048: its sites are in as many peaks as chance gives.
    row = _flags(fold=8.2, matches=_match("NHLH2"), sites=_sites(1.7, 1.4, 0.14))
    assert row["flag"] == "background" and row["flagged"] and row["flags"] == "background"
    assert row["tf_match"] == "NHLH2" and flags.flag_title(row) == "background"
    assert "its match NHLH2 has too few sites in the peaks: 1.7% of peaks vs 1.4% of background peaks (p 0.14)" \
        in row["evidence"]
    # Significant but hardly more often than chance (a CTCF shade on a background topic, 20,000 peaks): still flagged.
    assert _flags(fold=10.5, matches=_match(), sites=_sites(5.28, 4.08, 2.6e-3))["flag"] == "background"
    assert _flags(fold=10.5, matches=_match(), sites=_sites(6.5, 4.0, 2e-3))["flag"] == "background"  # p too high
    # A planted motif's topic that shares its k-mers with others (AP-1 at 30% of peaks: fold 5.2) keeps its name.
    row = _flags(fold=5.2, matches=_match("FOSL1::JUND"), sites=_sites(14.5, 3.7, 7e-84))
    assert row["flag"] == "" and row["flags"] == "background" and row["tf_match"] == "FOSL1::JUND"
    assert _flags(fold=5.2, matches=_match(), sites=_sites(6.0, 4.0, 5e-4))["flag"] == ""  # 1.5x at p < 0.001
    # A background topic whose motif looks like a common site (AP-1, 30% of peaks; sites at 4.6x background)
    # but whose score does not follow those sites keeps its flag; a planted motif's topic follows them.
    row = _flags(fold=7.7, matches=_match("FOSL1::JUNB"), sites=_sites(17.9, 3.9, 1e-100, site_auroc=0.46))
    assert row["flag"] == "background" and "ranks the peaks with a site at AUROC 0.46 (< 0.7)" in row["evidence"]
    assert _flags(fold=14.3, matches=_match("BACH1"), sites=_sites(16.0, 3.7, 1e-100, site_auroc=0.90))["flag"] == ""
    # Without a composition flag the sites do not matter; without site counts the match alone decides.
    assert _flags(matches=_match(), sites=_sites(1.0, 1.0, 0.5))["flag"] == ""
    assert _flags(fold=8.2, matches=_match("NHLH2"))["flag"] == ""


def test_site_counts_of_a_planted_motif_and_of_a_chance_match_tell_them_apart():
    from bindvae.analysis import sites
    from bindvae.motif import Motif

    rng = np.random.default_rng(3)
    peaks = ["".join(rng.choice(list("ACGT"), 200)) for _ in range(600)]
    planted = "TGAGTCA"  # AP-1, in one peak of four
    peaks = [p[:90] + planted + p[97:] if i % 4 == 0 else p for i, p in enumerate(peaks)]
    pwm = lambda seq: np.array([[0.91 if b == c else 0.03 for c in "ACGT"] for b in seq])  # noqa: E731
    table = sites.site_table([Motif("topic_000", pwm(planted)), Motif("topic_001", pwm("CAGCTGTT"))], peaks)
    comp = pd.DataFrame({"topic": ["topic_000", "topic_001"], "gc": 0.5, "gc_corpus": 0.5, "repeat_unit": "",
                         "fold": 8.0})
    matches = pd.concat([_match("FOS::JUN"), _match("NHLH2").assign(query="topic_001")], ignore_index=True)
    out = flags.flag_topics(comp, pd.DataFrame({"low_entropy_share": [0.0, 0.0], "mean_entropy": 2.4}),
                            pd.DataFrame({"bias_motif": "Tn5", "bias_q": [0.9, 0.9], "bias_is_best": False}),
                            matches, sites=table)
    assert out["flag"].tolist() == ["", "background"]
    assert out["tf_match"].tolist() == ["FOS::JUN", "NHLH2"]
    # The AP-1 motif again, now on a topic whose score does not follow the carriers: flagged.
    carriers = np.arange(600) % 4 == 0
    follows = np.column_stack([carriers + rng.normal(0, 0.3, 600), rng.random(600)])
    ignores = np.column_stack([rng.random(600), rng.random(600)])
    for scores, expected in ((follows, ""), (ignores, "background")):
        table = sites.site_table([Motif("topic_000", pwm(planted)), Motif("topic_001", pwm("CAGCTGTT"))], peaks,
                                 scores=scores)
        out = flags.flag_topics(comp, pd.DataFrame({"low_entropy_share": [0.0, 0.0], "mean_entropy": 2.4}),
                                pd.DataFrame({"bias_motif": "Tn5", "bias_q": [0.9, 0.9], "bias_is_best": False}),
                                matches, sites=table)
        assert out["flag"].tolist() == [expected, "background"]


def test_a_topic_no_peak_uses_is_unused_whatever_its_motif_matches():
    # The motif of a topic no peak uses is made of whatever scored highest on it: a TF match there is chance.
    row = _flags(used=0.0, matches=_match(), gc=0.9)
    assert row["flag"] == "unused" and row["flags"] == "unused; GC-rich background" and row["flagged"]
    assert row["tf_match"] == "CTCF" and row["used_fraction"] == 0.0 and flags.flag_title(row) == "unused"
    assert "in 0.00% of peaks" in row["evidence"]
    assert _flags(used=0.0005)["flag"] == "unused"
    assert _flags(used=0.002, matches=_match())["flag"] == ""  # used in 0.2% of peaks: a rare TF's topic
    assert _flags(matches=_match())["flag"] == "" and np.isnan(_flags()["used_fraction"])  # no peaks scored
    table = pd.DataFrame({"topic": ["topic_000"], "title": ["CTCF (motif)"], "evidence": ["motif"],
                          "probe_tfs": [""], "motif_tfs": ["CTCF"]})
    empty = pd.DataFrame(columns=["topic", "tf", "status", "assigned", "motif_rank"]).astype({"assigned": bool})
    out, _, matches = flags.apply_flags(table, empty, _match(),
                                        pd.DataFrame([row]))
    assert out[["title", "evidence", "motif_tfs"]].values.tolist() == [["unused", "unused", ""]]
    assert not matches["assigned"].any()


def test_topic_usage_is_the_share_of_peaks_at_an_even_share_or_more():
    from bindvae.analysis.peaks import topic_usage

    proportions = np.array([[0.70, 0.25, 0.05], [0.30, 0.34, 0.36], [0.98, 0.01, 0.01], [0.5, 0.5, 0.0]])
    np.testing.assert_allclose(topic_usage(proportions), [0.75, 0.5, 0.25])  # 1/M = 0.333
    assert topic_usage(np.zeros((0, 4))).tolist() == [0.0] * 4


def test_apply_flags_strips_tf_names_from_flagged_topics():
    from bindvae.analysis import naming

    rng = np.random.default_rng(0)
    labels = np.repeat(["TF0", "TF1", "rest"], 40)
    scores = rng.normal(size=(len(labels), 2))
    scores[labels == "TF0", 0] += 4
    scores[labels == "TF1", 1] += 4
    mapping = naming.map_topics_to_tfs(scores, labels)
    table = pd.DataFrame({"topic": ["topic_000", "topic_001"], "title": ["TF0 (probes)", "TF1 (probes)"],
                          "evidence": ["probes", "probes"], "probe_tfs": ["TF0", "TF1"], "motif_tfs": ["", ""]})
    flag_table = pd.DataFrame({"topic": ["topic_000", "topic_001"], "flag": ["GC-rich background", ""],
                               "flagged": [True, False], "repeat_unit": ["", ""], "bias_motif": ["", ""]})
    out, mapping, _ = flags.apply_flags(table, mapping, pd.DataFrame(columns=["query", "assigned"]), flag_table)
    assert out["title"].tolist() == ["GC-rich background", "TF1 (probes)"]
    assert out["evidence"].tolist() == ["composition", "probes"]
    assert naming.assigned_tfs(mapping) == {"topic_001": ["TF1"]}
    assert set(mapping.loc[mapping["topic"] == "topic_000", "status"]) >= {"flagged: GC-rich background"}
