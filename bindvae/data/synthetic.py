"""Peak sequences with planted motifs and known truth, for recovery benchmarks and the demo.

A background (i.i.d. with a given GC content, or an order-k Markov chain) is sampled for every
peak; then JASPAR motifs are planted from their PWMs (a sampled site per planted peak, either
strand), each in a given fraction of the peaks, plus a cooperative pair planted together at a fixed
spacing, low-complexity repeats ((CA)n, poly-A) and a GC-rich background subset. Everything random
comes from one ``np.random.default_rng`` passed in, so a seed gives the same set on any machine.

The truth table has one row per planted element:

========== ===========================================================================
column     meaning
========== ===========================================================================
peak       peak name (the FASTA header)
feature    motif name (``CTCF``), pair member (``SOX2``), ``CA-repeat``, ``polyA``, ``GC-rich``
kind       ``motif``, ``pair``, ``repeat`` or ``background``
matrix_id  JASPAR matrix id, empty for non-motif features
start, end 0-based half-open position of the site in the peak
strand     ``+`` / ``-`` (``.`` for ``GC-rich``)
site       the planted bases as they read on the + strand
========== ===========================================================================
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from bindvae.dna import BASES
from bindvae.errors import ConfigError, InputError
from bindvae.io import write_text_atomic
from bindvae.motif import Motif, format_meme, load_jaspar_motifs

logger = logging.getLogger(__name__)

TRUTH_COLUMNS = ["peak", "feature", "kind", "matrix_id", "start", "end", "strand", "site"]
# Ten JASPAR 2024 motifs from ten different TF families with informative PWMs; the fractions run
# from common (AP-1 at 30%, as in most ATAC-seq data) down to rare (2%).
DEFAULT_MOTIFS = (
    ("FOS::JUN", "MA0099.4", 0.30),
    ("CTCF", "MA0139.2", 0.20),
    ("SPI1", "MA0080.7", 0.15),
    ("CEBPB", "MA0466.4", 0.10),
    ("FOXA1", "MA0148.5", 0.08),
    ("NRF1", "MA0506.3", 0.06),
    ("TP53", "MA0106.3", 0.05),
    ("RUNX1", "MA0002.3", 0.04),
    ("TEAD1", "MA0090.4", 0.03),
    ("NFKB1", "MA0105.4", 0.02),
)
# The Oct-Sox composite element: SOX2 then POU5F1 with no gap, on the same strand.
DEFAULT_PAIR = (("SOX2", "MA0143.5"), ("POU5F1", "MA1115.2"))


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """What to generate. Fractions are of all peaks; sizes are in bp.

    Attributes:
        n_peaks: number of sequences.
        length: bp per sequence.
        gc: GC content of the i.i.d. background.
        markov_order: 0 for i.i.d.; k > 0 samples an order-k chain whose transition rows are
            drawn around ``gc`` (Dirichlet with concentration ``markov_concentration``).
        markov_concentration: larger means closer to i.i.d.
        motifs: ``(name, matrix_id, fraction)`` per planted motif.
        pair: ``((name, matrix_id), (name, matrix_id))`` planted together, or empty.
        pair_fraction: fraction of peaks with the pair.
        pair_spacing: bp between the end of the first and the start of the second site.
        ca_repeat_fraction: fraction of peaks with a (CA)n run of 10 to 15 units.
        polya_fraction: fraction of peaks with a poly-A run of 15 to 25 bp.
        gc_rich_fraction: fraction of peaks whose background has GC ``gc_rich_gc``.
        gc_rich_gc: GC content of that subset.
        jaspar_release: pyjaspar release the motifs come from (bundled, offline).
        pseudocount: added to each JASPAR count before normalising.
        sites_per_peak: sites of a motif in each peak that carries it (homotypic clusters; 1 = one site).
    """

    n_peaks: int = 20_000
    length: int = 200
    gc: float = 0.42
    markov_order: int = 0
    markov_concentration: float = 50.0
    motifs: tuple = DEFAULT_MOTIFS
    pair: tuple = DEFAULT_PAIR
    pair_fraction: float = 0.04
    pair_spacing: int = 0
    ca_repeat_fraction: float = 0.03
    polya_fraction: float = 0.03
    gc_rich_fraction: float = 0.05
    gc_rich_gc: float = 0.65
    jaspar_release: str = "JASPAR2024"
    pseudocount: float = 0.25
    sites_per_peak: int = 1


@dataclasses.dataclass(frozen=True)
class SyntheticSet:
    """A generated set.

    Attributes:
        names: ``n_peaks`` peak names.
        sequences: ``n_peaks`` strings over ACGT.
        truth: the truth table (module docstring).
        motifs: planted motifs by TF name (the ten and the pair members); each
            :class:`~bindvae.motif.Motif` has the JASPAR id as ``name`` and the TF as ``alt_name``.
    """

    names: list
    sequences: list
    truth: pd.DataFrame
    motifs: dict


def _check(config: SyntheticConfig) -> None:
    fractions = {"gc": config.gc, "gc_rich_gc": config.gc_rich_gc}
    fractions.update({f"motifs.{n}": f for n, _, f in config.motifs})
    for key in ("pair_fraction", "ca_repeat_fraction", "polya_fraction", "gc_rich_fraction"):
        fractions[key] = getattr(config, key)
    for key, value in fractions.items():
        if not 0.0 <= value <= 1.0:
            raise ConfigError(key, f"must lie in [0, 1], got {value}")
    if config.n_peaks < 1 or config.length < 30:
        raise ConfigError("length", "need n_peaks >= 1 and length >= 30 bp")
    if config.sites_per_peak < 1:
        raise ConfigError("sites_per_peak", f"must be >= 1, got {config.sites_per_peak}")
    if config.markov_order < 0:
        raise ConfigError("markov_order", "must be >= 0")


def _base_probs(gc: float) -> np.ndarray:
    return np.array([(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2])


def sample_background(rng: np.random.Generator, n_peaks: int, length: int, gc: float,
                      markov_order: int = 0, markov_concentration: float = 50.0) -> np.ndarray:
    """Samples background bases.

    Args:
        rng: NumPy generator.
        n_peaks: rows.
        length: bp per row.
        gc: GC content (the stationary target for the Markov chain).
        markov_order: 0 for i.i.d.; k > 0 for an order-k chain with random transition rows
            ``Dirichlet(markov_concentration * base_probs)``.
        markov_concentration: larger means closer to i.i.d.

    Returns:
        ``[n_peaks, length]`` uint8 base codes (0..3 for A, C, G, T).
    """
    probs = _base_probs(gc)
    if markov_order == 0:
        return rng.choice(4, size=(n_peaks, length), p=probs).astype(np.uint8)
    transitions = rng.dirichlet(markov_concentration * probs, size=4**markov_order)
    cumulative = np.cumsum(transitions, axis=1)
    out = np.empty((n_peaks, length), dtype=np.uint8)
    out[:, :markov_order] = rng.choice(4, size=(n_peaks, markov_order), p=probs)
    context = np.zeros(n_peaks, dtype=np.int64)
    for j in range(markov_order):
        context = context * 4 + out[:, j]
    uniform = rng.random((n_peaks, length))
    for j in range(markov_order, length):
        nxt = (uniform[:, j, None] > cumulative[context]).sum(axis=1).clip(0, 3)
        out[:, j] = nxt
        context = (context * 4 + nxt) % (4**markov_order)
    return out


def sample_sites(rng: np.random.Generator, pwm: np.ndarray, n_sites: int) -> np.ndarray:
    """Samples binding sites column by column from a PWM.

    Args:
        rng: NumPy generator.
        pwm: ``[width, 4]`` probabilities.
        n_sites: how many.

    Returns:
        ``[n_sites, width]`` uint8 base codes, motif strand.
    """
    cumulative = np.cumsum(pwm, axis=1)
    uniform = rng.random((n_sites, pwm.shape[0]))
    return (uniform[:, :, None] > cumulative[None, :, :]).sum(axis=2).clip(0, 3).astype(np.uint8)


def _reverse_complement(codes: np.ndarray) -> np.ndarray:
    return (3 - codes)[..., ::-1]


class _Planter:
    """Places non-overlapping elements into the base array and records the truth rows."""

    def __init__(self, rng, bases: np.ndarray, names: list):
        self.rng, self.bases, self.names = rng, bases, names
        self.occupied = np.zeros(bases.shape, dtype=bool)
        self.rows: list = []

    def place(self, peaks: np.ndarray, blocks: np.ndarray, tries: int = 50) -> tuple[np.ndarray, np.ndarray]:
        """Writes ``blocks[i]`` into peak ``peaks[i]`` at a free random offset; returns kept peaks, starts."""
        width = blocks.shape[1]
        starts = np.full(len(peaks), -1)
        todo = np.arange(len(peaks))
        span = np.arange(width)
        for _ in range(tries):
            if todo.size == 0:
                break
            trial = self.rng.integers(0, self.bases.shape[1] - width + 1, size=todo.size)
            clash = self.occupied[peaks[todo, None], trial[:, None] + span].any(axis=1)
            ok = todo[~clash]
            starts[ok] = trial[~clash]
            # Two blocks drawn for the same peak in one round could overlap; keep the first.
            ok_peaks = peaks[ok]
            _, first = np.unique(ok_peaks, return_index=True)
            dropped = np.setdiff1d(np.arange(ok.size), first)
            starts[ok[dropped]] = -1
            kept = ok[first]
            self.occupied[peaks[kept, None], starts[kept, None] + span] = True
            self.bases[peaks[kept, None], starts[kept, None] + span] = blocks[kept]
            todo = np.setdiff1d(todo, kept)
        if todo.size:
            logger.warning("%d of %d elements found no free place and were not planted", todo.size, len(peaks))
        kept = starts >= 0
        return peaks[kept], starts[kept]

    def record(self, peak, feature, kind, matrix_id, start, end, strand, site_codes) -> None:
        site = "".join(BASES[b] for b in site_codes)
        self.rows.append((self.names[peak], feature, kind, matrix_id, int(start), int(end), strand, site))


def _choose(rng, n_peaks: int, fraction: float) -> np.ndarray:
    return np.sort(rng.choice(n_peaks, size=int(round(fraction * n_peaks)), replace=False))


def _plant_motif(rng, planter: _Planter, motif: Motif, fraction: float, sites_per_peak: int = 1) -> None:
    peaks = _choose(rng, planter.bases.shape[0], fraction)
    for _ in range(sites_per_peak):
        _plant_sites(rng, planter, motif, peaks)


def _plant_sites(rng, planter: _Planter, motif: Motif, peaks: np.ndarray, kind: str = "motif") -> None:
    sites = sample_sites(rng, motif.pwm, peaks.size)
    minus = rng.random(peaks.size) < 0.5
    sites[minus] = _reverse_complement(sites[minus])
    kept_peaks, starts = planter.place(peaks, sites)
    lookup = dict(zip(peaks.tolist(), range(peaks.size)))
    width = motif.pwm.shape[0]
    for peak, start in zip(kept_peaks, starts):
        i = lookup[int(peak)]
        planter.record(peak, motif.alt_name, kind, motif.name, start, start + width, "-" if minus[i] else "+", sites[i])


def _plant_pair(rng, planter: _Planter, first: Motif, second: Motif, fraction: float, spacing: int) -> None:
    n_peaks = planter.bases.shape[0]
    peaks = _choose(rng, n_peaks, fraction)
    a, b = sample_sites(rng, first.pwm, peaks.size), sample_sites(rng, second.pwm, peaks.size)
    gap = rng.choice(4, size=(peaks.size, spacing)).astype(np.uint8)
    blocks = np.concatenate([a, gap, b], axis=1)
    minus = rng.random(peaks.size) < 0.5
    blocks[minus] = _reverse_complement(blocks[minus])
    kept_peaks, starts = planter.place(peaks, blocks)
    lookup = dict(zip(peaks.tolist(), range(peaks.size)))
    wa, wb, total = a.shape[1], b.shape[1], blocks.shape[1]
    for peak, start in zip(kept_peaks, starts):
        i = lookup[int(peak)]
        if minus[i]:  # the composite reads reversed on the + strand: second member comes first
            spans = ((first, start + total - wa, start + total), (second, start, start + wb))
        else:
            spans = ((first, start, start + wa), (second, start + total - wb, start + total))
        for motif, s, e in spans:
            planter.record(peak, motif.alt_name, "pair", motif.name, s, e, "-" if minus[i] else "+",
                           planter.bases[peak, s:e])


def _plant_repeats(rng, planter: _Planter, feature: str, fraction: float, unit: np.ndarray, n_units) -> None:
    n_peaks = planter.bases.shape[0]
    peaks = _choose(rng, n_peaks, fraction)
    counts = rng.integers(n_units[0], n_units[1] + 1, size=peaks.size)
    for width in np.unique(counts):
        chosen = peaks[counts == width]
        blocks = np.tile(np.tile(unit, width), (chosen.size, 1)).astype(np.uint8)
        kept_peaks, starts = planter.place(chosen, blocks)
        for peak, start in zip(kept_peaks, starts):
            planter.record(peak, feature, "repeat", "", start, start + blocks.shape[1], "+", blocks[0])


def generate(rng: np.random.Generator, config: SyntheticConfig, motifs: dict | None = None) -> SyntheticSet:
    """Generates a planted-motif set.

    Args:
        rng: NumPy generator; the only source of randomness.
        config: what to generate.
        motifs: optional ``{tf_name: Motif}`` to use instead of reading JASPAR (e.g. in tests).

    Returns:
        The sequences and their truth table.

    Raises:
        ConfigError: a fraction outside [0, 1], an unknown motif or release.
    """
    _check(config)
    if motifs is None:
        entries = [(n, i) for n, i, _ in config.motifs] + [tuple(m) for m in config.pair]
        motifs = {m.alt_name: m for m in load_jaspar_motifs(entries, config.jaspar_release, config.pseudocount)}
    width = max(len(str(config.n_peaks)), 5)
    names = [f"peak_{i:0{width}d}" for i in range(config.n_peaks)]
    bases = sample_background(rng, config.n_peaks, config.length, config.gc,
                              config.markov_order, config.markov_concentration)
    planter = _Planter(rng, bases, names)
    gc_rich = _choose(rng, config.n_peaks, config.gc_rich_fraction)
    if gc_rich.size:
        bases[gc_rich] = sample_background(rng, gc_rich.size, config.length, config.gc_rich_gc)
        for peak in gc_rich:
            planter.rows.append((names[peak], "GC-rich", "background", "", 0, config.length, ".", ""))
    for name, _, fraction in config.motifs:
        _plant_motif(rng, planter, motifs[name], fraction, config.sites_per_peak)
    if config.pair:
        (first, _), (second, _) = config.pair
        _plant_pair(rng, planter, motifs[first], motifs[second], config.pair_fraction, config.pair_spacing)
    _plant_repeats(rng, planter, "CA-repeat", config.ca_repeat_fraction, np.array([1, 0]), (10, 15))
    _plant_repeats(rng, planter, "polyA", config.polya_fraction, np.array([0]), (15, 25))
    lut = np.frombuffer(BASES.encode(), dtype=np.uint8)
    sequences = [row.tobytes().decode() for row in lut[bases]]
    truth = pd.DataFrame(planter.rows, columns=TRUTH_COLUMNS)
    order = np.argsort(truth["peak"].to_numpy(), kind="stable")
    truth = truth.iloc[order].reset_index(drop=True)
    return SyntheticSet(names, sequences, truth, dict(motifs))


def truth_path_for(fasta_path: str | os.PathLike) -> Path:
    """The truth TSV that sits next to a FASTA: ``x.fa`` -> ``x.truth.tsv``."""
    path = Path(fasta_path)
    return path.with_name(path.name.rsplit(".", 1)[0] + ".truth.tsv")


def write_set(dataset: SyntheticSet, fasta_path: str | os.PathLike, config: SyntheticConfig | None = None,
              seed: int | None = None) -> dict:
    """Writes the FASTA, the truth TSV, the planted motifs (MEME) and a JSON manifest next to it.

    Each file is written to a temporary name and moved into place, so no half-written file is left.
    The FASTA is named e.g. ``bench.fa``; the others are ``bench.truth.tsv``, ``bench.motifs.meme``
    (the planted PWMs) and ``bench.json`` (seed, config, JASPAR ids).

    Args:
        dataset: from :func:`generate`.
        fasta_path: where the FASTA goes; the others are named after it.
        config: recorded in the manifest when given.
        seed: recorded in the manifest when given.

    Returns:
        ``{"fasta", "truth", "motifs", "manifest"}`` paths.
    """
    fasta = Path(fasta_path)
    fasta.parent.mkdir(parents=True, exist_ok=True)
    stem = fasta.name.rsplit(".", 1)[0]
    paths = {"fasta": fasta, "truth": truth_path_for(fasta),
             "motifs": fasta.with_name(stem + ".motifs.meme"), "manifest": fasta.with_name(stem + ".json")}
    write_text_atomic(
        paths["fasta"], "".join(f">{n}\n{s}\n" for n, s in zip(dataset.names, dataset.sequences)), parents=True
    )
    write_text_atomic(paths["truth"], dataset.truth.to_csv(sep="\t", index=False), parents=True)
    write_text_atomic(paths["motifs"], format_meme(list(dataset.motifs.values()), "planted motifs"), parents=True)
    manifest = {"seed": seed, "n_peaks": len(dataset.names),
                "motifs": {tf: m.name for tf, m in dataset.motifs.items()},
                "config": dataclasses.asdict(config) if config is not None else None}
    write_text_atomic(paths["manifest"], json.dumps(manifest, indent=1, default=list) + "\n", parents=True)
    return {k: str(v) for k, v in paths.items()}


def read_truth(path: str | os.PathLike) -> pd.DataFrame:
    """Reads a truth TSV written by :func:`write_set`.

    Raises:
        InputError: missing file or columns.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "truth file not found")
    truth = pd.read_csv(path, sep="\t", dtype={"matrix_id": str, "site": str}, keep_default_na=False)
    missing = [c for c in TRUTH_COLUMNS if c not in truth.columns]
    if missing:
        raise InputError(path, f"missing truth columns {missing}", line=1)
    return truth


def planted_labels(truth: pd.DataFrame, names, feature: str) -> np.ndarray:
    """Which peaks carry a feature.

    Args:
        truth: truth table.
        names: ``[n_peaks]`` peak names in the order of the score vectors.
        feature: e.g. ``CTCF`` or ``GC-rich``.

    Returns:
        ``[n_peaks]`` bool.
    """
    carriers = set(truth.loc[truth["feature"] == feature, "peak"])
    return np.fromiter((n in carriers for n in names), dtype=bool, count=len(names))
