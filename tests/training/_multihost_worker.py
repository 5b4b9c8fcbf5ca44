"""One process of a multi-host run on the CPU (gloo collectives), or the single-process reference.

    python -m tests.training._multihost_worker OUT PROCESS_ID N_PROCESSES PORT

(N_PROCESSES = 0: no distributed runtime.)

Each process sees its own forced host devices (XLA_FLAGS) and feeds only its rows of every global
batch; writes {"devices", "local_devices", "losses"} to OUT.
"""

from __future__ import annotations

import functools
import json
import sys

import jax


def main(out: str, process_id: int, n_processes: int, port: int) -> None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.config.update("jax_disable_most_optimizations", True)
    from bindvae import training as train
    from bindvae.data.datasets import batch_rows, pad_rows
    from bindvae.training import parallel
    from bindvae.vae.network import build_model
    from tests.helpers.training import random_counts, small_config

    if n_processes:
        parallel.initialize_distributed(f"localhost:{port}", n_processes, process_id)
    config = small_config(steps=6, batch_size=8, prior_burn_in_steps=3)
    padded = pad_rows(random_counts(64, 120))
    model = build_model(config.model, 120)
    init_key, train_key = jax.random.split(jax.random.key(0))
    mesh = parallel.make_mesh(0)
    state = parallel.replicate(train.create_train_state(model, config.train, init_key), mesh)
    loop = parallel.make_sharded_loop(functools.partial(train.apply_step, model, "sparse"), mesh)
    local, losses = parallel.process_rows(8), []
    for step in range(6):
        rows = batch_rows(padded.n_rows, 8, 0, step, 1)[:, local]
        idx, cnt = parallel.gather_batches(padded.indices, padded.counts, rows, padded.buckets[-1])
        state, sums = loop(state, parallel.put_batch(idx, mesh, 1), parallel.put_batch(cnt, mesh, 1), train_key)
        losses.append(float(sums["loss"]))
    with open(out, "w", encoding="utf-8") as handle:
        json.dump({"devices": jax.device_count(), "local_devices": jax.local_device_count(), "losses": losses}, handle)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
