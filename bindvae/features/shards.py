"""Sharded feature datasets on disk: CSR shards plus an index, for data sets larger than memory.

A sharded dataset is a folder::

    index.json          format, vocabulary fingerprint, n_kmers, counts, the shard list, row-length histogram
    shard-00000.npz     rows 0 .. shard_size - 1, a features file (``bindvae.features.formats.load_features`` reads it)
    shard-00001.npz     ...

Each shard holds at most ``shard_size`` sequences: CSR counts, their names and the fingerprint.
:class:`ShardWriter` builds the folder under a temporary name next to the destination and renames
it into place when it is complete, so a reader never sees a half-written dataset.

Training reads shards through :class:`ShardStream` (``bindvae.data.stream``), which holds a bounded number
of them in memory at a time.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from bindvae.errors import InputError
from bindvae.features.formats import FEATURES_FORMAT, load_features
from bindvae.io import atomic_open

logger = logging.getLogger(__name__)

SHARDS_FORMAT = "bindvae-shards-v1"
INDEX_NAME = "index.json"
HISTOGRAM_BIN = 64  # row-length histogram bin width, the padding granularity of training batches


@dataclasses.dataclass(frozen=True)
class ShardInfo:
    """One shard: its file name (relative to the dataset folder) and sizes."""

    file: str
    n_sequences: int
    nnz: int
    max_row_nnz: int


@dataclasses.dataclass(frozen=True)
class ShardIndex:
    """A sharded dataset's index.

    Attributes:
        path: the dataset folder.
        fingerprint: vocabulary fingerprint of the columns.
        n_kmers: number of columns (D).
        n_sequences: rows over all shards.
        nnz: nonzeros over all shards.
        shard_size: the most rows a shard holds.
        shards: the shards in row order.
        row_nnz_histogram: counts of rows by nonzeros, bins of ``HISTOGRAM_BIN`` (bin i: i*64+1 .. (i+1)*64).
    """

    path: Path
    fingerprint: str
    n_kmers: int
    n_sequences: int
    nnz: int
    shard_size: int
    shards: tuple
    row_nnz_histogram: tuple

    @property
    def n_shards(self) -> int:
        return len(self.shards)

    @property
    def shape(self) -> tuple[int, int]:
        """(n_sequences, n_kmers), as the matrix of all shards stacked would have."""
        return (self.n_sequences, self.n_kmers)

    def shard_path(self, i: int) -> Path:
        return self.path / self.shards[i].file

    def length_buckets(self, n_buckets: int) -> tuple:
        """Up to ``n_buckets`` padded widths (multiples of 64) covering the row-length quantiles.

        The same rule as ``bindvae.data.datasets.length_buckets``, computed from the histogram so no shard
        has to be read.
        """
        hist = np.asarray(self.row_nnz_histogram, np.float64)
        if hist.sum() == 0:
            return (HISTOGRAM_BIN,)
        cdf = np.cumsum(hist) / hist.sum()
        widths = set()
        for q in np.linspace(0, 1, n_buckets + 1)[1:]:
            b = int(np.searchsorted(cdf, q - 1e-12))
            widths.add((min(b, len(hist) - 1) + 1) * HISTOGRAM_BIN)
        widths.add(len(hist) * HISTOGRAM_BIN)
        return tuple(sorted(widths))


def is_sharded(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder holding a sharded dataset's index."""
    return (Path(path) / INDEX_NAME).is_file()


def _row_histogram(nnz: np.ndarray) -> np.ndarray:
    bins = np.maximum(np.asarray(nnz, np.int64) - 1, 0) // HISTOGRAM_BIN
    return np.bincount(bins, minlength=1) if len(bins) else np.zeros(1, np.int64)


def _add_histograms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros(max(len(a), len(b)), np.int64)
    out[: len(a)] += a
    out[: len(b)] += b
    return out


