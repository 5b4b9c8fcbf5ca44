"""Checkpoints: round trip with metadata, keep-last-N, unfinished ones ignored, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from bindvae import checkpoint as ckpt
from bindvae.errors import InputError


def _state(step):
    return {"params": {"w": np.full((2, 3), float(step), np.float32)}, "opt_state": [np.zeros(3), {"m": np.ones(2)}],
            "step": np.int32(step), "rng": np.array([0, step], np.uint32)}


def test_save_load_round_trip_and_keep_last(tmp_path):
    for step in (1, 2, 3, 4):
        ckpt.save_checkpoint(
            tmp_path,
            _state(step),
            {"config": {"model": {"num_topics": 3}}, "vocab_fingerprint": "abc", "n_kmers": 3},
            keep=2,
        )
    assert ckpt.list_steps(tmp_path) == [3, 4]
    latest = ckpt.load_checkpoint(tmp_path)
    assert (
        latest.step == 4 and latest.metadata["vocab_fingerprint"] == "abc" and latest.config["model"]["num_topics"] == 3
    )
    np.testing.assert_array_equal(latest.params["w"], np.full((2, 3), 4.0))
    np.testing.assert_array_equal(latest.rng, [0, 4])
    assert "jax_version" in latest.metadata
    assert ckpt.load_checkpoint(tmp_path, step=3).step == 3
    with pytest.raises(InputError, match="no checkpoint at step 1"):
        ckpt.load_checkpoint(tmp_path, step=1)
    ckpt.check_vocab(latest, "abc", tmp_path)
    with pytest.raises(InputError, match="fingerprint"):
        ckpt.check_vocab(latest, "xyz", tmp_path)


def test_unfinished_checkpoint_is_not_listed(tmp_path):
    ckpt.save_checkpoint(tmp_path, _state(5), {"config": {}, "vocab_fingerprint": "a"})
    # What an interrupted save leaves behind: orbax's temporary folder, never renamed.
    (tmp_path / "checkpoints" / "9.orbax-checkpoint-tmp-123").mkdir()
    assert ckpt.list_steps(tmp_path) == [5]
    assert ckpt.load_checkpoint(tmp_path).step == 5


def test_missing_run_dir_raises_input_error(tmp_path):
    with pytest.raises(InputError, match="run directory not found"):
        ckpt.load_checkpoint(tmp_path / "nope")
    with pytest.raises(InputError, match="no finished checkpoint"):
        ckpt.load_checkpoint(tmp_path)
