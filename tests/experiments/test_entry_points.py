"""Every key=value entry point is a Hydra application: ``--cfg job``, one-line errors naming the key,
list-valued keys in their old comma form, multirun, and nothing written into the current directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from experiments import analyze, benchmark, compare, featurize, project, stability
from tests.conftest import REPO_ROOT

MODULES = {"analyze": analyze, "featurize": featurize, "project": project, "compare": compare,
           "benchmark": benchmark, "stability": stability}


def _cli(name: str, *args, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "WANDB_MODE": "disabled", **(env or {})}
    return subprocess.run([sys.executable, "-m", f"experiments.{name}", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _yaml_keys(name: str) -> set[str]:
    values = yaml.safe_load((REPO_ROOT / "conf" / f"{name}.yaml").read_text())
    return set(values) - {"defaults", "hydra"}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_cfg_job_prints_every_key_and_writes_nothing(name, tmp_path):
    result = _cli(name, "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    printed = yaml.safe_load(result.stdout)
    assert set(printed) == _yaml_keys(name)
    assert not any(tmp_path.iterdir())  # no outputs/<date>/, no .hydra/, no log file


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_yaml_key_has_a_comment(name):
    lines = (REPO_ROOT / "conf" / f"{name}.yaml").read_text().splitlines()
    for key in _yaml_keys(name):
        line = next(line for line in lines if line.startswith(f"{key}:"))
        assert "#" in line, line


@pytest.mark.parametrize("name", sorted(MODULES))
def test_unknown_key_is_one_line_naming_it(name, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert MODULES[name].main(["colour=blue"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: config colour: unknown argument 'colour=blue'") and err.count("\n") == 1, err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["analyze", "train"])
def test_unknown_key_from_the_command_line_is_one_line(name, tmp_path):
    result = _cli(name, "colour=blue", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith("error: config colour: unknown argument"), result.stderr
    assert not any(tmp_path.iterdir())


def test_train_unknown_nested_key_names_it(tmp_path):
    result = _cli("train", "model.colour=1", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("error: config model.colour: unknown argument")
    assert "num_topics" in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_a_value_of_the_wrong_type_is_one_line_naming_its_key(tmp_path):
    result = _cli("train", "tiny=smoke", "train.overwrite=maybe", cwd=tmp_path)  # a word would read as true
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: config train.overwrite: Value 'maybe' is not a valid bool"), result.stderr
    assert not any(tmp_path.iterdir())


def test_list_valued_keys_keep_their_comma_form(tmp_path):
    result = _cli("project", "run_dir=R", "sets=CTCF:ctcf.fa,MAFK:mafk.fa", "chip=CTCF=x.bed",
                  "tf_per_block=A,B", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    printed = yaml.safe_load(result.stdout)
    assert printed["sets"] == "CTCF:ctcf.fa,MAFK:mafk.fa" and printed["chip"] == "CTCF=x.bed"
    assert printed["tf_per_block"] == "A,B"
    result = _cli("stability", "alphas=0.1,1", "hidden=[8,8]", "--cfg", "job", cwd=tmp_path)
    printed = yaml.safe_load(result.stdout)
    assert printed["alphas"] == "0.1,1" and printed["hidden"] == [8, 8]  # Hydra's list syntax works too


def test_a_sweep_without_multirun_is_one_line(capsys):
    assert analyze.main(["run_dir=a,b"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: config run_dir: ") and "-m" in err and err.count("\n") == 1, err


def test_help_is_hydras_with_the_usage_and_the_config(tmp_path):
    result = _cli("featurize", "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "python -m experiments.featurize input=PEAKS.fa" in result.stdout  # the module's docstring
    assert "shard_size: null" in result.stdout and "--cfg job" in result.stdout  # the config and Hydra's flags
    assert not any(tmp_path.iterdir())


def test_multirun_analyses_two_run_directories(tmp_path):
    from bindvae.features.kmers import Vocabulary
    from tests.analysis.test_report import PLANTED, _decoded_model, _save_run

    vocab = Vocabulary.gapped8()
    runs = [tmp_path / "run_a", tmp_path / "run_b"]
    for run in runs:
        _save_run(run, _decoded_model(vocab, PLANTED, num_topics=4), vocab)
    peaks = tmp_path / "peaks.fa"
    peaks.write_text("".join(f">p{i}\n{s * 4}\n" for i, s in enumerate(PLANTED * 3)))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    scratch = tmp_path / "scratch"
    result = _cli("analyze", "-m", f"run_dir={runs[0]},{runs[1]}", f"peaks={peaks}", "motif_db=none",
                  "n_15mers=1000", cwd=cwd, env={"TMPDIR": str(scratch)})
    assert result.returncode == 0, result.stderr[-3000:]
    for run in runs:
        assert (run / "analysis" / "report.html").is_file()
    assert result.stdout.count("Report: ") == 2
    assert not any(cwd.iterdir())  # Hydra's sweep folder goes to $TMPDIR, not the current directory
    assert list(scratch.glob("bindvae_multirun/analyze/*/multirun.yaml"))


@pytest.mark.parametrize("name", ["analyze", "compare"])
def test_a_failed_run_from_the_command_line_leaves_the_current_directory_empty(name, tmp_path):
    key = {"analyze": "run_dir", "compare": "runs"}[name]
    result = _cli(name, f"{key}={tmp_path / 'missing'},{tmp_path / 'other'}" if name == "compare"
                  else f"{key}={tmp_path / 'missing'}", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # Hydra ran the job: no outputs/, .hydra/, *.log


def test_demo_is_the_recovery_benchmarks_demo_preset_as_a_hydra_app(tmp_path, capsys, monkeypatch):
    from experiments import demo

    result = _cli("demo", "--cfg", "job", "run.train.steps=7", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    printed = yaml.safe_load(result.stdout)
    assert printed["out"] == "outputs/demo" and printed["name"] == "demo" and printed["n_top"] == 100  # the preset
    assert printed["data"]["n_peaks"] == 4000 and printed["run"]["train"]["steps"] == 7
    assert not any(tmp_path.iterdir())
    monkeypatch.chdir(tmp_path)
    assert demo.main(["run.train.colour=blue"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: config run.train.colour: unknown argument") and err.count("\n") == 1, err


def test_the_analysis_config_states_the_library_naming_defaults_and_passes_each_threshold_on():
    from bindvae.analysis.evidence import NamingRules
    from bindvae.analysis.pipeline import AnalysisOptions

    values = yaml.safe_load((REPO_ROOT / "conf" / "analyze.yaml").read_text())
    assert analyze._rules(values, NamingRules()) == NamingRules()
    defaults = AnalysisOptions()  # what the demo and the library use without the CLI
    assert (values["call_score"], values["call_ratio"]) == (defaults.call_score, defaults.call_ratio)
    rules = analyze._rules({**values, "site_max_p": 0.5, "min_site_ratio": 1.0, "min_fold": 3.0}, NamingRules())
    assert (rules.flags.site_max_p, rules.flags.min_site_ratio, rules.titles.min_fold) == (0.5, 1.0, 3.0)
