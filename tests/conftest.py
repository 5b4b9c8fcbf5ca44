"""Shared fixtures. Reference data lives outside the project, in ../shared/data (see README)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    env = os.environ.get("BINDVAE_SHARED_DATA")
    if env:
        return Path(env)
    return REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The BindVAE reference data folder; skips the test when it is not on this machine."""
    path = _shared_data_dir() / "bindvae_reference"
    if not path.is_dir():
        pytest.skip(f"reference data not found at {path} (set BINDVAE_SHARED_DATA to its parent)")
    return path


@pytest.fixture(scope="module")
def fast_compile():
    """XLA without most optimisations for a module of small jitted tests (compilation dominates them)."""
    import jax

    old = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", old)
