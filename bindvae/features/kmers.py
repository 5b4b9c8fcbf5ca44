"""Gapped 8-mer vocabulary and the sparse featurizer (feature files: :mod:`bindvae.features.formats`).

A gapped 8-mer is an 8-letter word over ``ACGT`` with either no wildcard, one ``N`` at any position,
or two consecutive ``NN``. A k-mer and its reverse complement are one feature; the feature is named by
its *canonical* spelling, the lexicographically smaller of the two strings in ASCII order
(``A < C < G < N < T``). That gives 112,800 features, 320 of them their own reverse complement.

Columns are ordered: the 32,896 plain 8-mers, then the one-``N`` k-mers grouped by the wildcard's
position (0..7), then the ``NN`` k-mers grouped by position (0..6); alphabetical inside each group.

Counting rule (the reference BindVAE featurizer's): every 8 bp window of a sequence yields 16 variants
(itself, 8 with one base replaced by ``N``, 7 with two consecutive bases replaced by ``NN``). Each
DISTINCT canonical feature among them counts once for that window; counts add up over windows.
Windows containing a base other than ``ACGT`` (any case) are skipped.

Internally a gapped k-mer is a base-5 integer whose digits are ranks ``A=0 C=1 G=2 N=3 T=4`` (first
letter most significant), so integer order is string order.
A plain window is a 16-bit code, 2 bits per base (``A=0 C=1 G=2 T=3``).
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import logging
import os
from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from bindvae import dna
from bindvae.features._kmer_kernels import count_block

logger = logging.getLogger(__name__)

K = 8
N_WINDOW_CODES = 4**K
N_VARIANTS = 1 + K + (K - 1)
_N_RANK = 3
_RANK_LETTERS = np.frombuffer(b"ACGNT", dtype=np.uint8)
_CODE_TO_RANK = np.array([0, 1, 2, 4], dtype=np.int64)  # 2-bit base code -> rank digit
_COMPLEMENT_RANK = np.array([4, 2, 1, 3, 0], dtype=np.int64)  # A<->T, C<->G, N->N
_POW5 = 5 ** np.arange(K - 1, -1, -1, dtype=np.int64)
_POW4 = 4 ** np.arange(K - 1, -1, -1, dtype=np.int64)


def _byte_table(letters: bytes, values: Sequence[int], default: int) -> np.ndarray:
    table = np.full(256, default, dtype=np.int8)
    for letter, value in zip(letters, values):
        table[letter] = value
        table[ord(chr(letter).lower())] = value
    table.setflags(write=False)
    return table


_LETTER_RANK = _byte_table(b"ACGNT", (0, 1, 2, 3, 4), -1)


def _rank_digits(keys: np.ndarray) -> np.ndarray:
    """[n] base-5 keys -> [n, K] rank digits."""
    return (keys[:, None] // _POW5[None, :]) % 5


def _reverse_complement_keys(keys: np.ndarray) -> np.ndarray:
    return _COMPLEMENT_RANK[_rank_digits(keys)][:, ::-1] @ _POW5


@functools.lru_cache(maxsize=1)  # built once per process: the tables are read-only and cost ~0.2 s
def _gapped8_tables() -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Returns (canonical k-mers in column order, key -> column [5**K], window table [4**K, 16])."""
    keys = np.arange(5**K, dtype=np.int64)
    digits = _rank_digits(keys)
    is_n = digits == _N_RANK
    n_wild = is_n.sum(axis=1)
    adjacent = (is_n[:, :-1] & is_n[:, 1:]).any(axis=1)
    gapped = (n_wild <= 1) | ((n_wild == 2) & adjacent)
    keys, digits, n_wild = keys[gapped], digits[gapped], n_wild[gapped]
    rc_keys = _reverse_complement_keys(keys)
    canonical = keys <= rc_keys
    keys, digits, n_wild, rc_keys = keys[canonical], digits[canonical], n_wild[canonical], rc_keys[canonical]
    first_n = np.where(n_wild > 0, np.argmax(digits == _N_RANK, axis=1), -1)
    order = np.lexsort((keys, first_n, n_wild))
    keys, digits, rc_keys = keys[order], digits[order], rc_keys[order]
    key_to_column = np.full(5**K, -1, dtype=np.int32)
    key_to_column[rc_keys] = np.arange(len(keys), dtype=np.int32)
    key_to_column[keys] = np.arange(len(keys), dtype=np.int32)
    text = _RANK_LETTERS[digits].astype(np.uint8).tobytes().decode("ascii")
    kmers = tuple(text[i : i + K] for i in range(0, len(text), K))
    table = _build_window_table(key_to_column)
    key_to_column.setflags(write=False)
    table.setflags(write=False)
    return kmers, key_to_column, table


