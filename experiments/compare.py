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
``error: <message>``, and exits with status 2; nothing is written. A Hydra application (every key
and its default: ``conf/compare.yaml``; ``--cfg job`` prints it).
"""

from __future__ import annotations

import logging
import sys

from bindvae.errors import ConfigError
from experiments._cli import App, items, text


def run(args: dict) -> int:
    """Compares the runs; prints one line per pair."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("absl", "jax._src.xla_bridge"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not items(args["runs"]):
        raise ConfigError("runs", "give runs=A,B[,C...] (two or more run directories)")
    value = args["min_similarity"]
    try:
        if isinstance(value, bool):
            raise ValueError
        min_similarity = float(value)
    except (TypeError, ValueError):
        raise ConfigError("min_similarity", f"must be a number, got {value!r}") from None
    from bindvae.analysis.runs_pipeline import compare_runs, summary_text

    out = compare_runs(items(args["runs"]), items(args["labels"]) or None, text(args["out"]),
                       min_similarity=min_similarity)
    sys.stdout.write(summary_text(out))
    return 0


APP = App("compare", __doc__, run, list_keys=("runs", "labels"))


def main(argv: list[str] | None = None) -> int:
    """``python -m experiments.compare`` (Hydra's command line) or ``main([...key=value])`` from a test."""
    return APP.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
