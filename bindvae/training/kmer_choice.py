"""The k-mers a run trains on (``model.kmer_selection``, ours): chosen once from the training rows.

With ``kmer_selection=none`` the model sees every column (the paper's). With ``dispersion`` the
:func:`bindvae.features.selection.select_kmers` columns of the gapped 8-mer features are kept; the
choice is a pure function of the training rows and the config, so a resumed run makes the same one
(and the checkpoint's vocabulary fingerprint, that of the chosen k-mers, catches data that changed).
The columns travel in the checkpoint metadata (``kmer_columns``), from which
:func:`bindvae.infer.load_model` rebuilds the model's vocabulary; ``selected_kmers.tsv`` in the run
directory lists them with their scores for people.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from bindvae.config import ModelConfig
from bindvae.errors import ConfigError
from bindvae.features.kmers import Vocabulary
from bindvae.features.selection import dispersion_scores, top_columns
from bindvae.features.shards import ShardIndex
from bindvae.io import write_text_atomic

logger = logging.getLogger(__name__)

SELECTED_KMERS_FILE = "selected_kmers.tsv"


@dataclasses.dataclass(frozen=True)
class KmerChoice:
    """The chosen columns of the gapped 8-mer features and the vocabulary they make."""

    columns: np.ndarray
    vocabulary: Vocabulary
    scores: np.ndarray

    def metadata(self) -> dict:
        """What the checkpoint records."""
        return {"kmer_columns": [int(c) for c in self.columns],
                "kmer_selection_parent": self.vocabulary.parent.fingerprint}

    def write_table(self, workdir: Path) -> None:
        """``selected_kmers.tsv``: column, k-mer, dispersion score, best first."""
        order = np.argsort(-self.scores[self.columns], kind="stable")
        lines = ["column\tkmer\tdispersion"]
        kmers, columns, scores = self.vocabulary.kmers, self.columns, self.scores
        lines += [f"{int(columns[i])}\t{kmers[i]}\t{scores[columns[i]]:.4g}" for i in order]
        write_text_atomic(workdir / SELECTED_KMERS_FILE, "\n".join(lines) + "\n", parents=True)


def choose_kmers(model: ModelConfig, train_X, vocab_fingerprint: str) -> KmerChoice | None:
    """The run's k-mers, or None when it sees every column.

    Raises:
        ConfigError: ``model.kmer_selection`` on features that are not the gapped 8-mers, or on
            data streamed from shards (the choice needs the training rows in memory).
    """
    if model.kmer_selection == "none":
        return None
    full = Vocabulary.gapped8()
    if vocab_fingerprint != full.fingerprint or train_X.shape[1] != len(full):
        raise ConfigError("model.kmer_selection", "chooses among the gapped 8-mer features; these features are "
                                                  "of another vocabulary (set model.kmer_selection=none)")
    if isinstance(train_X, ShardIndex):
        raise ConfigError("model.kmer_selection", "needs the training rows in memory; data streamed from shards "
                                                  "is not supported (set model.kmer_selection=none)")
    size = min(int(model.kmer_selection_size), len(full))
    scores = dispersion_scores(train_X, full)
    columns = top_columns(scores, size)
    logger.info("k-mer selection (%s): the model sees %d of %d k-mers (dispersion >= %.3g; median over all %.3g)",
                model.kmer_selection, size, len(full), scores[columns].min(), float(np.median(scores)))
    return KmerChoice(columns, full.subset(columns), scores)


def vocabulary_of(metadata: dict) -> Vocabulary:
    """The vocabulary a checkpoint was trained on, from its metadata."""
    columns = metadata.get("kmer_columns")
    full = Vocabulary.gapped8()
    return full.subset(columns) if columns else full
