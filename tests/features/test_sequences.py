"""FASTA and BED / narrowPeak + genome input."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from bindvae.errors import InputError
from bindvae.features.sequences import (
    SKIP_BEFORE_START,
    SKIP_CHROM_ABSENT,
    SKIP_PAST_END,
    read_fasta,
    read_peaks,
    read_sequences,
)


def random_dna(rng: np.random.Generator, n: int) -> str:
    return "".join(rng.choice(list("ACGT"), size=n))


@pytest.fixture()
def genome(tmp_path):
    """A two-chromosome genome FASTA (60 bp lines) and its sequences."""
    rng = np.random.default_rng(7)
    chroms = {"chr1": random_dna(rng, 1000), "chr2": random_dna(rng, 450).lower()}
    text = "".join(
        f">{name} assembled\n" + "".join(seq[i : i + 60] + "\n" for i in range(0, len(seq), 60))
        for name, seq in chroms.items()
    )
    path = tmp_path / "genome.fa"
    path.write_text(text)
    return path, chroms


def write_peaks(path, rows):
    path.write_text("".join("\t".join(str(v) for v in row) + "\n" for row in rows))
    return path


def test_read_fasta_multiline_crlf_names_and_letters(tmp_path):
    path = tmp_path / "s.fa"
    path.write_bytes(b">seq1 some description\r\nACGTRY\r\nacgtn\r\n\r\n>seq2\r\n>seq3\tx\r\nAC GT\r\n")
    records = read_fasta(path)
    assert records.names == ["seq1", "seq2", "seq3"]
    assert records.sequences == ["ACGTRYacgtn", "", "ACGT"]
    assert records.lines == [1, 5, 6] and records.where(2) == f"{path}:6"
    assert records.skipped == [] and records.duplicate_names == []


def test_read_fasta_gzip_equals_plain_and_reports_duplicates(tmp_path):
    text = ">a\nACGTACGTAA\n>b\nTTTT\n>a\nGGGGCCCC\n"
    (tmp_path / "s.fa").write_text(text)
    (tmp_path / "s.fa.gz").write_bytes(gzip.compress(text.encode()))
    plain, packed = read_fasta(tmp_path / "s.fa"), read_fasta(tmp_path / "s.fa.gz")
    assert plain.sequences == packed.sequences == ["ACGTACGTAA", "TTTT", "GGGGCCCC"]
    assert packed.names == ["a", "b", "a"] and packed.duplicate_names == ["a"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"empty\.fa: empty file"),
        (b"\n\n  \n", r"empty\.fa: empty file"),
        (b"\nchr1\t10\t20\n", r"empty\.fa:2: not FASTA"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", r"empty\.fa:1: not FASTA"),
        (b">\nACGT\n", r"empty\.fa:1: FASTA header without a name"),
    ],
)
def test_read_fasta_bad_files(tmp_path, content, message):
    (tmp_path / "empty.fa").write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_fasta(tmp_path / "empty.fa")


def test_read_fasta_missing_and_truncated_gzip(tmp_path):
    with pytest.raises(InputError, match=r"nope\.fa: no such file"):
        read_fasta(tmp_path / "nope.fa")
    rng = np.random.default_rng(0)
    text = "".join(f">s{i}\n{random_dna(rng, 200)}\n" for i in range(300))
    data = gzip.compress(text.encode())
    (tmp_path / "cut.fa.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.fa\.gz:\d+: truncated or corrupt gzip"):
        read_fasta(tmp_path / "cut.fa.gz")


def test_read_peaks_summit_windows(tmp_path, genome):
    genome_path, chroms = genome
    rows = [
        ("chr1", 100, 400, "summit", 9, ".", 1, 1, 1, 50),  # summit at 150
        ("chr1", 300, 500, "centre", 5, ".", 1, 1, 1, -1),  # no summit: centre 400
        ("chr2", 200, 260, ".", 7),  # BED5: centre 230; unnamed
        ("chr1", 900, 1000, "end", 1, ".", 1, 1, 1, 90),  # summit 990: window past the end
        ("chrUn", 10, 20, "absent", 1),
        ("chr2", 0, 50, "start", 1),  # centre 25: window before the start
    ]
    peaks = write_peaks(tmp_path / "p.narrowPeak", rows)
    records = read_peaks(peaks, genome_path, span=100)
    assert records.names == ["summit", "centre", "chr2:200-260"]
    assert records.sequences == [chroms["chr1"][100:200], chroms["chr1"][350:450], chroms["chr2"][180:280]]
    assert records.lines == [1, 2, 3]
    assert [(s.name, s.reason, s.where) for s in records.skipped] == [
        ("end", SKIP_PAST_END, f"{peaks}:4"),
        ("absent", SKIP_CHROM_ABSENT, f"{peaks}:5"),
        ("start", SKIP_BEFORE_START, f"{peaks}:6"),
    ]
    assert records.skip_counts() == {SKIP_PAST_END: 1, SKIP_CHROM_ABSENT: 1, SKIP_BEFORE_START: 1}


def test_read_peaks_top_n_by_score_in_file_order(tmp_path, genome):
    genome_path, chroms = genome
    rows = [("chr1", 100 * i, 100 * i + 50, f"p{i}", score) for i, score in enumerate([3, 9, 1, 7, 8], start=1)]
    rows.append(("chrUn", 100, 200, "best_but_absent", 100))
    gz = tmp_path / "p.bed.gz"
    gz.write_bytes(gzip.compress(("track name=x\n# comment\n" + "".join(
        "\t".join(map(str, r)) + "\n" for r in rows)).encode()))
    records = read_peaks(gz, genome_path, span=20, top_n=3)
    assert records.names == ["p2", "p4", "p5"]
    assert records.sequences[0] == chroms["chr1"][215:235]
    assert records.lines == [4, 6, 7]


def test_read_peaks_errors(tmp_path, genome):
    genome_path, _ = genome
    unscored = write_peaks(tmp_path / "a.bed", [("chr1", 10, 300), ("chr1", 400, 500)])
    with pytest.raises(InputError, match=r"a\.bed:1: top_n needs a numeric score"):
        read_peaks(unscored, genome_path, top_n=1)
    nothing = write_peaks(tmp_path / "b.bed", [("chrUn", 10, 300), ("chr2", 400, 449)])
    with pytest.raises(InputError, match=r"b\.bed: no usable peak \(1 chromosome not in the genome, 1 window past"):
        read_peaks(nothing, genome_path)
    (tmp_path / "c.bed").write_text("chr1\t10\t300\nchr1\tten\t300\n")
    with pytest.raises(InputError, match=r"c\.bed:2: not BED"):
        read_peaks(tmp_path / "c.bed", genome_path)
    (tmp_path / "d.bed").write_text("chr1\t10\n")
    with pytest.raises(InputError, match=r"d\.bed:1: not BED: expected at least 3"):
        read_peaks(tmp_path / "d.bed", genome_path)
    (tmp_path / "e.bed").write_text("# only a header\n")
    with pytest.raises(InputError, match=r"e\.bed: empty file"):
        read_peaks(tmp_path / "e.bed", genome_path)
    with pytest.raises(InputError, match=r"missing\.fa: no such file"):
        read_peaks(unscored, tmp_path / "missing.fa")
    (tmp_path / "bad_genome.fa").write_text("not a fasta\n")
    with pytest.raises(InputError, match=r"bad_genome\.fa: cannot read genome FASTA"):
        read_peaks(unscored, tmp_path / "bad_genome.fa")


def test_read_sequences_dispatch(tmp_path, genome):
    genome_path, chroms = genome
    peaks = write_peaks(tmp_path / "p.bed", [("chr1", 100, 300, "p", 1)])
    with pytest.raises(InputError, match=r"p\.bed:1: looks like BED/narrowPeak, not FASTA: give genome="):
        read_sequences(peaks)
    assert read_sequences(peaks, genome_path, span=10).sequences == [chroms["chr1"][195:205]]
    with pytest.raises(InputError, match="top_n ranks peaks by score"):
        read_sequences(genome_path, top_n=5)
    assert read_sequences(genome_path).names == ["chr1", "chr2"]
