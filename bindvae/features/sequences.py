"""Sequence input: FASTA files, and BED / narrowPeak peaks cut out of a genome FASTA.

Readers return a :class:`SequenceSet`: names, sequences, the line each came from, and the records
that were skipped with the reason, so that callers can report every skip instead of dropping it.
Letters are kept as they are (IUPAC codes, lowercase soft-masking): the featurizer skips windows
with a letter other than ACGT. Plain and gzip-compressed files are both accepted.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import gzip
import io
import logging
import math
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

from bindvae.errors import InputError

logger = logging.getLogger(__name__)

_GZIP_MAGIC = b"\x1f\x8b"
_BED_HEADER_PREFIXES = ("#", "track", "browser")
SKIP_CHROM_ABSENT = "chromosome not in the genome"
SKIP_PAST_END = "window past the chromosome end"
SKIP_BEFORE_START = "window before the chromosome start"


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A record left out, and why.

    Attributes:
        name: the record's name.
        reason: a short phrase, shared by all records skipped for the same cause.
        where: ``path:line`` of the record.
    """

    name: str
    reason: str
    where: str


@dataclasses.dataclass
class SequenceSet:
    """Sequences read from one input file.

    Attributes:
        path: the input file.
        names: one name per sequence (duplicates allowed, see ``duplicate_names``).
        sequences: the sequences, letters as in the file.
        lines: 1-based line of each record in ``path`` (FASTA header or BED line).
        skipped: records left out, with reasons.
    """

    path: str
    names: list[str]
    sequences: list[str]
    lines: list[int]
    skipped: list[Skipped] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def duplicate_names(self) -> list[str]:
        """Names given to more than one sequence, in first-seen order."""
        counts = collections.Counter(self.names)
        return [name for name, n in counts.items() if n > 1]

    def where(self, i: int) -> str:
        """``path:line`` of sequence ``i``."""
        return f"{self.path}:{self.lines[i]}"

    def skip_counts(self) -> dict[str, int]:
        """Number of skipped records per reason."""
        return dict(collections.Counter(s.reason for s in self.skipped))


@contextlib.contextmanager
def _open_text(path: str | os.PathLike) -> Iterator[io.TextIOBase]:
    """Opens a plain or gzip text file; latin-1 so that any byte reads as one letter."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
    handle = gzip.open(path, "rt", encoding="latin-1") if compressed else open(path, encoding="latin-1")
    with handle:
        yield handle


def _lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its end-of-line) of a text file, Windows endings too."""
    line_no = 0
    with _open_text(path) as handle:
        try:
            for line_no, line in enumerate(handle, start=1):  # noqa: B007 (used after the loop)
                yield line_no, line.rstrip("\r\n")
        except (EOFError, OSError, zlib.error) as err:
            raise InputError(path, f"truncated or corrupt gzip file ({err})", line_no + 1) from None


def read_fasta(path: str | os.PathLike) -> SequenceSet:
    """Reads a FASTA file (plain or gzip).

    A record's name is the first word of its header. Sequence lines are joined with surrounding
    whitespace removed; letters are kept as they are. Duplicate names are kept (see
    :attr:`SequenceSet.duplicate_names`).

    Args:
        path: the FASTA file.

    Returns:
        The sequences, one per record, with the line of each header.

    Raises:
        InputError: the file is missing or empty, does not start with a ``>`` header, has a
            header without a name, or is a truncated gzip file (names the file and line).
    """
    names, lines, chunks = [], [], []
    for line_no, line in _lines(path):
        if line.startswith(">"):
            name = line[1:].split(maxsplit=1)
            if not name:
                raise InputError(path, "FASTA header without a name", line_no)
            names.append(name[0])
            lines.append(line_no)
            chunks.append([])
        elif not names:
            if line.strip():
                raise InputError(path, "not FASTA: expected a '>' header line", line_no)
        else:
            chunks[-1].append("".join(line.split()))
    if not names:
        raise InputError(path, "empty file: no FASTA records")
    return SequenceSet(str(path), names, ["".join(c) for c in chunks], lines)


@dataclasses.dataclass(frozen=True)
class _Peak:
    line: int
    chrom: str
    start: int
    end: int
    name: str
    score: float | None
    summit: int


def _parse_peak(path: str | os.PathLike, line_no: int, fields: list[str]) -> _Peak:
    """One BED / narrowPeak line -> a peak; summit from column 10 when present and not -1."""
    if len(fields) < 3:
        raise InputError(path, f"not BED: expected at least 3 tab-separated columns, got {len(fields)}", line_no)
    try:
        start, end = int(fields[1]), int(fields[2])
    except ValueError:
        raise InputError(path, "not BED: columns 2-3 must be integer start and end", line_no) from None
    if start < 0 or end < start:
        raise InputError(path, f"not BED: bad interval start={start} end={end}", line_no)
    score = None
    if len(fields) >= 5 and fields[4] not in ("", "."):
        try:
            score = float(fields[4])
        except ValueError:
            raise InputError(path, f"column 5 (score) is not a number: {fields[4]!r}", line_no) from None
        if not math.isfinite(score):  # NaN would make the top_n ranking arbitrary
            raise InputError(path, f"column 5 (score) is not a finite number: {fields[4]!r}", line_no)
    summit = (start + end) // 2
    if len(fields) >= 10:
        try:
            offset = int(fields[9])
        except ValueError:
            raise InputError(path, f"column 10 (summit offset) is not an integer: {fields[9]!r}", line_no) from None
        if offset != -1:
            summit = start + offset
    name = fields[3] if len(fields) >= 4 and fields[3] not in ("", ".") else f"{fields[0]}:{start}-{end}"
    return _Peak(line_no, fields[0], start, end, name, score, summit)


