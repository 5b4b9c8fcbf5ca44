"""Recovery scoring, the LDA peer's motif path, the benchmark pipeline and its CLI.

The scoring is checked against oracles: the planted PWMs themselves as "topic motifs" with the truth
as peak scores must be recovered with q < 0.05 and AUROC 1, and unrelated motifs must not be.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.recovery import config as recovery_config
from benchmarks.recovery import metrics as recovery
from benchmarks.recovery import peers, yardsticks
from benchmarks.recovery import pipeline as recovery_pipeline
from benchmarks.recovery import tables as recovery_tables
from bindvae import dna
from bindvae.analysis.motifs import canonical_kmer_codes, decode_kmers, encode_kmers
from bindvae.data import synthetic
from bindvae.errors import ConfigError
from bindvae.motif import Motif, load_motif_database
from tests.conftest import REPO_ROOT

SMALL = synthetic.SyntheticConfig(n_peaks=600)


@pytest.fixture(scope="module")
def small_set():
    return synthetic.generate(np.random.default_rng(11), SMALL)


@pytest.fixture(scope="module")
def database(small_set):
    return load_motif_database("JASPAR2024", extra=list(small_set.motifs.values()))


def _oracle(small_set, n_noise_topics: int = 3):
    """Planted PWMs as topics 0..11, then noise topics; peak scores = which peaks carry what."""
    planted = list(small_set.motifs.values())
    rng = np.random.default_rng(0)
    noise = [Motif(f"noise_{i}", rng.dirichlet(np.ones(4), size=10)) for i in range(n_noise_topics)]
    topics = [Motif(f"topic_{i:03d}", m.pwm) for i, m in enumerate(planted)] + noise
    scores = rng.random((len(small_set.names), len(topics))) * 0.1
    for i, motif in enumerate(planted):
        scores[:, i] += synthetic.planted_labels(small_set.truth, small_set.names, motif.alt_name)
    for j, feature in enumerate(("CA-repeat", "polyA", "GC-rich")):
        scores[:, len(planted) + j] += synthetic.planted_labels(small_set.truth, small_set.names, feature)
    return topics, scores


def test_planted_motifs_are_distinct(small_set, database):
    table = recovery.compare_motifs(list(small_set.motifs.values()), database)
    ids = {m.name for m in small_set.motifs.values()}
    cross = table[table["target"].isin(ids) & (table["query"] != table["target"])]
    assert len(cross) == len(ids) * (len(ids) - 1)
    assert cross["q_value"].min() > 0.05
    self_hits = table[table["query"] == table["target"]]
    assert (self_hits["q_value"] < 1e-6).all()


def test_score_recovery_oracle_recovers_everything(small_set, database):
    topics, scores = _oracle(small_set)
    frame = recovery.score_recovery(topics, scores, small_set.names, small_set.truth, small_set.motifs, database)
    motifs = frame[frame["kind"].isin(["motif", "pair"])]
    assert motifs["recovered"].all() and (motifs["q_value"] < 0.05).all()
    planted_order = [m.alt_name for m in small_set.motifs.values()]
    assert list(motifs["topic"]) == [planted_order.index(f) for f in motifs["feature"]]
    assert np.allclose(motifs["auroc"], 1.0)
    non_tf = frame[frame["kind"].isin(["repeat", "background"])].set_index("feature")
    assert np.allclose(non_tf["auroc"], 1.0) and non_tf["recovered"].all()
    summary = recovery.summarize(frame)
    assert summary["n_recovered"] == 10 and summary["rarest"] == "NFKB1" and summary["rarest_recovered"]
    assert summary["pair"].startswith("two topics") and summary["non_tf_own_topics"] == "3/3"
    assert list(frame["fraction"][:3]) == [0.30, 0.20, 0.15]


def test_score_recovery_random_topics_recover_nothing(small_set, database):
    rng = np.random.default_rng(5)
    topics = [Motif(f"topic_{i:03d}", rng.dirichlet(np.ones(4) * 0.5, size=10)) for i in range(12)]
    scores = rng.random((len(small_set.names), len(topics)))
    frame = recovery.score_recovery(topics, scores, small_set.names, small_set.truth, small_set.motifs, database)
    assert frame.loc[frame["kind"] == "motif", "recovered"].sum() <= 1
    assert (frame["auroc"].dropna().between(0.3, 0.7)).all()
    assert recovery.summarize(frame)["pair"] == "missed"


def test_score_recovery_pair_in_one_topic(small_set, database):
    topics, scores = _oracle(small_set)
    # Topic 11 (POU5F1) now scores like a composite: the SOX2 member is best matched there too.
    sox2 = [m.alt_name for m in small_set.motifs.values()].index("SOX2")
    topics[sox2] = Motif(topics[sox2].name, np.full((10, 4), 0.25))
    composite = np.concatenate([small_set.motifs["SOX2"].pwm, small_set.motifs["POU5F1"].pwm])
    pou = [m.alt_name for m in small_set.motifs.values()].index("POU5F1")
    topics[pou] = Motif(topics[pou].name, composite)
    frame = recovery.score_recovery(topics, scores, small_set.names, small_set.truth, small_set.motifs, database)
    pair = frame[frame["kind"] == "pair"]
    assert set(pair["topic"]) == {pou} and pair["recovered"].all()
    assert recovery.summarize(frame)["pair"].startswith("one topic")


def test_score_recovery_matches_a_topics_parts_to_that_topic(small_set, database):
    # FOXA1's topic also ranks NFKB1's carriers and NFKB1's own topic is blurred: NFKB1 is found only
    # through one of the two sites split from FOXA1's topic, and is credited to it with its AUROC.
    topics, scores = _oracle(small_set)
    names = [m.alt_name for m in small_set.motifs.values()]
    foxa, nfkb = names.index("FOXA1"), names.index("NFKB1")
    scores[:, foxa] += scores[:, nfkb]
    nfkb_pwm = topics[nfkb].pwm
    topics[nfkb] = Motif(topics[nfkb].name, np.full((10, 4), 0.25))
    alone = recovery.score_recovery(topics, scores, small_set.names, small_set.truth, small_set.motifs, database)
    assert not alone.set_index("feature").loc["NFKB1", "recovered"]
    sets = [[motif] for motif in topics]
    sets[foxa] += [Motif(topics[foxa].name + "a", topics[foxa].pwm), Motif(topics[foxa].name + "b", nfkb_pwm)]
    frame = recovery.score_recovery(sets, scores, small_set.names, small_set.truth, small_set.motifs, database)
    rows = frame.set_index("feature")
    assert rows.loc["NFKB1", "recovered"] and rows.loc["NFKB1", "topic"] == foxa and rows.loc["NFKB1", "part"]
    assert rows.loc["NFKB1", "auroc"] > 0.95 and rows.loc["NFKB1", "consensus"] == sets[foxa][2].consensus
    assert rows.loc["FOXA1", "topic"] == foxa and not rows.loc["FOXA1", "part"]
    assert rows.loc["FOXA1", "auroc"] == alone.set_index("feature").loc["FOXA1", "auroc"]
    assert recovery.summarize(frame)["n_recovered"] == recovery.summarize(alone)["n_recovered"] + 1


def test_score_recovery_does_not_match_topics_no_peak_uses(small_set, database):
    # CTCF's topic holds a blurred CTCF motif and ranks its carriers; a topic no peak uses holds the exact
    # PWM (as an unused topic's motif can match by chance). The used topic must be the one matched.
    topics, scores = _oracle(small_set)
    scores = scores / scores.sum(axis=1, keepdims=True)
    ctcf = [m.alt_name for m in small_set.motifs.values()].index("CTCF")
    exact = topics[ctcf].pwm
    topics[ctcf] = Motif(topics[ctcf].name, 0.7 * exact + 0.075)
    topics.append(Motif("unused", exact))
    scores = np.column_stack([scores * 0.999, np.full(len(scores), 0.001)])
    frame = recovery.score_recovery(topics, scores, small_set.names, small_set.truth, small_set.motifs, database)
    row = frame.set_index("feature").loc["CTCF"]
    assert row["topic"] == ctcf and row["recovered"] and row["auroc"] > 0.95
    assert frame.attrs["unused_topics"] == 1 and recovery.summarize(frame)["unused_topics"] == 1
    every = recovery.score_recovery(topics, scores, small_set.names, small_set.truth, small_set.motifs, database,
                                    min_used_fraction=0.0)
    assert every.set_index("feature").loc["CTCF", "topic"] == len(topics) - 1  # without the rule: the unused one


def test_score_recovery_prefers_a_topics_own_motif_to_another_topics_part(small_set, database):
    # CTCF's topic has a blurred copy of CTCF (still significant); a noise topic's second site is CTCF
    # itself and matches better. The analysis names topics by their own motifs only, so the benchmark
    # credits CTCF's topic; without a significant own motif the part would be matched (test above).
    topics, scores = _oracle(small_set)
    names = [m.alt_name for m in small_set.motifs.values()]
    ctcf, noise = names.index("CTCF"), len(names)
    sharp = topics[ctcf].pwm
    topics[ctcf] = Motif(topics[ctcf].name, 0.7 * sharp + 0.075)
    sets = [[motif] for motif in topics]
    sets[noise] += [Motif(topics[noise].name + "a", topics[noise].pwm), Motif(topics[noise].name + "b", sharp)]
    table = recovery.compare_motifs([m for group in sets for m in group], database)
    hits = table[table["target"] == small_set.motifs["CTCF"].name].set_index("query")["q_value"]
    assert hits[topics[noise].name + "b"] < hits[topics[ctcf].name] < 0.05  # the part matches better
    row = recovery.score_recovery(sets, scores, small_set.names, small_set.truth, small_set.motifs,
                                  database).set_index("feature").loc["CTCF"]
    assert row["topic"] == ctcf and not row["part"] and row["recovered"] and row["auroc"] > 0.95


def test_score_recovery_scores_a_motif_split_over_two_topics_by_their_signature(small_set, database):
    # CTCF's carriers give their score to CTCF's topic or to a second topic holding the same site, half
    # each: the topic alone ranks them near 0.75, its signature (the two together) near 1.
    topics, scores = _oracle(small_set)
    ctcf = [m.alt_name for m in small_set.motifs.values()].index("CTCF")
    topics.append(Motif("split", 0.9 * topics[ctcf].pwm + 0.025))
    carriers = scores[:, ctcf] >= 1.0
    moved = carriers & (np.random.default_rng(3).random(len(scores)) < 0.5)
    scores = np.column_stack([scores, np.random.default_rng(4).random(len(scores)) * 0.1])
    scores[moved, ctcf] -= 1.0
    scores[moved, -1] += 1.0
    frame = recovery.score_recovery(topics, scores, small_set.names, small_set.truth, small_set.motifs, database,
                                    signature_q=0.05).set_index("feature")
    row = frame.loc["CTCF"]
    assert row["topic"] in (ctcf, len(topics) - 1) and row["recovered"]
    assert row["auroc"] > 0.97 and 0.6 < row["topic_auroc"] < 0.85
    assert row["lookalikes"] == str(len(topics) - 1 if row["topic"] == ctcf else ctcf)
    assert frame.loc["SPI1", "lookalikes"] == "" and frame.loc["SPI1", "auroc"] == frame.loc["SPI1", "topic_auroc"]
    scan = recovery.score_recovery(topics, scores, small_set.names, small_set.truth, small_set.motifs, database,
                                   signature_q=0.05, extra_scores={"scan": scores[:, ::-1].copy(),
                                                                   "counts": 3.0 * scores}).set_index("feature")
    assert scan.loc["CTCF", "auroc"] == row["auroc"] and scan.loc["CTCF", "scan_auroc"] < 0.7  # another topic's
    assert scan.loc["CTCF", "counts_auroc"] == row["auroc"]  # the same look-alikes, the same ranking
    with pytest.raises(ValueError, match="unknown extra scores"):
        recovery.score_recovery(topics, scores, small_set.names, small_set.truth, small_set.motifs, database,
                                extra_scores={"oracle": scores})
    alone = recovery.score_recovery(topics, scores, small_set.names, small_set.truth, small_set.motifs, database,
                                    signature_q=0.0).set_index("feature")
    assert alone.loc["CTCF", "auroc"] == row["topic_auroc"] and alone.loc["CTCF", "lookalikes"] == ""


def test_score_recovery_joins_the_two_ends_of_a_long_site_through_the_database(small_set, database):
    # CTCF's topic holds the first 10 columns of its site, a second topic the last 6: not look-alikes,
    # but both match CTCF best in the database, so the signature (namesakes, as the analysis) takes both.
    topics, scores = _oracle(small_set)
    ctcf = [m.alt_name for m in small_set.motifs.values()].index("CTCF")
    whole = topics[ctcf].pwm
    topics[ctcf] = Motif(topics[ctcf].name, whole[:10])
    topics.append(Motif("other_end", whole[9:]))
    carriers = scores[:, ctcf] >= 1.0
    moved = carriers & (np.random.default_rng(3).random(len(scores)) < 0.5)
    scores = np.column_stack([scores, np.random.default_rng(4).random(len(scores)) * 0.1])
    scores[moved, ctcf] -= 1.0
    scores[moved, -1] += 1.0
    args = (topics, scores, small_set.names, small_set.truth, small_set.motifs, database)
    joined = recovery.score_recovery(*args, signature_q=0.05).set_index("feature").loc["CTCF"]
    apart = recovery.score_recovery(*args, signature_q=0.05, namesakes=False).set_index("feature").loc["CTCF"]
    assert joined["recovered"] and joined["lookalikes"] == str(len(topics) - 1 if joined["topic"] == ctcf else ctcf)
    assert joined["auroc"] > 0.97 and 0.6 < joined["topic_auroc"] < 0.85
    assert apart["lookalikes"] == "" and apart["auroc"] == apart["topic_auroc"] < 0.85


def _peer_scores(kind: str, topic_word: np.ndarray, proportions: np.ndarray, X) -> np.ndarray:
    if kind == "decoder":
        return recovery.scan_topic_words(topic_word, X)
    totals = np.asarray(X.sum(axis=1)).ravel()
    return recovery.counts_and_shares(recovery.topic_word_counts(topic_word, proportions, X), proportions,
                                      totals)[kind]


@pytest.mark.parametrize("kind", ["decoder", "counts", "shares", "density"])
def test_peers_scores_from_a_topic_word_matrix_are_bindvaes(small_set, kind):
    # The peers are scored as BindVAE's latent_scores(kind=...) scores: the scan, or the expected counts,
    # from the same topic-word distributions (and proportions) give the same numbers; a topic of the
    # carriers' k-mers ranks its own motif's carriers, one of the other peaks' k-mers does not.
    from bindvae.features.kmers import Vocabulary, featurize
    from bindvae.infer import latent_scores
    from tests.helpers.analysis import random_model

    vocab = Vocabulary.gapped8()
    model = random_model(vocab, num_topics=3, hidden_sizes=(8,))
    X = featurize(small_set.sequences[:50], vocab)
    theta = np.asarray(model.params["topic_kmer"]["theta"], np.float64)
    phi = np.exp(theta - theta.max(axis=1, keepdims=True))
    np.testing.assert_allclose(_peer_scores(kind, 5.0 * phi, latent_scores(model, X, kind="mean"), X),
                               latent_scores(model, X, kind=kind), rtol=1e-4, atol=1e-4)
    X = featurize(small_set.sequences, vocab)
    carriers = synthetic.planted_labels(small_set.truth, small_set.names, "CTCF")
    profile = np.asarray(X[carriers].sum(axis=0)).ravel() + 1.0
    background = np.asarray(X[~carriers].sum(axis=0)).ravel() + 1.0
    scores = _peer_scores(kind, np.stack([profile, background]), np.full((X.shape[0], 2), 0.5), X)
    assert recovery.auroc(scores[:, 0], carriers) > 0.9 > 0.5 > recovery.auroc(scores[:, 1], carriers)


def test_topic_motifs_from_scores_builds_the_favoured_motif():
    codes = canonical_kmer_codes(10)[::7]
    kmers = decode_kmers(codes, 10)
    target = "TGACTCA"
    hits = np.array([target in k or "TGAGTCA" in k for k in kmers])
    scores = np.random.default_rng(1).random((len(codes), 2)) * 0.1
    scores[hits, 0] += 1.0
    sets = recovery.topic_motifs_from_scores(scores, codes, top_k=min(200, int(hits.sum())), prefix="lda")
    assert [[m.name for m in motifs] for motifs in sets] == [["lda_000"], ["lda_001"]]
    motifs = [first for first, in sets]
    consensus = motifs[0].consensus
    assert target in consensus or "TGAGTCA" in consensus
    assert encode_kmers([kmers[0]])[0] == codes[0]


def test_lda_peer_scores_peaks_and_kmers(small_set):
    from bindvae.features.kmers import featurize

    X = featurize(small_set.sequences[:200])
    lda = peers.fit_lda(X, num_topics=4, seed=0, passes=1, batch_size=64)
    peaks = peers.transform_in_chunks(lda.transform, X, chunk=64)
    assert peaks.shape == (200, 4) and np.allclose(peaks.sum(axis=1), 1.0, atol=1e-4)
    assert np.isfinite(lda.perplexity(X))


def test_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ConfigError, match="data.bogus"):
        recovery_config.config_from_dict({"data": {"bogus": 1}})
    with pytest.raises(ConfigError, match="lda.rate"):
        recovery_config.config_from_dict({"lda": {"rate": 1}})
    with pytest.raises(ConfigError, match="data.pair"):
        recovery_config.config_from_dict({"data": {"pair": [{"name": "SOX2", "matrix_id": "MA0143.5"}]}})
    with pytest.raises(ConfigError, match="split_motifs: must be true or false, got 'maybe'"):
        recovery_config.config_from_dict({"split_motifs": "maybe"})
    with pytest.raises(ConfigError, match="gibbs_lda.enabled: must be true or false"):
        recovery_config.config_from_dict({"gibbs_lda": {"enabled": "no"}})
    assert not recovery_config.config_from_dict({"split_motifs": False}).split_motifs


def _tiny(tmp_path, **lda) -> recovery_config.RecoveryConfig:
    return recovery_config.config_from_dict({
        "name": "tiny",
        "data": {"n_peaks": 120, "length": 100},
        "run": {"model": {"num_topics": 4, "hidden_sizes": [8]},
                "train": {"steps": 3, "prior_burn_in_steps": 1, "batch_size": 16, "log_every": 1,
                          "eval_every": 0, "checkpoint_every": 3, "progress": False, "val_fraction": 0.1},
                "logger": {"kind": "none"}},
        "lda": {"enabled": False, **lda}, "gibbs_lda": {"enabled": False}, "yardsticks": {"enabled": False},
    })


@pytest.mark.slow
def test_run_recovery_writes_tables(tmp_path):
    config = _tiny(tmp_path)
    result = recovery_pipeline.run_recovery(config, tmp_path / "out", machine="Machine: test.")
    features = pd.read_csv(result.paths["features"], sep="\t", keep_default_na=False)
    assert list(features["feature"][:2]) == ["FOS::JUN", "CTCF"]
    assert len(features) == 15 and "BindVAE q" in features.columns and "BindVAE part" in features.columns
    motifs = features[features["kind"] == "motif"]
    assert motifs["BindVAE concentration AUROC"].between(0, 1).all()  # the reference's output, scored too
    markdown = Path(result.paths["markdown"]).read_text()
    assert "planted motifs recovered (q < 0.05)" in markdown and "Machine: test." in markdown
    # The planted pair is also scored by the cooperative-binding route (its answer depends on the run).
    assert re.search(r"cooperative pair by probes \(pair vs each partner\) \| one composite topic \| "
                     r"(one composite topic|two topics|missed)", markdown)
    assert (tmp_path / "out" / "data" / "planted.truth.tsv").is_file()
    assert (tmp_path / "out" / "bindvae" / "metrics.jsonl").is_file()
    # The checkpoint records the FASTA trained on, so analysing the run without peaks= scores those peaks.
    from bindvae.checkpoint import load_checkpoint

    data = load_checkpoint(tmp_path / "out" / "bindvae").config["data"]
    assert data["source"] == "fasta" and data["path"] == str((tmp_path / "out" / "data" / "planted.fa").resolve())
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".tmp")]
    # The written set reads back as the same benchmark input.
    again = recovery_pipeline.load_planted_set(
        recovery_config.RecoveryConfig(fasta=str(tmp_path / "out" / "data" / "planted.fa")), tmp_path)[0]
    assert again.sequences[:5] == synthetic.generate(np.random.default_rng(0), config.data).sequences[:5]
    assert set(again.motifs) == set(synthetic.generate(np.random.default_rng(0), config.data).motifs)


def test_cli_reports_bad_value_in_one_line(tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.benchmark_recovery", "benchmark_recovery=test", "data.gc=1.5",
         f"hydra.run.dir={tmp_path}"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == "error: config gc: must lie in [0, 1], got 1.5"
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("arg", "line"), [
    ("run.model.colour=1", "error: config run.model.colour: unknown argument 'run.model.colour=1'; known in "
                           "run.model: alpha, hidden_sizes, kmer_selection, kmer_selection_size, num_topics, "
                           "theta_init"),
    ("benchmark_recovery=big", "error: config benchmark_recovery: unknown option 'big'; "
                               "one of ['default', 'demo', 'full', 'test']"),
])
def test_cli_names_an_unknown_key_or_preset_in_one_line(tmp_path, arg, line):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.run([sys.executable, "-m", "experiments.benchmark_recovery", arg, f"hydra.run.dir={tmp_path}"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [line]
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("preset", ["default", "full", "demo", "test"])
def test_presets_compose(preset):
    from experiments.demo import compose_config

    config = compose_config(["run.train.steps=10", "run.train.prior_burn_in_steps=5", "run.train.restart_steps=5"],
                            preset=preset)
    assert config.name == preset and config.run.train.steps == 10
    assert [m[0] for m in config.data.motifs][:2] == ["FOS::JUN", "CTCF"]
    expected_topics = {"default": 24, "full": 100, "demo": 16, "test": 8}[preset]
    assert config.run.model.num_topics == expected_topics
    # The default set trains on the chosen k-mers (as train=budget); the paper-size, demo and in-suite sets on all.
    assert config.run.model.kmer_selection == ("dispersion" if preset == "default" else "none")
    # ... with six starts (train.restarts; BENCHMARKS.md "Six starts"); the others keep one.
    assert config.run.train.restarts == (6 if preset == "default" else 1)
    # ... and a prior that is not learned (train.learn_prior); the others learn it, as the paper does.
    assert config.run.train.learn_prior == (preset != "default")
    if preset == "full":
        assert config.run.model.hidden_sizes == (300, 300, 300) and config.run.train.learning_rate == 3e-4


@pytest.mark.slow
def test_short_run_recovers_the_strongest_planted_motifs(tmp_path):
    """The ``test`` preset (2,000 x 100 bp, 300 steps; about a minute here): the motifs planted in 30%
    and 20% of peaks come back as topic motifs with q < 0.05 and their topics rank carrier peaks
    (AUROC >= 0.9). With the reference's Glorot decoder init and encoder-ranked 10-mers
    (``run.model.theta_init=glorot motif_ranking=encoder``) the same run misses CTCF (q 0.59, AUROC 0.77)."""
    from experiments.demo import compose_config

    config = compose_config([], preset="test")
    result = recovery_pipeline.run_recovery(config, tmp_path / "out", run_subdir="")
    table = result.methods["BindVAE"].table.set_index("feature")
    strongest = table[table["kind"].eq("motif") & (table["fraction"] >= 0.19)]
    assert list(strongest.index) == ["FOS::JUN", "CTCF"]
    assert (strongest["q_value"] < 0.05).all(), strongest[["consensus", "q_value", "auroc"]]
    assert (strongest["auroc"] >= 0.9).all(), strongest[["consensus", "q_value", "auroc"]]
    assert strongest["topic"].nunique() == 2  # each has its own topic


@pytest.mark.slow
def test_chosen_kmers_find_single_sites_in_200bp_peaks(tmp_path):
    """Planted truth where the k-mer choice matters (about a minute): 3,000 peaks of 200 bp with ONE site
    where planted (30%, 20%, 15%). Trained on the 3,000 most dispersed k-mers, all three come back as
    topic motifs (q < 0.05; measured 0.003-0.004) whose topics rank their carriers above chance (AUROC
    >= 0.6; measured 0.64-0.66); on all 112,800 k-mers the same schedule finds at most one of them
    (measured: none, q 0.17-0.80)."""
    from experiments.demo import compose_config

    common = ["data.n_peaks=3000", "data.length=200", "data.sites_per_peak=1", "run.model.num_topics=12",
              "run.train.steps=1500", "run.train.prior_burn_in_steps=750", "run.train.checkpoint_every=1500",
              "run.model.kmer_selection_size=3000"]
    found = {}
    for selection in ("dispersion", "none"):
        config = compose_config([*common, f"run.model.kmer_selection={selection}"], preset="test")
        result = recovery_pipeline.run_recovery(config, tmp_path / selection, run_subdir="")
        table = result.methods["BindVAE"].table.set_index("feature")
        motifs = table[table["kind"].eq("motif")]
        found[selection] = motifs[motifs["q_value"] < 0.05].index.tolist()
        if selection == "dispersion":
            assert (motifs["auroc"] >= 0.6).all(), motifs[["consensus", "q_value", "auroc"]]
    assert found["dispersion"] == ["FOS::JUN", "CTCF", "SPI1"], found
    assert len(found["none"]) <= 1, found


def test_demo_compose_rejects_unknown_override():
    from experiments.demo import compose_config

    with pytest.raises(ConfigError, match="overrides"):
        compose_config(["run.train.bogus=1"])


def test_decoder_kmer_scores_are_feature_log_ratios():
    """Parity: a 10-mer's decoder score is its gapped 8-mer counts times the topic log-ratios, and a
    topic whose logits favour a planted 10-mer's features builds that 10-mer as its motif."""
    import jax

    from bindvae.analysis.topics import decoder_kmer_scores, topic_motifs
    from bindvae.features.kmers import Vocabulary, featurize
    from tests.helpers.analysis import planted_model

    vocab = Vocabulary.gapped8()
    planted = ["GACGTCATTG", "CCAATTAGGA"]
    model = planted_model(vocab, planted, num_topics=2)
    theta = np.asarray(jax.random.normal(jax.random.key(3), (2, len(vocab)))) * 0.1
    for i, kmer in enumerate(planted):
        theta[i, featurize([kmer], vocab).indices] += 3.0
    model.params["topic_kmer"] = {"theta": theta.astype(np.float32)}
    codes, scores = decoder_kmer_scores(model)
    log_phi = theta - np.logaddexp.reduce(theta, axis=1, keepdims=True)
    ratio = log_phi - np.log(np.exp(log_phi).mean(axis=0, keepdims=True))
    pick = np.random.default_rng(2).choice(len(codes), 40, replace=False)
    expected = featurize(decode_kmers(codes[pick], 10), vocab) @ ratio.T
    np.testing.assert_allclose(scores[pick], expected, rtol=1e-4, atol=1e-3)
    motifs, table = topic_motifs(model, n_top=50, ranking="decoder")
    rc = str.maketrans("ACGT", "TGCA")
    for motif, kmer in zip(motifs, planted):
        # The PWM's weak flanks may be trimmed; its core is the planted 10-mer.
        assert len(motif.consensus) >= 8, motif.consensus
        assert motif.consensus in kmer or motif.consensus in kmer[::-1].translate(rc), (motif.consensus, kmer)
    best = table[table["rank"] == 1]["kmer"].tolist()
    assert [b in (k, k[::-1].translate(rc)) for b, k in zip(best, planted)] == [True, True]
    with pytest.raises(ValueError, match="ranking"):
        topic_motifs(model, ranking="phi")


