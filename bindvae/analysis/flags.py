"""Topics that are not TF binding signatures: low complexity, GC-/AT-rich background, cutting bias.

The paper (Kshirsagar et al. 2022, Results and Additional file 1, Figs. S1-S3) reads some topics as
low-complexity sequence, genomic background or Tn5 cleavage bias rather than TF binding. Every topic
is measured here and, when one of the rules below holds, flagged; a flagged topic is titled by its
flag and never with a TF name (its Algorithm 1 and cooperative assignments are withdrawn).

Measures (over the topic's ``n_top`` (50) best k-mers by phi, each weighted by its phi; gap
positions ``N`` are left out):

* ``low_entropy_share``: the share of k-mers whose **dinucleotide entropy** is at most
  ``max_entropy`` (1.0 bit). A k-mer's dinucleotide entropy is the Shannon entropy (bits) of the
  distribution of its adjacent base pairs (``AAAAAAAA``: one pair, 0 bits; ``ACACACAC``: AC x4,
  CA x3, 0.99 bits; a random 8-mer about 2.5 bits; an AT-rich site such as ``ATTAATTA`` 2 bits). A
  k-mer with no adjacent pair of bases counts as low complexity when it is a mono- or dinucleotide
  repeat (:func:`bindvae.analysis.titles.repeat_unit`). ``mean_entropy`` is the weighted mean.
* ``gc`` against ``gc_corpus`` and ``fold``: as in :mod:`bindvae.analysis.titles`.
* ``bias_motif`` / ``bias_q`` / ``bias_is_best``: the topic's motif compared (Tomtom-style,
  :func:`bindvae.analysis.compare.compare_motifs`) with the bundled cutting-bias motifs together
  with the motif database; the best bias motif, its q-value (BH over the bias motifs only, see
  :func:`bias_matches`) and whether it is the best match of all. With ``motif_db=none`` the bias
  motifs are the only targets.

* ``used_fraction``: the share of the analysed peaks in which the topic holds at least an even share
  (1 / M) of the peak (:func:`bindvae.analysis.peaks.topic_usage`); NaN when no peaks were scored.

Flags, first match wins (``flags`` lists every one that holds):

0. ``unused``: ``used_fraction < min_used_fraction`` (0.001): no peak, or almost none, is made of the
   topic. Its motif comes from 10-mers that score highest on a topic nothing uses and can match a
   database motif by chance (measured: q down to 6e-6 on planted peaks), so it never names a TF;
1. ``cutting bias``: the best match of the topic's motif is a bias motif, at q < ``bias_max_q`` (0.05);
2. ``low complexity``: ``low_entropy_share >= min_low_entropy_share`` (0.5);
3. ``GC-rich background`` / ``AT-rich background``: ``|gc - gc_corpus| >= min_gc_shift`` (0.25, the
   titles' threshold);
4. ``background``: ``fold < min_fold`` (20, the titles' threshold).

Flags 2-4 give way to a significant database match to a TF motif that is not itself a repeat (a CTCF
topic that also took the CA repeat stays a CTCF topic; the evidence is still written, with the TF in
``tf_match``), as the titles do, but only where the peaks bear the match out: when the peaks' sites
were counted (:mod:`bindvae.analysis.sites`), the motif's sites must be enriched over the background
peaks (Fisher p < ``site_max_p``, 0.001, and at least ``min_site_ratio``, 1.5, times as many peaks
with a site), and the topic's own score must follow them (``site_auroc`` >= ``min_site_auroc``, 0.7,
when the peaks were scored). A background topic's 10-mers can resemble some database motif by
chance: on the demo a background topic (fold 8.2) matched NHLH2 at q 0.048 while its sites were in
1.7% of peaks against 1.4% of background peaks (p 0.14); on five 20,000-peak recovery runs every
topic of a planted motif that needed the match to escape a composition flag had its sites at 2.0-5.7
times background (p < 1e-14), and the one below 1.5 was a background topic with a CTCF match (fold
10.5) whose CTCF sites were in 5.3% of peaks against 4.1% of background peaks (p 0.003), where the
run's CTCF topics had theirs in 12%. Enrichment alone is not enough where the motif is common: on
the same runs nine background topics (fold 4.4-9.6, carrier AUROC <= 0.63 for every planted element)
had motifs that matched AP-1 or CTCF, whose sites are in 30% and 20% of the peaks, so their sites
were 1.9-4.6 times background, yet their scores ranked the peaks with a site at 0.31-0.60; the
topics of planted motifs that needed their match measured 0.81-0.96 (one more, a second, weak TP53
topic, 0.66, is flagged). Without site counts (no sequences) the match alone decides. Cutting-bias
and unused flags never give way: there the bias motif is the better match, or no peak uses the
topic.

The bias motifs (:data:`BIAS_MOTIFS`) are written by this module from published consensus sequences
into ``cutting_bias.meme`` next to it, with the source of each in the file; ``bias_motifs=FILE``
replaces them with a user's MEME file.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from bindvae.analysis import naming, titles
from bindvae.analysis.compare import compare_motifs
from bindvae.analysis.stats import benjamini_hochberg
from bindvae.motif import ALPHABET, Motif, format_meme, read_meme

BIAS_MEME = Path(__file__).with_name("cutting_bias.meme")
# (motif id, name, IUPAC consensus, source). The published Tn5 consensus is a 9 bp target
# duplication flanked by A and T; DNase I's preference is published as hexamer cleavage tables
# (He et al. 2014, Nat Methods 11:73; Koohy et al. 2013, PLoS One 8:e69853), not as a consensus, so
# it is not included: a user's DNase I bias PWM can be given with bias_motifs=FILE.
BIAS_MOTIFS = (
    ("Tn5_target", "Tn5", "AGNTYWRANCT",
     "Goryshin IY, Miller JA, Kil YV, Lanzov VA, Reznikoff WS (1998) Tn5/IS50 target recognition. "
     "PNAS 95:10716-10721 (consensus A-GNTYWRANC-T around the 9 bp target duplication)"),
)
IUPAC = {"A": "A", "C": "C", "G": "G", "T": "T", "R": "AG", "Y": "CT", "S": "CG", "W": "AT", "K": "GT",
         "M": "AC", "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG", "N": "ACGT"}
FLAG_COLUMNS = ["topic", "flag", "flagged", "flags", "evidence", "low_entropy_share", "mean_entropy", "repeat_unit",
                "gc", "gc_corpus", "gc_shift", "fold", "bias_motif", "bias_q", "bias_is_best", "tf_match",
                "used_fraction"]
CUTTING_BIAS, LOW_COMPLEXITY, BACKGROUND, UNUSED = "cutting bias", "low complexity", "background", "unused"


@dataclasses.dataclass(frozen=True)
class FlagRules:
    """Thresholds of the flags (module docstring); GC shift and fold come from the titles' rules.

    Attributes:
        max_entropy: dinucleotide entropy (bits) up to which a k-mer is low complexity.
        min_low_entropy_share: share of such k-mers (phi-weighted, top ``n_top``) from which a topic is
            ``low complexity``.
        bias_max_q: q-value below which the best match to a bias motif flags ``cutting bias``.
        min_used_fraction: share of peaks (topic at >= 1 / M of the peak) below which a topic is ``unused``.
        site_max_p: site-enrichment p-value (:mod:`bindvae.analysis.sites`) below which a TF match lifts a
            composition flag (when sites were counted).
        min_site_ratio: and the least ratio of the share of peaks with a site to the share of background
            peaks with one.
        min_site_auroc: and the least ``site_auroc`` (how well the topic's score ranks the peaks with a
            site above the rest; when the peaks were scored).
    """

    max_entropy: float = 1.0
    min_low_entropy_share: float = 0.5
    bias_max_q: float = 0.05
    min_used_fraction: float = 0.001
    site_max_p: float = 1e-3
    min_site_ratio: float = 1.5
    min_site_auroc: float = 0.7


def consensus_pwm(consensus: str, floor: float = 0.01) -> np.ndarray:
    """A PWM from an IUPAC consensus: the allowed bases share a column, each other base gets ``floor``.

    Args:
        consensus: IUPAC letters (``N`` = any base).
        floor: probability of a base the letter excludes (keeps log-odds finite).

    Returns:
        ``[len(consensus), 4]`` probabilities in A, C, G, T order.
    """
    pwm = np.full((len(consensus), 4), floor)
    for i, letter in enumerate(consensus.upper()):
        allowed = [ALPHABET.index(b) for b in IUPAC[letter]]
        pwm[i, allowed] = (1.0 - floor * (4 - len(allowed))) / len(allowed)
    return pwm


def format_bias_meme() -> str:
    """The text of the bundled ``cutting_bias.meme``: :data:`BIAS_MOTIFS` with their sources."""
    motifs = [Motif(motif_id, consensus_pwm(consensus), alt_name=name) for motif_id, name, consensus, _ in BIAS_MOTIFS]
    comment = ["Cutting-bias motifs built by bindvae.analysis.flags from published IUPAC consensus sequences",
               "(allowed bases share each column, excluded bases 0.01). The consensus overstates the real, weak",
               "insertion preference; it serves to recognise a topic made of it. Sources:"]
    comment += [f"{motif_id} {consensus}: {source}" for motif_id, _, consensus, source in BIAS_MOTIFS]
    return format_meme(motifs, "\n".join(comment))


def bias_motifs(path: str | None = None) -> list[Motif]:
    """The cutting-bias motifs: the bundled file, or a user's MEME file (InputError when unreadable)."""
    return read_meme(path or BIAS_MEME)


