"""Feature files: the project's .npz feature datasets and the reference BindVAE vocabulary / count formats.

A feature dataset is a CSR count matrix (rows = sequences, columns = the gapped 8-mer vocabulary of
:mod:`bindvae.features.kmers`) saved with the sequence names and the vocabulary's fingerprint, so a file is
never read against a vocabulary it was not counted with. The reference vocabulary is a pickled dict of
str to int; it is read by a restricted unpickler that can build nothing else.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from bindvae.errors import InputError
from bindvae.features.kmers import Vocabulary
from bindvae.io import atomic_write

logger = logging.getLogger(__name__)

FEATURES_FORMAT = "bindvae-features-v1"


def save_features(path: str | os.PathLike, X: sp.spmatrix, names: Sequence[str], vocab: Vocabulary) -> None:
    """Writes a feature dataset (.npz): CSR arrays, sequence names and the vocabulary fingerprint.

    The file appears atomically (written to a temporary name, then renamed).

    Args:
        path: output file; ``.npz`` is not appended.
        X: [n, len(vocab)] counts.
        names: ``n`` sequence names.
        vocab: the vocabulary that made ``X``.

    Raises:
        ValueError: shapes of ``X``, ``names`` and ``vocab`` disagree.
    """
    X = sp.csr_matrix(X)
    if X.shape[1] != len(vocab) or X.shape[0] != len(names):
        raise ValueError(f"X has shape {X.shape}, expected ({len(names)}, {len(vocab)})")
    arrays = {
        "format": np.array(FEATURES_FORMAT),
        "fingerprint": np.array(vocab.fingerprint),
        "shape": np.array(X.shape, dtype=np.int64),
        "indptr": X.indptr.astype(np.int64),
        "indices": X.indices.astype(np.int32),
        "data": X.data.astype(np.float32),
        "names": np.array([str(n) for n in names], dtype=str),
    }
    atomic_write(path, lambda handle: np.savez(handle, **arrays))


def load_features(
    path: str | os.PathLike, vocab: Vocabulary | None = None
) -> tuple[sp.csr_matrix, list[str], str]:
    """Reads a feature dataset written by :func:`save_features`.

    Args:
        path: the .npz file.
        vocab: when given, the file's fingerprint must match ``vocab.fingerprint``.

    Returns:
        (X [n, n_kmers] float32 CSR, n names, the file's vocabulary fingerprint).

    Raises:
        InputError: the file is missing, is not such a dataset, is truncated, or was made with a
            different vocabulary.
    """
    if not Path(path).is_file():
        raise InputError(path, "no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["format"]) != FEATURES_FORMAT:
                raise InputError(path, f"not a {FEATURES_FORMAT} dataset")
            fingerprint = str(npz["fingerprint"])
            shape = tuple(int(v) for v in npz["shape"])
            indptr, indices, data = npz["indptr"], npz["indices"], npz["data"]
            names = [str(n) for n in npz["names"]]
    except InputError:
        raise
    except KeyError as err:
        raise InputError(path, f"not a features dataset (missing array {err})") from None
    except Exception as err:  # zipfile, pickle and EOF errors all mean the same to the user
        raise InputError(path, f"not a readable features .npz file ({type(err).__name__}: {err})") from None
    if vocab is not None and fingerprint != vocab.fingerprint:
        raise InputError(
            path, f"made with vocabulary {fingerprint[:12]}..., not {vocab.fingerprint[:12]}... (re-featurize)"
        )
    if len(shape) != 2 or len(names) != shape[0] or len(indptr) != shape[0] + 1 or indptr[-1] != len(indices):
        raise InputError(path, "truncated or corrupt features dataset (array sizes disagree)")
    if len(data) != len(indices) or (len(indices) and (indices.min() < 0 or indices.max() >= shape[1])):
        raise InputError(path, "truncated or corrupt features dataset (bad column indices)")
    return sp.csr_matrix((data.astype(np.float32), indices, indptr), shape=shape), names, fingerprint


class _VocabularyUnpickler(pickle.Unpickler):
    """An unpickler for the reference vocabulary's .npy: it can build only what that file holds.

    A pickle calls whatever global it names; this one names a 0-d object ndarray (NumPy's
    ``_reconstruct``, ``ndarray``, ``dtype``; ``_codecs.encode`` for its byte strings; NumPy's
    ``scalar`` for integer ids stored as NumPy scalars) around a dict of str -> int. Every other
    global (``os.system``, ``builtins.eval``, ...) raises ``UnpicklingError`` instead of being called.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"the pickle asks for {module}.{name}, which a vocabulary never holds")
        return super().find_class(module, name)


def read_reference_vocabulary(path: str | os.PathLike) -> dict[str, int]:
    """Reads the reference vocabulary: a pickled dict {k-mer: id} in a .npy (``EMPTY`` at id 0).

    The pickle is read by :class:`_VocabularyUnpickler`, which can build nothing but NumPy's
    object array, dicts, strings and numbers: a file that asks for anything else (the way a
    malicious pickle runs code) is refused before any of it runs.

    Raises:
        InputError: the file is missing, is not such a dictionary, or its pickle asks for other objects.
    """
    if not Path(path).is_file():
        raise InputError(path, "no such file")
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(handle)
            if dtype != np.dtype(object) or shape != ():
                raise ValueError(f"a {dtype} array of shape {shape}, not a pickled dictionary")
            mapping = _VocabularyUnpickler(handle).load().item()
    except pickle.UnpicklingError as err:
        raise InputError(path, f"refused: {err}") from None
    except Exception as err:
        raise InputError(path, f"not a reference vocabulary .npy ({type(err).__name__}: {err})") from None
    if not isinstance(mapping, dict) or not all(isinstance(k, str) for k in mapping):
        raise InputError(path, "not a reference vocabulary (expected a dict of k-mer -> id)")
    ids = {}
    for kmer, value in mapping.items():
        # Ids index an array of size max id + 1: refuse what is not a small non-negative integer.
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not 0 <= value < 2**31:
            raise InputError(
                path, f"not a reference vocabulary: id of {kmer!r} is {value!r}, not a non-negative integer"
            )
        ids[kmer] = int(value)
    if len(set(ids.values())) < len(ids):
        raise InputError(path, "not a reference vocabulary: two k-mers share an id")
    return ids


