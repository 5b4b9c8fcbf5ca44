"""Checkpoint + sequences (or features) -> latent scores, fast on a CPU.

Speed trick: a sequence's count vector is a sum over its 8 bp windows of per-window indicator
vectors (each window counts its distinct canonical features once). So the encoder's first layer
``x @ W1 = sum over windows of R[code]`` with ``R[c] = sum of W1 rows of window c's features``, a
``[65536, H0]`` table computed once per model. The rest of the MLP runs as usual. A 10-mer is three
windows, so all 524,800 canonical 10-mers are scored with the same table.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from bindvae import model as model_lib
from bindvae.config import ModelConfig
from bindvae.errors import InputError
from bindvae.kmers import Vocabulary

logger = logging.getLogger(__name__)

_N_WINDOWS = 4**8
_BASE_CODE = np.full(256, 4, dtype=np.int64)
for _i, _b in enumerate("ACGT"):
    _BASE_CODE[ord(_b)] = _BASE_CODE[ord(_b.lower())] = _i
_POW4 = 4 ** np.arange(7, -1, -1, dtype=np.int64)
KINDS = ("mean", "concentration")


@dataclasses.dataclass(eq=False)
class Model:
    """A trained model ready for inference (see :func:`load_model`).

    Attributes:
        params: the Flax parameter tree (see ``bindvae.model``).
        network: the :class:`bindvae.model.BindVAE` module.
        vocabulary: the feature vocabulary the model was trained on.
        config: the run's resolved config as a nested dict (empty when built from parameters).
        step: training step of the checkpoint.
        run_dir: where it was loaded from ("" when built from parameters).
    """

    params: dict
    network: model_lib.BindVAE
    vocabulary: Vocabulary
    config: dict = dataclasses.field(default_factory=dict)
    step: int = 0
    run_dir: str = ""

    @property
    def num_topics(self) -> int:
        """M, the number of latent dimensions."""
        return int(self.network.num_topics)

    @functools.cached_property
    def window_rows(self) -> jax.Array:
        """``[65537, H0]``: row c = sum of W1's rows over window c's distinct features; last row 0."""
        table = jnp.asarray(self.vocabulary.window_feature_table())
        kernel, _ = model_lib.first_layer(self.params)
        padded = jnp.concatenate([kernel, jnp.zeros((1, kernel.shape[1]), kernel.dtype)])
        rows = jnp.zeros((_N_WINDOWS, kernel.shape[1]), kernel.dtype)
        for col in range(table.shape[1]):
            rows = rows + padded[jnp.where(table[:, col] < 0, kernel.shape[0], table[:, col])]
        return jnp.concatenate([rows, jnp.zeros((1, kernel.shape[1]), kernel.dtype)])

    @functools.cached_property
    def _windows_fn(self):
        network = self.network

        def concentration(params, rows, codes):
            _, bias = model_lib.first_layer(params)
            h1 = jnp.take(rows, codes, axis=0).sum(axis=1) + bias
            return model_lib.concentration_from_preactivation(network, params, h1)

        return jax.jit(concentration)

    @functools.cached_property
    def _sparse_fn(self):
        network = self.network
        return jax.jit(lambda params, i, c: model_lib.posterior_concentration_sparse(network, params, i, c))


def model_from_params(params: dict, model_config: ModelConfig, vocabulary: Vocabulary | None = None) -> Model:
    """Wrap parameters (e.g. fresh from training) as a :class:`Model`.

    Args:
        params: the Flax parameter tree.
        model_config: the architecture.
        vocabulary: features (default: the gapped 8-mer vocabulary).

    Returns:
        The model handle.
    """
    vocabulary = vocabulary or Vocabulary.gapped8()
    return Model(params, model_lib.build_model(model_config, len(vocabulary)), vocabulary)


def load_model(run_dir: str | os.PathLike, features_fingerprint: str | None = None) -> Model:
    """Load a run's latest checkpoint for inference.

    Args:
        run_dir: the training run's directory.
        features_fingerprint: vocabulary fingerprint of the features that will be scored (e.g. read
            from a feature dataset); default: the gapped 8-mer vocabulary this package builds.

    Returns:
        The model handle (params, network, vocabulary, config).

    Raises:
        InputError: no checkpoint, or the checkpoint's vocabulary differs from the features'.
    """
    from bindvae.checkpoint import check_vocab, load_checkpoint  # Deferred: orbax is slow to import.

    checkpoint = load_checkpoint(run_dir)
    vocabulary = Vocabulary.gapped8()
    check_vocab(checkpoint, features_fingerprint or vocabulary.fingerprint, run_dir)
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    raw = {k: v for k, v in dict(checkpoint.config.get("model", {})).items() if k in model_fields}
    if "hidden_sizes" in raw:
        raw["hidden_sizes"] = tuple(raw["hidden_sizes"])
    network = model_lib.build_model(ModelConfig(**raw), int(checkpoint.metadata.get("n_kmers", len(vocabulary))))
    params = jax.tree_util.tree_map(jnp.asarray, checkpoint.params)
    return Model(params, network, vocabulary, dict(checkpoint.config), int(checkpoint.step), str(run_dir))


def sequence_window_codes(sequences: Sequence[str], pad_to: int = 32) -> np.ndarray:
    """Window codes of many sequences, padded.

    Args:
        sequences: ``n`` DNA strings (any case).
        pad_to: the window axis is padded to a multiple of this (fewer compiled shapes).

    Returns:
        ``[n, W]`` int32: window codes (see ``bindvae.kmers.window_codes``), and 65536 for padding
        and for windows holding a letter other than ACGT (they count nothing).
    """
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    n_windows = max(int(lengths.max(initial=0)) - 7, 1)
    width = -(-n_windows // pad_to) * pad_to
    bases = np.full((len(sequences), width + 7), 4, dtype=np.int64)
    text = np.frombuffer("".join(sequences).encode("ascii", errors="replace"), dtype=np.uint8)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    rows = np.repeat(np.arange(len(sequences)), lengths)
    cols = np.arange(text.size) - np.repeat(starts[:-1], lengths)
    bases[rows, cols] = _BASE_CODE[text]
    windows = np.lib.stride_tricks.sliding_window_view(bases, 8, axis=1)[:, :width]
    codes = windows @ _POW4
    return np.where((windows < 4).all(axis=2), codes, _N_WINDOWS).astype(np.int32)


def concentration_from_windows(model: Model, codes: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Posterior concentration from window codes (the sum-over-windows first layer).

    Args:
        model: the model.
        codes: ``[n, W]`` int window codes; 65536 = nothing.
        batch_size: rows per jitted call (the last batch is padded, so one compile per ``W``).

    Returns:
        ``[n, M]`` float32 concentration.
    """
    rows = model.window_rows
    out = np.empty((codes.shape[0], model.num_topics), dtype=np.float32)
    for start in range(0, codes.shape[0], batch_size):
        chunk = codes[start : start + batch_size]
        padded = np.full((batch_size, codes.shape[1]), _N_WINDOWS, dtype=np.int32)
        padded[: len(chunk)] = chunk
        out[start : start + len(chunk)] = np.asarray(model._windows_fn(model.params, rows, padded))[: len(chunk)]
    return out


