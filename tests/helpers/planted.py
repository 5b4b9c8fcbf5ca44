"""A checkpoint whose topics are the planted features of a generated set, counted rather than trained.

Training a model in a test does not recover a planted pair, repeats, GC-rich peaks and a bias motif
as separate topics reliably in seconds, so the topic-k-mer matrix and the encoder are built from the
generated set's truth instead: topic m is planted feature m, its k-mers are the ``n_features``
gapped 8-mers most enriched in the feature's carrier peaks over the other peaks (add-one smoothed
frequency ratio), its decoder row gives them log-ratio weight, and its encoder unit counts them
(as :func:`tests.helpers.analysis.planted_model`). Everything downstream (probes, 10-mer and 15-mer
scoring, motifs, flags, the cooperative test) runs on it as on a trained checkpoint.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bindvae.analysis.flags import bias_motifs
from bindvae.data import synthetic
from bindvae.features.kmers import Vocabulary, featurize
from tests.helpers.analysis import planted_model

PAIR = (("SOX2", "MA0143.5"), ("POU5F1", "MA1115.2"))
TF = ("CEBPB", "MA0466.4")
# Topic order of the planted model: what each topic was built from.
FEATURES = ("SOX2", "CEBPB", "CA-repeat", "GC-rich", "Tn5")
SPACING = 0


def generated_set(n_peaks: int = 3000, seed: int = 0) -> synthetic.SyntheticSet:
    """Peaks with the Oct-Sox pair at a fixed spacing, CEBPB, a (CA)n repeat, GC-rich peaks and Tn5 sites."""
    tn5 = dataclasses.replace(bias_motifs()[0], alt_name="Tn5")
    motifs = {m.alt_name: m for m in synthetic.load_jaspar_motifs([TF, *PAIR])}
    motifs["Tn5"] = tn5
    config = synthetic.SyntheticConfig(
        n_peaks=n_peaks, length=100, motifs=((TF[0], TF[1], 0.25), ("Tn5", "", 0.3)), pair=PAIR, pair_fraction=0.25,
        pair_spacing=SPACING, ca_repeat_fraction=0.15, polya_fraction=0.0, gc_rich_fraction=0.15, gc_rich_gc=0.75)
    return synthetic.generate(np.random.default_rng(seed), config, motifs)


def counted_model(dataset: synthetic.SyntheticSet, vocab: Vocabulary, n_features: int = 300):
    """The planted model of the module docstring: one topic per entry of :data:`FEATURES`."""
    X = featurize(dataset.sequences, vocab)
    X.data[:] = 1.0
    kernel = np.zeros((len(vocab), len(FEATURES)), np.float32)
    theta = np.zeros((len(FEATURES), len(vocab)), np.float32)
    for m, feature in enumerate(FEATURES):
        carriers = synthetic.planted_labels(dataset.truth, dataset.names, feature)
        inside = np.asarray(X[carriers].sum(axis=0)).ravel() + 1.0
        outside = np.asarray(X[~carriers].sum(axis=0)).ravel() + 1.0
        ratio = np.log(inside / carriers.sum()) - np.log(outside / (~carriers).sum())
        top = np.argsort(-ratio, kind="stable")[:n_features]
        kernel[top, m] = 1.0
        theta[m, top] = ratio[top]
    model = planted_model(vocab, [], num_topics=len(FEATURES))
    encoder = {**model.params["encoder"], "input_kernel": kernel}
    params = {**model.params, "encoder": encoder, "topic_kmer": {**model.params["topic_kmer"], "theta": theta}}
    return dataclasses.replace(model, params=params)
