"""Arrays and DataFrames -> PNG figures. No JAX here; figures are built without pyplot's global state."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bindvae.io import atomic_write

ACCESSIBILITY_COLOURS = ("#6baed6", "#fd8d3c")


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 110) -> None:
    """Save a figure as PNG atomically (temporary file in the same folder, then rename).

    Args:
        fig: the figure.
        path: destination ``.png``.
        dpi: resolution.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda handle: fig.savefig(handle, dpi=dpi, bbox_inches="tight", format="png"))


def logo_figure(pwm: np.ndarray, title: str = "") -> Figure:
    """Sequence logo (information content, bits) of a PWM.

    Args:
        pwm: ``[width, 4]`` probabilities in A, C, G, T order.
        title: figure title.

    Returns:
        The figure.
    """
    import logomaker  # Deferred: imports pyplot.

    p = np.clip(np.asarray(pwm, dtype=np.float64), 1e-9, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    bits = p * (2.0 + np.sum(p * np.log2(p), axis=1, keepdims=True))
    frame = pd.DataFrame(bits, columns=list("ACGT"))
    fig = Figure(figsize=(max(2.5, 0.35 * len(frame) + 0.8), 1.6))
    ax = fig.add_subplot()
    logomaker.Logo(frame, ax=ax, color_scheme="classic")
    ax.set_ylim(0, 2)
    ax.set_ylabel("bits")
    ax.set_xticks([])
    ax.spines[["top", "right"]].set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def heatmap_figure(matrix: pd.DataFrame, title: str, xlabel: str, ylabel: str, cmap: str = "viridis",
                   max_labels: int = 60) -> Figure:
    """Heatmap of a DataFrame (rows x columns), labels shown when there are few enough.

    Args:
        matrix: values; index and columns label the axes.
        title: figure title.
        xlabel: x-axis label.
        ylabel: y-axis label.
        cmap: matplotlib colour map.
        max_labels: tick labels are drawn only up to this many per axis.

    Returns:
        The figure.
    """
    n_rows, n_cols = matrix.shape
    fig = Figure(figsize=(min(18, 3 + 0.12 * n_cols), min(14, 2 + 0.18 * n_rows)))
    ax = fig.add_subplot()
    image = ax.imshow(matrix.to_numpy(dtype=float), aspect="auto", interpolation="nearest", cmap=cmap)
    fig.colorbar(image, ax=ax, shrink=0.8)
    if n_cols <= max_labels:
        ax.set_xticks(range(n_cols), [str(c) for c in matrix.columns], rotation=90, fontsize=6)
    else:
        ax.set_xticks([])
    if n_rows <= max_labels:
        ax.set_yticks(range(n_rows), [str(r) for r in matrix.index], fontsize=6)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return fig


def probe_heatmap_matrix(scores: np.ndarray, labels, topic_names: list[str]) -> pd.DataFrame:
    """Mean latent score of each TF's probes per topic (the probe-latent heatmap's values).

    Args:
        scores: ``[n_probes, M]``.
        labels: ``n_probes`` TF names.
        topic_names: ``M`` names.

    Returns:
        ``[n_tfs, M]`` DataFrame.
    """
    frame = pd.DataFrame(np.asarray(scores), columns=topic_names)
    frame["tf"] = [str(x) for x in labels]
    return frame.groupby("tf", sort=False).mean()


def accessibility_figure(table: pd.DataFrame, labels: list[str], title: str = "Accessibility per TF") -> Figure:
    """Overlaid bars of accessibility scores for one or two runs (the paper's Fig. 3d).

    Args:
        table: column ``tf`` and one value column per label (see ``peaks.compare_accessibility``).
        labels: the value columns to draw (one or two), the first drawn underneath.
        title: figure title.

    Returns:
        The figure.
    """
    fig = Figure(figsize=(max(4, 0.25 * len(table) + 1.5), 3.2))
    ax = fig.add_subplot()
    x = np.arange(len(table))
    for label, colour in zip(labels, ACCESSIBILITY_COLOURS):
        ax.bar(x, table[label].to_numpy(dtype=float), width=0.85, color=colour, alpha=0.6, label=label)
    ax.set_xticks(x, table["tf"].tolist(), rotation=90, fontsize=7)
    ax.set_ylabel("accessibility score")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return fig
