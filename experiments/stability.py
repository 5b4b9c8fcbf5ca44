"""Numerical stability of long runs across prior concentrations.

    python -m experiments.stability [steps=20000] [alphas=0.1,1,10,50] [num_topics=100]
        [hidden=300,300,300] [n_peaks=4096] [length=200] [jsonl=PATH]

Trains the paper-size model (M = 100, 3 x 300 encoder, D = 112,800, batch 128) for ``steps``
steps at each ``alpha`` on random 200 bp peaks with planted 10-mers (featurized for real), with the
prior burn-in at half the steps, and reports per alpha: steps skipped as non-finite, whether every
parameter is finite at the end, the smallest and the final batch KL, the final ELBO and the learned
prior. The original TensorFlow code is known to stop with "KL divergence is negative" on some
versions; this is the check that ours never does. Made for a GPU (20,000 steps take about a minute
there); on a CPU pass smaller ``steps``.

Imports only jax, flax, optax, numpy, scipy and numba, and hydra-core for the command line (runs on bare
GPU boxes). A Hydra application (every key and its default: ``conf/stability.yaml``; ``--cfg job``
prints it); a mistake prints one line, ``error: <message>``, and exits with status 2.
"""

from __future__ import annotations

import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from bindvae.config import ModelConfig, TrainConfig
from bindvae.data.datasets import pad_rows
from bindvae.errors import ConfigError
from bindvae.features.kmers import featurize
from bindvae.io import write_text_atomic
from bindvae.training import create_train_state, make_train_loop, resolve_compute_path, resolve_steps_per_call
from bindvae.vae.network import build_model
from experiments._cli import App, items, text


def planted_peaks(rng: np.random.Generator, n_peaks: int, length: int = 200, n_motifs: int = 10) -> list[str]:
    """Random ACGT peaks, each carrying one of ``n_motifs`` random 10-mers in 30% of peaks."""
    bases = np.array(list("ACGT"))
    motifs = ["".join(rng.choice(bases, 10)) for _ in range(n_motifs)]
    peaks = []
    for _ in range(n_peaks):
        seq = rng.choice(bases, length)
        if rng.random() < 0.3:
            site = motifs[rng.integers(n_motifs)]
            start = rng.integers(0, length - 10)
            seq[start:start + 10] = list(site)
        peaks.append("".join(seq))
    return peaks


def _number(value, key: str, kind=int):
    try:
        if isinstance(value, bool) or (kind is int and isinstance(value, float) and not value.is_integer()):
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(key, f"must be {'an integer' if kind is int else 'a number'}, got {value!r}") from None


def run_alpha(alpha: float, steps: int, model_config: ModelConfig, data, n_kmers: int, seed: int) -> dict:
    """Train ``steps`` steps at prior concentration ``alpha``; return the stability row."""
    model = build_model(model_config, n_kmers)
    config = TrainConfig(steps=steps, prior_burn_in_steps=steps // 2, seed=seed)
    state = create_train_state(model, config, jax.random.key(seed))
    path = resolve_compute_path("auto")
    per_call = max(resolve_steps_per_call(0), 100)
    loop = make_train_loop(model, path)
    indices, counts = jax.device_put(data.indices), jax.device_put(data.counts)
    width = data.indices.shape[1]
    rng = np.random.default_rng(seed)
    key = jax.random.key(seed + 1)
    skipped, kl_min, last = 0, np.inf, {}
    t0 = time.perf_counter()
    for _ in range(steps // per_call):
        rows = rng.integers(0, data.indices.shape[0], size=(per_call, config.batch_size)).astype(np.int32)
        state, sums = loop(state, indices, counts, rows, key, width=width)
        sums = jax.device_get(sums)
        n_ok = int(sums["n_finite"])
        skipped += per_call - n_ok
        if n_ok:
            last = {k: float(v) / n_ok for k, v in sums.items() if k != "n_finite"}
            kl_min = min(kl_min, last["kl"])
    seconds = time.perf_counter() - t0
    finite = all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree.leaves(state.params))
    return {
        "alpha": alpha,
        "steps": steps,
        "skipped_steps": skipped,
        "params_finite": finite,
        "min_mean_kl": kl_min,
        "final_kl": last.get("kl", float("nan")),
        "final_elbo": last.get("elbo", float("nan")),
        "final_prior_alpha_mean": last.get("prior_alpha_mean", float("nan")),
        "steps_per_sec": steps / seconds,
        "backend": jax.default_backend(),
    }


def run(args: dict) -> int:
    """Trains once per alpha; prints the table."""
    steps = _number(args["steps"], "steps")
    alphas = [_number(a, "alphas", float) for a in items(args["alphas"])]
    hidden = tuple(_number(h, "hidden") for h in items(args["hidden"]))
    seed = _number(args["seed"], "seed")
    num_topics = _number(args["num_topics"], "num_topics")
    rng = np.random.default_rng(seed)
    length = _number(args["length"], "length")
    if length <= 10:
        raise ConfigError("length", f"must be > 10 (peaks carry a planted 10-mer), got {length}")
    X = featurize(planted_peaks(rng, _number(args["n_peaks"], "n_peaks"), length=length))
    data = pad_rows(X, n_buckets=1)
    rows = []
    lines = [
        "| alpha | steps | skipped | params finite | min mean KL | final KL | final ELBO | learned prior | steps/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for alpha in alphas:
        model_config = ModelConfig(num_topics=num_topics, alpha=alpha, hidden_sizes=hidden)
        row = run_alpha(alpha, steps, model_config, data, X.shape[1], seed)
        rows.append(row)
        lines.append(
            f"| {alpha:g} | {steps} | {row['skipped_steps']} | {row['params_finite']} | {row['min_mean_kl']:.4g} | "
            f"{row['final_kl']:.4g} | {row['final_elbo']:.6g} | {row['final_prior_alpha_mean']:.4g} | "
            f"{row['steps_per_sec']:.0f} |"
        )
        sys.stdout.write(lines[-1] + "\n")
        sys.stdout.flush()
    sys.stdout.write(
        f"Device: {jax.devices()[0].device_kind} ({jax.default_backend()}); {X.shape[0]} peaks of {length} bp, "
        f"M={num_topics}, hidden {list(hidden)}, batch 128\n" + "\n".join(lines) + "\n"
    )
    if text(args["jsonl"]):
        write_text_atomic(text(args["jsonl"]), "".join(json.dumps(r) + "\n" for r in rows))
    return 0


APP = App("stability", __doc__, run, list_keys=("alphas", "hidden"))


def main(argv: list[str] | None = None) -> int:
    """``python -m experiments.stability`` (Hydra's command line) or ``main([...key=value])`` from a test."""
    return APP.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
