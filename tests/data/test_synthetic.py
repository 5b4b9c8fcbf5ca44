"""The planted-motif generator: exact fractions, sites where the truth says, seeded, round trip."""

from __future__ import annotations

import numpy as np
import pytest

from bindvae.data import synthetic
from bindvae.errors import ConfigError, InputError
from bindvae.motif import load_jaspar_motifs

SMALL = synthetic.SyntheticConfig(n_peaks=1000, length=200)
COMPLEMENT = str.maketrans("ACGT", "TGCA")


@pytest.fixture(scope="module")
def small_set():
    return synthetic.generate(np.random.default_rng(7), SMALL)


def _log_odds(site: str, pwm: np.ndarray) -> float:
    codes = ["ACGT".index(b) for b in site]
    return float(np.sum(np.log2(pwm[np.arange(len(codes)), codes] / 0.25)))


def test_load_jaspar_motifs_reads_bundled_release():
    (ctcf,) = load_jaspar_motifs([("CTCF", "MA0139.2")], "JASPAR2024")
    assert (ctcf.name, ctcf.alt_name, ctcf.pwm.shape) == ("MA0139.2", "CTCF", (15, 4))
    np.testing.assert_allclose(ctcf.pwm.sum(axis=1), 1.0)
    # The JASPAR 2024 consensus of MA0139.2, the core CTCF site.
    consensus = "".join("ACGT"[i] for i in ctcf.pwm.argmax(axis=1))
    assert consensus == "GCCACCAGGGGGCGC"


def test_load_jaspar_motifs_unknown_id_raises():
    with pytest.raises(ConfigError, match="motifs"):
        load_jaspar_motifs([("NOPE", "MA9999.9")])


def test_generate_plants_exact_fractions(small_set):
    counts = small_set.truth.groupby("feature")["peak"].nunique()
    for name, _, fraction in SMALL.motifs:
        assert counts[name] == round(fraction * SMALL.n_peaks)
    assert counts["GC-rich"] == round(SMALL.gc_rich_fraction * SMALL.n_peaks)
    assert counts["SOX2"] == counts["POU5F1"] == round(SMALL.pair_fraction * SMALL.n_peaks)
    assert len(small_set.sequences) == SMALL.n_peaks
    assert all(len(s) == SMALL.length and set(s) <= set("ACGT") for s in small_set.sequences)


def test_generate_truth_sites_match_sequences(small_set):
    by_name = dict(zip(small_set.names, small_set.sequences))
    rows = small_set.truth[small_set.truth["kind"] != "background"]
    for row in rows.itertuples():
        assert by_name[row.peak][row.start:row.end] == row.site
    repeats = rows[rows["feature"] == "CA-repeat"]
    assert all(set(s[::2]) == {"C"} and set(s[1::2]) == {"A"} for s in repeats["site"])


def test_generate_sites_read_as_the_motif_on_their_strand(small_set):
    # A site sampled from the PWM scores far above background on its own strand, and the strand
    # column must say which: read the other way round, the same bases score much lower.
    for name, _, _ in SMALL.motifs:
        pwm = small_set.motifs[name].pwm
        rows = small_set.truth[small_set.truth["feature"] == name]
        oriented = [s if st == "+" else s.translate(COMPLEMENT)[::-1] for s, st in zip(rows["site"], rows["strand"])]
        flipped = [s.translate(COMPLEMENT)[::-1] for s in oriented]
        forward = np.mean([_log_odds(s, pwm) for s in oriented])
        backward = np.mean([_log_odds(s, pwm) for s in flipped])
        assert forward > 5.0
        if name in {"CTCF", "SPI1", "TEAD1", "RUNX1"}:  # far from palindromic
            assert forward > backward + 8, name
        assert 0.35 < np.mean(rows["strand"] == "+") < 0.65


def test_generate_pair_keeps_fixed_spacing(small_set):
    pair = small_set.truth[small_set.truth["kind"] == "pair"]
    for _, rows in pair.groupby("peak"):
        first = rows[rows["feature"] == "SOX2"].iloc[0]
        second = rows[rows["feature"] == "POU5F1"].iloc[0]
        assert first.strand == second.strand
        if first.strand == "+":
            assert second.start - first.end == SMALL.pair_spacing
        else:
            assert first.start - second.end == SMALL.pair_spacing


