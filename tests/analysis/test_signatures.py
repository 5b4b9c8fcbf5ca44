"""Signatures: look-alike topics found from their motifs, and the summed score that ranks a split signature."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bindvae.analysis import signatures
from bindvae.motif import Motif, load_jaspar_motifs


@pytest.fixture(scope="module")
def jaspar():
    ctcf, fos, spi1 = load_jaspar_motifs([("CTCF", "MA0139.2"), ("FOS::JUN", "MA0099.4"), ("SPI1", "MA0080.7")])
    return ctcf, fos, spi1


def _blurred(pwm: np.ndarray, keep: float) -> np.ndarray:
    return keep * pwm + (1 - keep) * 0.25


def test_lookalikes_are_the_used_topics_with_a_matching_motif(jaspar):
    ctcf, fos, spi1 = jaspar
    motifs = [Motif("t0", _blurred(ctcf.pwm, 0.8)), Motif("t1", ctcf.pwm[2:17]),  # one site, two topics
              Motif("t2", fos.pwm), Motif("t3", spi1.pwm), Motif("t4", _blurred(ctcf.pwm, 0.9))]
    used = np.array([True, True, True, True, False])  # t4: the CTCF motif again, on a topic no peak uses
    alike = signatures.lookalikes(motifs, used)
    assert alike == [[1], [0], [], [], []]
    assert signatures.lookalikes(motifs) == [[1, 4], [0, 4], [], [], [0, 1]]
    assert signatures.lookalikes(motifs, used, max_q=0.0) == [[]] * 5
    q = signatures.motif_q_matrix(motifs)
    np.testing.assert_array_equal(q, q.T)
    assert q[0, 1] < 1e-3 and q[2, 3] > 0.05 and (np.diag(q) == 1).all()
    assert signatures.lookalikes_column(["a", "b", "c", "d", "e"], alike) == ["b", "a", "", "", ""]


def test_namesakes_join_the_pieces_of_a_long_site_that_do_not_look_alike(jaspar):
    # The two ends of CTCF's site overlap by one column: not look-alikes (q ~ 0.7), but both match CTCF
    # best in the database, so each is the other's namesake; FOS::JUN and SPI1 stay alone.
    import pandas as pd

    from bindvae.analysis.compare import compare_motifs

    ctcf, fos, spi1 = jaspar
    motifs = [Motif("t0", ctcf.pwm[:10]), Motif("t1", ctcf.pwm[9:]), Motif("t2", fos.pwm), Motif("t3", spi1.pwm)]
    assert signatures.lookalikes(motifs) == [[], [], [], []]
    matches = compare_motifs(motifs, [ctcf, fos, spi1])
    assert signatures.namesakes(matches, ["t0", "t1", "t2", "t3"]) == [[1], [0], [], []]
    assert signatures.signature_partners(motifs, None, 0.05, matches) == [[1], [0], [], []]
    assert signatures.signature_partners(motifs, None, 0.05) == [[], [], [], []]  # no database, no namesakes
    assert signatures.namesakes(matches, ["t0", "t1", "t2", "t3"], np.array([True, False, True, True])) == [[]] * 4
    assert signatures.namesakes(matches, ["t0", "t1", "t2", "t3"], max_q=0.0) == [[]] * 4
    # Only the best database match joins: t0 and t1 share D2, but D2 is the best of neither; t2 matches
    # t0's best (D1) too weakly for the first rule; t3's best (D3) is matched by t0 as well, so t3 has t0
    # while t0 has not t3. The second rule (pieces): t2's own best is D1, t0's best, at q 0.2 < 0.25.
    table = pd.DataFrame({"query": ["t0", "t0", "t0", "t1", "t1", "t2", "t3"],
                          "target": ["D1", "D2", "D3", "D2", "D4", "D1", "D3"],
                          "p_value": [1e-9, 1e-6, 1e-5, 1e-6, 1e-8, 0.01, 1e-7],
                          "q_value": [1e-8, 1e-5, 1e-4, 1e-5, 1e-7, 0.2, 1e-6]})
    assert signatures.namesakes(table, ["t0", "t1", "t2", "t3"], piece_q=0.0) == [[], [], [], [0]]
    assert signatures.namesakes(table, ["t0", "t1", "t2", "t3"]) == [[2], [], [], [0]]
    assert signatures.namesakes(table, ["t0", "t1", "t2", "t3"], piece_q=0.1) == [[], [], [], [0]]
    assert signatures.combine([[1], [], [], []], [[2], [], [], [0]]) == [[1, 2], [], [], [0]]


def test_pieces_of_a_long_site_join_by_their_best_database_match():
    # t0 is a CTCF topic (best: D1 at q 1e-3, tied with D5). t1's motif matches D1 weakly but best
    # (q 0.15): a piece. t2's best is D2 at 0.1, D1 only second: not a piece. t3's part "t3b" has D5,
    # tied with t0's best, as its best (0.2): a piece through its part and the tie. t4's best is D1
    # at 0.3, above piece_q. t5 is a piece but unused. A topic whose own best is not at q < max_q
    # (t1) gets no pieces; the relation is each topic's own (t1 is t0's, t0 is not t1's).
    import pandas as pd

    table = pd.DataFrame({"query": ["t0", "t0", "t1", "t2", "t2", "t3", "t3b", "t4", "t5"],
                          "target": ["D1", "D5", "D1", "D2", "D1", "D3", "D5", "D1", "D1"],
                          "p_value": [1e-4, 2e-4, 0.01, 0.005, 0.02, 0.3, 0.02, 0.05, 0.01],
                          "q_value": [1e-3, 1e-3, 0.15, 0.1, 0.18, 0.5, 0.2, 0.3, 0.12]})
    names = ["t0", "t1", "t2", "t3", "t4", "t5"]
    used = np.array([True, True, True, True, True, False])
    assert signatures.namesakes(table, names, used) == [[1, 3], [], [], [], [], []]
    assert signatures.namesakes(table, names, used, piece_q=0.16) == [[1], [], [], [], [], []]
    assert signatures.namesakes(table, names, used, piece_q=0.0) == [[]] * 6
    assert signatures.namesakes(table, names) == [[1, 3, 5], [], [], [], [], []]
    best = signatures.best_matches(table, names)
    assert best[0] == (1e-3, {"D1", "D5"}) and best[3] == (0.2, {"D5"}) and best[2] == (0.1, {"D2"})


def test_a_piece_joins_when_the_site_is_among_its_best_matches_within_the_tie():
    # t1 is a piece of t0's site: its best database match is D9 (an unrelated motif) at q 0.095, and t0's
    # best, D1, comes second at 0.097, within BEST_TIE (5%) of it: which comes first is chance, so t1
    # joins t0. t2's D1 match is 10% behind its best (0.1 against 0.11): not a near-tie, not a piece.
    import pandas as pd

    table = pd.DataFrame({"query": ["t0", "t1", "t1", "t2", "t2"],
                          "target": ["D1", "D9", "D1", "D8", "D1"],
                          "p_value": [1e-4, 0.01, 0.011, 0.01, 0.012],
                          "q_value": [1e-3, 0.095, 0.097, 0.1, 0.11]})
    names = ["t0", "t1", "t2"]
    assert signatures.namesakes(table, names) == [[1], [], []]
    best = signatures.best_matches(table, names)
    assert best[1] == (0.095, {"D9", "D1"}) and best[2] == (0.1, {"D8"})
    assert signatures.best_matches(table, names, tie=0.0)[1] == (0.095, {"D9"})
    assert signatures.best_matches(table, names, tie=0.1)[2] == (0.1, {"D8", "D1"})


def test_lookalikes_that_the_database_tells_apart_stay_apart():
    # t0 (C/EBP-like) and t1 (NRF1-like) look alike through a short shared word, but each matches its own
    # database motif confidently (D1, D2) and neither matches the other's even weakly: apart. t2 and t0
    # look alike and t2's best (D3) differs, but t2 matches D1 at 0.2 < apart_q: kept (a piece). t3's
    # best is at 0.3, not confident: kept. With apart_q = 0 every look-alike is kept.
    import pandas as pd

    alike = [[1, 2, 3], [0], [0], [0]]
    table = pd.DataFrame({"query": ["t0", "t1", "t1", "t2", "t2", "t3", "t0b"],
                          "target": ["D1", "D2", "D1", "D3", "D1", "D4", "D2"],
                          "p_value": [1e-4, 1e-5, 0.2, 1e-4, 0.01, 0.1, 0.3],
                          "q_value": [0.01, 0.001, 0.6, 0.02, 0.2, 0.3, 0.7]})
    names = ["t0", "t1", "t2", "t3"]
    assert signatures.keep_apart(alike, table, names) == [[2, 3], [], [0], [0]]
    assert signatures.keep_apart(alike, table, names, apart_q=0.0) == alike
    assert signatures.keep_apart(alike, table, names, apart_q=0.1) == [[3], [], [], [0]]
    # t0's part matching t1's best (D2) at 0.7 < apart_q 0.8 keeps the pair: parts count as the topic.
    assert signatures.keep_apart(alike, table, names, apart_q=0.8) == alike



def test_signature_partners_drop_lookalikes_the_database_tells_apart(monkeypatch):
    # The look-alikes of the test above, through signature_partners: t0 and t1 apart at the default
    # apart_q, joined again with apart_q=0 and without a database; t2 (t0's piece by database) stays.
    import pandas as pd

    names = ["t0", "t1", "t2", "t3"]
    motifs = [Motif(n, np.full((4, 4), 0.25)) for n in names]
    monkeypatch.setattr(signatures, "lookalikes", lambda motifs, used, max_q: [[1, 2, 3], [0], [0], [0]])
    table = pd.DataFrame({"query": ["t0", "t1", "t2", "t2", "t3"], "target": ["D1", "D2", "D3", "D1", "D4"],
                          "p_value": [1e-4, 1e-5, 1e-4, 0.01, 0.1], "q_value": [0.01, 0.001, 0.02, 0.2, 0.3]})
    assert signatures.signature_partners(motifs, None, 0.05, table) == [[2, 3], [], [0], [0]]
    assert signatures.signature_partners(motifs, None, 0.05, table, apart_q=0.0) == [[1, 2, 3], [0], [0], [0]]
    assert signatures.signature_partners(motifs, None, 0.05) == [[1, 2, 3], [0], [0], [0]]


def test_lookalikes_need_distinct_names(jaspar):
    with pytest.raises(ValueError, match="distinct names"):
        signatures.motif_q_matrix([Motif("t", jaspar[0].pwm), Motif("t", jaspar[1].pwm)])


def test_signature_score_adds_the_lookalikes_proportions():
    proportions = np.array([[0.5, 0.2, 0.3], [0.1, 0.6, 0.3]])
    scores = signatures.signature_scores(proportions, [[1], [0], []])
    np.testing.assert_allclose(scores, [[0.7, 0.7, 0.3], [0.7, 0.7, 0.3]])
    np.testing.assert_array_equal(signatures.signature_scores(proportions, [[], [], []]), proportions)


def test_a_signature_split_over_two_topics_ranks_its_carriers_as_one_topic_would():
    # Carriers give their share to one of two look-alike topics at random: each topic alone ranks them
    # near 0.75, the signature score (their sum) as well as a single topic holding the whole site.
    rng = np.random.default_rng(0)
    n = 4000
    carrier = rng.random(n) < 0.2
    proportions = rng.dirichlet(np.ones(6), size=n) * 0.5
    side = rng.random(n) < 0.5
    proportions[carrier & side, 0] += 0.5
    proportions[carrier & ~side, 1] += 0.5
    proportions[~carrier, 2] += 0.5
    alone = roc_auc_score(carrier, proportions[:, 0])
    merged = roc_auc_score(carrier, signatures.signature_scores(proportions, [[1], [0], [], [], [], []])[:, 0])
    assert 0.6 < alone < 0.85 and merged > 0.99


def test_analyze_lists_lookalikes_and_calls_peaks_with_the_whole_signature(tmp_path, reference_dir):
    # Topics 0 and 1 both hold the E-box (one signature split over two topics): each is the other's
    # look-alike in topic_titles.tsv and the report, and an E-box peak's call carries both topics' scores
    # (by default their densities; call_score=mean their proportions).
    # (min_fold=0: two identical topics are each other's "background" by the fold rule at M = 4.)
    import pandas as pd

    from bindvae.features.kmers import Vocabulary
    from bindvae.infer import latent_scores, load_model
    from experiments import analyze
    from tests.analysis.test_report import _decoded_model, _save_run

    vocab = Vocabulary.gapped8()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _save_run(run_dir, _decoded_model(vocab, ["GTCACGTGAC", "GTCACGTGAC", "CTAATTAGCG", "ATTGCATCAT"], 4), vocab)
    probes = pd.read_csv(reference_dir / "selex_probes_sample100.tsv", sep="\t")
    fasta = run_dir / "peaks.fa"
    fasta.write_text("".join(f">p{i}\n{s}\n" for i, s in enumerate(probes["sequence"])))
    args = [f"run_dir={run_dir}", f"peaks={fasta}", f"probes={reference_dir / 'selex_probes_sample100.tsv'}",
            "tf_per_block=HOX_A,HOX_B,EBOX,HOX_C,B4", "min_fold=0",
            f"motif_db={reference_dir / 'jolma_selex_pwms_converted_all.meme'}"]
    assert analyze.main(args) == 0
    out = run_dir / "analysis"
    titles = pd.read_csv(out / "topic_titles.tsv", sep="\t", keep_default_na=False).set_index("topic")
    assert titles.loc["topic_000", "lookalikes"] == "topic_001" and titles.loc["topic_001", "lookalikes"] == "topic_000"
    assert titles.loc["topic_002", "lookalikes"] == "" and titles.loc["topic_003", "lookalikes"] == ""
    assert "same signature as topic_001" in (out / "report.html").read_text()

    model = load_model(run_dir)
    density = np.asarray(latent_scores(model, probes["sequence"].tolist(), kind="density"), dtype=np.float64)
    proportions = np.asarray(latent_scores(model, probes["sequence"].tolist(), kind="mean"), dtype=np.float64)
    calls = pd.read_csv(out / "peak_tfs.tsv", sep="\t", keep_default_na=False)
    ebox = calls.index[40:60][calls.loc[40:59, "tf_1"] == "EBOX"]
    assert len(ebox) > 10
    mapping = pd.read_csv(out / "tf_mapping.tsv", sep="\t", comment="#")
    strength = mapping[(mapping["tf"] == "EBOX") & mapping["assigned"]].set_index("topic")["effect_size"]
    signature = density[:, 0] + density[:, 1]  # topic 0 with its look-alike, over its mean over the peaks
    expected = signature[ebox] / signature.mean() * strength.max()
    np.testing.assert_allclose(calls.loc[ebox, "score_1"].astype(float), expected, rtol=1e-3)
    # The default call_ratio: every call's topic holds at least twice its mean (score = ratio x strength).
    strengths = mapping[mapping["assigned"]].set_index(["topic", "tf"])["effect_size"]
    ratios = [float(row[f"score_{i}"]) / strengths[(row[f"topic_{i}"], row[f"tf_{i}"])]
              for _, row in calls.iterrows() for i in (1, 2, 3) if row[f"tf_{i}"]]
    assert len(ratios) > 40 and min(ratios) >= 2.0 - 1e-4 and min(ratios) < 2.5

    assert analyze.main(args + ["call_score=mean", "call_ratio=1.5"]) == 0  # the calls before density
    by_mean = pd.read_csv(out / "peak_tfs.tsv", sep="\t", keep_default_na=False)
    signature = proportions[:, 0] + proportions[:, 1]
    np.testing.assert_allclose(by_mean.loc[ebox, "score_1"].astype(float),
                               signature[ebox] / signature.mean() * strength.max(), rtol=1e-3)
    assert "signature score (mean) &gt;= 1.5 x" in (out / "report.html").read_text()

    assert analyze.main(args + ["signature_q=0"]) == 0  # off: each topic alone
    titles = pd.read_csv(out / "topic_titles.tsv", sep="\t", keep_default_na=False).set_index("topic")
    assert (titles["lookalikes"] == "").all()
    alone = pd.read_csv(out / "peak_tfs.tsv", sep="\t", keep_default_na=False)
    assert (alone.loc[ebox, "tf_1"] == "EBOX").all()
    by_topic = [density[:, int(t[-3:])] / density[:, int(t[-3:])].mean() * w for t, w in strength.items()]
    np.testing.assert_allclose(alone.loc[ebox, "score_1"].astype(float), np.max(by_topic, axis=0)[ebox], rtol=1e-3)


def test_calls_fall_back_to_shares_on_features_of_the_chosen_kmers_alone():
    # Density divides by every gapped 8-mer of a peak: features cut to a model's chosen k-mers do not
    # hold them, so the calls read shares there (and say so) rather than fail or divide by the wrong count.
    from bindvae.analysis.pipeline import _call_scores
    from bindvae.features.kmers import Vocabulary, featurize
    from bindvae.infer import latent_scores
    from tests.helpers.analysis import random_model

    full_vocab = Vocabulary.gapped8()
    rng = np.random.default_rng(0)
    sequences = ["".join(rng.choice(list("ACGT"), 60)) for _ in range(8)]
    full = featurize(sequences, full_vocab)
    chosen_vocab = full_vocab.subset(np.unique(full.indices)[::2])
    model = random_model(chosen_vocab)
    scores, kind = _call_scores(model, full, "density")
    assert kind == "density"
    np.testing.assert_allclose(scores, latent_scores(model, sequences, kind="density"), rtol=1e-4, atol=1e-7)
    scores, kind = _call_scores(model, chosen_vocab.restrict(full), "density")
    assert kind == "shares"
    np.testing.assert_allclose(scores, latent_scores(model, full, kind="shares"), rtol=1e-5)
