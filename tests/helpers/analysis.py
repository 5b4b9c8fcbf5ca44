"""Small models with known behaviour for the inference and analysis tests."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from bindvae.config import ModelConfig
from bindvae.features.kmers import Vocabulary, featurize
from bindvae.infer import Model, model_from_params
from bindvae.vae import network as model_lib


def random_model(vocab: Vocabulary, num_topics: int = 6, hidden_sizes=(16, 16), seed: int = 0) -> Model:
    """A freshly initialised model (random weights)."""
    config = ModelConfig(num_topics=num_topics, alpha=1.0, hidden_sizes=hidden_sizes)
    network = model_lib.build_model(config, len(vocab))
    params = jax.tree_util.tree_map(np.asarray, model_lib.init_params(network, jax.random.key(seed)))
    return model_from_params(params, config, vocab)


def planted_model(vocab: Vocabulary, planted: list[str], num_topics: int = 4) -> Model:
    """Topic i prefers sequences made of ``planted[i]``'s features (one hidden unit per topic).

    The first layer gives +1 to every feature of ``planted[i]`` and 0 to all others in unit i; the
    output layer routes unit i to topic i. A 10-mer's score in topic i therefore grows with the number
    of its k-mer counts shared with ``planted[i]``.
    """
    config = ModelConfig(num_topics=num_topics, alpha=1.0, hidden_sizes=(num_topics,))
    network = model_lib.build_model(config, len(vocab))
    params = jax.tree_util.tree_map(np.asarray, model_lib.init_params(network, jax.random.key(0)))
    kernel = np.zeros((len(vocab), num_topics), dtype=np.float32)
    for i, kmer in enumerate(planted):
        kernel[featurize([kmer], vocab).indices, i] = 1.0
    encoder = dict(params["encoder"])
    encoder["input_kernel"] = kernel
    encoder["input_bias"] = np.zeros(num_topics, np.float32)
    encoder["concentration"] = {"kernel": np.eye(num_topics, dtype=np.float32) * 0.5,
                                "bias": np.zeros(num_topics, np.float32)}
    params = {**params, "encoder": encoder}
    return dataclasses.replace(model_from_params(params, config, vocab))
