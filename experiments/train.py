"""Train a BindVAE model from the Hydra configs in conf/.

    python -m experiments.train                                   # the paper's settings, synthetic data
    python -m experiments.train data=fasta data.path=peaks.fa model.num_topics=50 logger=none
    python -m experiments.train data=reference data.features=F data.vocabulary=V
    python -m experiments.train tiny=smoke hydra.run.dir=runs/smoke
    python -m experiments.train hydra.run.dir=runs/smoke train.resume=true train.steps=100
    python -m experiments.train -m model.num_topics=10,50 model.alpha=1,10   # one run per grid point
    python -m experiments.train sweep=m_alpha                     # the paper's grid, joblib in parallel
    python -m experiments.train sweep=m_alpha hydra/launcher=slurm hydra.launcher.partition=gpu   # on Slurm
    python -m experiments.train data=shards data.path=features_dir     # streamed from a sharded set
    python -m experiments.train train.devices=4                    # data-parallel over 4 local devices

The run directory (``hydra.run.dir``) receives ``metrics.jsonl``, ``checkpoints/`` and ``.hydra/``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from bindvae.config import RunConfig, run_name, to_dict
from bindvae.data import datasets as data_lib
from bindvae.data import stream
from bindvae.errors import BindVAEError
from bindvae.features import shards
from bindvae.features.kmers import Vocabulary
from bindvae.io import check_writable_dir
from bindvae.tracking import NullLogger, WandbLogger
from bindvae.training import fit, parallel, prepare_run_dir, rundir, summary
from experiments._cli import HELP_FLAGS, MULTIRUN_FLAGS, check_overrides, split_flags

log = logging.getLogger("bindvae.experiments.train")


def _register_schema() -> None:
    # Frozen dataclasses give read-only nodes; unlock them so group files and overrides can merge,
    # while the schema still rejects unknown keys and wrong types.
    schema = OmegaConf.structured(RunConfig)
    OmegaConf.set_readonly(schema, False)
    for section in schema:
        OmegaConf.set_readonly(schema[section], False)
    ConfigStore.instance().store(name="run_schema", node=schema)


_register_schema()


def to_run_config(cfg: DictConfig) -> RunConfig:
    """The validated :class:`RunConfig` of a composed Hydra config (raises ConfigError / omegaconf errors)."""
    body = OmegaConf.masked_copy(cfg, ["model", "train", "data", "logger"]) if "hydra" in cfg else cfg
    return OmegaConf.to_object(body)


def sweep_group(sweep_dir: str | os.PathLike) -> str:
    """The wandb group of a sweep's runs: the sweep folder's name, with its date folder in front
    when Hydra's default layout ``multirun/<date>/<time>`` is used (so that the group says when)."""
    path = Path(sweep_dir)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", path.parent.name):
        return f"{path.parent.name}_{path.name}"
    return path.name


def _sweep_group() -> str | None:
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode is not None and hydra_cfg.mode.name == "MULTIRUN":
        return sweep_group(hydra_cfg.sweep.dir)
    return None


def make_logger(config: RunConfig, workdir: Path):
    """The MetricLogger the config asks for (wandb offline by default, or none)."""
    if config.logger.kind == "none":
        return NullLogger()
    group = config.logger.group or _sweep_group()
    name = run_name(config)
    # The same id in every process that trains this directory (a resume continues the wandb run);
    # Python's hash() of a string changes from process to process.
    run_id = f"{name}-{hashlib.sha256(str(workdir.resolve()).encode()).hexdigest()[:10]}"
    return WandbLogger(
        project=config.logger.project, name=name, group=group, mode=config.logger.mode, workdir=workdir,
        entity=config.logger.entity, tags=config.logger.tags, resume_id=run_id,
    )


def start_distributed(config: RunConfig) -> None:
    """Join a multi-host run when ``train.distributed`` is set (before any other JAX work)."""
    tc = config.train
    if tc.distributed:
        parallel.initialize_distributed(
            tc.coordinator_address or None, tc.num_processes or None, tc.process_id if tc.process_id >= 0 else None
        )


