"""python -m experiments.featurize: outputs, summary, skips and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from bindvae.features.formats import load_features
from bindvae.features.kmers import Vocabulary, featurize
from experiments.featurize import main
from tests.conftest import REPO_ROOT


def random_dna(rng: np.random.Generator, n: int) -> str:
    return "".join(rng.choice(list("ACGT"), size=n))


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, pattern: str) -> None:
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert pattern in lines[0], lines[0]


def test_fasta_to_features(tmp_path, capsys, caplog):
    rng = np.random.default_rng(0)
    seqs = {"a": random_dna(rng, 200), "short": "ACGT", "b": random_dna(rng, 57), "masked": "NNNNNNNNNNNN"}
    (tmp_path / "in.fa").write_text("".join(f">{k}\n{v}\n" for k, v in seqs.items()))
    out = tmp_path / "sub" / "features.npz"
    code, stdout, _ = run_cli(capsys, f"input={tmp_path / 'in.fa'}", f"output={out}")
    assert code == 0
    X, names, fingerprint = load_features(out, Vocabulary.gapped8())
    assert names == ["a", "b"] and fingerprint == Vocabulary.gapped8().fingerprint
    assert (X != featurize([seqs["a"], seqs["b"]])).nnz == 0
    assert stdout.count("\n") == 1
    assert stdout.startswith(
        f"featurize: 4 sequences in, 2 featurized, 2 skipped (1 shorter than 8 bp, "
        f"1 no 8 bp window of A/C/G/T only), {X.nnz} nonzeros, "
    )
    assert "in.fa:3): shorter than 8 bp" in caplog.text and "in.fa:7): no 8 bp window" in caplog.text
    assert sorted(p.name for p in out.parent.iterdir()) == ["features.npz"]


def test_existing_output_is_kept_unless_overwrite(tmp_path, capsys):
    (tmp_path / "in.fa").write_text(">a\nACGTACGTACGTAAAC\n")
    out = tmp_path / "features.npz"
    out.write_bytes(b"precious")
    code, _, err = run_cli(capsys, f"input={tmp_path / 'in.fa'}", f"output={out}")
    assert_one_line_error(code, err, "exists; pass overwrite=true")
    assert out.read_bytes() == b"precious"
    code, _, _ = run_cli(capsys, f"input={tmp_path / 'in.fa'}", f"output={out}", "overwrite=true")
    assert code == 0 and load_features(out)[1] == ["a"]


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (None, "in.fa: no such file"),
        (b"", "in.fa: empty file"),
        (b"chr1\t1\t2\n", "in.fa:1: looks like BED/narrowPeak, not FASTA: give genome="),
        (b"hello world\n", "in.fa:1: not FASTA"),
        (b">a\nACG\n>b\nNNNNNNNNNN\n", "in.fa: nothing to featurize: all 2 records skipped (1 shorter than 8 bp"),
    ],
)
def test_bad_input_gives_one_line_and_no_output(tmp_path, capsys, content, pattern):
    if content is not None:
        (tmp_path / "in.fa").write_bytes(content)
    out = tmp_path / "out" / "features.npz"
    code, stdout, err = run_cli(capsys, f"input={tmp_path / 'in.fa'}", f"output={out}")
    assert_one_line_error(code, err, pattern)
    assert stdout == "" and not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["output=x.npz"], "config input: required"),
        (["input=a.fa", "output=x.npz", "span=0"], "config span: must be a positive integer"),
        (["input=a.fa", "output=x.npz", "top_n=ten"], "config top_n: must be a positive integer"),
        (["input=a.fa", "output=x.npz", "spam=1"], "config spam: unknown argument"),
        (["input=a.fa", "output=x.npz", "overwrite=maybe"], "config overwrite: must be true or false"),
    ],
)
def test_bad_arguments(capsys, args, pattern):
    code, _, err = run_cli(capsys, *args)
    assert_one_line_error(code, err, pattern)


def test_narrowpeak_and_genome(tmp_path, capsys, caplog):
    rng = np.random.default_rng(5)
    chrom = random_dna(rng, 2000)
    (tmp_path / "genome.fa").write_text(">chr7\n" + "".join(chrom[i : i + 70] + "\n" for i in range(0, 2000, 70)))
    rows = [
        "chr7\t100\t700\tpeakA\t20\t.\t5.0\t3.0\t2.0\t300",  # summit 400
        "chr7\t1800\t2000\tpeakB\t90\t.\t5.0\t3.0\t2.0\t150",  # summit 1950: past the end
        "chrM\t10\t500\tpeakC\t50\t.\t5.0\t3.0\t2.0\t-1",
        "chr7\t900\t1100\tpeakD\t40\t.\t5.0\t3.0\t2.0\t-1",  # centre 1000
    ]
    (tmp_path / "p.narrowPeak").write_text("\n".join(rows) + "\n")
    out = tmp_path / "f.npz"
    code, stdout, _ = run_cli(
        capsys, f"input={tmp_path / 'p.narrowPeak'}", f"genome={tmp_path / 'genome.fa'}", f"output={out}", "top_n=5"
    )
    assert code == 0
    X, names, _ = load_features(out)
    assert names == ["peakA", "peakD"]
    assert (X != featurize([chrom[300:500], chrom[900:1100]])).nnz == 0
    assert "4 sequences in, 2 featurized, 2 skipped (1 window past the chromosome end, " in stdout
    assert "peakB (" in caplog.text and "p.narrowPeak:2): window past the chromosome end" in caplog.text
    assert "p.narrowPeak:3): chromosome not in the genome" in caplog.text


def test_module_entry_point_one_line_error(tmp_path):
    """The real `python -m` path: exit code, a single stderr line, no traceback, no output."""
    out = tmp_path / "x.npz"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "experiments.featurize", f"input={tmp_path / 'missing.fa'}", f"output={out}"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'missing.fa'}: no such file"]
    assert not out.exists()
