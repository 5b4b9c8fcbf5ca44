"""Numerical checks and small decoder problems shared by the gradient and decoder tests."""

from __future__ import annotations

from typing import Callable

import numpy as np


def central_differences(value: Callable[[np.ndarray], float], array: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """d value / d array by central differences, one element at a time (float64 inputs)."""
    grad = np.zeros_like(array, dtype=np.float64)
    for idx in np.ndindex(array.shape):
        up, down = array.copy(), array.copy()
        up[idx] += h
        down[idx] -= h
        grad[idx] = (value(up) - value(down)) / (2 * h)
    return grad


def decoder_problem(seed=0, batch=5, n_kmers=30, n_topics=4, width=9):
    """A random padded batch for the decoder: (z [B, M], theta [M, D], indices, counts [B, K], dense [B, D]).

    Float64; each row has ``width`` distinct k-mers, the last two of them padding (count 0).
    """
    rng = np.random.default_rng(seed)
    z = rng.dirichlet(np.ones(n_topics), batch)
    theta = rng.normal(size=(n_topics, n_kmers))
    indices = np.stack([rng.choice(n_kmers, width, replace=False) for _ in range(batch)]).astype(np.int32)
    counts = rng.integers(1, 4, (batch, width)).astype(np.float64)
    counts[:, width - 2:] = 0.0  # padding
    dense = np.zeros((batch, n_kmers))
    for b in range(batch):
        np.add.at(dense[b], indices[b], counts[b])
    return z, theta, indices, counts, dense
