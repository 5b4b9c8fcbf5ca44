"""Choosing the k-mers a model sees (``model.kmer_selection``): subset vocabularies and the dispersion score."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from bindvae.features.kmers import Vocabulary, featurize
from bindvae.features.selection import dispersion_scores, letter_classes, select_kmers


def _random_peaks(rng, n, length=200, gc=0.42):
    p = [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]
    return ["".join(rng.choice(list("ACGT"), length, p=p)) for _ in range(n)]


def test_featurizing_with_a_subset_gives_exactly_the_selected_columns():
    rng = np.random.default_rng(0)
    full = Vocabulary.gapped8()
    columns = rng.choice(len(full), 4000, replace=False)
    subset = full.subset(columns)
    # Palindromic windows, lower case and an N window are in there too.
    peaks = _random_peaks(rng, 300) + ["acgtacgtACGTACGTNNAATTAATTGGCC", "GAATTC" * 10]
    reference = featurize(peaks, full)[:, np.sort(columns)]
    mine = featurize(peaks, subset)
    assert mine.shape == (len(peaks), 4000)
    assert (mine != reference).nnz == 0 and mine.nnz == reference.nnz > 0
    assert subset.kmers == tuple(full.kmers[j] for j in np.sort(columns))
    kmer = subset.kmers[17]
    assert subset.index(kmer) == 17 and full.index(kmer) == np.sort(columns)[17]
    assert subset.fingerprint != full.fingerprint and subset.parent is full


def test_restrict_takes_the_model_columns_of_full_features_and_refuses_other_widths():
    full = Vocabulary.gapped8()
    subset = full.subset([5, 3, 3, 100_000])
    X = featurize(["ACGT" * 50, "GGGCCCAT" * 25], full)
    cut = subset.restrict(X)
    assert cut.shape == (2, 3)
    np.testing.assert_array_equal(cut.toarray(), X[:, [3, 5, 100_000]].toarray())
    assert subset.restrict(cut) is cut
    assert subset.accepts(full.fingerprint) and subset.accepts(subset.fingerprint)
    assert not full.accepts(subset.fingerprint)
    with pytest.raises(ValueError, match="columns"):
        subset.restrict(sp.csr_matrix((2, 7)))
    with pytest.raises(ValueError):
        full.subset([len(full)])


def test_dispersion_matches_a_brute_force_pearson_statistic():
    """The closed form over letter classes equals the textbook sum over every peak and k-mer."""
    rng = np.random.default_rng(1)
    full = Vocabulary.gapped8()
    peaks = _random_peaks(rng, 20, 60, gc=0.3) + _random_peaks(rng, 20, 60, gc=0.6)
    X = featurize(peaks, full).toarray().astype(np.float64)
    strong, weak, spellings = letter_classes(full)
    gc = (X @ strong) / (X @ (strong + weak))
    rate = spellings[None, :] * (gc[:, None] / 2) ** strong[None, :] * ((1 - gc[:, None]) / 2) ** weak[None, :]
    mu = X.sum(axis=1, keepdims=True) * rate / rate.sum(axis=1, keepdims=True)
    brute = ((X - mu) ** 2 / mu).sum(axis=0) / X.shape[0]
    np.testing.assert_allclose(dispersion_scores(sp.csr_matrix(X), full), brute, rtol=1e-9, atol=1e-9)


def test_planted_site_kmers_rank_first_and_composition_alone_does_not():
    """Planted truth: k-mers inside a site carried by 15% of peaks lead the ranking; peaks that are only
    GC-rich (a third of them, GC 0.65 against 0.4) do not push plain GC-rich k-mers up."""
    rng = np.random.default_rng(2)
    full = Vocabulary.gapped8()
    site = "TTGACTCATC"
    peaks = _random_peaks(rng, 1000, gc=0.4) + _random_peaks(rng, 500, gc=0.65)
    carriers = rng.choice(len(peaks), 225, replace=False)
    for i in carriers:
        start = int(rng.integers(0, 190))
        peaks[i] = peaks[i][:start] + site + peaks[i][start + 10:]
    X = featurize(peaks, full)
    scores = dispersion_scores(X, full)
    site_columns = np.unique(featurize([site], full).indices)  # the 3 windows' 48 variants
    rank = np.argsort(np.argsort(-scores))
    assert np.median(rank[site_columns]) < 100, np.median(rank[site_columns])
    assert 0.8 < np.median(scores) < 1.2  # about 1 where counts follow composition
    gc_only = [full.index(k) for k in ("GCGCCGGC", "CCGCGGCC", "GGCGCGCC")]
    assert rank[gc_only].min() > 1000
    chosen = select_kmers(X, full, 200)
    assert chosen.size == 200 and np.all(np.diff(chosen) > 0)
    assert np.isin(site_columns, chosen).mean() > 0.7
    np.testing.assert_array_equal(select_kmers(X, full, 10**6), np.arange(len(full)))
