"""What the report shows, assembled from an analysis's results: summary rows, topic sections, file list.

:mod:`bindvae.analysis.report` renders these; :mod:`bindvae.analysis.pipeline` computes what they read.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from bindvae import plotting
from bindvae.analysis import evidence, flags, report, sites
from bindvae.analysis.motifs import PART_SUFFIXES
from bindvae.motif import Motif

FILES = [  # what the report's Files section links, in this order, with what each holds
    ("motifs.meme", "one motif per topic (MEME format), built from its top 200 10-mers, and for a topic whose 10-mers "
                    "hold two sites a motif of each (topic_NNNa, topic_NNNb)"),
    ("topic_titles.tsv", "each topic's title, the evidence it rests on, its composition measures and look-alikes"),
    ("motif_matches.tsv", "each topic's best database matches: offset, strand, p, E, q, assigned"),
    ("tf_mapping.tsv", "Algorithm 1: every (topic, TF) test with p, q, effect size, status, assigned"),
    ("topic_sites.tsv", "peaks and background peaks with a site of each topic's motif, Fisher p"),
    ("accessibility.tsv", "per topic: sum and mean of the peaks' topic scores, assigned TFs"),
    ("peak_tfs.tsv", "per peak: the top 3 TFs from assigned topics (each with its look-alikes), scores, ties"),
    ("topic_kmers.tsv", "each topic's best 8-mers by decoder weight (phi)"),
    ("topic_10mers.tsv", "the 10-mers each topic's motif was built from, with their scores"),
    ("topic_flags.tsv", "non-TF topics (low complexity, GC-/AT-rich, background, cutting bias) and the evidence"),
    ("retrieval.tsv", "with gold=: precision, recall and F1 of the TFs named, per naming method"),
    ("cooperative.tsv", "with pairs=: every (pair, topic) test, both p, q, effect sizes, assigned"),
    ("composite.meme", "with pairs=: the composite motif of each topic with an assigned pair"),
]



def sites_fact(site_stats: pd.DataFrame | None) -> str:
    if site_stats is None:
        return "not counted: the peaks are features only (give peaks=FASTA for site counts)"
    n = int(site_stats["n_peaks"].iloc[0]) if len(site_stats) else 0
    return (f"{n:,} peaks scanned (a seeded sample when there are more than {sites.MAX_PEAKS:,}), sites at "
            f"p < {sites.SITE_P:g}, one dinucleotide-matched background peak per peak")


def pair_logos(named: evidence.TopicNames, database: list[Motif], out: Path) -> dict[str, str]:
    """Topic -> image of its learned logo above its best database match (rank 1), aligned."""
    targets = {m.name: m for m in database}
    best = named.matches[named.matches["rank"] == 1].drop_duplicates("query").set_index("query")
    paths = {}
    for motif in named.motifs:
        if motif.name not in best.index or best.loc[motif.name, "target"] not in targets:
            continue
        hit = best.loc[motif.name]
        label = f"{hit['target']} {hit['target_name']}".strip() + (
            " (reverse complement)" if hit["strand"] == "-" else ""
        )
        fig = plotting.paired_logo_figure(motif.pwm, targets[hit["target"]].pwm, int(hit["offset"]), str(hit["strand"]),
                                          f"{motif.name} (learned)", f"{label}, q {float(hit['q_value']):.2g}")
        plotting.save_figure(fig, out / "logos" / f"{motif.name}_match.png")
        paths[motif.name] = f"logos/{motif.name}_match.png"
    return paths


def summary_rows(named: evidence.TopicNames, pair_logos: dict[str, str], site_stats: pd.DataFrame | None,
                 acc: pd.DataFrame | None) -> list[report.SummaryRow]:
    """One :class:`report.SummaryRow` per topic from the analysis's tables.

    Args:
        named: the naming evidence.
        pair_logos: topic -> paired logo image (topics without a match show their learned logo).
        site_stats: :func:`bindvae.analysis.sites.site_table`, or None.
        acc: :func:`bindvae.analysis.peaks.accessibility`, or None.

    Returns:
        Rows in topic order (the report ranks them).
    """
    best = named.matches[named.matches["rank"] == 1].drop_duplicates("query").set_index("query")
    assigned = named.mapping[named.mapping["assigned"]]
    probe_q = assigned.groupby("topic")["q_value"].min().astype(float) if len(assigned) else pd.Series(dtype=float)
    site = site_stats.set_index("topic") if site_stats is not None else None
    total = float(acc["accessibility"].sum()) if acc is not None else 0.0
    flagged = flags.flagged_topics(named.flags)
    rows = []
    for m, title in enumerate(named.titles.itertuples(index=False)):
        topic, extra = title.topic, {}
        if topic in best.index:
            hit = best.loc[topic]
            extra = dict(match=f"{hit['target']} {hit['target_name']}".strip(), strand=str(hit["strand"]),
                         p=float(hit["p_value"]), e=float(hit["e_value"]), q=float(hit["q_value"]),
                         assigned=bool(hit["assigned"]))
        if site is not None and topic in site.index:
            extra.update(pct_peaks=float(site.loc[topic, "pct_peaks"]),
                         pct_background=float(site.loc[topic, "pct_background"]),
                         enrichment_p=float(site.loc[topic, "enrichment_p"]),
                         site_auroc=float(site.loc[topic, "site_auroc"]))
        if acc is not None and total > 0:
            extra["accessibility"] = 100.0 * float(acc["accessibility"].iloc[m]) / total
        rows.append(report.SummaryRow(topic=topic, title=str(title.title), evidence=str(title.evidence),
                                      logo=pair_logos.get(topic, f"logos/{topic}.png"),
                                      probe_q=float(probe_q.get(topic, float("nan"))), flagged=topic in flagged,
                                      **extra))
    return rows


def summary_text(analysis_dir: str | os.PathLike, n_top: int = 5) -> str:
    """A few lines on an analysed run: how topics were named, the best-supported ones, the report.

    Args:
        analysis_dir: the folder :func:`bindvae.analysis.pipeline.analyze_run` wrote.
        n_top: named topics listed, smallest q first (of the best assigned database match or probe pair).

    Returns:
        Plain text ending in a newline.
    """
    out = Path(analysis_dir)
    titles_table = pd.read_csv(out / "topic_titles.tsv", sep="\t", keep_default_na=False)
    matches = pd.read_csv(out / "motif_matches.tsv", sep="\t", comment="#", keep_default_na=False)
    mapping = pd.read_csv(out / "tf_mapping.tsv", sep="\t", comment="#", keep_default_na=False)
    motif_q = matches.loc[matches["assigned"].astype(str) == "True"].groupby("query")["q_value"].min()
    probe_q = mapping.loc[mapping["assigned"].astype(str) == "True"].groupby("topic")["q_value"].min()
    named = titles_table[titles_table["evidence"].str.contains("motif similarity|probes")].copy()
    named["motif_q"] = named["topic"].map(motif_q.astype(float))
    named["probe_q"] = named["topic"].map(probe_q.astype(float))
    named["q"] = named[["motif_q", "probe_q"]].min(axis=1)
    named = named.sort_values(["q", "topic"], kind="stable")
    counts = titles_table["evidence"].map(lambda e: "named" if "motif" in e or "probes" in e else e).value_counts()
    lines = [f"{len(titles_table)} topics: {counts.get('named', 0)} named by motif similarity or probes, "
             f"{counts.get('composition', 0)} by composition (repeat, background, AT/GC-rich), "
             + (f"{counts['cutting bias']} as cutting bias, " if counts.get("cutting bias") else "")
             + (f"{counts['unused']} unused (no peak made of them), " if counts.get("unused") else "") +
             f"{counts.get('none', 0)} unassigned."]
    lines += [f"  {row.topic}  motif q {_q(row.motif_q)}, probes q {_q(row.probe_q)}  {row.title}"
              for row in named.head(n_top).itertuples()]
    if len(named) > n_top:
        lines.append(f"  ... {len(named) - n_top} more named topics in topic_titles.tsv")
    lines.append(f"Report: {out / 'report.html'}")
    return "\n".join(lines) + "\n"


def _q(value: float) -> str:
    return "-" if pd.isna(value) else f"{value:.2g}"


def topic_sections(names, named: evidence.TopicNames, kmer_table, acc, alike: list[list[int]] | None = None,
                   min_site_auroc: float = flags.FlagRules().min_site_auroc) -> list[report.TopicSection]:
    sections = []
    alike = alike or [[] for _ in names]
    for m, name in enumerate(names):
        k8 = kmer_table[kmer_table["topic"] == name].head(8)
        k10 = named.tenmers[named.tenmers["topic"] == name].head(5)
        hits = named.matches[(named.matches["query"] == name) & (named.matches["rank"] <= 3)]
        tfs = named.mapping[(named.mapping["topic"] == name) & named.mapping["assigned"]]
        tfs = tfs.sort_values("rank", kind="stable")
        title = named.titles.iloc[m]
        sections.append(report.TopicSection(
            topic=name, logo=f"logos/{name}.png", consensus=named.motifs[m].consensus,
            top_kmers=list(zip(k8["kmer"], k8["weight"].astype(float))),
            top_10mers=list(zip(k10["kmer"], k10["score"].astype(float))),
            matches=list(zip(hits["target"], hits["target_name"], hits["q_value"].astype(float))),
            tfs=list(zip(tfs["tf"], tfs["q_value"].astype(float), tfs["effect_size"].astype(float))),
            accessibility=None if acc is None else float(acc["accessibility"].iloc[m]),
            title=str(title["title"]), evidence=str(title["evidence"]),
            flag=str(named.flags["flag"].iloc[m]), flag_evidence=str(named.flags["evidence"].iloc[m]),
            lookalikes=tuple(names[j] for j in alike[m]),
            parts=_parts(named, name, min_site_auroc),
        ))
    return sections


def _parts(named: evidence.TopicNames, topic: str, min_site_auroc: float) -> tuple:
    """``(name, logo, consensus, best 3 matches, sites in words)`` of each of the topic's two sites (empty: one)."""
    names = {topic + suffix for suffix in PART_SUFFIXES}
    site = named.sites.set_index("topic") if named.sites is not None else None
    out = []
    for part in (m for m in named.part_motifs if m.name in names):
        hits = named.matches[(named.matches["query"] == part.name) & (named.matches["rank"] <= 3)]
        words = ""
        if site is not None and part.name in site.index:
            row = site.loc[part.name]
            auroc = float(row["site_auroc"])
            words = (f"sites in {float(row['pct_peaks']):.1f}% of peaks, {float(row['pct_background']):.1f}% of "
                     f"background; site AUROC {auroc:.2f}")
            if not auroc >= min_site_auroc:
                words += f" (under {min_site_auroc:g}: the topic does not follow these sites)"
        out.append((part.name, f"logos/{part.name}.png", part.consensus,
                    list(zip(hits["target"], hits["target_name"], hits["q_value"].astype(float))), words))
    return tuple(out)
