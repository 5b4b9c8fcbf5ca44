"""Algorithm 1 (probes -> topic names), probe inputs, per-peak TFs, accessibility and model selection."""
# Planted data throughout: scores where some TFs raise some topics by a known amount.

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bindvae.analysis import naming, peaks, selection
from bindvae.errors import InputError
from bindvae.motif import Motif


def _planted_scores(rng, n_per_tf=30):
    # TF "a" raises topic 1, TF "b" raises topic 3, TF "c" nothing.
    labels = np.repeat(["a", "b", "c"], n_per_tf)
    scores = rng.uniform(size=(len(labels), 5))
    scores[labels == "a", 1] += 0.8
    scores[labels == "b", 3] += 0.8
    return scores, labels


def test_map_topics_assigns_planted_pairs_only():
    scores, labels = _planted_scores(np.random.default_rng(0))
    table = naming.map_topics_to_tfs(scores, labels)
    assert len(table) == 15
    assigned = set(zip(table.loc[table["assigned"], "topic"], table.loc[table["assigned"], "tf"]))
    assert assigned == {("topic_001", "a"), ("topic_003", "b")}
    best = table.iloc[0]
    assert best["effect_size"] > 0.9 and best["q_value"] < 1e-6
    assert table["q_value"].between(0, 1).all() and (table["q_value"] >= table["p_value"]).all()
    assert naming.assigned_tfs(table) == {"topic_001": ["a"], "topic_003": ["b"]}


def test_map_topics_significant_but_small_effect_is_not_assigned():
    # With thousands of probes a shift of no biological size is "significant" (the issue's q < 1e-40).
    rng = np.random.default_rng(1)
    labels = np.repeat(["weak", "strong", "other"], 3000)
    scores = rng.normal(size=(len(labels), 2))
    scores[labels == "weak", 0] += 0.3  # AUROC about 0.6
    scores[labels == "strong", 1] += 3.0
    table = naming.map_topics_to_tfs(scores, labels).set_index(["topic", "tf"])
    weak = table.loc[("topic_000", "weak")]
    assert weak["q_value"] < 1e-20 and 0.55 < weak["effect_size"] < 0.7
    assert not weak["assigned"] and weak["status"] == "small effect"
    assert table.loc[("topic_001", "strong"), "assigned"]
    assert table.loc[("topic_000", "weak"), "rank"] == 1
    loose = naming.map_topics_to_tfs(scores, labels, min_effect=0.5).set_index(["topic", "tf"])
    assert loose.loc[("topic_000", "weak"), "assigned"]


def test_map_topics_caps_tfs_per_topic_by_effect():
    # Five TFs raise topic 0 by growing amounts: only the three largest effects are assigned.
    rng = np.random.default_rng(2)
    labels = np.repeat([f"tf{i}" for i in range(5)] + [f"other{i}" for i in range(20)], 200)
    scores = rng.normal(size=(len(labels), 3))
    for i in range(5):
        scores[labels == f"tf{i}", 0] += 2.0 + 0.5 * i
    table = naming.map_topics_to_tfs(scores, labels)
    topic0 = table[table["topic"] == "topic_000"].set_index("tf")
    assert topic0.loc[["tf4", "tf3", "tf2"], "assigned"].all()
    assert (topic0.loc[["tf1", "tf0"], "status"] == "over cap").all()
    assert topic0.loc[["tf4", "tf3", "tf2", "tf1", "tf0"], "rank"].tolist() == [1, 2, 3, 4, 5]
    assert naming.assigned_tfs(table) == {"topic_000": ["tf4", "tf3", "tf2"]}
    assert naming.assigned_tfs(naming.map_topics_to_tfs(scores, labels, max_tfs_per_topic=5))["topic_000"] == [
        "tf4", "tf3", "tf2", "tf1", "tf0"]
    strengths = naming.assignment_strengths(table)["topic_000"]
    assert list(strengths) == ["tf4", "tf3", "tf2"]
    assert strengths["tf4"] == pytest.approx(topic0.loc["tf4", "effect_size"])


