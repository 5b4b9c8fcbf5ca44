"""Scoring what a topic model recovers from a planted-motif set, and the LDA peer scored the same way.

A method under test supplies two arrays: per-peak topic scores ``[n_peaks, M]`` and per-10-mer topic
scores ``[n_kmers10, M]`` (all canonical 10-mers, or any subset with their codes). Each topic's best
10-mers become a PWM (:func:`bindvae.analysis.motifs.build_pwm`), the PWMs are compared with a motif
database that holds the planted motifs (:func:`bindvae.analysis.compare.compare_motifs`, Tomtom-style
q-values), and the planted truth says which peaks carry what. For each planted motif the table gives
the best-matching topic, its q-value (recovered at q < threshold) and the per-peak AUROC of that
topic's score for carrier vs. other peaks; for the non-TF features (repeats, GC-rich background) the
topic with the highest AUROC.

The peers: scikit-learn's online LatentDirichletAllocation on the same count matrix with the same
number of topics, whose "encoder" is ``transform`` (posterior topic proportions), applied to peaks and
to 10-mers exactly as the VAE's encoder is; and collapsed Gibbs LDA (tomotopy) on the same counts, each
count one token, whose 10-mers go through the same mean-field ``transform`` under its sampled topics.

The yardsticks put each AUROC in context: the oracle scans every peak with the planted PWM itself
(best log-odds over positions and strands), and the supervised limit is a cross-validated logistic
regression on the k-mer presence matrix the models see, told which peaks carry the feature.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.metrics import roc_auc_score

from bindvae.analysis.compare import compare_motifs
from bindvae.analysis.meme import Motif
from bindvae.analysis.motifs import build_pwm, decode_kmers
from bindvae.errors import ConfigError
from bindvae.synthetic import planted_labels

logger = logging.getLogger(__name__)

NON_TF_FEATURES = ("CA-repeat", "polyA", "GC-rich")
# JASPAR's Oct-Sox composite element: a topic matching it found the pair as one signature.
COMPOSITE_ID = "MA0142.1"


def load_motif_database(release: str = "JASPAR2024", extra: list | None = None) -> list[Motif]:
    """JASPAR CORE vertebrates (latest version of each matrix), from pyjaspar's bundled database.

    Args:
        release: pyjaspar release name.
        extra: motifs added when their id is missing (e.g. the planted ones, or the composite).

    Returns:
        Motifs with ``name`` = matrix id, ``alt_name`` = TF name, PWMs with pseudocount 0.25.

    Raises:
        ConfigError: the release is not bundled.
    """
    from pyjaspar import jaspardb

    try:
        database = jaspardb(release=release)
    except Exception as exc:  # pyjaspar raises bare exceptions for unknown releases
        raise ConfigError("jaspar_release", f"{release!r} is not bundled with pyjaspar ({exc})") from exc
    records = database.fetch_motifs(collection="CORE", tax_group=["vertebrates"], all_versions=False)
    if database.fetch_motif_by_id(COMPOSITE_ID) is not None:
        records.append(database.fetch_motif_by_id(COMPOSITE_ID))
    motifs, seen = [], set()
    for record in records:
        if record.matrix_id in seen:
            continue
        seen.add(record.matrix_id)
        counts = np.array([record.counts[b] for b in "ACGT"], dtype=np.float64).T + 0.25
        motifs.append(Motif(record.matrix_id, counts / counts.sum(axis=1, keepdims=True), alt_name=record.name))
    motifs += [m for m in (extra or []) if m.name not in seen]
    return motifs


def topic_motifs_from_scores(kmer_scores: np.ndarray, kmer_codes: np.ndarray, k: int = 10, top_k: int = 200,
                             prefix: str = "topic") -> list[Motif]:
    """One PWM per topic from its highest-scoring k-mers (SPEC 4: top 200 10-mers, align, count).

    Args:
        kmer_scores: ``[n_kmers, M]`` score of each k-mer in each topic.
        kmer_codes: ``[n_kmers]`` integer codes of those k-mers (:mod:`bindvae.analysis.motifs`).
        k: k-mer length.
        top_k: k-mers per topic.
        prefix: motif names are ``{prefix}_{m:03d}``.

    Returns:
        ``M`` motifs, in topic order.
    """
    motifs = []
    for m in range(kmer_scores.shape[1]):
        column = kmer_scores[:, m]
        best = np.argpartition(-column, top_k - 1)[:top_k]
        best = best[np.argsort(-column[best], kind="stable")]
        motifs.append(build_pwm(decode_kmers(kmer_codes[best], k), name=f"{prefix}_{m:03d}"))
    return motifs


def _auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    if labels.all() or not labels.any():
        return float("nan")
    return float(roc_auc_score(labels, scores))


def score_recovery(topic_motifs: list[Motif], peak_scores: np.ndarray, peak_names: list, truth: pd.DataFrame,
                   planted: dict, database: list[Motif], q_threshold: float = 0.05) -> pd.DataFrame:
    """Which planted features a topic model recovered.

    Args:
        topic_motifs: ``M`` motifs, topic order (from :func:`topic_motifs_from_scores`).
        peak_scores: ``[n_peaks, M]`` per-peak topic scores.
        peak_names: ``n_peaks`` names in the row order of ``peak_scores``.
        truth: the generator's truth table.
        planted: ``{tf_name: Motif}`` planted motifs (ids must be in ``database``).
        database: target motifs for the comparison.
        q_threshold: recovered when the best topic's q-value is below this.

    Returns:
        One row per planted feature: ``feature``, ``kind``, ``fraction`` (of peaks), ``matrix_id``,
        ``topic`` (index), ``consensus`` (of the topic motif), ``q_value``, ``recovered``, ``auroc``.
        Motifs get the best-matching topic; non-TF features the topic with the highest AUROC.
    """
    names = [m.name for m in database]
    missing = [m.name for m in planted.values() if m.name not in names]
    if missing:
        raise ValueError(f"planted motifs {missing} are not in the comparison database")
    table = compare_motifs(topic_motifs, database)
    index = {m.name: i for i, m in enumerate(topic_motifs)}
    rows = []
    n_peaks = len(peak_names)
    for feature, group in truth.groupby("feature", sort=False):
        labels = planted_labels(truth, peak_names, feature)
        kind = group["kind"].iloc[0]
        row = {"feature": feature, "kind": kind, "fraction": labels.sum() / n_peaks,
               "matrix_id": group["matrix_id"].iloc[0]}
        if kind in ("motif", "pair"):
            hits = table[table["target"] == row["matrix_id"]].sort_values(["q_value", "p_value"], kind="stable")
            topic = index[hits["query"].iloc[0]]
            row.update(q_value=float(hits["q_value"].iloc[0]), recovered=bool(hits["q_value"].iloc[0] < q_threshold))
        else:
            aurocs = [_auroc(peak_scores[:, m], labels) for m in range(peak_scores.shape[1])]
            topic = int(np.nanargmax(aurocs))
            row.update(q_value=float("nan"), recovered=bool(aurocs[topic] >= 0.9))
        row.update(topic=topic, consensus=topic_motifs[topic].consensus,
                   auroc=_auroc(peak_scores[:, topic], labels))
        rows.append(row)
    frame = pd.DataFrame(rows)
    order = {"motif": 0, "pair": 1, "repeat": 2, "background": 3}
    frame = frame.sort_values(["kind", "fraction"], key=lambda c: c.map(order) if c.name == "kind" else -c,
                              kind="stable").reset_index(drop=True)
    if COMPOSITE_ID in names:
        composite = table[table["target"] == COMPOSITE_ID].sort_values("q_value", kind="stable").iloc[0]
        frame.attrs["composite_q"] = float(composite["q_value"])
        frame.attrs["composite_topic"] = index[composite["query"]]
    return frame


def summarize(frame: pd.DataFrame, q_threshold: float = 0.05) -> dict:
    """Headline numbers of a :func:`score_recovery` table.

    Returns:
        ``n_motifs``, ``n_recovered``, ``rarest`` (feature), ``rarest_recovered``,
        ``min_auroc_common`` (over motifs in >= 10% of peaks), ``pair`` (``one topic`` /
        ``two topics`` / ``missed``), ``has_pair``, ``non_tf_own_topics`` (how many of repeats/GC have a topic with
        AUROC >= 0.9 that is no planted motif's best topic), ``mean_auroc_motifs``; with an
        ``auroc_vs_limit`` column (:func:`add_limit_fraction`) also ``n_at_limit`` (motifs at
        >= 0.9 x their supervised limit), ``n_with_limit`` and ``min_auroc_vs_limit``; with
        ``attrs["pair_probes"]`` (BindVAE's planted pair by the cooperative-binding route,
        :func:`bindvae.analysis.cooperative.planted_pair_route`) also ``pair_probes``.
    """
    motifs = frame[frame["kind"] == "motif"]
    rarest = motifs.sort_values("fraction", kind="stable").iloc[0]
    common = motifs[motifs["fraction"] >= 0.10 - 1e-9]
    pair = frame[frame["kind"] == "pair"]
    if not pair.empty and pair["recovered"].all():
        pair_text = "one topic" if pair["topic"].nunique() == 1 else "two topics"
    else:
        pair_text = "missed" if pair.empty or not pair["recovered"].any() else "one member"
    if frame.attrs.get("composite_q", 1.0) < q_threshold:
        pair_text += " (composite matched)"
    motif_topics = set(frame.loc[frame["kind"].isin(["motif", "pair"]) & frame["recovered"], "topic"])
    non_tf = frame[frame["kind"].isin(["repeat", "background"])]
    own = int(((non_tf["auroc"] >= 0.9) & ~non_tf["topic"].isin(motif_topics)).sum())
    return {"n_motifs": len(motifs), "n_recovered": int(motifs["recovered"].sum()), "has_pair": not pair.empty,
            "rarest": rarest["feature"], "rarest_fraction": float(rarest["fraction"]),
            "rarest_recovered": bool(rarest["recovered"]),
            "min_auroc_common": float(common["auroc"].min()) if len(common) else float("nan"),
            "pair": pair_text, "non_tf_own_topics": f"{own}/{len(non_tf)}",
            "mean_auroc_motifs": float(motifs["auroc"].mean()), **_limit_summary(motifs),
            **({"pair_probes": frame.attrs["pair_probes"]} if frame.attrs.get("pair_probes") else {})}


def _limit_summary(motifs: pd.DataFrame) -> dict:
    if "auroc_vs_limit" not in motifs:
        return {}
    fractions = motifs["auroc_vs_limit"]
    return {"n_at_limit": int((fractions >= 0.9).sum()), "n_with_limit": int(fractions.notna().sum()),
            "min_auroc_vs_limit": float(fractions.min())}


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

_BASE_CODE = np.full(256, 4, dtype=np.int8)
for _i, _base in enumerate("ACGT"):
    _BASE_CODE[ord(_base)] = _BASE_CODE[ord(_base.lower())] = _i
# Columns A, C, G, T, N of a log-odds matrix on the opposite strand (N stays N).
_COMPLEMENT = [3, 2, 1, 0, 4]


def encode_sequences(sequences: list[str]) -> np.ndarray:
    """Base codes, right-padded with N.

    Args:
        sequences: ``n`` DNA strings (any case; other letters count as N).

    Returns:
        ``[n, max_length]`` int8 codes, A=0, C=1, G=2, T=3, N (and padding)=4.
    """
    length = max((len(s) for s in sequences), default=0)
    codes = np.full((len(sequences), length), 4, dtype=np.int8)
    for row, sequence in enumerate(sequences):
        codes[row, :len(sequence)] = _BASE_CODE[np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)]
    return codes


def base_background(codes: np.ndarray, kind: str = "corpus") -> np.ndarray:
    """Background base probabilities for log-odds scans.

    Args:
        codes: ``[n, L]`` base codes (:func:`encode_sequences`).
        kind: ``corpus`` (the set's own base composition, averaged over both strands so that a
            motif and its reverse complement score alike) or ``uniform`` (0.25 each).

    Returns:
        ``[4]`` probabilities in A, C, G, T order.

    Raises:
        ValueError: unknown ``kind``.
    """
    if kind == "uniform":
        return np.full(4, 0.25)
    if kind != "corpus":
        raise ValueError(f"unknown background {kind!r}; corpus or uniform")
    counts = np.bincount(codes.ravel(), minlength=5)[:4].astype(np.float64) + 1.0
    counts = counts + counts[::-1]  # A<->T, C<->G
    return counts / counts.sum()


def max_log_odds(codes: np.ndarray, pwm: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Best log-odds site score of each sequence, over all positions and both strands.

    Args:
        codes: ``[n, L]`` base codes (:func:`encode_sequences`); windows holding N never score well.
        pwm: ``[w, 4]`` probabilities (A, C, G, T).
        background: ``[4]`` background probabilities.

    Returns:
        ``[n]`` float64 maxima (``-inf`` for sequences shorter than ``w``).
    """
    width, length = pwm.shape[0], codes.shape[1]
    log_odds = np.log(np.maximum(pwm, 1e-4)) - np.log(background)
    log_odds = np.concatenate([log_odds, np.full((width, 1), -1e3)], axis=1)  # [w, 5] with N
    best = np.full(codes.shape[0], -np.inf)
    if length < width:
        return best
    n_windows = length - width + 1
    for matrix in (log_odds, log_odds[::-1][:, _COMPLEMENT]):
        total = np.zeros((codes.shape[0], n_windows))
        for j in range(width):
            total += matrix[j][codes[:, j:j + n_windows]]
        best = np.maximum(best, total.max(axis=1))
    return best


def oracle_aurocs(dataset, background: str = "corpus") -> dict:
    """AUROC of a scan with each planted PWM (the best a motif scanner that knows the motif can do).

    Args:
        dataset: a :class:`bindvae.synthetic.SyntheticSet` (``motifs`` maps feature names to PWMs).
        background: :func:`base_background` kind.

    Returns:
        ``{feature: AUROC}`` for each planted motif or pair member (features without a PWM are left out).
    """
    codes = encode_sequences(dataset.sequences)
    base = base_background(codes, background)
    result = {}
    for feature, motif in dataset.motifs.items():
        labels = planted_labels(dataset.truth, dataset.names, feature)
        result[feature] = _auroc(max_log_odds(codes, motif.pwm, base), labels)
    return result


def binarize(counts: sp.csr_matrix) -> sp.csr_matrix:
    """Presence (1.0) of each k-mer: ``[n, n_kmers]`` float32 CSR with the same pattern as ``counts``."""
    binary = sp.csr_matrix(counts, dtype=np.float32, copy=True)
    binary.data[:] = 1.0
    return binary


def supervised_limit_scores(binary: sp.csr_matrix, labels: np.ndarray, c: float = 0.05, folds: int = 3,
                            seed: int = 0) -> np.ndarray:
    """Cross-validated decision function of an L2 logistic regression on k-mer presence.

    The classifier sees the labels, so its AUROC bounds what an unsupervised topic can reach on
    the same features (up to the regularisation and the folds' training-set size).

    Args:
        binary: ``[n, n_kmers]`` presence matrix (:func:`binarize`).
        labels: ``[n]`` bool, carrier peaks.
        c: inverse L2 strength (scikit-learn's ``C``).
        folds: stratified folds (shuffled with ``seed``).
        seed: fold assignment seed.

    Returns:
        ``[n]`` out-of-fold decision values; all NaN when a class has fewer than ``folds`` peaks.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    labels = np.asarray(labels, dtype=bool)
    if min(labels.sum(), (~labels).sum()) < folds:
        return np.full(labels.shape, np.nan)
    model = LogisticRegression(C=c, max_iter=1000)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(model, binary, labels, cv=cv, method="decision_function")


def supervised_limits(counts: sp.csr_matrix, truth: pd.DataFrame, names: list, c: float = 0.05, folds: int = 3,
                      seed: int = 0) -> dict:
    """:func:`supervised_limit_scores` AUROC for every planted feature of a truth table.

    Args:
        counts: ``[n_peaks, n_kmers]`` counts in the row order of ``names``.
        truth: the generator's truth table.
        names: ``n_peaks`` peak names.
        c, folds, seed: as :func:`supervised_limit_scores`.

    Returns:
        ``{feature: AUROC}``.
    """
    binary = binarize(counts)
    result = {}
    for feature in truth["feature"].unique():
        labels = planted_labels(truth, names, feature)
        scores = supervised_limit_scores(binary, labels, c, folds, seed)
        result[feature] = float("nan") if np.isnan(scores).any() else _auroc(scores, labels)
        logger.info("supervised limit %s: AUROC %.3f", feature, result[feature])
    return result


# ---------------------------------------------------------------------------------------------------------------------
# The second peer: collapsed Gibbs LDA (tomotopy), each k-mer count one token.


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


def add_limit_fraction(frame: pd.DataFrame, limits: dict) -> pd.DataFrame:
    """A :func:`score_recovery` table with ``limit_auroc`` and ``auroc_vs_limit`` (AUROC / limit) added.

    Args:
        frame: per-feature table with ``feature`` and ``auroc``.
        limits: ``{feature: supervised-limit AUROC}`` (:func:`supervised_limits`); missing -> NaN.

    Returns:
        A copy with the two columns (attrs kept).
    """
    out = frame.copy()
    out["limit_auroc"] = out["feature"].map(lambda f: limits.get(f, float("nan"))).astype(float)
    out["auroc_vs_limit"] = out["auroc"] / out["limit_auroc"]
    return out
