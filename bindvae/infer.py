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
from pathlib import Path

import jax
import jax.numpy as jnp
import numba
import numpy as np
import scipy.sparse as sp

import bindvae.training.rundir as rundir
from bindvae import dna
from bindvae.config import ModelConfig
from bindvae.features.kmers import Vocabulary
from bindvae.vae import network as model_lib

logger = logging.getLogger(__name__)

_N_WINDOWS = 4**8
_POW4 = 4 ** np.arange(7, -1, -1, dtype=np.int64)
KINDS = ("mean", "concentration")
# What latent_scores can return: the encoder's two, a scan with each topic's own k-mers, the expected
# k-mer counts of each topic, those counts as shares of the sequence's k-mers in the model's vocabulary,
# or as a fraction of all its gapped 8-mers (the last four ours).
SCORE_KINDS = KINDS + ("decoder", "counts", "shares", "density")
# k-mers per topic in the decoder scan (1,000 gave about the same AUROCs on planted peaks).
DECODER_SCAN_KMERS = 300


@dataclasses.dataclass(eq=False)
class Model:
    """A trained model ready for inference (see :func:`load_model`).

    Attributes:
        params: the Flax parameter tree (see ``bindvae.vae.network``).
        network: the :class:`bindvae.vae.network.BindVAE` module.
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
    def window_rows(self) -> np.ndarray:
        """``[65537, H0]`` float32: row c = sum of W1's rows over window c's distinct features; last row 0."""
        table = self.vocabulary.window_feature_table()
        kernel = np.asarray(model_lib.first_layer(self.params)[0], dtype=np.float32)
        padded = np.concatenate([kernel, np.zeros((1, kernel.shape[1]), np.float32)])
        rows = np.zeros((_N_WINDOWS + 1, kernel.shape[1]), np.float32)
        for col in range(table.shape[1]):
            rows[:_N_WINDOWS] += padded[np.where(table[:, col] < 0, kernel.shape[0], table[:, col])]
        return rows

    @functools.cached_property
    def first_layer_host(self) -> tuple[np.ndarray, np.ndarray]:
        """(W1 ``[n_kmers, H0]``, b1 ``[H0]``) as float32 NumPy arrays."""
        kernel, bias = model_lib.first_layer(self.params)
        return np.ascontiguousarray(kernel, dtype=np.float32), np.asarray(bias, dtype=np.float32)

    @functools.cached_property
    def _from_preactivation_fn(self):
        network = self.network
        return jax.jit(lambda params, h1: model_lib.concentration_from_preactivation(network, params, h1))


@numba.njit(parallel=True, fastmath=True, cache=True)
def _window_sums(codes, rows, bias, out):  # pragma: no cover - compiled
    # Row i of out = bias + sum of rows[codes[i, j]]: the first layer as a sum over 8 bp windows.
    n, width = codes.shape
    hidden = rows.shape[1]
    for i in numba.prange(n):
        acc = bias.copy()
        for j in range(width):
            code = codes[i, j]
            for k in range(hidden):
                acc[k] += rows[code, k]
        out[i] = acc


# Row and column block sizes of _csr_times_dense: 1,024 rows of h1 (1.2 MB at H0 = 300) against
# 512 kernel rows (600 KB) at a time, measured fastest of 256..4,096 x 256..1,024 on 50,000 peaks.
_CSR_ROWS_PER_BLOCK = 1024
_CSR_COLS_PER_BLOCK = 512


@numba.njit(parallel=True, fastmath=True, cache=True)
def _csr_times_dense(indptr, indices, data, kernel, bias, out, rows_per_block, cols_per_block):  # pragma: no cover
    # Row i of out = bias + X[i] @ kernel, reading only the kernel rows at X[i]'s nonzeros (sorted
    # column indices). Blocked over rows and kernel columns so that a block of kernel rows stays in
    # cache while every row of the block adds its nonzeros in that range: reading a random 1.2 KB
    # kernel row per nonzero from memory made this 2.6x slower. Each row still adds its nonzeros in
    # ascending column order, so the sums are the same as a plain row-by-row loop.
    n = len(indptr) - 1
    hidden = kernel.shape[1]
    n_features = kernel.shape[0]
    for block in numba.prange((n + rows_per_block - 1) // rows_per_block):
        first = block * rows_per_block
        last = min(n, first + rows_per_block)
        cursor = indptr[first:last].copy()
        for i in range(first, last):
            out[i] = bias
        for column_end in range(cols_per_block, n_features + cols_per_block, cols_per_block):
            for i in range(first, last):
                p = cursor[i - first]
                end = indptr[i + 1]
                while p < end and indices[p] < column_end:
                    weight = data[p]
                    column = indices[p]
                    for k in range(hidden):
                        out[i, k] += weight * kernel[column, k]
                    p += 1
                cursor[i - first] = p


def _concentration_from_h1(model: Model, h1: np.ndarray, batch_size: int) -> np.ndarray:
    """Concentration ``[n, M]`` from first-layer pre-activations ``[n, H0]`` (last batch padded)."""
    out = np.empty((h1.shape[0], model.num_topics), dtype=np.float32)
    for start in range(0, h1.shape[0], batch_size):
        chunk = h1[start : start + batch_size]
        padded = np.zeros((batch_size, h1.shape[1]), np.float32)
        padded[: len(chunk)] = chunk
        out[start : start + len(chunk)] = np.asarray(model._from_preactivation_fn(model.params, padded))[: len(chunk)]
    return out


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
    # Deferred: orbax is slow to import.
    from bindvae.checkpoint import BEST_DIR, CHECKPOINT_DIR, check_vocab, list_steps, load_checkpoint
    from bindvae.training.kmer_choice import vocabulary_of

    # A run that kept its best checkpoint by validation ELBO (train.keep_best) is analysed there.
    best = Path(run_dir).is_dir() and bool(list_steps(run_dir, BEST_DIR))
    checkpoint = load_checkpoint(run_dir, folder=BEST_DIR if best else CHECKPOINT_DIR)
    if best:
        logger.info("%s: reading the best checkpoint by validation ELBO (step %d)", run_dir, checkpoint.step)
    training = rundir.owner(run_dir)
    if training:
        logger.warning("%s is being trained by %s: reading its latest finished checkpoint (step %d)",
                       run_dir, training, checkpoint.step)
    vocabulary = vocabulary_of(checkpoint.metadata)  # the k-mers it chose (model.kmer_selection), or all
    if features_fingerprint and vocabulary.accepts(features_fingerprint):
        features_fingerprint = None  # full gapped 8-mer features: latent_scores takes the model's columns
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
        ``[n, W]`` int32: window codes (see ``bindvae.features.kmers.window_codes``), and 65536 for padding
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
    bases[rows, cols] = dna.BASE_CODE[text]
    windows = np.lib.stride_tricks.sliding_window_view(bases, 8, axis=1)[:, :width]
    codes = windows @ _POW4
    return np.where((windows < 4).all(axis=2), codes, _N_WINDOWS).astype(np.int32)


def concentration_from_windows(model: Model, codes: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Posterior concentration from window codes (the sum-over-windows first layer).

    Args:
        model: the model.
        codes: ``[n, W]`` int window codes; 65536 = nothing.
        batch_size: rows per jitted call of the rest of the MLP.

    Returns:
        ``[n, M]`` float32 concentration.
    """
    if model.network.input_transform != "counts" or model.network.input_norm != "none":
        # The sum over windows holds only for counts as they are: transformed inputs go through
        # the counts themselves.
        return _concentration_from_csr(model, _counts_from_windows(model, codes), batch_size)
    rows = model.window_rows
    _, bias = model.first_layer_host
    h1 = np.empty((codes.shape[0], rows.shape[1]), np.float32)
    _window_sums(np.ascontiguousarray(codes, dtype=np.int32), rows, bias, h1)
    return _concentration_from_h1(model, h1, batch_size)