def dinucleotide_entropy(kmer: str) -> float:
    """Shannon entropy (bits) of a k-mer's adjacent base pairs; gaps (``N``) break pairs; NaN without pairs."""
    pairs = [kmer[i : i + 2] for i in range(len(kmer) - 1) if kmer[i] in ALPHABET and kmer[i + 1] in ALPHABET]
    if not pairs:
        return float("nan")
    _, counts = np.unique(pairs, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum() + 0.0)


def entropy_measures(phi: np.ndarray, kmers: list[str], n_top: int = 50, max_entropy: float = 1.0) -> pd.DataFrame:
    """``low_entropy_share`` and ``mean_entropy`` of every topic (module docstring).

    Args:
        phi: ``[M, n_kmers]`` topic-k-mer probabilities.
        kmers: the ``n_kmers`` k-mer strings (``N`` = gap).
        n_top: k-mers per topic.
        max_entropy: bits up to which a k-mer is low complexity.

    Returns:
        One row per topic: ``low_entropy_share``, ``mean_entropy``.
    """
    kmers = np.asarray(kmers)
    rows = []
    for m in range(phi.shape[0]):
        top = np.argsort(-phi[m], kind="stable")[:n_top]
        weight = phi[m, top] / phi[m, top].sum()
        entropy = np.array([dinucleotide_entropy(k) for k in kmers[top]])
        low = np.where(np.isnan(entropy), [bool(titles.repeat_unit(k)) for k in kmers[top]], entropy <= max_entropy)
        known = ~np.isnan(entropy)
        rows.append({"low_entropy_share": float(weight @ low),
                     "mean_entropy": float(weight[known] @ entropy[known] / max(weight[known].sum(), 1e-12))})
    return pd.DataFrame(rows)


