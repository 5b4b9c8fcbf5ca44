"""Padded rows, length buckets, seeded batch order and splits."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from bindvae.data import datasets as data


def test_pad_rows_round_trips_and_buckets_cover_lengths():
    X = sp.random(30, 500, density=0.1, random_state=0, format="csr", dtype=np.float32)
    X.data[:] = np.arange(1, X.nnz + 1)
    padded = data.pad_rows(X, n_buckets=3)
    assert padded.indices.shape[1] == padded.buckets[-1] and padded.buckets[-1] % 64 == 0
    assert len(padded.buckets) <= 4
    dense = np.zeros((30, 500), np.float32)
    np.add.at(dense, (np.arange(30)[:, None].repeat(padded.indices.shape[1], 1), padded.indices), padded.counts)
    np.testing.assert_array_equal(dense, X.toarray())
    assert data.bucket_for(int(padded.nnz.max()), padded.buckets) == padded.buckets[-1]
    assert data.bucket_for(1, padded.buckets) == padded.buckets[0]


def test_batch_rows_depend_only_on_seed_and_step_and_cover_epochs():
    whole = data.batch_rows(10, 4, seed=3, start_step=0, n_steps=5)  # 20 positions = 2 epochs
    np.testing.assert_array_equal(whole[2:], data.batch_rows(10, 4, seed=3, start_step=2, n_steps=3))
    flat = whole.reshape(-1)
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:]) == list(range(10))
    assert not np.array_equal(whole, data.batch_rows(10, 4, seed=4, start_step=0, n_steps=5))


def test_split_train_val_is_seeded_and_disjoint():
    X = sp.csr_matrix(np.arange(40, dtype=np.float32).reshape(20, 2))
    train_X, val_X, val_rows = data.split_train_val(X, 0.25, seed=1)
    assert train_X.shape[0] == 15 and val_X.shape[0] == 5
    np.testing.assert_array_equal(val_X.toarray(), X.toarray()[val_rows])
    np.testing.assert_array_equal(val_rows, data.split_train_val(X, 0.25, seed=1)[2])
    assert data.split_train_val(X, 0.0, seed=1)[1].shape[0] == 0
