"""MEME I/O and Tomtom-style comparison: real Jolma motifs, self/reverse-complement hits, null calibration."""

from __future__ import annotations

import numpy as np
import pytest

from bindvae.analysis.compare import best_matches, compare_motifs
from bindvae.errors import InputError
from bindvae.motif import Motif, format_meme, information_content, parse_meme, read_meme, reverse_complement_pwm

JOLMA = "jolma_selex_pwms_converted_all.meme"


@pytest.fixture(scope="module")
def jolma(reference_dir):
    return read_meme(reference_dir / JOLMA)


def test_read_meme_jolma_has_295_motifs(jolma):
    assert len(jolma) == 295
    assert jolma[0].name == "ALX3_JOLMA" and jolma[0].width == 10
    np.testing.assert_allclose(jolma[0].pwm[3], np.array([0.8527, 0.0526, 0.0361, 0.0586]) / 1.0, atol=1e-4)
    assert all(np.allclose(m.pwm.sum(axis=1), 1.0) for m in jolma)


def test_format_meme_round_trips(jolma):
    again = parse_meme(format_meme(jolma[:7], comment="source: test"))
    assert [m.name for m in again] == [m.name for m in jolma[:7]]
    for a, b in zip(again, jolma[:7]):
        np.testing.assert_allclose(a.pwm, b.pwm, atol=1e-6)


def test_parse_meme_bad_row_names_line():
    text = "MEME version 4\n\nMOTIF X\nletter-probability matrix: alength= 4 w= 2\n0.1 0.2 0.7\n0.25 0.25 0.25 0.25\n"
    with pytest.raises(InputError, match=r"bad\.meme:5: .*4 numbers"):
        parse_meme(text, "bad.meme")


def test_parse_meme_without_motif_raises():
    with pytest.raises(InputError, match="no motif"):
        parse_meme("MEME version 4\n", "empty.meme")


def test_information_content_extremes():
    pwm = np.array([[1, 0, 0, 0], [0.25, 0.25, 0.25, 0.25]], dtype=float)
    np.testing.assert_allclose(information_content(pwm), [2.0, 0.0], atol=1e-9)


def test_compare_self_and_reverse_complement_top_hit(jolma):
    queries = jolma[::10]
    queries = queries + [Motif(m.name + "_rc", reverse_complement_pwm(m.pwm)) for m in queries]
    table = compare_motifs(queries, jolma)
    for query in queries:
        rows = table[table["query"] == query.name]
        own = rows[rows["target"] == query.name.removesuffix("_rc")].iloc[0]
        # Ties are only with identical matrices (e.g. TGIF2 and TGIF2LX in Jolma).
        assert own["p_value"] == rows["p_value"].min(), query.name
        assert own["q_value"] < 0.01
        assert own["strand"] == ("-" if query.name.endswith("_rc") else "+")
        assert own["offset"] == 0


def test_compare_pvalues_uniform_under_null(jolma):
    # Null of the method: target columns drawn independently from the database's column pool.
    pool = np.concatenate([m.pwm for m in jolma] + [reverse_complement_pwm(m.pwm) for m in jolma])
    rng = np.random.default_rng(7)

    def random_motif(name, width):
        return Motif(name, pool[rng.integers(0, len(pool), width)])

    targets = [random_motif(f"t{i}", int(rng.integers(8, 16))) for i in range(150)]
    queries = [random_motif(f"q{i}", 10) for i in range(16)]
    p = compare_motifs(queries, targets)["p_value"].to_numpy()
    assert np.all((p > 0) & (p <= 1))
    for alpha in (0.01, 0.05, 0.1, 0.5):
        assert abs(np.mean(p < alpha) - alpha) < max(0.3 * alpha, 0.006), alpha
    q = compare_motifs(queries, targets)["q_value"].to_numpy()
    assert np.mean(q < 0.05) < 0.01


def test_best_matches_keeps_top_rows(jolma):
    table = compare_motifs(jolma[:2], jolma[:20])
    best = best_matches(table, n_best=2)
    assert len(best) == 4 and set(best["rank"]) == {1, 2}
