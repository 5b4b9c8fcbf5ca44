"""Recovery on real labelled probes: every TF family a topic of its own, over several training seeds.

    python -m experiments.benchmark_probes probes=selex_probes_sample100.tsv        # 5 seeds, ~2 min on 2 CPU cores
    python -m experiments.benchmark_probes probes=P.tsv seeds=[0,1,2] run.train.steps=600 run.model.num_topics=8

Writes into ``outputs/benchmark_probes/<name>/``: ``probes.tsv`` (per seed, score and family: the best
topic, its AUROC, the family's supervised limit and the fraction of it), ``probes_summary.tsv`` (over
the seeds), ``probes.md`` (both as Markdown, printed), ``data/probes.fa`` and one run directory per seed.
A user mistake prints one line, ``error: <message>``, and exits with status 2.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from bindvae.errors import BindVAEError


@hydra.main(config_path="../conf", config_name="benchmark_probes", version_base="1.3")
def main(cfg: DictConfig) -> None:
    logging.getLogger("absl").setLevel(logging.WARNING)
    try:
        from benchmarks.recovery.probes import config_from_dict, run_probes
        from experiments.benchmark_recovery import machine_line

        values = OmegaConf.to_container(cfg, resolve=True)
        values.pop("hydra", None)
        result = run_probes(config_from_dict(values), HydraConfig.get().runtime.output_dir, machine=machine_line())
    except BindVAEError as err:
        sys.stderr.write(f"error: {err}\n")
        raise SystemExit(2) from None
    sys.stdout.write(Path(result["paths"]["markdown"]).read_text(encoding="utf-8"))


if __name__ == "__main__":
    from experiments._cli import HELP_FLAGS, MULTIRUN_FLAGS, check_overrides, split_flags

    try:
        flags, overrides = split_flags(sys.argv[1:])
        if not any(f in HELP_FLAGS or f == "--hydra-help" for f in flags):
            multirun = any(f in MULTIRUN_FLAGS for f in flags)
            sys.argv[1:] = [*flags, *check_overrides("benchmark_probes", overrides, multirun)]
    except BindVAEError as err:
        sys.stderr.write(f"error: {err}\n")
        raise SystemExit(2) from None
    main()