def _concentration_from_csr(model: Model, features: sp.csr_matrix, batch_size: int) -> np.ndarray:
    if features.shape[1] != model.network.n_kmers:
        raise ValueError(f"features have {features.shape[1]} columns, the model expects {model.network.n_kmers}")
    features = sp.csr_matrix(features)
    out = np.empty((features.shape[0], model.num_topics), dtype=np.float32)
    for start in range(0, features.shape[0], batch_size):
        block = features[start : start + batch_size]
        nnz = np.diff(block.indptr)
        width = max(128, -(-int(nnz.max(initial=1)) // 128) * 128)
        indices = np.zeros((batch_size, width), dtype=np.int32)
        counts = np.zeros((batch_size, width), dtype=np.float32)
        rows = np.repeat(np.arange(block.shape[0]), nnz)
        slots = np.arange(block.nnz) - np.repeat(block.indptr[:-1], nnz)
        indices[rows, slots] = block.indices
        counts[rows, slots] = block.data
        result = model._sparse_fn(model.params, indices, counts)
        out[start : start + block.shape[0]] = np.asarray(result)[: block.shape[0]]
    return out


def to_scores(concentration: np.ndarray, kind: str) -> np.ndarray:
    """Concentration -> the requested score.

    Args:
        concentration: ``[n, M]``.
        kind: ``"mean"`` (posterior mean = topic proportions) or ``"concentration"``.

    Returns:
        ``[n, M]`` float32.
    """
    if kind == "concentration":
        return concentration
    if kind == "mean":
        return concentration / concentration.sum(axis=1, keepdims=True)
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def latent_scores(model: Model, X, kind: str = "mean", batch_size: int = 1024) -> np.ndarray:
    """Latent scores of sequences or of a feature matrix.

    Args:
        model: from :func:`load_model` or :func:`model_from_params`.
        X: a list of DNA strings, or a CSR matrix ``[n, n_kmers]`` of counts in the model's vocabulary.
        kind: ``"mean"`` (topic proportions, rows sum to 1) or ``"concentration"`` (what the
            reference BindVAE outputs).
        batch_size: rows per jitted call.

    Returns:
        ``[n, M]`` float32 scores.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if sp.issparse(X):
        concentration = _concentration_from_csr(model, X, batch_size)
    else:
        sequences = [str(s) for s in X]
        codes = sequence_window_codes(sequences)
        empty = int(np.sum((codes == _N_WINDOWS).all(axis=1)))
        if empty:
            logger.warning("%d of %d sequences have no valid 8 bp window; they get the empty input's scores",
                           empty, len(sequences))
        concentration = concentration_from_windows(model, codes, batch_size)
    return to_scores(concentration, kind)
