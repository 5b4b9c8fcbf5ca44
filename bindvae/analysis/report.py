"""One static HTML page per analysed run, laid out like HOMER's and MEME-ChIP's result pages.

From the top: a banner when the model has not converged; the ranked summary table of motif topics
(title, learned logo above its best database match, p / E / q, peaks and background peaks with a
site, enrichment p-value, accessibility); background, repeat and composition topics apart; the
training summary and loss curve; links to every file; the run's facts; the figures; one section per
topic. The page has no scripts and no network references; images are relative paths inside the
analysis folder, so the folder can be copied and opened anywhere.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from html import escape

import pandas as pd

from bindvae.analysis.convergence import RULE

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.3em 0; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }
section.topic { border-top: 2px solid #ddd; padding-top: 0.5em; margin-top: 1em; }
section.topic h3 { margin: 0.2em 0; font-size: 1em; }
.grid { display: flex; flex-wrap: wrap; gap: 1.2em; align-items: flex-start; }
code { font-size: 0.95em; } .muted { color: #777; }
img { max-width: 100%; }
img.logo { height: 130px; } img.pair { height: 190px; max-width: 460px; }
table.summary td { vertical-align: middle; } table.summary td.num { text-align: right; white-space: nowrap; }
.banner { padding: 0.7em 1em; margin: 0.8em 0; border: 2px solid; font-weight: bold; }
.banner.warn { background: #fdecea; border-color: #c0392b; color: #7b241c; }
.banner.note { background: #fef9e7; border-color: #b7950b; color: #7d6608; }
.scroll { overflow-x: auto; } .scroll img { max-width: none; }
"""


HEADING_TFS = 5  # assigned TFs named in a topic's heading when it has no title
NAMING_NOTE = (
    "How topics are named: a TF is assigned to a topic by probes (Algorithm 1: its probes outscore all "
    "other TFs' probes in the topic, one-sided Mann-Whitney, BH q below the level, effect size = AUROC at "
    "least the floor, at most a few TFs per topic, those of the database match's family first, then by "
    "effect) or by motif similarity (the topic's motif matches a database motif at q below the level). "
    "Repeat, background and AT-/GC-rich topics are titled by their composition and lose their probe "
    "assignments, unless a database match names them (then only probe TFs of the match's family stay). "
    "Per-peak TFs come from assigned topics only, one TF per topic (its strongest), scored by the peak's "
    "topic score (call_score: by default its density, the topic's expected k-mers as a fraction of all "
    "the peak's gapped 8-mers) over its mean over the run's training peaks, times the effect size, where "
    "that ratio reaches call_ratio (the topic's score is its signature's: the topic plus its look-alikes). "
    "Thresholds are listed above; topic_titles.tsv has every topic's measures.")
TABLE_TFS = 10  # assigned TFs listed in a topic's Algorithm 1 table


@dataclasses.dataclass(frozen=True)
class TopicSection:
    """What the report shows for one topic.

    Attributes:
        topic: topic name (``topic_000``).
        logo: logo image path relative to the report.
        consensus: the motif's consensus string.
        top_kmers: best 8-mers by decoder weight ``(kmer, weight)``.
        top_10mers: best 10-mers by latent score ``(kmer, score)``.
        matches: best database matches ``(target id, target name, q-value)``.
        tfs: TFs assigned by Algorithm 1 ``(tf, q-value, effect size)``, best first. With probes
            sampled from a whole database a topic (e.g. a GC-rich one) may be assigned hundreds; the
            page names the first :data:`HEADING_TFS` and lists :data:`TABLE_TFS`, the rest stay in
            ``tf_mapping.tsv``.
        accessibility: sum of the topic's scores over the peaks, or None without peaks.
        title: the topic's title (:mod:`bindvae.analysis.titles`); empty: named by ``tfs``.
        evidence: what the title rests on (``probes``, ``motif similarity``, ``composition``, ...).
        flag: the topic's non-TF flag (:mod:`bindvae.analysis.flags`), empty for a TF topic; flagged
            topics are listed apart, after the others.
        flag_evidence: the measures behind the flags, in words.
        lookalikes: the used, unflagged topics whose motif matches this one's
            (:mod:`bindvae.analysis.signatures`); the peak calls score the topic with them.
        parts: the two sites of a topic whose 10-mers hold two, each ``(name, logo path, consensus,
            matches, sites)`` with matches as ``matches`` (listed, never used for the title) and its site
            counts in words (empty without sequences); empty otherwise.
    """

    topic: str
    logo: str
    consensus: str
    top_kmers: list
    top_10mers: list
    matches: list
    tfs: list
    accessibility: float | None = None
    title: str = ""
    evidence: str = ""
    flag: str = ""
    flag_evidence: str = ""
    lookalikes: tuple = ()
    parts: tuple = ()


