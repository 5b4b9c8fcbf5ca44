"""Topics as k-mer tables and motifs: rows of phi, and each topic's best-scoring 10-mers -> PWM."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from bindvae.analysis.motifs import build_pwm, canonical_kmer_codes, decode_kmers, split_motifs, window_codes_of_kmers
from bindvae.infer import Model, concentration_from_windows, to_scores
from bindvae.motif import Motif
from bindvae.vae import network as model_lib

logger = logging.getLogger(__name__)


def topic_name(topic: int) -> str:
    """The label of topic ``topic`` (0-based) used in every table and figure."""
    return f"topic_{topic:03d}"


def topic_kmer_table(model: Model, n_top: int = 50) -> pd.DataFrame:
    """Each topic's top k-mers by decoder weight phi (the rows of softmax(theta)).

    Args:
        model: the model.
        n_top: k-mers per topic.

    Returns:
        Long table with columns ``topic``, ``rank`` (1 = highest), ``kmer``, ``weight`` (phi).
    """
    phi = np.asarray(model_lib.topic_kmer_matrix(model.params))
    n_top = min(n_top, phi.shape[1])
    top = np.argsort(-phi, axis=1, kind="stable")[:, :n_top]
    kmers = np.asarray(model.vocabulary.kmers)
    return pd.DataFrame(
        {
            "topic": np.repeat([topic_name(m) for m in range(phi.shape[0])], n_top),
            "rank": np.tile(np.arange(1, n_top + 1), phi.shape[0]),
            "kmer": kmers[top].ravel(),
            "weight": np.take_along_axis(phi, top, axis=1).ravel(),
        }
    )


def topic_kmer_heatmap_matrix(model: Model, n_top: int = 20) -> pd.DataFrame:
    """phi restricted to the union of every topic's top ``n_top`` k-mers (the paper's Fig. 1b).

    Args:
        model: the model.
        n_top: k-mers taken from each topic.

    Returns:
        ``[M, n_union]`` DataFrame (index: topic names, columns: k-mers ordered by the topic whose
        top list first contains them).
    """
    phi = np.asarray(model_lib.topic_kmer_matrix(model.params))
    top = np.argsort(-phi, axis=1, kind="stable")[:, :n_top]
    order = list(dict.fromkeys(top.ravel().tolist()))
    kmers = [model.vocabulary.kmers[j] for j in order]
    return pd.DataFrame(phi[:, order], index=[topic_name(m) for m in range(phi.shape[0])], columns=kmers)


def score_kmers(model: Model, k: int = 10, kind: str = "mean", batch_size: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Latent scores of every canonical k-mer (k >= 8), through the window table.

    Args:
        model: the model.
        k: k-mer length; 10 gives 524,800 canonical 10-mers.
        kind: ``"mean"`` or ``"concentration"``.
        batch_size: k-mers per jitted call.

    Returns:
        ``(codes [n], scores [n, M])``: integer codes (see ``bindvae.analysis.motifs``) and float32 scores.
    """
    codes = canonical_kmer_codes(k)
    windows = window_codes_of_kmers(codes, k).astype(np.int32)
    return codes, to_scores(concentration_from_windows(model, windows, batch_size), kind)


RANKINGS = ("encoder", "decoder")


