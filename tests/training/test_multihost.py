"""Multi-host data parallelism on one machine: 2 processes x 2 CPU devices (jax.distributed, gloo)
train the same loss trajectory as 1 process x 4 devices at the same global batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO_ROOT


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def _launch(out, process_id: int, n_processes: int, port: int, n_devices: int) -> subprocess.Popen:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n_devices}", "JAX_PLATFORMS": "cpu"}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.training._multihost_worker",
         str(out), str(process_id), str(n_processes), str(port)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


@pytest.mark.slow
def test_two_processes_match_one_process_on_four_devices(tmp_path):
    port = _free_port()
    procs = [_launch(tmp_path / f"p{i}.json", i, 2, port, 2) for i in range(2)]
    procs.append(_launch(tmp_path / "single.json", 0, 0, port, 4))
    for proc in procs:
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, output[-3000:]
    results = [json.loads((tmp_path / name).read_text()) for name in ("p0.json", "p1.json", "single.json")]
    assert [(r["devices"], r["local_devices"]) for r in results] == [(4, 2), (4, 2), (4, 4)]
    single = np.array(results[2]["losses"])
    assert single[-1] != single[0]
    for r in results[:2]:
        np.testing.assert_allclose(r["losses"], single, rtol=2e-6, atol=0)
