"""Model selection across a sweep: TFs mapped per run, the best runs, their non-redundant ensemble.

The paper (Methods, "Model selection") ranks models by the number of TFs that Algorithm 1 maps and
aggregates the non-redundant TFs of the three best into an ensemble.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from bindvae.checkpoint import checkpoint_dir


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


def select_runs(mappings: dict[str, pd.DataFrame], n_best: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rank runs by TFs mapped and build the ensemble of the best ``n_best``.

    Args:
        mappings: run name -> its Algorithm 1 table (``naming.map_topics_to_tfs``).
        n_best: runs in the ensemble.

    Returns:
        ``(summary, ensemble)``. ``summary``: one row per run with ``run, n_tfs_mapped,
        n_topics_mapped, rank, selected``, best first (ties: more topics mapped, then name).
        ``ensemble``: ``run, topic, tfs, new_tfs``; the best runs' mapped topics in rank order, a
        topic kept only when it brings a TF the ensemble lacks (the non-redundant union).
    """
    rows = []
    for run, table in mappings.items():
        hits = table[table["assigned"]]
        rows.append({"run": run, "n_tfs_mapped": hits["tf"].nunique(), "n_topics_mapped": hits["topic"].nunique()})
    summary = pd.DataFrame(rows, columns=["run", "n_tfs_mapped", "n_topics_mapped"])
    summary = summary.sort_values(["n_tfs_mapped", "n_topics_mapped", "run"], ascending=[False, False, True],
                                  kind="stable").reset_index(drop=True)
    summary["rank"] = range(1, len(summary) + 1)
    summary["selected"] = summary["rank"] <= n_best
    covered: set[str] = set()
    kept = []
    for run in summary.loc[summary["selected"], "run"]:
        hits = mappings[run][mappings[run]["assigned"]].sort_values("p_value", kind="stable")
        for topic in dict.fromkeys(hits["topic"]):
            tfs = hits.loc[hits["topic"] == topic, "tf"].tolist()
            new = [tf for tf in tfs if tf not in covered]
            if new:
                covered.update(new)
                kept.append({"run": run, "topic": topic, "tfs": ",".join(tfs), "new_tfs": ",".join(new)})
    return summary, pd.DataFrame(kept, columns=["run", "topic", "tfs", "new_tfs"])