@dataclasses.dataclass(frozen=True)
class SummaryRow:
    """One topic's line in the ranked summary table.

    Attributes:
        topic: topic name.
        title: its title; ``evidence`` says what it rests on (``composition`` rows are grouped apart).
        evidence: ``motif similarity``, ``probes``, ``composition`` (comma-joined as used) or ``none``.
        logo: image path: the learned logo above its best match's, aligned (or the learned logo alone).
        match: best database match ``id name`` (rank 1 by p), or "".
        strand: ``+`` or ``-`` (the match's logo is then reverse-complemented to align).
        p, e, q: the best match's p-value, E-value and q-value (NaN without a match).
        assigned: whether that match names the topic (it passed the q-value level and the topic is not flagged).
        flagged: whether the topic has a non-TF flag (:mod:`bindvae.analysis.flags`): no match names it.
        probe_q: smallest q of the topic's assigned Algorithm 1 TFs (NaN: none).
        pct_peaks, pct_background: % of peaks / background peaks with a site (NaN: no sequences).
        enrichment_p: one-sided Fisher p-value of the site counts (NaN: no sequences).
        site_auroc: how well the topic's score ranks the peaks with a site above the rest (NaN: not measured).
        accessibility: the topic's share (%) of all peaks' topic scores (NaN: no peaks scored).
    """

    topic: str
    title: str
    evidence: str
    logo: str
    match: str = ""
    strand: str = ""
    p: float = float("nan")
    e: float = float("nan")
    q: float = float("nan")
    assigned: bool = False
    flagged: bool = False
    probe_q: float = float("nan")
    pct_peaks: float = float("nan")
    pct_background: float = float("nan")
    enrichment_p: float = float("nan")
    site_auroc: float = float("nan")
    accessibility: float = float("nan")

    @property
    def background(self) -> bool:
        """Titled by composition alone (background, low complexity (repeat), AT- or GC-rich) or unused."""
        return self.evidence in ("composition", "unused")

    @property
    def best_q(self) -> float:
        """The smaller of the best match's q and the best probe q (inf when neither exists)."""
        values = [v for v in (self.q, self.probe_q) if v == v]
        return min(values) if values else float("inf")


RANKING_NOTE = ("Ranked by the smaller of the best database match's q-value and the best assigned probe TF's "
                "q-value, then by the site-enrichment p-value, then by topic.")


def rank_topics(rows: list[SummaryRow]) -> tuple[list[SummaryRow], list[SummaryRow]]:
    """``(motif topics, background / repeat / composition topics)``, each ranked by :data:`RANKING_NOTE`."""
    def key(row):
        return (row.best_q, row.enrichment_p if row.enrichment_p == row.enrichment_p else float("inf"), row.topic)

    ordered = sorted(rows, key=key)
    return [r for r in ordered if not r.background], [r for r in ordered if r.background]


SUMMARY_HEADER = ["#", "topic", "title", "learned logo (top) / best match (bottom)", "best match", "p", "E", "q",
                  "% peaks with site", "% background with site", "enrichment p", "site AUROC", "accessibility %"]


def _num(value: float, kind: str = "g") -> str:
    if value != value:
        return "-"
    if value == float("inf"):
        return "inf"
    return f"{value:.1f}" if kind == "pct" else f"{value:.2g}"


def _summary_table(rows: list[SummaryRow], table_id: str) -> str:
    if not rows:
        return '<p class="muted">none</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in SUMMARY_HEADER)
    body = []
    for i, r in enumerate(rows, start=1):
        match = f"{escape(r.match)} ({escape(r.strand)} strand)" if r.match else "none"
        if r.match and not r.assigned:
            why = "flagged topic: names nothing" if r.flagged else "not significant"
            match += f' <span class="muted">({why})</span>'
        cells = [str(i), f'<a href="#{escape(r.topic)}">{escape(r.topic)}</a>', escape(r.title),
                 f'<img class="pair" src="{escape(r.logo)}" alt="logos of {escape(r.topic)}">', match]
        nums = [_num(r.p), _num(r.e), _num(r.q), _num(r.pct_peaks, "pct"), _num(r.pct_background, "pct"),
                _num(r.enrichment_p), _num(r.site_auroc), _num(r.accessibility, "pct")]
        body.append(f'<tr data-topic="{escape(r.topic)}">' + "".join(f"<td>{c}</td>" for c in cells)
                    + "".join(f'<td class="num">{c}</td>' for c in nums) + "</tr>")
    return f'<table class="summary" id="{table_id}"><tr>{head}</tr>{"".join(body)}</table>'