def _counts_from_windows(model: Model, codes: np.ndarray, chunk: int = 50_000) -> sp.csr_matrix:
    """CSR [n, n_kmers] of gapped 8-mer counts from window codes (the same as ``featurize``)."""
    table = model.vocabulary.window_feature_table()  # [65536, 16] feature per variant, -1 for repeats
    parts = []
    for start in range(0, codes.shape[0], chunk):
        block = np.asarray(codes[start : start + chunk])
        row, col = np.nonzero(block < _N_WINDOWS)
        features = table[block[row, col]]  # [n_windows, 16]
        rows = np.repeat(row, features.shape[1])
        keep = features.ravel() >= 0
        parts.append(sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (rows[keep], features.ravel()[keep])),
                                   shape=(block.shape[0], len(model.vocabulary))))
    return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, len(model.vocabulary)), dtype=np.float32)


def _concentration_from_csr(model: Model, features: sp.csr_matrix, batch_size: int) -> np.ndarray:
    if features.shape[1] != model.network.n_kmers:
        raise ValueError(f"features have {features.shape[1]} columns, the model expects {model.network.n_kmers}")
    features = sp.csr_matrix(features)
    if not features.has_sorted_indices:
        features = features.sorted_indices()
    kernel, bias = model.first_layer_host
    h1 = np.empty((features.shape[0], kernel.shape[1]), np.float32)
    # copy=False: a featurized matrix already has these dtypes, and a copy of 150M nonzeros costs seconds.
    values = model_lib.transform_counts(features.data.astype(np.float32, copy=False), model.network.input_transform)
    norm = model.network.input_norm
    if norm != "none":
        row_of = np.repeat(np.arange(features.shape[0]), np.diff(features.indptr))
        total = np.bincount(row_of, weights=values * values if norm == "l2" else np.abs(values),
                            minlength=features.shape[0])
        values = (values * model_lib.norm_scale(total, norm)[row_of]).astype(np.float32)
    _csr_times_dense(
        features.indptr.astype(np.int64, copy=False),
        features.indices.astype(np.int32, copy=False),
        values,
        kernel,
        bias,
        h1,
        _CSR_ROWS_PER_BLOCK,
        _CSR_COLS_PER_BLOCK,
    )
    return _concentration_from_h1(model, h1, batch_size)


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


