"""Accessible peaks labelled by ChIP-seq overlap through a saved run (``experiments.project peaks= chip=``).

Reads the run's checkpoint only; the method is in :mod:`bindvae.analysis.chip_overlap`. The model,
the peaks, the genome, every ChIP set and the naming inputs are read and checked before the output
folder is created, so bad input writes nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bindvae import plotting
from bindvae.analysis import chip_overlap, evidence, naming, other_analyses, pipeline, projection
from bindvae.analysis.topics import topic_name
from bindvae.errors import ConfigError, InputError
from bindvae.infer import KINDS, latent_scores, load_model
from bindvae.io import check_writable_dir, write_text_atomic

logger = logging.getLogger(__name__)

BOX_COLUMNS = 5  # panels per row of the box plots
OUTPUT_DIR = "chip_overlap"


@dataclasses.dataclass
class AccessiblePeaks:
    """Accessible peaks that are scored: names, windows (what the model reads) and sequences."""

    ids: list[str]
    windows: chip_overlap.Windows
    sequences: list[str]
    skipped: pd.DataFrame


def read_accessible(path: str, genome: str, span: int = 200) -> AccessiblePeaks:
    """The ``span`` bp window around each peak's summit, cut from the genome as for training.

    Peaks the genome cannot give and windows without an 8 bp A/C/G/T window are listed in
    ``skipped`` with the reason, never dropped silently.

    Raises:
        InputError: unreadable files, or no usable peak.
    """
    from bindvae.features.sequences import read_intervals, read_peaks

    records = read_peaks(path, genome, span=span)
    intervals = read_intervals(path)
    summits = dict(zip(intervals["line"], intervals["summit"]))
    chroms = dict(zip(intervals["line"], intervals["chrom"]))
    skipped = [{"peak": s.name, "reason": s.reason, "where": s.where} for s in records.skipped]
    keep = []
    for i, seq in enumerate(records.sequences):
        if projection._VALID_WINDOW.search(seq):
            keep.append(i)
        else:
            skipped.append({"peak": records.names[i], "reason": projection.NO_WINDOW, "where": records.where(i)})
    if not keep:
        raise InputError(path, "no peak with an 8 bp window of A/C/G/T")
    starts = np.array([summits[records.lines[i]] - span // 2 for i in keep], dtype=np.int64)
    windows = chip_overlap.Windows(np.array([chroms[records.lines[i]] for i in keep], dtype=object), starts,
                                   starts + span)
    return AccessiblePeaks([records.names[i] for i in keep], windows, [records.sequences[i] for i in keep],
                           pd.DataFrame(skipped, columns=["peak", "reason", "where"]))


def _write_tsv(frame: pd.DataFrame, path: Path, note: str = "") -> None:
    write_text_atomic(path, (f"# {note}\n" if note else "") + frame.to_csv(sep="\t", index=False, float_format="%.6g"))


def _blocks(rows: pd.DataFrame):
    """(tf, first row, last row + 1) of each block of the heatmap, in order."""
    for tf, group in rows.groupby("tf", sort=False):
        yield tf, int(group["row"].min()), int(group["row"].max()) + 1


def _block_axes(ax, rows: pd.DataFrame) -> None:
    ticks, names = [], []
    for tf, lo, hi in _blocks(rows):
        ax.axhline(lo - 0.5, color="black", linewidth=0.6)
        ticks.append((lo + hi - 1) / 2)
        names.append(f"{tf} ({hi - lo})")
    ax.set_yticks(ticks, names, fontsize=7)
    ax.set_ylabel("peaks overlapping each TF's ChIP set, by its topic's score")


def clr_heatmap_figure(values: np.ndarray, rows: pd.DataFrame, columns: list[str]) -> Figure:
    """CLR of the mapped topics' scores, peaks in blocks per TF (Fig. 4c)."""
    fig = Figure(figsize=(min(16, 3.5 + 0.45 * len(columns)), 8))
    ax = fig.add_subplot()
    limit = float(np.nanmax(np.abs(values))) if values.size else 1.0
    image = ax.imshow(values, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit)
    fig.colorbar(image, ax=ax, shrink=0.8, label="CLR of topic score")
    ax.set_xticks(range(len(columns)), columns, rotation=90, fontsize=7)
    _block_axes(ax, rows)
    ax.set_title("Accessible peaks by mapped TF: CLR of topic scores", fontsize=9)
    fig.tight_layout()
    return fig


