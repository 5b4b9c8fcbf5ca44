"""Every output appears whole or not at all: the atomic writer, a kill mid-write, and an audit of the writers."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys

import numpy as np
import pytest

from bindvae.errors import ConfigError, InputError
from bindvae.io import atomic_open, atomic_write, check_writable_dir, write_text_atomic
from bindvae.tracking import MetricsFile, read_metrics
from tests.conftest import REPO_ROOT


def test_atomic_write_replaces_whole_file_with_ordinary_permissions(tmp_path):
    path = tmp_path / "out.npz"
    path.write_bytes(b"old")
    seen_during_write = []

    def write(handle):
        handle.write(b"new-" * 1000)
        seen_during_write.append(path.read_bytes())  # a reader in the middle of the write

    atomic_write(path, write)
    assert seen_during_write == [b"old"] and path.read_bytes() == b"new-" * 1000
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "table.tsv"
    path.write_text("complete\n")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_open(path, "w") as handle:
            handle.write("half a tab")
            raise RuntimeError("disk full")
    assert path.read_text() == "complete\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.tsv"]
    with pytest.raises(OSError):
        write_text_atomic(tmp_path / "no_such_folder" / "x.txt", "text")
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(path, "a"):
            pass


def test_kill_9_during_a_write_never_leaves_half_a_file(tmp_path):
    path = tmp_path / "features.npz"
    path.write_bytes(b"previous complete file")
    script = (
        "import os, signal\n"
        "from bindvae.io import atomic_write\n"
        "def write(handle):\n"
        "    handle.write(b'x' * 100000)\n"
        "    handle.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        f"atomic_write({str(path)!r}, write)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == -9
    assert path.read_bytes() == b"previous complete file"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "features.npz"]
    assert all(name.startswith(".features.npz.") and name.endswith(".tmp") for name in leftovers), leftovers


def test_figure_and_feature_writers_are_atomic(tmp_path):
    from matplotlib.figure import Figure

    from bindvae import plotting
    from bindvae.features.formats import save_features
    from bindvae.features.kmers import Vocabulary, featurize

    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    plotting.save_figure(fig, tmp_path / "fig.png")
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    class Broken(Figure):
        def savefig(self, *args, **kwargs):
            args[0].write(b"\x89PNG partial")
            raise OSError("no space left on device")

    with pytest.raises(OSError):
        plotting.save_figure(Broken(), tmp_path / "fig.png")
    assert (tmp_path / "fig.png").stat().st_size > 100  # the earlier, complete figure

    vocab = Vocabulary.gapped8()
    with pytest.raises(ValueError):  # shapes disagree: refused before anything is written
        save_features(tmp_path / "f.npz", featurize(["ACGTACGTAA"], vocab), ["a", "b"], vocab)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]


def test_check_writable_dir_names_the_key(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"^config output_dir: cannot write to .*file/sub"):
        check_writable_dir(tmp_path / "file" / "sub", "output_dir")
    assert check_writable_dir(tmp_path / "a" / "b", "x").is_dir()
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == []


def test_metrics_log_survives_a_torn_last_line(tmp_path):
    metrics = MetricsFile(tmp_path)
    metrics.write(10, {"loss": 1.5})
    metrics.write(20, {"loss": np.float32(1.25), "elbo": float("nan")})
    with open(metrics.path, "a", encoding="utf-8") as handle:
        handle.write('{"step": 30, "lo')  # what a kill during an append leaves
    assert read_metrics(tmp_path) == [{"step": 10, "loss": 1.5}, {"step": 20, "loss": 1.25, "elbo": None}]
    metrics.truncate_after(20)
    assert metrics.path.read_text().count("\n") == 2 and read_metrics(tmp_path)[-1]["step"] == 20
    metrics.path.write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(InputError, match=r"metrics\.jsonl:2: not a JSON metrics line"):
        read_metrics(tmp_path)


# Writes that bypass bindvae.io. Each pattern names a call that writes a file by path; calls that
# write into a handle from atomic_write (np.savez(handle, ...), fig.savefig(handle, ...)) or
# render text (frame.to_csv(sep=...)) do not match.
RAW_WRITERS = {
    "open() for writing": re.compile(r"\bopen\([^)]*['\"](?:w|wb|a|ab|x|xb|w\+|wb\+)['\"]"),
    "Path.write_text/bytes": re.compile(r"\.write_(?:text|bytes)\("),
    "np.save/savez to a path": re.compile(r"\bnp\.save[z]?(?:_compressed)?\((?!\s*(?:handle|buffer|fh|f)\b)"),
    "savefig to a path": re.compile(r"\.savefig\((?!\s*(?:handle|buffer|fh|f)\b)"),
    "to_csv/to_json/to_parquet to a path": re.compile(r"\.to_(?:csv|json|parquet|html)\((?!\s*\)|\s*\w+\s*=)"),
}
# Deliberate exceptions, each with its reason.
ALLOWED = {
    ("bindvae/tracking.py", "open() for writing"): "metrics.jsonl is an append-only log; a torn last line is skipped",
    ("bindvae/features/shards.py", "open() for writing"): "each shard goes to a temporary name, renamed when complete",
    (
        "bindvae/features/shards.py",
        "Path.write_text/bytes",
    ): "the index is written inside the partial folder, renamed whole",
}


def test_every_writer_goes_through_the_atomic_helper():
    offenders = []
    for folder in ("bindvae", "experiments"):
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            rel = path.relative_to(REPO_ROOT).as_posix()
            if rel == "bindvae/io.py":
                continue
            for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                code = line.split("#", 1)[0]
                if "/proc/self/" in code:  # a kernel control file, not an output
                    continue
                for name, pattern in RAW_WRITERS.items():
                    if pattern.search(code) and (rel, name) not in ALLOWED:
                        offenders.append(f"{rel}:{line_no}: {name}: {line.strip()}")
    assert not offenders, "write through bindvae.io instead:\n" + "\n".join(offenders)