def bias_matches(motifs: list[Motif], bias: list[Motif], database: list[Motif]) -> pd.DataFrame:
    """Per topic motif, its best bias match: ``bias_motif``, ``bias_q``, ``bias_is_best`` (rank 1 overall).

    The bias motifs are compared together with the database, so a topic that resembles a TF motif more
    than a bias motif is not called bias, and the null columns are not the few bias columns alone.
    ``bias_q`` is the Tomtom-style p-value (corrected for offsets) adjusted by Benjamini-Hochberg over
    the bias motifs only: the test asks whether the topic is one of them, not which database motif it is.
    """
    if not bias:
        return pd.DataFrame({"bias_motif": [""] * len(motifs), "bias_q": np.nan, "bias_is_best": False})
    names = {m.name for m in bias}
    table = compare_motifs(motifs, list(bias) + [m for m in database if m.name not in names])
    hits = table[table["target"].isin(names)].sort_values(["query", "rank"], kind="stable").copy()
    # The question is whether the topic is one of the few bias motifs, so q corrects over those
    # (BH per topic); the database only has to rank below the bias motif.
    hits["bias_q"] = hits.groupby("query", sort=False)["p_value"].transform(lambda p: benjamini_hochberg(p.to_numpy()))
    best = hits.groupby("query", sort=False).head(1).set_index("query")
    rows = [best.loc[m.name] for m in motifs]
    return pd.DataFrame({"bias_motif": [str(r["target_name"] or r["target"]) for r in rows],
                         "bias_q": [float(r["bias_q"]) for r in rows],
                         "bias_is_best": [int(r["rank"]) == 1 for r in rows]})


