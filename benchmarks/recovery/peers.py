"""The peers, scored exactly as the VAE is.

scikit-learn's online LatentDirichletAllocation on the same count matrix with the same number of topics,
whose "encoder" is ``transform`` (posterior topic proportions), applied to peaks and to 10-mers exactly as
the VAE's encoder is; and collapsed Gibbs LDA (tomotopy) on the same counts, each count one token, whose
10-mers go through the same mean-field ``transform`` under its sampled topics.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)


def fit_lda(train_counts: sp.csr_matrix, num_topics: int, seed: int, passes: int = 5, batch_size: int = 256,
            n_jobs: int = 1):
    """The peer: scikit-learn's online LDA on the same counts.

    Args:
        train_counts: ``[n_train, n_kmers]`` CSR counts.
        num_topics: as the VAE's M.
        seed: ``random_state``.
        passes: epochs of online variational Bayes.
        batch_size: documents per online update.
        n_jobs: parallel E-step workers.

    Returns:
        The fitted ``LatentDirichletAllocation``.
    """
    from sklearn.decomposition import LatentDirichletAllocation

    lda = LatentDirichletAllocation(n_components=num_topics, learning_method="online", batch_size=batch_size,
                                    max_iter=passes, random_state=seed, total_samples=train_counts.shape[0],
                                    learning_offset=10.0, n_jobs=n_jobs)
    start = time.perf_counter()
    lda.fit(train_counts)
    logger.info("LDA: %d topics, %d passes in %.1f s", num_topics, passes, time.perf_counter() - start)
    return lda


def transform_in_chunks(transform, counts: sp.csr_matrix, chunk: int = 20_000) -> np.ndarray:
    """Applies ``transform`` (rows -> ``[rows, M]``) in row chunks; returns float32 ``[n, M]``."""
    parts = [np.asarray(transform(counts[i:i + chunk]), dtype=np.float32) for i in range(0, counts.shape[0], chunk)]
    return np.concatenate(parts)


# ---------------------------------------------------------------------------------------------------------------------
# Yardsticks: what a perfect motif scanner and a supervised classifier on the same counts reach.


@dataclasses.dataclass
class GibbsLda:
    """A trained tomotopy ``LDAModel`` and what its training cost.

    Attributes:
        model: the ``tomotopy.LDAModel``; its documents are the training rows, in order.
        words: ``[n_kmers]`` token strings, ``words[j]`` stands for k-mer column ``j``.
        iterations: Gibbs sweeps done.
        seconds: wall time of corpus building plus sampling.
    """

    model: object
    words: np.ndarray
    iterations: int
    seconds: float


def _tokens(counts: sp.csr_matrix, words: np.ndarray, row: int) -> list:
    start, end = counts.indptr[row], counts.indptr[row + 1]
    return words[np.repeat(counts.indices[start:end], counts.data[start:end].astype(np.int64))].tolist()


def fit_gibbs_lda(train_counts: sp.csr_matrix, num_topics: int, seed: int, alpha: float = 0.1, eta: float = 0.01,
                  workers: int = 1, max_iterations: int = 1000, budget_s: float | None = None,
                  chunk_iterations: int = 10) -> GibbsLda:
    """Collapsed Gibbs LDA on the same counts, sampled in chunks until an iteration or time limit.

    The clock starts before the corpus is built, so the budget covers everything from the count
    matrix on. A chunk is shortened so that, at the last chunk's speed, it ends inside the budget;
    the first chunk always runs.

    Args:
        train_counts: ``[n_train, n_kmers]`` CSR counts; every row should have counts.
        num_topics: as the VAE's M.
        seed: tomotopy's seed.
        alpha: initial document-topic prior (tomotopy re-estimates it every 10 sweeps by default).
        eta: topic-word prior.
        workers: sampling threads (results with ``workers > 1`` may differ between runs).
        max_iterations: at most this many sweeps.
        budget_s: stop when the next chunk would end after this many seconds (None: no time limit).
        chunk_iterations: sweeps per ``train`` call.

    Returns:
        The model with its sweep count and wall time.
    """
    import warnings

    import tomotopy

    start = time.perf_counter()
    words = np.array([str(j) for j in range(train_counts.shape[1])], dtype=object)
    model = tomotopy.LDAModel(k=num_topics, alpha=alpha, eta=eta, seed=seed)
    for row in range(train_counts.shape[0]):
        model.add_doc(_tokens(train_counts, words, row))
    iterations, per_iteration = 0, 0.0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The training result may differ")  # documented above
        while iterations < max_iterations:
            step = min(chunk_iterations, max_iterations - iterations)
            if budget_s is not None and iterations:
                step = min(step, int((budget_s - (time.perf_counter() - start)) / per_iteration))
                if step < 1:
                    break
            chunk_start = time.perf_counter()
            model.train(step, workers=workers)
            per_iteration = (time.perf_counter() - chunk_start) / step
            iterations += step
    seconds = time.perf_counter() - start
    logger.info("Gibbs LDA: %d topics, %d sweeps in %.1f s (log-lik/token %.3f)", num_topics, iterations, seconds,
                model.ll_per_word)
    return GibbsLda(model, words, iterations, seconds)


def gibbs_training_topics(fitted: GibbsLda) -> np.ndarray:
    """``[n_train, M]`` float32 topic proportions of the training documents, in row order."""
    return np.array([doc.get_topic_dist() for doc in fitted.model.docs], dtype=np.float32)


def gibbs_infer(fitted: GibbsLda, counts: sp.csr_matrix, iterations: int = 100, workers: int = 1):
    """Topic proportions of new rows by tomotopy's ``infer`` (Gibbs sampling with the topics fixed).

    Args:
        fitted: the trained peer.
        counts: ``[n, n_kmers]`` CSR counts.
        iterations: sampling sweeps per document.
        workers: threads.

    Returns:
        ``([n, M]`` float32 proportions, held-out perplexity ``exp(-sum log-lik / tokens))``.
    """
    if counts.shape[0] == 0:
        return np.zeros((0, fitted.model.k), dtype=np.float32), float("nan")
    docs = [fitted.model.make_doc(_tokens(counts, fitted.words, row)) for row in range(counts.shape[0])]
    proportions, log_lik = fitted.model.infer(docs, iterations=iterations, workers=workers)
    perplexity = float(np.exp(-np.sum(log_lik) / counts.sum()))
    return np.asarray(proportions, dtype=np.float32), perplexity


def gibbs_topic_word(fitted: GibbsLda) -> np.ndarray:
    """``[M, n_kmers]`` Dirichlet posterior of each topic's k-mer distribution: counts plus eta."""
    model = fitted.model
    columns = np.array([int(w) for w in model.used_vocabs], dtype=np.int64)
    lam = np.full((model.k, len(fitted.words)), model.eta, dtype=np.float64)
    for topic in range(model.k):
        lam[topic, columns] = model.get_topic_word_dist(topic, normalize=False)
    return lam