def test_background_theta_starts_topics_at_corpus_frequencies():
    import jax

    from bindvae.vae.network import background_theta

    counts = np.array([0.0, 1.0, 10.0, 100.0, 1000.0])
    theta = np.asarray(background_theta(counts, 3, jax.random.key(0), noise=0.01))
    assert theta.shape == (3, 5) and theta.dtype == np.float32
    freq = (counts + 0.5) / (counts + 0.5).sum()
    np.testing.assert_allclose(np.exp(theta - np.logaddexp.reduce(theta, axis=1, keepdims=True)),
                               np.broadcast_to(freq, (3, 5)), rtol=0.05)
    assert not np.allclose(theta[0], theta[1])  # the noise breaks the symmetry between topics
    with pytest.raises(ConfigError, match="model.theta_init"):
        recovery_config.config_from_dict({"run": {"model": {"theta_init": "zeros"}}})


# ---------------------------------------------------------------------------------------------------------------------
# Yardsticks (oracle scan, supervised limit, AUROC / limit) and the Gibbs LDA peer.

STRONG = synthetic.SyntheticConfig(n_peaks=300, length=100, motifs=(("CTCF", "MA0139.2", 0.3),), pair=(),
                                   ca_repeat_fraction=0.0, polya_fraction=0.0, gc_rich_fraction=0.0,
                                   sites_per_peak=2)


