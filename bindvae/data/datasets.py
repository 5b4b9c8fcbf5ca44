"""Training data: loading by source, train/validation splits, padded sparse arrays and batch order.

A feature matrix X (``scipy.sparse.csr_matrix`` [n_sequences, n_kmers]) becomes a
:class:`PaddedData`: per row, its nonzero column ids and counts packed at the front of fixed-width
arrays [n, K_max], padding with id 0 and count 0. Training batches are gathered from these arrays
on the device; a batch is cut to the smallest of a few length buckets that holds its longest row,
so the step compiles once per bucket at most.

Batch order is a pure function of (seed, step): rows are visited epoch by epoch, each epoch a fresh
``np.random.default_rng([seed, epoch])`` permutation, so a resumed run sees the same batches.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import scipy.sparse as sp

from bindvae.config import DataConfig
from bindvae.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

_BUCKET_MULTIPLE = 64


@dataclasses.dataclass(frozen=True)
class PaddedData:
    """Rows of a sparse count matrix, padded to a common width.

    Attributes:
        indices: int32 [n, K_max] column ids, real entries first, then 0.
        counts: float32 [n, K_max] counts, 0 in padding slots.
        nnz: int64 [n] number of real entries per row.
        buckets: ascending padded widths; the last equals K_max.
    """

    indices: np.ndarray
    counts: np.ndarray
    nnz: np.ndarray
    buckets: tuple

    @property
    def n_rows(self) -> int:
        return int(self.indices.shape[0])


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A loaded feature matrix and what identifies its columns.

    Attributes:
        X: csr_matrix float32 [n_sequences, n_kmers].
        names: sequence names, length n_sequences.
        vocab_fingerprint: sha256 of the vocabulary the columns follow.
        kmers: column k-mer strings (for topic tables), or None when unknown.
    """

    X: sp.csr_matrix
    names: list
    vocab_fingerprint: str
    kmers: tuple | None = None


def length_buckets(nnz: np.ndarray, n_buckets: int) -> tuple:
    """Up to ``n_buckets`` padded widths (multiples of 64) covering the row lengths' quantiles."""
    top = max(int(np.max(nnz)) if len(nnz) else 1, 1)
    qs = np.quantile(np.asarray(nnz, dtype=np.float64), np.linspace(0, 1, n_buckets + 1)[1:]) if len(nnz) else [top]
    widths = {int(np.ceil(max(q, 1) / _BUCKET_MULTIPLE) * _BUCKET_MULTIPLE) for q in qs}
    widths.add(int(np.ceil(top / _BUCKET_MULTIPLE) * _BUCKET_MULTIPLE))
    return tuple(sorted(widths))


def pad_rows(X: sp.csr_matrix, n_buckets: int = 4) -> PaddedData:
    """Pack a CSR matrix's rows into padded arrays.

    Args:
        X: csr_matrix [n, n_kmers] with nonnegative counts.
        n_buckets: at most this many padded widths.

    Returns:
        The :class:`PaddedData`; K_max is the longest row rounded up to a multiple of 64.
    """
    X = sp.csr_matrix(X)
    X.sum_duplicates()
    nnz = np.diff(X.indptr).astype(np.int64)
    buckets = length_buckets(nnz, n_buckets)
    width = buckets[-1]
    n = X.shape[0]
    indices = np.zeros((n, width), np.int32)
    counts = np.zeros((n, width), np.float32)
    cols = np.arange(X.nnz) - np.repeat(X.indptr[:-1], nnz)
    rows = np.repeat(np.arange(n), nnz)
    indices[rows, cols] = X.indices
    counts[rows, cols] = X.data
    return PaddedData(indices, counts, nnz, buckets)


def bucket_for(max_nnz: int, buckets: tuple) -> int:
    """The smallest bucket width >= max_nnz."""
    for width in buckets:
        if width >= max_nnz:
            return int(width)
    return int(buckets[-1])


def batch_rows(n_rows: int, batch_size: int, seed: int, start_step: int, n_steps: int) -> np.ndarray:
    """Row ids [n_steps, batch_size] of steps start_step .. start_step + n_steps - 1.

    Step s takes positions s*B .. s*B + B - 1 of the endless sequence of epoch permutations, so
    the order depends only on (seed, step).
    """
    if n_rows < 1:
        raise ConfigError("data", "no training sequences")
    positions = np.arange(start_step * batch_size, (start_step + n_steps) * batch_size, dtype=np.int64)
    epochs = positions // n_rows
    out = np.empty(positions.shape, np.int32)
    for epoch in np.unique(epochs):
        perm = np.random.default_rng([int(seed), int(epoch)]).permutation(n_rows)
        sel = epochs == epoch
        out[sel] = perm[positions[sel] % n_rows]
    return out.reshape(n_steps, batch_size)


def split_train_val(
    X: sp.csr_matrix, val_fraction: float, seed: int
) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    """Hold out a seeded random fraction of the rows.

    Args:
        X: csr_matrix [n, n_kmers].
        val_fraction: in [0, 1); at least one row is held out when > 0 and n > 1.
        seed: split seed.

    Returns:
        (train_X, val_X, val_rows) with val_rows the held-out row ids (sorted).
    """
    n = X.shape[0]
    n_val = int(round(val_fraction * n))
    if val_fraction > 0 and n > 1:
        n_val = min(max(n_val, 1), n - 1)
    perm = np.random.default_rng([int(seed), 7919]).permutation(n)
    val_rows = np.sort(perm[:n_val])
    train_rows = np.sort(perm[n_val:])
    return X[train_rows], X[val_rows], val_rows