def _read_peak_records(path: str | os.PathLike) -> list[_Peak]:
    """Parses a BED / narrowPeak / broadPeak file (plain or gzip); header lines are ignored.

    Raises:
        InputError: the file is missing, empty or not BED (names the file and line).
    """
    peaks = []
    for line_no, line in _lines(path):
        if not line.strip() or line.startswith(_BED_HEADER_PREFIXES):
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        peaks.append(_parse_peak(path, line_no, fields))
    if not peaks:
        raise InputError(path, "empty file: no peaks")
    return peaks


def read_intervals(path: str | os.PathLike) -> dict[str, list]:
    """The intervals of a BED / narrowPeak file (plain or gzip), header lines ignored.

    Returns:
        Lists of equal length: ``chrom``, ``start``, ``end`` (0-based, half-open, as in the file),
        ``summit`` (column 10 for narrowPeak, else the centre), ``name`` and ``line``.

    Raises:
        InputError: the file is missing, empty or not BED (names the file and line).
    """
    peaks = _read_peak_records(path)
    return {field: [getattr(p, field) for p in peaks] for field in ("chrom", "start", "end", "summit", "name", "line")}


def _open_genome(genome_path: str | os.PathLike):
    import pyfaidx  # imported here: only peak input needs it

    if not Path(genome_path).is_file():
        raise InputError(genome_path, "no such file")
    try:
        return pyfaidx.Fasta(str(genome_path), as_raw=True, sequence_always_upper=False, rebuild=False)
    except Exception as err:  # pyfaidx raises several types for unreadable or unindexable files
        raise InputError(genome_path, f"cannot read genome FASTA ({type(err).__name__}: {err})") from None


def read_peaks(
    path: str | os.PathLike,
    genome_path: str | os.PathLike,
    span: int = 200,
    top_n: int | None = None,
) -> SequenceSet:
    """Cuts a ``span`` bp window centred on each peak's summit out of a genome FASTA.

    The summit is ``start + column 10`` for narrowPeak files (when not -1), else the interval's
    centre; the window is ``[summit - span // 2, summit - span // 2 + span)``. Peaks on a chromosome
    the genome lacks, or whose window leaves the chromosome, are skipped and reported.

    Args:
        path: BED / narrowPeak file (plain or gzip).
        genome_path: genome FASTA (plain or bgzip; pyfaidx writes a ``.fai`` index next to it).
        span: window length in bp.
        top_n: keep only the ``top_n`` usable peaks with the highest score (column 5), in file order.

    Returns:
        Window sequences named by column 4 (or ``chrom:start-end``), with the peaks' lines.

    Raises:
        InputError: unreadable or malformed files, ``top_n`` without scores, or no usable peak.
        ValueError: ``span`` < 1 or ``top_n`` < 1.
    """
    if span < 1:
        raise ValueError(f"span must be at least 1 bp, got {span}")
    if top_n is not None and top_n < 1:
        raise ValueError(f"top_n must be at least 1, got {top_n}")
    peaks = _read_peak_records(path)
    genome = _open_genome(genome_path)
    lengths = {name: len(record) for name, record in genome.records.items()}
    usable, skipped = [], []
    for peak in peaks:
        lo = peak.summit - span // 2
        reason = None
        if peak.chrom not in lengths:
            reason = SKIP_CHROM_ABSENT
        elif lo < 0:
            reason = SKIP_BEFORE_START
        elif lo + span > lengths[peak.chrom]:
            reason = SKIP_PAST_END
        if reason:
            skipped.append(Skipped(peak.name, reason, f"{path}:{peak.line}"))
        else:
            usable.append((peak, lo))
    if top_n is not None:
        unscored = [p for p, _ in usable if p.score is None]
        if unscored:
            raise InputError(path, "top_n needs a numeric score in column 5", unscored[0].line)
        ranked = sorted(range(len(usable)), key=lambda i: -usable[i][0].score)[:top_n]
        usable = [usable[i] for i in sorted(ranked)]
    if not usable:
        counts = collections.Counter(s.reason for s in skipped)
        raise InputError(path, f"no usable peak ({', '.join(f'{n} {r}' for r, n in counts.items())})")
    sequences = [str(genome[p.chrom][lo : lo + span]) for p, lo in usable]
    genome.close()
    return SequenceSet(str(path), [p.name for p, _ in usable], sequences, [p.line for p, _ in usable], skipped)


def read_sequences(
    path: str | os.PathLike,
    genome_path: str | os.PathLike | None = None,
    span: int = 200,
    top_n: int | None = None,
) -> SequenceSet:
    """FASTA when no genome is given, else BED / narrowPeak peaks cut from the genome.

    Raises:
        InputError: see :func:`read_fasta` and :func:`read_peaks`; also a peak file without a
            genome, and ``top_n`` with FASTA input (FASTA has no scores).
    """
    if genome_path is not None:
        return read_peaks(path, genome_path, span=span, top_n=top_n)
    result = read_fasta_or_explain(path)
    if top_n is not None:
        raise InputError(path, "top_n ranks peaks by score; FASTA input has none (give BED + genome)")
    return result


def read_fasta_or_explain(path: str | os.PathLike) -> SequenceSet:
    """:func:`read_fasta`, with a hint when the file looks like BED given without a genome."""
    try:
        return read_fasta(path)
    except InputError as err:
        if not err.problem.startswith("not FASTA"):
            raise
        try:
            _read_peak_records(path)
        except InputError:
            raise err from None
        raise InputError(path, "looks like BED/narrowPeak, not FASTA: give genome=GENOME.fa", err.line) from None
