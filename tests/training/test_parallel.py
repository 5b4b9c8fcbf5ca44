"""Data-parallel training: 4 forced host devices train the same trajectory as 1 device.

XLA_FLAGS must be set before JAX starts, so the comparison runs in a fresh interpreter
(``tests/training/_parallel_worker.py``, about 40 s of CPU: marked slow) and this module checks what it wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from bindvae.errors import ConfigError
from bindvae.training import parallel
from tests.conftest import REPO_ROOT

N_STEPS = 8


@pytest.fixture(scope="module")
def trajectories(tmp_path_factory):
    out = tmp_path_factory.mktemp("parallel") / "result.json"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.training._parallel_worker", str(out), str(N_STEPS)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
def test_worker_sees_four_devices(trajectories):
    assert trajectories["n_devices"] == 4


@pytest.mark.slow
@pytest.mark.parametrize("path", ["sparse", "dense"])
def test_four_devices_match_one_device_loss_trajectory(trajectories, path):
    one, four = np.array(trajectories[f"{path}_mesh1"]), np.array(trajectories[f"{path}_mesh4"])
    assert one.shape == (N_STEPS,)
    assert one[-1] < one[0] - 0.1  # the run actually trains, so matching is not trivial
    np.testing.assert_allclose(four, one, rtol=2e-6, atol=0)
    assert trajectories[f"{path}_params_max_diff"] < 1e-5


@pytest.mark.slow
def test_sharded_loop_matches_single_device_training_loop(trajectories):
    np.testing.assert_allclose(trajectories["sparse_mesh1"], trajectories["sparse_plain"], rtol=2e-6, atol=0)


@pytest.mark.slow
def test_fit_on_four_devices_matches_one_device(trajectories):
    one, four = np.array(trajectories["fit_devices1"]), np.array(trajectories["fit_devices4"])
    assert one.shape == (N_STEPS,) and one[-1] < one[0]
    np.testing.assert_allclose(four, one, rtol=2e-6, atol=0)


def test_mesh_rejects_more_devices_than_exist():
    with pytest.raises(ConfigError, match="train.devices"):
        parallel.make_mesh(jax.device_count() + 1)


def test_batch_size_must_split_over_devices():
    mesh = parallel.make_mesh(1)
    parallel.check_batch_size(7, mesh)  # one device takes any batch
    fake = type("FakeMesh", (), {"devices": np.empty(4)})()
    with pytest.raises(ConfigError, match="multiple of 4"):
        parallel.check_batch_size(10, fake)


def test_put_batch_splits_rows_over_mesh():
    mesh = parallel.make_mesh(0)
    x = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)
    arr = parallel.put_batch(x, mesh, axis=1)
    np.testing.assert_array_equal(np.asarray(arr), x)
    assert arr.sharding.spec == jax.sharding.PartitionSpec(None, parallel.BATCH_AXIS, None)
    assert parallel.process_rows(8) == slice(0, 8)
