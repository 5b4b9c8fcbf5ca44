"""A run that chooses its k-mers (``model.kmer_selection=dispersion``): trained, saved, loaded and scored."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from bindvae import training as train
from bindvae.checkpoint import load_checkpoint
from bindvae.config import ModelConfig
from bindvae.errors import ConfigError, InputError
from bindvae.features.kmers import Vocabulary, featurize
from bindvae.features.selection import select_kmers
from bindvae.infer import latent_scores, load_model
from bindvae.training.kmer_choice import SELECTED_KMERS_FILE
from tests.helpers.training import random_counts, small_config

SIZE = 400


def _peaks(n=160, seed=0):
    rng = np.random.default_rng(seed)
    peaks = ["".join(rng.choice(list("ACGT"), 120)) for _ in range(n)]
    for i in range(0, n, 3):  # a site in a third of them
        peaks[i] = peaks[i][:40] + "TTGACTCATC" + peaks[i][50:]
    return peaks


def _config(**train_overrides):
    config = small_config(**train_overrides)
    model = ModelConfig(num_topics=3, alpha=1.0, hidden_sizes=(8,), kmer_selection="dispersion",
                        kmer_selection_size=SIZE)
    return dataclasses.replace(config, model=model)


@pytest.fixture(scope="module")
def chosen_run(tmp_path_factory):
    full = Vocabulary.gapped8()
    peaks = _peaks()
    X = featurize(peaks, full)
    workdir = tmp_path_factory.mktemp("chosen") / "run"
    result = train.fit(_config(), X[:150], X[150:], full.fingerprint, workdir, kmers=full.kmers)
    return workdir, peaks, X, result


def test_the_run_trains_on_its_chosen_kmers_and_records_them(chosen_run):
    workdir, _, X, result = chosen_run
    full = Vocabulary.gapped8()
    expected = select_kmers(X[:150], full, SIZE)
    checkpoint = load_checkpoint(workdir)
    assert checkpoint.metadata["kmer_columns"] == expected.tolist()
    assert checkpoint.metadata["n_kmers"] == SIZE
    assert np.asarray(result.params["topic_kmer"]["theta"]).shape == (3, SIZE)
    lines = (workdir / SELECTED_KMERS_FILE).read_text().splitlines()
    assert lines[0] == "column\tkmer\tdispersion" and len(lines) == SIZE + 1
    column, kmer, _ = lines[1].split("\t")
    assert full.kmers[int(column)] == kmer and int(column) in expected
    # The planted site's k-mers are among the chosen ones.
    site = np.unique(featurize(["TTGACTCATC"], full).indices)
    assert np.isin(site, expected).mean() > 0.7


def test_a_loaded_model_scores_sequences_full_features_and_its_own_columns_alike(chosen_run):
    workdir, peaks, X, _ = chosen_run
    full = Vocabulary.gapped8()
    model = load_model(workdir)
    assert len(model.vocabulary) == SIZE and model.vocabulary.parent == full
    own = featurize(peaks, model.vocabulary)
    np.testing.assert_allclose(latent_scores(model, peaks), latent_scores(model, X), rtol=1e-5, atol=1e-7)  # density
    for kind in ("shares", "mean"):
        from_sequences = latent_scores(model, peaks, kind=kind)
        from_full = latent_scores(model, X, kind=kind)
        from_own = latent_scores(model, own, kind=kind)
        np.testing.assert_allclose(from_sequences, from_full, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(from_own, from_full, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="kind='shares'"):  # density divides by every gapped 8-mer
        latent_scores(model, own)
    decoder = latent_scores(model, X, kind="decoder")
    np.testing.assert_allclose(latent_scores(model, peaks, kind="decoder"), decoder, rtol=1e-5, atol=1e-5)
    assert load_model(workdir, features_fingerprint=full.fingerprint).vocabulary == model.vocabulary


def test_resuming_makes_the_same_choice(chosen_run, tmp_path):
    _, _, X, _ = chosen_run
    full = Vocabulary.gapped8()
    workdir = tmp_path / "run"
    train.fit(_config(steps=10), X[:150], X[150:], full.fingerprint, workdir)
    first = json.loads(json.dumps(load_checkpoint(workdir).metadata["kmer_columns"]))
    train.fit(_config(steps=20, resume=True), X[:150], X[150:], full.fingerprint, workdir)
    resumed = load_checkpoint(workdir)
    assert resumed.step == 20 and resumed.metadata["kmer_columns"] == first


def test_features_of_another_vocabulary_are_refused_by_key(tmp_path):
    X = random_counts(n_kmers=120)
    with pytest.raises(ConfigError, match="model.kmer_selection"):
        train.fit(_config(), X, None, "not-the-gapped-8-mers", tmp_path / "run")
    assert not (tmp_path / "run" / SELECTED_KMERS_FILE).exists()


def test_unknown_selection_is_a_config_error():
    with pytest.raises(ConfigError, match="model.kmer_selection"):
        ModelConfig(kmer_selection="variance")
    with pytest.raises(ConfigError, match="model.kmer_selection_size"):
        ModelConfig(kmer_selection="dispersion", kmer_selection_size=0)


def test_the_analysis_reads_full_feature_files_for_a_model_that_chose(chosen_run, tmp_path):
    """The quick start's path: features.npz of all k-mers, a run trained with train=budget (chosen k-mers)."""
    from bindvae.analysis.peak_input import read_peaks
    from bindvae.features.formats import save_features

    workdir, peaks, X, _ = chosen_run
    path = tmp_path / "features.npz"
    save_features(path, X, [f"p{i}" for i in range(X.shape[0])], Vocabulary.gapped8())
    model = load_model(workdir)
    peak_set = read_peaks(model, str(path))
    np.testing.assert_allclose(latent_scores(model, peak_set.data), latent_scores(model, peaks), rtol=1e-5, atol=1e-6)
    other = tmp_path / "other.npz"
    save_features(other, X[:, :10], ["a"] * X.shape[0], Vocabulary.gapped8().subset(range(10)))
    with pytest.raises(InputError, match="fingerprint"):
        read_peaks(model, str(other))