SUMMARY_NOTE = (
    "Columns: best match = the database motif most similar to the topic's learned motif (Tomtom-like "
    "comparison over all offsets and both strands; its logo is drawn under the learned one, aligned at the "
    "best offset and reverse-complemented for a - strand match); p = that match's p-value corrected for the "
    "offsets tried, E = p times the number of database motifs, q = Benjamini-Hochberg q over the database. "
    "% peaks with site = share of the scored peaks holding at least one site of the learned motif (log-odds "
    "score at p < 1e-4 on either strand); % background = the same for one background peak per peak (same "
    "length, bases from the peaks' dinucleotide frequencies); enrichment p = one-sided Fisher exact test of "
    "the two counts. Site AUROC = how well the topic's own proportion ranks the peaks with a site above those "
    "without (0.5: it does not follow them; a background topic whose motif resembles a common site scores "
    "about 0.3-0.6). Accessibility % = the topic's share of the sum of all peaks' topic scores.")


def _training_html(training, loss_curve: str | None) -> str:
    """The training summary table, the rule and the loss curve."""
    rows = [("steps (last logged)", training.steps)]
    for key, label in (("elbo", "final train ELBO"), ("perplexity", "final train perplexity"),
                       ("val_elbo", "final validation ELBO"), ("val_perplexity", "final validation perplexity")):
        rows.append((label, f"{training.train.get(key, training.val.get(key, float('nan'))):,.1f}"
                     if key in training.train or key in training.val else "not logged"))
    if training.first_val_perplexity is not None:
        rows.append(("first validation perplexity", f"{training.first_val_perplexity:,.1f}"))
    judged = f" (judged on {training.judged_on} perplexity)" if training.judged_on else ""
    rows.append(("convergence", f"{training.status}{judged}: {training.reason}"))
    curve = (f'<figure class="figure"><img src="{escape(loss_curve)}" alt="loss curve">'
             f"<figcaption>ELBO and perplexity during training (metrics.jsonl)</figcaption></figure>"
             if loss_curve else "")
    return (f"<h2 id=\"training\">Training</h2>{_table(['', ''], rows)}<p class='muted'>{escape(RULE)} "
            "ELBO: evidence lower bound per sequence (higher is better); perplexity: exp(-ELBO / k-mer count), "
            f"a uniform guess over the vocabulary scores the vocabulary size.</p>{curve}")


def banner_html(training) -> str:
    """A banner for a model that has not converged (``warn``) or whose convergence is unknown (``note``)."""
    if training is None or training.status == "converged":
        return ""
    if training.status == "unknown":
        return (f'<div class="banner note" id="convergence-banner">Convergence not checked: {escape(training.reason)}. '
                "Read topics and names with care.</div>")
    return (f'<div class="banner warn" id="convergence-banner">This model has not converged '
            f"({escape(training.status)}): {escape(training.reason)}. Its topics, logos and names may not "
            'mean much yet; train longer (see <a href="#training">Training</a>).</div>')


def _files_html(files: list[tuple[str, str]]) -> str:
    items = "".join(f'<li><a href="{escape(name)}">{escape(name)}</a>: {escape(what)}</li>' for name, what in files)
    return f'<h2 id="files">Files</h2><ul class="files">{items}</ul>' if files else ""


