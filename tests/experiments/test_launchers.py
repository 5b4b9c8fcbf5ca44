"""The sweep launchers compose from the real configs (no cluster and no job submission needed)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

import experiments.train  # noqa: F401  (registers the run schema the configs build on)
from tests.conftest import REPO_ROOT


@pytest.fixture
def compose_train():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        yield lambda overrides: compose(config_name="train", overrides=overrides, return_hydra_config=True)
    GlobalHydra.instance().clear()


def test_slurm_launcher_composes_with_the_sweep(compose_train):
    cfg = compose_train(["sweep=m_alpha", "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "logger=none"])
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.gpus_per_node, launcher.nodes, launcher.max_num_timeout) == ("gpu", 1, 1, 3)
    assert launcher.timeout_min == 720 and launcher.tasks_per_node == 1
    assert OmegaConf.to_container(cfg.hydra.sweeper.params) == {
        "model.num_topics": "10,50,100",
        "model.alpha": "1,10,20",
    }
    assert cfg.hydra.mode.name == "MULTIRUN"


def test_joblib_launcher_is_the_sweep_default(compose_train):
    cfg = compose_train(["sweep=m_alpha", "logger=none"])
    assert cfg.hydra.launcher._target_ == "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    assert cfg.hydra.launcher.n_jobs == 2 and cfg.hydra.launcher.backend == "loky"


def test_slurm_launcher_can_be_instantiated_without_a_cluster(compose_train):
    from hydra.utils import instantiate

    cfg = compose_train(["hydra/launcher=slurm"])
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ == "SlurmLauncher" and launcher.params["gpus_per_node"] == 1


def test_plain_multirun_runs_through_joblib_too(compose_train):
    cfg = compose_train(["model.num_topics=2", "logger=none"])
    assert cfg.hydra.launcher._target_ == "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


def test_sweep_group_carries_the_date():
    from experiments.train import sweep_group

    assert sweep_group("multirun/2026-12-03/07-40-00") == "2026-12-03_07-40-00"
    assert sweep_group("sweeps/gm12878") == "gm12878"