def test_map_topics_puts_tfs_supported_by_motif_similarity_first():
    # On a partial CTCF topic, GC-rich zinc-finger probes outscore CTCF's own; the database match
    # (CTCF, rank 1) and its family decide which sizeable TFs fill the cap.
    rng = np.random.default_rng(3)
    tfs = ["ZNF_a", "ZNF_b", "ZNF_c", "CTCF", "CTCFL", "INSM1"]
    labels = np.repeat(tfs + [f"other{i}" for i in range(20)], 200)
    scores = rng.normal(size=(len(labels), 2))
    for shift, tf in zip([3.0, 2.9, 2.8, 2.0, 2.2, 2.6], tfs):
        scores[labels == tf, 0] += shift
    families = {"CTCF": "C2H2 >3", "CTCFL": "C2H2 >3", "INSM1": "dispersed ZF", "ZNF_a": "other ZF"}
    matches = naming.assign_matches(pd.DataFrame({
        "query": ["topic_000"] * 3, "target": ["MA1", "MA2", "MA3"], "target_name": ["CTCF", "INSM1", "CTCFL"],
        "rank": [1, 4, 5], "q_value": [1e-3, 3e-3, 8e-3]}))
    supported = naming.supported_by_matches(matches, labels, families)
    assert supported == {"topic_000": {"CTCF": 1, "CTCFL": 1, "INSM1": 4}}
    table = naming.map_topics_to_tfs(scores, labels, supported=supported)
    assigned = naming.assigned_tfs(table)["topic_000"]
    assert set(assigned[:2]) == {"CTCF", "CTCFL"} and assigned[2] == "INSM1"  # rank-1 match's family first
    plain = naming.map_topics_to_tfs(scores, labels)
    assert set(naming.assigned_tfs(plain)["topic_000"]) == {"ZNF_a", "ZNF_b", "ZNF_c"}
    assert table.set_index(["topic", "tf"]).loc[("topic_000", "CTCFL"), "motif_rank"] == 1


def test_withdraw_keeps_rows_and_records_the_reason():
    scores, labels = _planted_scores(np.random.default_rng(0))
    table = naming.withdraw(naming.map_topics_to_tfs(scores, labels), {"topic_001": "background topic"})
    row = table.set_index(["topic", "tf"]).loc[("topic_001", "a")]
    assert row["status"] == "background topic" and not row["assigned"]
    assert naming.assigned_tfs(table) == {"topic_003": ["b"]}
    # Per-peak calls are weighted by these strengths: a withdrawn or unassigned TF has none.
    assert list(naming.assignment_strengths(table)) == ["topic_003"]
    assert list(naming.assignment_strengths(table)["topic_003"]) == ["b"]


def test_assign_matches_keeps_significant_distinct_tfs_up_to_the_cap():
    matches = pd.DataFrame({
        "query": ["t0"] * 6 + ["t1"] * 2,
        "target": ["M1", "M2", "M3", "M4", "M5", "M6", "M7", "M8"],
        "target_name": ["CTCF", "CTCF", "CTCFL", "", "ZNF1", "ZNF2", "A", "B"],
        "rank": [1, 2, 3, 4, 5, 6, 1, 2],
        "q_value": [1e-4, 1e-4, 2e-3, 3e-3, 4e-3, 0.01, 0.2, 0.5],
    })
    out = naming.assign_matches(matches, max_q=0.05, max_tfs_per_topic=3)
    assert out.loc[out["assigned"], "target"].tolist() == ["M1", "M3", "M4"]  # CTCF once; M4 named by its id
    assert naming.match_names(out).tolist()[3] == "M4"


def test_map_topics_needs_two_tfs():
    with pytest.raises(ValueError, match="two TFs"):
        naming.map_topics_to_tfs(np.zeros((4, 2)), ["a"] * 4)


def test_read_probes_tsv_block_layout(reference_dir):
    table = naming.read_probes_tsv(reference_dir / "selex_probes_sample100.tsv", ["A", "B", "C", "D", "E"])
    assert len(table) == 100 and table["tf"].value_counts().to_dict() == {t: 20 for t in "ABCDE"}
    assert table["sequence"].iloc[0] == "AAAGATAATCTAATTAGCGC"


