"""Run in a fresh process with forced host devices: loss trajectories on 1 and N devices.

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python -m tests.training._parallel_worker PATH N_STEPS

Writes JSON {"n_devices", "<path>_plain" (sparse only), "<path>_mesh1", "<path>_mesh4",
"<path>_params_max_diff"} for path in sparse, dense (the bare loops), and "fit_devices1",
"fit_devices4" (``bindvae.training.fit`` with ``train.devices``) to PATH.
"""

from __future__ import annotations

import functools
import json
import sys

import jax
import numpy as np

from bindvae import training as train
from bindvae.config import TrainConfig
from bindvae.data.datasets import batch_rows, pad_rows
from bindvae.training import parallel
from bindvae.vae.network import build_model
from tests.helpers.training import random_counts, small_config


def trajectory(n_devices: int | None, n_steps: int, path: str):
    config = small_config(steps=n_steps, batch_size=8, prior_burn_in_steps=3)
    X = random_counts(64, 120)
    padded = pad_rows(X)
    model = build_model(config.model, 120)
    init_key, train_key = jax.random.split(jax.random.key(0))
    state = train.create_train_state(model, TrainConfig(**{**config.train.__dict__}), init_key)
    losses = []
    if n_devices is None:
        loop = train.make_train_loop(model, path)
        for step in range(n_steps):
            rows = batch_rows(padded.n_rows, 8, 0, step, 1)
            state, sums = loop(state, padded.indices, padded.counts, rows, train_key, width=padded.buckets[-1])
            losses.append(float(sums["loss"]))
        return losses, jax.device_get(state.params)
    mesh = parallel.make_mesh(n_devices)
    loop = parallel.make_sharded_loop(functools.partial(train.apply_step, model, path), mesh)
    state = parallel.replicate(state, mesh)
    for step in range(n_steps):
        rows = batch_rows(padded.n_rows, 8, 0, step, 1)
        idx, cnt = parallel.gather_batches(padded.indices, padded.counts, rows, padded.buckets[-1])
        state, sums = loop(state, parallel.put_batch(idx, mesh, 1), parallel.put_batch(cnt, mesh, 1), train_key)
        losses.append(float(sums["loss"]))
    assert len(state.params["topic_kmer"]["theta"].sharding.device_set) == n_devices
    return losses, jax.device_get(state.params)


def fit_trajectory(n_devices: int, n_steps: int, workdir: str) -> list[float]:
    """Per-step training loss of ``bindvae.training.fit`` with ``train.devices=n_devices``."""
    from bindvae.tracking import read_metrics

    config = small_config(steps=n_steps, batch_size=8, prior_burn_in_steps=3, log_every=1, eval_every=0,
                          checkpoint_every=n_steps, devices=n_devices)
    X = random_counts(72, 120)
    train.fit(config, X[:64], X[64:], "fp-test", workdir)
    return [r["loss"] for r in read_metrics(workdir)]


def main(out: str, n_steps: int) -> None:
    jax.config.update("jax_disable_most_optimizations", True)  # compile time dominates these tiny steps
    result = {"n_devices": jax.device_count()}
    params = {}
    for path in ("sparse", "dense"):
        runs = (("plain", None), ("mesh1", 1), ("mesh4", 4)) if path == "sparse" else (("mesh1", 1), ("mesh4", 4))
        for name, n in runs:
            result[f"{path}_{name}"], params[f"{path}_{name}"] = trajectory(n, n_steps, path)
        diffs = [
            float(np.max(np.abs(a - b)))
            for a, b in zip(jax.tree.leaves(params[f"{path}_mesh1"]), jax.tree.leaves(params[f"{path}_mesh4"]))
        ]
        result[f"{path}_params_max_diff"] = max(diffs)
    for n in (1, 4):
        result[f"fit_devices{n}"] = fit_trajectory(n, n_steps, f"{out}.fit{n}")
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
