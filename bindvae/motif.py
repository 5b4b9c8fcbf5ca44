"""Motifs as position probability matrices, MEME minimal motif format I/O, and the JASPAR loader.

A motif's matrix has shape ``[width, 4]`` with columns in A, C, G, T order and rows summing to 1.
"""

from __future__ import annotations

import dataclasses
import os
import re

import numpy as np

from bindvae import io
from bindvae.dna import BASES
from bindvae.errors import ConfigError, InputError

ALPHABET = BASES
_BASE_INDEX = {base: i for i, base in enumerate(ALPHABET)}
_MATRIX_HEADER = re.compile(r"letter-probability matrix:(?P<rest>.*)$")


@dataclasses.dataclass(frozen=True)
class Motif:
    """A named position probability matrix.

    Attributes:
        name: motif identifier (the MEME ``MOTIF`` id).
        pwm: probabilities, ``[width, 4]`` in A, C, G, T order; each row sums to 1.
        alt_name: optional second name on the ``MOTIF`` line (e.g. the TF name).
        nsites: number of sites the matrix was built from (MEME's ``nsites``).
    """

    name: str
    pwm: np.ndarray
    alt_name: str = ""
    nsites: int = 20

    @property
    def width(self) -> int:
        """Number of positions."""
        return int(self.pwm.shape[0])

    @property
    def consensus(self) -> str:
        """The most probable base at each position."""
        return "".join(ALPHABET[i] for i in np.argmax(self.pwm, axis=1))


def reverse_complement_pwm(pwm: np.ndarray) -> np.ndarray:
    """The matrix of the opposite strand.

    Args:
        pwm: ``[width, 4]`` in A, C, G, T order.

    Returns:
        ``[width, 4]``: positions reversed, A<->T and C<->G swapped.
    """
    return np.asarray(pwm)[::-1, ::-1].copy()


def information_content(pwm: np.ndarray) -> np.ndarray:
    """Bits per position against a uniform background.

    Args:
        pwm: ``[width, 4]`` probabilities.

    Returns:
        ``[width]`` information content in bits, in ``[0, 2]``.
    """
    p = np.clip(np.asarray(pwm, dtype=np.float64), 1e-12, 1.0)
    return 2.0 + np.sum(p * np.log2(p), axis=1)


def _normalise_rows(rows: list[list[float]], path: str, line: int) -> np.ndarray:
    matrix = np.asarray(rows, dtype=np.float64)
    if np.any(matrix < 0) or np.any(matrix.sum(axis=1) <= 0):
        raise InputError(path, "letter-probability matrix has a negative or all-zero row", line)
    return matrix / matrix.sum(axis=1, keepdims=True)


def parse_meme(text: str, path: str = "<string>") -> list[Motif]:
    """Parse MEME minimal motif format (DNA).

    Args:
        text: the file's contents.
        path: shown in error messages.

    Returns:
        The motifs in file order.

    Raises:
        InputError: the alphabet is not ACGT, a matrix is malformed, or no motif is found.
    """
    lines = text.splitlines()
    motifs: list[Motif] = []
    name, alt, i = None, "", 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped.startswith("ALPHABET") and "ACGT" not in stripped.replace(" ", ""):
            raise InputError(path, f"only the DNA alphabet ACGT is supported, found {stripped!r}", i + 1)
        if stripped.startswith("MOTIF"):
            parts = stripped.split()
            if len(parts) < 2:
                raise InputError(path, "MOTIF line without a name", i + 1)
            name, alt = parts[1], (parts[2] if len(parts) > 2 else "")
        match = _MATRIX_HEADER.search(stripped)
        if match:
            if name is None:
                raise InputError(path, "letter-probability matrix before any MOTIF line", i + 1)
            fields = dict(re.findall(r"(\w+)\s*=\s*(\S+)", match.group("rest")))
            width = int(fields["w"]) if "w" in fields else None
            nsites = int(float(fields.get("nsites", 20)))
            rows, start = [], i + 1
            i += 1
            while i < len(lines) and lines[i].strip() and (width is None or len(rows) < width):
                token = lines[i].split()
                if not re.match(r"^[-+0-9.eE]+$", token[0]):
                    break
                if len(token) != 4:
                    raise InputError(path, "a letter-probability matrix row must have 4 numbers (A C G T)", i + 1)
                try:
                    rows.append([float(v) for v in token])
                except ValueError:
                    raise InputError(path, f"not a number in matrix row {lines[i].strip()!r}", i + 1) from None
                i += 1
            if width is not None and len(rows) != width:
                raise InputError(path, f"motif {name}: expected w={width} rows, found {len(rows)}", start)
            if not rows:
                raise InputError(path, f"motif {name}: empty matrix", start)
            motifs.append(Motif(name, _normalise_rows(rows, path, start), alt, nsites))
            name = None
            continue
        i += 1
    if not motifs:
        raise InputError(path, "no motif found (expected MEME minimal motif format)")
    return motifs


