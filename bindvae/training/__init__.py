"""Training: the optimiser, the state, the jitted steps on each compute path, and the loop.

    optim.py    Adam with the prior's burn-in freeze; the learning-rate schedule
    state.py    TrainState and its creation
    step.py     compute paths; one step, many steps per call, the evaluation step
    feeds.py    batches resident on the device or streamed from shards
    resume.py   refuse / overwrite / resume a run directory; restoring state
    loop.py     ``fit``: logging, evaluation, checkpoints, early stop
    rundir.py   one owner per run directory
    parallel.py data-parallel steps over devices and hosts
"""

from bindvae.training.loop import FitResult, TrainingDiverged, evaluate, fit, summary, topic_table
from bindvae.training.optim import learning_rate_schedule, make_optimizer
from bindvae.training.resume import prepare_run_dir
from bindvae.training.state import TrainState, create_train_state
from bindvae.training.step import (
    METRIC_KEYS,
    apply_step,
    batch_metrics,
    load_cpu_kernels,
    loss_and_metrics,
    make_eval_step,
    make_train_loop,
    make_train_step,
    resolve_compute_path,
    resolve_steps_per_call,
    row_terms,
)

__all__ = [
    "FitResult", "METRIC_KEYS", "TrainState", "TrainingDiverged", "apply_step", "batch_metrics", "create_train_state",
    "evaluate", "fit", "learning_rate_schedule", "load_cpu_kernels", "loss_and_metrics", "make_eval_step",
    "make_optimizer", "make_train_loop", "make_train_step", "prepare_run_dir", "resolve_compute_path",
    "resolve_steps_per_call", "row_terms", "summary", "topic_table",
]