def _table(header: list[str], rows) -> str:
    rows = list(rows)
    if not rows:
        return '<p class="muted">none</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in header) if any(header) else ""
    body = "".join("<tr>" + "".join(f"<td>{escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table>{f'<tr>{head}</tr>' if head else ''}{body}</table>"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _topic_html(section: TopicSection) -> str:
    acc = "" if section.accessibility is None else f" · accessibility {section.accessibility:.4g}"
    n_tfs = len(section.tfs)
    tfs = ", ".join(tf for tf, *_ in section.tfs[:HEADING_TFS]) or "unassigned"
    if n_tfs > HEADING_TFS:
        tfs += f" (+{n_tfs - HEADING_TFS} more)"
    tfs = section.title or tfs
    evidence = f" · title from {section.evidence}" if section.evidence else ""
    if section.flag_evidence:
        evidence += f" · {'flag' if section.flag else 'not flagged (a TF match)'}: {section.flag_evidence}"
    if section.lookalikes:
        evidence += (f" · same signature as {', '.join(section.lookalikes)} (motifs alike or the same best database"
                     " match; peak calls add them)")
    rest = (f'<p class="muted">{n_tfs - TABLE_TFS} more assigned TFs in tf_mapping.tsv</p>'
            if n_tfs > TABLE_TFS else "")
    parts = ""
    if section.parts:
        parts = ('<p class="muted">two sites in this topic\'s 10-mers, split into a motif each (their matches are '
                 'listed, not used for the title):</p><div class="grid">')
        for name, logo, consensus, matches, sites in section.parts:
            sites = f"; {sites}" if sites else ""
            parts += (f'<div><img class="logo" src="{escape(logo)}" alt="logo of {escape(name)}"><p class="muted">'
                      f'{escape(name)}: <code>{escape(consensus)}</code>{escape(sites)}</p></div>'
                      f"<div><b>{escape(name)} matches</b>{_table(['id', 'name', 'q'], matches)}</div>")
        parts += "</div>"
    return (
        f'<section class="topic" id="{escape(section.topic)}"><h3>{escape(section.topic)}: {escape(tfs)}</h3>'
        f'<p class="muted">consensus <code>{escape(section.consensus)}</code>{escape(acc)}{escape(evidence)}</p>'
        f'<div class="grid"><div><img class="logo" src="{escape(section.logo)}" '
        f'alt="logo of {escape(section.topic)}"></div>'
        f"<div><b>top 8-mers</b>{_table(['k-mer', 'phi'], section.top_kmers)}</div>"
        f"<div><b>top 10-mers</b>{_table(['10-mer', 'score'], section.top_10mers)}</div>"
        f"<div><b>database matches</b>{_table(['id', 'name', 'q'], section.matches)}</div>"
        f"<div><b>Algorithm 1</b>{_table(['TF', 'q', 'effect'], section.tfs[:TABLE_TFS])}{rest}</div></div>"
        f"{parts}</section>"
    )


def render_report(title: str, facts: dict, sections: list[TopicSection], figures: list[tuple[str, str]],
                  tables: dict[str, pd.DataFrame] | None = None, summary: list[SummaryRow] | None = None,
                  training=None, loss_curve: str | None = None, files: list[tuple[str, str]] | None = None) -> str:
    """The report's HTML.

    Args:
        title: page title.
        facts: run facts (run directory, step, database release, ...).
        sections: one per topic, in order.
        figures: ``(caption, relative image path)`` pairs.
        tables: extra small tables shown after the figures (caption -> DataFrame).
        summary: one row per topic for the ranked summary tables (None: no summary).
        training: :class:`bindvae.analysis.convergence.TrainingSummary`, or None (no training section).
        loss_curve: relative path of the loss-curve image, or None.
        files: ``(relative path, what it holds)`` linked from the Files section.

    Returns:
        A complete HTML document.
    """
    fact_rows = [(k, v) for k, v in facts.items()]
    nav = " ".join(f'<a href="#{escape(s.topic)}">{escape(s.topic[-3:])}</a>' for s in sections)
    figs = "".join(
        f'<figure class="figure"><div class="scroll"><img src="{escape(path)}" alt="{escape(caption)}"></div>'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
        for caption, path in figures
    )
    extra = "".join(
        f"<h2>{escape(caption)}</h2>{_table([str(c) for c in frame.columns], frame.itertuples(index=False))}"
        for caption, frame in (tables or {}).items()
    )
    top = ""
    if summary is not None:
        motif_rows, background_rows = rank_topics(summary)
        top = (f'<h2 id="summary">Topics ranked ({len(motif_rows)})</h2><p class="muted">{escape(RANKING_NOTE)}</p>'
               f"{_summary_table(motif_rows, 'summary-table')}"
               f'<h2 id="background">Background, repeat, composition and unused topics ({len(background_rows)})</h2>'
               '<p class="muted">Topics titled by their k-mer composition alone (they model the genomic '
               "background, low-complexity repeats or base composition, not a TF), and unused topics (no "
               "analysed peak holds them at 1/M or more; their logos are made of whatever scores highest on a topic "
               "nothing is made of, and are never named).</p>"
               f"{_summary_table(background_rows, 'background-table')}<p class=\"muted\">{escape(SUMMARY_NOTE)}</p>")
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{banner_html(training)}{top}"
        f"{_training_html(training, loss_curve) if training is not None else ''}{_files_html(files or [])}"
        f"<h2>Run</h2>{_table(['', ''], fact_rows)}<p class='muted'>written {stamp}</p><p>{escape(NAMING_NOTE)}</p>"
        f"<h2>Figures</h2>{figs or '<p class=muted>none</p>'}{extra}"
        f"{_topic_groups(sections, nav)}"
        "</body></html>"
    )


def _topic_groups(sections: list[TopicSection], nav: str) -> str:
    """TF topics first, then the flagged (non-TF) topics under their own heading."""
    kept = [s for s in sections if not s.flag]
    flagged = [s for s in sections if s.flag]
    html = f"<h2>Topics ({len(kept)})</h2><p>{nav}</p>{''.join(_topic_html(s) for s in kept)}"
    if flagged:
        html += (f'<h2 id="flagged">Flagged topics: not TF binding ({len(flagged)})</h2>'
                 "<p>Low complexity, GC-/AT-rich background, background or cutting bias (topic_flags.tsv); "
                 "their TF assignments are withdrawn.</p>" + "".join(_topic_html(s) for s in flagged))
    return html
