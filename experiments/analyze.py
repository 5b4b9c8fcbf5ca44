"""Analyse a trained run (or select models across a sweep) from its checkpoints.

    python -m experiments.analyze run_dir=DIR [peaks=FASTA|NPZ] [probes=TSV] [tf_per_block=A,B,...]
        [motif_ranking=encoder|decoder]
        [motif_db=jaspar|none|FILE.meme] [jaspar_release=JASPAR2024] [compare=OTHER_RUN_DIR]
        [kind=mean|concentration] [seed=0] [gold=TFS.txt] [pairs=jaspar|FILE.tsv] [n_15mers=1000000]
        [bias_motifs=FILE.meme] [signature_q=0.05] [signature_piece_q=0.25] [signature_apart_q=0.25]
        [call_score=density|shares|counts|mean|concentration] [call_ratio=2]
        [split_motifs=true]
        [naming thresholds, below]
    python -m experiments.analyze sweep_dir=DIR [probes=TSV] [motif_db=...] [n_best=3] [max_topics_per_tf=3]
        [gold=TFS.txt]

gold= is a list of TF names, one per line (e.g. the TFs expressed in the cell type): retrieval.tsv
gets the precision, recall and F1 of the TFs named by Algorithm 1 and, separately, by motif
similarity, against the gold TFs the probes (or the motif database) can name (Table S4); a sweep
adds each run and the ensemble of its best runs.

Naming thresholds (README, "How topics get their names"), with their defaults:

    n_probes_per_tf=200      probes sampled per TF from the database's PWMs when probes= is not given
    max_q=0.05               Algorithm 1: Benjamini-Hochberg level
    min_effect=0.75          Algorithm 1: effect-size (AUROC) floor
    max_tfs_per_topic=3      most TFs per topic, by probes and by motif similarity each
    motif_max_q=0.05         motif similarity: q-value level
    min_repeat_share=0.5     titles: share of repeat k-mers from which a topic is "low complexity"
    min_fold=20              titles: fold over the other topics below which a topic is "background"
    min_gc_shift=0.25        titles: GC difference from the corpus for "AT-rich" / "GC-rich"
    max_topics_per_tf=3      model selection: a TF on more topics than this does not count
    max_entropy=1.0          flags: dinucleotide entropy (bits) up to which a k-mer is low complexity
    min_low_entropy_share=0.5  flags: share of such top k-mers from which a topic is "low complexity"
    bias_max_q=0.05          flags: q-value of the best match to a cutting-bias motif
    min_used_fraction=0.001  flags: share of peaks (topic at >= 1/M of the peak) below which a topic is "unused"
    site_max_p=0.001         flags: a TF match lifts a composition flag when its sites are enriched at this p
    min_site_ratio=1.5       flags: ... and in at least this many times the share of background peaks with a site
    min_site_auroc=0.7       flags: ... and followed by the topic's score (site_auroc) at least this well

Cooperative binding (README, "Cooperative binding and non-TF topics"): pairs=jaspar samples probes of
JASPAR's heterodimer matrices and of each partner (n_probes_per_tf each); pairs=FILE reads a TSV with
columns pair (A::B, or A for a partner's probes) and sequence. Writes cooperative.tsv and, for topics
with an assigned pair, composite.meme and logos from n_15mers sampled 15-mers. Every run writes
topic_flags.tsv (unused, low complexity, GC-/AT-rich background, background, cutting bias).

signature_q= (ours): topics whose motifs match each other at this q-value are look-alikes, and so are
topics that match a topic's best database motif at it (namesakes: the pieces of a long site), and
topics whose own best database match is that motif too at q < signature_piece_q (0.25; 0: off),
less look-alikes whose confident best database matches differ, unless one matches the other's best at
q < signature_apart_q (0.25; 0: off); listed in topic_titles.tsv and the report; peak_tfs.tsv scores
each topic together with them (a signature split over several topics). 0 scores every topic alone.

call_score= (ours, default density) and call_ratio= (ours, default 2): peak_tfs.tsv calls a topic's TF
in a peak only where the topic's signature score is at least call_ratio times its mean over the run's
training peaks (the analysed peaks' own when the training data cannot be read); score_i is that ratio
times the assignment's effect size. The score is call_score, a latent_scores kind: density (each
topic's expected k-mers as a fraction of all the peak's gapped 8-mers; features holding only the
model's chosen k-mers are scored by shares) or shares, counts, mean, concentration. call_score=mean
call_ratio=1.5 gives the calls before density. call_ratio=0 calls wherever an assigned topic scores anything.

split_motifs= (ours, default true): a topic whose 10-mers hold two unrelated sites (a quarter or more
of them fitting the best 10-mer poorly) also gets a motif of each, topic_NNNa and topic_NNNb, in
motifs.meme, logos/, motif_matches.tsv and the report; their matches are listed, never used for names.

Without peaks=, the peaks scored are the run's own training sequences, read from the data config
saved in its checkpoint (all of them, training and validation split alike).

Writes into ``DIR/analysis/`` (see ``bindvae.analysis.pipeline``; report.html is described in the
README's outputs section) and prints a short summary: how many topics were named and how, the
best-supported ones with their q-values, the report's path.
A user mistake prints one line,
``error: <message>``, and exits with status 2.

A Hydra application (every key and its default: ``conf/analyze.yaml``): ``--cfg job`` prints the
config, and ``-m run_dir=A,B`` analyses several runs one after the other.
"""

