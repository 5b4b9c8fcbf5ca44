"""Algorithm 1 (probes -> topic names), probe inputs, per-peak TFs, accessibility and model selection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bindvae.analysis import naming, peaks, selection
from bindvae.analysis.meme import Motif
from bindvae.errors import InputError


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
    mapping = {"topic_000": ["A"], "topic_001": ["B", "C"], "topic_002": ["C"]}
    top = peaks.top_tfs_per_peak(scores, mapping, ["p1", "p2"], n_top=3)
    assert top.loc[0, ["tf_1", "tf_2", "tf_3"]].tolist() == ["B", "C", "A"]
    assert top.loc[1, ["tf_1", "tf_2", "tf_3"]].tolist() == ["A", "C", "B"]
    assert top.loc[1, "score_2"] == pytest.approx(0.2)
    acc = peaks.accessibility(scores, mapping)
    np.testing.assert_allclose(acc["accessibility"], [0.8, 0.7, 0.5])
    assert acc["tfs"].tolist() == ["A", "B,C", "C"]
    other = peaks.accessibility(scores[:1], {"topic_000": ["A"], "topic_002": ["D"]})
    both = peaks.compare_accessibility(acc, other, ("x", "y"))
    row = both.set_index("tf")
    assert row.loc["C", "x"] == pytest.approx(1.2 / 2.0) and row.loc["C", "y"] == 0.0
    assert row.loc["D", "y"] == pytest.approx(0.3 / 1.0)


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
    summary, ensemble = selection.select_runs(mappings, n_best=3)
    assert summary["run"].tolist() == ["r2", "r1", "r4", "r3"]
    assert summary["selected"].tolist() == [True, True, True, False]
    assert list(zip(ensemble["run"], ensemble["topic"])) == [("r2", "t1"), ("r2", "t3"), ("r2", "t4"), ("r1", "t2")]


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
    # seeds must assign every block and keep the three families apart.
    from bindvae.config import ModelConfig, RunConfig, TrainConfig
    from bindvae.infer import latent_scores, model_from_params
    from bindvae.kmers import Vocabulary, featurize
    from bindvae.train import fit

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
        table = naming.map_topics_to_tfs(latent_scores(model, probes["sequence"].tolist()), probes["tf"])
        best = table.sort_values("p_value").groupby("tf").first()
        # Blocks 0, 1 and 3 are homeobox probes (TAATTA), block 2 E-box (CACGTG), block 4 another family.
        apart = len({best.loc["block_0", "topic"], best.loc["block_2", "topic"], best.loc["block_4", "topic"]}) == 3
        passed.append(bool(best["assigned"].all()) and apart)
    assert sum(passed) >= 2, passed
