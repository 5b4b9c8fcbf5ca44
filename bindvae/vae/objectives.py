"""ELBO terms of the Dirichlet VAE (SPEC section 3), as pure jax.numpy functions.

Notation: z [B, M] topic proportions (a Dirichlet sample), theta [M, D] decoder logits,
phi = softmax(theta, axis=-1) [M, D], p = z @ phi [B, D] the mixture over k-mers, x [B, D] counts
(with ``model.decoder=product``, ours: p = softmax(z @ theta), a product of experts).

    log-likelihood  sum_j x_j log p_j             (the reference's OneHotCategorical on counts)
    KL              KL(Dir(q) || Dir(prior))      (closed form)
    ELBO            log-likelihood - KL;  loss = -mean(ELBO)
    perplexity      exp(mean_b(-ELBO_b / n_b)),  n_b = total count of sequence b

The sparse log-likelihood reads p only at each sequence's nonzero k-mers (gathered rows of phi^T);
the dense one forms the full p. Both floor p at the smallest normal float so that a topic mixture
that underflows never yields log(0).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import digamma, gammaln

from bindvae.vae import sampling


def sample_topics(key: jax.Array, concentration: jax.Array, sampler: str = "fast") -> jax.Array:
    """z ~ Dirichlet(concentration), [B, M], with implicit reparameterisation gradients.

    Both samplers draw gamma variates whose JVP is the implicit gradient (Figurnov et al. 2018), so
    d z / d concentration is exact in expectation. ``fast`` is :func:`bindvae.vae.sampling.sample_dirichlet`
    (a fixed number of Marsaglia-Tsang candidates, no rejection loop); ``exact`` is
    ``jax.random.dirichlet`` (a rejection ``while_loop`` per variate).

    Args:
        key: PRNG key.
        concentration: [B, M] positive.
        sampler: ``fast`` or ``exact``.
    """
    if sampler == "exact":
        return jax.random.dirichlet(key, concentration, dtype=concentration.dtype)
    if sampler != "fast":
        raise ValueError(f"unknown sampler {sampler!r}; one of {sampling.SAMPLERS}")
    return sampling.sample_dirichlet(key, concentration)


def dirichlet_kl(concentration: jax.Array, prior: jax.Array) -> jax.Array:
    """Closed-form KL(Dir(a) || Dir(b)) per row, clamped at 0 against float cancellation.

    KL = lgamma(a0) - sum lgamma(a) - lgamma(b0) + sum lgamma(b) + sum (a - b)(digamma(a) - digamma(a0)).

    Args:
        concentration: a, [B, M] posterior concentrations.
        prior: b, [M] (or [B, M]) prior concentrations.

    Returns:
        [B] KL divergences, >= 0.
    """
    a = concentration
    b = jnp.broadcast_to(prior, a.shape)
    a0 = jnp.sum(a, axis=-1)
    b0 = jnp.sum(b, axis=-1)
    kl = (
        gammaln(a0)
        - gammaln(b0)
        + jnp.sum(gammaln(b) - gammaln(a), axis=-1)
        + jnp.sum((a - b) * (digamma(a) - digamma(a0)[..., None]), axis=-1)
    )
    # The true KL is >= 0; lgamma differences of large, nearly equal concentrations can dip a few
    # ulps below it in float32, which the reference reported as "KL divergence is negative".
    return jnp.maximum(kl, 0.0)


def _safe_log(p: jax.Array) -> jax.Array:
    return jnp.log(jnp.maximum(p, jnp.finfo(p.dtype).tiny))


def log_likelihood_dense(z: jax.Array, theta: jax.Array, x: jax.Array, decoder: str = "mixture") -> jax.Array:
    """sum_j x_j log (z @ softmax(theta))_j per row; the dense reference implementation.

    Args:
        z: [B, M] topic proportions.
        theta: [M, D] decoder logits.
        x: [B, D] counts.
        decoder: ``mixture`` (the paper's) or ``product`` (ours: log p = log_softmax(z @ theta), a
            product of experts; ``model.decoder``).

    Returns:
        [B] log-likelihoods.
    """
    if decoder == "product":
        log_p = jax.nn.log_softmax(z @ theta, axis=-1)
    else:
        log_p = _safe_log(z @ jax.nn.softmax(theta, axis=-1))
    return jnp.sum(jnp.where(x > 0, x * log_p, 0.0), axis=-1)


def log_likelihood_sparse(z: jax.Array, theta: jax.Array, indices: jax.Array, counts: jax.Array,
                          decoder: str = "mixture") -> jax.Array:
    """Same as :func:`log_likelihood_dense`, evaluated only at the nonzero k-mers.

    phi = exp(theta - logsumexp(theta, axis=-1)) is formed once (the log-normaliser of theta's rows)
    and transposed to [D, M] so that each nonzero gathers one contiguous row.

    Args:
        z: [B, M] topic proportions.
        theta: [M, D] decoder logits.
        indices: int32 [B, K] k-mer ids; padding slots may hold any valid id.
        counts: [B, K] counts; padding slots hold 0.
        decoder: ``mixture`` or ``product``; the product's normaliser needs every k-mer's logit, so it
            forms z @ theta [B, D] once per batch and gathers at the nonzero k-mers.

    Returns:
        [B] log-likelihoods.
    """
    if decoder == "product":
        logits = z @ theta  # [B, D]
        log_p = jnp.take_along_axis(logits, indices, axis=1) - jax.nn.logsumexp(logits, axis=-1, keepdims=True)
        return jnp.sum(jnp.where(counts > 0, counts * log_p, 0.0), axis=-1)
    phi_t = jax.nn.softmax(theta, axis=-1).T  # [D, M]
    rows = jnp.take(phi_t, indices, axis=0)  # [B, K, M]
    p = jnp.einsum("bkm,bm->bk", rows, z)
    return jnp.sum(jnp.where(counts > 0, counts * _safe_log(p), 0.0), axis=-1)


def topic_log_prior(theta: jax.Array, eta: float) -> jax.Array:
    """log Dirichlet(eta) density of the topics, up to a constant: (eta - 1) * sum_m sum_v log phi_mv.

    phi = softmax(theta, axis=-1). MAP treatment of LDA's eta (``model.topic_eta``, ours): the loss
    subtracts this, weighted by 1 / n_train per batch so that it counts once per epoch. Its gradient
    with respect to theta_mv is (eta - 1) * (1 - D * phi_mv): for eta < 1 it lowers the k-mers that a
    topic already gives less than 1 / D (sparse topics), for eta > 1 it pulls every topic to uniform.

    Args:
        theta: [M, D] decoder logits.
        eta: the Dirichlet concentration (> 0).

    Returns:
        Scalar log prior.
    """
    return (eta - 1.0) * jnp.sum(jax.nn.log_softmax(theta, axis=-1))


def topic_kmer_counts(z: jax.Array, theta: jax.Array, indices: jax.Array, counts: jax.Array) -> jax.Array:
    """Expected counts of each k-mer drawn from each topic in a batch, [M, D] (the mixture's E-step).

    Each count x_bk of k-mer j = indices[b, k] is shared out over the topics by its responsibility
    r_bkm = z_bm phi_mj / sum_m' z_bm' phi_m'j, and s_mj = sum over the batch of x_bk r_bkm. The
    entries sum to the batch's total count. Equal to phi_mj times the gradient of the summed
    log-likelihood with respect to phi_mj.

    Args:
        z: [B, M] topic proportions.
        theta: [M, D] decoder logits (phi = softmax(theta, axis=-1)).
        indices: int32 [B, K] k-mer ids (padding: any id, count 0).
        counts: [B, K] counts.
    """
    phi_t = jax.nn.softmax(theta, axis=-1).T  # [D, M]
    joint = jnp.take(phi_t, indices, axis=0) * z[:, None, :]  # [B, K, M]: z_bm phi_mj
    share = counts[..., None] * joint / jnp.maximum(jnp.sum(joint, axis=-1, keepdims=True), jnp.finfo(z.dtype).tiny)
    return jnp.zeros(phi_t.shape, theta.dtype).at[indices].add(share).T


def online_em_logits(theta: jax.Array, batch_counts: jax.Array, step: jax.Array, scale: float, eta: float,
                     offset: float, decay: float) -> jax.Array:
    """Decoder logits after one online-EM step (online LDA's update of the topics, ours).

    With lambda = exp(theta) (unnormalised topics, phi = lambda / sum lambda),
    lambda' = (1 - rho) lambda + rho (eta + scale * s), rho = (offset + step) ** -decay, where s
    (:func:`topic_kmer_counts`) are the batch's expected counts and scale = n_train / batch size
    makes them an estimate for the whole training set. Computed in log space.

    Args:
        theta: [M, D] logits.
        batch_counts: [M, D] expected counts s of the batch.
        step: the update count (0 for the first).
        scale: training sequences per batch sequence.
        eta: pseudo-count (LDA's eta), > 0.
        offset: rho's offset (tau0), >= 1.
        decay: rho's decay (kappa), in [0.5, 1].

    Returns:
        [M, D] logits log lambda'.
    """
    rho = (offset + jnp.asarray(step, theta.dtype)) ** (-decay)
    return jnp.logaddexp(jnp.log1p(-rho) + theta, jnp.log(rho) + jnp.log(eta + scale * batch_counts))


def densify(indices: jax.Array, counts: jax.Array, n_kmers: int) -> jax.Array:
    """Dense counts [B, n_kmers] from a padded sparse batch (indices/counts [B, K], pad count 0)."""
    batch = indices.shape[0]
    rows = jnp.broadcast_to(jnp.arange(batch)[:, None], indices.shape)
    return jnp.zeros((batch, n_kmers), counts.dtype).at[rows, indices].add(counts)


def perplexity(elbo: jax.Array, n_counts: jax.Array) -> jax.Array:
    """exp(mean_b(-elbo_b / n_b)) over rows with n_b > 0 (the reference's per-document perplexity).

    Args:
        elbo: [B] per-sequence ELBO.
        n_counts: [B] total k-mer count of each sequence.
    """
    valid = n_counts > 0
    per_row = jnp.where(valid, -elbo / jnp.where(valid, n_counts, 1.0), 0.0)
    return jnp.exp(jnp.sum(per_row) / jnp.maximum(jnp.sum(valid), 1))
