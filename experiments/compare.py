"""Compare the topics of several trained runs (Figs. S6, S8, S16): PCA, topic matching, reproducibility.

    python -m experiments.compare runs=A,B[,C...] [labels=x,y,...] [out=DIR] [min_similarity=0.5]

    runs=            two or more run directories (their saved checkpoints are read, nothing else)
    labels=          a name per run in tables and figures (default: the directories' names)
    out=             output folder (default: <first run>/analysis/compare/)
    min_similarity=  Hungarian-paired topics with at least this similarity count as reproduced

Similarity of two topics: Pearson correlation of their k-mer distributions as centred log-ratios
(clr(phi) = theta - row mean). Writes theta_pca.tsv/.png (PCA of every run's topics, coloured by run),
topic_matching.tsv (run_a, run_b, topic_a, topic_b, similarity, matched for every two runs),
reproducibility.tsv/.png (share of topics reproduced per pair; TFs in common where both runs were
analysed) and seed_spread.tsv (runs whose configs differ only in train.seed: the spread of their
reproducibility). Prints one line per pair of runs. A user mistake prints one line,
``error: <message>``, and exits with status 2; nothing is written.
"""

from __future__ import annotations

import logging
import sys

from bindvae.errors import BindVAEError, ConfigError
from experiments._cli import help_requested, parse_key_values

_KEYS = ("runs", "labels", "out", "min_similarity")


def _parse(argv: list[str]) -> dict[str, str]:
    args = parse_key_values(argv, _KEYS)
    if not args.get("runs"):
        raise ConfigError("runs", "give runs=A,B[,C...] (two or more run directories)")
    return args


def _items(text: str) -> list[str]:
    return [t for t in text.split(",") if t]


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("absl", "jax._src.xla_bridge"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    argv = sys.argv[1:] if argv is None else argv
    if help_requested(argv, __doc__):
        return 0
    try:
        args = _parse(argv)
        options = {}
        if "min_similarity" in args:
            try:
                options["min_similarity"] = float(args["min_similarity"])
            except ValueError:
                raise ConfigError("min_similarity", f"must be a number, got {args['min_similarity']!r}") from None
        from bindvae.analysis.runs_pipeline import compare_runs, summary_text

        out = compare_runs(_items(args["runs"]), _items(args.get("labels", "")) or None, args.get("out") or None,
                           **options)
    except BindVAEError as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    sys.stdout.write(summary_text(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
