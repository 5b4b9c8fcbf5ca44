"""Training speed: full steps/s next to a bare Adam update over the same parameter shapes.

Batch 128, M = 100, D = 112,800, a 3 x 300 encoder (~45M parameters). Inputs are random padded
rows with realistic lengths (200 bp peaks: ~3,000 nonzero k-mers; 20 bp probes: ~200), made here
so no data file is needed. Each figure is the median over ``repeats`` timed calls of one dispatch
of ``steps_per_call`` steps (the training loop of ``bindvae.training.make_train_loop``, data resident on
the device), after a warm-up call that compiles. Each step is timed alternately with a bare update
(bare, step, bare, step, ...) and compared with the median of those bare timings (the notes give
both), since a shared machine's memory bandwidth drifts by tens of percent over minutes.

Paths: ``dense``, ``sparse`` (XLA gathers) and, on the CPU only, ``sparse_cpu`` (numba kernels as
XLA CPU targets) and ``fused_cpu`` (the same kernels with Adam applied to W1 and theta inside them,
``bindvae.kernels.fused``); z is drawn with the default ``fast`` sampler, plus one row with the ``exact``
sampler (``jax.random.dirichlet``'s rejection loop) on the auto path for comparison.

On the CPU, the auto path and bare Adam are measured once more in a child process started with
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``: XLA:CPU allocates a step's large temporaries afresh
(``sparse_cpu``'s dW1 is 135 MB), and with 4 KB pages the first touch of each page can cost as much
as the kernel that fills it; with the tunable glibc backs them with 2 MB transparent huge pages.
(``fused_cpu`` keeps its one large buffer across steps, so the two figures should agree.)

Only jax, flax, optax, numpy and scipy are imported here (the benchmark also runs on bare GPU
boxes); ``bindvae.kernels.sparse_ops`` (the CPU kernels) is loaded only when the ``sparse_cpu`` path is built.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bindvae.config import ModelConfig, TrainConfig
from bindvae.training import create_train_state, make_train_loop, resolve_compute_path, resolve_steps_per_call
from bindvae.vae.network import build_model

D = 112_800
M = 100
BATCH = 128
SHAPES = {"peaks_200bp": 3_000, "probes_20bp": 200}


def random_padded(n_rows: int, mean_nnz: int, n_kmers: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """Random padded rows: distinct ids per row, counts 1-3, lengths within +-5% of mean_nnz.

    Returns:
        (indices int32 [n_rows, K], counts float32 [n_rows, K], K) with K a multiple of 64.
    """
    rng = np.random.default_rng(seed)
    lengths = rng.integers(int(mean_nnz * 0.95), int(mean_nnz * 1.05) + 1, size=n_rows)
    width = int(np.ceil(lengths.max() / 64) * 64)
    indices = np.zeros((n_rows, width), np.int32)
    counts = np.zeros((n_rows, width), np.float32)
    for i, n in enumerate(lengths):
        indices[i, :n] = np.sort(rng.choice(n_kmers, size=n, replace=False))
        counts[i, :n] = rng.choice([1.0, 1.0, 1.0, 2.0, 3.0], size=n)
    return indices, counts, width


def _median_times(fns, repeats: int) -> list[float]:
    """Median seconds per call of each of ``fns``, timed in turn (A B A B ...) after one warm-up call each.

    Interleaving pairs each timing of one function with a timing of the others taken moments
    apart, so a drift of the machine's speed over minutes moves all medians alike.
    """
    for fn in fns:
        fn()  # compile and warm up
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def bare_adam_call(params, n_steps: int):
    """A call running ``n_steps`` bare ``optax.adam`` updates over ``params``' shapes (gradients = params)."""
    tx = optax.adam(3e-4)
    grads = jax.tree.map(lambda p: p * 1e-3, params)

    def run(params, opt_state):
        def body(carry, _):
            p, s = carry
            updates, s = tx.update(grads, s, p)
            return (optax.apply_updates(p, updates), s), None

        (params, opt_state), _ = jax.lax.scan(body, (params, opt_state), None, length=n_steps)
        return params, opt_state

    run = jax.jit(run, donate_argnums=(0, 1))
    carry = [jax.tree.map(jnp.copy, params), tx.init(params)]

    def once():
        carry[0], carry[1] = run(carry[0], carry[1])
        jax.block_until_ready(carry[0])

    return once


