"""Training batches streamed from a sharded dataset with background prefetch and a shuffle buffer.

A background thread reads shards (in a fresh seeded order every epoch) into a queue of at most
``prefetch`` shards, so reading overlaps training. The consumer mixes each arriving shard with a
shuffle buffer of ``shuffle_buffer`` rows: buffer and shard are permuted together, everything but
``shuffle_buffer`` rows is emitted, the rest is kept. Rows held in memory at any time are bounded by
``(prefetch + 4) * shard_size + 2 * shuffle_buffer + batch_size`` (while a shard is mixed in)
whatever the dataset's size.

The order is a pure function of the seed: a resumed run replays the stream and skips the batches it
has already trained on (they are cut but never padded or sent to a device).

Validation rows are chosen per row by a seeded draw, ``val_fraction`` of each shard, and never
appear in the training stream.
"""

from __future__ import annotations

import logging
import queue
import threading

import numpy as np
import scipy.sparse as sp

from bindvae.data.datasets import bucket_for
from bindvae.errors import InputError
from bindvae.features.shards import ShardIndex, read_shard

logger = logging.getLogger(__name__)

_POLL_S = 0.1


def validation_mask(shard: int, n_rows: int, val_fraction: float, seed: int) -> np.ndarray:
    """bool [n_rows]: which rows of shard ``shard`` are held out for validation."""
    if val_fraction <= 0:
        return np.zeros(n_rows, bool)
    return np.random.default_rng([int(seed), 7919, int(shard)]).random(n_rows) < val_fraction


def load_validation(index: ShardIndex, val_fraction: float, seed: int, max_rows: int) -> sp.csr_matrix:
    """The held-out rows of the first shards, at most ``max_rows`` of them: csr [n_val, n_kmers]."""
    parts, n = [], 0
    for i in range(index.n_shards):
        if n >= max_rows or val_fraction <= 0:
            break
        X, _ = read_shard(index, i)
        rows = np.flatnonzero(validation_mask(i, X.shape[0], val_fraction, seed))[: max_rows - n]
        parts.append(X[rows])
        n += len(rows)
    if not parts:
        return sp.csr_matrix((0, index.n_kmers), dtype=np.float32)
    return sp.vstack(parts, format="csr")


