"""The fast Dirichlet sampler: its law (moments, a Beta marginal) and its implicit gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from bindvae.config import TrainConfig
from bindvae.errors import ConfigError
from bindvae.vae import objectives, sampling

ALPHA = jnp.array([0.1, 0.5, 1.0, 3.0, 50.0])  # below, at and above the a < 1 boost


@pytest.fixture(scope="module")
def draws():
    return np.asarray(sampling.sample_dirichlet(jax.random.key(0), jnp.broadcast_to(ALPHA, (200_000, 5))), np.float64)


def test_fast_dirichlet_matches_mean_and_variance(draws):
    a = np.asarray(ALPHA, np.float64)
    a0 = a.sum()
    mean = a / a0
    var = a * (a0 - a) / (a0**2 * (a0 + 1))
    np.testing.assert_allclose(draws.mean(0), mean, rtol=0.02)
    np.testing.assert_allclose(draws.var(0), var, rtol=0.03)
    np.testing.assert_allclose(draws.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("j", range(5))
def test_fast_dirichlet_marginal_is_beta_ks(draws, j):
    # z_j ~ Beta(a_j, a0 - a_j) exactly; 200,000 draws detect a CDF error of ~0.004 at p = 0.001.
    a = np.asarray(ALPHA, np.float64)
    result = scipy.stats.kstest(draws[:, j], scipy.stats.beta(a[j], a.sum() - a[j]).cdf)
    assert result.pvalue > 0.001, result


def test_fast_dirichlet_differs_from_a_wrong_law(draws):
    # The KS test above can fail: the same draws against the Beta of a 10% larger concentration do.
    a = np.asarray(ALPHA, np.float64)
    assert scipy.stats.kstest(draws[:, 3], scipy.stats.beta(1.1 * a[3], a.sum() - a[3]).cdf).pvalue < 1e-6


def test_fast_sampler_implicit_gradient_matches_analytic_mean_gradient():
    # d E[z_j] / d a_i = (delta_ij a0 - a_j) / a0^2; a Monte Carlo average of the implicit gradient
    # must match it (finite differences on one key would not: the sample is not smooth in a).
    a = jnp.array([0.3, 0.7, 2.0, 5.0])
    weights = jnp.array([1.0, -2.0, 0.5, 0.3])
    n = 100_000

    def mc_objective(conc):
        z = objectives.sample_topics(jax.random.key(3), jnp.broadcast_to(conc, (n, 4)), "fast")
        return jnp.mean(z @ weights)

    grad_mc = jax.grad(mc_objective)(a)
    a0 = a.sum()
    grad_exact = ((jnp.eye(4) * a0 - a[None, :]) / a0**2) @ weights
    np.testing.assert_allclose(grad_mc, grad_exact, atol=0.004)


def test_log_gamma_gradient_matches_gamma_mean_gradient():
    # E[g] = a for g ~ Gamma(a): d E[exp(log g)] / d a = 1, also for a < 1 (the boosted branch).
    a = jnp.array([0.2, 1.0, 7.0])

    def mean_gamma(alpha):
        return jnp.mean(
            jnp.exp(sampling.sample_log_gamma(jax.random.key(5), jnp.broadcast_to(alpha, (200_000, 3)))), axis=0
        )

    jac = jax.jacrev(mean_gamma)(a)
    np.testing.assert_allclose(jnp.diag(jac), 1.0, atol=0.03)
    np.testing.assert_allclose(jac - jnp.diag(jnp.diag(jac)), 0.0, atol=1e-6)


def test_all_rejected_fallback_stays_finite_and_on_simplex():
    # One candidate per variate: ~5% of variates at a = 1 take the all-rejected fallback.
    conc = jnp.full((2_000, 4), 1.0)
    z = sampling.sample_dirichlet(jax.random.key(1), conc, n_candidates=1)
    assert np.all(np.isfinite(z)) and float(z.min()) > 0
    np.testing.assert_allclose(z.sum(-1), 1.0, atol=1e-5)
    grad = jax.grad(lambda c: jnp.sum(sampling.sample_dirichlet(jax.random.key(2), c, n_candidates=1)[:, 0]))(conc)
    assert np.all(np.isfinite(grad))


def test_tiny_concentrations_stay_finite_with_finite_gradients():
    # At a = 0.1 some log-gammas are below -100, so float32 z components underflow to 0 (as with
    # jax.random.dirichlet); z must still be a finite point of the simplex with finite gradients.
    conc = jnp.full((1_000, 100), 0.1)
    z = objectives.sample_topics(jax.random.key(7), conc, "fast")
    assert np.all(np.isfinite(z)) and float(z.min()) >= 0
    np.testing.assert_allclose(z.sum(-1), 1.0, atol=1e-5)
    grad = jax.grad(lambda c: jnp.sum(objectives.sample_topics(jax.random.key(7), c, "fast")[:, :3]))(conc)
    assert np.all(np.isfinite(grad))


def test_sampler_config_is_validated():
    assert TrainConfig().sampler == "fast"
    with pytest.raises(ConfigError, match="train.sampler"):
        TrainConfig(sampler="rejection")
    with pytest.raises(ValueError):
        objectives.sample_topics(jax.random.key(0), jnp.ones((1, 3)), "rejection")
