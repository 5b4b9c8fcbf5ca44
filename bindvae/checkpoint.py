"""Save and restore training checkpoints (orbax) with a JSON metadata sidecar.

Layout: ``<run_dir>/checkpoints/<step>/{state,metadata}``. ``state`` holds params, opt_state, step,
the training RNG key data and the non-finite step counters; ``metadata`` holds the resolved run
config, the vocabulary fingerprint, n_kmers, num_topics, package/jax/flax versions and the git
commit (when known). orbax writes each checkpoint to a temporary folder and renames it on finalize,
so a checkpoint being written (or cut short) is never listed as valid. Only this module touches
checkpoint files.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from bindvae.errors import InputError

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
# The best checkpoint by validation ELBO (``train.keep_best``): one step folder, same layout.
BEST_DIR = "best"


@dataclasses.dataclass
class Checkpoint:
    """A restored checkpoint.

    Attributes:
        params: parameter tree (numpy arrays; see ``bindvae.vae.network`` for the paths).
        opt_state: optimiser state (the target's structure when one was given, else nested containers).
        step: global step at which it was saved.
        rng: uint32 key data of the training key.
        config: the resolved run config as a nested dict.
        metadata: vocab_fingerprint, n_kmers, num_topics, versions, git_commit, step.
        extra: other saved state entries (bad_steps, skipped_steps).
    """

    params: Any
    opt_state: Any
    step: int
    rng: np.ndarray
    config: dict
    metadata: dict
    extra: dict


def checkpoint_dir(run_dir: str | os.PathLike, folder: str = CHECKPOINT_DIR) -> Path:
    """``<run_dir>/checkpoints`` (or ``<run_dir>/<folder>``) as an absolute path."""
    return Path(run_dir).absolute() / folder


def _manager(
    run_dir, keep: int | None = None, create: bool = False, folder: str = CHECKPOINT_DIR
) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create, enable_async_checkpointing=False)
    return ocp.CheckpointManager(checkpoint_dir(run_dir, folder), options=options, item_names=("state", "metadata"))


# Files every finalised step folder holds. orbax renames a checkpoint into place only when it is
# complete, but a step folder cut short some other way (a copy, a full disk) must not look valid.
_COMPLETE_MARKERS = ("_CHECKPOINT_METADATA", "state", "metadata")
UNUSABLE_SUFFIX = ".unusable"


def _is_complete(folder: Path) -> bool:
    return all((folder / name).exists() for name in _COMPLETE_MARKERS)


def list_steps(run_dir: str | os.PathLike, folder_name: str = CHECKPOINT_DIR) -> list[int]:
    """Steps of the finished checkpoints in ``run_dir`` (ascending; empty when there are none).

    Temporary folders of a checkpoint being written, and step folders missing orbax's files, are
    not listed. ``folder_name``: ``checkpoints`` or :data:`BEST_DIR`.
    """
    folder = checkpoint_dir(run_dir, folder_name)
    if not folder.is_dir():
        return []
    with _manager(run_dir, folder=folder_name) as manager:
        steps = sorted(int(s) for s in manager.all_steps())
    complete = [s for s in steps if _is_complete(folder / str(s))]
    if len(complete) < len(steps):
        logger.warning("ignoring incomplete checkpoint folder(s) %s in %s", sorted(set(steps) - set(complete)), folder)
    return complete


def set_aside_after(run_dir: str | os.PathLike, step: int) -> list[Path]:
    """Renames every step folder after ``step`` (complete or not) to ``<step>.unusable``.

    A run resumed from ``step`` writes those steps again; the old folders (unreadable, or cut
    short) are kept for inspection but no longer count as checkpoints.

    Returns:
        The new paths of the folders set aside.
    """
    folder = checkpoint_dir(run_dir)
    moved = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.name.isdigit() and int(path.name) > step and path.is_dir():
            target = path.with_name(path.name + UNUSABLE_SUFFIX)
            n = 1
            while target.exists():
                target, n = path.with_name(f"{path.name}{UNUSABLE_SUFFIX}{n}"), n + 1
            try:
                os.replace(path, target)
            except FileNotFoundError:  # another process of a multi-host run moved it first
                continue
            logger.warning("checkpoint folder %s is unusable; moved to %s", path, target.name)
            moved.append(target)
    return moved


def git_commit() -> str | None:
    """The source tree's git commit, or None when it is not a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def version_metadata() -> dict:
    """Package, jax, flax and optax versions plus the git commit."""
    import flax
    import optax

    import bindvae

    return {
        "bindvae_version": bindvae.__version__,
        "jax_version": jax.__version__,
        "flax_version": flax.__version__,
        "optax_version": optax.__version__,
        "git_commit": git_commit(),
    }


def save_checkpoint(workdir: str | os.PathLike, state: dict, metadata: dict, keep: int = 3,
                    folder: str = CHECKPOINT_DIR) -> Path:
    """Write a checkpoint of ``state`` at ``int(state["step"])`` and keep the latest ``keep``.

    Args:
        workdir: the run directory (checkpoints go in ``<workdir>/checkpoints``).
        state: ``{"params", "opt_state", "step", "rng", ...}`` of arrays (device or host).
        metadata: JSON-serialisable dict; must hold ``config`` and ``vocab_fingerprint``.
        keep: how many most recent checkpoints to keep.
        folder: ``checkpoints``, or :data:`BEST_DIR` for the best one by validation ELBO.

    Returns:
        The step's checkpoint folder.
    """
    host_state = jax.device_get(state)
    step = int(host_state["step"])
    meta = {**version_metadata(), **metadata, "step": step}
    with _manager(workdir, keep=keep, create=True, folder=folder) as manager:
        manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(host_state), metadata=ocp.args.JsonSave(meta)),
            force=True,
        )
        manager.wait_until_finished()
    logger.info("checkpoint: step %d -> %s", step, checkpoint_dir(workdir, folder) / str(step))
    return checkpoint_dir(workdir, folder) / str(step)


