"""Where batches come from: rows resident on the device, or streamed from shards by the host."""

from __future__ import annotations

import jax
import numpy as np
import scipy.sparse as sp

import bindvae.training.parallel as parallel
from bindvae.config import RunConfig, TrainConfig
from bindvae.data import datasets as data_lib
from bindvae.data import stream
from bindvae.features.shards import ShardIndex, read_shard


def resident_feed(tc: TrainConfig, train_X: sp.csr_matrix, loop):
    """One device, data in memory: padded rows live on the device; each dispatch scans over row ids."""
    data = data_lib.pad_rows(train_X, tc.n_length_buckets)
    device_indices, device_counts = jax.device_put(data.indices), jax.device_put(data.counts)

    def feed(state, step: int, n: int, key):
        rows = data_lib.batch_rows(data.n_rows, tc.batch_size, tc.seed, step, n)
        width = data_lib.bucket_for(int(data.nnz[rows].max()), data.buckets)
        return loop(state, device_indices, device_counts, rows, key, width=width)

    return feed, data.n_rows, lambda: None


def host_feed(config: RunConfig, train, mesh, start: int, sharded_loop):
    """Several devices or a sharded data set: batches are cut on the host and split over the mesh.

    In-memory rows follow the same (seed, step) order as the one-device path; a sharded set is
    streamed (``bindvae.data.stream.ShardStream``). Each process feeds only its own rows of a batch.
    """
    tc = config.train
    parallel.check_batch_size(tc.batch_size, mesh)
    local = parallel.process_rows(tc.batch_size)
    if isinstance(train, ShardIndex):
        source = stream.ShardStream(
            train, tc.batch_size, tc.seed, shuffle_buffer=config.data.shuffle_buffer or None,
            prefetch=config.data.prefetch, val_fraction=tc.val_fraction, n_buckets=tc.n_length_buckets,
            local_rows=local, start_step=start,
        )
        next_block, n_rows, close = (lambda step, n: source.next_block(n)), train.n_sequences, source.close
    else:
        data = data_lib.pad_rows(train, tc.n_length_buckets)

        def next_block(step: int, n: int):
            rows = data_lib.batch_rows(data.n_rows, tc.batch_size, tc.seed, step, n)
            width = data_lib.bucket_for(int(data.nnz[rows].max()), data.buckets)
            return parallel.gather_batches(data.indices, data.counts, rows[:, local], width)

        n_rows, close = data.n_rows, lambda: None

    def feed(state, step: int, n: int, key):
        indices, counts = next_block(step, n)
        return sharded_loop(state, parallel.put_batch(indices, mesh, 1), parallel.put_batch(counts, mesh, 1), key)

    return feed, n_rows, close


def kmer_totals(train_X: sp.csr_matrix | ShardIndex) -> np.ndarray:
    """[n_kmers] k-mer totals over the training rows (a sharded set: over its first shard, an estimate).

    Non-finite counts are left out: such a row is skipped by the train step, and it must not make
    every topic's starting logits infinite.
    """
    if isinstance(train_X, ShardIndex):
        train_X = read_shard(train_X, 0)[0]
    train_X = sp.csr_matrix(train_X)
    weights = np.where(np.isfinite(train_X.data), train_X.data, 0.0).astype(np.float64)
    return np.bincount(train_X.indices, weights=weights, minlength=train_X.shape[1])