def test_generate_gc_rich_subset_is_gc_rich(small_set):
    gc_rich = synthetic.planted_labels(small_set.truth, small_set.names, "GC-rich")
    gc = np.array([(s.count("G") + s.count("C")) / len(s) for s in small_set.sequences])
    assert gc[gc_rich].mean() > 0.58 and abs(gc[~gc_rich].mean() - SMALL.gc) < 0.03


def test_generate_is_seeded():
    config = synthetic.SyntheticConfig(n_peaks=200)
    a = synthetic.generate(np.random.default_rng(3), config)
    b = synthetic.generate(np.random.default_rng(3), config)
    c = synthetic.generate(np.random.default_rng(4), config)
    assert a.sequences == b.sequences and a.truth.equals(b.truth)
    assert a.sequences != c.sequences


def test_sample_sites_follow_pwm():
    pwm = np.array([[0.7, 0.1, 0.1, 0.1], [0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 0.25, 0.25]])
    sites = synthetic.sample_sites(np.random.default_rng(0), pwm, 20_000)
    freqs = np.stack([np.bincount(sites[:, j], minlength=4) / len(sites) for j in range(3)])
    np.testing.assert_allclose(freqs, pwm, atol=0.015)


def test_sample_background_markov_has_dependence():
    def dependence(bases):
        joint = np.zeros((4, 4))
        np.add.at(joint, (bases[:, :-1].ravel(), bases[:, 1:].ravel()), 1)
        joint /= joint.sum()
        return np.abs(joint - np.outer(joint.sum(1), joint.sum(0))).sum()

    rng = np.random.default_rng(1)
    iid = synthetic.sample_background(rng, 500, 200, 0.42)
    chain = synthetic.sample_background(rng, 500, 200, 0.42, markov_order=1, markov_concentration=2.0)
    assert dependence(iid) < 0.01 < dependence(chain)


def test_generate_rejects_bad_fraction():
    with pytest.raises(ConfigError, match="pair_fraction"):
        synthetic.generate(np.random.default_rng(0), synthetic.SyntheticConfig(n_peaks=10, pair_fraction=1.5))


def test_write_set_round_trip(tmp_path, small_set):
    paths = synthetic.write_set(small_set, tmp_path / "bench.fa", SMALL, seed=7)
    assert paths["truth"].endswith("bench.truth.tsv")
    truth = synthetic.read_truth(paths["truth"])
    assert truth.equals(small_set.truth.astype(truth.dtypes.to_dict()))
    text = (tmp_path / "bench.fa").read_text().split("\n")
    assert text[0] == ">" + small_set.names[0] and text[1] == small_set.sequences[0]
    assert "MOTIF MA0139.2 CTCF" in (tmp_path / "bench.motifs.meme").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_read_truth_missing_columns(tmp_path):
    bad = tmp_path / "x.truth.tsv"
    bad.write_text("peak\tfeature\np1\tCTCF\n")
    with pytest.raises(InputError, match="x.truth.tsv:1"):
        synthetic.read_truth(bad)


def test_generate_sites_per_peak_plants_clusters():
    config = synthetic.SyntheticConfig(n_peaks=300, sites_per_peak=3, motifs=(("CTCF", "MA0139.2", 0.2),), pair=(),
                                       ca_repeat_fraction=0, polya_fraction=0, gc_rich_fraction=0)
    dataset = synthetic.generate(np.random.default_rng(2), config)
    per_peak = dataset.truth[dataset.truth["feature"] == "CTCF"].groupby("peak").size()
    assert len(per_peak) == 60 and (per_peak == 3).mean() > 0.95
    with pytest.raises(ConfigError, match="sites_per_peak"):
        synthetic.generate(np.random.default_rng(2), synthetic.SyntheticConfig(n_peaks=10, sites_per_peak=0))
