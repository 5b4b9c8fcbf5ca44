"""Numerical checks shared by the gradient tests."""

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
