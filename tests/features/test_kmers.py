"""Gapped 8-mer vocabulary, featurizer, feature datasets and reference interop."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from bindvae.errors import InputError
from bindvae.features.formats import (
    load_features,
    read_reference_features,
    read_reference_vocabulary,
    save_features,
    write_reference_features,
    write_reference_vocabulary,
)
from bindvae.features.kmers import Vocabulary, featurize, window_codes, window_feature_table

COMPLEMENT = str.maketrans("ACGTNacgtn", "TGCANtgcan")
# sha256 of the ordered k-mer list, k and the reverse-complement setting; changing it invalidates
# every saved dataset and checkpoint, so it is pinned here on purpose.
GAPPED8_FINGERPRINT = "7a83071e89d9bbc2"


def reverse_complement(seq: str) -> str:
    return seq.translate(COMPLEMENT)[::-1]


def variants(window: str) -> list[str]:
    """The 16 gapped variants of an 8 bp window, as the reference defines them."""
    single = [window[:i] + "N" + window[i + 1 :] for i in range(8)]
    double = [window[:i] + "NN" + window[i + 2 :] for i in range(7)]
    return [window, *single, *double]


def slow_featurize(seq: str, vocab: Vocabulary) -> np.ndarray:
    """A direct, string-level implementation of the counting rule, for cross-checks."""
    counts = np.zeros(len(vocab))
    for start in range(len(seq) - 7):
        window = seq[start : start + 8].upper()
        if set(window) <= set("ACGT"):
            for column in {vocab.index(v) for v in variants(window)}:
                counts[column] += 1
    return counts


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary.gapped8()


@pytest.fixture(scope="module")
def probes(reference_dir):
    with open(reference_dir / "selex_probes_sample100.tsv", encoding="ascii") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_vocabulary_size_palindromes_and_canonical_spelling(vocab):
    assert len(vocab) == 112_800 and vocab.k == 8
    assert len(set(vocab.kmers)) == len(vocab)
    assert sum(k == reverse_complement(k) for k in vocab.kmers) == 320
    assert all(k <= reverse_complement(k) for k in vocab.kmers)
    n_wild = np.array([k.count("N") for k in vocab.kmers])
    assert np.all(np.diff(n_wild) >= 0), "plain, then one-N, then NN k-mers"
    assert (n_wild == 0).sum() == (4**8 + 4**4) // 2


def test_vocabulary_fingerprint_is_pinned_and_shared(vocab):
    assert vocab.fingerprint.startswith(GAPPED8_FINGERPRINT) and len(vocab.fingerprint) == 64
    assert Vocabulary.gapped8().fingerprint == vocab.fingerprint
    reordered = Vocabulary(vocab.kmers[::-1], vocab._key_to_column, vocab._window_table)
    assert reordered.fingerprint != vocab.fingerprint


def test_vocabulary_index_either_orientation_and_case(vocab):
    for column in (0, 5, 40_000, 100_000, len(vocab) - 1):
        kmer = vocab.kmers[column]
        assert vocab.index(kmer) == column
        assert vocab.index(reverse_complement(kmer)) == column
        assert vocab.index(kmer.lower()) == column
    assert vocab.index("TTTTTTTN") == vocab.index("NAAAAAAA")


@pytest.mark.parametrize("bad", ["NANAAAAA", "NNNAAAAA", "AAAA", "AAAAAAAAA", "AAAAAAAX", "", 7])
def test_vocabulary_index_rejects_non_kmers(vocab, bad):
    with pytest.raises(KeyError, match="not a gapped 8-mer"):
        vocab.index(bad)


def test_window_codes_and_table(vocab):
    codes = window_codes("AAAAAAAACGTACGTnT")
    assert codes.dtype == np.int32 and len(codes) == 17 - 7
    assert codes[0] == 0 and codes[1] == 0b00_00_00_00_00_00_00_01
    assert codes[-1] == -1 and codes[-2] == -1
    assert list(window_codes("TTTTTTTT")) == [65535]
    assert len(window_codes("ACGTACG")) == 0
    table = window_feature_table(vocab)
    assert table.shape == (65536, 16) and table.dtype == np.int32
    palindrome = int(window_codes("ACGTACGT")[0])
    assert (table[palindrome] >= 0).sum() == 9
    assert sorted(table[0][table[0] >= 0]) == sorted(vocab.index(v) for v in variants("AAAAAAAA"))


def test_window_table_sum_equals_featurize(vocab):
    rng = np.random.default_rng(3)
    seq = "".join(rng.choice(list("ACGTN"), p=[0.24, 0.24, 0.24, 0.24, 0.04], size=300))
    codes = window_codes(seq)
    ids = window_feature_table(vocab)[codes[codes >= 0]].ravel()
    expected = np.bincount(ids[ids >= 0], minlength=len(vocab))
    np.testing.assert_array_equal(featurize([seq], vocab).toarray()[0], expected)


def test_featurize_golden_counts(vocab):
    X = featurize(["AAAAAAAC", "AAAAAAAAA", "ACGTACGT", "ACGTNACGTACGT", "acgt", "", "NNNNNNNNNN"], vocab)
    assert isinstance(X, sp.csr_matrix) and X.dtype == np.float32 and X.shape == (7, 112_800)
    assert X.has_sorted_indices
    row = X[0].toarray()[0]
    assert row.sum() == 16 and all(row[vocab.index(v)] == 1 for v in variants("AAAAAAAC"))
    row = X[1].toarray()[0]  # two identical windows
    assert row.sum() == 32 and all(row[vocab.index(v)] == 2 for v in variants("AAAAAAAA"))
    assert X[2].sum() == 9 and X[2].nnz == 9  # palindrome: its variants pair up
    assert (X[3] != X[2]).nnz == 0  # only the last window is free of the N
    assert X[4:].nnz == 0  # too short, empty, no valid window: zero rows, no error


def test_featurize_counts_beyond_16_bits(vocab):
    expected = [vocab.index(v) for v in variants("AAAAAAAA")]
    other = featurize(["ACGT" * 4], vocab)
    for length in (70_000, 65_536, 65_535):  # the counter dtype depends on the longest sequence
        X = featurize(["A" * length, "ACGT" * 4], vocab)
        assert X[0, expected].toarray().tolist() == [[length - 7.0] * 16]
        assert X[0].nnz == 16 and (X[1] != other).nnz == 0


def test_featurize_matches_string_level_rule(vocab):
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGTacgtN"), size=n)) for n in (8, 9, 30, 61)]
    X = featurize(seqs, vocab)
    for i, seq in enumerate(seqs):
        np.testing.assert_array_equal(X[i].toarray()[0], slow_featurize(seq, vocab))


def test_featurize_threads_and_block_split_agree(vocab):
    rng = np.random.default_rng(1)
    lengths = [5, 200, 3000, 0, 20, 200, 8, 50_000, 200, 199]
    seqs = ["".join(rng.choice(list("ACGT"), size=n)) for n in lengths] * 7
    X1 = featurize(seqs, vocab, n_threads=1)
    X4 = featurize(seqs, vocab, n_threads=4)
    assert (X1 != X4).nnz == 0 and X1.nnz > 0
    assert (featurize(seqs[7:8], vocab) != X1[7]).nnz == 0
    assert featurize([], vocab).shape == (0, len(vocab))


dna = st.text(alphabet="ACGT", min_size=0, max_size=120)


@settings(max_examples=40, deadline=None)
@given(dna)
def test_featurize_reverse_complement_invariant(seq):
    X = featurize([seq, reverse_complement(seq)])
    assert (X[0] != X[1]).nnz == 0


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet="ACGTNacgtn", min_size=0, max_size=120))
def test_featurize_case_insensitive(seq):
    X = featurize([seq, seq.lower(), seq.upper(), seq.swapcase()])
    assert all((X[0] != X[i]).nnz == 0 for i in (1, 2, 3))


@settings(max_examples=25, deadline=None)
@given(st.text(alphabet="ACGT", min_size=200, max_size=200))
def test_featurize_200bp_count_bounds(seq):
    total = featurize([seq]).sum()
    assert 193 * 9 <= total <= 193 * 16


@settings(max_examples=25, deadline=None)
@given(dna, st.sampled_from("NRYX-*é"), dna)
def test_featurize_invalid_letter_splits_sequence(left, letter, right):
    X = featurize([left + letter + right, left, right])
    assert (X[0] != X[1] + X[2]).nnz == 0


def test_reference_parity_on_probes(vocab, probes, reference_dir):
    reference = read_reference_vocabulary(reference_dir / "vocabulary_all8mers_with_wildcards.npy")
    X = featurize([p["sequence"] for p in probes], vocab)
    by_id = {i: kmer for kmer, i in reference.items()}
    for i, probe in enumerate(probes):
        ids = [int(v) for v in probe["reference_ids"].split()]
        expected = np.zeros(len(vocab))
        np.add.at(expected, [vocab.index(by_id[j]) for j in ids], 1)
        np.testing.assert_array_equal(X[i].toarray()[0], expected, err_msg=probe["sequence"])
    # 13 windows x 16, minus 7 per palindromic window.
    totals = set(X.sum(axis=1).A1.tolist())
    assert {208.0, 201.0} <= totals <= {208.0 - 7 * j for j in range(14)}


def test_vocabulary_is_the_reference_feature_set(vocab, reference_dir):
    reference = read_reference_vocabulary(reference_dir / "vocabulary_all8mers_with_wildcards.npy")
    assert len(reference) == 112_801 and reference["EMPTY"] == 0
    columns = vocab.columns([k for k in reference if k != "EMPTY"])
    # One to one: every reference k-mer (in its own orientation) is exactly one of our features.
    assert (columns >= 0).all() and len(set(columns.tolist())) == len(vocab)
    assert all(k in reference or reverse_complement(k) in reference for k in vocab.kmers)


def test_reference_feature_file_round_trip(vocab, probes, reference_dir, tmp_path):
    features = reference_dir / "selex_probes_sample100_features.txt"
    vocab_path = reference_dir / "vocabulary_all8mers_with_wildcards.npy"
    X = featurize([p["sequence"] for p in probes], vocab)
    R = read_reference_features(features, vocab_path, vocab)
    assert R.shape == X.shape and R.dtype == np.float32 and (R != X).nnz == 0
    write_reference_features(tmp_path / "same.txt", X, vocab, read_reference_vocabulary(vocab_path))
    assert (tmp_path / "same.txt").read_bytes() == features.read_bytes()
    write_reference_vocabulary(tmp_path / "ours.npy", vocab)
    write_reference_features(tmp_path / "ours.txt", X, vocab)
    assert (read_reference_features(tmp_path / "ours.txt", tmp_path / "ours.npy", vocab) != X).nnz == 0


def test_read_reference_features_bad_lines(vocab, tmp_path):
    write_reference_vocabulary(tmp_path / "v.npy", vocab)
    (tmp_path / "f.txt").write_text("1 2 2\n\n3 112801\n")
    with pytest.raises(InputError, match=r"f\.txt:3: id 112801 is not a k-mer"):
        read_reference_features(tmp_path / "f.txt", tmp_path / "v.npy", vocab)
    (tmp_path / "f.txt").write_text("1 2 x\n")
    with pytest.raises(InputError, match=r"f\.txt:1: expected space-separated integer ids"):
        read_reference_features(tmp_path / "f.txt", tmp_path / "v.npy", vocab)
    (tmp_path / "f.txt").write_text("0\n")
    with pytest.raises(InputError, match="id 0 is not a k-mer"):
        read_reference_features(tmp_path / "f.txt", tmp_path / "v.npy", vocab)
    (tmp_path / "f.txt").write_text("5 1 5\n\n")
    X = read_reference_features(tmp_path / "f.txt", tmp_path / "v.npy", vocab)
    assert X.shape == (2, len(vocab)) and X[0, 4] == 2 and X[0, 0] == 1 and X[1].nnz == 0
    with pytest.raises(InputError, match="no such file"):
        read_reference_vocabulary(tmp_path / "missing.npy")
    with pytest.raises(InputError, match="not a reference vocabulary"):
        read_reference_vocabulary(tmp_path / "f.txt")


def test_save_load_features_round_trip(vocab, tmp_path):
    X = featurize(["ACGTTGCAACGT", "short", "GATTACAGATTACA"], vocab)
    save_features(tmp_path / "x.npz", X, ["a", "b", "c"], vocab)
    Y, names, fingerprint = load_features(tmp_path / "x.npz", vocab)
    assert (Y != X).nnz == 0 and Y.dtype == np.float32 and Y.shape == X.shape
    assert names == ["a", "b", "c"] and fingerprint == vocab.fingerprint
    assert [p.name for p in tmp_path.iterdir()] == ["x.npz"]


def test_load_features_rejects_bad_files(vocab, tmp_path):
    X = featurize(["ACGTTGCAACGTAAAA"], vocab)
    save_features(tmp_path / "x.npz", X, ["a"], vocab)
    other = Vocabulary(vocab.kmers[::-1], vocab._key_to_column, vocab._window_table)
    with pytest.raises(InputError, match="made with vocabulary"):
        load_features(tmp_path / "x.npz", other)
    with pytest.raises(InputError, match="no such file"):
        load_features(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text(">seq\nACGT\n")
    with pytest.raises(InputError, match=r"text\.npz: not a"):
        load_features(tmp_path / "text.npz")
    data = (tmp_path / "x.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.npz: not a"):
        load_features(tmp_path / "cut.npz")
    np.savez(tmp_path / "other.npz", a=np.arange(3))
    with pytest.raises(InputError, match="not a"):
        load_features(tmp_path / "other.npz")