def test_read_probes_tsv_errors(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("sequence\ttf\nACGTACGT\tX\nACGTQQ\tY\n")
    with pytest.raises(InputError, match=r"p\.tsv:3: .*ACGTQQ"):
        naming.read_probes_tsv(path)
    path.write_text("seq\tlabel\nACGT\tX\n")
    with pytest.raises(InputError, match="'sequence' column"):
        naming.read_probes_tsv(path)
    path.write_text("sequence\ttf\nACGT\tX\nACGA\tX\n")
    with pytest.raises(InputError, match="at least two TFs"):
        naming.read_probes_tsv(path)


def test_sample_probes_fixed_number_per_tf():
    # A TF with three matrices (like JASPAR's CTCF) gets as many probes as a TF with one.
    pwm = np.full((6, 4), 0.25)
    motifs = [Motif(f"M{i}", pwm, alt_name="CTCF") for i in range(3)] + [Motif("M9", pwm, alt_name="SP1")]
    probes = naming.sample_probes(np.random.default_rng(0), motifs, n_per_tf=10)
    assert probes["tf"].value_counts().to_dict() == {"CTCF": 10, "SP1": 10}


def test_sample_probes_follow_the_pwm():
    pwm = np.full((6, 4), 0.0)
    pwm[np.arange(6), [0, 1, 2, 3, 0, 1]] = 1.0
    probes = naming.sample_probes(np.random.default_rng(0), [Motif("M1", pwm, alt_name="TF1")], n_per_tf=50)
    assert len(probes) == 50 and set(probes["tf"]) == {"TF1"}
    assert all(len(s) == 20 and "ACGTAC" in s for s in probes["sequence"])
    again = naming.sample_probes(np.random.default_rng(0), [Motif("M1", pwm, alt_name="TF1")], n_per_tf=50)
    assert again.equals(probes)


def test_labels_per_block():
    assert naming.labels_per_block(["x", "y"], 4) == ["x", "x", "y", "y"]
    with pytest.raises(ValueError):
        naming.labels_per_block(["x", "y"], 5)


def test_top_tfs_per_peak_and_accessibility():
    scores = np.array([[0.1, 0.6, 0.3], [0.7, 0.1, 0.2]])
    strengths = {"topic_000": {"A": 0.9}, "topic_001": {"B": 0.8, "C": 0.9}, "topic_002": {"C": 1.0}}
    top = peaks.top_tfs_per_peak(scores, strengths, ["p1", "p2"], n_top=3, per_topic=None)
    # peak 1: C via topic_001 (0.54) beats B (0.48) and C via topic_002 (0.3); A 0.09.
    assert top.loc[0, ["tf_1", "tf_2", "tf_3"]].tolist() == ["C", "B", "A"]
    assert top.loc[0, ["topic_1", "topic_2", "topic_3"]].tolist() == ["topic_001", "topic_001", "topic_000"]
    assert top.loc[0, "score_1"] == pytest.approx(0.6 * 0.9)
    assert top.loc[1, ["tf_1", "tf_2", "tf_3"]].tolist() == ["A", "C", "B"]
    assert top.loc[1, "score_2"] == pytest.approx(0.2)
    mapping = {"topic_000": ["A"], "topic_001": ["B", "C"], "topic_002": ["C"]}
    acc = peaks.accessibility(scores, mapping)
    np.testing.assert_allclose(acc["accessibility"], [0.8, 0.7, 0.5])
    assert acc["tfs"].tolist() == ["A", "B,C", "C"]
    other = peaks.accessibility(scores[:1], {"topic_000": ["A"], "topic_002": ["D"]})
    both = peaks.compare_accessibility(acc, other, ("x", "y"))
    row = both.set_index("tf")
    assert row.loc["C", "x"] == pytest.approx(1.2 / 2.0) and row.loc["C", "y"] == 0.0
    assert row.loc["D", "y"] == pytest.approx(0.3 / 1.0)


def test_top_tfs_per_peak_one_tf_per_topic_and_only_assigned_topics():
    # Peak 0 carries two signals (topics 0 and 2): both are named, not three alternatives of topic 0.
    scores = np.array([[0.5, 0.1, 0.4], [0.02, 0.9, 0.08]])
    strengths = {"topic_000": {"AP1a": 0.99, "AP1b": 0.98, "AP1c": 0.97}, "topic_002": {"CTCF": 0.9}}
    top = peaks.top_tfs_per_peak(scores, strengths, n_top=3)
    assert top.loc[0, ["tf_1", "tf_2", "tf_3"]].tolist() == ["AP1a", "CTCF", ""]
    # topic_001 has no assigned TF, so peak 1 is called only through its small topic 0 and 2 scores.
    assert set(top.loc[1, ["tf_1", "tf_2"]]) == {"AP1a", "CTCF"}
    strict = peaks.top_tfs_per_peak(scores, strengths, n_top=3, min_topic_score=1 / 3)
    assert strict.loc[0, ["tf_1", "tf_2", "tf_3"]].tolist() == ["AP1a", "CTCF", ""]
    assert strict.loc[1, ["tf_1", "tf_2", "tf_3"]].tolist() == ["", "", ""] and np.isnan(strict.loc[1, "score_1"])


def test_calls_follow_a_topic_above_its_usual_share_not_an_even_share():
    # Under a strong prior every topic holds about 1/M of every peak: topic 0 (AP-1) stands out in
    # peaks 0-1 only, topic 1 holds a steady 0.35 everywhere (above 1/M = 0.33).
    scores = np.array([[0.60, 0.35, 0.05], [0.55, 0.35, 0.10], [0.10, 0.35, 0.55], [0.10, 0.35, 0.55]])
    ratio = peaks.relative_scores(scores)
    np.testing.assert_allclose(ratio[:, 0], scores[:, 0] / 0.3375)
    np.testing.assert_allclose(ratio[:, 1], 1.0)
    strengths = {"topic_000": {"AP1": 0.9}, "topic_001": {"STEADY": 0.95}}
    even = peaks.top_tfs_per_peak(scores, strengths, min_topic_score=1 / 3)
    assert ((even["tf_1"] == "STEADY") | (even["tf_2"] == "STEADY")).all()  # an even share: called everywhere
    calls = peaks.top_tfs_per_peak(ratio, strengths, min_topic_score=1.5)
    assert calls["tf_1"].tolist() == ["AP1", "AP1", "", ""] and (calls["tf_2"] == "").all()
    assert calls.loc[0, "score_1"] == pytest.approx(0.60 / 0.3375 * 0.9)
    # A topic no peak uses scores 0, not NaN.
    assert (peaks.relative_scores(np.array([[0.5, 0.0], [0.5, 0.0]]))[:, 1] == 0).all()


def test_top_tfs_per_peak_breaks_ties_deterministically_and_flags_them():
    scores = np.array([[0.5, 0.5, 0.0], [0.6, 0.3, 0.1]])
    strengths = {"topic_000": {"B": 0.8}, "topic_001": {"A": 0.8}, "topic_002": {"C": 0.9}}
    top = peaks.top_tfs_per_peak(scores, strengths, n_top=2)
    assert top.loc[0, ["tf_1", "tf_2"]].tolist() == ["A", "B"]  # equal score and strength: by name
    assert top.loc[0, "score_1"] == top.loc[0, "score_2"] and top["tied"].tolist() == [True, False]
    # Equal scores, different strengths: the stronger assignment first.
    tie = peaks.top_tfs_per_peak(np.array([[0.45, 0.0, 0.5]]), {"topic_000": {"Z": 1.0}, "topic_002": {"Y": 0.9}})
    assert tie.loc[0, ["tf_1", "tf_2"]].tolist() == ["Z", "Y"] and tie.loc[0, "tied"]


def _mapping(pairs):
    frame = pd.DataFrame(pairs, columns=["topic", "tf", "p_value"])
    frame["assigned"] = True
    return frame


def test_select_runs_ranks_and_builds_non_redundant_ensemble():
    mappings = {
        "r1": _mapping([("t1", "A", 1e-9), ("t2", "B", 1e-5)]),
        "r2": _mapping([("t1", "A", 1e-8), ("t3", "C", 1e-4), ("t4", "D", 1e-3)]),
        "r3": _mapping([("t9", "E", 1e-3)]),
        "r4": _mapping([("t5", "B", 1e-6), ("t6", "A", 1e-6)]),
    }
    summary, ensemble = selection.select_runs(mappings, n_best=3, elbos={"r1": -10.0, "r4": -20.0})
    assert summary["run"].tolist() == ["r2", "r1", "r4", "r3"]
    assert summary["selected"].tolist() == [True, True, True, False]
    assert list(zip(ensemble["run"], ensemble["topic"])) == [("r2", "t1"), ("r2", "t3"), ("r2", "t4"), ("r1", "t2")]


def test_select_runs_counts_families_not_tfs():
    # Run "many" maps 40 TFs of one family (the saturating count of the old criterion); run "few"
    # maps three TFs of three families. A TF spread over more than three topics does not count.
    families = {f"ZNF{i}": "C2H2" for i in range(40)} | {"FOS": "bZIP", "SPI1": "ETS", "CTCF": "C2H2"}
    many = _mapping([(f"t{i % 2}", f"ZNF{i}", 1e-9) for i in range(40)])
    few = _mapping([("t0", "FOS", 1e-5), ("t1", "SPI1", 1e-5), ("t2", "CTCF", 1e-5)])
    spread = _mapping([(f"t{i}", "FOS", 1e-9) for i in range(4)] + [("t9", "SPI1", 1e-3)])
    summary, _ = selection.select_runs({"many": many, "few": few, "spread": spread}, n_best=1, families=families)
    assert summary["run"].tolist()[0] == "few" and summary["selected"].tolist() == [True, False, False]
    counts = summary.set_index("run")
    assert counts["n_families"].to_dict() == {"few": 3, "many": 1, "spread": 1}
    assert counts["n_tfs_mapped"].to_dict() == {"few": 3, "many": 40, "spread": 2}
    assert selection.named_families(spread, families) == {"ETS"}
    assert selection.named_families(spread, families, max_topics_per_tf=4) == {"ETS", "bZIP"}


def test_select_runs_breaks_ties_by_held_out_elbo(tmp_path):
    same = _mapping([("t0", "FOS", 1e-5)])
    for run, elbo in (("a", -120.5), ("b", -110.0)):
        (tmp_path / run).mkdir()
        lines = [{"step": 10, "elbo": -200.0}, {"step": 20, "val_elbo": elbo - 50}, {"step": 30, "val_elbo": elbo}]
        (tmp_path / run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    elbos = {run: selection.held_out_elbo(tmp_path / run) for run in ("a", "b", "c")}
    assert elbos["a"] == -120.5 and elbos["b"] == -110.0 and np.isnan(elbos["c"])
    summary, _ = selection.select_runs({"c": same, "a": same, "b": same}, n_best=1, elbos=elbos)
    assert summary["run"].tolist() == ["b", "a", "c"] and summary["selected"].tolist() == [True, False, False]


def test_find_runs(tmp_path):
    for name in ("0", "1/sub"):
        (tmp_path / name / "checkpoints").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    assert selection.find_runs(tmp_path) == [tmp_path / "0", tmp_path / "1" / "sub"]


@pytest.mark.slow
def test_algorithm1_on_real_probes_with_trained_model(reference_dir, tmp_path):
    # Topics start at the corpus k-mer frequencies (theta_init=background): with Glorot logits,
    # 300 steps merged block 4 into the E-box topic and left block 3 unassigned. A single 300-step
    # run is sensitive to float rounding (Adam's first steps are close to sign(g), so paths that
    # agree to 1e-7 per step part after a few steps): measured, sparse_cpu assigns every block at
    # seeds 0-2 and fused_cpu at seeds 1 and 2 (seed 0 leaves block 3 at p = 0.03). So two of three
    # seeds must assign every block and keep the three families apart. Three of the five blocks are
    # homeobox probes, so half of a homeobox block's "all other probes" share its motif and its AUROC
    # cannot pass about 0.75 (measured 0.71-0.83): the effect floor is lowered to test the test alone.
    from bindvae.config import ModelConfig, RunConfig, TrainConfig
    from bindvae.features.kmers import Vocabulary, featurize
    from bindvae.infer import latent_scores, model_from_params
    from bindvae.training import fit

    probes = naming.read_probes_tsv(reference_dir / "selex_probes_sample100.tsv")
    vocab = Vocabulary.gapped8()
    features = featurize(probes["sequence"].tolist(), vocab)
    passed = []
    for seed in (0, 1, 2):
        config = RunConfig(
            model=ModelConfig(num_topics=6, alpha=1.0, hidden_sizes=(32, 32), theta_init="background"),
            train=TrainConfig(steps=300, batch_size=100, learning_rate=0.01, prior_burn_in_steps=300, log_every=100,
                              eval_every=10**9, checkpoint_every=300, val_fraction=0.0, progress=False, seed=seed,
                              topic_table_every=10**9, overwrite=True))
        result = fit(config, features, None, vocab.fingerprint, tmp_path / str(seed))
        model = model_from_params(result.params, config.model, vocab)
        scores = latent_scores(model, probes["sequence"].tolist(), kind="mean")  # as the analysis reads them
        table = naming.map_topics_to_tfs(scores, probes["tf"], min_effect=0.5)
        best = table.sort_values("p_value").groupby("tf").first()
        # Blocks 0, 1 and 3 are homeobox probes (TAATTA), block 2 E-box (CACGTG), block 4 another family.
        apart = len({best.loc["block_0", "topic"], best.loc["block_2", "topic"], best.loc["block_4", "topic"]}) == 3
        passed.append(bool(best["assigned"].all()) and apart)
    assert sum(passed) >= 2, passed


def test_jaspar_families_know_a_mouse_named_tf_in_capitals():
    from bindvae.analysis.families import jaspar_families, same_family

    families = jaspar_families("JASPAR2024")
    if not families:
        pytest.skip("pyjaspar's JASPAR2024 is not readable here")
    # JASPAR2024 CORE has Spi1 (mouse case) and no SPI1: a user's SPI1 is still an ETS factor.
    assert "Spi1" in families
    assert same_family("SPI1", "EHF", families) and same_family("SPI1", "Spi1", families)
    assert not same_family("SPI1", "CTCF", families)
