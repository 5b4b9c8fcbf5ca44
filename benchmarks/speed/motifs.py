"""Motif pass: score all 524,800 canonical 10-mers through the encoder, then one PWM per topic.

Random weights with the paper's encoder (3 x 300, M = 100); times after one warm-up call.
"""

from __future__ import annotations

import statistics
import time

import jax


def run(quick: bool, repeats: int) -> list[dict]:
    from bindvae.analysis.topics import score_kmers, top_kmers_per_topic, topic_motifs
    from experiments.bench.infer import _model

    model = _model()
    score_kmers(model, k=10)
    repeats = 1 if quick else repeats
    times, pwm_times = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        codes, scores = score_kmers(model, k=10)
        top_kmers_per_topic(codes, scores, 200)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    topic_motifs(model)
    pwm_times.append(time.perf_counter() - start)
    note = f"524,800 10-mers, M=100, hidden 3x300, {jax.default_backend()}"
    return [
        {"benchmark": "10-mer pass (score + top 200 per topic)", "value": statistics.median(times), "unit": "s",
         "notes": note},
        {"benchmark": "10-mer pass + 100 PWMs", "value": statistics.median(pwm_times), "unit": "s",
         "notes": note + "; one run"},
    ]
