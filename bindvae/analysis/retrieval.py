"""TF retrieval scores against a gold list (Table S4 of the paper).

The paper takes the TFs expressed in the cell type (RNA-seq) that its probe set can name as the
gold standard, and scores the TFs a model names: precision = named and gold / named, recall = named
and gold / gold, F1 their harmonic mean. It does so for Algorithm 1 ("BindVAE") and for motif
similarity ("BindVAE + Tomtom"), whose universe is the motif database instead of the probes.

Names are compared ignoring case. A dimer label ``A::B`` (JASPAR) stands for A and B, wherever it
appears (named TFs, universe, gold list). Precision is empty (NaN) when nothing is named, recall when
no gold TF can be named; F1 = 2 TP / (named + gold), the harmonic mean whenever both are defined.
``baseline_precision`` is the precision of naming every TF of the universe (recall 1), the paper's
"match every motif" classifier.
"""

from __future__ import annotations

import math
import os

import pandas as pd

from bindvae.errors import InputError

ALGORITHM_1, MOTIF_SIMILARITY = "Algorithm 1", "motif similarity"
COLUMNS = ["run", "method", "n_nameable", "n_gold", "n_named", "true_positives", "precision", "recall", "f1",
           "baseline_precision"]


def read_gold(path: str | os.PathLike) -> list[str]:
    """TF names, the first field of each line; blank lines and lines starting with ``#`` are skipped.

    Raises:
        InputError: the file is missing or unreadable, or names no TF.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot read the gold TF list ({err.__class__.__name__})") from None
    names = [line.split()[0] for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not names:
        raise InputError(path, "gold TF list names no TF (one name per line)")
    return names


def keys(names) -> set[str]:
    """Upper-case TF names, dimers ``A::B`` split into A and B."""
    return {part for name in names for part in str(name).upper().split("::") if part}


def scores(named, nameable, gold) -> dict:
    """Precision, recall and F1 of ``named`` TFs against ``gold`` restricted to the ``nameable`` TFs.

    Args:
        named: TFs the method named (any iterable of names).
        nameable: every TF the method could name (the probe set's or the motif database's TFs).
        gold: the gold list (names outside ``nameable`` are not counted).

    Returns:
        ``n_nameable``, ``n_gold`` (gold and nameable), ``n_named``, ``true_positives``, ``precision``,
        ``recall``, ``f1``, ``baseline_precision`` (see the module docstring).
    """
    universe = keys(nameable)
    predicted, truth = keys(named), keys(gold) & universe
    tp = len(predicted & truth)
    return {"n_nameable": len(universe), "n_gold": len(truth), "n_named": len(predicted), "true_positives": tp,
            "precision": tp / len(predicted) if predicted else math.nan,
            "recall": tp / len(truth) if truth else math.nan,
            "f1": 2 * tp / (len(predicted) + len(truth)) if predicted or truth else math.nan,
            "baseline_precision": len(truth) / len(universe) if universe else math.nan}


def run_rows(run: str, gold, mapping: pd.DataFrame | None, probe_tfs, matches: pd.DataFrame | None,
             database_tfs) -> list[dict]:
    """The retrieval rows of one run (or ensemble): Algorithm 1 and motif similarity, where available.

    Args:
        run: name written in the ``run`` column.
        gold: the gold TF names.
        mapping: Algorithm 1 table with its final ``assigned`` column, or None without probes.
        probe_tfs: the probes' TF names (Algorithm 1's universe).
        matches: motif-similarity table with ``assigned``, or None without a database.
        database_tfs: the database's TF names (motif similarity's universe).
    """
    from bindvae.analysis.naming import match_names

    rows = []
    if mapping is not None:
        named = mapping.loc[mapping["assigned"].astype(bool), "tf"]
        rows.append({"run": run, "method": ALGORITHM_1, **scores(named, probe_tfs, gold)})
    if matches is not None:
        hits = matches[matches["assigned"].astype(bool)] if len(matches) else matches
        named = match_names(hits) if len(hits) else []
        rows.append({"run": run, "method": MOTIF_SIMILARITY, **scores(named, database_tfs, gold)})
    return rows


def table(rows: list[dict]) -> pd.DataFrame:
    """Rows of :func:`run_rows` as the ``retrieval.tsv`` table."""
    return pd.DataFrame(rows, columns=COLUMNS)


def summary_lines(path: str | os.PathLike) -> str:
    """One line per row of a ``retrieval.tsv``: method, P / R / F1 and the counts behind them."""
    frame = pd.read_csv(path, sep="\t", comment="#")
    lines = [f"TF retrieval ({row.run}, {row.method}): precision {_num(row.precision)} "
             f"({row.true_positives}/{row.n_named} named), recall {_num(row.recall)} ({row.true_positives}/"
             f"{row.n_gold} gold), F1 {_num(row.f1)}; naming every TF: precision {_num(row.baseline_precision)}"
             for row in frame.itertuples()]
    return "\n".join(lines) + ("\n" if lines else "")


def _num(value) -> str:
    return "-" if pd.isna(value) else f"{float(value):.3f}"