@pytest.fixture(scope="module")
def strong_set():
    """300 x 100 bp peaks, CTCF planted twice in 30% of them, nothing else."""
    return synthetic.generate(np.random.default_rng(3), STRONG)


def _shuffled_truth(dataset, seed: int = 0):
    """The same peaks with the truth's carriers reassigned at random (a label-shuffled control)."""
    import dataclasses

    names = np.asarray(dataset.names)
    moved = dict(zip(names, np.random.default_rng(seed).permutation(names)))
    return dataclasses.replace(dataset, truth=dataset.truth.assign(peak=dataset.truth["peak"].map(moved)))


def test_max_log_odds_finds_sites_on_both_strands():
    pwm = np.full((4, 4), 0.01)
    pwm[[0, 1, 2, 3], [0, 0, 2, 1]] = 0.97  # AAGC
    codes = dna.encode_padded(["TTTTGCTTTTT", "ttttAAGCttt", "TTTTTTTTTTT", "TTN"])
    assert codes.shape == (4, 11) and codes[3, 2:].tolist() == [4] * 9
    scores = yardsticks.max_log_odds(codes, pwm, np.full(4, 0.25))
    best = 4 * np.log(0.97 / 0.25)
    np.testing.assert_allclose(scores[:2], best)  # reverse strand (GCTT) and forward, any case
    assert scores[2] < best - 5 and scores[3] < -100  # a window over N never scores


