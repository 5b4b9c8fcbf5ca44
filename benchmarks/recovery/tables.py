"""The recovery benchmark's tables: methods side by side with the yardsticks, the summary, and Markdown."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.recovery.config import RecoveryConfig
from benchmarks.recovery.metrics import EXTRA_SCORES
from bindvae.config import to_dict
from bindvae.io import write_text_atomic


def side_by_side(methods: dict, yardsticks: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-feature table: the yardsticks (``oracle AUROC``, ``limit AUROC``) when given, then
    ``<method> topic / motif / q / recovered / AUROC / topic AUROC / lookalikes`` and ``<method>
    auroc_vs_limit`` (AUROC over the supervised limit) for each method; AUROC is the signature score's
    (the topic's alone when it has no look-alikes), topic AUROC the topic's own."""
    first = next(iter(methods.values())).table
    merged = first[["feature", "kind", "fraction", "matrix_id"]].copy()
    if yardsticks is not None and not yardsticks.empty:
        part = yardsticks.set_index("feature")
        merged["oracle AUROC"] = merged["feature"].map(part["oracle_auroc"])
        merged["limit AUROC"] = merged["feature"].map(part["limit_auroc"])
    for name, result in methods.items():
        part = result.table.set_index("feature")
        for column, label in (("topic", "topic"), ("consensus", "motif"), ("part", "part"), ("q_value", "q"),
                              ("recovered", "recovered"), ("auroc", "AUROC"), ("topic_auroc", "topic AUROC"),
                              ("lookalikes", "lookalikes"), *((f"{s}_auroc", f"{s} AUROC") for s in EXTRA_SCORES),
                              ("auroc_vs_limit", "auroc_vs_limit"), *((f"{s}_vs_limit",) * 2 for s in EXTRA_SCORES)):
            if column in part:
                merged[f"{name} {label}"] = merged["feature"].map(part[column])
    return merged


def _recovered_text(s: dict) -> str:
    return f"{s['n_recovered']}/{s['n_motifs']}"


def _rarest_text(s: dict) -> str:
    return f"{s['rarest']} ({s['rarest_fraction']:.0%}): {'yes' if s['rarest_recovered'] else 'no'}"


_EXTRA_LABELS = {"scan": "the scan score (each topic's top k-mers counted; ours)",
                 "counts": "expected k-mer counts (how many of the peak's k-mers each topic generated; ours)",
                 "shares": "those counts as shares of the peak's k-mers (one E-step, no prior; ours)",
                 "density": ("those counts over all the peak's gapped 8-mers, chosen or not (latent_scores' "
                             "default; ours)"),
                 "concentration": "the encoder's Dirichlet concentration (the reference's output; BindVAE only)"}


def _count_text(summary: dict, key: str, total: int) -> str:
    """``k/total`` from a method's summary, ``n/a`` for a method without that score."""
    return f"{summary[key]}/{total}" if key in summary else "n/a"


def _mean_text(summary: dict, key: str) -> str:
    """A method's mean to three decimals, ``n/a`` without that score."""
    return f"{summary[key]:.3f}" if key in summary else "n/a"


def _extra_limit_rows(row, vae: dict, name: str) -> list:
    n_common, n_limit = vae["n_common"], vae["n_with_limit"]
    common_key, limit_key, mean_key = f"n_common_{name}_at_limit", f"n_{name}_at_limit", f"mean_{name}_vs_limit"
    return [
        row(f"the same with {_EXTRA_LABELS[name]}", f"{n_common}/{n_common}",
            lambda r: _count_text(r.summary, common_key, n_common), vae[common_key] == n_common,
            f"{n_common - vae[common_key]} motif(s) short"),
        row(f"motifs with {name} AUROC >= 0.9 x supervised limit", f"{n_limit}/{n_limit}",
            lambda r: _count_text(r.summary, limit_key, r.summary["n_with_limit"]), vae[limit_key] == n_limit, ""),
        row(f"mean {name} AUROC / supervised limit, motifs", "",
            lambda r: _mean_text(r.summary, mean_key), "", ""),
    ]


