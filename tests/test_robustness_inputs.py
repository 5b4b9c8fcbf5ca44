"""Broken inputs of every kind give one named error (file and line) or a counted skip, never a traceback."""

from __future__ import annotations

import gzip
import io
import os
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bindvae.config import DataConfig
from bindvae.data import datasets as data_lib
from bindvae.errors import InputError
from bindvae.features.formats import (
    load_features,
    read_reference_features,
    read_reference_vocabulary,
    save_features,
    write_reference_vocabulary,
)
from bindvae.features.kmers import Vocabulary, featurize
from bindvae.features.sequences import read_fasta, read_peaks
from tests.conftest import REPO_ROOT

# Bytes that are no text format at all: a PNG header, NULs and high bytes.
BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\xff\xfe\xfd" + bytes(range(256))


@pytest.fixture(scope="module")
def vocab():
    return Vocabulary.gapped8()


def random_dna(rng, n):
    return "".join(rng.choice(list("ACGT"), size=n))


def cli(module: str, *args, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=180)


def assert_one_line_error(result: subprocess.CompletedProcess, *patterns: str) -> str:
    """Non-zero exit, no traceback, and the error is one line (after any skip warnings) naming the patterns."""
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and result.stderr.strip().splitlines()[-1] == errors[0], result.stderr
    for pattern in patterns:
        assert pattern in errors[0], (pattern, errors[0])
    return errors[0]


# --- FASTA ---------------------------------------------------------------------------------------


def test_fasta_truncated_gzip_names_file_and_line(tmp_path):
    rng = np.random.default_rng(1)
    text = "".join(f">s{i}\n{random_dna(rng, 120)}\n" for i in range(400)).encode()
    packed = gzip.compress(text)
    path = tmp_path / "peaks.fa.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(InputError, match=r"peaks\.fa\.gz:\d+: truncated or corrupt gzip") as err:
        read_fasta(path)
    assert err.value.line is not None and err.value.line > 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (BINARY, "not FASTA"),
        (b"\x1f\x8b" + BINARY, "truncated or corrupt gzip"),  # gzip magic, garbage body
        (b"ACGTACGT\n>a\nACGT\n", "not FASTA: expected a '>' header line"),
        (b">\nACGTACGT\n", "FASTA header without a name"),
        (b"\n\n  \n", "empty file"),
    ],
)
def test_fasta_malformed_files_are_named(tmp_path, content, message):
    path = tmp_path / "in.fa"
    path.write_bytes(content)
    with pytest.raises(InputError, match=re.escape(message)) as err:
        read_fasta(path)
    assert str(err.value).startswith(str(path))


def test_fasta_iupac_lowercase_crlf_and_duplicates_count_like_clean_input(tmp_path, vocab):
    rng = np.random.default_rng(2)
    left, right = random_dna(rng, 40), random_dna(rng, 33)
    crlf = f">x desc\r\n{left.lower()}R{right}\r\n>x\r\n{left}\r\n".encode()
    plain = f">x desc\n{left}R{right}\n>x\n{left}\n".encode()
    (tmp_path / "crlf.fa").write_bytes(crlf)
    (tmp_path / "plain.fa").write_bytes(plain)
    a, b = read_fasta(tmp_path / "crlf.fa"), read_fasta(tmp_path / "plain.fa")
    assert a.names == b.names == ["x", "x"] and a.duplicate_names == ["x"]
    Xa, Xb = featurize(a.sequences, vocab), featurize(b.sequences, vocab)
    assert (Xa != Xb).nnz == 0
    # A window with an IUPAC code is not counted: the sequence counts as its two clean halves.
    halves = featurize([left, right], vocab)
    assert (Xa[0] != (halves[0] + halves[1])).nnz == 0
    assert (Xa[1] != featurize([left], vocab)).nnz == 0