def chip_labels_figure(labels: np.ndarray, rows: pd.DataFrame, columns: list[str]) -> Figure:
    """The ChIP labels of the heatmap's rows, same order (Fig. 4e, Fig. S14)."""
    fig = Figure(figsize=(min(16, 3.5 + 0.45 * len(columns)), 8))
    ax = fig.add_subplot()
    ax.imshow(labels.astype(float), aspect="auto", cmap="Greys", vmin=0, vmax=1)
    ax.set_xticks(range(len(columns)), columns, rotation=90, fontsize=7)
    _block_axes(ax, rows)
    ax.set_title("ChIP-seq overlap of the same rows (black: overlaps)", fontsize=9)
    fig.tight_layout()
    return fig


def overlap_boxplot_figure(scores: np.ndarray, labels: pd.DataFrame, table: pd.DataFrame, kind: str) -> Figure:
    """Per TF, its topic's score for overlapping against other peaks (Figs. S17, S18).

    An unmapped TF shows its best topic by overlap, marked as such (its p is not corrected for M topics).
    """
    n = len(table)
    cols = min(BOX_COLUMNS, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(2.6 * cols, 2.7 * rows))
    for k, row in enumerate(table.itertuples()):
        ax = fig.add_subplot(rows, cols, k + 1)
        own = labels[row.tf].to_numpy(dtype=bool)
        mapped = row.topic >= 0
        topic = int(row.topic if mapped else row.best_topic)
        auroc, p = (row.auroc, row.p_value) if mapped else (row.best_auroc, row.best_p_value)
        ax.boxplot([scores[own, topic], scores[~own, topic]], showfliers=False)
        ax.set_xticks([1, 2], [f"overlap\n({int(own.sum())})", f"other\n({int((~own).sum())})"], fontsize=7)
        how = row.mapped_by if mapped else "not mapped: best by overlap"
        ax.set_title(f"{row.tf}: {topic_name(topic)}\n{how}\nAUROC {auroc:.2f}, p {p:.1e}", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        if k % cols == 0:
            ax.set_ylabel(f"topic score ({kind})", fontsize=8)
    fig.tight_layout()
    return fig


def _naming_inputs(options: pipeline.AnalysisOptions):
    """Database, families and probes, read before anything is written."""
    if not options.probes and options.motif_db == "none":
        raise ConfigError("motif_db", "mapping ChIP TFs to topics needs probes= (Algorithm 1) or a motif database")
    database, source = pipeline.load_database(options)
    families = pipeline.load_families(options)
    probes = naming.read_probes_tsv(options.probes, list(options.tf_per_block) or None) if options.probes else None
    if probes is None and not database:
        raise InputError(options.motif_db, "motif database is empty; nothing to name topics by")
    return database, source, families, probes


def project_chip(run_dir: str | os.PathLike, peaks: str, genome: str, chip: dict[str, str],
                 min_overlap: int = chip_overlap.DEFAULT_MIN_OVERLAP, span: int = 200,
                 options: pipeline.AnalysisOptions = pipeline.AnalysisOptions()) -> Path:
    """Label accessible peaks by ChIP-seq overlap and score each mapped TF's topic against the labels.

    Args:
        run_dir: the run directory (holding ``checkpoints/``).
        peaks: accessible peaks, BED/narrowPeak.
        genome: genome FASTA the peaks' windows are cut from.
        chip: TF -> its ChIP-seq BED/narrowPeak.
        min_overlap: smallest overlap (bp) of a window and a ChIP peak that labels the window.
        span: window around each accessible peak's summit, bp (the sequence scored and overlapped).
        options: naming inputs (``probes``/``tf_per_block`` for Algorithm 1, else ``motif_db`` for
            motif similarity), ``kind`` and ``motif_ranking``.

    Returns:
        ``<run_dir>/analysis/chip_overlap`` holding ``peak_labels.tsv``, ``overlap_scores.tsv``,
        ``heatmap_rows.tsv``, ``skipped.tsv``, ``clr_heatmap.png``, ``chip_labels.png``,
        ``overlap_boxplots.png`` and ``report.html``.

    Raises:
        ConfigError, InputError: bad options, no checkpoint, unreadable or unusable files.
    """
    if options.kind not in KINDS:
        raise ConfigError("kind", f"must be one of {KINDS}, got {options.kind!r}")
    if span < 1:
        raise ConfigError("span", f"must be at least 1 bp, got {span}")
    if min_overlap < 1:
        raise ConfigError("min_overlap", f"must be at least 1 bp, got {min_overlap}")
    if min_overlap > span:
        raise ConfigError("min_overlap", f"{min_overlap} bp cannot fit in a {span} bp window (span=)")
    pipeline.check_options(options)
    model = load_model(run_dir)
    accessible = read_accessible(peaks, genome, span)
    labels = chip_overlap.label_peaks(accessible.windows, chip, min_overlap)
    database, source, families, probes = _naming_inputs(options)
    out = check_writable_dir(Path(run_dir) / "analysis" / OUTPUT_DIR, "run_dir")

    start = time.perf_counter()
    scores = latent_scores(model, accessible.sequences, kind=options.kind)
    named = evidence.name_topics(model, database, probes, families, options.rules, options.kind, options.motif_ranking)
    topics = chip_overlap.tf_topics(list(chip), named.mapping if probes is not None else None, named.matches)
    table = chip_overlap.overlap_scores(scores, labels, topics, {tf: Path(p).name for tf, p in chip.items()})
    rows = chip_overlap.heatmap_rows(scores, labels, table, accessible.ids)
    logger.info("%d peaks scored, topics named and tested in %.1f s", len(scores), time.perf_counter() - start)

    naming_note = (f"topics mapped by Algorithm 1 (probes: {Path(options.probes).name})" if probes is not None
                   else f"topics named by motif similarity ({source})")
    note = (f"latent score: {options.kind}; checkpoint step {model.step}; window: {span} bp around each summit; "
            f"label: overlap >= {min_overlap} bp; {naming_note}")
    w = accessible.windows
    peak_table = pd.concat([pd.DataFrame({"peak": accessible.ids, "chrom": w.chrom, "start": w.start, "end": w.end}),
                            labels.astype(int),
                            pd.DataFrame(scores, columns=[topic_name(m) for m in range(scores.shape[1])])], axis=1)
    _write_tsv(peak_table, out / "peak_labels.tsv", note)
    _write_tsv(table, out / "overlap_scores.tsv", note + "; p_value: one-sided Mann-Whitney (overlapping peaks "
                                                          "score higher); best_p_value not corrected for the M topics")
    _write_tsv(rows, out / "heatmap_rows.tsv", note)
    _write_tsv(accessible.skipped, out / "skipped.tsv")
    figures = []
    mapped = table[table["topic"] >= 0].sort_values(["n_overlapping", "tf"], ascending=[False, True], kind="stable")
    if len(rows):
        columns = [f"{tf} ({topic_name(int(t))})" for tf, t in zip(mapped["tf"], mapped["topic"])]
        values = chip_overlap.clr(scores)[rows["peak"].to_numpy()][:, mapped["topic"].to_numpy(dtype=int)]
        plotting.save_figure(clr_heatmap_figure(values, rows, columns), out / "clr_heatmap.png")
        plotting.save_figure(chip_labels_figure(labels.to_numpy()[rows["peak"].to_numpy()], rows, list(labels.columns)),
                             out / "chip_labels.png")
        figures += [("CLR of the mapped topics' scores, peaks sorted per TF (Fig. 4c)", "clr_heatmap.png"),
                    ("ChIP-seq labels of the same rows (Fig. 4e, S14)", "chip_labels.png")]
    else:
        logger.warning("no ChIP TF is mapped to a topic: clr_heatmap.png and chip_labels.png are not drawn")
        for stale in ("clr_heatmap.png", "chip_labels.png"):
            (out / stale).unlink(missing_ok=True)
    plotting.save_figure(overlap_boxplot_figure(scores, labels, table, options.kind), out / "overlap_boxplots.png")
    figures.append(("Topic score of overlapping vs other peaks per TF (Figs. S17, S18)", "overlap_boxplots.png"))
    write_text_atomic(out / "report.html", report_page(Path(run_dir).name, note, table, figures))
    other_analyses.refresh(out.parent)  # the run's report.html gains this section
    return out


def section_html(table: pd.DataFrame, figures: list[tuple[str, str]], prefix: str = "") -> str:
    """The report section of a ChIP-overlap analysis: its table and figures (paths under ``prefix``)."""
    shown = table[["tf", "n_overlapping", "n_other", "topic", "mapped_by", "auroc", "p_value", "best_topic",
                   "best_auroc"]].copy()
    shown["topic"] = [topic_name(int(t)) if t >= 0 else "unmapped" for t in shown["topic"]]
    shown["best_topic"] = [topic_name(int(t)) for t in shown["best_topic"]]
    body = "".join("<tr>" + "".join(f"<td>{escape(_cell(v))}</td>" for v in row) + "</tr>"
                   for row in shown.itertuples(index=False))
    head = "".join(f"<th>{escape(c)}</th>" for c in shown.columns)
    figs = "".join(f'<figure><img src="{escape(prefix + path)}" alt="{escape(caption)}">'
                   f"<figcaption>{escape(caption)}</figcaption></figure>" for caption, path in figures)
    return (f'<section id="chip-overlap"><h2>Accessible peaks labelled by ChIP-seq overlap</h2>'
            f"<table><tr>{head}</tr>{body}</table>{figs}</section>")


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3g}"
    return str(value)