def write_shard_file(path: Path, X: sp.csr_matrix, names: Sequence[str], fingerprint: str) -> None:
    """Write one shard (a features .npz: csr [n, n_kmers], n names, the fingerprint) via a temporary name."""
    arrays = {
        "format": np.array(FEATURES_FORMAT),
        "fingerprint": np.array(fingerprint),
        "shape": np.array(X.shape, dtype=np.int64),
        "indptr": X.indptr.astype(np.int64),
        "indices": X.indices.astype(np.int32),
        "data": X.data.astype(np.float32),
        "names": np.array([str(n) for n in names], dtype=str),
    }
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)


class ShardWriter:
    """Writes a sharded dataset, ``shard_size`` rows per shard, and renames it into place on close.

    Use as a context manager; an exception inside the block removes the partial folder and leaves
    any existing dataset untouched::

        with ShardWriter(out, vocab.fingerprint, len(vocab), shard_size=100_000) as writer:
            for X, names in blocks:
                writer.add(X, names)
        index = writer.index

    Args:
        output: the dataset folder to create.
        fingerprint: vocabulary fingerprint of the columns.
        n_kmers: number of columns.
        shard_size: most rows per shard (>= 1).
        overwrite: replace an existing ``output``.

    Raises:
        InputError: ``output`` exists and ``overwrite`` is false, or ``shard_size`` < 1.
    """

    def __init__(self, output, fingerprint: str, n_kmers: int, shard_size: int, overwrite: bool = False):
        self.output = Path(output)
        if shard_size < 1:
            raise InputError(self.output, f"shard_size must be >= 1, got {shard_size}")
        if self.output.exists() and not overwrite:
            raise InputError(self.output, "exists; pass overwrite=true to replace it")
        self.fingerprint, self.n_kmers, self.shard_size = fingerprint, int(n_kmers), int(shard_size)
        self.partial = self.output.with_name(f".{self.output.name}.{os.getpid()}.partial")
        shutil.rmtree(self.partial, ignore_errors=True)
        self.partial.mkdir(parents=True)
        self.shards: list[ShardInfo] = []
        self.histogram = np.zeros(1, np.int64)
        self.pending: list[tuple[sp.csr_matrix, list]] = []
        self.n_pending = 0
        self.index: ShardIndex | None = None

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def add(self, X: sp.spmatrix, names: Sequence[str]) -> None:
        """Append rows (csr [n, n_kmers] and n names); full shards are written as they fill."""
        X = sp.csr_matrix(X, dtype=np.float32)
        if X.shape[1] != self.n_kmers or X.shape[0] != len(names):
            raise ValueError(f"rows have shape {X.shape} with {len(names)} names; expected n x {self.n_kmers}")
        self.pending.append((X, list(names)))
        self.n_pending += X.shape[0]
        while self.n_pending >= self.shard_size:
            self._flush(self.shard_size)

    def add_shard_file(self, path: Path) -> None:
        """Move an already written shard (a features .npz of <= shard_size rows) into the dataset.

        Used by parallel featurizing: each worker writes its own shards, the writer adopts them
        in input order. Rows still pending from :meth:`add` are written first.
        """
        if self.n_pending:
            self._flush(self.n_pending)
        X, _, fingerprint = load_features(path)
        if fingerprint != self.fingerprint or X.shape[1] != self.n_kmers:
            raise InputError(path, "shard made with another vocabulary")
        self._register(X, lambda target: os.replace(path, target))

    def _flush(self, n_rows: int) -> None:
        blocks, names, taken = [], [], 0
        while taken < n_rows:
            X, block_names = self.pending[0]
            need = n_rows - taken
            if X.shape[0] <= need:
                blocks.append(X)
                names.extend(block_names)
                self.pending.pop(0)
            else:
                blocks.append(X[:need])
                names.extend(block_names[:need])
                self.pending[0] = (X[need:], block_names[need:])
            taken += blocks[-1].shape[0]
        X = sp.vstack(blocks, format="csr") if len(blocks) > 1 else blocks[0]
        self.n_pending -= n_rows
        self._register(X, lambda target: write_shard_file(target, X, names, self.fingerprint))

    def _register(self, X: sp.csr_matrix, write) -> None:
        file = f"shard-{len(self.shards):05d}.npz"
        write(self.partial / file)
        row_nnz = np.diff(X.indptr)
        self.histogram = _add_histograms(self.histogram, _row_histogram(row_nnz))
        self.shards.append(ShardInfo(file, int(X.shape[0]), int(X.nnz), int(row_nnz.max()) if len(row_nnz) else 0))

    def close(self) -> ShardIndex:
        """Write the last shard and the index, then move the folder into place; returns the index."""
        if self.n_pending:
            self._flush(self.n_pending)
        index = {
            "format": SHARDS_FORMAT,
            "fingerprint": self.fingerprint,
            "n_kmers": self.n_kmers,
            "n_sequences": sum(s.n_sequences for s in self.shards),
            "nnz": sum(s.nnz for s in self.shards),
            "shard_size": self.shard_size,
            "shards": [dataclasses.asdict(s) for s in self.shards],
            "row_nnz_histogram": [int(v) for v in self.histogram],
        }
        with atomic_open(self.partial / INDEX_NAME, "w") as handle:
            handle.write(json.dumps(index, indent=1) + "\n")
        old = self.output.with_name(f".{self.output.name}.{os.getpid()}.old")
        if self.output.exists():
            os.replace(self.output, old)
        os.replace(self.partial, self.output)
        shutil.rmtree(old, ignore_errors=True)
        self.index = open_shards(self.output)
        logger.info("wrote %d sequences in %d shard(s) to %s", self.index.n_sequences, self.index.n_shards, self.output)
        return self.index

    def abort(self) -> None:
        """Remove the partial folder; nothing is left at ``output`` that was not there before."""
        shutil.rmtree(self.partial, ignore_errors=True)