def flag_topics(composition: pd.DataFrame, entropy: pd.DataFrame, bias: pd.DataFrame,
                matches: pd.DataFrame | None, rules: FlagRules = FlagRules(),
                title_rules: titles.TitleRules = titles.TitleRules(), usage: np.ndarray | None = None,
                sites: pd.DataFrame | None = None) -> pd.DataFrame:
    """Flag every topic (module docstring).

    Args:
        composition: :func:`bindvae.analysis.titles.topic_composition` (``gc``, ``gc_corpus``,
            ``repeat_unit``, ``fold``).
        entropy: :func:`entropy_measures`, same row order.
        bias: :func:`bias_matches`, same row order.
        matches: motif-similarity table with ``assigned`` (and ``repeat``), or None.
        rules: entropy and bias thresholds.
        title_rules: ``min_gc_shift`` and ``min_fold``.
        usage: :func:`bindvae.analysis.peaks.topic_usage` of the analysed peaks, same order (None: no
            peaks scored, no ``unused`` flag).
        sites: :func:`bindvae.analysis.sites.site_table` of the topics' motifs (``topic``, ``pct_peaks``,
            ``pct_background``, ``enrichment_p``), or None: sites not counted, a TF match alone lifts a
            composition flag.

    Returns:
        One row per topic, :data:`FLAG_COLUMNS`: ``flag`` (empty when none), ``flagged``, ``flags``
        (every flag that holds, ``; ``-joined) and ``evidence`` (the measures behind the flag, in words).
    """
    tf_matches = titles._motif_tfs(matches)
    site_rows = {} if sites is None else {row.topic: row for row in sites.itertuples(index=False)}
    usage = np.full(len(composition), np.nan) if usage is None else np.asarray(usage, dtype=np.float64)
    rows = []
    for comp, ent, hit, used in zip(composition.itertuples(index=False), entropy.itertuples(index=False),
                                    bias.itertuples(index=False), usage):
        shift = comp.gc - comp.gc_corpus
        found = []
        if used < rules.min_used_fraction:
            found.append((UNUSED, f"at >= 1/M of the peak in {used:.2%} of peaks (< {rules.min_used_fraction:.2%})"))
        if hit.bias_is_best and hit.bias_q < rules.bias_max_q:
            found.append((CUTTING_BIAS, f"best match {hit.bias_motif} (q {hit.bias_q:.2g})"))
        if ent.low_entropy_share >= rules.min_low_entropy_share:
            unit = f", unit ({comp.repeat_unit})n" if comp.repeat_unit else ""
            found.append((LOW_COMPLEXITY, f"{ent.low_entropy_share:.0%} of top k-mers at dinucleotide entropy "
                                          f"<= {rules.max_entropy:g} bit{unit}"))
        if abs(shift) >= title_rules.min_gc_shift:
            found.append((f"{'GC' if shift > 0 else 'AT'}-rich {BACKGROUND}",
                          f"GC {comp.gc:.2f} vs corpus {comp.gc_corpus:.2f} (shift {shift:+.2f})"))
        if comp.fold < title_rules.min_fold:
            found.append((BACKGROUND, f"fold {comp.fold:.3g} over the other topics < {title_rules.min_fold:g}"))
        tf = ", ".join(tf_matches.get(comp.topic, []))
        site, lifts = site_rows.get(comp.topic), bool(tf)
        if tf and found and site is not None:
            why = _unsupported(site, tf, rules)
            if why:
                found.append(("", why))
                lifts = False
        flag = found[0][0] if found and (found[0][0] in (UNUSED, CUTTING_BIAS) or not lifts) else ""
        rows.append({"topic": comp.topic, "flag": flag, "flagged": bool(flag),
                     "flags": "; ".join(f for f, _ in found if f),
                     "evidence": "; ".join(e for _, e in found), "low_entropy_share": ent.low_entropy_share,
                     "mean_entropy": ent.mean_entropy, "repeat_unit": comp.repeat_unit, "gc": comp.gc,
                     "gc_corpus": comp.gc_corpus, "gc_shift": shift, "fold": comp.fold, "bias_motif": hit.bias_motif,
                     "bias_q": hit.bias_q, "bias_is_best": bool(hit.bias_is_best), "tf_match": tf,
                     "used_fraction": used})
    return pd.DataFrame(rows, columns=FLAG_COLUMNS)


