"""Inference speed: latent_scores on random 200 bp peaks, from sequences and from CSR features.

A model with the paper's encoder (3 x 300 hidden units, M = 100) and random weights; speed does not
depend on the weights. Times are after one warm-up call (compilation and the per-model window table
excluded; the window table's build time is reported on its own row).
"""

from __future__ import annotations

import statistics
import time

import jax
import numpy as np


def _model():
    from bindvae.config import ModelConfig
    from bindvae.features.kmers import Vocabulary
    from bindvae.infer import model_from_params
    from bindvae.vae import network as model_lib

    vocab = Vocabulary.gapped8()
    config = ModelConfig(num_topics=100, hidden_sizes=(300, 300, 300))
    params = model_lib.init_params(model_lib.build_model(config, len(vocab)), jax.random.key(0))
    return model_from_params(params, config, vocab)


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(quick: bool, repeats: int) -> list[dict]:
    from bindvae.features.kmers import featurize
    from bindvae.infer import latent_scores

    n_peaks = 5_000 if quick else 50_000
    rng = np.random.default_rng(0)
    letters = np.array(list("ACGT"))
    sequences = ["".join(row) for row in letters[rng.integers(0, 4, size=(n_peaks, 200))]]
    model = _model()
    start = time.perf_counter()
    jax.block_until_ready(model.window_rows)
    table_s = time.perf_counter() - start
    features = featurize(sequences, model.vocabulary)
    latent_scores(model, sequences[:2048])
    latent_scores(model, features[:2048])
    seq_s = _median_time(lambda: latent_scores(model, sequences), repeats)
    csr_s = _median_time(lambda: latent_scores(model, features), repeats)
    note = f"{n_peaks} random 200 bp peaks, M=100, hidden 3x300, {jax.default_backend()}"
    return [
        {"benchmark": "latent_scores from sequences", "value": n_peaks / seq_s, "unit": "peaks/s",
         "notes": f"{note}; {seq_s:.2f} s total"},
        {"benchmark": "latent_scores from CSR features", "value": n_peaks / csr_s, "unit": "peaks/s",
         "notes": f"{note}; {csr_s:.2f} s total (featurizing excluded)"},
        {"benchmark": "window table build (once per model)", "value": table_s, "unit": "s", "notes": "[65536, 300]"},
    ]
