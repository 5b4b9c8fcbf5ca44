"""Turn peaks or sequences into a gapped 8-mer feature dataset (.npz).

    python -m experiments.featurize input=PEAKS.fa output=features.npz
    python -m experiments.featurize input=PEAKS.narrowPeak genome=GENOME.fa output=features.npz \
        [span=200] [top_n=N] [overwrite=true]

FASTA input is used as is; BED / narrowPeak input needs ``genome`` and takes ``span`` bp around each
summit. Sequences without a single valid 8 bp window are skipped and reported, as are peaks outside
the genome. The output holds the CSR counts, the sequence names and the vocabulary fingerprint
(read it back with ``bindvae.features.formats.load_features``); it is written atomically and an existing file
is kept unless ``overwrite=true``. The last line on stdout is a one-line summary.

Many inputs and data sets larger than memory::

    python -m experiments.featurize input=a.fa,b.fa,c.fa output=features_dir shard_size=100000 workers=3

``input`` takes a comma-separated list of files (all FASTA, or all peak files on one ``genome``).
``shard_size=N`` writes a sharded dataset instead of one .npz: a folder of CSR shards of at most N
sequences each plus ``index.json`` (see ``bindvae.features.shards``); train on it with ``data=shards``.
``workers=N`` featurizes N input files at a time in separate processes (each writes its own shards;
they are adopted in input order, so the result does not depend on ``workers``).

A Hydra application (every key and its default: ``conf/featurize.yaml``; ``--cfg job`` prints it).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from bindvae.errors import ConfigError, InputError
from bindvae.features.formats import save_features
from bindvae.features.kmers import Vocabulary, featurize
from bindvae.features.sequences import SequenceSet, Skipped, read_sequences
from bindvae.features.shards import ShardWriter, is_sharded, write_shard_file
from bindvae.io import check_writable_dir
from experiments._cli import App, items, text

logger = logging.getLogger("experiments.featurize")

CHUNK = 16_384  # sequences per featurize call: granularity of the progress bar
PROGRESS_MIN = 20_000  # show a progress bar from this many sequences on (and only on a terminal)
MAX_SKIP_LINES = 20
SKIP_SHORT = "shorter than 8 bp"
SKIP_NO_WINDOW = "no 8 bp window of A/C/G/T only"


def settings(values: dict) -> dict:
    """The composed config (conf/featurize.yaml) -> settings dict; raises ConfigError for a bad value."""
    args = dict(values)
    for key in ("input", "output"):
        if not items(args.get(key)):
            raise ConfigError(key, "required (key=value)")
    for key in ("span", "top_n", "shard_size", "workers"):
        if args[key] is not None:
            value = args[key]
            try:
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                args[key] = int(value)
            except (TypeError, ValueError):
                raise ConfigError(key, f"must be a positive integer, got {value!r}") from None
            if args[key] < 1:
                raise ConfigError(key, f"must be a positive integer, got {args[key]}")
    flag = str(args["overwrite"]).lower()
    if flag not in {"true", "false", "1", "0", "yes", "no"}:
        raise ConfigError("overwrite", f"must be true or false, got {args['overwrite']!r}")
    args["overwrite"] = flag in {"true", "1", "yes"}
    args["inputs"] = items(args["input"])
    args["input"] = ",".join(args["inputs"])
    args["output"] = str(args["output"])
    args["genome"] = text(args["genome"])
    return args


def featurize_with_progress(sequences: list[str], vocab: Vocabulary) -> sp.csr_matrix:
    """[n, n_kmers] counts, in chunks under a progress bar when the input is long."""
    if len(sequences) < PROGRESS_MIN:
        return featurize(sequences, vocab)
    parts = []
    with tqdm(total=len(sequences), unit="seq", desc="featurize", disable=None, file=sys.stderr) as bar:
        for start in range(0, len(sequences), CHUNK):
            parts.append(featurize(sequences[start : start + CHUNK], vocab))
            bar.update(len(parts[-1].indptr) - 1)
    return sp.vstack(parts, format="csr")


def drop_empty_rows(records: SequenceSet, X: sp.csr_matrix) -> tuple[sp.csr_matrix, list[str], list[Skipped]]:
    """Removes all-zero rows (nothing to learn from) and says why each one was empty."""
    empty = np.flatnonzero(np.diff(X.indptr) == 0)
    skipped = [
        Skipped(records.names[i], SKIP_SHORT if len(records.sequences[i]) < 8 else SKIP_NO_WINDOW, records.where(i))
        for i in empty
    ]
    keep = np.flatnonzero(np.diff(X.indptr) > 0)
    return X[keep], [records.names[i] for i in keep], skipped


def report_skips(skipped: list[Skipped]) -> str:
    """Logs the first skipped records with file:line; returns 'n reason, ...' for the summary."""
    for record in skipped[:MAX_SKIP_LINES]:
        logger.warning("skipped %s (%s): %s", record.name, record.where, record.reason)
    if len(skipped) > MAX_SKIP_LINES:
        logger.warning("... and %d more skipped records", len(skipped) - MAX_SKIP_LINES)
    counts: dict[str, int] = {}
    for record in skipped:
        counts[record.reason] = counts.get(record.reason, 0) + 1
    return ", ".join(f"{n} {reason}" for reason, n in counts.items())


@dataclasses.dataclass
class FileResult:
    """One input file featurized: rows kept (or the shard files holding them) and what was skipped."""

    X: sp.csr_matrix | None
    names: list[str]
    skipped: list[Skipped]
    n_in: int
    duplicates: list[str]
    shard_files: list[str]
    nnz: int


def featurize_file(path: str, args: dict, n_threads: int | None = None, shard_prefix: str | None = None) -> FileResult:
    """Read and featurize one input; with ``shard_prefix``, write its rows as shard files instead of returning them."""
    records = read_sequences(path, args["genome"], span=args["span"], top_n=args["top_n"])
    vocab = Vocabulary.gapped8()
    sequences = records.sequences
    counts = featurize(sequences, vocab, n_threads) if n_threads else featurize_with_progress(sequences, vocab)
    X, names, empty = drop_empty_rows(records, counts)
    result = FileResult(X, names, records.skipped + empty, len(records) + len(records.skipped),
                        records.duplicate_names, [], int(X.nnz))
    if shard_prefix is not None:
        size = args["shard_size"]
        for j, start in enumerate(range(0, len(names), size)):
            target = f"{shard_prefix}-{j:05d}.npz"
            write_shard_file(Path(target), X[start : start + size], names[start : start + size], vocab.fingerprint)
            result.shard_files.append(target)
        result.X = None
    return result


def _featurize_job(job: tuple) -> FileResult:
    path, args, n_threads, shard_prefix = job
    return featurize_file(path, args, n_threads, shard_prefix)


def featurize_files(args: dict, shard_dir: Path | None):
    """Yields a :class:`FileResult` per input in input order, ``args["workers"]`` files at a time."""
    inputs = args["inputs"]
    prefixes = [None if shard_dir is None else str(shard_dir / f".part-{i:05d}") for i in range(len(inputs))]
    workers = min(args["workers"], len(inputs))
    if workers <= 1:
        for path, prefix in zip(inputs, prefixes):
            yield featurize_file(path, args, None, prefix)
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    # spawn, not fork: the parent may hold numba/JAX threads that a forked child would inherit locked.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(_featurize_job, [(p, args, threads, prefix) for p, prefix in zip(inputs, prefixes)])


def _check_output(output: Path, args: dict) -> None:
    if args["shard_size"]:
        if output.exists() and not (output.is_dir() and is_sharded(output)):
            raise ConfigError("output", f"{output} exists and is not a sharded dataset; give a new folder name")
    elif output.is_dir():
        raise ConfigError("output", f"{output} is a folder; give a file name (or shard_size=N for a sharded dataset)")
    if output.exists() and not args["overwrite"]:
        raise ConfigError("output", f"{output} exists; pass overwrite=true to replace it")


def run(args: dict) -> str:
    """Reads, featurizes and writes; returns the summary line."""
    started = time.perf_counter()
    output = Path(args["output"])
    _check_output(output, args)
    vocab = Vocabulary.gapped8()
    check_writable_dir(output.parent, "output")  # before any reading or featurizing
    try:
        writer = (
            ShardWriter(output, vocab.fingerprint, len(vocab), args["shard_size"], True) if args["shard_size"] else None
        )
    except OSError as err:
        raise InputError(output, f"cannot write the output ({err.strerror or err})") from None
    parts, names, skipped, n_in, nnz = [], [], [], 0, 0
    try:
        for result in featurize_files(args, writer.partial if writer else None):
            if result.duplicates:
                logger.warning("%d names occur more than once, e.g. %s", len(result.duplicates), result.duplicates[0])
            for shard_file in result.shard_files:
                writer.add_shard_file(Path(shard_file))
            if result.X is not None:
                parts.append(result.X)
            names.extend(result.names)
            skipped.extend(result.skipped)
            n_in, nnz = n_in + result.n_in, nnz + result.nnz
        reasons = report_skips(skipped)
        if not names:
            raise InputError(args["input"], f"nothing to featurize: all {n_in} records skipped ({reasons})")
        if writer:
            index = writer.close()
            where = f"{output} ({index.n_shards} shards of <= {args['shard_size']} sequences)"
        else:
            save_features(output, sp.vstack(parts, format="csr") if len(parts) > 1 else parts[0], names, vocab)
            where = str(output)
    except OSError as err:
        raise InputError(output, f"cannot write the output ({err.strerror or err})") from None
    finally:
        if writer and writer.index is None:
            writer.abort()
    seconds = time.perf_counter() - started
    skip_text = f"{len(skipped)} skipped ({reasons})" if skipped else "0 skipped"
    return (
        f"featurize: {n_in} sequences in, {len(names)} featurized, {skip_text}, "
        f"{nnz} nonzeros, {seconds:.1f} s -> {where}"
    )


def _run_app(values: dict) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    sys.stdout.write(run(settings(values)) + "\n")
    return 0


APP = App("featurize", __doc__, _run_app, list_keys=("input",))


def main(argv: list[str] | None = None) -> int:
    """``python -m experiments.featurize`` (Hydra's command line) or ``main([...key=value])`` from a test."""
    return APP.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
