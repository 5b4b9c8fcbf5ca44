"""One static HTML page per analysed run: every topic (logo, k-mers, matches, TFs) and the figures.

The page has no scripts and no network references; images are relative paths inside the analysis
folder, so the folder can be copied and opened anywhere.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from html import escape

import pandas as pd

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
    "topic score times the effect size, where the topic's share of the peak exceeds an even share (1/M). "
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
    rest = (f'<p class="muted">{n_tfs - TABLE_TFS} more assigned TFs in tf_mapping.tsv</p>'
            if n_tfs > TABLE_TFS else "")
    return (
        f'<section class="topic" id="{escape(section.topic)}"><h3>{escape(section.topic)}: {escape(tfs)}</h3>'
        f'<p class="muted">consensus <code>{escape(section.consensus)}</code>{escape(acc)}{escape(evidence)}</p>'
        f'<div class="grid"><div><img class="logo" src="{escape(section.logo)}" '
        f'alt="logo of {escape(section.topic)}"></div>'
        f"<div><b>top 8-mers</b>{_table(['k-mer', 'phi'], section.top_kmers)}</div>"
        f"<div><b>top 10-mers</b>{_table(['10-mer', 'score'], section.top_10mers)}</div>"
        f"<div><b>database matches</b>{_table(['id', 'name', 'q'], section.matches)}</div>"
        f"<div><b>Algorithm 1</b>{_table(['TF', 'q', 'effect'], section.tfs[:TABLE_TFS])}{rest}</div></div></section>"
    )


def render_report(title: str, facts: dict, sections: list[TopicSection], figures: list[tuple[str, str]],
                  tables: dict[str, pd.DataFrame] | None = None) -> str:
    """The report's HTML.

    Args:
        title: page title.
        facts: run facts shown at the top (run directory, step, database release, ...).
        sections: one per topic, in order.
        figures: ``(caption, relative image path)`` pairs.
        tables: extra small tables shown after the figures (caption -> DataFrame).

    Returns:
        A complete HTML document.
    """
    fact_rows = [(k, v) for k, v in facts.items()]
    nav = " ".join(f'<a href="#{escape(s.topic)}">{escape(s.topic[-3:])}</a>' for s in sections)
    figs = "".join(
        f'<figure class="figure"><img src="{escape(path)}" alt="{escape(caption)}">'
        f'<figcaption>{escape(caption)}</figcaption></figure>'
        for caption, path in figures
    )
    extra = "".join(
        f"<h2>{escape(caption)}</h2>{_table([str(c) for c in frame.columns], frame.itertuples(index=False))}"
        for caption, frame in (tables or {}).items()
    )
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>"
        f"{_table(['', ''], fact_rows)}<p class='muted'>written {stamp}</p><p>{escape(NAMING_NOTE)}</p>"
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