def test_featurize_cli_duplicate_names_kept_and_reported(tmp_path):
    rng = np.random.default_rng(3)
    (tmp_path / "in.fa").write_text(f">a\n{random_dna(rng, 50)}\n>a\n{random_dna(rng, 50)}\n")
    result = cli("experiments.featurize", f"input={tmp_path / 'in.fa'}", f"output={tmp_path / 'o.npz'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "names occur more than once" in result.stderr and "Traceback" not in result.stderr
    assert load_features(tmp_path / "o.npz")[1] == ["a", "a"]


@pytest.mark.parametrize(
    ("name", "content", "patterns"),
    [
        ("bin.fa", BINARY, ["bin.fa:1: not FASTA"]),
        ("half.fa.gz", None, ["half.fa.gz:", "truncated or corrupt gzip"]),
        ("allbad.fa", b">a\nNNNNNNNNNNNN\n>b\nACG\n", ["allbad.fa: nothing to featurize: all 2 records skipped"]),
    ],
)
def test_featurize_cli_bad_input_one_line_no_output(tmp_path, name, content, patterns):
    if content is None:
        packed = gzip.compress(b"".join(b">s%d\n%s\n" % (i, b"ACGTTGCA" * 30) for i in range(500)))
        content = packed[: len(packed) // 2]
    (tmp_path / name).write_bytes(content)
    out = tmp_path / "out.npz"
    result = cli("experiments.featurize", f"input={tmp_path / name}", f"output={out}", cwd=tmp_path)
    assert_one_line_error(result, *patterns)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


# --- BED / narrowPeak + genome ---------------------------------------------------------------


@pytest.fixture()
def genome(tmp_path):
    rng = np.random.default_rng(4)
    seq = random_dna(rng, 900)
    path = tmp_path / "g.fa"
    path.write_text(">chr1\n" + "".join(seq[i : i + 60] + "\n" for i in range(0, 900, 60)))
    return path, seq


@pytest.mark.parametrize(
    ("content", "message", "line"),
    [
        (b"chr1\t100\n", "at least 3 tab-separated columns", 1),
        (b"# header\r\nchr1\t10\t300\r\nchr1\tten\t300\r\n", "integer start and end", 3),
        (b"track name=x\nchr1\t300\t100\n", "bad interval", 2),
        (b"chr1\t10\t300\tp\tNaNscore\n", "column 5 (score) is not a number", 1),
        (b"chr1\t10\t300\tp\t5\nchr1\t10\t300\tq\tnan\n", "column 5 (score) is not a finite number", 2),
        (b"chr1\t10\t300\tp\t5\t.\t1\t1\t1\tmid\n", "column 10 (summit offset)", 1),
        (BINARY, "not BED", 1),
        (b"", "empty file: no peaks", None),
    ],
)
def test_bed_malformed_lines_are_named(tmp_path, genome, content, message, line):
    path = tmp_path / "p.bed"
    path.write_bytes(content)
    with pytest.raises(InputError, match=re.escape(message)) as err:
        read_peaks(path, genome[0], span=100)
    assert err.value.path == str(path) and err.value.line == line


def test_bed_crlf_and_gzip_read_like_plain(tmp_path, genome):
    rows = "chr1\t100\t300\tpA\t5\nchr1\t400\t700\tpB\t9\nchrX\t1\t200\tpC\t1\n"
    (tmp_path / "a.bed").write_text(rows)
    (tmp_path / "b.bed.gz").write_bytes(gzip.compress(rows.replace("\n", "\r\n").encode()))
    a, b = read_peaks(tmp_path / "a.bed", genome[0], span=100), read_peaks(tmp_path / "b.bed.gz", genome[0], span=100)
    assert a.names == b.names == ["pA", "pB"] and a.sequences == b.sequences
    assert a.sequences[0] == genome[1][150:250]
    assert [s.reason for s in b.skipped] == ["chromosome not in the genome"] and b.skipped[0].where.endswith(":3")


def test_bed_truncated_gzip_and_bad_genome(tmp_path, genome):
    packed = gzip.compress(b"".join(b"chr1\t%d\t%d\n" % (i, i + 200) for i in range(0, 600, 3)))
    (tmp_path / "half.bed.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(InputError, match=r"half\.bed\.gz:\d+: truncated or corrupt gzip"):
        read_peaks(tmp_path / "half.bed.gz", genome[0])
    (tmp_path / "p.bed").write_text("chr1\t100\t300\n")
    (tmp_path / "bin.fa").write_bytes(BINARY)
    with pytest.raises(InputError, match=r"bin\.fa: "):
        read_peaks(tmp_path / "p.bed", tmp_path / "bin.fa")
    with pytest.raises(InputError, match="no such file"):
        read_peaks(tmp_path / "p.bed", tmp_path / "missing.fa")


def test_featurize_cli_bed_without_usable_peak_exits_nonzero(tmp_path, genome):
    (tmp_path / "p.bed").write_text("chrZ\t100\t300\nchr1\t880\t900\n")
    result = cli("experiments.featurize", f"input={tmp_path / 'p.bed'}", f"genome={genome[0]}",
                 f"output={tmp_path / 'o.npz'}", cwd=tmp_path)
    assert_one_line_error(result, "p.bed: no usable peak", "1 chromosome not in the genome", "1 window past")
    assert not (tmp_path / "o.npz").exists()


# --- feature datasets (.npz) -----------------------------------------------------------------


@pytest.fixture(scope="module")
def features_bytes(vocab, tmp_path_factory):
    path = tmp_path_factory.mktemp("npz") / "f.npz"
    rng = np.random.default_rng(5)
    save_features(
        path, featurize([random_dna(rng, 200) for _ in range(30)], vocab), [f"s{i}" for i in range(30)], vocab
    )
    return path.read_bytes()


def _npz_without(arrays: dict, drop: str) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{k: v for k, v in arrays.items() if k != drop})
    return buffer.getvalue()


@pytest.mark.parametrize("case", ["empty", "half", "binary", "missing_array", "zip_not_npy", "bad_indices"])
def test_npz_broken_files_are_named(tmp_path, features_bytes, case):
    arrays = dict(np.load(io.BytesIO(features_bytes)))
    if case == "empty":
        content = b""
    elif case == "half":
        content = features_bytes[: len(features_bytes) // 2]
    elif case == "binary":
        content = BINARY
    elif case == "missing_array":
        content = _npz_without(arrays, "indices")
    elif case == "zip_not_npy":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("format.npy", b"not an array")
        content = buffer.getvalue()
    else:
        arrays["indices"] = arrays["indices"] + 10**6
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        content = buffer.getvalue()
    path = tmp_path / "f.npz"
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        load_features(path)
    assert err.value.path == str(path)
    with pytest.raises(InputError):  # the training data loader says the same
        data_lib.load_dataset(DataConfig(source="npz", path=str(path)))


def test_npz_vocabulary_mismatch_is_refused(tmp_path, features_bytes, vocab):
    arrays = dict(np.load(io.BytesIO(features_bytes)))
    arrays["fingerprint"] = np.array("f" * 64)
    np.savez(tmp_path / "other.npz", **arrays)
    with pytest.raises(InputError, match=r"other\.npz: made with vocabulary ffffffffffff"):
        load_features(tmp_path / "other.npz", vocab)


# --- reference vocabulary and feature files ---------------------------------------------------


@pytest.fixture(scope="module")
def own_reference_vocabulary(vocab, tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "vocab.npy"
    write_reference_vocabulary(path, vocab)
    return path


@pytest.mark.parametrize(
    ("line", "message"),
    [("12 0 5", "id 0 is not a k-mer"), ("3 112801", "id 112801 is not a k-mer"), ("4 -7", "id -7 is not a k-mer"),
     ("1 2 x3", "expected space-separated integer ids"), ("1 2.5", "expected space-separated integer ids")],
)
def test_reference_features_bad_ids_name_file_and_line(tmp_path, vocab, own_reference_vocabulary, line, message):
    path = tmp_path / "train.txt"
    path.write_bytes(b"1 2 3\r\n10 10 11\r\n" + line.encode() + b"\r\n4 5\r\n")
    with pytest.raises(InputError, match=re.escape(message)) as err:
        read_reference_features(path, own_reference_vocabulary, vocab)
    assert err.value.path == str(path) and err.value.line == 3


def test_reference_features_crlf_and_repeats(tmp_path, vocab, own_reference_vocabulary):
    path = tmp_path / "train.txt"
    path.write_bytes(b"1 2 2 3\r\n112800\r\n")
    X = read_reference_features(path, own_reference_vocabulary, vocab)
    assert X.shape == (2, len(vocab)) and X[0, 1] == 2 and X[1, len(vocab) - 1] == 1 and X.sum() == 5


@pytest.mark.parametrize("content", [b"", BINARY, None])
def test_reference_vocabulary_unreadable(tmp_path, content):
    path = tmp_path / "vocab.npy"
    if content is None:
        np.save(path, np.arange(5))  # a valid .npy that is not a dict
    else:
        path.write_bytes(content)
    with pytest.raises(InputError, match=r"vocab\.npy: not a reference vocabulary"):
        read_reference_vocabulary(path)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [({"EMPTY": 0, "AAAAAAAA": -1}, "id of 'AAAAAAAA' is -1"), ({"EMPTY": 0, "AAAAAAAA": "7"}, "is '7'"),
     ({"EMPTY": 0, "AAAAAAAA": 10**12}, "not a non-negative integer"), ({"EMPTY": 0, "AAAAAAAA": 0}, "share an id")],
)
def test_reference_vocabulary_with_bad_ids(tmp_path, mapping, message):
    path = tmp_path / "vocab.npy"
    np.save(path, np.array(mapping, dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match=re.escape(message)):
        read_reference_vocabulary(path)


def test_reference_empty_features_leave_nothing_to_train(tmp_path, own_reference_vocabulary):
    (tmp_path / "empty.txt").write_bytes(b"")
    config = DataConfig(
        source="reference", features=str(tmp_path / "empty.txt"), vocabulary=str(own_reference_vocabulary)
    )
    with pytest.raises(InputError, match="empty.txt: no sequences to train on"):
        data_lib.load_dataset(config)


def test_train_cli_reference_id_out_of_range(tmp_path, own_reference_vocabulary):
    (tmp_path / "train.txt").write_text("1 2 3\n5 999999\n")
    result = cli("experiments.train", "data=reference", f"data.features={tmp_path / 'train.txt'}",
                 f"data.vocabulary={own_reference_vocabulary}", "tiny=smoke", "logger=none",
                 f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert_one_line_error(result, "train.txt:2: id 999999 is not a k-mer of the reference vocabulary")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_train_cli_fasta_without_usable_sequence(tmp_path):
    (tmp_path / "in.fa").write_text(">a\nNNNNNNNNNNNNNN\n>b\nACGTRYACG\n")
    result = cli("experiments.train", "data=fasta", f"data.path={tmp_path / 'in.fa'}", "tiny=smoke", "logger=none",
                 f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert_one_line_error(result, "in.fa")
    assert not (tmp_path / "run" / "checkpoints").exists()


# --- features vs checkpoint vocabulary --------------------------------------------------------


@pytest.fixture()
def saved_run(tmp_path, vocab):
    from tests.helpers.analysis import random_model
    from tests.test_infer import _save

    _save(tmp_path / "run", random_model(vocab, num_topics=3, hidden_sizes=(4,)), vocab.fingerprint)
    return tmp_path / "run"


def test_analyze_unwritable_output_is_one_line(saved_run, capsys, monkeypatch):
    from bindvae.analysis import topics
    from experiments.analyze import main

    monkeypatch.setattr(topics, "topic_kmer_table", lambda *a, **k: pytest.fail("computed before the output check"))
    (saved_run / "analysis").write_text("a file where the analysis folder goes")
    code = main([f"run_dir={saved_run}", "motif_db=none"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and err[0].startswith("error: config run_dir: cannot write to "), err


def test_analyze_refuses_features_of_another_vocabulary_before_computing(tmp_path, saved_run, features_bytes,
                                                                         monkeypatch, capsys):
    from bindvae.analysis import topics
    from experiments.analyze import main

    arrays = dict(np.load(io.BytesIO(features_bytes)))
    arrays["fingerprint"] = np.array("e" * 64)
    np.savez(tmp_path / "peaks.npz", **arrays)

    def not_reached(*args, **kwargs):
        raise AssertionError("analysis computed topic motifs before checking the peaks' vocabulary")

    monkeypatch.setattr(topics, "topic_motifs", not_reached)
    code = main([f"run_dir={tmp_path / 'run'}", f"peaks={tmp_path / 'peaks.npz'}", "motif_db=none"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1, err
    assert err[0].startswith(f"error: {tmp_path / 'peaks.npz'}: ") and "eeeeeeeeeeee" in err[0]
    assert not (tmp_path / "run" / "analysis" / "report.html").exists()


# --- fuzzing ---------------------------------------------------------------------------------

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
fasta_like = st.lists(
    st.one_of(
        st.just(">"), st.just(">seq 1"), st.just("\r"), st.just("\n"), st.just(" "), st.just("\t"),
        st.text(alphabet="ACGTNacgtnRYKM-*.>", max_size=30), st.binary(max_size=12).map(lambda b: b.decode("latin-1")),
    ),
    max_size=25,
).map("".join)


@FUZZ
@given(text=fasta_like, compress=st.booleans(), cut=st.integers(0, 400))
def test_fuzz_read_fasta_then_featurize(tmp_path, vocab, text, compress, cut):
    raw = text.encode("latin-1")
    if compress:
        raw = gzip.compress(raw)
        raw = raw[: max(2, len(raw) - cut % max(len(raw), 1))]
    path = tmp_path / "fuzz.fa"
    path.write_bytes(raw)
    try:
        records = read_fasta(path)
    except InputError as err:
        assert str(err).startswith(str(path))
        return
    X = featurize(records.sequences, vocab)
    assert X.shape == (len(records), len(vocab)) and len(records.names) == len(records.lines) == len(records)
    assert X.nnz == 0 or (X.data.min() >= 1 and X.data.max() <= 16 * max(len(s) for s in records.sequences))


bed_field = st.one_of(st.just("chr1"), st.just("chrM"), st.integers(-50, 1200).map(str), st.just("-1"),
                      st.just("."), st.text(alphabet="abc.5e-", max_size=4), st.just(""))
bed_like = st.lists(
    st.one_of(st.lists(bed_field, min_size=0, max_size=11).map("\t".join), st.just("# comment"), st.just("track x"),
              st.binary(max_size=8).map(lambda b: b.decode("latin-1"))),
    max_size=8,
).map(lambda lines: "\n".join(lines))


@FUZZ
@given(text=bed_like, span=st.integers(1, 300), top_n=st.one_of(st.none(), st.integers(1, 3)))
def test_fuzz_read_peaks(tmp_path, genome, text, span, top_n):
    path = tmp_path / "fuzz.bed"
    path.write_bytes(text.encode("latin-1"))
    try:
        records = read_peaks(path, genome[0], span=span, top_n=top_n)
    except InputError as err:
        assert str(err).startswith(str(path))
        return
    assert len(records) >= 1 and all(len(s) == span for s in records.sequences)


@settings(max_examples=80, deadline=None)
@given(seqs=st.lists(st.text(max_size=40), max_size=6))
def test_fuzz_featurize_any_text(vocab, seqs):
    X = featurize(seqs, vocab)
    assert X.shape == (len(seqs), len(vocab))
    clean = ["".join(c if c in "ACGTacgt" else "N" for c in s) for s in seqs]
    assert (X != featurize(clean, vocab)).nnz == 0  # any non-ACGT letter acts as a break


@pytest.fixture(scope="module")
def small_reference_vocabulary(vocab, tmp_path_factory):
    """Ten k-mers with ids 1..10 (ids above 10 are out of range), shuffled against our order."""
    path = tmp_path_factory.mktemp("small") / "vocab.npy"
    mapping = {"EMPTY": 0, **{vocab.kmers[j * 997]: 10 - j for j in range(10)}}
    np.save(path, np.array(mapping, dtype=object), allow_pickle=True)
    return path


@FUZZ
@given(lines=st.lists(st.text(alphabet="0123456789 -x.\r\t", max_size=20), max_size=6))
def test_fuzz_reference_features(tmp_path, vocab, small_reference_vocabulary, lines):
    path = tmp_path / "fuzz.txt"
    path.write_text("\n".join(lines))
    try:
        X = read_reference_features(path, small_reference_vocabulary, vocab)
    except InputError as err:
        assert err.path == str(path) and err.line is not None
        return
    assert sp.issparse(X) and X.shape == (len("\n".join(lines).splitlines()), len(vocab))
    assert set(X.indices.tolist()) <= {j * 997 for j in range(10)}


def test_featurize_unwritable_output_refused_before_reading(tmp_path, capsys, monkeypatch):
    from experiments import featurize as featurize_cli

    def not_reached(*args, **kwargs):
        raise AssertionError("input was read before the output folder was checked")

    monkeypatch.setattr(featurize_cli, "read_sequences", not_reached)
    (tmp_path / "in.fa").write_text(">a\nACGTACGTAAAC\n")
    (tmp_path / "a_file").write_text("")
    code = featurize_cli.main([f"input={tmp_path / 'in.fa'}", f"output={tmp_path / 'a_file' / 'out.npz'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and err[0].startswith("error: config output: cannot write to "), err
