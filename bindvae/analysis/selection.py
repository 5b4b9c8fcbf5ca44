"""Model selection across a sweep: distinct TF families named per run, the best runs, their ensemble.

The paper (Methods, "Model selection") ranks models by the number of TFs that Algorithm 1 maps and
aggregates the non-redundant TFs of the three best into an ensemble. With probes sampled from a
whole database that count saturates (hundreds of TFs per run, most on background topics), so runs
are ranked here by a count that cannot grow without new binding specificities:

* the number of distinct TF families (JASPAR ``tf_family``; see :mod:`bindvae.analysis.families`)
  with at least one assignment that is significant (q), sizeable (effect size) and within the
  per-topic cap (:func:`bindvae.analysis.naming.map_topics_to_tfs`), on a topic the composition rules
  keep (:mod:`bindvae.analysis.titles`), for a TF assigned to at most ``max_topics_per_tf`` topics
  (one-to-few: a TF spread over many topics names none of them);
* ties broken by the held-out ELBO (``val_elbo`` of the run's last evaluation in ``metrics.jsonl``;
  higher is better, a run without one ranks after those with one), then by more topics named, then
  by name.

The ensemble is the paper's: the best runs' named topics in rank order, each kept when it brings a
TF the ensemble lacks.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd

from bindvae.analysis.families import family_of
from bindvae.checkpoint import checkpoint_dir

MAX_TOPICS_PER_TF = 3
SUMMARY_COLUMNS = ["run", "n_families", "n_tfs_mapped", "n_topics_mapped", "val_elbo", "rank", "selected"]


def find_runs(sweep_dir: str | os.PathLike, max_depth: int = 3) -> list[Path]:
    """Run directories (those holding a ``checkpoints/`` folder) under a sweep directory.

    Args:
        sweep_dir: the sweep's root (e.g. Hydra's multirun folder).
        max_depth: how deep to look.

    Returns:
        Sorted run directories.
    """
    root = Path(sweep_dir)
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        if checkpoint_dir(dirpath).is_dir():
            found.append(Path(dirpath))
            dirnames[:] = []
        elif depth >= max_depth:
            dirnames[:] = []
    return sorted(found)


def held_out_elbo(run_dir: str | os.PathLike) -> float:
    """The run's last ``val_elbo`` in ``metrics.jsonl`` (NaN when it has none or no such file)."""
    path = Path(run_dir) / "metrics.jsonl"
    value = math.nan
    if not path.is_file():
        return value
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash; the earlier evaluations still count
        if isinstance(record, dict) and isinstance(record.get("val_elbo"), (int, float)):
            value = float(record["val_elbo"])
    return value


def named_families(mapping: pd.DataFrame, families: dict[str, str],
                   max_topics_per_tf: int = MAX_TOPICS_PER_TF) -> set[str]:
    """Family keys of the one-to-few assigned TFs of one run (the module docstring's criterion).

    Args:
        mapping: the run's Algorithm 1 table with its final ``assigned`` column.
        families: TF name -> family key (missing TFs are their own family).
        max_topics_per_tf: most topics a TF may be assigned to and still count.

    Returns:
        The set of family keys.
    """
    hits = mapping[mapping["assigned"]]
    n_topics = hits.groupby("tf")["topic"].nunique()
    return {family_of(tf, families) for tf, n in n_topics.items() if n <= max_topics_per_tf}


def select_runs(mappings: dict[str, pd.DataFrame], n_best: int = 3, families: dict[str, str] | None = None,
                elbos: dict[str, float] | None = None,
                max_topics_per_tf: int = MAX_TOPICS_PER_TF) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rank runs by distinct TF families named (ties: held-out ELBO) and build the ensemble.

    Args:
        mappings: run name -> its Algorithm 1 table (``naming.map_topics_to_tfs``, after
            ``titles.title_topics`` withdrew what the composition rules overrule).
        n_best: runs in the ensemble.
        families: TF name -> family key (default: every TF its own family).
        elbos: run name -> held-out ELBO (:func:`held_out_elbo`; missing: NaN).
        max_topics_per_tf: see :func:`named_families`.

    Returns:
        ``(summary, ensemble)``. ``summary``: one row per run with ``run, n_families, n_tfs_mapped,
        n_topics_mapped, val_elbo, rank, selected``, best first. ``ensemble``: ``run, topic, tfs,
        new_tfs``; the best runs' mapped topics in rank order, a topic kept only when it brings a TF
        the ensemble lacks (the non-redundant union).
    """
    families, elbos = families or {}, elbos or {}
    rows = []
    for run, table in mappings.items():
        hits = table[table["assigned"]]
        rows.append({"run": run, "n_families": len(named_families(table, families, max_topics_per_tf)),
                     "n_tfs_mapped": hits["tf"].nunique(), "n_topics_mapped": hits["topic"].nunique(),
                     "val_elbo": float(elbos.get(run, math.nan))})
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS[:5])
    # NaN ELBOs sort last because sort_values puts missing values at the end in either direction.
    summary = summary.sort_values(["n_families", "val_elbo", "n_topics_mapped", "run"],
                                  ascending=[False, False, False, True], kind="stable",
                                  na_position="last").reset_index(drop=True)
    summary["rank"] = range(1, len(summary) + 1)
    summary["selected"] = summary["rank"] <= n_best
    return summary[SUMMARY_COLUMNS], _ensemble(mappings, summary.loc[summary["selected"], "run"])


def _ensemble(mappings: dict[str, pd.DataFrame], runs) -> pd.DataFrame:
    """The non-redundant union of the given runs' mapped topics, in run order then by p-value."""
    covered: set[str] = set()
    kept = []
    for run in runs:
        hits = mappings[run][mappings[run]["assigned"]].sort_values("p_value", kind="stable")
        for topic in dict.fromkeys(hits["topic"]):
            tfs = hits.loc[hits["topic"] == topic, "tf"].tolist()
            new = [tf for tf in tfs if tf not in covered]
            if new:
                covered.update(new)
                kept.append({"run": run, "topic": topic, "tfs": ",".join(tfs), "new_tfs": ",".join(new)})
    return pd.DataFrame(kept, columns=["run", "topic", "tfs", "new_tfs"])
