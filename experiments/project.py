"""Project labelled peak sets (e.g. ChIP-seq peaks per TF) through a trained run (Fig. 4a, b).

    python -m experiments.project run_dir=R sets=CTCF:ctcf.fa,MAFK:mafk.fa [max_per_set=N] [seed=0]
        [genome=g.fa] [span=200] [kind=mean|concentration] [umap=true|false] [n_neighbors=15]

    run_dir=      the trained run (its saved checkpoint is read, nothing else)
    sets=         two or more NAME:FILE; FILE is FASTA, or BED/narrowPeak when genome= is given
    genome=       genome FASTA the BED/narrowPeak sets are cut from (span bp around each summit)
    max_per_set=  draw at most N peaks per set (seeded; sets.tsv records it); default: every peak
    seed=         seed of that draw and of UMAP
    kind=         latent score: mean (topic proportions, default) or concentration
    umap=         false skips the UMAP (umap_x/umap_y left empty, no umap.png)
    n_neighbors=  UMAP neighbourhood size

Writes into R/analysis/projection/: projection.tsv (peak, set, umap_x, umap_y, every topic's score),
set_topic_auroc.tsv (set, topic, auroc, p_value, best: each topic's AUROC for the set against all
other sets, one-sided Mann-Whitney p, the set's best topic marked), sets.tsv (peaks read, used,
subsampled, lengths per set), skipped.tsv (sequences without an 8 bp A/C/G/T window, peaks the genome
cannot give), umap.png and best_topic_boxplots.png. Prints each set's best topic. A user mistake
prints one line, ``error: <message>``, and exits with status 2; nothing is written.
"""

from __future__ import annotations

import logging
import sys

from bindvae.errors import BindVAEError, ConfigError
from experiments._cli import help_requested, parse_key_values

_KEYS = ("run_dir", "sets", "max_per_set", "seed", "genome", "span", "kind", "umap", "n_neighbors")


def _parse(argv: list[str]) -> dict[str, str]:
    args = parse_key_values(argv, _KEYS)
    for key in ("run_dir", "sets"):
        if not args.get(key):
            raise ConfigError(key, f"{key}= is required")
    return args


def _int(args: dict, key: str, default):
    if key not in args:
        return default
    try:
        return int(args[key])
    except ValueError:
        raise ConfigError(key, f"must be an integer, got {args[key]!r}") from None


def _bool(args: dict, key: str, default: bool) -> bool:
    value = args.get(key, str(default)).lower()
    if value not in ("true", "false"):
        raise ConfigError(key, f"must be true or false, got {args[key]!r}")
    return value == "true"


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("absl", "jax._src.xla_bridge", "numba"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    argv = sys.argv[1:] if argv is None else argv
    if help_requested(argv, __doc__):
        return 0
    try:
        args = _parse(argv)
        from bindvae.analysis import projection
        from bindvae.analysis.projection_pipeline import project_sets, summary_text

        out = project_sets(args["run_dir"], projection.parse_sets(args["sets"]), genome=args.get("genome") or None,
                           span=_int(args, "span", 200), max_per_set=_int(args, "max_per_set", None),
                           seed=_int(args, "seed", 0), kind=args.get("kind", "mean"), umap=_bool(args, "umap", True),
                           n_neighbors=_int(args, "n_neighbors", 15))
    except BindVAEError as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    sys.stdout.write(summary_text(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