def train_call(path: str, mean_nnz: int, n_steps: int, n_rows: int = 1024, sampler: str = "fast", **train_overrides):
    """A call running ``n_steps`` full training steps (forward, backward, Adam) on ``path`` with rows of ~mean_nnz."""
    model = build_model(ModelConfig(num_topics=M), D)
    config = TrainConfig(batch_size=BATCH, prior_burn_in_steps=0, **train_overrides)
    state = create_train_state(model, config, jax.random.key(0))
    indices, counts, width = random_padded(n_rows, mean_nnz, D)
    indices, counts = jax.device_put(indices), jax.device_put(counts)
    loop = make_train_loop(model, path, sampler)
    rng = np.random.default_rng(1)
    key = jax.random.key(2)
    holder = [state]

    def once():
        rows = rng.integers(0, n_rows, size=(n_steps, BATCH)).astype(np.int32)
        holder[0], sums = loop(holder[0], indices, counts, rows, key, width=width)
        jax.block_until_ready(sums)

    return once


HUGE_PAGES = "glibc.malloc.hugetlb=1"


def _huge_page_rows(quick: bool, repeats: int) -> list[dict]:
    """The CPU auto path and bare Adam, timed in a child process with glibc's huge-page tunable."""
    tunables = ":".join(t for t in (os.environ.get("GLIBC_TUNABLES"), HUGE_PAGES) if t)
    args = [sys.executable, "-m", "benchmarks.speed.train", str(int(quick)), str(repeats)]
    result = subprocess.run(
        args, capture_output=True, text=True, env={**os.environ, "GLIBC_TUNABLES": tunables}, timeout=1800
    )
    if result.returncode != 0:
        return [{"benchmark": f"train: GLIBC_TUNABLES={HUGE_PAGES} run", "value": float("nan"), "unit": "",
                 "notes": "child failed: " + (result.stderr.strip().splitlines() or ["?"])[-1]}]
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    for row in rows:
        row["benchmark"] += f" [GLIBC_TUNABLES={HUGE_PAGES}]"
    return rows


def run(quick: bool, repeats: int, child: bool = False) -> list[dict]:
    """Benchmark rows: bare Adam, then each input shape on each path (``child``: the auto path only)."""
    backend = jax.default_backend()
    per_call = resolve_steps_per_call(0, backend)
    repeats = max(1, min(repeats, 2) if quick else repeats)
    steps = 1 if backend == "cpu" else per_call
    model = build_model(ModelConfig(num_topics=M), D)
    state = create_train_state(model, TrainConfig(), jax.random.key(0))
    params = state.params
    n_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
    del state
    # The bare update is timed again right before each step it is compared with: on a shared
    # machine the memory bandwidth drifts between minutes, and the ratio is what the goal is about.
    adams = []
    rows = [{"benchmark": "train: bare optax.adam update", "value": float("nan"), "unit": "steps/s", "notes": ""}]
    auto = resolve_compute_path("auto", backend)
    paths = ("sparse", "sparse_cpu", "fused_cpu", "dense") if backend == "cpu" else ("sparse", "dense")
    shapes = {"peaks_200bp": SHAPES["peaks_200bp"]} if quick else SHAPES
    for name, nnz in shapes.items():
        runs = [(path, "fast") for path in paths if not quick or path == auto]
        if name == "peaks_200bp":
            runs.append((auto, "exact"))
        if child:
            runs = [(auto, "fast")]
        for path, sampler in runs:
            adam, sec = (t / steps for t in _median_times(
                [bare_adam_call(params, steps), train_call(path, nnz, steps, sampler=sampler)], repeats
            ))
            adams.append(adam)
            label = f"train: {name} step, {path} path" + (" (auto)" if path == auto else "")
            rows.append(
                {
                    "benchmark": label + (", exact sampler" if sampler == "exact" else ""),
                    "value": 1.0 / sec,
                    "unit": "steps/s",
                    "notes": f"batch {BATCH}, M={M}, D={D}, ~{nnz} nnz/row, {sec * 1e3:.2f} ms/step = "
                    f"{sec / adam:.2f}x bare Adam ({adam * 1e3:.1f} ms, timed alternately with it), "
                    f"{steps} step(s)/call, {sampler} sampler",
                }
            )
    adam = statistics.median(adams)
    rows[0].update(
        value=1.0 / adam,
        notes=f"{n_params / 1e6:.1f}M params, {adam * 1e3:.2f} ms/update "
        f"(median over the {len(adams)} rows below, each timed alternately with its step), {steps} update(s)/call",
    )
    if backend == "cpu" and not child:
        rows += _huge_page_rows(quick, repeats)
    return rows


if __name__ == "__main__":
    print(json.dumps(run(quick=bool(int(sys.argv[1])), repeats=int(sys.argv[2]), child=True)))
