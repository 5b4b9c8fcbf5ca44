"""Small random count matrices and configs shared by the training tests."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from bindvae.config import ModelConfig, RunConfig, TrainConfig


def random_counts(n_rows: int = 64, n_kmers: int = 120, seed: int = 0) -> sp.csr_matrix:
    """Counts with structure: two groups of rows favour two halves of the k-mers."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_rows):
        half = (i % 2) * (n_kmers // 2)
        cols = np.concatenate(
            [half + rng.choice(n_kmers // 2, 12, replace=False), rng.choice(n_kmers, 3, replace=False)]
        )
        dense = np.zeros(n_kmers, np.float32)
        np.add.at(dense, cols, 1.0)
        rows.append(dense)
    return sp.csr_matrix(np.stack(rows))


def small_config(**train) -> RunConfig:
    base = dict(steps=20, batch_size=8, learning_rate=1e-2, prior_burn_in_steps=10, log_every=5, eval_every=10,
                checkpoint_every=10, topic_table_every=0, progress=False, compute_path="sparse")
    base.update(train)
    return RunConfig(model=ModelConfig(num_topics=3, alpha=1.0, hidden_sizes=(8,)), train=TrainConfig(**base))