def summary_table(methods: dict, config: RecoveryConfig) -> pd.DataFrame:
    """One row per metric, one column per method, the target, and whether BindVAE meets it ``met``."""
    vae = methods["BindVAE"].summary
    n_motifs = vae["n_motifs"]
    n_needed = max(n_motifs - 1, 1)
    lda_perplexity = methods["LDA"].perplexity if "LDA" in methods else float("nan")

    def row(metric, target, text, met, gap=""):
        return {"metric": metric, "target": target, **{n: text(r) for n, r in methods.items()},
                "met": "yes" if met is True else ("no" if met is False else met), "gap": "" if met is True else gap}

    vae_perplexity = methods["BindVAE"].perplexity

    rows = [
        row(f"planted motifs recovered (q < {config.q_threshold:g})", f">= {n_needed}/{n_motifs}",
            lambda r: _recovered_text(r.summary), vae["n_recovered"] >= n_needed,
            f"{n_needed - vae['n_recovered']} motif(s) short"),
        row("rarest motif recovered", "yes", lambda r: _rarest_text(r.summary), vae["rarest_recovered"]),
        row("min AUROC, motifs in >= 10% of peaks", ">= 0.9", lambda r: f"{r.summary['min_auroc_common']:.3f}",
            vae["min_auroc_common"] >= 0.9, f"{0.9 - vae['min_auroc_common']:.3f} short"),
        row("held-out perplexity (ELBO bound per k-mer)", "< LDA", lambda r: f"{r.perplexity:,.0f}",
            "n/a" if np.isnan(lda_perplexity) else bool(vae_perplexity < lda_perplexity),
            "" if np.isnan(lda_perplexity) else f"{vae_perplexity / lda_perplexity - 1:+.1%} vs LDA"),
    ]
    if "n_at_limit" in vae:
        rows.append(row("motifs with AUROC >= 0.9 x supervised limit", f"{vae['n_with_limit']}/{vae['n_with_limit']}",
                        lambda r: f"{r.summary['n_at_limit']}/{r.summary['n_with_limit']}",
                        vae["n_at_limit"] == vae["n_with_limit"],
                        f"{vae['n_with_limit'] - vae['n_at_limit']} motif(s) short"))
        rows.append(row("min AUROC / supervised limit, motifs", ">= 0.9",
                        lambda r: f"{r.summary['min_auroc_vs_limit']:.3f}", vae["min_auroc_vs_limit"] >= 0.9,
                        f"{0.9 - vae['min_auroc_vs_limit']:.3f} short"))
        n_common = vae["n_common"]
        rows.append(row("motifs in >= 5% of peaks with AUROC >= 0.9 x limit", f"{n_common}/{n_common}",
                        lambda r: f"{r.summary['n_common_at_limit']}/{r.summary['n_common']}",
                        vae["n_common_at_limit"] == n_common, f"{n_common - vae['n_common_at_limit']} motif(s) short"))
        for name in EXTRA_SCORES:
            if f"n_{name}_at_limit" in vae:
                rows.extend(_extra_limit_rows(row, vae, name))
    rows.append(row("mean AUROC, motifs", "", lambda r: f"{r.summary['mean_auroc_motifs']:.3f}", "", ""))
    for name in EXTRA_SCORES:
        if f"mean_{name}_auroc_motifs" in vae:
            rows.append(row(f"mean {name} AUROC, motifs", "",
                            lambda r, n=name: _mean_text(r.summary, f"mean_{n}_auroc_motifs"), "", ""))
    for peer in ("LDA", "Gibbs LDA"):
        if peer not in methods:
            continue
        other = methods[peer].summary
        better = (vae["n_recovered"], vae["min_auroc_common"]) > (other["n_recovered"], other["min_auroc_common"])
        rows.append(row(f"recovery better than {peer} (motifs, then AUROC)", "yes", lambda r: "", bool(better),
                        f"{vae['n_recovered']} vs {other['n_recovered']} motifs"))
    if vae["has_pair"]:
        rows.append(row("cooperative pair", "found", lambda r: r.summary["pair"], vae["pair"] != "missed"))
    if vae.get("pair_probes"):
        rows.append(row("cooperative pair by probes (pair vs each partner)", "one composite topic",
                        lambda r: r.summary.get("pair_probes", "n/a"), vae["pair_probes"].startswith("one composite")))
    n_non_tf = int(vae["non_tf_own_topics"].split("/")[1])
    if n_non_tf:
        rows.append(row("repeats / GC-rich with their own topic (AUROC >= 0.9)", f"{n_non_tf}/{n_non_tf}",
                        lambda r: r.summary["non_tf_own_topics"], vae["non_tf_own_topics"] == f"{n_non_tf}/{n_non_tf}"))
    rows += [
        row("unused topics (no peak at >= 1/M; not matched to motifs)", "",
            lambda r: str(r.summary.get("unused_topics", 0)), "", ""),
        row("training length", "", lambda r: f"{r.iterations:,} {r.unit}", "", ""),
        row("train wall time (s)", "", lambda r: f"{r.train_s:.0f}", "", ""),
        row("analysis wall time (s)", "", lambda r: f"{r.analysis_s:.0f}", "", ""),
    ]
    return pd.DataFrame(rows)


def _markdown(frame: pd.DataFrame) -> str:
    def cell(value) -> str:
        if isinstance(value, (bool, np.bool_)):
            return "yes" if value else "no"
        if isinstance(value, (float, np.floating)):
            return "" if np.isnan(value) else f"{value:.3g}"
        return str(value)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in values) + " |" for values in frame.itertuples(index=False)]
    return "\n".join(lines)


