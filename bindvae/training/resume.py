"""What a run directory holds before training: refuse, overwrite or resume, and restoring state."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp

from bindvae import checkpoint as ckpt
from bindvae.config import RunConfig, TrainConfig, to_dict
from bindvae.errors import ConfigError, InputError
from bindvae.io import check_writable_dir
from bindvae.tracking import MetricsFile
from bindvae.training.state import TrainState

logger = logging.getLogger(__name__)

def state_tree(state: TrainState, key: jax.Array) -> dict:
    return {
        "params": state.params,
        "opt_state": state.opt_state,
        "step": state.step,
        "rng": jax.random.key_data(key),
        "bad_steps": state.bad_steps,
        "skipped_steps": state.skipped_steps,
    }


def prepare_run_dir(workdir: str | Path, config: TrainConfig) -> list[int]:
    """Check what ``workdir`` holds before training; returns the checkpoint steps to resume from.

    Raises:
        ConfigError: the directory has checkpoints and neither ``train.resume`` nor ``train.overwrite`` is set,
            or it cannot be created or written to (key ``workdir``).
    """
    workdir = check_writable_dir(workdir, "workdir")
    steps = ckpt.list_steps(workdir)
    if steps and config.overwrite:
        logger.warning("train.overwrite: deleting %d checkpoint(s) in %s", len(steps), workdir)
        # Rename first so that a kill during the deletion never leaves a half-deleted checkpoint in place.
        doomed = workdir / f".{ckpt.CHECKPOINT_DIR}.deleting-{os.getpid()}"
        try:
            os.replace(ckpt.checkpoint_dir(workdir), doomed)
        except FileNotFoundError:  # another process of a multi-host run moved it first
            pass
        shutil.rmtree(doomed, ignore_errors=True)
        MetricsFile(workdir).remove()
        drop_best(workdir)
        return []
    if steps and not config.resume:
        raise ConfigError(
            "train.resume",
            f"{workdir} already has checkpoints (latest step {steps[-1]}); "
            "set train.resume=true to continue or train.overwrite=true to start over",
        )
    if not steps:
        if config.resume:
            logger.info("train.resume: no checkpoint in %s, starting from step 0", workdir)
        ckpt.set_aside_after(workdir, -1)  # folders left by a run killed while writing its first checkpoint
        MetricsFile(workdir).remove()
        drop_best(workdir)
    return steps


def drop_best(workdir: Path, after: int = -1) -> None:
    # The best-by-validation checkpoint of a run that starts over (or resumes before it) is stale.
    best = ckpt.list_steps(workdir, ckpt.BEST_DIR)
    if (best and best[-1] > after) or (not best and ckpt.checkpoint_dir(workdir, ckpt.BEST_DIR).exists()):
        shutil.rmtree(ckpt.checkpoint_dir(workdir, ckpt.BEST_DIR), ignore_errors=True)


def restore(state: TrainState, workdir, config: RunConfig, vocab_fingerprint: str, n_kmers: int,
            carried: dict | None = None) -> TrainState:
    """The latest checkpoint's state; metadata keys of ``carried`` that the checkpoint holds are copied into it
    (what a resumed run keeps writing, e.g. the ``train.restarts`` choice)."""
    restored = ckpt.load_checkpoint(workdir, target=state_tree(state, jax.random.key(0)))
    ckpt.check_vocab(restored, vocab_fingerprint, ckpt.checkpoint_dir(workdir))
    if restored.metadata.get("n_kmers") != n_kmers:
        raise InputError(
            ckpt.checkpoint_dir(workdir),
            f"checkpoint has n_kmers={restored.metadata.get('n_kmers')}, data has {n_kmers}",
        )
    saved_model = restored.config.get("model", {})
    # Keys added to the model config after a checkpoint was written take their current values.
    if saved_model and {**to_dict(config)["model"], **saved_model} != to_dict(config)["model"]:
        raise ConfigError("model", f"differs from the checkpoint's model config {saved_model}; cannot resume")
    if carried is not None:
        carried.update({key: restored.metadata[key] for key in carried if key in restored.metadata})
    ckpt.set_aside_after(workdir, restored.step)  # later folders are unreadable or cut short; redone from here
    logger.info("resuming from step %d in %s", restored.step, workdir)
    return state.replace(
        params=restored.params,
        opt_state=restored.opt_state,
        step=jnp.asarray(restored.step, jnp.int32),
        bad_steps=jnp.asarray(restored.extra.get("bad_steps", 0), jnp.int32),
        skipped_steps=jnp.asarray(restored.extra.get("skipped_steps", 0), jnp.int32),
    )
