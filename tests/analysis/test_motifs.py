"""Motifs from a topic's 10-mers: one PWM, or two when the 10-mers hold two unrelated sites."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bindvae.analysis.motifs import PART_SUFFIXES, build_pwm, split_motifs
from bindvae.analysis.topics import topic_motif_sets, topic_motifs
from bindvae.features.kmers import Vocabulary, featurize
from tests.helpers.analysis import random_model

NFKB = "GGGAATTTCC"
FORKHEAD = "TGTTTACATA"
_RC = str.maketrans("ACGT", "TGCA")


def _revcomp(kmer: str) -> str:
    return kmer[::-1].translate(_RC)


def _site_kmers(rng: np.random.Generator, site: str, n: int) -> list[str]:
    """``n`` 10-mers around ``site``: shifted up to 3 bp in random flanks, one base mutated in half, either strand."""
    out = []
    for _ in range(n):
        flank = "".join(rng.choice(list("ACGT"), 6))
        context = flank[:3] + site + flank[3:]
        shift = int(rng.integers(0, 7))
        kmer = list(context[shift : shift + 10])
        if rng.random() < 0.5:
            kmer[int(rng.integers(0, 10))] = str(rng.choice(list("ACGT")))
        kmer = "".join(kmer)
        out.append(_revcomp(kmer) if rng.random() < 0.5 else kmer)
    return out


def _contains(consensus: str, site: str, core: int = 6) -> bool:
    """The consensus holds the site's central ``core`` bases on either strand."""
    start = (len(site) - core) // 2
    middle = site[start : start + core]
    return middle in consensus or _revcomp(middle) in consensus


def _ranked(first: list[str], second: list[str], rng: np.random.Generator) -> list[str]:
    """Both sites' 10-mers in one best-first list: the first site's exact 10-mer leads, the rest interleave."""
    rest = first[1:] + second
    order = rng.permutation(len(rest))
    return [first[0]] + [rest[i] for i in order]


def test_two_sites_in_one_topic_give_a_motif_each():
    rng = np.random.default_rng(0)
    kmers = _ranked([NFKB] + _site_kmers(rng, NFKB, 109), _site_kmers(rng, FORKHEAD, 90), rng)
    whole = build_pwm(kmers, name="topic_000")
    parts = split_motifs(kmers, name="topic_000")
    assert [m.name for m in parts] == ["topic_000" + suffix for suffix in PART_SUFFIXES]
    assert _contains(parts[0].consensus, NFKB) and _contains(parts[1].consensus, FORKHEAD), [m.consensus for m in parts]
    assert abs(parts[0].nsites - 110) <= 15 and parts[0].nsites + parts[1].nsites == 200
    # the one PWM over both sites holds less information per column than either part
    info = [np.mean(np.log2(4) + np.sum(m.pwm * np.log2(m.pwm), axis=1)) for m in (whole, *parts)]
    assert info[0] < min(info[1:]), info


def test_one_site_or_a_small_second_share_is_not_split():
    rng = np.random.default_rng(1)
    assert split_motifs([NFKB] + _site_kmers(rng, NFKB, 199)) == []
    few = _ranked([NFKB] + _site_kmers(rng, NFKB, 169), _site_kmers(rng, FORKHEAD, 30), rng)  # 15% < 25%
    assert split_motifs(few) == []
    parts = split_motifs(few, min_share=0.1)
    assert len(parts) == 2 and _contains(parts[1].consensus, FORKHEAD)
    with pytest.raises(ValueError, match="at least one"):
        split_motifs([])


@pytest.fixture(scope="module")
def vocab():
    return Vocabulary.gapped8()


@pytest.fixture(scope="module")
def two_site_model(vocab):
    """Decoder topic 0 is made of the NF-kB and the forkhead site's gapped 8-mers, topic 1 of an E-box's,
    topic 2 of nothing."""
    model = random_model(vocab, num_topics=3, hidden_sizes=(8,))
    theta = np.zeros((3, len(vocab)), np.float32)
    theta[0, featurize([NFKB, FORKHEAD], vocab).indices] = 4.0
    theta[1, featurize(["CACGTGAC"], vocab).indices] = 4.0
    return dataclasses.replace(model, params={**model.params, "topic_kmer": {"theta": theta}})