def load_checkpoint(run_dir: str | os.PathLike, step: int | None = None, target: dict | None = None,
                    folder: str = CHECKPOINT_DIR) -> Checkpoint:
    """Restore a checkpoint (the latest by default).

    Args:
        run_dir: the run directory holding ``checkpoints/``.
        step: a specific step, or None for the latest.
        target: optional state tree of the same structure (arrays or ShapeDtypeStructs) to restore
            into, which keeps optax's container types.
        folder: ``checkpoints``, or :data:`BEST_DIR` for the best one by validation ELBO.

    Returns:
        The :class:`Checkpoint`.

    Raises:
        InputError: no run directory, no finished checkpoint, an unknown step, or unreadable files
            (with ``step=None``, an unreadable latest checkpoint falls back to the one before it).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(run_dir, "run directory not found")
    steps = list_steps(run_dir, folder)
    if not steps:
        raise InputError(checkpoint_dir(run_dir, folder), "no finished checkpoint in this run directory")
    if step is not None and step not in steps:
        raise InputError(checkpoint_dir(run_dir, folder), f"no checkpoint at step {step} (have {steps})")
    if target is not None:
        target = jax.tree.map(ocp.utils.to_shape_dtype_struct, jax.device_get(target))
    # The latest readable checkpoint: one that was damaged after it was written is skipped, loudly.
    candidates = [step] if step is not None else steps[::-1]
    for i, candidate in enumerate(candidates):
        try:
            restored = _restore_step(run_dir, candidate, target, folder)
            break
        except InputError as err:
            if i == len(candidates) - 1:
                raise
            logger.warning("%s; falling back to step %d", err, candidates[i + 1])
    state = dict(restored["state"])
    metadata = dict(restored["metadata"])
    extra = {k: v for k, v in state.items() if k not in ("params", "opt_state", "step", "rng")}
    return Checkpoint(
        params=state["params"],
        opt_state=state.get("opt_state"),
        step=int(state["step"]),
        rng=np.asarray(state.get("rng")),
        config=metadata.get("config", {}),
        metadata=metadata,
        extra=extra,
    )


def _drop_closed_loop_reports() -> None:
    # When one read of a damaged checkpoint fails, orbax closes its event loop while tensorstore's
    # other reads are still in flight; each then reports "RuntimeError: Event loop is closed"
    # through sys.unraisablehook, seconds later, as a traceback. Those reports say nothing (the
    # failure itself is reported once, with the fallback), so exactly they are dropped; every
    # other unraisable exception still reaches the previous hook.
    previous = sys.unraisablehook
    if getattr(previous, "drops_closed_loop_reports", False):
        return

    def hook(unraisable):
        if isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed":
            return
        previous(unraisable)

    hook.drops_closed_loop_reports = True
    sys.unraisablehook = hook
    # The same reads in flight can instead end as futures whose error nobody retrieves; asyncio then
    # logs "Future exception was never retrieved" with the read error (seen under heavy CPU load).
    # Exactly those records are dropped; any other asyncio error is still logged.
    logging.getLogger("asyncio").addFilter(_drop_unretrieved_read_errors)


def _drop_unretrieved_read_errors(record: logging.LogRecord) -> bool:
    """False (drop) for asyncio's report of an unretrieved future that failed reading checkpoint data."""
    message = record.getMessage()
    return not (message.startswith("Future exception was never retrieved") and "Error reading" in message)


def _restore_step(run_dir: Path, step: int, target, folder: str = CHECKPOINT_DIR) -> dict:
    _drop_closed_loop_reports()  # before the read: the reports can come before the error is raised
    try:
        with _manager(run_dir, folder=folder) as manager:
            return manager.restore(
                step,
                args=ocp.args.Composite(state=ocp.args.StandardRestore(target), metadata=ocp.args.JsonRestore()),
            )
    except Exception as err:  # orbax/tensorstore raise many types for damaged files; all mean "unreadable"
        raise InputError(
            checkpoint_dir(run_dir, folder) / str(step), f"unreadable checkpoint ({type(err).__name__}: {err})"
        ) from err


def check_vocab(checkpoint: Checkpoint, vocab_fingerprint: str, where: str | os.PathLike) -> None:
    """Raise InputError if the checkpoint was trained on another vocabulary."""
    saved = checkpoint.metadata.get("vocab_fingerprint")
    if saved != vocab_fingerprint:
        raise InputError(
            where,
            f"vocabulary fingerprint {str(vocab_fingerprint)[:12]} differs from the checkpoint's {str(saved)[:12]}",
        )