def test_oracle_auroc_is_one_for_a_strong_motif_and_half_for_shuffled_labels(strong_set):
    oracle = yardsticks.oracle_aurocs(strong_set)
    assert set(oracle) == {"CTCF"} and oracle["CTCF"] > 0.97
    assert yardsticks.oracle_aurocs(strong_set, background="uniform")["CTCF"] > 0.97
    control = yardsticks.oracle_aurocs(_shuffled_truth(strong_set))
    assert 0.4 < control["CTCF"] < 0.6
    base = yardsticks.base_background(dna.encode_padded(strong_set.sequences))
    assert np.isclose(base[0], base[3]) and 0.2 < base[1] < 0.25  # both strands; GC 0.42 plus the sites


def test_supervised_limit_is_high_for_a_strong_motif(strong_set):
    from sklearn.metrics import roc_auc_score

    from bindvae.features.kmers import featurize

    X = featurize(strong_set.sequences)
    binary = yardsticks.binarize(X)
    assert binary.nnz == X.nnz and set(np.unique(binary.data)) == {1.0}
    labels = synthetic.planted_labels(strong_set.truth, strong_set.names, "CTCF")
    scores = yardsticks.supervised_limit_scores(binary, labels, c=0.05, folds=3, seed=0)
    assert roc_auc_score(labels, scores) > 0.9
    shuffled = np.random.default_rng(1).permutation(labels)
    control = yardsticks.supervised_limit_scores(binary, shuffled, c=0.05, folds=3, seed=0)
    assert 0.35 < roc_auc_score(shuffled, control) < 0.65
    too_few = np.zeros_like(labels)
    too_few[:2] = True
    assert np.isnan(yardsticks.supervised_limit_scores(binary, too_few, folds=3)).all()