def test_topic_motif_sets_split_a_decoder_topic_that_holds_two_sites(two_site_model):
    """A decoder topic made of two sites' gapped 8-mers gets a motif of each; a topic of one site none."""
    model = two_site_model
    sets, table = topic_motif_sets(model, ranking="decoder", split=True)
    single, _ = topic_motifs(model, ranking="decoder")
    assert [s[0].name for s in sets] == [m.name for m in single] == ["topic_000", "topic_001", "topic_002"]
    assert all(np.array_equal(s[0].pwm, m.pwm) for s, m in zip(sets, single))  # the topic's motif is unchanged
    assert [len(s) for s in sets[:2]] == [3, 1], [[m.consensus for m in s] for s in sets]
    parts = sets[0][1:]
    assert {site for site in (NFKB, FORKHEAD) for m in parts if _contains(m.consensus, site)} == {NFKB, FORKHEAD}
    assert [m.name for m in parts] == ["topic_000a", "topic_000b"]
    assert _contains(sets[1][0].consensus, "CACGTGAC")
    assert len(table) == 3 * 200
    unsplit, _ = topic_motif_sets(model, ranking="decoder")
    assert [len(s) for s in unsplit] == [1, 1, 1]


def test_name_topics_lists_a_split_topics_parts_with_their_matches_and_sites_but_names_by_its_motif(two_site_model):
    from bindvae.analysis.evidence import name_topics
    from bindvae.analysis.flags import consensus_pwm
    from bindvae.motif import Motif

    model = two_site_model
    rng = np.random.default_rng(2)
    database = [Motif(f"DB{i}", consensus_pwm(site), alt_name=tf) for i, (site, tf) in
                enumerate([(NFKB, "NFKB1"), (FORKHEAD, "FOXA1"), ("CACGTGAC", "USF1"), ("TTGCGCAA", "CEBPB")])]
    sequences = ["".join(rng.choice(list("ACGT"), 200)) for _ in range(300)]
    carriers = np.zeros((300, 3))
    for i in range(0, 300, 3):  # every third peak holds the forkhead site; topic 0's score follows them
        sequences[i] = sequences[i][:90] + FORKHEAD + sequences[i][100:]
        carriers[i, 0] = 1.0
    scores = carriers + rng.random((300, 3)) * 0.1
    kwargs = dict(ranking="decoder", sequences=sequences, seed=0, peak_scores=scores)
    named = name_topics(model, database, None, {}, split_motifs=True, **kwargs)
    assert [m.name for m in named.part_motifs][:2] == ["topic_000a", "topic_000b"]  # (topic 2 is made of nothing)
    assert not any(m.name.startswith("topic_001") for m in named.part_motifs)
    listed = named.matches[named.matches["query"].isin(["topic_000a", "topic_000b"]) & (named.matches["rank"] == 1)]
    assert set(listed["target_name"]) == {"NFKB1", "FOXA1"} and (listed["q_value"] < 0.05).all()
    assert not listed["assigned"].any()  # listed, never assigned
    site = named.sites.set_index("topic")
    forkhead = next(m.name for m in named.part_motifs if _contains(m.consensus, FORKHEAD))
    assert site.loc[forkhead, "site_auroc"] > 0.9 and site.loc[forkhead, "pct_peaks"] > 30
    alone = name_topics(model, database, None, {}, **kwargs)
    assert alone.part_motifs == [] and list(alone.sites["topic"]) == ["topic_000", "topic_001", "topic_002"]
    assert list(named.sites["topic"])[:5] == ["topic_000", "topic_001", "topic_002", "topic_000a", "topic_000b"]
    assert named.titles.equals(alone.titles)  # the topic's own motif names it, split or not
