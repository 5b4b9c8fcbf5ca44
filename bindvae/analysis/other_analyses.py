"""The report's section per further analysis of a run: projection, ChIP-seq overlap, run comparison.

Each of those commands writes its own folder under ``<run>/analysis/``. The run's ``report.html`` shows
one section per folder present, with the analysis's main table (its first rows) and its figures,
between two markers; whichever runs last refreshes it: ``experiments.analyze`` when it writes the
report, and each of the other commands when it finishes (when the report already exists).
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import pandas as pd

from bindvae.io import write_text_atomic

START, END = "<!-- other analyses -->", "<!-- /other analyses -->"
MAX_ROWS = 20  # table rows shown per analysis; the TSV keeps all of them

# folder -> (title, command, main table, figures with captions)
ANALYSES = {
    "projection": ("Projection of labelled peak sets (Fig. 4a, b)", "experiments.project sets=", "set_topic_auroc.tsv",
                   [("umap.png", "UMAP of the latent scores, coloured by set"),
                    ("best_topic_boxplots.png", "Each set's best topic against the other sets")]),
    "chip_overlap": ("Accessible peaks labelled by ChIP-seq overlap (Fig. 4c, e; Figs. S14, S17, S18)",
                     "experiments.project chip=", "overlap_scores.tsv",
                     [("clr_heatmap.png", "CLR of the mapped topics' scores, peaks sorted per TF"),
                      ("chip_labels.png", "ChIP-seq labels of the same rows"),
                      ("overlap_boxplots.png", "Topic score of overlapping vs other peaks per TF")]),
    "compare": ("Topics across runs (Figs. S6, S8, S16)", "experiments.compare", "reproducibility.tsv",
                [("theta_pca.png", "PCA of the topics' k-mer distributions, by run"),
                 ("reproducibility.png", "Fraction of topics reproduced between runs")]),
}


def sections_html(analysis_dir: str | Path) -> str:
    """The marked block of sections for the analyses found under ``analysis_dir`` (empty markers when none)."""
    analysis_dir = Path(analysis_dir)
    parts = []
    for folder, (title, command, table_name, figures) in ANALYSES.items():
        path = analysis_dir / folder
        if not (path / table_name).is_file():
            continue
        table = pd.read_csv(path / table_name, sep="\t", comment="#", keep_default_na=False)
        shown = table.head(MAX_ROWS)
        head = "".join(f"<th>{escape(str(c))}</th>" for c in shown.columns)
        body = "".join("<tr>" + "".join(f"<td>{escape(_fmt(v))}</td>" for v in row) + "</tr>"
                       for row in shown.itertuples(index=False))
        more = f" (first {MAX_ROWS} of {len(table)} rows)" if len(table) > MAX_ROWS else ""
        figs = "".join(f'<figure class="figure"><img src="{escape(folder)}/{escape(name)}" alt="{escape(caption)}">'
                       f"<figcaption>{escape(caption)}</figcaption></figure>"
                       for name, caption in figures if (path / name).is_file())
        parts.append(f'<section id="analysis-{escape(folder)}"><h2>{escape(title)}</h2>'
                     f'<p class="muted">Written by <code>python -m {escape(command)}</code>; '
                     f'<a href="{escape(folder)}/{escape(table_name)}">{escape(table_name)}</a>{escape(more)}.</p>'
                     f"<table><tr>{head}</tr>{body}</table>{figs}</section>")
    return START + "".join(parts) + END


def refresh(analysis_dir: str | Path) -> bool:
    """Rewrite the block in ``analysis_dir/report.html`` (atomically); False when there is no report yet."""
    report = Path(analysis_dir) / "report.html"
    if not report.is_file():
        return False
    html = report.read_text(encoding="utf-8")
    if START in html and END in html:
        html = html[: html.index(START)] + sections_html(analysis_dir) + html[html.index(END) + len(END):]
    else:
        html = html.replace("</body>", sections_html(analysis_dir) + "</body>", 1)
    write_text_atomic(report, html)
    return True


def _fmt(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
