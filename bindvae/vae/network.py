"""The Dirichlet VAE's structure (Flax Linen) and pure accessors on its parameters.

Parameter tree of :class:`BindVAE` (fixed paths that analysis code may rely on)::

    params["encoder"]["input_kernel"]      W1 [n_kmers, hidden_sizes[0]]   (Glorot normal)
    params["encoder"]["input_bias"]        b1 [hidden_sizes[0]]
    params["encoder"]["hidden_{i}"]        Dense layers i = 1 .. len(hidden_sizes) - 1
    params["encoder"]["concentration"]     Dense to [num_topics]
    params["topic_kmer"]["theta"]          theta [num_topics, n_kmers]  (decoder logits)
    params["prior"]["raw_alpha"]           [num_topics]; prior alpha = clip(softplus(raw), min, max)

The encoder's first layer is kept as explicit arrays so that the sparse path can read only the rows
of W1 at a sequence's nonzero k-mers: ``h1 = sum_k counts[k] * W1[indices[k]] + b1``. Analysis code
that builds ``x @ W1`` itself (e.g. as a sum over 8 bp windows of precomputed rows of W1) calls
:func:`concentration_from_preactivation` with ``h1 = x @ W1 + b1`` (bias INCLUDED).

All math lives in ``bindvae.vae.objectives``; this module only defines the computation graph.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from bindvae.config import ModelConfig

_ACTIVATIONS: dict[str, Callable] = {
    "relu": nn.relu,
    "gelu": nn.gelu,
    "softplus": nn.softplus,
    "tanh": jnp.tanh,
    "elu": nn.elu,
    "silu": nn.silu,
}


def transform_counts(counts, kind: str):
    """What the encoder reads of k-mer counts (``model.input_transform``); 0 stays 0, so padding is inert.

    Args:
        counts: counts of any shape (jax or numpy, float).
        kind: ``counts`` (unchanged), ``log1p`` or ``binary``.
    """
    if kind == "counts":
        return counts
    xp = jnp if isinstance(counts, jax.Array) else np
    if kind == "log1p":
        return xp.log1p(counts)
    if kind == "binary":
        return (counts > 0).astype(counts.dtype)
    raise ValueError(f"unknown input transform {kind!r}")


def norm_scale(total, norm: str):
    """Per-row factors from each row's sum of |values| (``l1``) or of squared values (``l2``); empty rows keep 1."""
    xp = jnp if isinstance(total, jax.Array) else np
    total = xp.sqrt(total) if norm == "l2" else total
    return 1.0 / xp.where(total > 0, total, 1.0)


def row_scale(values, norm: str):
    """Per-row factor that normalises already transformed inputs (``model.input_norm``), or None.

    Args:
        values: transformed inputs, one row per leading index ([..., K]; padding slots hold 0).
        norm: ``none``, ``l1`` (rows sum to 1) or ``l2`` (rows of unit Euclidean length).

    Returns:
        ``[...]`` factors, or None for ``none``.
    """
    if norm == "none":
        return None
    if norm not in ("l1", "l2"):
        raise ValueError(f"unknown input norm {norm!r}")
    xp = jnp if isinstance(values, jax.Array) else np
    return norm_scale(xp.sum(values * values if norm == "l2" else xp.abs(values), axis=-1), norm)


def encoder_input(counts, kind: str, norm: str = "none"):
    """What the encoder's first layer reads of rows of counts [..., K]: transformed, then normalised."""
    values = transform_counts(counts, kind)
    scale = row_scale(values, norm)
    return values if scale is None else values * scale[..., None]


def encoder_order(order, counts, kind: str, norm: str = "none"):
    """A batch's column order (``bindvae.kernels.sparse_ops.ColumnOrder``) with the values the encoder reads.

    ``counts`` is the padded batch [B, K] the order was built from; each entry's row factor is looked
    up by its batch row.
    """
    values = transform_counts(order.values, kind)
    scale = row_scale(transform_counts(counts, kind), norm)
    if scale is not None:
        values = values * jnp.take(scale, order.rows, mode="clip")
    return order._replace(values=values)


def softplus_inverse(value: float) -> float:
    """x such that softplus(x) = value (value > 0), computed stably in float64."""
    value = float(value)
    return float(value + np.log(-np.expm1(-value)))


