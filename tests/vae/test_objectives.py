"""ELBO terms: closed-form KL, sampler gradients, dense == sparse, gradient checks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from bindvae.config import ModelConfig
from bindvae.training import loss_and_metrics
from bindvae.vae import objectives
from bindvae.vae.network import build_model, init_params

pytestmark = pytest.mark.usefixtures("fast_compile")


def _random_batch(rng, batch, n_kmers, nnz):
    indices = np.zeros((batch, nnz + 3), np.int32)
    counts = np.zeros((batch, nnz + 3), np.float32)
    for b in range(batch):
        k = rng.integers(nnz // 2, nnz + 1)
        indices[b, :k] = rng.choice(n_kmers, size=k, replace=False)
        counts[b, :k] = rng.integers(1, 4, size=k)
    return jnp.asarray(indices), jnp.asarray(counts)


def test_dirichlet_kl_matches_monte_carlo_and_distrax():
    a = jnp.array([[0.5, 2.0, 7.0], [30.0, 1.0, 0.2]])
    b = jnp.array([1.5, 0.3, 4.0])
    kl = objectives.dirichlet_kl(a, b)
    z = jax.random.dirichlet(
        jax.random.key(0), a, shape=(200_000, 2), dtype=jnp.float64 if jax.config.x64_enabled else jnp.float32
    )
    z = jnp.clip(z, 1e-30, 1.0)

    def log_pdf(z, conc):
        return (jax.scipy.special.gammaln(conc.sum(-1)) - jax.scipy.special.gammaln(conc).sum(-1)
                + ((conc - 1) * jnp.log(z)).sum(-1))

    mc = jnp.mean(log_pdf(z, a) - log_pdf(z, jnp.broadcast_to(b, a.shape)), axis=0)
    np.testing.assert_allclose(kl, mc, rtol=0.03)
    distrax = pytest.importorskip("distrax")
    ref = distrax.Dirichlet(a).kl_divergence(distrax.Dirichlet(jnp.broadcast_to(b, a.shape)))
    np.testing.assert_allclose(kl, ref, rtol=1e-4)


def test_dirichlet_kl_golden_value():
    # KL(Dir(1, 2, 3) || Dir(2, 2, 2)) from scipy.special in float64, computed once (a scipy.stats
    # Monte Carlo estimate over 400,000 draws gave 0.8089).
    kl = objectives.dirichlet_kl(jnp.array([[1.0, 2.0, 3.0]]), jnp.array([2.0, 2.0, 2.0]))
    np.testing.assert_allclose(kl, [0.8068528194400546], rtol=1e-5)


@pytest.mark.parametrize("alpha", [0.1, 1.0, 10.0, 50.0, 1000.0])
def test_dirichlet_kl_never_negative_near_equal_concentrations(alpha):
    rng = np.random.default_rng(0)
    a = jnp.asarray(alpha * (1 + 1e-6 * rng.standard_normal((64, 100))), jnp.float32)
    kl = objectives.dirichlet_kl(jnp.clip(a, 0.1, 1000.0), jnp.full((100,), alpha, jnp.float32))
    assert np.all(np.asarray(kl) >= -1e-6)
    assert np.all(np.isfinite(kl))


def test_sampler_implicit_gradient_matches_analytic_mean_gradient():
    # E[z_j] = a_j / a0, so d E[z_j] / d a_i = (delta_ij a0 - a_j) / a0^2. A Monte Carlo average of the
    # implicit reparameterisation gradient must match it (finite differences on one key would not).
    a = jnp.array([0.7, 2.0, 5.0])
    weights = jnp.array([1.0, -2.0, 0.5])
    n = 100_000

    def mc_objective(conc):
        z = objectives.sample_topics(jax.random.key(3), jnp.broadcast_to(conc, (n, 3)))
        return jnp.mean(z @ weights)

    grad_mc = jax.grad(mc_objective)(a)
    a0 = a.sum()
    jac = (jnp.eye(3) * a0 - a[None, :]) / a0**2  # [i, j] = d E[z_j] / d a_i
    grad_exact = jac @ weights
    np.testing.assert_allclose(grad_mc, grad_exact, atol=0.01)
    z = objectives.sample_topics(jax.random.key(4), jnp.broadcast_to(a, (10, 3)))
    np.testing.assert_allclose(z.sum(-1), 1.0, rtol=1e-5)


def test_deterministic_terms_pass_check_grads_float64():
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        a = jnp.asarray(rng.uniform(0.5, 5.0, (3, 4)))
        b = jnp.asarray(rng.uniform(0.5, 5.0, 4))
        check_grads(objectives.dirichlet_kl, (a, b), order=2, modes=["rev"])
        z = jax.nn.softmax(jnp.asarray(rng.standard_normal((3, 4))))
        theta = jnp.asarray(rng.standard_normal((4, 20)))
        indices = jnp.asarray(rng.integers(0, 20, (3, 6)), jnp.int32)
        counts = jnp.asarray(rng.integers(0, 3, (3, 6)), jnp.float64)
        x = objectives.densify(indices, counts, 20)
        check_grads(
            lambda z, t: objectives.log_likelihood_sparse(z, t, indices, counts), (z, theta), order=2, modes=["rev"]
        )
        check_grads(lambda z, t: objectives.log_likelihood_dense(z, t, x), (z, theta), order=2, modes=["rev"])


@pytest.mark.parametrize("path", ["sparse", "sparse_cpu"])
def test_dense_and_sparse_paths_give_same_loss_and_gradients(path):
    rng = np.random.default_rng(2)
    n_kmers = 300
    model = build_model(ModelConfig(num_topics=6, hidden_sizes=(32, 16)), n_kmers)
    params = init_params(model, jax.random.key(0))
    indices, counts = _random_batch(rng, 8, n_kmers, 40)
    key = jax.random.key(5)
    results = {}
    for name in (path, "dense"):
        fn = jax.jit(jax.value_and_grad(lambda p: loss_and_metrics(model, p, indices, counts, key, name)[0]))
        results[name] = fn(params)
    (loss_s, grads_s), (loss_d, grads_d) = results[path], results["dense"]
    np.testing.assert_allclose(loss_s, loss_d, rtol=1e-5)
    for (leaf, gs), gd in zip(jax.tree_util.tree_leaves_with_path(grads_s), jax.tree.leaves(grads_d)):
        scale = float(jnp.max(jnp.abs(gd))) + 1e-12
        np.testing.assert_allclose(np.asarray(gs) / scale, np.asarray(gd) / scale, atol=1e-5, err_msg=str(leaf))
    assert float(jnp.abs(grads_s["encoder"]["input_kernel"]).sum()) > 0


def test_log_likelihood_dense_equals_sparse_and_uniform_value():
    rng = np.random.default_rng(3)
    indices, counts = _random_batch(rng, 4, 50, 10)
    z = jax.nn.softmax(jnp.asarray(rng.standard_normal((4, 3)), jnp.float32))
    theta = jnp.zeros((3, 50))
    ll = objectives.log_likelihood_sparse(z, theta, indices, counts)
    # With uniform topics every k-mer has probability 1/50.
    np.testing.assert_allclose(ll, -np.log(50.0) * np.asarray(counts).sum(-1), rtol=1e-5)
    theta = jnp.asarray(rng.standard_normal((3, 50)), jnp.float32)
    dense = objectives.log_likelihood_dense(z, theta, objectives.densify(indices, counts, 50))
    np.testing.assert_allclose(objectives.log_likelihood_sparse(z, theta, indices, counts), dense, rtol=1e-5)


def test_perplexity_is_exp_mean_per_count_negative_elbo():
    elbo = jnp.array([-10.0, -40.0, 0.0])
    n = jnp.array([5.0, 10.0, 0.0])
    np.testing.assert_allclose(objectives.perplexity(elbo, n), np.exp((2.0 + 4.0) / 2), rtol=1e-6)
