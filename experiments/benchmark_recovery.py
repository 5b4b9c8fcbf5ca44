"""Planted-motif recovery benchmark: BindVAE against two LDA peers on the same features, with yardsticks.

The peers are scikit-learn's online LDA and tomotopy's collapsed Gibbs LDA (given BindVAE's training
wall time); every AUROC is shown beside the oracle (a scan with the planted PWM) and the supervised
limit (cross-validated logistic regression on the same counts), and as a fraction of that limit.

    python -m experiments.benchmark_recovery                          # default set, ~40 min on 2 CPU cores
    python -m experiments.benchmark_recovery benchmark_recovery=full  # the paper's model sizes (GPU)
    python -m experiments.benchmark_recovery benchmark_recovery=demo run.train.steps=300 lda.enabled=false

Writes into ``outputs/benchmark_recovery/<preset>/``: ``data/planted.fa`` with its truth, motifs and
manifest, BindVAE's run directory ``bindvae/``, and ``recovery.tsv``, ``recovery_summary.tsv``,
``recovery.md`` (both tables, Markdown) and ``recovery.json``. Prints the Markdown tables. A user
mistake prints one line, ``error: <message>``, and exits with status 2.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from bindvae.errors import BindVAEError


def machine_line() -> str:
    """The machine, for the table's heading."""
    from experiments.benchmark import machine_description

    return f"Machine: {machine_description()}."


@hydra.main(config_path="../conf", config_name="benchmark_recovery", version_base="1.3")
def main(cfg: DictConfig) -> None:
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every checkpoint step at INFO
    try:
        from benchmarks.recovery.config import config_from_dict
        from benchmarks.recovery.pipeline import run_recovery

        values = OmegaConf.to_container(cfg, resolve=True)
        values.pop("hydra", None)
        config = config_from_dict(values)
        result = run_recovery(config, HydraConfig.get().runtime.output_dir, machine=machine_line())
    except BindVAEError as err:
        sys.stderr.write(f"error: {err}\n")
        raise SystemExit(2) from None
    sys.stdout.write(Path(result.paths["markdown"]).read_text(encoding="utf-8"))
    logging.getLogger(__name__).info("wrote %s", result.paths["markdown"])


def check_arguments(argv: list[str]) -> list[str]:
    """The arguments for Hydra, each key=value checked first (:func:`experiments._cli.check_overrides`,
    shared by every entry point), so that an unknown key or preset is one line naming it.

    Raises:
        ConfigError: an unknown key (``run.model.colour=1``) or an unknown preset (``benchmark_recovery=big``).
    """
    from experiments._cli import HELP_FLAGS, MULTIRUN_FLAGS, check_overrides, split_flags

    flags, overrides = split_flags(argv)
    if any(f in HELP_FLAGS or f == "--hydra-help" for f in flags):
        return argv
    return [*flags, *check_overrides("benchmark_recovery", overrides, any(f in MULTIRUN_FLAGS for f in flags))]


if __name__ == "__main__":
    try:
        sys.argv[1:] = check_arguments(sys.argv[1:])
    except BindVAEError as err:
        sys.stderr.write(f"error: {err}\n")
        raise SystemExit(2) from None
    main()