def test_auroc_vs_limit_is_auroc_over_limit(small_set, database):
    topics, scores = _oracle(small_set)
    scores = scores + np.random.default_rng(2).random(scores.shape) * 3.0  # AUROCs below 1, each its own
    frame = recovery.score_recovery(topics, scores, small_set.names, small_set.truth, small_set.motifs, database)
    motifs = list(frame.loc[frame["kind"] == "motif", "feature"])
    # The first four motifs reach 0.95 of their limit, the other six 0.8.
    limits = {f: a / (0.95 if f in motifs[:4] else 0.8) for f, a in zip(frame["feature"], frame["auroc"])}
    table = recovery.add_limit_fraction(frame, limits)
    expected = table["auroc"] / table["feature"].map(limits)
    np.testing.assert_allclose(table["auroc_vs_limit"], expected)
    assert (frame["auroc"] < 0.99).all() and frame["auroc"].nunique() > 10 and "composite_q" in table.attrs
    summary = recovery.summarize(table)
    assert summary["n_at_limit"] == 4 and summary["n_with_limit"] == 10
    assert np.isclose(summary["min_auroc_vs_limit"], 0.8)
    n_common = int((frame.loc[frame["kind"] == "motif", "fraction"] >= 0.05 - 1e-9).sum())
    assert 4 < n_common < 10 and summary["n_common"] == n_common and summary["n_common_at_limit"] == 4
    result = recovery_pipeline.MethodResult(table, summary, 1.0, 2.0, 3.0, 100, "steps")
    sticks = pd.DataFrame({"feature": list(limits), "oracle_auroc": 1.0, "limit_auroc": list(limits.values())})
    merged = recovery_tables.side_by_side({"BindVAE": result}, sticks)
    np.testing.assert_allclose(merged["BindVAE auroc_vs_limit"], merged["BindVAE AUROC"] / merged["limit AUROC"])
    rows = recovery_tables.summary_table({"BindVAE": result}, recovery_config.RecoveryConfig()).set_index("metric")
    assert rows.loc["motifs with AUROC >= 0.9 x supervised limit", "BindVAE"] == "4/10"
    assert rows.loc["motifs in >= 5% of peaks with AUROC >= 0.9 x limit", "BindVAE"] == f"4/{n_common}"
    assert rows.loc["training length", "BindVAE"] == "100 steps"


