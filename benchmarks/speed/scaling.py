"""How training scales: step time against nonzeros per row, against M, and against devices; and the
peak memory of training on a sharded data set against the same data held in memory.

Step times use random padded rows (``benchmarks.speed.train.random_padded``), D = 112,800, batch 128,
the paper's 3 x 300 encoder, after a warm-up call that compiles. The device rows run in a fresh
interpreter: on a CPU-only machine it forces host devices with
``XLA_FLAGS=--xla_force_host_platform_device_count`` (they share the same cores, so those rows show
the sharding overhead, not a speed-up); on a machine with several accelerators they use the real ones.

The memory rows train (sparse path, a small model) through one epoch of a sharded data set, each
in a fresh interpreter, and report the peak resident memory (``VmHWM``) above what the process held
before the data was touched (every batch width compiled beforehand). The ``baseline`` row runs the
same steps on batches cut from a single shard, so ``stream - baseline`` is what streaming costs. Run as a
module for one probe::

    python -m benchmarks.speed.scaling devices N_DEVICES MEAN_NNZ REPEATS
    python -m benchmarks.speed.scaling memory FOLDER baseline|stream|in_memory
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

D = 112_800
BATCH = 128
HIDDEN = (300, 300, 300)


def _median(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def step_seconds(
    path: str, mean_nnz: int, num_topics: int, repeats: int, n_devices: int = 1, n_rows: int = 512
) -> float:
    """Median seconds per training step (forward, backward, Adam) on ``n_devices`` devices at batch 128."""
    import jax

    from bindvae import training as train
    from bindvae.config import ModelConfig, TrainConfig
    from bindvae.training import parallel
    from bindvae.vae.network import build_model
    from experiments.bench.train import random_padded

    model = build_model(ModelConfig(num_topics=num_topics, hidden_sizes=HIDDEN), D)
    mesh = parallel.make_mesh(n_devices)
    state = parallel.replicate(
        train.create_train_state(model, TrainConfig(prior_burn_in_steps=0), jax.random.key(0)), mesh
    )
    indices, counts, width = random_padded(n_rows, mean_nnz, D)
    loop = parallel.make_sharded_loop(functools.partial(train.apply_step, model, path), mesh)
    rng, key, holder = np.random.default_rng(1), jax.random.key(2), [state]

    def once():
        rows = rng.integers(0, n_rows, size=(1, BATCH))
        idx, cnt = parallel.gather_batches(indices, counts, rows, width)
        holder[0], sums = loop(holder[0], parallel.put_batch(idx, mesh, 1), parallel.put_batch(cnt, mesh, 1), key)
        jax.block_until_ready(sums)

    return _median(once, repeats)


def _device_probe(max_devices: int, mean_nnz: int, repeats: int) -> dict:
    import jax

    from bindvae.training import resolve_compute_path

    # The path auto picks for several devices (fused_cpu applies to one only), at every count alike.
    path = resolve_compute_path("auto", jax.default_backend(), n_devices=2)
    counts = [n for n in (1, 2, 4, 8) if n <= min(max_devices, jax.device_count())]
    return {"backend": jax.default_backend(), "path": path,
            "seconds": {n: step_seconds(path, mean_nnz, 100, repeats, n) for n in counts}}


def _run_probe(args: list[str], env: dict | None = None) -> dict:
    result = subprocess.run([sys.executable, "-m", "benchmarks.speed.scaling", *args], capture_output=True,
                            text=True, env={**os.environ, **(env or {})}, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"probe {args} failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def device_rows(quick: bool, repeats: int) -> list[dict]:
    import jax

    n = 4 if quick else 8
    env = None
    if jax.default_backend() == "cpu":
        env = {"XLA_FLAGS": f"--xla_force_host_platform_device_count={n}", "JAX_PLATFORMS": "cpu"}
    probe = _run_probe(["devices", str(n), "3000", str(repeats)], env)
    seconds = {int(k): v for k, v in probe["seconds"].items()}
    kind = "forced host devices sharing the CPU" if env else f"{probe['backend']} devices"
    return [
        {"benchmark": f"scaling: step time, {k} device(s)", "value": s * 1e3, "unit": "ms/step",
         "notes": f"global batch {BATCH}, {probe['path']} path, M=100, ~3000 nnz/row, {kind}; "
         f"{seconds[1] / s:.2f}x the 1-device rate"}
        for k, s in sorted(seconds.items())
    ]


def write_random_shards(folder: Path, n_shards: int, shard_size: int, mean_nnz: int, seed: int = 0):
    """A sharded data set of random rows (~mean_nnz distinct k-mers each) with D = 112,800 columns."""
    from bindvae.features import shards

    rng = np.random.default_rng(seed)
    with shards.ShardWriter(folder, "random-rows", D, shard_size, overwrite=True) as writer:
        for _ in range(n_shards):
            nnz = rng.integers(int(mean_nnz * 0.9), int(mean_nnz * 1.1), size=shard_size)
            indptr = np.concatenate([[0], np.cumsum(nnz)])
            cols = np.concatenate([np.sort(rng.choice(D, size=k, replace=False)) for k in nnz]).astype(np.int32)
            data = rng.integers(1, 4, size=len(cols)).astype(np.float32)
            X = sp.csr_matrix((data, cols, indptr), shape=(shard_size, D))
            writer.add(X, [f"r{i}" for i in range(shard_size)])
    return writer.index


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _memory_probe(folder: str, mode: str) -> dict:
    """Train one epoch (sparse path, M=10, one hidden layer of 32) and measure the peak RSS increase."""
    import jax

    from bindvae import training as train
    from bindvae.config import ModelConfig, TrainConfig
    from bindvae.data import datasets as data_lib
    from bindvae.data import stream
    from bindvae.features import shards
    from bindvae.training import parallel
    from bindvae.vae.network import build_model

    index = shards.open_shards(folder)
    model = build_model(ModelConfig(num_topics=10, hidden_sizes=(32,)), D)
    mesh = parallel.make_mesh(1)
    state = parallel.replicate(
        train.create_train_state(model, TrainConfig(prior_burn_in_steps=0), jax.random.key(0)), mesh
    )
    loop = parallel.make_sharded_loop(functools.partial(train.apply_step, model, "sparse"), mesh)
    key, n_steps = jax.random.key(1), index.n_sequences // BATCH
    for width in index.length_buckets(4):  # compile every batch width before measuring
        zeros = np.zeros((1, BATCH, width), np.int32)
        state, _ = loop(
            state, parallel.put_batch(zeros, mesh, 1), parallel.put_batch(zeros.astype(np.float32), mesh, 1), key
        )
    jax.block_until_ready(state.params)
    with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
        handle.write("5")  # resets VmHWM (the peak) to the current RSS
    before, t0 = _status_kib("VmRSS"), time.perf_counter()
    if mode == "baseline":  # the same steps on batches cut from one shard read once: the model's own memory
        X, _ = shards.read_shard(index, 0)
        for step in range(n_steps):
            rows = (np.arange(BATCH) + step * BATCH) % X.shape[0]
            width = data_lib.bucket_for(int(np.diff(X[rows].indptr).max()), index.length_buckets(4))
            idx, cnt = stream.pad_batch(X[rows], width)
            state, _ = loop(state, parallel.put_batch(idx[None], mesh, 1), parallel.put_batch(cnt[None], mesh, 1), key)
    elif mode == "stream":
        with stream.ShardStream(index, BATCH, seed=0) as batches:
            for _ in range(n_steps):
                idx, cnt = batches.next_block(1)
                state, _ = loop(state, parallel.put_batch(idx, mesh, 1), parallel.put_batch(cnt, mesh, 1), key)
    else:  # what training on the same rows loaded whole does: the CSR, its padded rows, a device copy
        X = sp.vstack([shards.read_shard(index, i)[0] for i in range(index.n_shards)], format="csr")
        padded = data_lib.pad_rows(X, n_buckets=1)
        assert padded.buckets[-1] == index.length_buckets(4)[-1]
        on_device = jax.device_put(padded.indices), jax.device_put(padded.counts)
        for step in range(n_steps):
            rows = data_lib.batch_rows(padded.n_rows, BATCH, 0, step, 1)
            idx, cnt = padded.indices[rows], padded.counts[rows]
            state, _ = loop(state, parallel.put_batch(idx, mesh, 1), parallel.put_batch(cnt, mesh, 1), key)
        del on_device
    jax.block_until_ready(state.params)
    return {"delta_mib": (_status_kib("VmHWM") - before) / 1024, "steps": n_steps,
            "seconds": time.perf_counter() - t0}


MEMORY_MODES = {
    "baseline": "one shard reused (model, optimiser and step buffers only)",
    "stream": "streamed from shards",
    "in_memory": "whole set loaded",
}


def memory_rows(quick: bool) -> list[dict]:
    shard_size, mean_nnz = 500, 3000
    sizes = (12, 48) if not quick else (10, 30)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bindvae-shards-") as tmp:
        for n_shards in sizes:
            folder = Path(tmp) / f"set{n_shards}"
            index = write_random_shards(folder, n_shards, shard_size, mean_nnz)
            on_disk = sum(index.shard_path(i).stat().st_size for i in range(index.n_shards)) / 2**20
            csr_mib = index.nnz * 8 / 2**20
            for mode in ("baseline", "stream", "in_memory"):
                probe = _run_probe(["memory", str(folder), mode])
                rows.append(
                    {
                        "benchmark": f"scaling: peak RSS increase, {n_shards} shards, {MEMORY_MODES[mode]}",
                        "value": probe["delta_mib"],
                        "unit": "MiB",
                        "notes": f"{index.n_sequences:,} rows x ~{mean_nnz} nnz in shards of {shard_size} "
                        f"(one shard = {csr_mib / n_shards:.0f} MiB CSR; "
                        f"set = {csr_mib:.0f} MiB CSR, {on_disk:.0f} MiB on disk); "
                        f"one epoch, {probe['steps']} steps in {probe['seconds']:.0f} s",
                    }
                )
            for i in range(index.n_shards):
                index.shard_path(i).unlink()
    return rows


def run(quick: bool, repeats: int) -> list[dict]:
    """Rows: step time vs nnz per row (sparse and dense), vs M, vs devices; peak memory on a sharded set."""
    import jax

    from bindvae.training import resolve_compute_path

    repeats = max(1, min(repeats, 2) if quick else repeats)
    auto = resolve_compute_path("auto", jax.default_backend())
    rows = []
    for nnz in ((200, 3000) if quick else (200, 1000, 3000, 6000)):
        for path in dict.fromkeys(("sparse", "dense", auto)):
            sec = step_seconds(path, nnz, 100, repeats)
            rows.append(
                {
                    "benchmark": f"scaling: step time, ~{nnz} nnz/row, {path} path",
                    "value": sec * 1e3,
                    "unit": "ms/step",
                    "notes": f"batch {BATCH}, M=100, D={D}" + (" (auto path)" if path == auto else ""),
                }
            )
    for m in ((10, 100) if quick else (10, 50, 100, 200)):
        sec = step_seconds(auto, 3000, m, repeats)
        rows.append({"benchmark": f"scaling: step time, M={m}", "value": sec * 1e3, "unit": "ms/step",
                     "notes": f"batch {BATCH}, {auto} path, ~3000 nnz/row, D={D}"})
    rows += device_rows(quick, repeats)
    rows += memory_rows(quick)
    return rows


def main(argv: list[str]) -> int:
    if argv[:1] == ["devices"]:
        result = _device_probe(int(argv[1]), int(argv[2]), int(argv[3]))
    elif argv[:1] == ["memory"]:
        result = _memory_probe(argv[1], argv[2])
    else:
        sys.stderr.write("usage: python -m benchmarks.speed.scaling devices N NNZ REPEATS | memory FOLDER MODE\n")
        return 2
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
