"""The embedded demo (``make demo``): planted motifs in, topics, motifs, logos and a report out.

    python -m experiments.demo [out=outputs/demo] [any benchmark_recovery override, e.g. run.train.steps=200]

Generates a small planted-motif set (``conf/benchmark_recovery/demo.yaml``), trains a small BindVAE
on it, analyses the checkpoint (topic k-mers, 10-mer motifs and logos, JASPAR matches, per-peak
TFs, ``report.html``) and prints the recovery table: which planted motifs came back as topics.
Everything is written under ``outputs/demo/``. A user mistake prints one line, ``error: <message>``,
and exits with status 2.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from experiments._cli import App, text


def compose_config(overrides: list[str], preset: str = "demo"):
    """A preset of the recovery benchmark (default ``demo``) with command-line overrides applied."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    from benchmarks.recovery.config import config_from_dict
    from bindvae.errors import ConfigError
    from experiments._cli import CONF_DIR

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(
                "benchmark_recovery", overrides=[f"benchmark_recovery={preset}", f"name={preset}", *overrides]
            )
    except HydraException as err:
        raise ConfigError("overrides", str(err).splitlines()[0]) from None
    values = OmegaConf.to_container(cfg, resolve=True)
    values.pop("hydra", None)
    return config_from_dict(values)


def run(args: dict) -> int:
    """Trains, analyses and prints the recovery table; ``args`` is the composed ``conf/demo.yaml``."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)
    os.environ.setdefault("WANDB_MODE", "disabled")
    from benchmarks.recovery.config import config_from_dict
    from benchmarks.recovery.pipeline import run_recovery
    from bindvae.analysis.pipeline import AnalysisOptions, analyze_run
    from experiments.benchmark_recovery import machine_line

    start = time.perf_counter()
    out = Path(text(args.pop("out")) or "outputs/demo")
    config = config_from_dict(args)
    result = run_recovery(config, out, machine=machine_line(), run_subdir="")
    fasta = str(out / "data" / "planted.fa")
    analysis = analyze_run(out, AnalysisOptions(peaks=fasta, n_probes_per_tf=50, jaspar_release=config.jaspar_release,
                                                motif_ranking=config.motif_ranking))
    sys.stdout.write(Path(result.paths["markdown"]).read_text(encoding="utf-8"))
    sys.stdout.write(
        f"\nDemo finished in {time.perf_counter() - start:.0f} s.\n"
        f"  report:   {analysis / 'report.html'}\n"
        f"  logos:    {analysis / 'logos'}/\n"
        f"  recovery: {result.paths['markdown']} (and .tsv)\n"
        f"  data:     {fasta} with its truth table {out / 'data' / 'planted.truth.tsv'}\n"
    )
    return 0


APP = App("demo", __doc__, run)


def main(argv: list[str] | None = None) -> int:
    """``python -m experiments.demo`` (Hydra's command line) or ``main([...key=value])`` from a test."""
    return APP.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