def test_variational_transform_matches_scikit_learn(small_set):
    """The mean-field E-step that scores the Gibbs peer's 10-mers is scikit-learn's ``transform``."""
    from bindvae.features.kmers import featurize

    X = featurize(small_set.sequences[:240]).astype(np.float64)
    lda = peers.fit_lda(X[:200], num_topics=4, seed=0, passes=1, batch_size=64)
    ours = peers.variational_transform(lda.components_, lda.doc_topic_prior_, X[200:], chunk=16)
    np.testing.assert_allclose(ours, lda.transform(X[200:]), atol=2e-4)


def test_gibbs_lda_stops_at_its_sweep_limit_or_its_time_budget(strong_set):
    from bindvae.features.kmers import featurize

    X = featurize(strong_set.sequences[:100])
    fitted = peers.fit_gibbs_lda(X, 3, seed=0, workers=1, max_iterations=7, chunk_iterations=5)
    again = peers.fit_gibbs_lda(X, 3, seed=0, workers=1, max_iterations=7, chunk_iterations=5)
    assert fitted.iterations == 7 and fitted.seconds > 0
    np.testing.assert_array_equal(peers.gibbs_training_topics(fitted), peers.gibbs_training_topics(again))
    timed = peers.fit_gibbs_lda(X, 3, seed=0, workers=1, max_iterations=1000, budget_s=0.0, chunk_iterations=5)
    assert timed.iterations == 5  # the first chunk always runs, then the spent budget stops it
    topic_word = peers.gibbs_topic_word(fitted)  # every token counted once, plus eta everywhere
    assert topic_word.shape == (3, X.shape[1])
    np.testing.assert_allclose(topic_word.sum(), X.sum() + 0.01 * topic_word.size, rtol=1e-4)


