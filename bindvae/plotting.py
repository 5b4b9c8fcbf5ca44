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


def _bits(pwm: np.ndarray) -> pd.DataFrame:
    """Information content per base (bits) of a ``[width, 4]`` PWM; all-zero rows stay zero (padding)."""
    p = np.asarray(pwm, dtype=np.float64)
    pad = p.sum(axis=1) <= 0
    p = np.clip(p, 1e-9, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    bits = p * (2.0 + np.sum(p * np.log2(p), axis=1, keepdims=True))
    bits[pad] = 0.0
    return pd.DataFrame(bits, columns=list("ACGT"))


def _draw_logo(ax, frame: pd.DataFrame, title: str) -> None:
    import logomaker  # Deferred: imports pyplot.

    logomaker.Logo(frame, ax=ax, color_scheme="classic")
    ax.set_ylim(0, 2)
    ax.set_ylabel("bits")
    ax.set_xticks([])
    ax.spines[["top", "right"]].set_visible(False)
    if title:
        ax.set_title(title, fontsize=10, loc="left")


def logo_figure(pwm: np.ndarray, title: str = "") -> Figure:
    """Sequence logo (information content, bits) of a PWM.

    Args:
        pwm: ``[width, 4]`` probabilities in A, C, G, T order.
        title: figure title.

    Returns:
        The figure (0.5 inch per position, so letters stay readable in the report).
    """
    frame = _bits(pwm)
    fig = Figure(figsize=(max(3.0, 0.5 * len(frame) + 1.0), 2.0))
    _draw_logo(fig.add_subplot(), frame, title)
    return fig


def aligned_pwms(query: np.ndarray, target: np.ndarray, offset: int, strand: str) -> tuple[np.ndarray, np.ndarray]:
    """A learned motif and its database match on one column grid, the match in the matching orientation.

    Args:
        query: ``[width_q, 4]`` the learned motif.
        target: ``[width_t, 4]`` the database motif as stored.
        offset: query column aligned to the (oriented) target's column 0
            (``motif_matches.tsv``'s ``offset``; may be negative).
        strand: ``+``, or ``-`` when the match is the target's reverse complement.

    Returns:
        ``(query, target)``, both ``[span, 4]``, zero rows where a motif has no column.
    """
    query, target = np.asarray(query, np.float64), np.asarray(target, np.float64)
    if strand == "-":
        target = target[::-1, ::-1]  # reverse complement: positions reversed, A<->T and C<->G
    start = min(0, int(offset))
    span = max(len(query), int(offset) + len(target)) - start
    out_q, out_t = np.zeros((span, 4)), np.zeros((span, 4))
    out_q[-start: -start + len(query)] = query
    out_t[int(offset) - start: int(offset) - start + len(target)] = target
    return out_q, out_t


def paired_logo_figure(query: np.ndarray, target: np.ndarray, offset: int, strand: str, query_title: str,
                       target_title: str) -> Figure:
    """The learned logo above its database match, aligned column by column (see :func:`aligned_pwms`).

    Returns:
        The figure.
    """
    top, bottom = aligned_pwms(query, target, offset, strand)
    fig = Figure(figsize=(max(3.0, 0.5 * len(top) + 1.0), 3.6))
    axes = fig.subplots(2, 1, sharex=True)
    _draw_logo(axes[0], _bits(top), query_title)
    _draw_logo(axes[1], _bits(bottom), target_title)
    fig.subplots_adjust(hspace=0.45)
    return fig


def loss_curve_figure(curve: pd.DataFrame, title: str = "Training") -> Figure:
    """ELBO (train and validation) and perplexity against the step.

    Args:
        curve: ``step`` and any of ``elbo``, ``val_elbo``, ``perplexity``, ``val_perplexity``.
        title: figure title.

    Returns:
        The figure (two panels).
    """
    fig = Figure(figsize=(9, 3.2))
    axes = fig.subplots(1, 2)
    panels = [(axes[0], [("elbo", "train"), ("val_elbo", "validation")], "ELBO (per sequence)"),
              (axes[1], [("perplexity", "train"), ("val_perplexity", "validation")], "perplexity")]
    for ax, series, ylabel in panels:
        for key, label in series:
            if key in curve and curve[key].notna().any():
                part = curve[["step", key]].dropna()
                ax.plot(part["step"], part[key], marker="o" if label == "validation" else None, markersize=3,
                        label=label, linewidth=1.2)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.spines[["top", "right"]].set_visible(False)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


HEATMAP_SCALINGS = ("none", "row", "clip")
CLIP_PERCENTILE = 99.0


def scaled_heatmap_values(matrix: pd.DataFrame, scaling: str = "none") -> tuple[np.ndarray, float, float, str]:
    """The colours of a heatmap, so that one extreme row (a poly-A topic) cannot flatten the rest.

    Args:
        matrix: values ``[n_rows, n_cols]``.
        scaling: ``none``; ``row``: each row divided by its largest value (1 = the row's maximum);
            ``clip``: the colour scale runs from the 100 - :data:`CLIP_PERCENTILE` to the
            :data:`CLIP_PERCENTILE` percentile of all values, values beyond drawn at the ends.

    Returns:
        ``(values, vmin, vmax, colour bar label)``.
    """
    values = matrix.to_numpy(dtype=float)
    if scaling == "row":
        peak = np.nanmax(np.abs(values), axis=1, keepdims=True) if values.size else np.ones((len(values), 1))
        values = np.divide(values, peak, out=np.zeros_like(values), where=peak > 0)
        return values, min(0.0, float(np.nanmin(values, initial=0.0))), 1.0, "scaled per row: 1 = the row's maximum"
    if scaling == "clip":
        low = float(np.nanpercentile(values, 100 - CLIP_PERCENTILE)) if values.size else 0.0
        high = float(np.nanpercentile(values, CLIP_PERCENTILE)) if values.size else 1.0
        return (np.clip(values, low, high), low, high,
                f"clipped to the {100 - CLIP_PERCENTILE:g}th-{CLIP_PERCENTILE:g}th percentile")
    if scaling != "none":
        raise ValueError(f"scaling must be one of {HEATMAP_SCALINGS}, got {scaling!r}")
    return values, float(np.nanmin(values, initial=0.0)), float(np.nanmax(values, initial=1.0)), "value"


def heatmap_figure(matrix: pd.DataFrame, title: str, xlabel: str, ylabel: str, cmap: str = "viridis",
                   max_labels: int = 250, scaling: str = "none") -> Figure:
    """Heatmap of a DataFrame (rows x columns), labels shown when there are few enough.

    Args:
        matrix: values; index and columns label the axes.
        title: figure title.
        xlabel: x-axis label.
        ylabel: y-axis label.
        cmap: matplotlib colour map.
        max_labels: tick labels are drawn only up to this many per axis.
        scaling: colour scaling (:func:`scaled_heatmap_values`), named on the colour bar.

    Returns:
        The figure.
    """
    n_rows, n_cols = matrix.shape
    values, vmin, vmax, label = scaled_heatmap_values(matrix, scaling)
    fig = Figure(figsize=(min(30, 3 + 0.11 * n_cols), min(24, 2.2 + 0.2 * n_rows)))
    ax = fig.add_subplot()
    image = ax.imshow(values, aspect="auto", interpolation="nearest", cmap=cmap, vmin=vmin, vmax=vmax)
    fig.colorbar(image, ax=ax, shrink=0.8).set_label(label, fontsize=8)
    if n_cols <= max_labels:
        ax.set_xticks(range(n_cols), [str(c) for c in matrix.columns], rotation=90, fontsize=6, family="monospace")
    else:
        ax.set_xticks([])
    if n_rows <= max_labels:
        ax.set_yticks(range(n_rows), [str(r) for r in matrix.index], fontsize=7)
    ax.set_title(title if scaling == "none" else f"{title}\n(colour {label})", fontsize=10)
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
