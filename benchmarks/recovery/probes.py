"""Recovery on real HT-SELEX probes: does every TF family get a topic of its own that ranks its probes?

The planted set knows where every site is but its sites are generated; labelled probes are real.
:func:`run_probes` trains BindVAE on a probe table (``block``/``tf`` and ``sequence`` columns, e.g. the
reference's 100 probes of five HT-SELEX experiments) once per training seed, reloads each model from
its checkpoint and asks, for every family and every per-probe score (``latent_scores`` kinds): which
topic ranks the family's probes above all other probes best (AUROC), and is that AUROC at the target
on a topic no other family's best is on. Beside each family stands the supervised limit of the same
features (cross-validated L2 logistic regression on k-mer presence, as on the planted set), since on
a few dozen probes a family's own odd probes can hold every method below the target.

Writes into the output folder ``probes.tsv`` (seed x score x family), ``probes_summary.tsv`` (score x
family over the seeds), ``probes.md`` (both as Markdown), ``data/probes.fa`` (the sequences trained
on) and one run directory per seed, ``seed_<s>/``. Tables are written to a temporary name and renamed.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.recovery.metrics import auroc
from bindvae.config import DataConfig, RunConfig, from_dict
from bindvae.errors import ConfigError

# latent_scores kinds: topic proportions, the Dirichlet concentration, expected k-mer counts, their shares, their
# density over all the probe's gapped 8-mers, the scan
SCORES = ("mean", "concentration", "counts", "shares", "density", "decoder")


@dataclasses.dataclass(frozen=True)
class ProbesConfig:
    """One probe benchmark.

    Attributes:
        name: label written into the tables.
        probes: the probe TSV (``sequence`` and ``tf`` or ``block`` columns).
        families: with a ``block`` column, the family of each block in block order (blocks of one
            family are scored together); empty: each block (or TF) is its own family.
        seeds: training seeds (``run.train.seed`` of each run; the validation probes differ too).
        scores: per-probe scores compared (:func:`bindvae.infer.latent_scores` kinds).
        target: the AUROC every family should reach on a topic of its own.
        limit_c: inverse L2 strength of the supervised limit's logistic regression.
        limit_folds: its stratified cross-validation folds (shuffled once per seed, averaged).
        run: BindVAE's model and training settings.
    """

    name: str = "probes"
    probes: str | None = None
    families: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    scores: tuple[str, ...] = SCORES
    target: float = 0.95
    limit_c: float = 0.05
    limit_folds: int = 3
    run: RunConfig = dataclasses.field(default_factory=RunConfig)


def config_from_dict(values: dict) -> ProbesConfig:
    """A :class:`ProbesConfig` from plain nested dicts (a resolved Hydra config).

    Raises:
        ConfigError: an unknown key or an invalid value.
    """
    values = dict(values)
    run = from_dict(dict(values.pop("run", {}) or {}))
    known = {f.name for f in dataclasses.fields(ProbesConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(unknown[0], "unknown key")
    for key in ("families", "seeds", "scores"):
        if key in values:
            values[key] = tuple(values[key] or ())
    config = ProbesConfig(run=run, **values)
    if not config.probes:
        raise ConfigError("probes", "give the probe table: probes=PROBES.tsv (columns block or tf, and sequence)")
    if not config.seeds or not all(isinstance(s, int) for s in config.seeds):
        raise ConfigError("seeds", f"must be a non-empty list of integers, got {list(config.seeds)!r}")
    unknown_scores = [s for s in config.scores if s not in SCORES]
    if not config.scores or unknown_scores:
        raise ConfigError("scores", f"unknown {unknown_scores or 'empty list'}; choose from {', '.join(SCORES)}")
    if not 0.5 < config.target <= 1:
        raise ConfigError("target", f"must lie in (0.5, 1], got {config.target}")
    if not config.limit_c > 0:
        raise ConfigError("limit_c", f"must be > 0, got {config.limit_c}")
    if not (isinstance(config.limit_folds, int) and config.limit_folds >= 2):
        raise ConfigError("limit_folds", f"must be an integer >= 2, got {config.limit_folds!r}")
    return config


def read_families(config: ProbesConfig) -> tuple[list[str], np.ndarray]:
    """The probe sequences and each probe's family.

    Raises:
        InputError: an unreadable table, missing columns, fewer family names than blocks, a family
            with fewer probes than ``limit_folds``, or a single family.
    """
    from bindvae.analysis.naming import read_probes_tsv
    from bindvae.errors import InputError

    table = read_probes_tsv(config.probes, list(config.families) or None)
    families = table["tf"].to_numpy()
    names, counts = np.unique(families, return_counts=True)
    if len(names) < 2:
        raise InputError(config.probes, "needs probes of at least two families")
    if counts.min() < config.limit_folds:
        small = names[np.argmin(counts)]
        raise InputError(config.probes,
                         f"family {small!r} has {counts.min()} probes; each needs >= {config.limit_folds}")
    return table["sequence"].tolist(), families


def best_topics(scores: np.ndarray, families: np.ndarray) -> pd.DataFrame:
    """Per family, the topic whose score ranks its probes above all others best.

    Args:
        scores: ``[n_probes, M]`` per-probe topic scores.
        families: ``[n_probes]`` family labels.

    Returns:
        One row per family (sorted): ``family``, ``topic``, ``auroc``, and ``own_topic`` (no other
        family's best topic is the same).
    """
    rows = []
    for family in sorted(set(families)):
        labels = families == family
        per_topic = [auroc(scores[:, m], labels) for m in range(scores.shape[1])]
        best = int(np.nanargmax(per_topic))
        rows.append({"family": family, "topic": best, "auroc": float(per_topic[best])})
    frame = pd.DataFrame(rows)
    frame["own_topic"] = ~frame["topic"].duplicated(keep=False)
    return frame


def supervised_limits(X, families: np.ndarray, seeds, c: float, folds: int) -> dict:
    """Each family's supervised limit: the AUROC of cross-validated logistic regression on k-mer
    presence, averaged over one fold assignment per seed."""
    from benchmarks.recovery.yardsticks import binarize, supervised_limit_scores

    binary = binarize(X)
    result = {}
    for family in sorted(set(families)):
        labels = families == family
        result[family] = float(np.mean([auroc(supervised_limit_scores(binary, labels, c, folds, s), labels)
                                        for s in seeds]))
    return result


def _write_fasta(path: Path, sequences: list[str], families: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="ascii") as handle:
        for i, (sequence, family) in enumerate(zip(sequences, families)):
            handle.write(f">probe_{i} {family}\n{sequence}\n")
    tmp.replace(path)
    return path


def train_and_score(config: ProbesConfig, seed: int, X, families: np.ndarray, fingerprint: str, workdir: Path,
                    fasta: Path) -> tuple[pd.DataFrame, float]:
    """One seed: BindVAE trained on all probes but its validation share, reloaded from its checkpoint,
    every score's best topic per family. Returns the rows and the training time (s)."""
    from bindvae.data.datasets import split_train_val
    from bindvae.infer import latent_scores, load_model
    from bindvae.training import fit

    train = dataclasses.replace(config.run.train, seed=int(seed))
    run = dataclasses.replace(config.run, train=train, data=DataConfig(source="fasta", path=str(fasta.resolve())))
    train_X, val_X, _ = split_train_val(X, train.val_fraction, train.seed)
    start = time.perf_counter()
    fit(run, train_X, val_X if val_X.shape[0] else None, fingerprint, workdir)
    train_s = time.perf_counter() - start
    model = load_model(workdir)
    frames = []
    for kind in config.scores:
        frame = best_topics(np.asarray(latent_scores(model, X, kind=kind)), families)
        frame.insert(0, "score", kind)
        frame.insert(0, "seed", int(seed))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True), train_s