def test_gibbs_lda_peer_yields_rows_in_the_tables(small_set, database):
    from bindvae.features.kmers import featurize

    config = recovery_config.config_from_dict({"run": {"model": {"num_topics": 6}},
                                                 "gibbs_lda": {"workers": 1, "max_iterations": 10}})
    X = featurize(small_set.sequences)
    val_rows = np.arange(0, X.shape[0], 20)
    probes = recovery_pipeline._KmerProbes(canonical_kmer_codes(10)[::40])
    gibbs = recovery_pipeline._run_gibbs_lda(config, X, val_rows, small_set, database, probes, budget_s=600.0)
    assert gibbs.iterations == 10 and gibbs.unit == "sweeps" and np.isfinite(gibbs.perplexity)
    assert len(gibbs.table) == 15 and gibbs.table["auroc"].between(0, 1).all()
    assert gibbs.table["consensus"].str.len().min() >= 4
    topics, scores = _oracle(small_set)
    vae_table = recovery.score_recovery(topics, scores, small_set.names, small_set.truth, small_set.motifs, database)
    methods = {"BindVAE": recovery_pipeline.MethodResult(vae_table, recovery.summarize(vae_table), 1.0, 1.0, 1.0,
                                                         3, "steps"), "Gibbs LDA": gibbs}
    merged = recovery_tables.side_by_side(methods)
    assert merged["Gibbs LDA AUROC"].notna().all() and len(merged) == 15
    summary = recovery_tables.summary_table(methods, config).set_index("metric")
    assert summary.loc["training length", "Gibbs LDA"] == "10 sweeps"
    assert "recovery better than Gibbs LDA (motifs, then AUROC)" in summary.index
    assert "Gibbs LDA: tomotopy collapsed Gibbs" in recovery_tables.markdown_report(
        config, merged, summary.reset_index()
    )