def write_reference_vocabulary(path: str | os.PathLike, vocab: Vocabulary) -> None:
    """Writes ``vocab`` in the reference format: {``EMPTY``: 0, kmers[j]: j + 1} pickled in a .npy."""
    mapping = {"EMPTY": 0, **{kmer: j + 1 for j, kmer in enumerate(vocab.kmers)}}
    atomic_write(path, lambda handle: np.save(handle, np.array(mapping, dtype=object), allow_pickle=True))


def _reference_id_to_column(mapping: dict[str, int], vocab: Vocabulary) -> np.ndarray:
    """[max id + 1] int64: our column of each reference id, -1 for EMPTY or unknown strings."""
    kmers = list(mapping)
    ids = np.fromiter(mapping.values(), dtype=np.int64, count=len(kmers))
    out = np.full(int(ids.max(initial=0)) + 1, -1, dtype=np.int64)
    out[ids] = vocab.columns(kmers)
    return out


def read_reference_features(
    features_path: str | os.PathLike, reference_vocabulary_path: str | os.PathLike, vocab: Vocabulary | None = None
) -> sp.csr_matrix:
    """Reads a reference feature file into our column order, mapping ids through their k-mer strings.

    Args:
        features_path: one line per sequence, space-separated 1-based reference ids, a repeated
            id meaning a count above one (the reference's training-file format).
        reference_vocabulary_path: the reference vocabulary .npy those ids index.
        vocab: our vocabulary (default: :meth:`Vocabulary.gapped8`).

    Returns:
        [n_lines, len(vocab)] float32 CSR.

    Raises:
        InputError: a file is missing, or a line holds something other than known k-mer ids
            (the message names the file and line).
    """
    vocab = vocab or Vocabulary.gapped8()
    id_to_column = _reference_id_to_column(read_reference_vocabulary(reference_vocabulary_path), vocab)
    if not Path(features_path).is_file():
        raise InputError(features_path, "no such file")
    rows, cols = [], []
    with open(features_path, encoding="ascii", errors="replace") as handle:
        for line_no, line in enumerate(handle, start=1):
            try:
                ids = np.array(line.split(), dtype=np.int64)
            except ValueError:
                raise InputError(features_path, "expected space-separated integer ids", line_no) from None
            bad = (ids < 1) | (ids >= len(id_to_column))
            mapped = id_to_column[np.where(bad, 0, ids)]
            if bad.any() or (mapped < 0).any():
                first = int(ids[bad | (mapped < 0)][0])
                raise InputError(features_path, f"id {first} is not a k-mer of the reference vocabulary", line_no)
            rows.append(np.full(len(mapped), line_no - 1, dtype=np.int64))
            cols.append(mapped)
    n = len(rows)
    row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    col = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    X = sp.coo_matrix((np.ones(len(row), np.float32), (row, col)), shape=(n, len(vocab))).tocsr()
    X.sum_duplicates()
    return X


def write_reference_features(
    path: str | os.PathLike,
    X: sp.spmatrix,
    vocab: Vocabulary,
    reference_vocabulary: dict[str, int] | None = None,
) -> None:
    """Writes counts in the reference training-file format (one line per row, ids ascending).

    Args:
        path: output text file (written atomically).
        X: [n, len(vocab)] integer-valued counts.
        vocab: the vocabulary of ``X``'s columns.
        reference_vocabulary: {k-mer: id} to write ids of (e.g. from
            :func:`read_reference_vocabulary`); default: our own order, ``column + 1``, matching
            :func:`write_reference_vocabulary`.

    Raises:
        ValueError: ``X`` has non-integer or negative counts, or a k-mer is missing from
            ``reference_vocabulary``.
    """
    X = sp.csr_matrix(X)
    X.sum_duplicates()
    if X.shape[1] != len(vocab):
        raise ValueError(f"X has {X.shape[1]} columns, vocabulary has {len(vocab)}")
    if X.nnz and (np.any(X.data < 0) or np.any(X.data != np.round(X.data))):
        raise ValueError("reference feature files hold non-negative integer counts only")
    if reference_vocabulary is None:
        column_to_id = np.arange(1, len(vocab) + 1, dtype=np.int64)
    else:
        column_to_id = np.full(len(vocab), -1, dtype=np.int64)
        id_to_column = _reference_id_to_column(reference_vocabulary, vocab)
        known = np.flatnonzero(id_to_column >= 0)
        column_to_id[id_to_column[known]] = known
        if (column_to_id < 0).any():
            missing = vocab.kmers[int(np.flatnonzero(column_to_id < 0)[0])]
            raise ValueError(f"k-mer {missing} (either orientation) is not in the reference vocabulary")

    def write(handle) -> None:
        for i in range(X.shape[0]):
            lo, hi = X.indptr[i], X.indptr[i + 1]
            ids = np.repeat(column_to_id[X.indices[lo:hi]], X.data[lo:hi].astype(np.int64))
            handle.write((" ".join(map(str, np.sort(ids).tolist())) + "\n").encode("ascii"))

    atomic_write(path, write)
