"""Turn peaks or sequences into a gapped 8-mer feature dataset (.npz).

    python -m experiments.featurize input=PEAKS.fa output=features.npz
    python -m experiments.featurize input=PEAKS.narrowPeak genome=GENOME.fa output=features.npz \
        [span=200] [top_n=N] [overwrite=true]

FASTA input is used as is; BED / narrowPeak input needs ``genome`` and takes ``span`` bp around each
summit. Sequences without a single valid 8 bp window are skipped and reported, as are peaks outside
the genome. The output holds the CSR counts, the sequence names and the vocabulary fingerprint
(read it back with ``bindvae.kmers.load_features``); it is written atomically and an existing file
is kept unless ``overwrite=true``. The last line on stdout is a one-line summary.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from bindvae.errors import BindVAEError, ConfigError, InputError
from bindvae.kmers import Vocabulary, featurize, save_features
from bindvae.sequences import SequenceSet, Skipped, read_sequences

logger = logging.getLogger("experiments.featurize")

KEYS = {"input", "output", "genome", "span", "top_n", "overwrite"}
CHUNK = 16_384  # sequences per featurize call: granularity of the progress bar
PROGRESS_MIN = 20_000  # show a progress bar from this many sequences on (and only on a terminal)
MAX_SKIP_LINES = 20
SKIP_SHORT = "shorter than 8 bp"
SKIP_NO_WINDOW = "no 8 bp window of A/C/G/T only"


def parse_args(argv: list[str]) -> dict:
    """key=value arguments -> settings dict; raises ConfigError for unknown keys or bad values."""
    args: dict = {"genome": None, "span": 200, "top_n": None, "overwrite": False}
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep or key not in KEYS:
            raise ConfigError(key, f"unknown argument {item!r}; use {', '.join(sorted(KEYS))} as key=value")
        args[key] = value
    for key in ("input", "output"):
        if not args.get(key):
            raise ConfigError(key, "required (key=value)")
    for key in ("span", "top_n"):
        if args[key] is not None:
            try:
                args[key] = int(args[key])
            except ValueError:
                raise ConfigError(key, f"must be a positive integer, got {args[key]!r}") from None
            if args[key] < 1:
                raise ConfigError(key, f"must be a positive integer, got {args[key]}")
    flag = str(args["overwrite"]).lower()
    if flag not in {"true", "false", "1", "0", "yes", "no"}:
        raise ConfigError("overwrite", f"must be true or false, got {args['overwrite']!r}")
    args["overwrite"] = flag in {"true", "1", "yes"}
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


def run(args: dict) -> str:
    """Reads, featurizes and writes; returns the summary line."""
    started = time.perf_counter()
    output = Path(args["output"])
    if output.is_dir():
        raise ConfigError("output", f"{output} is a folder; give a file name")
    if output.exists() and not args["overwrite"]:
        raise ConfigError("output", f"{output} exists; pass overwrite=true to replace it")
    records = read_sequences(args["input"], args["genome"], span=args["span"], top_n=args["top_n"])
    if records.duplicate_names:
        duplicates = records.duplicate_names
        logger.warning("%d names occur more than once, e.g. %s", len(duplicates), duplicates[0])
    vocab = Vocabulary.gapped8()
    X, names, empty = drop_empty_rows(records, featurize_with_progress(records.sequences, vocab))
    skipped = records.skipped + empty
    reasons = report_skips(skipped)
    n_in = len(records) + len(records.skipped)
    if not names:
        raise InputError(args["input"], f"nothing to featurize: all {n_in} records skipped ({reasons})")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        save_features(output, X, names, vocab)
    except OSError as err:
        raise InputError(output, f"cannot write the output ({err.strerror or err})") from None
    seconds = time.perf_counter() - started
    skip_text = f"{len(skipped)} skipped ({reasons})" if skipped else "0 skipped"
    return (
        f"featurize: {n_in} sequences in, {len(names)} featurized, {skip_text}, "
        f"{X.nnz} nonzeros, {seconds:.1f} s -> {output}"
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    try:
        summary = run(parse_args(sys.argv[1:] if argv is None else argv))
    except BindVAEError as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    sys.stdout.write(summary + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