def read_meme(path: str | os.PathLike) -> list[Motif]:
    """Read a MEME minimal motif format file.

    Args:
        path: the file.

    Returns:
        The motifs in file order.

    Raises:
        InputError: the file is missing, unreadable or malformed.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot read motif file ({err.__class__.__name__}: {err})") from None
    return parse_meme(text, str(path))


def format_meme(motifs: list[Motif], comment: str = "") -> str:
    """Render motifs in MEME minimal motif format (version 4, both strands, uniform background).

    Args:
        motifs: the motifs to write.
        comment: free text written as a ``#`` comment line under the header (e.g. provenance).

    Returns:
        The file's text.
    """
    out = ["MEME version 4", "", "ALPHABET= ACGT", "", "strands: + -", ""]
    out += ["Background letter frequencies", "A 0.25 C 0.25 G 0.25 T 0.25", ""]
    if comment:
        out += [f"# {line}" for line in comment.splitlines()] + [""]
    for motif in motifs:
        out.append(f"MOTIF {motif.name}" + (f" {motif.alt_name}" if motif.alt_name else ""))
        out.append("")
        out.append(f"letter-probability matrix: alength= 4 w= {motif.width} nsites= {motif.nsites} E= 0")
        out += ["\t".join(f"{v:.6f}" for v in row) for row in motif.pwm]
        out.append("")
    return "\n".join(out)


def write_meme(path: str | os.PathLike, motifs: list[Motif], comment: str = "") -> None:
    """Write motifs in MEME minimal motif format, atomically.

    Args:
        path: destination file.
        motifs: the motifs.
        comment: provenance line(s) written as comments.
    """
    io.write_text_atomic(path, format_meme(motifs, comment), parents=True)


def one_hot(sequence: str) -> np.ndarray:
    """One-hot matrix of an ACGT string.

    Args:
        sequence: DNA letters (case-insensitive, ACGT only).

    Returns:
        ``[len(sequence), 4]`` float64.
    """
    idx = [_BASE_INDEX[b] for b in sequence.upper()]
    out = np.zeros((len(idx), 4))
    out[np.arange(len(idx)), idx] = 1.0
    return out


# JASPAR's Oct-Sox composite element: added to the database so a topic can match the pair as one signature.
COMPOSITE_ID = "MA0142.1"


def _open_jaspar(release: str):
    from pyjaspar import jaspardb  # Deferred: pyjaspar opens its bundled SQLite file on import.

    try:
        return jaspardb(release=release)
    except Exception as exc:  # pyjaspar raises bare exceptions for unknown releases
        raise ConfigError("jaspar_release", f"{release!r} is not bundled with pyjaspar ({exc})") from exc


def _jaspar_motif(record, alt_name: str, pseudocount: float) -> Motif:
    counts = np.array([record.counts[b] for b in ALPHABET], dtype=np.float64).T + pseudocount
    return Motif(record.matrix_id, counts / counts.sum(axis=1, keepdims=True), alt_name=alt_name)


def load_jaspar_motifs(entries, release: str = "JASPAR2024", pseudocount: float = 0.25) -> list[Motif]:
    """Named motifs from the JASPAR database bundled with pyjaspar (no network).

    Args:
        entries: ``(name, matrix_id)`` pairs; an empty matrix_id takes the first match by name.
        release: e.g. ``JASPAR2024``.
        pseudocount: added to every count before normalising.

    Returns:
        One :class:`Motif` per entry: ``name`` the matrix id, ``alt_name`` the TF name as given, PWM ``[width, 4]``.

    Raises:
        ConfigError: unknown release, name or id.
    """
    database = _open_jaspar(release)
    motifs = []
    for name, matrix_id in entries:
        if matrix_id:
            record = database.fetch_motif_by_id(matrix_id)
        else:
            found = database.fetch_motifs_by_name(name)
            record = found[0] if found else None
        if record is None:
            raise ConfigError("motifs", f"{name} {matrix_id} not found in {release}")
        motifs.append(_jaspar_motif(record, name, pseudocount))
    return motifs


def load_motif_database(release: str = "JASPAR2024", extra: list | None = None) -> list[Motif]:
    """JASPAR CORE vertebrates (latest version of each matrix) plus the Oct-Sox composite, from pyjaspar.

    Args:
        release: pyjaspar release name.
        extra: motifs added when their id is missing (e.g. the planted ones).

    Returns:
        Motifs with ``name`` = matrix id, ``alt_name`` = TF name, PWMs with pseudocount 0.25.

    Raises:
        ConfigError: the release is not bundled.
    """
    database = _open_jaspar(release)
    records = database.fetch_motifs(collection="CORE", tax_group=["vertebrates"], all_versions=False)
    composite = database.fetch_motif_by_id(COMPOSITE_ID)
    if composite is not None:
        records.append(composite)
    motifs, seen = [], set()
    for record in records:
        if record.matrix_id not in seen:
            seen.add(record.matrix_id)
            motifs.append(_jaspar_motif(record, record.name, 0.25))
    return motifs + [m for m in (extra or []) if m.name not in seen]
