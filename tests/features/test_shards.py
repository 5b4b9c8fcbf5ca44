"""Sharded datasets: atomic writing, the index, and the streaming reader (prefetch, shuffle buffer, bounded memory)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from bindvae.data import stream
from bindvae.errors import InputError
from bindvae.features import formats, shards


def tagged_rows(n_rows: int, extra: int = 40, seed: int = 0) -> sp.csr_matrix:
    """Row i holds column i (count 1) plus a few columns >= n_rows, so a padded row names its source."""
    rng = np.random.default_rng(seed)
    rows, cols, vals = [], [], []
    for i in range(n_rows):
        others = n_rows + rng.choice(extra, size=int(rng.integers(1, 12)), replace=False)
        for j, c in enumerate([i, *sorted(others)]):
            rows.append(i), cols.append(c), vals.append(1.0 if j == 0 else float(rng.integers(1, 4)))
    return sp.csr_matrix((vals, (rows, cols)), shape=(n_rows, n_rows + extra), dtype=np.float32)


def row_ids(indices: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The source row of each padded row (its smallest column id; padding has count 0)."""
    big = np.where(counts > 0, indices, np.iinfo(np.int32).max)
    return big.reshape(-1, big.shape[-1]).min(axis=1)


@pytest.fixture
def dataset(tmp_path):
    X = tagged_rows(230)
    names = [f"peak_{i}" for i in range(230)]
    return X, names, shards.write_shards(tmp_path / "set", X, names, "fp-test", shard_size=50)


def test_write_shards_round_trip_and_index(dataset, tmp_path):
    X, names, index = dataset
    assert [s.n_sequences for s in index.shards] == [50, 50, 50, 50, 30]
    assert (index.n_sequences, index.nnz, index.n_kmers, index.fingerprint) == (230, X.nnz, 270, "fp-test")
    parts = [shards.read_shard(index, i) for i in range(index.n_shards)]
    np.testing.assert_array_equal(sp.vstack([p[0] for p in parts]).toarray(), X.toarray())
    assert sum((p[1] for p in parts), []) == names
    X0, names0, fp = formats.load_features(index.shard_path(0))  # every shard is a plain features file
    assert fp == "fp-test" and names0 == names[:50] and X0.shape == (50, 270)
    raw = json.loads((tmp_path / "set" / shards.INDEX_NAME).read_text())
    assert raw["format"] == shards.SHARDS_FORMAT and sum(raw["row_nnz_histogram"]) == 230
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # no temporary folder left behind


def test_writer_abort_leaves_nothing_and_existing_set_untouched(dataset, tmp_path):
    X, names, index = dataset
    with pytest.raises(InputError, match="exists"):
        shards.ShardWriter(tmp_path / "set", "fp-test", 270, 10)
    with pytest.raises(RuntimeError):
        with shards.ShardWriter(tmp_path / "set", "fp-other", 270, 10, overwrite=True) as writer:
            writer.add(X[:25], names[:25])  # two shards written to the partial folder
            raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]
    assert shards.open_shards(tmp_path / "set").fingerprint == "fp-test"
    replaced = shards.write_shards(tmp_path / "set", X[:7], names[:7], "fp-new", 3, overwrite=True)
    assert replaced.n_shards == 3 and shards.open_shards(tmp_path / "set").fingerprint == "fp-new"


def test_open_shards_reports_missing_and_malformed(dataset, tmp_path):
    _, _, index = dataset
    with pytest.raises(InputError, match="not a sharded dataset"):
        shards.open_shards(tmp_path)
    index.shard_path(3).unlink()
    with pytest.raises(InputError, match="shard-00003.npz: shard listed"):
        shards.open_shards(index.path)
    (index.path / shards.INDEX_NAME).write_text("{not json")
    with pytest.raises(InputError, match="malformed index"):
        shards.open_shards(index.path)


def test_length_buckets_cover_longest_row(dataset):
    X, _, index = dataset
    buckets = index.length_buckets(4)
    assert all(b % 64 == 0 for b in buckets) and buckets[-1] >= np.diff(X.indptr).max()
    assert buckets[-1] == 64  # rows here hold at most 12 nonzeros


def test_stream_visits_each_training_row_once_per_epoch_and_skips_validation(dataset):
    X, _, index = dataset
    with stream.ShardStream(index, batch_size=10, seed=3, shuffle_buffer=0, val_fraction=0.2) as s:
        indices, counts = s.next_block(20)
    assert indices.shape == (20, 10, 64)
    val = np.concatenate(
        [np.flatnonzero(stream.validation_mask(i, 50 if i < 4 else 30, 0.2, 3)) + 50 * i for i in range(5)]
    )
    seen = row_ids(indices, counts)
    n_train = 230 - len(val)
    assert 150 < n_train < 210 and not set(seen) & set(val)
    first_epoch = seen[:n_train]
    assert sorted(first_epoch) == sorted(set(range(230)) - set(val))  # each training row once
    held = stream.load_validation(index, 0.2, 3, max_rows=1000)
    np.testing.assert_array_equal(held.toarray(), X[np.sort(val)].toarray())


def test_stream_is_seeded_and_resumes_by_skipping(dataset):
    _, _, index = dataset
    blocks = []
    for start in (0, 0, 7):
        with stream.ShardStream(index, batch_size=8, seed=1, start_step=start) as s:
            blocks.append(row_ids(*s.next_block(12 - start)).reshape(12 - start, 8))
    np.testing.assert_array_equal(blocks[0], blocks[1])
    np.testing.assert_array_equal(blocks[0][7:], blocks[2])
    with stream.ShardStream(index, batch_size=8, seed=2) as s:
        assert not np.array_equal(row_ids(*s.next_block(12)).reshape(12, 8), blocks[0])


def test_shuffle_buffer_mixes_rows_across_shards(dataset):
    _, _, index = dataset
    with stream.ShardStream(index, batch_size=50, seed=0, shuffle_buffer=100) as s:
        first = row_ids(*s.next_block(1))
    assert len(set(first // 50)) >= 2  # a batch draws from several shards
    with stream.ShardStream(index, batch_size=50, seed=0, shuffle_buffer=0) as s:
        assert len(set(row_ids(*s.next_block(1)) // 50)) == 1  # without a buffer: one shard at a time


def test_stream_memory_is_bounded_by_shard_size_not_dataset_size(tmp_path):
    small = shards.write_shards(tmp_path / "small", tagged_rows(80), [str(i) for i in range(80)], "fp", 20)
    large = shards.write_shards(tmp_path / "large", tagged_rows(800), [str(i) for i in range(800)], "fp", 20)
    peaks = []
    for index in (small, large):
        with stream.ShardStream(index, batch_size=16, seed=0, shuffle_buffer=20, prefetch=2) as s:
            s.next_block(100)  # two epochs of the large set
            peaks.append(s.peak_resident_rows)
    bound = (2 + 4) * 20 + 2 * 20 + 16  # (prefetch + 4) shards + 2 buffers + a batch
    assert large.n_shards == 40 and peaks[0] <= bound and peaks[1] <= bound
    assert peaks[1] < large.n_sequences / 4


def test_stream_raises_input_error_for_a_corrupt_shard(dataset):
    _, _, index = dataset
    for i in range(index.n_shards):
        index.shard_path(i).write_bytes(b"garbage")
    with stream.ShardStream(index, batch_size=8, seed=0) as s:
        with pytest.raises(InputError, match="shard-0000"):
            s.next_block(1)