def _unsupported(site, tf: str, rules: FlagRules) -> str:
    """Why the peaks do not bear out a topic's TF match (``""`` when they do): too few sites, or a
    topic score that does not follow them (``site_auroc``, when measured)."""
    if not (site.enrichment_p < rules.site_max_p and site.pct_peaks >= rules.min_site_ratio * site.pct_background):
        return (f"its match {tf} has too few sites in the peaks: {site.pct_peaks:.2g}% of peaks vs "
                f"{site.pct_background:.2g}% of background peaks (p {site.enrichment_p:.2g})")
    agreement = getattr(site, "site_auroc", float("nan"))
    if agreement == agreement and agreement < rules.min_site_auroc:
        return (f"its match {tf} is not what the topic follows: it ranks the peaks with a site at AUROC "
                f"{agreement:.2f} (< {rules.min_site_auroc:g})")
    return ""


def flag_title(row) -> str:
    """A flagged topic's title: its flag, with the repeat unit or bias motif (never a TF name)."""
    if row.flag == LOW_COMPLEXITY and row.repeat_unit:
        return f"{LOW_COMPLEXITY} ({row.repeat_unit})n"
    if row.flag == CUTTING_BIAS:
        return f"{CUTTING_BIAS} ({row.bias_motif})"
    return row.flag


def apply_flags(table: pd.DataFrame, mapping: pd.DataFrame, matches: pd.DataFrame,
                flags: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Titles, Algorithm 1 table and matches with every flagged topic stripped of TF names.

    Args:
        table: topic titles (:data:`bindvae.analysis.titles.TITLE_COLUMNS`).
        mapping: Algorithm 1 table.
        matches: motif-similarity table with ``assigned``.
        flags: :func:`flag_topics`.

    Returns:
        ``(titles, mapping, matches)``: a flagged topic's title is :func:`flag_title`, its evidence
        ``composition`` or ``cutting bias``, its TF columns empty; its Algorithm 1 pairs get status
        ``flagged: <flag>`` and its database matches ``assigned`` False.
    """
    flagged = flags[flags["flagged"]]
    reasons = {row.topic: f"flagged: {row.flag}" for row in flagged.itertuples(index=False)}
    out = table.copy()
    for row in flagged.itertuples(index=False):
        hit = out["topic"] == row.topic
        source = row.flag if row.flag in (CUTTING_BIAS, UNUSED) else "composition"
        out.loc[hit, ["title", "evidence", "probe_tfs", "motif_tfs"]] = [flag_title(row), source, "", ""]
    matches = matches.copy()
    if len(matches):
        matches["assigned"] = matches["assigned"] & ~matches["query"].isin(list(reasons))
    return out, naming.withdraw(mapping, reasons), matches


def flagged_topics(flags: pd.DataFrame | None) -> set:
    """Names of the flagged topics (empty without flags)."""
    return set() if flags is None else set(flags.loc[flags["flagged"], "topic"])


def write_flags(flags: pd.DataFrame, path, rules: FlagRules, title_rules: titles.TitleRules, bias_source: str) -> None:
    """Writes ``topic_flags.tsv`` atomically under a header line with the rules and the bias motifs' source."""
    from bindvae.io import write_text_atomic

    note = (f"# flags (first that holds): unused = at >= 1/M of the peak in < {rules.min_used_fraction:g} of the "
            f"analysed peaks; cutting bias = best motif match is a bias motif at q < {rules.bias_max_q:g} "
            f"(bias motifs: {bias_source}); low complexity = share of top {title_rules.n_top} k-mers (phi-weighted) "
            f"with dinucleotide entropy <= {rules.max_entropy:g} bit >= {rules.min_low_entropy_share:g}; "
            f"GC-/AT-rich background = |gc - gc_corpus| >= {title_rules.min_gc_shift:g}; background = fold < "
            f"{title_rules.min_fold:g}; all but unused and cutting bias give way to a database TF match (tf_match) "
            f"whose sites, when counted, are enriched in the peaks (p < {rules.site_max_p:g}, "
            f">= {rules.min_site_ratio:g} x background) and followed by the topic's score (site AUROC "
            f">= {rules.min_site_auroc:g})\n")
    write_text_atomic(path, note + flags.to_csv(sep="\t", index=False, float_format="%.6g"), parents=True)
