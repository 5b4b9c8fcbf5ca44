"""Compare the topics of several saved runs and write tables and figures (``experiments.compare``).

Reads checkpoints only (:func:`bindvae.infer.load_model`); the method is in :mod:`bindvae.analysis.runs`.
Every input is loaded and checked before the output folder is created, so bad input writes nothing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bindvae import plotting
from bindvae.analysis import other_analyses
from bindvae.analysis import runs as runs_lib
from bindvae.errors import ConfigError
from bindvae.infer import load_model
from bindvae.io import check_writable_dir, write_text_atomic

logger = logging.getLogger(__name__)

ANNOTATE_RUNS = 12  # the reproducibility heatmap prints its values up to this many runs


def _method_line(min_similarity: float) -> str:
    return (f"similarity: Pearson correlation of the topics' centred log-ratio k-mer distributions "
            f"(clr(phi) = theta - row mean); pairs: Hungarian matching; matched: similarity >= {min_similarity:g}")


def _write_tsv(frame: pd.DataFrame, path: Path, note: str) -> None:
    write_text_atomic(path, f"# {note}\n" + frame.to_csv(sep="\t", index=False, float_format="%.6g"))


def load_runs(run_dirs: list[str], labels: list[str] | None = None) -> list[runs_lib.RunTopics]:
    """Load every run's checkpoint and check that they can be compared.

    Args:
        run_dirs: two or more run directories (holding ``checkpoints/``).
        labels: a name per run (default: the directories' names).

    Returns:
        The runs' topics, in input order.

    Raises:
        ConfigError: fewer than two runs, or a label count that does not fit.
        InputError: a run without a readable checkpoint, runs over different vocabularies, or
            duplicate labels.
    """
    if len(run_dirs) < 2:
        raise ConfigError("runs", f"a comparison needs at least two run directories, got {len(run_dirs)}")
    if labels and len(labels) != len(run_dirs):
        raise ConfigError("labels", f"{len(labels)} labels for {len(run_dirs)} runs")
    labels = list(labels) if labels else [Path(d).resolve().name for d in run_dirs]
    loaded = [runs_lib.run_topics(load_model(d), label) for d, label in zip(run_dirs, labels)]
    runs_lib.check_comparable(loaded)
    return loaded


def pca_figure(table: pd.DataFrame, explained: np.ndarray) -> Figure:
    """PC1 against PC2 of every topic, coloured by run (Fig. S6)."""
    fig = Figure(figsize=(6.5, 5))
    ax = fig.add_subplot()
    colours = plotting_colours(table["run"].nunique())
    for colour, (run, group) in zip(colours, table.groupby("run", sort=False)):
        ax.scatter(group["pc1"], group["pc2"] if "pc2" in group else np.zeros(len(group)), s=14, alpha=0.7,
                   color=colour, label=f"{run} ({len(group)})", edgecolors="none")
    ax.set_xlabel(f"PC1 ({100 * explained[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * explained[1]:.1f}% of variance)" if len(explained) > 1 else "")
    ax.set_title("Topics' k-mer distributions (centred log-ratios), PCA")
    ax.legend(fontsize=7, loc="best", markerscale=1.5, title="run (topics)", title_fontsize=7)
    return fig


def plotting_colours(n: int) -> list:
    """``n`` distinct colours (tab10, then tab20, then a continuous map)."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["viridis"](x) for x in np.linspace(0, 1, n)]


def reproducibility_figure(pairs: pd.DataFrame, matching: pd.DataFrame, labels: list[str],
                           min_similarity: float) -> Figure:
    """Left: share of the row run's topics reproduced in the column run. Right: paired similarities."""
    index = {label: k for k, label in enumerate(labels)}
    matrix = np.eye(len(labels))
    for row in pairs.itertuples():
        matrix[index[row.run_a], index[row.run_b]] = row.fraction_a
        matrix[index[row.run_b], index[row.run_a]] = row.fraction_b
    fig = Figure(figsize=(11, 4.5))
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    image = left.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
    fig.colorbar(image, ax=left, shrink=0.8)
    ticks = labels if len(labels) <= 40 else []
    left.set_xticks(range(len(ticks)), ticks, rotation=90, fontsize=7)
    left.set_yticks(range(len(ticks)), ticks, fontsize=7)
    if len(labels) <= ANNOTATE_RUNS:
        for (r, c), value in np.ndenumerate(matrix):
            left.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=7,
                      color="black" if value > 0.6 else "white")
    left.set_title("share of the row run's topics reproduced")
    paired = matching["similarity"].dropna()
    right.hist(paired, bins=np.linspace(-1, 1, 41), color="#6baed6")
    right.axvline(min_similarity, color="#d62728", linestyle="--", label=f"threshold {min_similarity:g}")
    right.set_xlabel("similarity of Hungarian-paired topics (Pearson, CLR)")
    right.set_ylabel("topic pairs")
    right.legend(fontsize=8)
    right.set_title("all pairs of runs")
    return fig