def decoder_kmer_scores(model: Model, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Scores of every canonical k-mer (k >= 8) read from the decoder instead of the encoder.

    For topic m, a k-mer's score is the sum over its 8 bp windows and each window's distinct gapped
    features j of ``log phi[m, j] - log mean_m' phi[m', j]``: how much more likely topic m makes
    that k-mer's features than the average topic. Unlike the encoder scores, it does not push a lone
    10-mer (48 counts) through an encoder trained on whole peaks (thousands of counts).

    Args:
        model: the model.
        k: k-mer length.

    Returns:
        ``(codes [n], scores [n, M])`` like :func:`score_kmers`.
    """
    theta = np.asarray(model.params["topic_kmer"]["theta"], dtype=np.float64)
    log_phi = theta - np.logaddexp.reduce(theta, axis=1, keepdims=True)
    ratio = log_phi - np.log(np.exp(log_phi).mean(axis=0, keepdims=True))  # [M, D]
    padded = np.concatenate([ratio.T, np.zeros((1, ratio.shape[0]))]).astype(np.float32)  # [D + 1, M]
    table = model.vocabulary.window_feature_table()  # [4**8, 16] distinct features per window, -1 padded
    window_scores = np.zeros((table.shape[0], ratio.shape[0]), np.float32)
    for col in range(table.shape[1]):
        window_scores += padded[np.where(table[:, col] < 0, len(padded) - 1, table[:, col])]
    codes = canonical_kmer_codes(k)
    windows = window_codes_of_kmers(codes, k)
    scores = np.zeros((len(codes), ratio.shape[0]), np.float32)
    for j in range(windows.shape[1]):
        scores += window_scores[windows[:, j]]
    return codes, scores


def top_kmers_per_topic(codes: np.ndarray, scores: np.ndarray, n_top: int = 200) -> np.ndarray:
    """Indices of each topic's highest-scoring k-mers, best first.

    Args:
        codes: ``[n]`` k-mer codes (only the length is used).
        scores: ``[n, M]``.
        n_top: k-mers per topic.

    Returns:
        ``[M, n_top]`` int64 row indices into ``codes``/``scores``.
    """
    n_top = min(n_top, len(codes))
    part = np.argpartition(-scores, n_top - 1, axis=0)[:n_top].T  # [M, n_top]
    vals = np.take_along_axis(scores.T, part, axis=1)
    return np.take_along_axis(part, np.argsort(-vals, axis=1, kind="stable"), axis=1)


def topic_motif_sets(model: Model, n_top: int = 200, k: int = 10, kind: str = "mean", ranking: str = "encoder",
                     split: bool = False) -> tuple[list[list[Motif]], pd.DataFrame]:
    """Score every canonical k-mer, build each topic's motif(s) from its top ``n_top``.

    Args:
        model: the model.
        n_top: k-mers per topic used for the PWMs.
        k: k-mer length.
        kind: encoder score used for the ranking (``ranking="encoder"``).
        ranking: ``encoder`` (:func:`score_kmers`, the paper's probes through the encoder) or
            ``decoder`` (:func:`decoder_kmer_scores`, the topic's k-mer log-ratios).
        split: ours: also the two sites of a topic whose k-mers hold two
            (:func:`bindvae.analysis.motifs.split_motifs`).

    Returns:
        ``(sets, table)``: per topic its motif (:func:`bindvae.analysis.motifs.build_pwm`, named like
        :func:`topic_name`), followed, with ``split`` and two sites, by its two parts (the name plus
        :data:`bindvae.analysis.motifs.PART_SUFFIXES`); and a long table ``topic, rank, kmer, score`` of
        the k-mers used.
    """
    if ranking not in RANKINGS:
        raise ValueError(f"ranking must be one of {RANKINGS}, got {ranking!r}")
    codes, scores = decoder_kmer_scores(model, k) if ranking == "decoder" else score_kmers(model, k, kind)
    top = top_kmers_per_topic(codes, scores, n_top)
    sets, frames = [], []
    for m in range(scores.shape[1]):
        kmers = decode_kmers(codes[top[m]], k)
        whole = build_pwm(kmers, name=topic_name(m))
        sets.append([whole] + (split_motifs(kmers, name=whole.name) if split else []))
        frames.append(pd.DataFrame({"topic": topic_name(m), "rank": np.arange(1, len(kmers) + 1),
                                    "kmer": kmers, "score": scores[top[m], m]}))
    return sets, pd.concat(frames, ignore_index=True)


def topic_motifs(model: Model, n_top: int = 200, k: int = 10, kind: str = "mean",
                 ranking: str = "encoder") -> tuple[list[Motif], pd.DataFrame]:
    """One PWM per topic from its top ``n_top`` k-mers (:func:`topic_motif_sets` without the split).

    Returns:
        ``(motifs, table)``: one motif per topic (named like :func:`topic_name`), and the k-mer table.
    """
    sets, table = topic_motif_sets(model, n_top, k, kind, ranking)
    return [whole for whole, *_ in sets], table