def _peers_text(config: RecoveryConfig) -> str:
    lda = f"LDA: scikit-learn online, {config.lda.passes} passes" if config.lda.enabled else "LDA not run"
    gibbs = config.gibbs_lda
    if not gibbs.enabled:
        return f"{lda}; Gibbs LDA not run"
    budget = " or BindVAE's training wall time, whichever first" if gibbs.match_bindvae_time else ""
    return (f"{lda}; Gibbs LDA: tomotopy collapsed Gibbs, alpha {gibbs.alpha:g} (re-estimated), eta {gibbs.eta:g}, "
            f"{gibbs.workers} worker(s), at most {gibbs.max_iterations:,} sweeps{budget}")


def _kmers_text(model) -> str:
    if model.kmer_selection == "none":
        return ", all 112,800 gapped 8-mers"
    return (f", the {model.kmer_selection_size:,} gapped 8-mers of highest {model.kmer_selection} "
            f"(`model.kmer_selection`, ours; the peers see the same k-mers, the yardsticks all)")


def _decoder_text(model) -> str:
    parts = []
    if model.decoder != "mixture":
        parts.append(f"{model.decoder} decoder (`model.decoder`, ours)")
    if model.background_topic:
        parts.append("the last topic held at the corpus frequencies (`model.background_topic`, ours)")
    return "".join(f", {part}" for part in parts)


def _yardsticks_text(config: RecoveryConfig, yardsticks: pd.DataFrame | None) -> str:
    if yardsticks is None or yardsticks.empty:
        return ""
    sticks = config.yardsticks
    background = ("the set's base composition (both strands)" if sticks.background == "corpus"
                  else "a uniform background")
    return (f"Yardsticks per feature: oracle = AUROC of each peak's best log-odds score with the planted PWM over "
            f"both strands, against {background} ({yardsticks.attrs.get('oracle_s', 0):.0f} s); supervised limit = "
            f"scikit-learn L2 logistic regression (C = {sticks.limit_c:g}) on the binarised gapped 8-mer counts, "
            f"{sticks.limit_folds}-fold stratified cross-validated decision function (seed {config.seed}; "
            f"{yardsticks.attrs.get('limit_s', 0):.0f} s); `auroc_vs_limit` = a method's AUROC / the limit.\n")


def markdown_report(config: RecoveryConfig, features: pd.DataFrame, summary: pd.DataFrame, machine: str = "",
                    yardsticks: pd.DataFrame | None = None) -> str:
    """Both tables as Markdown under a heading naming the set, the model, the peers and the yardsticks."""
    model, train = config.run.model, config.run.train
    data = config.data
    lda = _peers_text(config)
    database = (f"{config.jaspar_release} CORE vertebrates (pyjaspar)" if config.motif_db == "jaspar"
                else Path(config.motif_db).name)
    shown = features.copy()
    shown["fraction"] = [f"{f:.0%}" for f in shown["fraction"]]
    head = (
        f"### Planted-motif recovery: `{config.name}`\n\n"
        f"{data.n_peaks:,} peaks x {data.length} bp (seed {config.seed}), M = {model.num_topics} topics, "
        f"hidden {list(model.hidden_sizes)}, alpha {model.alpha:g}{_decoder_text(model)}, "
        f"{train.steps:,} steps of batch {train.batch_size}, "
        f"lr {train.learning_rate:g}{_kmers_text(model)}; {lda}. Motif database: {database}. {machine}\n\n"
        f"{_yardsticks_text(config, yardsticks)}"
    )
    notes = f"\n{config.notes.strip()}\n" if config.notes.strip() else ""
    return f"{head}\n{_markdown(summary)}\n\n{_markdown(shown)}\n{notes}"


def write_tables(out_dir: Path, config: RecoveryConfig, features: pd.DataFrame, summary: pd.DataFrame,
                 methods: dict, fasta: str, machine: str = "", yardsticks: pd.DataFrame | None = None) -> dict:
    """Writes recovery.tsv, recovery_summary.tsv, recovery.md and recovery.json; returns their paths."""
    paths = {"features": out_dir / "recovery.tsv", "summary": out_dir / "recovery_summary.tsv",
             "markdown": out_dir / "recovery.md", "json": out_dir / "recovery.json"}
    write_text_atomic(paths["features"], features.to_csv(sep="\t", index=False, float_format="%.4g"), parents=True)
    write_text_atomic(paths["summary"], summary.to_csv(sep="\t", index=False), parents=True)
    write_text_atomic(paths["markdown"], markdown_report(config, features, summary, machine, yardsticks), parents=True)
    record = {"name": config.name, "fasta": fasta, "config": to_dict(config),
              "methods": {n: {"summary": r.summary, "perplexity": r.perplexity, "train_s": r.train_s,
                              "analysis_s": r.analysis_s, "iterations": r.iterations, "unit": r.unit}
                          for n, r in methods.items()}}
    if yardsticks is not None and not yardsticks.empty:
        record["yardsticks"] = {"per_feature": yardsticks.to_dict(orient="records"), **yardsticks.attrs}
    write_text_atomic(paths["json"], json.dumps(record, indent=1, default=str) + "\n", parents=True)
    return {k: str(v) for k, v in paths.items()}