def variational_transform(topic_word: np.ndarray, alpha, counts: sp.csr_matrix, max_iter: int = 100,
                          tol: float = 1e-3, chunk: int = 5_000) -> np.ndarray:
    """Mean-field topic proportions of rows under fixed topics (the E-step of scikit-learn's
    ``LatentDirichletAllocation.transform``), so that a Gibbs model's 10-mers are scored as the
    online peer's are. tomotopy's own ``infer`` copies the model per document and would take hours
    for all canonical 10-mers.

    Args:
        topic_word: ``[M, n_kmers]`` Dirichlet parameters of the topics (:func:`gibbs_topic_word`).
        alpha: document-topic prior, scalar or ``[M]``.
        counts: ``[n, n_kmers]`` CSR counts.
        max_iter: E-step iterations at most.
        tol: a row stops when the mean absolute change of its unnormalised proportions falls below this.
        chunk: rows per block.

    Returns:
        ``[n, M]`` float32 normalised proportions.
    """
    from scipy.special import digamma

    alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (topic_word.shape[0],))
    exp_beta = np.exp(digamma(topic_word) - digamma(topic_word.sum(axis=1, keepdims=True)))
    beta_t = np.ascontiguousarray(exp_beta.T)  # [n_kmers, M]
    parts = []
    for first in range(0, counts.shape[0], chunk):
        block = sp.csr_matrix(counts[first:first + chunk], dtype=np.float64)
        rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
        beta_nz = beta_t[block.indices]  # [nnz, M]
        gamma = np.ones((block.shape[0], topic_word.shape[0]))
        exp_theta = np.exp(digamma(gamma) - digamma(gamma.sum(axis=1, keepdims=True)))
        active = np.ones(block.shape[0], dtype=bool)
        for _ in range(max_iter):  # each row stops on its own, as in scikit-learn's per-document loop
            norm = np.einsum("nk,nk->n", exp_theta[rows], beta_nz) + np.finfo(np.float64).eps
            weighted = sp.csr_matrix((block.data / norm, block.indices, block.indptr), shape=block.shape)
            new = alpha + exp_theta * (weighted @ beta_t)
            change = np.abs(new - gamma).mean(axis=1)
            gamma[active] = new[active]
            exp_theta[active] = np.exp(digamma(new[active]) - digamma(new[active].sum(axis=1, keepdims=True)))
            active &= change >= tol
            if not active.any():
                break
        parts.append((gamma / gamma.sum(axis=1, keepdims=True)).astype(np.float32))
    return np.concatenate(parts) if parts else np.zeros((0, topic_word.shape[0]), dtype=np.float32)