def compare_runs(run_dirs: list[str], labels: list[str] | None = None, out: str | os.PathLike | None = None,
                 min_similarity: float = runs_lib.MIN_SIMILARITY) -> Path:
    """Compare several runs' topics and write the tables and figures.

    Args:
        run_dirs: two or more run directories.
        labels: a name per run (default: the directories' names).
        out: output folder (default ``<first run>/analysis/compare``).
        min_similarity: threshold of a reproduced topic, in [-1, 1].

    Returns:
        The output folder, holding ``theta_pca.tsv``/``.png``, ``topic_matching.tsv``,
        ``reproducibility.tsv``/``.png`` and ``seed_spread.tsv``.

    Raises:
        ConfigError, InputError: see :func:`load_runs`; an unwritable ``out``; a threshold out of range.
    """
    if not -1.0 <= min_similarity <= 1.0:
        raise ConfigError("min_similarity", f"must be in [-1, 1], got {min_similarity}")
    runs = load_runs(list(run_dirs), labels)
    folder = check_writable_dir(Path(out) if out else Path(run_dirs[0]) / "analysis" / "compare", "out")
    table, explained = runs_lib.topic_pca(runs)
    share = ", ".join(f"PC{k + 1} {100 * v:.1f}%" for k, v in enumerate(explained))
    _write_tsv(table, folder / "theta_pca.tsv", f"PCA of the topics' centred log-ratio k-mer distributions; "
                                                f"explained variance: {share}")
    plotting.save_figure(pca_figure(table, explained), folder / "theta_pca.png")
    matching, pairs, spread = runs_lib.compare_topics(runs, min_similarity)
    note = _method_line(min_similarity)
    _write_tsv(matching, folder / "topic_matching.tsv", note + "; topic -1: no partner (runs with different M)")
    _write_tsv(pairs, folder / "reproducibility.tsv", note + "; fraction_a: n_matched / n_topics_a")
    _write_tsv(spread, folder / "seed_spread.tsv", note + "; groups: runs whose configs differ only in train.seed "
                                                          "(and bookkeeping keys); fractions over their pairs")
    plotting.save_figure(reproducibility_figure(pairs, matching, [r.label for r in runs], min_similarity),
                         folder / "reproducibility.png")
    other_analyses.refresh(folder.parent)  # the first run's report.html gains this section
    return folder


def summary_text(folder: str | os.PathLike) -> str:
    """A few lines on a comparison: reproducibility per pair of runs and the seed spread."""
    folder = Path(folder)
    pairs = pd.read_csv(folder / "reproducibility.tsv", sep="\t", comment="#")
    spread = pd.read_csv(folder / "seed_spread.tsv", sep="\t", comment="#")
    lines = [f"{row.run_a} vs {row.run_b}: {row.n_matched} topics reproduced "
             f"({row.fraction_a:.2f} of {row.n_topics_a}, {row.fraction_b:.2f} of {row.n_topics_b})"
             for row in pairs.itertuples()]
    lines += [f"seed replicates {row.runs}: reproduced share {row.fraction_mean:.2f} +/- {row.fraction_sd:.2f} "
              f"(min {row.fraction_min:.2f}, max {row.fraction_max:.2f})" for row in spread.itertuples()]
    lines.append(f"Tables and figures: {folder}")
    return "\n".join(lines) + "\n"