def pad_batch(X: sp.csr_matrix, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Padded rows of a csr [B, D]: (int32 [B, width] ids, float32 [B, width] counts), zeros after each row."""
    nnz = np.diff(X.indptr)
    indices = np.zeros((X.shape[0], width), np.int32)
    counts = np.zeros((X.shape[0], width), np.float32)
    rows = np.repeat(np.arange(X.shape[0]), nnz)
    cols = np.arange(X.nnz) - np.repeat(X.indptr[:-1], nnz)
    indices[rows, cols] = X.indices
    counts[rows, cols] = X.data
    return indices, counts


class ShardStream:
    """Endless training batches from a sharded dataset.

    Args:
        index: the dataset (``bindvae.features.shards.open_shards``).
        batch_size: rows per global batch.
        seed: shard order, shuffle and validation split seed.
        shuffle_buffer: rows kept back to mix across shards (None = one shard's worth).
        prefetch: shards read ahead by the background thread (>= 1).
        val_fraction: fraction of each shard held out (see :func:`validation_mask`).
        n_buckets: at most this many padded widths (from the index's row-length histogram).
        local_rows: this process's slice of every global batch (multi-host), None = all rows.
        start_step: batches to skip (resume).

    Raises:
        InputError: (on iteration) a shard is unreadable, or no training rows are left.
    """

    def __init__(self, index: ShardIndex, batch_size: int, seed: int, shuffle_buffer: int | None = None,
                 prefetch: int = 2, val_fraction: float = 0.0, n_buckets: int = 4,
                 local_rows: slice | None = None, start_step: int = 0):
        self.index, self.batch_size, self.seed = index, int(batch_size), int(seed)
        self.shuffle_buffer = index.shard_size if shuffle_buffer is None else int(shuffle_buffer)
        self.val_fraction, self.local_rows = float(val_fraction), local_rows or slice(None)
        self.buckets = index.length_buckets(n_buckets)
        self._queue: queue.Queue = queue.Queue(maxsize=max(int(prefetch), 1))
        self._stop = threading.Event()
        self._mix_rng = np.random.default_rng([self.seed, 104729])
        self._buffer = sp.csr_matrix((0, index.n_kmers), dtype=np.float32)
        self._ready, self._pos = self._buffer, 0
        self._queued_rows = self._reading_rows = 0
        self.peak_resident_rows = 0
        self._thread = threading.Thread(target=self._read_shards, name="shard-prefetch", daemon=True)
        self._thread.start()
        for _ in range(int(start_step)):
            self._take_rows(self.batch_size)

    # The reader thread: shards in a seeded order per epoch, validation rows removed.
    def _read_shards(self) -> None:
        epoch = 0
        try:
            while not self._stop.is_set():
                order = np.random.default_rng([self.seed, 31, epoch]).permutation(self.index.n_shards)
                for i in order:
                    info = self.index.shards[i]
                    self._reading_rows = info.n_sequences
                    X, _ = read_shard(self.index, int(i))
                    X = X[~validation_mask(int(i), X.shape[0], self.val_fraction, self.seed)]
                    if not self._put(X):
                        return
                epoch += 1
        except Exception as err:  # handed to the consumer, which raises it in the training thread
            self._put(err)

    def _put(self, item) -> bool:
        n = item.shape[0] if sp.issparse(item) else 0
        self._reading_rows = n
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                self._queued_rows += n
                self._reading_rows = 0
                return True
            except queue.Full:
                continue
        return False

    def _next_shard(self) -> sp.csr_matrix:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise (
                item if isinstance(item, InputError) else InputError(self.index.path, f"reading shards failed: {item}")
            )
        self._queued_rows -= item.shape[0]
        return item

    def _refill(self) -> None:
        empty_in_a_row = 0
        while self._ready.shape[0] - self._pos < self.batch_size:
            shard = self._next_shard()
            empty_in_a_row = empty_in_a_row + 1 if shard.shape[0] == 0 else 0
            if empty_in_a_row > self.index.n_shards:
                raise InputError(self.index.path, "no training rows (every row is held out for validation?)")
            combined = sp.vstack([self._buffer, shard], format="csr")
            perm = self._mix_rng.permutation(combined.shape[0])
            n_emit = max(combined.shape[0] - self.shuffle_buffer, 0)
            leftover = self._ready[self._pos:]
            self._ready = sp.vstack([leftover, combined[perm[:n_emit]]], format="csr")
            self._buffer, self._pos = combined[perm[n_emit:]], 0
            self._note_resident(combined.shape[0] + shard.shape[0])

    def _note_resident(self, transient: int) -> None:
        held = self._buffer.shape[0] + self._ready.shape[0] + self._queued_rows + self._reading_rows + transient
        self.peak_resident_rows = max(self.peak_resident_rows, held)

    def _take_rows(self, n: int) -> sp.csr_matrix:
        self._refill()
        rows = self._ready[self._pos:self._pos + n]
        self._pos += n
        return rows

    def next_block(self, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
        """The next ``n_steps`` batches, this process's rows, padded to one common bucket width.

        Returns:
            (int32 [n_steps, B_local, width] k-mer ids, float32 [n_steps, B_local, width] counts).
        """
        batches = [self._take_rows(self.batch_size)[self.local_rows] for _ in range(n_steps)]
        longest = max(int(np.diff(b.indptr).max(initial=1)) for b in batches)
        width = bucket_for(longest, self.buckets)
        padded = [pad_batch(b, width) for b in batches]
        return np.stack([p[0] for p in padded]), np.stack([p[1] for p in padded])

    def close(self) -> None:
        """Stop the reader thread (idempotent)."""
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> ShardStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
