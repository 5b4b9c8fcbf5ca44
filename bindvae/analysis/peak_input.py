"""The peaks an analysis scores: a user's file (``peaks=``), or else the run's own training data.

Training data come from the data config saved in the run's checkpoint: a FASTA or a synthetic set
gives sequences (so the report can count motif sites), an ``npz``, reference or shards set gives
features only.
"""

from __future__ import annotations

import dataclasses
import os

from bindvae.errors import BindVAEError, InputError
from bindvae.infer import Model


@dataclasses.dataclass(frozen=True)
class PeakSet:
    """Peaks to score.

    Attributes:
        data: a list of sequences or a feature matrix ``[n_peaks, n_kmers]`` (what ``latent_scores`` takes).
        ids: ``n_peaks`` peak names.
        sequences: the sequences, or None when only features are known.
        label: where they came from, one line for the report.
    """

    data: object
    ids: list
    sequences: list | None
    label: str


def read_peaks(model: Model, path: str) -> PeakSet:
    """A user's FASTA or ``.npz`` feature file, checked before any compute.

    Raises:
        InputError: unreadable, empty, or features of another vocabulary.
    """
    if path.endswith(".npz"):
        from bindvae.features.formats import load_features

        X, names, fingerprint = load_features(path)
        if not model.vocabulary.accepts(fingerprint):
            raise InputError(path, f"feature fingerprint {str(fingerprint)[:12]} differs from the model's "
                                   f"{model.vocabulary.fingerprint[:12]}")
        ids = [str(n) for n in names] if names is not None else [str(i) for i in range(X.shape[0])]
        return PeakSet(X, ids, None, f"{os.path.basename(path)} ({len(ids):,} peaks, features only)")
    from bindvae.features.sequences import read_fasta_or_explain

    records = read_fasta_or_explain(path)
    if not len(records):
        raise InputError(path, "no sequences")
    sequences = list(records.sequences)
    return PeakSet(sequences, list(records.names), sequences, f"{os.path.basename(path)} ({len(sequences):,} peaks)")


def training_peaks(model: Model) -> PeakSet:
    """Every sequence of the data the run was trained on (training and validation split alike).

    Raises:
        InputError: the saved config names no data, or its file is gone (the message says to give
            ``peaks=``).
    """
    from bindvae.config import DataConfig
    from bindvae.data import datasets as data_lib

    saved = dict(model.config.get("data") or {})
    if not saved:
        raise InputError(model.run_dir, "the run's saved config names no training data: give peaks=FASTA|NPZ")
    fields = {f.name for f in dataclasses.fields(DataConfig)}
    try:
        config = DataConfig(**{k: v for k, v in saved.items() if k in fields})
        seed = int(dict(model.config.get("train") or {}).get("seed", 0))
        return _load(model, config, seed, data_lib)
    except BindVAEError as err:
        raise InputError(model.run_dir, f"cannot read the run's training data ({err}): give peaks=FASTA|NPZ") from None


def _load(model: Model, config, seed: int, data_lib) -> PeakSet:
    what = f"the run's training data ({config.source}{': ' + os.path.basename(config.path) if config.path else ''}"
    if config.source in ("fasta", "synthetic"):
        if config.source == "fasta":
            peaks = read_peaks(model, config.path)
            names, sequences = peaks.ids, peaks.sequences
        else:
            names, sequences = data_lib.synthetic_sequences(config, seed)
        if config.max_sequences:
            names, sequences = names[: config.max_sequences], sequences[: config.max_sequences]
        return PeakSet(sequences, list(names), sequences, f"{what}, {len(sequences):,} sequences)")
    dataset = data_lib.load_dataset(config, seed=seed)
    if not model.vocabulary.accepts(dataset.vocab_fingerprint):
        raise InputError(config.path or config.features or config.source, "features of another vocabulary")
    return PeakSet(dataset.X, [str(n) for n in dataset.names], None,
                   f"{what}, {dataset.X.shape[0]:,} sequences, features only)")
