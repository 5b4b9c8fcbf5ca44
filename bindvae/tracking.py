"""Metric logging: the MetricLogger protocol, the always-on metrics.jsonl file, wandb and null loggers.

Training code calls ``log_scalars(step, {...})`` with plain keys (``loss``, ``elbo``,
``val_perplexity``, ...). ``metrics.jsonl`` stores them as they are; :class:`WandbLogger` renames
them to ``train/<key>`` and ``val/<key>`` for the dashboard. Only entry points choose a logger.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Protocol, Sequence

from bindvae.errors import InputError
from bindvae.io import write_text_atomic

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"


class MetricLogger(Protocol):
    """What training reports to; modelled on CLU's MetricWriter."""

    def log_config(self, config: dict) -> None: ...

    def log_scalars(self, step: int, scalars: dict) -> None: ...

    def log_table(self, step: int, name: str, columns: Sequence[str], rows: Sequence[Sequence]) -> None: ...

    def close(self) -> None: ...


class NullLogger:
    """Logs nothing (``logger=none``); metrics.jsonl is written by training regardless."""

    def log_config(self, config: dict) -> None:
        pass

    def log_scalars(self, step: int, scalars: dict) -> None:
        pass

    def log_table(self, step: int, name: str, columns: Sequence[str], rows: Sequence[Sequence]) -> None:
        pass

    def close(self) -> None:
        pass


def _jsonable(value):
    value = float(value) if not isinstance(value, (int, str, bool)) else value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsFile:
    """Appends one JSON object per logging step to ``<workdir>/metrics.jsonl``."""

    def __init__(self, workdir: str | os.PathLike):
        self.path = Path(workdir) / METRICS_FILE

    def truncate_after(self, step: int) -> None:
        """Drop lines with ``step`` > the given step (lines a resumed run will write again)."""
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line)
            except json.JSONDecodeError:
                continue
        write_text_atomic(self.path, "".join(line + "\n" for line in kept))

    def remove(self) -> None:
        if self.path.exists():
            self.path.unlink()

    def write(self, step: int, scalars: dict) -> None:
        # Appended, not rewritten: a log line is small and a kill can only tear the last one, which
        # readers skip and a resumed run drops (``truncate_after``).
        record = {"step": int(step), **{k: _jsonable(v) for k, v in scalars.items()}}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


def read_metrics(workdir: str | os.PathLike) -> list[dict]:
    """All records of ``<workdir>/metrics.jsonl`` (empty when absent).

    A last line cut short by a killed run is skipped with a warning; a bad line elsewhere raises.

    Raises:
        InputError: a line other than the last is not JSON.
    """
    path = Path(workdir) / METRICS_FILE
    if not path.exists():
        return []
    lines = [(i, line) for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1) if line.strip()]
    records = []
    for n, (line_no, line) in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if n < len(lines) - 1:
                raise InputError(path, "not a JSON metrics line", line_no) from None
            logger.warning("%s:%d: skipping a metrics line cut short (the run was interrupted)", path, line_no)
    return records


def dashboard_key(key: str) -> str:
    """``val_elbo`` -> ``val/elbo``; other plain keys -> ``train/<key>``."""
    if key.startswith("val_"):
        return "val/" + key[4:]
    return "train/" + key


class WandbLogger:
    """Weights & Biases run; offline by default (``wandb sync`` pushes it later).

    Args:
        project: wandb project.
        name: run name.
        group: run group (a sweep's name), or None.
        mode: ``offline``, ``online`` or ``disabled``.
        workdir: the run directory (wandb files go in ``<workdir>/wandb``).
        entity: wandb entity, or None.
        tags: run tags.
        resume_id: stable run id so that a resumed run continues the same wandb run.
    """

    def __init__(self, project, name, group, mode, workdir, entity=None, tags=(), resume_id=None):
        import wandb  # imported here: the library works without wandb installed

        self._wandb = wandb
        self.run = wandb.init(
            project=project,
            name=name,
            group=group,
            mode=mode,
            dir=str(workdir),
            entity=entity,
            tags=list(tags) or None,
            id=resume_id,
            resume="allow" if resume_id else None,
            reinit="finish_previous",
        )

    def log_config(self, config: dict) -> None:
        self.run.config.update(config, allow_val_change=True)

    def log_scalars(self, step: int, scalars: dict) -> None:
        data = {dashboard_key(k): _jsonable(v) for k, v in scalars.items() if k != "step"}
        self.run.log(data, step=int(step))

    def log_table(self, step: int, name: str, columns: Sequence[str], rows: Sequence[Sequence]) -> None:
        self.run.log({name: self._wandb.Table(columns=list(columns), data=[list(r) for r in rows])}, step=int(step))

    def close(self) -> None:
        self.run.finish()