def report_page(run: str, note: str, table: pd.DataFrame, figures: list[tuple[str, str]]) -> str:
    """A static page holding :func:`section_html` (no scripts, relative image paths)."""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>ChIP-seq overlap: {escape(run)}'
            "</title><style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;font-size:.85em}"
            "td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}</style></head><body>"
            f"<h1>ChIP-seq overlap: {escape(run)}</h1><p>{escape(note)}</p>{section_html(table, figures)}"
            "</body></html>")


def summary_text(folder: str | os.PathLike) -> str:
    """One line per ChIP TF: its topic, AUROC and p, or its best topic when unmapped."""
    folder = Path(folder)
    table = pd.read_csv(folder / "overlap_scores.tsv", sep="\t", comment="#", keep_default_na=False)
    lines = []
    for row in table.itertuples():
        counts = f"{row.n_overlapping} of {row.n_overlapping + row.n_other} peaks overlap"
        if int(row.topic) >= 0:
            lines.append(f"{row.tf}: {topic_name(int(row.topic))} ({row.mapped_by}) AUROC {float(row.auroc):.3f} "
                         f"p {float(row.p_value):.2g}; {counts}")
        else:
            lines.append(f"{row.tf}: not mapped to a topic; best by overlap {topic_name(int(row.best_topic))} AUROC "
                         f"{float(row.best_auroc):.3f} p {float(row.best_p_value):.2g} (uncorrected); {counts}")
    lines += projection.closing_lines(folder)
    return "\n".join(lines) + "\n"