class Encoder(nn.Module):
    """MLP from k-mer counts to the Dirichlet posterior concentration.

    Attributes:
        n_kmers: D, the input dimension.
        num_topics: M, the output dimension.
        hidden_sizes: widths of the hidden layers.
        activation: nonlinearity name.
        min_concentration: lower clip of the output.
        max_concentration: upper clip of the output.
        input_transform: what the first layer reads of the counts (:func:`transform_counts`).
        input_norm: how each row of transformed counts is then normalised (:func:`row_scale`).
    """

    n_kmers: int
    num_topics: int
    hidden_sizes: tuple = (300, 300, 300)
    activation: str = "relu"
    min_concentration: float = 0.1
    max_concentration: float = 1000.0
    input_transform: str = "counts"
    input_norm: str = "none"

    def setup(self):
        init = nn.initializers.glorot_normal()
        self.input_kernel = self.param("input_kernel", init, (self.n_kmers, self.hidden_sizes[0]))
        self.input_bias = self.param("input_bias", nn.initializers.zeros, (self.hidden_sizes[0],))
        self.hidden = [
            nn.Dense(width, kernel_init=init, name=f"hidden_{i + 1}") for i, width in enumerate(self.hidden_sizes[1:])
        ]
        self.concentration = nn.Dense(self.num_topics, kernel_init=init, name="concentration")

    def from_preactivation(self, h1: jax.Array) -> jax.Array:
        """Concentration [batch, M] from the first layer's pre-activation h1 = x @ W1 + b1 [batch, H0]."""
        act = _ACTIVATIONS[self.activation]
        h = act(h1)
        for layer in self.hidden:
            h = act(layer(h))
        out = nn.softplus(self.concentration(h))
        # The clip keeps the Dirichlet sampler and lgamma/digamma in a well-conditioned range.
        return jnp.clip(out, self.min_concentration, self.max_concentration)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Concentration [batch, M] from dense counts x [batch, n_kmers]."""
        x = encoder_input(x, self.input_transform, self.input_norm)
        return self.from_preactivation(x @ self.input_kernel + self.input_bias)

    def sparse(self, indices: jax.Array, counts: jax.Array) -> jax.Array:
        """Concentration [batch, M] from padded sparse counts.

        Args:
            indices: int32 [batch, K] k-mer ids; padding slots may hold any valid id.
            counts: float32 [batch, K] counts; padding slots hold 0.
        """
        rows = jnp.take(self.input_kernel, indices, axis=0)  # [batch, K, H0]
        x = encoder_input(counts, self.input_transform, self.input_norm)
        h1 = jnp.einsum("bk,bkh->bh", x, rows) + self.input_bias
        return self.from_preactivation(h1)


class TopicKmer(nn.Module):
    """Decoder logits theta [M, n_kmers]; phi = softmax(theta, axis=-1) are the topics' k-mer distributions."""

    n_kmers: int
    num_topics: int

    @nn.compact
    def __call__(self) -> jax.Array:
        # Glorot-normal logits, as the reference (TFP's LDA example) initialises them.
        return self.param("theta", nn.initializers.glorot_normal(), (self.num_topics, self.n_kmers))


class Prior(nn.Module):
    """Learned symmetric-at-start Dirichlet prior: alpha = clip(softplus(raw_alpha), min, max), [M]."""

    num_topics: int
    alpha: float
    min_concentration: float = 0.1
    max_concentration: float = 1000.0

    @nn.compact
    def __call__(self) -> jax.Array:
        raw = self.param("raw_alpha", nn.initializers.constant(softplus_inverse(self.alpha)), (self.num_topics,))
        return jnp.clip(nn.softplus(raw), self.min_concentration, self.max_concentration)


class BindVAE(nn.Module):
    """Encoder, topic-k-mer decoder logits and prior, as named submodules.

    ``__call__(x)`` (dense) returns ``(concentration [B, M], theta [M, D], prior_alpha [M])`` and
    initialises every parameter. ``sparse(indices, counts)`` returns the same triple.
    """

    n_kmers: int
    num_topics: int = 100
    alpha: float = 10.0
    hidden_sizes: tuple = (300, 300, 300)
    activation: str = "relu"
    min_concentration: float = 0.1
    max_concentration: float = 1000.0
    input_transform: str = "counts"
    input_norm: str = "none"  # see ModelConfig.input_norm
    topic_eta: float = 0.0  # Dirichlet prior on the topics (0 = off); see ModelConfig.topic_eta
    topic_prior_weight: float = 0.0  # 1 / n_train (set by the training loop): the topic prior's weight per batch
    # and, with train.decoder_update=online_em, the batch-to-training-set scale
    decoder: str = "mixture"  # mixture (the paper's) or product; see ModelConfig.decoder
    background_topic: bool = False  # the last topic is held at the corpus frequencies; see ModelConfig

    def setup(self):
        clip = dict(min_concentration=self.min_concentration, max_concentration=self.max_concentration)
        self.encoder = Encoder(self.n_kmers, self.num_topics, tuple(self.hidden_sizes), self.activation, **clip,
                               input_transform=self.input_transform, input_norm=self.input_norm)
        self.topic_kmer = TopicKmer(self.n_kmers, self.num_topics)
        self.prior = Prior(self.num_topics, self.alpha, **clip)

    def __call__(self, x: jax.Array):
        return self.encoder(x), self.topic_kmer(), self.prior()

    def sparse(self, indices: jax.Array, counts: jax.Array):
        return self.encoder.sparse(indices, counts), self.topic_kmer(), self.prior()

    def from_preactivation(self, h1: jax.Array) -> jax.Array:
        return self.encoder.from_preactivation(h1)