def test_the_concentration_rows_say_n_a_for_the_peers(small_set, database):
    # The encoder's concentration exists for BindVAE only: its rows say n/a for a peer, never 0/10.
    topics, scores = _oracle(small_set)
    limits = {feature: 0.95 for feature in small_set.truth["feature"].unique()}
    args = (small_set.names, small_set.truth, small_set.motifs, database)
    vae = recovery.add_limit_fraction(recovery.score_recovery(topics, scores, *args,
                                                              extra_scores={"concentration": 5.0 * scores}), limits)
    peer = recovery.add_limit_fraction(recovery.score_recovery(topics, scores, *args), limits)
    methods = {name: recovery_pipeline.MethodResult(t, recovery.summarize(t), 1.0, 1.0, 1.0, 3, "steps")
               for name, t in (("BindVAE", vae), ("LDA", peer))}
    merged = recovery_tables.side_by_side(methods)
    assert "BindVAE concentration AUROC" in merged and "LDA concentration AUROC" not in merged
    assert (merged.loc[merged["kind"] == "motif", "BindVAE concentration AUROC"] == 1.0).all()
    summary = recovery_tables.summary_table(methods, recovery_config.RecoveryConfig()).set_index("metric")
    row = summary.loc["motifs with concentration AUROC >= 0.9 x supervised limit"]
    assert row["BindVAE"] == "10/10" and row["LDA"] == "n/a"
    assert summary.loc["mean concentration AUROC, motifs", "LDA"] == "n/a"


def test_config_validates_the_peer_and_the_yardsticks():
    config = recovery_config.config_from_dict({})
    assert config.gibbs_lda.alpha == 0.1 and config.gibbs_lda.eta == 0.01 and config.yardsticks.limit_c == 0.05
    for section, key, value in (("gibbs_lda", "workers", 0), ("gibbs_lda", "max_iterations", 0),
                                ("gibbs_lda", "alpha", -1.0), ("gibbs_lda", "bogus", 1),
                                ("yardsticks", "background", "flat"), ("yardsticks", "limit_folds", 1),
                                ("yardsticks", "limit_c", 0.0)):
        with pytest.raises(ConfigError, match=f"{section}.{key}"):
            recovery_config.config_from_dict({section: {key: value}})


@pytest.mark.slow
def test_peers_see_the_kmers_bindvae_chose(tmp_path, monkeypatch):
    """With ``model.kmer_selection`` the comparison stays on the same features: the LDA peer trains on
    BindVAE's chosen columns, the yardsticks on all of them, and the table's heading says so."""
    base = _tiny(tmp_path, enabled=True, passes=1)
    model = dataclasses.replace(base.run.model, kmer_selection="dispersion", kmer_selection_size=700)
    config = dataclasses.replace(base, run=dataclasses.replace(base.run, model=model),
                                 yardsticks=dataclasses.replace(base.yardsticks, enabled=True, limit_folds=2))
    widths = {}
    fit_lda, limits = peers.fit_lda, yardsticks.supervised_limits

    def spy_lda(train_X, *args):
        widths["lda"] = train_X.shape[1]
        return fit_lda(train_X, *args)

    def spy_limits(X, *args):
        widths["limit"] = X.shape[1]
        return limits(X, *args)

    monkeypatch.setattr(peers, "fit_lda", spy_lda)
    monkeypatch.setattr(yardsticks, "supervised_limits", spy_limits)
    result = recovery_pipeline.run_recovery(config, tmp_path / "out")
    assert widths == {"lda": 700, "limit": 112_800}
    assert "the peers see the same k-mers" in Path(result.paths["markdown"]).read_text()
    assert set(result.methods) == {"BindVAE", "LDA"}


def test_the_tables_header_names_a_decoder_variant():
    from benchmarks.recovery.tables import _decoder_text
    from bindvae.config import ModelConfig

    assert _decoder_text(ModelConfig()) == ""  # the paper's decoder goes unmentioned
    assert "product decoder" in _decoder_text(ModelConfig(decoder="product"))
    assert "corpus frequencies" in _decoder_text(ModelConfig(background_topic=True))
