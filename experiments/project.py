"""Project labelled peak sets (e.g. ChIP-seq peaks per TF) through a trained run (Fig. 4a, b), or label
accessible peaks by ChIP-seq overlap (Fig. 4c, e; Figs. S14, S17, S18).

    python -m experiments.project run_dir=R sets=CTCF:ctcf.fa,MAFK:mafk.fa [max_per_set=N] [seed=0]
        [genome=g.fa] [span=200] [kind=mean|concentration|counts|shares|density|decoder] [umap=true|false]
        [n_neighbors=15]
    python -m experiments.project run_dir=R peaks=atac.narrowPeak genome=g.fa chip=CTCF:ctcf.bed,NRF1:nrf1.bed
        [min_overlap=50] [span=200] [probes=TSV [tf_per_block=A,B,...]] [motif_db=jaspar|FILE.meme]
        [jaspar_release=JASPAR2024] [motif_ranking=encoder|decoder] [kind=mean|concentration]

    run_dir=      the trained run (its saved checkpoint is read, nothing else)
    sets=         two or more NAME:FILE; FILE is FASTA, or BED/narrowPeak when genome= is given
    genome=       genome FASTA the BED/narrowPeak sets are cut from (span bp around each summit)
    max_per_set=  draw at most N peaks per set (seeded; sets.tsv records it); default: every peak
    seed=         seed of that draw and of UMAP
    kind=         latent score: mean (topic proportions, default), concentration, counts (each topic's
                  expected k-mer counts), shares (those counts as shares of the peak's k-mers), density
                  (those counts over all the peak's gapped 8-mers) or decoder (a scan with each topic's
                  k-mers); labelled sets (chip=) take mean or concentration
    umap=         false skips the UMAP (umap_x/umap_y left empty, no umap.png)
    n_neighbors=  UMAP neighbourhood size

Writes into R/analysis/projection/: projection.tsv (peak, set, umap_x, umap_y, every topic's score),
set_topic_auroc.tsv (set, topic, auroc, p_value, best: each topic's AUROC for the set against all
other sets, one-sided Mann-Whitney p, the set's best topic marked), sets.tsv (peaks read, used,
subsampled, lengths per set), skipped.tsv (sequences without an 8 bp A/C/G/T window, peaks the genome
cannot give), umap.png and best_topic_boxplots.png. Prints each set's best topic.

With peaks= and chip=:
    peaks=        accessible peaks (BED/narrowPeak); the span bp window around each summit is scored
                  and is what the ChIP peaks must overlap
    chip=         one or more TF:FILE, each a ChIP-seq BED/narrowPeak; TF is a name (letters, digits,
                  . _ + -) matched, ignoring case, against the names of the probes or motif database
    min_overlap=  a window is labelled with a TF when one of its ChIP peaks overlaps it by this many bp
    probes=       labelled probes: TFs are mapped to topics by Algorithm 1; without probes, by motif
                  similarity against motif_db= (default: JASPAR through pyjaspar)
Writes into R/analysis/chip_overlap/: peak_labels.tsv (peak, window, a 0/1 column per TF, every
topic's score), overlap_scores.tsv (per TF: peaks overlapping and not, its topic, AUROC and one-sided
Mann-Whitney p, and the best topic by overlap), heatmap_rows.tsv (the figures' row order),
skipped.tsv, clr_heatmap.png, chip_labels.png, overlap_boxplots.png and report.html. Prints a line per TF.

A user mistake prints one line, ``error: <message>``, and exits with status 2; nothing is written.
A Hydra application (every key and its default: ``conf/project.yaml``; ``--cfg job`` prints it).
"""

from __future__ import annotations

import logging
import sys

from bindvae.errors import ConfigError
from experiments._cli import App, items, text

_SET_KEYS = ("sets", "max_per_set", "seed", "umap", "n_neighbors")
_CHIP_KEYS = ("peaks", "chip", "min_overlap", "probes", "tf_per_block", "motif_db", "jaspar_release", "motif_ranking")


def _given(args: dict, key: str) -> bool:
    """Whether the config sets ``key`` to something other than conf/project.yaml's default."""
    return args[key] != APP.defaults()[key]


def _check(args: dict) -> None:
    if not text(args["run_dir"]):
        raise ConfigError("run_dir", "run_dir= is required")
    if text(args["peaks"]) or text(args["chip"]):
        for key in ("peaks", "chip", "genome"):
            if not text(args[key]):
                raise ConfigError(key, f"{key}= is required with peaks= and chip= (labelling by ChIP-seq overlap)")
        wrong = [key for key in _SET_KEYS if _given(args, key)]
        if wrong:
            raise ConfigError(wrong[0], f"{wrong[0]}= belongs to sets= projections, not to peaks= and chip=")
    elif not text(args["sets"]):
        raise ConfigError("sets", "sets= is required (or peaks=, genome= and chip= to label peaks by ChIP-seq overlap)")
    else:
        wrong = [key for key in _CHIP_KEYS if _given(args, key)]
        if wrong:
            raise ConfigError(wrong[0], f"{wrong[0]}= belongs to peaks= and chip=, not to sets= projections")


def _chip(args: dict) -> str:
    """Label accessible peaks by ChIP-seq overlap; returns the printed summary."""
    from bindvae.analysis import chip_overlap
    from bindvae.analysis.chip_pipeline import project_chip, summary_text
    from bindvae.analysis.pipeline import AnalysisOptions

    options = AnalysisOptions(probes=text(args["probes"]), tf_per_block=tuple(items(args["tf_per_block"])),
                              motif_db=text(args["motif_db"]) or "", jaspar_release=text(args["jaspar_release"]) or "",
                              kind=text(args["kind"]) or "", motif_ranking=text(args["motif_ranking"]) or "")
    out = project_chip(text(args["run_dir"]), text(args["peaks"]), text(args["genome"]),
                       chip_overlap.parse_chip(",".join(items(args["chip"]))),
                       min_overlap=_int(args, "min_overlap"), span=_int(args, "span"), options=options)
    return summary_text(out)


def _int(args: dict, key: str):
    value = args[key]
    if value is None:
        return None
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(key, f"must be an integer, got {value!r}") from None


def _bool(args: dict, key: str) -> bool:
    value = str(args[key]).lower()
    if value not in ("true", "false"):
        raise ConfigError(key, f"must be true or false, got {args[key]!r}")
    return value == "true"


def run(args: dict) -> int:
    """Projects the sets (or labels the peaks by ChIP-seq overlap); prints the summary."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("absl", "jax._src.xla_bridge", "numba"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _check(args)
    if text(args["peaks"]):
        sys.stdout.write(_chip(args))
        return 0
    from bindvae.analysis import projection
    from bindvae.analysis.projection_pipeline import project_sets, summary_text

    out = project_sets(text(args["run_dir"]), projection.parse_sets(",".join(items(args["sets"]))),
                       genome=text(args["genome"]), span=_int(args, "span"), max_per_set=_int(args, "max_per_set"),
                       seed=_int(args, "seed"), kind=text(args["kind"]) or "", umap=_bool(args, "umap"),
                       n_neighbors=_int(args, "n_neighbors"))
    sys.stdout.write(summary_text(out))
    return 0


APP = App("project", __doc__, run, list_keys=("sets", "chip", "tf_per_block"))


def main(argv: list[str] | None = None) -> int:
    """``python -m experiments.project`` (Hydra's command line) or ``main([...key=value])`` from a test."""
    return APP.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
