"""Numba kernels of the gapped k-mer featurizer (see :mod:`bindvae.features.kmers` for the counting rule).

Compiled once and cached on disk (``cache=True``); ``nogil=True`` so that plain Python threads run
blocks of sequences in parallel.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _radix_sort(values, n, scratch, histogram):
    """Sorts values[:n] (non-negative int32 < 2**18) in place: two 9-bit LSD passes.

    Several times faster than a comparison sort on the ~3,000 ids of a 200 bp peak.
    """
    src, dst = values, scratch
    for shift in (0, 9):
        histogram[:] = 0
        for j in range(n):
            histogram[((src[j] >> shift) & 511) + 1] += 1
        for b in range(511):
            histogram[b + 1] += histogram[b]
        for j in range(n):
            bucket = (src[j] >> shift) & 511
            dst[histogram[bucket]] = src[j]
            histogram[bucket] += 1
        src, dst = dst, src


@numba.njit(cache=True, nogil=True)
def count_block(codes, offsets, table, first, last, counts, indptr, indices, data, fill):
    """Counts the gapped k-mers of sequences ``first .. last - 1``.

    Args:
        codes: [total_bases] int8 base codes (A=0 C=1 G=2 T=3, anything else 4) of all sequences.
        offsets: [n + 1] int64 start of each sequence in ``codes``.
        table: [4**8, width] int32 distinct feature columns of each window code, -1 padded.
        first, last: the block of sequences to count.
        counts: [n_features] zeros, left zeroed. Pass 1 only flags features, so uint8 will do;
            pass 2 counts, so its dtype must hold the largest count (the number of windows). The
            narrowest dtype keeps this scratch array in cache, which is most of the speed.
        indptr: [n + 1] int64. Pass 1 (``fill=False``) writes row i's nnz to ``indptr[i + 1]``;
            pass 2 reads the row starts from it.
        indices, data: [nnz] int32 / float32 outputs of pass 2 (rows' columns sorted ascending).
        fill: False for pass 1, True for pass 2.
    """
    n_features = counts.shape[0]
    touched = np.empty(n_features, dtype=np.int32)
    scratch = np.empty(n_features, dtype=np.int32)
    histogram = np.empty(513, dtype=np.int64)
    width = table.shape[1]
    for i in range(first, last):
        n_touched = 0
        code = 0
        run = 0  # consecutive valid bases ending here
        for pos in range(offsets[i], offsets[i + 1]):
            base = codes[pos]
            if base > 3:
                run = 0
                continue
            code = ((code << 2) | base) & 0xFFFF
            run += 1
            if run < 8:
                continue
            for v in range(width):
                col = table[code, v]
                if col < 0:
                    break
                if counts[col] == 0:
                    touched[n_touched] = col
                    n_touched += 1
                    counts[col] = 1
                elif fill:
                    counts[col] += 1
        if fill:
            _radix_sort(touched, n_touched, scratch, histogram)
            start = indptr[i]
            for j in range(n_touched):
                indices[start + j] = touched[j]
                data[start + j] = counts[touched[j]]
        else:
            indptr[i + 1] = n_touched
        for j in range(n_touched):
            counts[touched[j]] = 0
