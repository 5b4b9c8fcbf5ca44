"""The README's reliability promises: the same numbers whatever the kernel cache held, across kills;
one owner per run directory; quiet checkpoint fallbacks; finished runs left alone; vocabulary files
that cannot run code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from bindvae import checkpoint as ckpt
from bindvae import training as train
from bindvae.errors import InputError
from bindvae.features.formats import FEATURES_FORMAT, read_reference_vocabulary
from bindvae.training import rundir
from tests.conftest import REPO_ROOT
from tests.helpers.training import random_counts, small_config


def _write_features(path: Path, n_rows: int, n_kmers: int) -> None:
    X = random_counts(n_rows, n_kmers, seed=1)
    np.savez(path, format=np.array(FEATURES_FORMAT), fingerprint=np.array("tiny-test-vocabulary"),
             shape=np.array(X.shape, np.int64), indptr=X.indptr.astype(np.int64), indices=X.indices.astype(np.int32),
             data=X.data.astype(np.float32), names=np.array([f"s{i}" for i in range(n_rows)]))


def _train_command(features: Path, run_dir: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "experiments.train", "data=npz", f"data.path={features}", "logger=none",
            "model.num_topics=6", "model.hidden_sizes=[16]", "train.batch_size=8", "train.learning_rate=0.01",
            "train.prior_burn_in_steps=20", "train.log_every=10", "train.eval_every=0", "train.topic_table_every=0",
            "train.progress=false", "train.val_fraction=0.1", "train.seed=5", f"hydra.run.dir={run_dir}", *overrides]


def _env(**extra: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "WANDB_MODE": "disabled", **extra}


def _wait_for(condition, process: subprocess.Popen, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the run ended before {what} (exit {process.returncode})")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no {what} within {seconds} s")
        time.sleep(0.05)


def _kill_group(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)  # the run and any child it started (the kernel compiler)
    process.wait(timeout=30)


def _params(run_dir: Path):
    return jax.tree_util.tree_leaves_with_path(ckpt.load_checkpoint(run_dir).params)


@pytest.mark.slow
def test_cold_cache_killed_runs_match_a_warm_straight_run_bit_for_bit(tmp_path):
    # D = 2,200: several 512-column tiles, where a freshly compiled kernel and its cached build used
    # to sum theta's softmax differently (different parameters after a few steps).
    features = tmp_path / "features.npz"
    _write_features(features, 64, 2200)
    cache = tmp_path / "numba-cache"
    # One kernel thread: on several, identical runs still differ in the last digit now and then
    # (README, "Reliability and reproducibility": the known exception), whatever the cache held.
    cold_env = _env(NUMBA_CACHE_DIR=str(cache), NUMBA_NUM_THREADS="1")
    run_dir = tmp_path / "killed"
    command = _train_command(
        features, run_dir, "train.steps=60", "train.checkpoint_every=20", "train.compute_path=fused_cpu"
    )

    # 1. Killed while the kernels compile (the first run after an install).
    log = tmp_path / "first.log"
    with open(log, "w") as sink:
        first = subprocess.Popen(command, cwd=tmp_path, env=cold_env, stdout=sink, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        _wait_for(lambda: "compiling CPU kernels, once" in log.read_text(), first, 240, "'compiling CPU kernels' line")
        _kill_group(first)
    # 2. Resumed, compiled (again) and killed once a checkpoint is written.
    second = subprocess.Popen(command + ["train.resume=true"], cwd=tmp_path, env=cold_env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_for(lambda: ckpt.list_steps(run_dir), second, 400, "first checkpoint")
    _kill_group(second)
    assert ckpt.list_steps(run_dir)[-1] < 60
    # 3. Resumed to the end with the cache now warm.
    third = subprocess.run(command + ["train.resume=true"], cwd=tmp_path, env=cold_env, capture_output=True, text=True,
                           timeout=400)
    assert third.returncode == 0, third.stderr[-2000:]

    # The same config run straight through, every kernel loaded from the (warm) cache.
    straight_dir = tmp_path / "straight"
    straight = subprocess.run(_train_command(features, straight_dir, "train.steps=60", "train.checkpoint_every=20",
                                             "train.compute_path=fused_cpu"),
                              cwd=tmp_path, env=cold_env, capture_output=True, text=True, timeout=400)
    assert straight.returncode == 0, straight.stderr[-2000:]
    assert "compiling CPU kernels" not in straight.stderr + straight.stdout
    expected, got = _params(straight_dir), _params(run_dir)
    assert len(expected) == len(got)
    for (path, want), (_, have) in zip(expected, got):
        np.testing.assert_array_equal(np.asarray(have), np.asarray(want), err_msg=jax.tree_util.keystr(path))


@pytest.mark.slow
def test_second_training_in_a_busy_run_dir_is_refused_and_touches_nothing(tmp_path):
    features = tmp_path / "features.npz"
    _write_features(features, 48, 120)
    run_dir = tmp_path / "run"
    command = _train_command(features, run_dir, "train.steps=400", "train.checkpoint_every=100",
                             "train.compute_path=sparse")
    owner = subprocess.Popen(command, cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lock_file = run_dir / rundir.LOCK_NAME
    _wait_for(lambda: lock_file.is_file() and lock_file.read_text().strip(), owner, 120, "lock")
    # Hydra writes config.yaml, hydra.yaml, then overrides.yaml (each opened, then filled): the last
    # one present means config.yaml is complete.
    _wait_for(lambda: (run_dir / ".hydra" / "overrides.yaml").is_file(), owner, 120, "Hydra's config")
    config_before = (run_dir / ".hydra" / "config.yaml").read_bytes()
    # The owner is paused while the intruders try (it still holds the lock), so it cannot finish first.
    os.kill(owner.pid, signal.SIGSTOP)
    try:
        for extra in ([], ["train.resume=true"], ["train.overwrite=true"]):
            intruder = subprocess.run(command + ["train.steps=20", *extra], cwd=tmp_path, env=_env(),
                                      capture_output=True, text=True, timeout=120)
            assert intruder.returncode != 0
            lines = intruder.stderr.strip().splitlines()
            assert len(lines) == 1 and f"process {owner.pid}" in lines[0] and str(run_dir) in lines[0], intruder.stderr
    finally:
        os.kill(owner.pid, signal.SIGCONT)
    assert owner.wait(timeout=300) == 0
    assert (run_dir / ".hydra" / "config.yaml").read_bytes() == config_before
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(10, 401, 10))  # no row of an intruder, none twice
    assert ckpt.load_checkpoint(run_dir).step == 400


def test_lock_dies_with_its_process_and_names_it_while_held(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom bindvae.training import rundir\n"
                               f"rundir.acquire({str(tmp_path)!r})\nprint('held', flush=True)\ntime.sleep(120)"],
                              env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert rundir.owner(tmp_path) == f"process {holder.pid} on {os.uname().nodename}"
        with pytest.raises(rundir.RunDirectoryBusy, match=f"process {holder.pid}"):
            rundir.acquire(tmp_path)
        with pytest.raises(rundir.RunDirectoryBusy):
            train.fit(small_config(steps=5, prior_burn_in_steps=2), random_counts(16, 40), None, "fp", tmp_path)
        assert not (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "checkpoints").exists()
    finally:
        holder.kill()  # SIGKILL: the kernel drops the lock, no stale file state to clean up
        holder.wait()
    assert rundir.owner(tmp_path) is None
    with rundir.owned(tmp_path):
        with rundir.owned(tmp_path):  # re-entrant within one process
            assert "(this one)" in rundir.owner(tmp_path)
        assert rundir.owner(tmp_path) is not None
    assert rundir.owner(tmp_path) is None


def test_analysis_of_a_run_in_progress_says_so(tmp_path, caplog):
    from bindvae.infer import load_model

    train.fit(small_config(steps=10), random_counts(24, 40), None, "fp", tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import time\nfrom bindvae.training import rundir\n"
                               f"rundir.acquire({str(tmp_path)!r})\nprint('held', flush=True)\ntime.sleep(120)"],
                              env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with caplog.at_level("WARNING"):
            model = load_model(tmp_path, features_fingerprint="fp")
        assert model.params is not None
        assert any(f"process {holder.pid}" in r.getMessage() and "step 10" in r.getMessage() for r in caplog.records)
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_damaged_latest_checkpoint_falls_back_with_one_line_on_stderr(tmp_path):
    # Big enough that tensorstore reads the arrays concurrently (the case that printed tracebacks).
    config = small_config(steps=20, checkpoint_every=10)
    config = config.__class__(model=config.model.__class__(num_topics=8, alpha=1.0, hidden_sizes=(256, 256)),
                              train=config.train)
    train.fit(config, random_counts(32, 4000), None, "fp", tmp_path)
    data_files = [
        p for p in (tmp_path / "checkpoints" / "20" / "state").rglob("*") if p.is_file() and p.stat().st_size > 100_000
    ]
    assert data_files
    for path in data_files:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    script = ("import time\nfrom bindvae import checkpoint\n"
              f"print(checkpoint.load_checkpoint({str(tmp_path)!r}).step)\ntime.sleep(2)")
    result = subprocess.run([sys.executable, "-c", script], env=_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "10", result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "falling back to step 10" in lines[0], result.stderr[-3000:]


def test_unretrieved_read_errors_of_a_damaged_checkpoint_are_dropped_and_other_asyncio_errors_kept(caplog):
    import logging

    from bindvae import checkpoint

    checkpoint._drop_closed_loop_reports()
    log = logging.getLogger("asyncio")
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        log.error("Future exception was never retrieved\nfuture: <Future finished exception=ValueError("
                  "'OUT_OF_RANGE: Error reading \"params.encoder.hidden_1.kernel/0.0\" in OCDBT database')>")
        log.error("Future exception was never retrieved\nfuture: <Future finished exception=KeyError('x')>")
        log.error("Task was destroyed but it is pending!")
    assert [r.getMessage().splitlines()[0] for r in caplog.records] == [
        "Future exception was never retrieved", "Task was destroyed but it is pending!"]
    assert "KeyError" in caplog.records[0].getMessage()


def test_resuming_a_finished_run_says_so_and_changes_nothing(tmp_path):
    X = random_counts(24, 40)
    train.fit(small_config(steps=10), X, None, "fp", tmp_path)
    metrics_before = (tmp_path / "metrics.jsonl").read_bytes()
    steps_before = ckpt.list_steps(tmp_path)
    result = train.fit(small_config(steps=10, resume=True), X, None, "fp", tmp_path)
    assert result.already_complete and result.step == 10
    text = train.summary(result)
    assert "already complete at step 10" in text and "nan" not in text
    assert (tmp_path / "metrics.jsonl").read_bytes() == metrics_before
    assert ckpt.list_steps(tmp_path) == steps_before


def test_finished_run_resumed_from_the_command_line_exits_0_without_nan(tmp_path):
    features = tmp_path / "features.npz"
    _write_features(features, 48, 120)
    run_dir = tmp_path / "run"
    command = _train_command(
        features, run_dir, "train.steps=20", "train.checkpoint_every=20", "train.compute_path=sparse"
    )
    assert subprocess.run(command, cwd=tmp_path, env=_env(), capture_output=True, timeout=300).returncode == 0
    again = subprocess.run(command + ["train.resume=true"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    output = again.stdout + again.stderr
    assert "already complete at step 20" in output and "nan" not in output


def test_vocabulary_pickle_with_a_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "vocabulary.npy"
    np.save(evil, np.array({"EMPTY": 0, "AAAAAAAA": Payload()}, dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="refused: the pickle asks for posix.system"):
        read_reference_vocabulary(evil)
    assert not marker.exists()
    # A plain array where a dictionary belongs is refused as well, and nothing else is unpickled.
    plain = tmp_path / "array.npy"
    np.save(plain, np.arange(4))
    with pytest.raises(InputError, match="not a pickled dictionary"):
        read_reference_vocabulary(plain)


def test_real_reference_vocabulary_still_loads(reference_dir):
    mapping = read_reference_vocabulary(reference_dir / "vocabulary_all8mers_with_wildcards.npy")
    assert len(mapping) == 112_801 and mapping["EMPTY"] == 0


@pytest.mark.parametrize(
    "entry",
    ["train", "benchmark_recovery", "analyze", "featurize", "benchmark", "stability", "demo", "compare", "project"],
)
def test_every_entry_point_answers_help_and_does_nothing_else(entry, tmp_path):
    result = subprocess.run([sys.executable, "-m", f"experiments.{entry}", "--help"], cwd=tmp_path, env=_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-1000:]
    assert f"experiments.{entry}" in result.stdout or "powered by Hydra" in result.stdout
    assert not any(tmp_path.iterdir())  # no run directory, no outputs
