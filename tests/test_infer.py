"""Inference: the window-sum first layer agrees with the plain encoder; checkpoints load; 10-mer pass."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from bindvae.analysis.motifs import decode_kmers
from bindvae.analysis.topics import score_kmers, topic_motifs
from bindvae.errors import InputError
from bindvae.features.kmers import Vocabulary, featurize
from bindvae.infer import latent_scores, load_model
from bindvae.vae import network as model_lib
from tests.helpers.analysis import planted_model, random_model


@pytest.fixture(scope="module")
def vocab():
    return Vocabulary.gapped8()


@pytest.fixture(scope="module")
def model(vocab):
    return random_model(vocab)


def _sequences():
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), size=int(rng.integers(8, 90)))) for _ in range(37)]
    return seqs + ["ACGTNACGTACGTTTGCA", "acgtacgtaaaNNNcccgggtttacgatcg", "ACG", "TTGACGTCAA"]


def test_latent_scores_sequences_csr_and_dense_agree(model, vocab):
    seqs = _sequences()
    X = featurize(seqs, vocab)
    dense = np.asarray(model_lib.posterior_concentration_dense(model.network, model.params, X.toarray()))
    from_seqs = latent_scores(model, seqs, kind="concentration", batch_size=16)
    from_csr = latent_scores(model, X, kind="concentration", batch_size=16)
    np.testing.assert_allclose(from_seqs, dense, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(from_csr, dense, rtol=2e-5, atol=2e-6)
    assert from_seqs.shape == (len(seqs), model.num_topics)



def test_csr_first_layer_matches_dense_across_blocks_and_unsorted_rows(model):
    # More rows than one row block and nonzeros in every column block; then the same rows with their
    # nonzeros shuffled within each row (a CSR not made by featurize), and an int64-index copy.

    from bindvae.infer import _CSR_ROWS_PER_BLOCK

    n_rows, n_kmers = _CSR_ROWS_PER_BLOCK + 37, model.network.n_kmers
    X = sp.random(n_rows, n_kmers, density=3e-4, format="csr", random_state=1, dtype=np.float32)
    X.data[:] = np.random.default_rng(2).integers(1, 4, size=X.nnz)
    expected = np.asarray(model_lib.posterior_concentration_dense(model.network, model.params, X.toarray()))
    np.testing.assert_allclose(latent_scores(model, X, kind="concentration"), expected, rtol=2e-5, atol=2e-6)
    shuffled = X.copy()
    rng = np.random.default_rng(3)
    for i in range(n_rows):
        lo, hi = shuffled.indptr[i], shuffled.indptr[i + 1]
        order = lo + rng.permutation(hi - lo)
        shuffled.indices[lo:hi], shuffled.data[lo:hi] = X.indices[order], X.data[order]
    shuffled.has_sorted_indices = False
    np.testing.assert_allclose(latent_scores(model, shuffled, kind="concentration"), expected, rtol=2e-5, atol=2e-6)
    wide = sp.csr_matrix((X.data, X.indices.astype(np.int64), X.indptr.astype(np.int64)), shape=X.shape)
    np.testing.assert_allclose(latent_scores(model, wide, kind="concentration"), expected, rtol=2e-5, atol=2e-6)

def test_latent_scores_mean_is_normalised_concentration(model):
    seqs = _sequences()
    conc = latent_scores(model, seqs, kind="concentration")
    mean = latent_scores(model, seqs, kind="mean")
    np.testing.assert_allclose(mean.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(mean, conc / conc.sum(axis=1, keepdims=True), rtol=1e-6)
    with pytest.raises(ValueError, match="kind"):
        latent_scores(model, seqs, kind="median")


def test_latent_scores_reverse_complement_invariant(model):
    seq = "ACGTTGCATTTAGGCCATGCAAGT"
    rc = seq[::-1].translate(str.maketrans("ACGT", "TGCA"))
    scores = latent_scores(model, [seq, rc])
    np.testing.assert_allclose(scores[0], scores[1], rtol=1e-5)


def test_score_kmers_matches_sequence_path(model):
    codes, scores = score_kmers(model, k=10, kind="mean")
    assert len(codes) == 524_800 and scores.shape == (524_800, model.num_topics)
    pick = np.random.default_rng(1).choice(len(codes), 50, replace=False)
    np.testing.assert_allclose(scores[pick], latent_scores(model, decode_kmers(codes[pick], 10), kind="mean"),
                               rtol=1e-5)


def test_topic_motif_consensus_is_planted_10mer(vocab):
    planted = ["GACGTCATTG", "CCAATTAGGA"]
    motifs, table = topic_motifs(planted_model(vocab, planted, num_topics=2), n_top=200)
    rc = str.maketrans("ACGT", "TGCA")
    for motif, kmer in zip(motifs, planted):
        assert motif.consensus in (kmer, kmer[::-1].translate(rc)), (motif.consensus, kmer)
        assert motif.nsites == 200
    best = table[table["rank"] == 1]["kmer"].tolist()
    assert best[0] in (planted[0], planted[0][::-1].translate(rc))


def _save(run_dir, model, fingerprint):
    from bindvae.checkpoint import save_checkpoint

    state = {"params": model.params, "opt_state": {"unused": np.zeros(1)}, "step": 7,
             "rng": np.zeros(2, np.uint32)}
    config = {"model": dataclasses.asdict(model_config_of(model))}
    save_checkpoint(run_dir, state, {"config": config, "vocab_fingerprint": fingerprint,
                                     "n_kmers": model.network.n_kmers, "num_topics": model.num_topics})


def model_config_of(model):
    from bindvae.config import ModelConfig

    net = model.network
    return ModelConfig(num_topics=net.num_topics, alpha=net.alpha, hidden_sizes=tuple(net.hidden_sizes))


def test_load_model_round_trip_and_fingerprint_check(tmp_path, model, vocab):
    _save(tmp_path, model, vocab.fingerprint)
    loaded = load_model(tmp_path)
    assert loaded.step == 7 and loaded.num_topics == model.num_topics
    seqs = _sequences()
    np.testing.assert_allclose(latent_scores(loaded, seqs), latent_scores(model, seqs), rtol=1e-6)
    with pytest.raises(InputError, match=f"{'0' * 12}.*{vocab.fingerprint[:12]}"):
        load_model(tmp_path, features_fingerprint="0" * 64)


def test_load_model_missing_run_dir(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_model(tmp_path / "nope")


def test_decoder_scan_ranks_sequences_with_a_topics_own_kmers_first():
    import jax

    from bindvae.config import ModelConfig
    from bindvae.features.kmers import Vocabulary, featurize
    from bindvae.infer import decoder_scan_weights, latent_scores, model_from_params
    from bindvae.vae.network import build_model, init_params

    vocabulary = Vocabulary.gapped8()
    config = ModelConfig(num_topics=3, hidden_sizes=(8,), theta_init="glorot")
    params = init_params(build_model(config, len(vocabulary)), jax.random.key(0))
    theta = np.zeros((3, len(vocabulary)), np.float32)
    site = featurize(["TGACTCAT"]).indices  # the 16 features of an AP-1-like 8 bp site
    theta[1, site] = 4.0  # topic 1 makes the site's features e^4 times as likely
    model = model_from_params({**params, "topic_kmer": {"theta": jax.numpy.asarray(theta)}}, config, vocabulary)
    rng = np.random.default_rng(0)
    background = ["".join(rng.choice(list("ACGT"), 60)) for _ in range(20)]
    carriers = [s[:30] + "TGACTCAT" + s[38:] for s in background[:10]]
    sequences = carriers + background[10:]
    scores = latent_scores(model, sequences, kind="decoder")
    assert scores.shape == (20, 3)
    assert scores[:10, 1].min() > scores[10:, 1].max()  # every carrier above every non-carrier
    np.testing.assert_allclose(scores, latent_scores(model, featurize(sequences), kind="decoder"), rtol=1e-6)
    weights = decoder_scan_weights(model)
    assert set(np.flatnonzero(weights[1])) <= set(site.tolist()) and np.count_nonzero(weights[1]) == len(site)
    # Golden value: phi[1, site] = e^4 / Z1 with Z1 = D - 16 + 16 e^4, the other topics 1 / D; the
    # weight is log(phi[1, j] / mean_m phi[m, j]).
    D = len(vocabulary)
    phi1, phi0 = np.exp(4.0) / (D - 16 + 16 * np.exp(4.0)), 1.0 / D
    np.testing.assert_allclose(weights[1, site], np.log(phi1 / ((phi1 + 2 * phi0) / 3)), rtol=1e-5)
    X = sp.csr_matrix(featurize(sequences), dtype=np.float32)
    np.testing.assert_allclose(scores, (X @ weights.T), rtol=1e-6)


def test_expected_topic_counts_share_each_kmer_by_how_likely_each_topic_makes_it():
    # Golden numbers: two topics over three k-mers, one row with counts (2, 1, 0) at proportions (0.25, 0.75).
    from bindvae.infer import expected_topic_counts

    phi = np.array([[0.5, 0.25, 0.25], [0.1, 0.6, 0.3]])
    counts = sp.csr_matrix(np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]]))
    theta = np.array([[0.25, 0.75], [0.5, 0.5]])
    got = expected_topic_counts(counts, theta, np.log(phi), max_entries=1)  # one row per block
    share = lambda j: theta[0] * phi[:, j] / (theta[0] @ phi[:, j])  # noqa: E731
    want = 2.0 * share(0) + 1.0 * share(1)
    np.testing.assert_allclose(got[0], want, rtol=1e-6)
    np.testing.assert_allclose(got[0], [2 * 0.125 / 0.2 + 0.0625 / 0.5125, 2 * 0.075 / 0.2 + 0.45 / 0.5125], rtol=1e-6)
    assert got[0].sum() == pytest.approx(3.0) and (got[1] == 0).all()  # rows sum to the row's k-mer count
    with pytest.raises(ValueError, match="do not fit together"):
        expected_topic_counts(counts, theta[:, :1], np.log(phi))


def test_latent_scores_counts_are_the_encoders_mean_shared_out_by_the_decoder(model, vocab):
    from bindvae.features.kmers import featurize
    from bindvae.infer import decoder_log_phi, expected_topic_counts

    rng = np.random.default_rng(1)
    sequences = ["".join(rng.choice(list("ACGT"), int(n))) for n in rng.integers(20, 120, 12)]
    X = featurize(sequences, vocab)
    counts = latent_scores(model, sequences, kind="counts")
    np.testing.assert_allclose(counts, latent_scores(model, X, kind="counts"), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(counts.sum(axis=1), np.asarray(X.sum(axis=1)).ravel(), rtol=1e-4)
    mean = latent_scores(model, X, kind="mean")
    np.testing.assert_allclose(counts, expected_topic_counts(X, mean, decoder_log_phi(model)), rtol=1e-5)


def test_latent_scores_shares_are_the_counts_over_the_rows_kmer_count(model, vocab):
    # Shares: each topic's expected counts divided by the row's k-mer count (rows sum to 1, one E-step
    # from the encoder's mean); a sequence with no 8 bp window keeps the mean.
    from bindvae.features.kmers import featurize
    from bindvae.infer import topic_shares

    rng = np.random.default_rng(2)
    sequences = ["".join(rng.choice(list("ACGT"), int(n))) for n in rng.integers(20, 120, 12)] + ["ACGT"]
    X = featurize(sequences, vocab)
    shares = latent_scores(model, X, kind="shares")
    counts, mean = latent_scores(model, X, kind="counts"), latent_scores(model, X, kind="mean")
    n = np.asarray(X.sum(axis=1)).ravel()
    np.testing.assert_allclose(shares[:-1], counts[:-1] / n[:-1, None], rtol=1e-5)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(shares[-1], mean[-1], rtol=1e-6)  # no k-mers: the encoder's mean
    np.testing.assert_allclose(latent_scores(model, sequences, kind="shares"), shares, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(topic_shares(np.array([[1.0, 3.0], [0.0, 0.0]]), np.array([[0.9, 0.1], [0.3, 0.7]])),
                               [[0.25, 0.75], [0.3, 0.7]])


def test_latent_scores_density_is_the_counts_over_all_the_rows_gapped_8mers(model, vocab):
    # Density: each topic's expected counts over every gapped 8-mer of the row, chosen by the model or
    # not. For a model that kept all k-mers it equals shares; for one that chose k-mers the denominator
    # is the full count, which the sequence and the full-width CSR give alike, and a CSR of the chosen
    # columns alone cannot give (a clear error). A row with no 8 bp window scores 0.
    from bindvae.infer import has_kmer_totals, sequence_window_codes, topic_density, window_kmer_totals

    rng = np.random.default_rng(3)
    sequences = ["".join(rng.choice(list("ACGT"), int(n))) for n in rng.integers(20, 120, 12)]
    sequences += ["CACGTGACGTCACGTG", "ACGT"]  # palindromic windows count fewer distinct variants; no window
    full = featurize(sequences, vocab)
    totals = np.asarray(full.sum(axis=1)).ravel()
    np.testing.assert_array_equal(window_kmer_totals(model, sequence_window_codes(sequences)), totals)
    assert totals[-2] < 16 * (len(sequences[-2]) - 7) and totals[-1] == 0
    np.testing.assert_allclose(latent_scores(model, full, kind="density")[:-1],
                               latent_scores(model, full, kind="shares")[:-1], rtol=1e-5)

    chosen_vocab = vocab.subset(np.unique(full.indices)[::3])
    chosen = random_model(chosen_vocab, seed=1)
    density = latent_scores(chosen, sequences, kind="density")
    np.testing.assert_array_equal(latent_scores(chosen, sequences), density)  # the default
    counts = latent_scores(chosen, sequences, kind="counts")
    np.testing.assert_allclose(density[:-1], counts[:-1] / totals[:-1, None], rtol=1e-5)
    np.testing.assert_array_equal(density[-1], 0.0)
    assert (density[:-1].sum(axis=1) < 0.5).all()  # a third of the row's k-mers at most are the model's
    np.testing.assert_allclose(latent_scores(chosen, full, kind="density"), density, rtol=1e-4, atol=1e-7)
    restricted = chosen_vocab.restrict(full)
    assert has_kmer_totals(chosen, full) and not has_kmer_totals(chosen, restricted)
    with pytest.raises(ValueError, match="kind='shares'"):
        latent_scores(chosen, restricted, kind="density")
    np.testing.assert_allclose(topic_density(np.array([[1.0, 3.0], [0.0, 0.0]]), np.array([8.0, 0.0])),
                               [[0.125, 0.375], [0.0, 0.0]])