def build_model(model_config: ModelConfig, n_kmers: int, n_train: int = 0) -> BindVAE:
    """The :class:`BindVAE` for a config and a vocabulary size (n_kmers = D, from the data).

    ``n_train`` (training sequences) sets the topic prior's weight per batch (1 / n_train); only
    training needs it, and only with ``model.topic_eta`` or ``train.decoder_update=online_em``.
    """
    return BindVAE(
        n_kmers=int(n_kmers),
        num_topics=model_config.num_topics,
        alpha=float(model_config.alpha),
        hidden_sizes=tuple(model_config.hidden_sizes),
        activation=model_config.activation,
        min_concentration=model_config.min_concentration,
        max_concentration=model_config.max_concentration,
        input_transform=model_config.input_transform,
        input_norm=model_config.input_norm,
        topic_eta=float(model_config.topic_eta),
        topic_prior_weight=1.0 / n_train if n_train > 0 else 0.0,
        decoder=model_config.decoder,
        background_topic=bool(model_config.background_topic),
    )


def background_theta(kmer_counts: np.ndarray, num_topics: int, key: jax.Array, noise: float = 0.01,
                     pseudocount: float = 0.5, exact_last: bool = False) -> jax.Array:
    """Decoder logits that start every topic at the corpus background (``model.theta_init=background``).

    theta[m, j] = log((c_j + pseudocount) / sum(c + pseudocount)) + noise * N(0, 1). With Glorot logits
    (std ~0.004 for D = 112,800) every topic starts at the uniform distribution, and all topics first
    spend their updates learning the same background k-mer frequencies, which keeps them alike; from
    the background each topic only has to learn its deviations (a planted motif's k-mers), and the
    noise breaks the symmetry between topics.

    Args:
        kmer_counts: [n_kmers] total count of each k-mer over the training sequences.
        num_topics: M.
        key: PRNG key for the noise.
        noise: standard deviation of the Gaussian noise on the logits.
        pseudocount: added to every count (k-mers never seen keep a finite logit).
        exact_last: the last topic gets no noise (``model.background_topic``: it is the corpus itself).

    Returns:
        float32 [num_topics, n_kmers] logits.
    """
    counts = np.asarray(kmer_counts, dtype=np.float64).ravel() + pseudocount
    base = jnp.asarray(np.log(counts / counts.sum()), jnp.float32)
    theta = base[None, :] + noise * jax.random.normal(key, (num_topics, base.shape[0]), jnp.float32)
    return theta.at[-1].set(base) if exact_last else theta


def init_params(model: BindVAE, key: jax.Array) -> dict:
    """Fresh parameters (all submodules) for ``model``; ``key`` is a jax PRNG key."""
    return model.init(key, jnp.zeros((1, model.n_kmers), jnp.float32))["params"]


def posterior_concentration_sparse(model: BindVAE, params: dict, indices: jax.Array, counts: jax.Array) -> jax.Array:
    """Posterior Dirichlet concentration [B, M] from a padded sparse batch.

    ``indices`` int32 [B, K], ``counts`` [B, K], pad count 0.
    """
    return model.apply({"params": params}, indices, counts, method=lambda m, i, c: m.encoder.sparse(i, c))


def posterior_concentration_dense(model: BindVAE, params: dict, x: jax.Array) -> jax.Array:
    """Posterior Dirichlet concentration [B, M] from dense counts x [B, n_kmers]."""
    return model.apply({"params": params}, x, method=lambda m, v: m.encoder(v))


def concentration_from_preactivation(model: BindVAE, params: dict, h1: jax.Array) -> jax.Array:
    """Posterior concentration [B, M] given h1 = x @ W1 + b1 [B, hidden_sizes[0]] (bias included).

    W1 is ``params["encoder"]["input_kernel"]`` [n_kmers, H0] and b1 ``params["encoder"]["input_bias"]`` [H0].
    """
    return model.apply({"params": params}, h1, method=lambda m, h: m.from_preactivation(h))


def first_layer(params: dict) -> tuple[jax.Array, jax.Array]:
    """(W1 [n_kmers, H0], b1 [H0]) of the encoder."""
    enc = params["encoder"]
    return enc["input_kernel"], enc["input_bias"]


def topic_kmer_matrix(params: dict) -> jax.Array:
    """phi = softmax(theta, axis=-1) [M, n_kmers]: each topic's distribution over k-mers."""
    return jax.nn.softmax(params["topic_kmer"]["theta"], axis=-1)


def prior_alpha(params: dict, min_concentration: float = 0.1, max_concentration: float = 1000.0) -> jax.Array:
    """The prior's concentration [M] = clip(softplus(raw_alpha), min, max)."""
    return jnp.clip(jax.nn.softplus(params["prior"]["raw_alpha"]), min_concentration, max_concentration)
