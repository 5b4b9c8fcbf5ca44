"""Model structure: shapes, ranges, parameter paths, sparse/dense/pre-activation parity."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bindvae.config import ModelConfig
from bindvae.errors import ConfigError
from bindvae.vae import network as model_lib
from bindvae.vae import objectives


@pytest.fixture(scope="module")
def small():
    model = model_lib.build_model(ModelConfig(num_topics=5, alpha=3.0, hidden_sizes=(16, 8)), 40)
    return model, model_lib.init_params(model, jax.random.key(0))


def test_param_tree_has_fixed_paths_and_shapes(small):
    model, params = small
    assert params["encoder"]["input_kernel"].shape == (40, 16)
    assert params["encoder"]["input_bias"].shape == (16,)
    assert params["encoder"]["hidden_1"]["kernel"].shape == (16, 8)
    assert params["encoder"]["concentration"]["kernel"].shape == (8, 5)
    assert params["topic_kmer"]["theta"].shape == (5, 40)
    np.testing.assert_allclose(model_lib.prior_alpha(params), np.full(5, 3.0), rtol=1e-6)


def test_concentration_is_clipped_positive_and_paths_agree(small):
    model, params = small
    rng = np.random.default_rng(0)
    indices = jnp.asarray(rng.integers(0, 40, (6, 7)), jnp.int32)
    counts = jnp.asarray(rng.integers(0, 5, (6, 7)), jnp.float32) * 50.0
    x = objectives.densify(indices, counts, 40)
    dense = model_lib.posterior_concentration_dense(model, params, x)
    sparse = model_lib.posterior_concentration_sparse(model, params, indices, counts)
    w1, b1 = model_lib.first_layer(params)
    pre = model_lib.concentration_from_preactivation(model, params, x @ w1 + b1)
    assert dense.shape == (6, 5)
    assert float(dense.min()) >= 0.1 and float(dense.max()) <= 1000.0
    np.testing.assert_allclose(sparse, dense, rtol=1e-5)
    np.testing.assert_allclose(pre, dense, rtol=1e-6)


def test_topic_kmer_rows_sum_to_one(small):
    _, params = small
    phi = model_lib.topic_kmer_matrix(params)
    np.testing.assert_allclose(phi.sum(-1), 1.0, rtol=1e-5)


def test_softplus_inverse_round_trip():
    for value in (0.1, 1.0, 10.0, 50.0, 1000.0):
        assert float(jax.nn.softplus(model_lib.softplus_inverse(value))) == pytest.approx(value, rel=1e-6)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"num_topics": 0}, "model.num_topics"),
        ({"alpha": 0.0}, "model.alpha"),
        ({"activation": "nope"}, "model.activation"),
    ],
)
def test_model_config_rejects_bad_values(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        ModelConfig(**kwargs)