def decoder_scan_weights(model: Model, n_top: int = DECODER_SCAN_KMERS) -> np.ndarray:
    """Per-topic k-mer weights of the decoder scan: ``[M, n_kmers]`` float32.

    For topic m, ``w[m, j] = max(0, log phi[m, j] - log mean_m' phi[m', j])`` at its ``n_top`` largest
    values and 0 elsewhere: the k-mers that topic m makes more likely than the average topic does.
    """
    return scan_weights(decoder_log_phi(model), n_top)


def scan_weights(log_phi: np.ndarray, n_top: int = DECODER_SCAN_KMERS) -> np.ndarray:
    """:func:`decoder_scan_weights` of any topic model given its ``[M, n_kmers]`` log topic-k-mer
    distributions (rows normalised), e.g. an LDA's, so that models can be scanned alike."""
    log_phi = np.asarray(log_phi, dtype=np.float64)
    ratio = log_phi - np.log(np.exp(log_phi).mean(axis=0, keepdims=True))
    n_top = min(n_top, ratio.shape[1])
    top = np.argpartition(-ratio, n_top - 1, axis=1)[:, :n_top]
    weights = np.zeros_like(ratio, dtype=np.float32)
    np.put_along_axis(weights, top, np.maximum(np.take_along_axis(ratio, top, axis=1), 0.0), axis=1)
    return weights


