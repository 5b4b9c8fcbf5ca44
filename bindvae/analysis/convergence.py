"""The training summary of a run's report, read from its ``metrics.jsonl``, and the convergence rule.

Rule, on validation perplexity (``val_perplexity``, one value per evaluation), or on training
perplexity (``perplexity``, the mean over each log interval) when fewer than :data:`MIN_EVALUATIONS`
validation evaluations were logged:

* **not converged, flat**: the last evaluation is less than :data:`MIN_DROP` (5%) below the first,
  i.e. training has barely moved the model from where it started;
* **not converged, still falling**: over the last :data:`RECENT_SHARE` (25%) of the steps between the
  first and the last evaluation, perplexity fell by more than :data:`MAX_RECENT_DROP` (2%) of its value
  there, i.e. more training would still change the topics;
* otherwise **converged**. With fewer than :data:`MIN_EVALUATIONS` values of either series the rule
  cannot be applied and the report says so.

When training ran before the log begins (``train.restarts``: the starts tried are not logged, and the
chosen one is logged from ``train.restart_steps`` on), the first logged value is not where training
started, so "flat" is not judged (only "still falling"): the first training record then lies more than
one log interval after step 0.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

MIN_DROP = 0.05
RECENT_SHARE = 0.25
MAX_RECENT_DROP = 0.02
MIN_EVALUATIONS = 3
RULE = (f"Convergence rule: the model has not converged when its validation perplexity at the last evaluation "
        f"is less than {MIN_DROP:.0%} below the first evaluation's (flat), or fell by more than "
        f"{MAX_RECENT_DROP:.0%} over the last {RECENT_SHARE:.0%} of the steps between them (still falling). "
        f"With fewer than {MIN_EVALUATIONS} validation evaluations the rule reads the training perplexity "
        f"(the mean over each log interval) instead. When training ran before the log began (train.restarts), "
        f"only the second test is made.")


@dataclasses.dataclass(frozen=True)
class TrainingSummary:
    """What the report says about training.

    Attributes:
        steps: last logged step (0 without metrics).
        train: last logged training values (``elbo``, ``perplexity``, ``loss``), those present.
        val: last validation values (``val_elbo``, ``val_perplexity``), those present.
        first_val_perplexity: validation perplexity at the first evaluation, or None.
        curve: one row per logged step: ``step`` and every metric column logged (NaN where absent).
        status: ``converged``, ``flat``, ``still falling`` or ``unknown``.
        reason: one sentence with the numbers behind ``status``.
        judged_on: ``validation`` or ``training`` perplexity ("" when not judged).
    """

    steps: int
    train: dict
    val: dict
    first_val_perplexity: float | None
    curve: pd.DataFrame
    status: str
    reason: str
    judged_on: str = ""

    @property
    def converged(self) -> bool | None:
        """True / False by the rule, None when it cannot be applied."""
        return None if self.status == "unknown" else self.status == "converged"


def _last(curve: pd.DataFrame, keys) -> dict:
    out = {}
    for key in keys:
        if key in curve and curve[key].notna().any():
            out[key] = float(curve[key].dropna().iloc[-1])
    return out


def judge(steps: np.ndarray, perplexity: np.ndarray, series: str = "validation",
          unlogged: int = 0) -> tuple[str, str]:
    """``(status, reason)`` of the module docstring's rule for perplexities at ``steps``.

    Args:
        steps: ``[n]`` increasing steps.
        perplexity: ``[n]`` values at those steps.
        series: ``validation`` or ``training``, named in the reason.
        unlogged: steps trained before the log begins (:func:`unlogged_steps`); when > 0, "flat" is not judged.
    """
    steps, perplexity = np.asarray(steps, np.float64), np.asarray(perplexity, np.float64)
    if len(perplexity) < MIN_EVALUATIONS:
        return "unknown", (f"{len(perplexity)} {series} perplexity value(s) logged; the convergence rule needs "
                           f"{MIN_EVALUATIONS}")
    first, last = perplexity[0], perplexity[-1]
    drop = (first - last) / first
    if drop < MIN_DROP and not unlogged:
        return "flat", (f"{series} perplexity {last:,.1f} is {drop:.1%} below its first value {first:,.1f} "
                        f"(step {steps[0]:.0f}): less than {MIN_DROP:.0%}")
    ref_step = steps[-1] - RECENT_SHARE * (steps[-1] - steps[0])
    ref = perplexity[steps <= ref_step][-1]
    recent = (ref - last) / ref
    if recent > MAX_RECENT_DROP:
        return "still falling", (f"{series} perplexity fell {recent:.1%} (from {ref:,.1f} to {last:,.1f}) over the "
                                 f"last {RECENT_SHARE:.0%} of the steps: more than {MAX_RECENT_DROP:.0%}")
    if unlogged:
        return "converged", (f"{series} perplexity changed {recent:.1%} over the last {RECENT_SHARE:.0%} of the "
                             f"logged steps (to {last:,.1f}); the first {unlogged:,} steps were not logged "
                             f"(train.restarts), so the drop from the start is not judged")
    return "converged", (f"{series} perplexity {last:,.1f} is {drop:.1%} below its first value {first:,.1f} and "
                         f"changed {recent:.1%} over the last {RECENT_SHARE:.0%} of the steps")


def unlogged_steps(curve: pd.DataFrame) -> int:
    """Steps trained before the first training record: its step less one log interval (the gap to the
    second record), 0 when the log starts within one interval of step 0 or has fewer than two records."""
    steps = _series(curve, "perplexity")["step"].to_numpy()
    if len(steps) < 2:
        return 0
    interval = steps[1] - steps[0]
    return int(steps[0] - interval) if steps[0] > interval else 0


def training_summary(records: list[dict]) -> TrainingSummary:
    """The summary of a run's metrics records (:func:`bindvae.tracking.read_metrics`).

    Args:
        records: one dict per logged step, each with ``step``.

    Returns:
        The summary; without records ``status`` is ``unknown``.
    """
    curve = pd.DataFrame(records)
    if not len(curve) or "step" not in curve:
        return TrainingSummary(0, {}, {}, None, pd.DataFrame({"step": []}), "unknown",
                               "the run directory has no metrics.jsonl")
    curve = curve.apply(pd.to_numeric, errors="coerce").sort_values("step", kind="stable").reset_index(drop=True)
    val = _series(curve, "val_perplexity")
    series, judged_on = val, "validation"
    if len(val) < MIN_EVALUATIONS and len(_series(curve, "perplexity")) >= MIN_EVALUATIONS:
        series, judged_on = _series(curve, "perplexity"), "training"
    status, reason = judge(series["step"].to_numpy(), series.iloc[:, 1].to_numpy(), judged_on, unlogged_steps(curve))
    if not len(series):
        status, reason, judged_on = "unknown", "no perplexity was logged", ""
    return TrainingSummary(
        steps=int(curve["step"].max()), train=_last(curve, ("elbo", "perplexity", "loss")),
        val=_last(curve, ("val_elbo", "val_perplexity")),
        first_val_perplexity=float(val["val_perplexity"].iloc[0]) if len(val) else None,
        curve=curve, status=status, reason=reason, judged_on=judged_on if status != "unknown" else "")


def _series(curve: pd.DataFrame, key: str) -> pd.DataFrame:
    return curve[["step", key]].dropna() if key in curve else pd.DataFrame({"step": [], key: []})