def write_shards(
    output, X: sp.spmatrix, names: Sequence[str], fingerprint: str, shard_size: int, overwrite: bool = False
) -> ShardIndex:
    """Write an in-memory csr [n, n_kmers] and its n names as a sharded dataset; returns its index."""
    X = sp.csr_matrix(X)
    with ShardWriter(output, fingerprint, X.shape[1], shard_size, overwrite) as writer:
        writer.add(X, names)
    return writer.index


def open_shards(path: str | os.PathLike) -> ShardIndex:
    """Read and check a sharded dataset's index (every listed shard file must exist).

    Raises:
        InputError: no index, a malformed index, or a missing shard file.
    """
    path = Path(path)
    index_path = path / INDEX_NAME
    if not index_path.is_file():
        raise InputError(path, f"not a sharded dataset (no {INDEX_NAME})")
    try:
        raw = json.loads(index_path.read_text(encoding="utf-8"))
        if raw.get("format") != SHARDS_FORMAT:
            raise InputError(index_path, f"not a {SHARDS_FORMAT} index")
        shards = tuple(ShardInfo(**s) for s in raw["shards"])
        index = ShardIndex(
            path, str(raw["fingerprint"]), int(raw["n_kmers"]), int(raw["n_sequences"]), int(raw["nnz"]),
            int(raw["shard_size"]), shards, tuple(int(v) for v in raw["row_nnz_histogram"]),
        )
    except InputError:
        raise
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(index_path, f"malformed index ({type(err).__name__}: {err})") from None
    missing = [s.file for s in shards if not (path / s.file).is_file()]
    if missing:
        raise InputError(path / missing[0], f"shard listed in {INDEX_NAME} is missing ({len(missing)} missing)")
    if sum(s.n_sequences for s in shards) != index.n_sequences:
        raise InputError(index_path, "shard row counts do not add up to n_sequences")
    return index


def read_shard(index: ShardIndex, i: int) -> tuple[sp.csr_matrix, list[str]]:
    """Shard ``i``: (csr float32 [n_i, n_kmers], n_i names), checked against the index.

    Raises:
        InputError: the shard's fingerprint, shape or row count disagrees with the index.
    """
    info = index.shards[i]
    X, names, fingerprint = load_features(index.shard_path(i))
    if fingerprint != index.fingerprint or X.shape != (info.n_sequences, index.n_kmers) or X.nnz != info.nnz:
        raise InputError(index.shard_path(i), "shard does not match the index (fingerprint, shape or nnz)")
    return X, names