def summarize(table: pd.DataFrame, target: float) -> pd.DataFrame:
    """Per score and family over the seeds: mean, sd, min and max AUROC, the limit and the mean as a
    fraction of it, seeds at the target on a topic of its own; and per score a row ``all`` with the
    seeds on which every family is."""
    table = table.assign(met=(table["auroc"] >= target) & table["own_topic"])
    rows = []
    for (score, family), group in table.groupby(["score", "family"], sort=False):
        rows.append({"score": score, "family": family, "mean": group["auroc"].mean(),
                     "sd": group["auroc"].std(ddof=1) if len(group) > 1 else 0.0, "min": group["auroc"].min(),
                     "max": group["auroc"].max(), "limit": group["limit"].iloc[0],
                     "fraction": group["auroc"].mean() / group["limit"].iloc[0],
                     "seeds_met": int(group["met"].sum()), "seeds": len(group)})
    for score, group in table.groupby("score", sort=False):
        every = group.groupby("seed")["met"].all()
        rows.append({"score": score, "family": "all", "seeds_met": int(every.sum()), "seeds": len(every)})
    return pd.DataFrame(rows)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def markdown(config: ProbesConfig, table: pd.DataFrame, summary: pd.DataFrame, times: list, machine: str) -> str:
    """Both tables as Markdown, with the settings that produced them."""
    model, train = config.run.model, config.run.train
    lines = [f"## Probe recovery: {config.name}", ""]
    if machine:
        lines += [machine, ""]
    lines += [f"{config.probes}: families {', '.join(sorted(set(table['family'])))}; M = {model.num_topics}, "
              f"{train.steps} steps of {train.batch_size}, learning rate {train.learning_rate}, "
              f"{train.restarts} start(s), k-mers: {model.kmer_selection}; seeds {', '.join(map(str, config.seeds))}; "
              f"training {min(times):.0f}-{max(times):.0f} s per seed. A family meets the target when its best "
              f"topic reaches AUROC {config.target} and no other family's best topic is the same one.", ""]
    shown = summary.copy()
    for column in ("mean", "sd", "min", "max", "limit", "fraction"):
        shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    shown["seeds met"] = [f"{m} of {n}" for m, n in zip(summary["seeds_met"], summary["seeds"])]
    lines.append(_table(shown[["score", "family", "mean", "sd", "min", "max", "limit", "fraction", "seeds met"]]))
    lines += ["", "Per seed (best topic, AUROC; * = shared with another family):", ""]
    wide = table.assign(cell=[f"{t}: {a:.3f}{'' if own else '*'}" for t, a, own in
                              zip(table["topic"], table["auroc"], table["own_topic"])])
    wide = wide.pivot_table(index=["score", "seed"], columns="family", values="cell", aggfunc="first", sort=False)
    lines.append(_table(wide.reset_index()))
    return "\n".join(lines) + "\n"