def synthetic_sequences(config: DataConfig, seed: int) -> tuple[list[str], list[str]]:
    """``(names, sequences)`` that the ``synthetic`` source generates for this config and seed.

    The same draws as training's, so an analysis can score the very sequences a run was trained on.
    """
    rng = np.random.default_rng([int(seed), 1])
    try:
        from bindvae.data import synthetic

        syn = synthetic.generate(
            rng, synthetic.SyntheticConfig(n_peaks=config.n_sequences, length=config.sequence_length)
        )
        return list(syn.names), list(syn.sequences)
    except ImportError:  # pragma: no cover - the planted-motif generator is part of the package
        letters = np.frombuffer(b"ACGT", np.uint8)
        codes = rng.integers(0, 4, size=(config.n_sequences, config.sequence_length))
        return [f"seq_{i}" for i in range(config.n_sequences)], [row.tobytes().decode() for row in letters[codes]]


def _synthetic(config: DataConfig, seed: int) -> Dataset:
    from bindvae.features import kmers

    names, sequences = synthetic_sequences(config, seed)
    vocab = kmers.Vocabulary.gapped8()
    X = kmers.featurize(sequences, vocab)
    return Dataset(sp.csr_matrix(X, dtype=np.float32), names, vocab.fingerprint, vocab.kmers)


def _fasta(config: DataConfig) -> Dataset:
    from bindvae.features import kmers, sequences

    vocab = kmers.Vocabulary.gapped8()
    records = sequences.read_fasta(config.path)
    X = sp.csr_matrix(kmers.featurize(records.sequences, vocab), dtype=np.float32)
    empty = np.flatnonzero(np.diff(X.indptr) == 0)
    if empty.size:
        shown = ", ".join(records.where(int(i)) for i in empty[:5])
        logger.warning("skipping %d sequence(s) without a valid 8 bp window: %s%s", empty.size, shown,
                       " ..." if empty.size > 5 else "")
        keep = np.flatnonzero(np.diff(X.indptr) > 0)
        X = X[keep]
        names = [records.names[i] for i in keep]
    else:
        names = list(records.names)
    return Dataset(X, names, vocab.fingerprint, vocab.kmers)


def _npz(config: DataConfig) -> Dataset:
    from bindvae.features import formats, kmers

    X, names, fingerprint = formats.load_features(config.path)
    names_list = list(names) if names is not None else [f"seq_{i}" for i in range(X.shape[0])]
    known = None
    if X.shape[1] == len(kmers.Vocabulary.gapped8()):
        vocab = kmers.Vocabulary.gapped8()
        known = vocab.kmers if fingerprint == vocab.fingerprint else None
    return Dataset(sp.csr_matrix(X, dtype=np.float32), names_list, fingerprint, known)


def _reference(config: DataConfig) -> Dataset:
    from bindvae.features import formats, kmers

    vocab = kmers.Vocabulary.gapped8()
    X = formats.read_reference_features(config.features, config.vocabulary, vocab)
    names = [f"line_{i + 1}" for i in range(X.shape[0])]
    return Dataset(sp.csr_matrix(X, dtype=np.float32), names, vocab.fingerprint, vocab.kmers)


def _shards(config: DataConfig) -> Dataset:
    # The whole set in memory: for tools that need every row at once. Training streams instead
    # (``bindvae.data.stream``), so its memory stays bounded by the shard size.
    from bindvae.features import kmers, shards

    index = shards.open_shards(config.path)
    parts = [shards.read_shard(index, i) for i in range(index.n_shards)]
    X = sp.vstack([p[0] for p in parts], format="csr") if parts else sp.csr_matrix((0, index.n_kmers), dtype=np.float32)
    vocab = kmers.Vocabulary.gapped8()
    known = vocab.kmers if index.fingerprint == vocab.fingerprint and index.n_kmers == len(vocab) else None
    return Dataset(X, [name for p in parts for name in p[1]], index.fingerprint, known)


def load_dataset(config: DataConfig, seed: int = 0) -> Dataset:
    """Load or generate the feature matrix a data config names.

    Args:
        config: the data source and its paths.
        seed: seed for the synthetic source.

    Returns:
        The :class:`Dataset`, cut to ``config.max_sequences`` rows when that is > 0.

    Raises:
        InputError: a missing or malformed input file.
    """
    if config.source == "synthetic":
        data = _synthetic(config, seed)
    elif config.source == "fasta":
        data = _fasta(config)
    elif config.source == "npz":
        data = _npz(config)
    elif config.source == "shards":
        data = _shards(config)
    else:
        data = _reference(config)
    if data.X.shape[0] == 0:
        raise InputError(config.path or config.features or "synthetic", "no sequences to train on")
    if config.max_sequences and data.X.shape[0] > config.max_sequences:
        data = dataclasses.replace(data, X=data.X[: config.max_sequences], names=data.names[: config.max_sequences])
    logger.info("data: %d sequences x %d k-mers (%s)", data.X.shape[0], data.X.shape[1], config.source)
    return data