def expected_topic_counts(counts, proportions: np.ndarray, log_phi: np.ndarray,
                          max_entries: int = 8_000_000) -> np.ndarray:
    """How many of each row's k-mers each topic generated, in expectation: ``[n, M]`` float32.

    ``E[n, m] = theta[n, m] * sum_j counts[n, j] phi[m, j] / sum_m' theta[n, m'] phi[m', j]``: every
    k-mer occurrence is shared among the topics in proportion to how likely each makes it in this
    row (LDA's E-step, one step from ``proportions``). Rows sum to the row's k-mer count. Any topic
    model can be scored alike: BindVAE gives its encoder's posterior mean and its decoder's topics.

    Args:
        counts: ``[n, n_kmers]`` k-mer counts (CSR or dense).
        proportions: ``[n, M]`` topic proportions (rows sum to 1).
        log_phi: ``[M, n_kmers]`` log topic-k-mer distributions (rows normalised).
        max_entries: nonzeros x M held at once (rows are done in blocks under this).

    Returns:
        ``[n, M]`` float32.
    """
    X = sp.csr_matrix(counts, dtype=np.float64)
    theta = np.asarray(proportions, dtype=np.float64)
    phi = np.exp(np.asarray(log_phi, dtype=np.float64))
    if theta.shape != (X.shape[0], phi.shape[0]) or phi.shape[1] != X.shape[1]:
        raise ValueError(f"counts {X.shape}, proportions {theta.shape} and topics {phi.shape} do not fit together")
    phi_t = np.ascontiguousarray(phi.T)
    out = np.zeros(theta.shape, dtype=np.float32)
    rows_per_block = max(1, int(max_entries // max(1, phi.shape[0] * max(1, X.nnz // max(1, X.shape[0])))))
    for start in range(0, X.shape[0], rows_per_block):
        block = X[start : start + rows_per_block]
        if block.nnz == 0:
            continue
        row_of = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
        mixture = np.einsum("em,em->e", theta[start + row_of], phi_t[block.indices])
        ratio = sp.csr_matrix((block.data / np.maximum(mixture, np.finfo(np.float64).tiny), block.indices,
                               block.indptr), shape=block.shape)
        out[start : start + block.shape[0]] = theta[start : start + block.shape[0]] * (ratio @ phi_t)
    return out


def _model_columns(model: Model, X: sp.spmatrix) -> sp.spmatrix:
    """``X`` in the model's columns: full gapped 8-mer features of a model that chose its k-mers
    (``model.kmer_selection``) are cut to its columns; anything else is passed on as it is."""
    vocabulary = model.vocabulary
    if vocabulary.parent is not None and X.shape[1] == len(vocabulary.parent) != len(vocabulary):
        return vocabulary.restrict(X)
    return X


def latent_scores(model: Model, X, kind: str = "density", batch_size: int = 4096) -> np.ndarray:
    """Latent scores of sequences or of a feature matrix.

    Args:
        model: from :func:`load_model` or :func:`model_from_params`.
        X: a list of DNA strings, or a CSR matrix ``[n, n_kmers]`` of counts in the model's vocabulary
            (or, for a model that chose its k-mers, the full gapped 8-mer counts: its columns are taken).
        kind: ``"density"`` (ours, the default: :func:`topic_density`, each topic's expected k-mers
            as a fraction of all the sequence's gapped 8-mers, chosen by the model or not; what the
            analysis's per-peak TF calls read; needs sequences or the full gapped 8-mer counts;
            measured in BENCHMARKS.md, "Each topic's density in a peak": on 28 seeds of the planted set
            it ranks every motif in >= 5% of peaks at 0.9 x its supervised limit on 28 against 22 for
            ``"shares"``, and gives each family of the 100 real 20 bp probes its own topic on 9 of 20
            seeds against 16), ``"shares"`` (ours: :func:`topic_shares`, each topic's share of the
            sequence's k-mers in the model's vocabulary, the encoder's proportions after one E-step of
            the model with its topics and no prior; rows sum to 1; the better score for short
            sequences that are mostly one site, such as probes; for a model that kept every k-mer the
            same as ``"density"`` but on rows without a k-mer), ``"mean"`` (the encoder's posterior
            mean, the paper's topic proportions; rows sum to 1; what the analysis's names read),
            ``"concentration"`` (what the reference BindVAE outputs), ``"decoder"`` (ours: the
            sequence's k-mer counts dotted with :func:`decoder_scan_weights`, a scan with each topic's
            own k-mers that bypasses the encoder), or ``"counts"`` (ours: :func:`expected_topic_counts`
            from the encoder's mean and the decoder's topics, how many of the sequence's k-mers each
            topic generated; rows sum to the k-mer count).
        batch_size: rows per jitted call.

    Returns:
        ``[n, M]`` float32 scores.
    """
    if kind not in SCORE_KINDS:
        raise ValueError(f"kind must be one of {SCORE_KINDS}, got {kind!r}")
    totals = None
    if sp.issparse(X):
        if kind == "density":
            totals = _csr_kmer_totals(model, X)
        X = _model_columns(model, X)
    if kind == "decoder":
        counts = X if sp.issparse(X) else _counts_from_windows(model, sequence_window_codes([str(s) for s in X]))
        return np.asarray(sp.csr_matrix(counts, dtype=np.float32) @ decoder_scan_weights(model).T, dtype=np.float32)
    codes = None
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
    if kind in ("counts", "shares", "density"):
        counts = X if codes is None else _counts_from_windows(model, codes)
        mean = to_scores(concentration, "mean")
        expected = expected_topic_counts(counts, mean, decoder_log_phi(model))
        if kind == "density":
            return topic_density(expected, totals if totals is not None else window_kmer_totals(model, codes))
        return expected if kind == "counts" else topic_shares(expected, mean)
    return to_scores(concentration, kind)


def topic_shares(expected_counts: np.ndarray, proportions: np.ndarray) -> np.ndarray:
    """Each topic's share of a row's k-mers: ``[n, M]`` float32 rows summing to 1.

    ``expected_counts`` (:func:`expected_topic_counts`) divided by the row's k-mer count: the topic
    proportions after one E-step from ``proportions`` with the topics fixed and no prior (LDA's
    responsibilities, averaged over the row's k-mer occurrences). A row with no k-mers keeps its
    ``proportions``.
    """
    expected = np.asarray(expected_counts, dtype=np.float64)
    totals = expected.sum(axis=1, keepdims=True)
    shares = np.where(totals > 0, expected / np.where(totals > 0, totals, 1.0), proportions)
    return shares.astype(np.float32)


def topic_density(expected_counts: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Each topic's expected k-mers as a fraction of all the row's gapped 8-mers: ``[n, M]`` float32 (ours).

    ``expected_counts`` (:func:`expected_topic_counts`) divided by ``totals``, every gapped 8-mer the
    sequence holds, whether the model chose it or not (:func:`window_kmer_totals`). Unlike
    :func:`topic_shares` the denominator does not grow with the sites a peak carries: a binding site
    adds dozens of the k-mers a model chooses (they are chosen for varying across peaks), only some of
    them explained by the site's topics, and a share is divided by all of them. For a model that kept
    every k-mer the two are the same. A row with no k-mers scores 0.
    """
    expected = np.asarray(expected_counts, dtype=np.float64)
    totals = np.asarray(totals, dtype=np.float64).reshape(-1, 1)
    if totals.shape[0] != expected.shape[0]:
        raise ValueError(f"{expected.shape[0]} rows of counts and {totals.shape[0]} totals")
    return np.divide(expected, totals, out=np.zeros_like(expected), where=totals > 0).astype(np.float32)


def _full_vocabulary(model: Model) -> Vocabulary:
    """The vocabulary the model's k-mers were chosen from (its own when it kept every k-mer)."""
    return model.vocabulary.parent if model.vocabulary.parent is not None else model.vocabulary


def window_kmer_totals(model: Model, codes: np.ndarray) -> np.ndarray:
    """How many gapped 8-mers each row of window codes holds in all: ``[n]`` float64, as ``featurize``
    counts them over the full vocabulary (a window adds its distinct canonical variants, 16 or fewer)."""
    per_window = np.append((_full_vocabulary(model).window_feature_table() >= 0).sum(axis=1), 0)
    return per_window[np.asarray(codes, dtype=np.int64)].sum(axis=1).astype(np.float64)


def has_kmer_totals(model: Model, X: sp.spmatrix) -> bool:
    """Whether a feature matrix holds every gapped 8-mer of its rows (what ``kind="density"`` divides
    by), not only the k-mers the model chose."""
    return X.shape[1] == len(_full_vocabulary(model))


def _csr_kmer_totals(model: Model, X: sp.spmatrix) -> np.ndarray:
    """Row sums of full gapped 8-mer counts; a matrix of the model's chosen columns alone cannot give them."""
    full = _full_vocabulary(model)
    if not has_kmer_totals(model, X):
        raise ValueError(f"kind='density' needs sequences or counts of all {len(full):,} gapped 8-mers; these "
                         f"features have {X.shape[1]:,} columns (the model's chosen k-mers): use kind='shares'")
    return np.asarray(X.sum(axis=1), dtype=np.float64).ravel()


def decoder_log_phi(model: Model) -> np.ndarray:
    """``[M, n_kmers]`` float64 log topic-k-mer distributions of the decoder (``log softmax(theta)``)."""
    theta = np.asarray(model.params["topic_kmer"]["theta"], dtype=np.float64)
    return theta - np.logaddexp.reduce(theta, axis=1, keepdims=True)