def load_training_data(config: RunConfig):
    """(train rows, validation csr, fingerprint, k-mers): a csr split, or a sharded set streamed by ``fit``."""
    if config.data.source == "shards":
        index = shards.open_shards(config.data.path)
        val_X = stream.load_validation(index, config.train.val_fraction, config.train.seed, max_rows=index.shard_size)
        vocab = Vocabulary.gapped8()
        known = vocab.kmers if index.fingerprint == vocab.fingerprint and index.n_kmers == len(vocab) else None
        return index, val_X, index.fingerprint, known
    dataset = data_lib.load_dataset(config.data, seed=config.train.seed)
    train_X, val_X, _ = data_lib.split_train_val(dataset.X, config.train.val_fraction, config.train.seed)
    return train_X, val_X, dataset.vocab_fingerprint, dataset.kmers


def run(config: RunConfig, workdir: Path) -> str:
    """Load data, split, train; returns the run summary.

    Raises:
        RunDirectoryBusy: another training owns ``workdir`` (nothing is written).
    """
    with rundir.owned(workdir):  # one owner per run directory, before anything is written
        prepare_run_dir(workdir, config.train)  # refuse an existing run before any slow work
        start_distributed(config)
        train_X, val_X, fingerprint, kmers = load_training_data(config)
        metric_logger = make_logger(config, workdir)
        try:
            metric_logger.log_config({**to_dict(config), "workdir": str(workdir)})
            result = fit(config, train_X, val_X, fingerprint, workdir, metric_logger, kmers=kmers)
        finally:
            metric_logger.close()
    return summary(result)


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    logging.getLogger("absl").setLevel(logging.WARNING)
    workdir = Path(HydraConfig.get().runtime.output_dir)
    try:
        config = to_run_config(cfg)
        text = run(config, workdir)
    except MissingMandatoryValue as err:
        sys.stderr.write(f"error: config {err.full_key}: is required (set {err.full_key}=...)\n")
        sys.exit(2)
    except OmegaConfBaseException as err:
        sys.stderr.write(f"error: config: {str(err).splitlines()[0]}\n")
        sys.exit(2)
    except BindVAEError as err:
        sys.stderr.write(f"error: {err}\n")
        sys.exit(1)
    log.debug("%s", text)  # fit() already logged the summary


def check_arguments(argv: list[str]) -> tuple[list[str], str | None]:
    """Checks what Hydra acts on before ``main`` runs, so that a mistake is one line, not a traceback.

    Hydra creates the run directory before calling ``main`` and reports an unknown key or a missing
    group option in several lines; all are checked here first (the key checks are
    :func:`experiments._cli.check_overrides`, shared by every entry point).

    Raises:
        ConfigError: an unknown key (``model.colour=1``), an unknown option of a config group
            (``data=bam``), or a run directory that cannot be created or written to (key
            ``hydra.run.dir`` / ``hydra.sweep.dir``).

    Returns:
        The arguments for Hydra (values its grammar cannot read as they are, quoted) and the run
        directory given as ``hydra.run.dir`` (None for a multirun or Hydra's default).
    """
    flags, overrides = split_flags(argv)
    if any(f in HELP_FLAGS or f == "--hydra-help" for f in flags):
        return argv, None
    multirun = any(f in MULTIRUN_FLAGS for f in flags)
    overrides = check_overrides("train", overrides, multirun)
    dir_key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    run_dir = None
    for arg in overrides:
        key, _, value = arg.partition("=")
        if key == dir_key and "${" not in value:
            run_dir = value.strip("'")
    check_writable_dir(run_dir if run_dir is not None else Path.cwd(), dir_key)
    return [*flags, *overrides], None if multirun else run_dir


if __name__ == "__main__":
    os.environ.setdefault("WANDB_SILENT", "true")
    try:
        sys.argv[1:], explicit_dir = check_arguments(sys.argv[1:])
    except BindVAEError as err:
        sys.stderr.write(f"error: {err}\n")
        sys.exit(2)
    if explicit_dir is not None:
        try:  # before Hydra writes .hydra/ into it: a busy directory keeps the owner's files as they are
            rundir.acquire(explicit_dir)
        except BindVAEError as err:
            sys.stderr.write(f"error: {err}\n")
            sys.exit(1)
    main()