from __future__ import annotations

import dataclasses
import logging
import sys

from bindvae.config import check_switches
from bindvae.errors import ConfigError
from experiments._cli import App, items, text

_FLOATS = {"max_q": None, "min_effect": None, "motif_max_q": None, "min_repeat_share": "titles",
           "min_fold": "titles", "min_gc_shift": "titles", "max_entropy": "flags", "min_low_entropy_share": "flags",
           "bias_max_q": "flags", "min_used_fraction": "flags", "site_max_p": "flags", "min_site_ratio": "flags",
           "min_site_auroc": "flags"}
_INTS = {"max_tfs_per_topic": None}
_NESTED = ("titles", "flags")


def _number(args: dict, key: str, kind=int):
    value = args[key]
    try:
        if isinstance(value, bool) or (kind is int and isinstance(value, float) and not value.is_integer()):
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(key, f"must be {'an integer' if kind is int else 'a number'}, got {value!r}") from None


def _rules(args: dict, defaults):
    """The naming rules with the thresholds of the config."""
    nested = {
        group: dataclasses.replace(
            getattr(defaults, group),
            **{k: _number(args, k, float) for k, where in _FLOATS.items() if where == group},
        )
        for group in _NESTED
    }
    rules = {k: _number(args, k, float) for k, where in _FLOATS.items() if not where}
    rules.update({k: _number(args, k) for k in _INTS})
    return dataclasses.replace(defaults, **nested, **rules)


def run(args: dict) -> int:
    """Analyse ``args["run_dir"]`` (or select models across ``args["sweep_dir"]``); prints the summary."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("absl", "jax._src.xla_bridge"):  # checkpoint and backend chatter, not the analysis's
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if (text(args["run_dir"]) is None) == (text(args["sweep_dir"]) is None):
        raise ConfigError("run_dir", "give exactly one of run_dir=DIR or sweep_dir=DIR")
    from bindvae.analysis.pipeline import AnalysisOptions, analyze_run, analyze_sweep
    from bindvae.analysis.report_content import summary_text

    defaults = AnalysisOptions()
    check_switches(AnalysisOptions, {"split_motifs": args["split_motifs"]})
    options = AnalysisOptions(
        peaks=text(args["peaks"]),
        probes=text(args["probes"]),
        tf_per_block=tuple(items(args["tf_per_block"])),
        motif_db=text(args["motif_db"]) or "",
        jaspar_release=text(args["jaspar_release"]) or "",
        compare=text(args["compare"]),
        kind=text(args["kind"]) or "",
        motif_ranking=text(args["motif_ranking"]) or "",
        seed=_number(args, "seed"),
        n_probes_per_tf=_number(args, "n_probes_per_tf"),
        rules=_rules(args, defaults.rules),
        max_topics_per_tf=_number(args, "max_topics_per_tf"),
        gold=text(args["gold"]),
        pairs=text(args["pairs"]),
        n_15mers=_number(args, "n_15mers"),
        bias_motifs=text(args["bias_motifs"]),
        signature_q=_number(args, "signature_q", float),
        signature_piece_q=_number(args, "signature_piece_q", float),
        signature_apart_q=_number(args, "signature_apart_q", float),
        call_score=text(args["call_score"]) or "",
        call_ratio=_number(args, "call_ratio", float),
        split_motifs=args["split_motifs"],
    )
    if text(args["sweep_dir"]):
        out = analyze_sweep(text(args["sweep_dir"]), options, n_best=_number(args, "n_best"))
        summary = f"Model selection: {out / 'model_selection.tsv'} and {out / 'ensemble.tsv'}\n"
    else:
        out = analyze_run(text(args["run_dir"]), options)
        summary = summary_text(out)
    if options.gold:
        from bindvae.analysis.retrieval import summary_lines

        summary += summary_lines(out / "retrieval.tsv")
    sys.stdout.write(summary)
    return 0


APP = App("analyze", __doc__, run, list_keys=("tf_per_block",))


def main(argv: list[str] | None = None) -> int:
    """``python -m experiments.analyze`` (Hydra's command line) or ``main([...key=value])`` from a test."""
    return APP.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