def _build_window_table(key_to_column: np.ndarray) -> np.ndarray:
    """[4**K, 16] int32: the distinct feature columns of each plain window's variants, -1 padded."""
    codes = np.arange(N_WINDOW_CODES, dtype=np.int64)
    ranks = _CODE_TO_RANK[(codes[:, None] // _POW4[None, :]) % 4]  # [65536, K]
    variants = [ranks]
    for pos in range(K):
        masked = ranks.copy()
        masked[:, pos] = _N_RANK
        variants.append(masked)
    for pos in range(K - 1):
        masked = ranks.copy()
        masked[:, pos : pos + 2] = _N_RANK
        variants.append(masked)
    columns = key_to_column[np.stack(variants, axis=1) @ _POW5]  # [65536, 16]
    columns = np.sort(columns, axis=1)
    duplicate = np.zeros_like(columns, dtype=bool)
    duplicate[:, 1:] = columns[:, 1:] == columns[:, :-1]
    # Distinct ids first, -1 padding last (a stable sort on the duplicate flag keeps ids ascending).
    columns = np.where(duplicate, -1, columns)
    order = np.argsort(duplicate, axis=1, kind="stable")
    return np.take_along_axis(columns, order, axis=1).astype(np.int32)


class Vocabulary:
    """An ordered set of canonical gapped k-mers: the columns of every feature matrix.

    Build it with :meth:`gapped8`; instances are read-only and cheap to share.

    Attributes:
        kmers: canonical k-mer strings in column order (a tuple of ``len(vocab)`` strings).
        k: k-mer length (8).
        reverse_complement: True: a k-mer and its reverse complement are one feature.
        fingerprint: hex sha256 of k, the reverse-complement setting and the ordered k-mer list;
            recorded in every dataset and checkpoint so that mismatches are caught.
    """

    def __init__(self, kmers: tuple[str, ...], key_to_column: np.ndarray, window_table: np.ndarray,
                 parent: Vocabulary | None = None, parent_columns: np.ndarray | None = None):
        self.kmers = kmers
        self.k = K
        self.reverse_complement = True
        self._key_to_column = key_to_column
        self._window_table = window_table
        self.parent = parent
        self.parent_columns = parent_columns
        digest = hashlib.sha256(f"k={self.k};reverse_complement={self.reverse_complement};".encode())
        digest.update("\n".join(kmers).encode("ascii"))
        self.fingerprint = digest.hexdigest()

    @classmethod
    def gapped8(cls) -> Vocabulary:
        """The 112,800 canonical gapped 8-mers (SPEC section 2)."""
        return cls(*_gapped8_tables())

    def subset(self, columns) -> Vocabulary:
        """The vocabulary of some of these columns, in ascending column order (a model's k-mer selection).

        Featurizing with the subset gives exactly the selected columns of featurizing with ``self``
        (windows simply count nothing for the dropped k-mers).

        Args:
            columns: column indices into this vocabulary (any order; duplicates are dropped).

        Returns:
            A vocabulary whose ``parent`` is ``self`` and ``parent_columns`` the sorted columns.

        Raises:
            ValueError: no column, or a column outside ``[0, len(self))``.
        """
        columns = np.unique(np.asarray(columns, dtype=np.int64))
        if columns.size == 0 or columns[0] < 0 or columns[-1] >= len(self):
            raise ValueError(f"a subset needs columns in [0, {len(self)}), got {columns.size} column(s)")
        remap = np.full(len(self) + 1, -1, dtype=np.int32)  # last entry: the table's -1 padding
        remap[columns] = np.arange(columns.size, dtype=np.int32)
        key_to_column = np.where(self._key_to_column >= 0, remap[self._key_to_column], -1).astype(np.int32)
        table = remap[self._window_table]
        # The counting kernel stops at a row's first -1: kept ids first, ascending, padding last.
        order = np.argsort(table < 0, axis=1, kind="stable")
        table = np.take_along_axis(table, order, axis=1).astype(np.int32)
        for array in (key_to_column, table, columns):
            array.setflags(write=False)
        return Vocabulary(tuple(self.kmers[j] for j in columns), key_to_column, table, self, columns)

    def restrict(self, X: sp.spmatrix) -> sp.csr_matrix:
        """Counts in this vocabulary's columns: ``X`` itself, or its selected columns when ``X`` has the
        parent vocabulary's width (features computed before a model chose its k-mers).

        Raises:
            ValueError: ``X`` has neither width.
        """
        if X.shape[1] == len(self):
            return X
        if self.parent is not None and X.shape[1] == len(self.parent):
            return sp.csr_matrix(X)[:, self.parent_columns].tocsr()
        raise ValueError(f"features have {X.shape[1]} columns; this vocabulary has {len(self)}"
                         + (f" (of {len(self.parent)})" if self.parent is not None else ""))

    def accepts(self, fingerprint: str) -> bool:
        """Whether features of this fingerprint can be scored: this vocabulary's, or its parent's."""
        return fingerprint == self.fingerprint or (self.parent is not None and fingerprint == self.parent.fingerprint)

    def __len__(self) -> int:
        return len(self.kmers)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and other.fingerprint == self.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"Vocabulary(k={self.k}, n_kmers={len(self)}, fingerprint={self.fingerprint[:12]}...)"

    def index(self, kmer: str) -> int:
        """Column of a gapped k-mer given in either orientation (any case).

        Raises:
            KeyError: ``kmer`` is not a gapped 8-mer of this vocabulary.
        """
        column = self.columns([kmer])[0] if isinstance(kmer, str) else -1
        if column < 0:
            raise KeyError(
                f"{kmer!r} is not a gapped {self.k}-mer (letters ACGT, at most one N or two consecutive NN)"
            )
        return int(column)

    def columns(self, kmers: Sequence[str]) -> np.ndarray:
        """Columns of many k-mers at once, either orientation, any case.

        Args:
            kmers: ``n`` strings.

        Returns:
            [n] int64 columns, -1 where a string is not a k-mer of this vocabulary.
        """
        out = np.full(len(kmers), -1, dtype=np.int64)
        ok = np.fromiter((isinstance(s, str) and len(s) == self.k and s.isascii() for s in kmers), bool, len(kmers))
        if not ok.any():
            return out
        text = "".join(s for s, good in zip(kmers, ok) if good).encode("ascii")
        ranks = _LETTER_RANK[np.frombuffer(text, dtype=np.uint8)].reshape(-1, self.k).astype(np.int64)
        valid = (ranks >= 0).all(axis=1)
        columns = np.full(len(ranks), -1, dtype=np.int64)
        columns[valid] = self._key_to_column[ranks[valid] @ _POW5]
        out[ok] = columns
        return out

    def window_feature_table(self) -> np.ndarray:
        """See :func:`window_feature_table`."""
        return self._window_table


def window_feature_table(vocab: Vocabulary | None = None) -> np.ndarray:
    """The features each plain 8 bp window counts once.

    Args:
        vocab: the vocabulary (default: :meth:`Vocabulary.gapped8`).

    Returns:
        [65536, 16] int32, read-only: row ``code`` (see :func:`window_codes`) lists the distinct
        columns of that window's 16 variants, ascending, padded with -1 (palindromic windows).
    """
    return (vocab or Vocabulary.gapped8()).window_feature_table()


def window_codes(sequence: str) -> np.ndarray:
    """16-bit codes of every 8 bp window of a sequence.

    Args:
        sequence: DNA string of length L (any case).

    Returns:
        [max(L - 7, 0)] int32: window i's code is ``sum(base[i + j] * 4 ** (7 - j))`` with
        ``A=0 C=1 G=2 T=3``, or -1 when the window holds a letter other than ACGT.
    """
    bases = dna.BASE_CODE[np.frombuffer(sequence.encode("ascii", errors="replace"), dtype=np.uint8)]
    if len(bases) < K:
        return np.zeros(0, dtype=np.int32)
    windows = np.lib.stride_tricks.sliding_window_view(bases.astype(np.int64), K)
    codes = windows @ _POW4
    return np.where((windows < 4).all(axis=1), codes, -1).astype(np.int32)


def _encode_sequences(sequences: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated 2-bit base codes (4 = not ACGT) [total] and sequence offsets [n + 1]."""
    seqs = [s.decode("latin-1") if isinstance(s, bytes | bytearray) else s for s in sequences]
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # One byte per character: anything non-ASCII becomes '?', which is not a base.
    text = "".join(seqs).encode("ascii", errors="replace")
    return dna.BASE_CODE[np.frombuffer(text, dtype=np.uint8)], offsets


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _run_blocks(kernel_args: tuple, bounds: np.ndarray, fill: bool, n_threads: int) -> None:
    """Runs the nogil kernel over blocks of sequences on plain threads.

    Threads rather than numba's parallel=True: numba's default threading layer aborts the process
    when two Python threads call a parallel kernel at once, and callers may featurize from threads.
    """
    blocks = list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))
    codes, offsets, table, n_features, indptr, indices, data = kernel_args
    if not fill:
        counts_dtype = np.uint8  # pass 1 only flags features
    else:  # a count is at most the number of windows of the longest sequence
        longest = int(np.diff(offsets).max(initial=0))
        counts_dtype = np.uint16 if longest < 2**16 else np.int32

    def count(block: tuple[int, int]) -> None:
        counts = np.zeros(n_features, dtype=counts_dtype)
        count_block(codes, offsets, table, block[0], block[1], counts, indptr, indices, data, fill)

    if n_threads <= 1 or len(blocks) <= 1:
        for block in blocks:
            count(block)
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=n_threads) as pool:
        for _ in pool.map(count, blocks):
            pass


def featurize(
    sequences: Iterable[str], vocab: Vocabulary | None = None, n_threads: int | None = None
) -> sp.csr_matrix:
    """Gapped 8-mer counts of DNA sequences (the reference BindVAE counting rule).

    Sequences may have any length and case. Windows with a letter other than ACGT are skipped; a
    sequence shorter than 8 bp or without a valid window gives an all-zero row (callers report it).

    Args:
        sequences: ``n`` DNA strings.
        vocab: the vocabulary (default: :meth:`Vocabulary.gapped8`).
        n_threads: worker threads (default: the CPUs this process may use).

    Returns:
        [n, len(vocab)] float32 CSR matrix with sorted column indices; never densified.
    """
    vocab = vocab or Vocabulary.gapped8()
    codes, offsets = _encode_sequences(sequences)
    n = len(offsets) - 1
    n_features = len(vocab)
    if n_features >= 2**18:  # the radix sort's range
        raise ValueError(f"vocabulary of {n_features} features is too large for this featurizer")
    table = vocab.window_feature_table()
    n_threads = n_threads or _available_cpus()
    # Blocks balanced by bases, several per thread so one long sequence does not stall the rest.
    n_blocks = max(1, min(n, 8 * n_threads, 1 + int(offsets[-1]) // 20_000))
    cuts = np.searchsorted(offsets[1:], np.linspace(0, offsets[-1], n_blocks + 1)[1:-1])
    bounds = np.unique(np.concatenate([[0], np.minimum(cuts, n), [n]])).astype(np.int64)
    indptr = np.zeros(n + 1, dtype=np.int64)
    no_indices = np.zeros(0, dtype=np.int32)
    no_data = np.zeros(0, dtype=np.float32)
    _run_blocks((codes, offsets, table, n_features, indptr, no_indices, no_data), bounds, False, n_threads)
    np.cumsum(indptr, out=indptr)
    indices = np.empty(indptr[-1], dtype=np.int32)
    data = np.empty(indptr[-1], dtype=np.float32)
    _run_blocks((codes, offsets, table, n_features, indptr, indices, data), bounds, True, n_threads)
    if indptr[-1] < np.iinfo(np.int32).max:
        indptr = indptr.astype(np.int32)
    matrix = sp.csr_matrix((data, indices, indptr), shape=(n, n_features), copy=False)
    matrix.has_sorted_indices = True
    return matrix