def _table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def run_probes(config: ProbesConfig, out_dir: str | Path, machine: str = "") -> dict:
    """Runs the benchmark (module docstring).

    Returns:
        ``{"table", "summary", "paths"}``: the per-seed rows, the summary and the written files.

    Raises:
        InputError: a probe table that cannot be used (:func:`read_families`).
    """
    from bindvae.features.kmers import Vocabulary, featurize

    out_dir = Path(out_dir)
    sequences, families = read_families(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    fasta = _write_fasta(out_dir / "data" / "probes.fa", sequences, families)
    vocabulary = Vocabulary.gapped8()
    X = featurize(sequences, vocabulary)
    limits = supervised_limits(X, families, config.seeds, config.limit_c, config.limit_folds)
    frames, times = [], []
    for seed in config.seeds:
        workdir = out_dir / f"seed_{seed}"
        frame, train_s = train_and_score(config, seed, X, families, vocabulary.fingerprint, workdir, fasta)
        frames.append(frame)
        times.append(train_s)
    table = pd.concat(frames, ignore_index=True)
    table["limit"] = table["family"].map(limits)
    table["fraction"] = table["auroc"] / table["limit"]
    summary = summarize(table, config.target)
    paths = {"table": out_dir / "probes.tsv", "summary": out_dir / "probes_summary.tsv",
             "markdown": out_dir / "probes.md"}
    for key in ("table", "summary"):
        frame = table if key == "table" else summary
        tmp = paths[key].with_name(paths[key].name + ".tmp")
        frame.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
        tmp.replace(paths[key])
    _atomic_text(paths["markdown"], markdown(config, table, summary, times, machine))
    return {"table": table, "summary": summary, "paths": paths}
