"""Project labelled peak sets through a saved run and write tables and figures (``experiments.project``).

Reads the run's checkpoint only (:func:`bindvae.infer.load_model`); the method is in
:mod:`bindvae.analysis.projection`. The model and every set are read and checked before the output
folder is created, so bad input writes nothing.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bindvae import plotting
from bindvae.analysis import other_analyses, projection
from bindvae.analysis.runs_pipeline import plotting_colours
from bindvae.analysis.topics import topic_name
from bindvae.errors import ConfigError
from bindvae.infer import SCORE_KINDS, latent_scores, load_model
from bindvae.io import check_writable_dir, write_text_atomic

logger = logging.getLogger(__name__)

BOX_COLUMNS = 5  # panels per row of the box plots


def _write_tsv(frame: pd.DataFrame, path: Path, note: str = "") -> None:
    write_text_atomic(path, (f"# {note}\n" if note else "") + frame.to_csv(sep="\t", index=False, float_format="%.6g"))


def umap_figure(coords: np.ndarray, labels: list[str]) -> Figure:
    """The UMAP coloured by set (Fig. 4a)."""
    fig = Figure(figsize=(7, 5.5))
    ax = fig.add_subplot()
    names = list(dict.fromkeys(labels))
    labels = np.asarray(labels)
    size = float(np.clip(3000 / max(len(labels), 1), 1, 12))
    for colour, name in zip(plotting_colours(len(names)), names):
        own = labels == name
        ax.scatter(coords[own, 0], coords[own, 1], s=size, color=colour, alpha=0.6, edgecolors="none",
                   label=f"{name} ({int(own.sum())})")
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")
    ax.set_title("Peaks in the latent space (UMAP of topic scores)")
    ax.legend(fontsize=7, markerscale=max(1.0, 12 / size), loc="center left", bbox_to_anchor=(1.0, 0.5),
              title="set (peaks)", title_fontsize=7)
    return fig


def best_topic_figure(scores: np.ndarray, labels: list[str], auroc: pd.DataFrame, kind: str) -> Figure:
    """Per set, its best topic's score: the set's peaks against all other sets' peaks (Fig. 4b)."""
    best = auroc[auroc["best"]]
    n = len(best)
    cols = min(BOX_COLUMNS, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(2.6 * cols, 2.6 * rows))
    labels = np.asarray(labels)
    for k, row in enumerate(best.itertuples()):
        ax = fig.add_subplot(rows, cols, k + 1)
        own = labels == row.set
        values = scores[:, int(row.topic)]
        ax.boxplot([values[own], values[~own]], showfliers=False)
        ax.set_xticks([1, 2], [row.set, "other sets"], fontsize=7)
        ax.set_title(f"{row.set}: {topic_name(int(row.topic))}\nAUROC {row.auroc:.2f}, p {row.p_value:.1e}", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        if k % cols == 0:
            ax.set_ylabel(f"topic score ({kind})", fontsize=8)
    fig.tight_layout()
    return fig


def project_sets(run_dir: str | os.PathLike, sets: dict[str, str], genome: str | None = None, span: int = 200,
                 max_per_set: int | None = None, seed: int = 0, kind: str = "mean", umap: bool = True,
                 n_neighbors: int = 15) -> Path:
    """Score labelled peak sets with a saved model and write the projection.

    Args:
        run_dir: the run directory (holding ``checkpoints/``).
        sets: set name -> FASTA (or BED/narrowPeak with ``genome``); two or more.
        genome: genome FASTA for peak files.
        span: window around each peak's summit (peak files).
        max_per_set: subsample larger sets to this many peaks (recorded in ``sets.tsv``).
        seed: seed of the subsampling and of UMAP.
        kind: latent score (:func:`bindvae.infer.latent_scores`): ``mean`` (topic proportions),
            ``concentration``, ``counts`` (each topic's expected k-mer counts; ranks a set's peaks best
            on planted peaks, BENCHMARKS.md) or ``decoder`` (the scan).
        umap: compute the UMAP (False: ``umap_x``/``umap_y`` are left empty and no ``umap.png``).
        n_neighbors: UMAP's neighbourhood size.

    Returns:
        ``<run_dir>/analysis/projection`` holding ``projection.tsv``, ``set_topic_auroc.tsv``,
        ``sets.tsv``, ``skipped.tsv``, ``umap.png`` and ``best_topic_boxplots.png``.

    Raises:
        ConfigError, InputError: bad options, no checkpoint, unreadable sets.
    """
    if kind not in SCORE_KINDS:
        raise ConfigError("kind", f"must be one of {SCORE_KINDS}, got {kind!r}")
    if len(sets) < 2:
        raise ConfigError("sets", "a projection needs at least two sets")
    if span < 1:
        raise ConfigError("span", f"must be at least 1 bp, got {span}")
    if n_neighbors < 2:
        raise ConfigError("n_neighbors", f"must be at least 2, got {n_neighbors}")
    model = load_model(run_dir)
    peaks = projection.read_sets(sets, genome, span, max_per_set, seed)
    out = check_writable_dir(Path(run_dir) / "analysis" / "projection", "run_dir")
    start = time.perf_counter()
    scores = latent_scores(model, peaks.sequences, kind=kind)
    auroc = projection.set_topic_auroc(scores, peaks.sets)
    logger.info("%d peaks scored and tested in %.1f s", len(scores), time.perf_counter() - start)
    start = time.perf_counter()
    coords = projection.umap_embedding(scores, seed, n_neighbors) if umap else np.full((len(scores), 2), np.nan)
    if umap:
        logger.info("UMAP of %d peaks in %.1f s", len(scores), time.perf_counter() - start)
    table = pd.concat(
        [
            pd.DataFrame({"peak": peaks.ids, "set": peaks.sets, "umap_x": coords[:, 0], "umap_y": coords[:, 1]}),
            pd.DataFrame(scores, columns=[topic_name(m) for m in range(scores.shape[1])]),
        ],
        axis=1,
    )
    note = f"latent score: {kind}; checkpoint step {model.step}"
    _write_tsv(table, out / "projection.tsv", note + (f"; UMAP seed {seed}, n_neighbors {n_neighbors}" if umap else ""))
    _write_tsv(auroc, out / "set_topic_auroc.tsv", note + "; auroc: the set's peaks against all other sets' peaks; "
                                                          "p_value: one-sided Mann-Whitney (the set scores higher)")
    _write_tsv(peaks.summary, out / "sets.tsv", f"max_per_set: {max_per_set or 'none'} (seed {seed})")
    _write_tsv(peaks.skipped, out / "skipped.tsv")
    if umap:
        plotting.save_figure(umap_figure(coords, peaks.sets), out / "umap.png")
    plotting.save_figure(best_topic_figure(scores, peaks.sets, auroc, kind), out / "best_topic_boxplots.png")
    other_analyses.refresh(out.parent)  # the run's report.html gains this section
    return out


def summary_text(folder: str | os.PathLike) -> str:
    """One line per set (its best topic, AUROC, p, peaks used) and what was left out."""
    folder = Path(folder)
    auroc = pd.read_csv(folder / "set_topic_auroc.tsv", sep="\t", comment="#")
    sets = pd.read_csv(folder / "sets.tsv", sep="\t", comment="#").set_index("set")
    lines = []
    for row in auroc[auroc["best"]].itertuples():
        info = sets.loc[row.set]
        note = f", {int(info.n_subsampled_out)} left out by max_per_set" if info.subsampled else ""
        lines.append(f"{row.set}: best {topic_name(int(row.topic))} AUROC {row.auroc:.3f} p {row.p_value:.2g} "
                     f"({int(info.n_used)} peaks{note})")
    lines += projection.closing_lines(folder)
    return "\n".join(lines) + "\n"
