"""Topic titles: composition measures on planted decoder rows, and which evidence names a topic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bindvae.analysis import naming, titles

# A toy vocabulary: every 6-mer. Planted topics: 0 poly-A, 1 CA repeat, 2 GC-rich, 3 AT-rich (not a
# repeat), 4 background (barely favours a few k-mers of average GC), 5 a motif (average GC).
KMERS = ["".join(b) for b in np.array(np.meshgrid(*[list("ACGT")] * 6, indexing="ij")).reshape(6, -1).T]
FAVOURED = [
    ["AAAAAA", "TTTTTT"],
    ["ACACAC", "CACACA", "GTGTGT", "TGTGTG"],
    ["GCGCGC", "CGCGCG", "GGCCGG", "CCGGCC", "GCCGGC", "CGGCCG"],
    ["ATTAAT", "TAATTA", "AATTAA", "TTAATT", "ATAATA", "TATTAT"],
    ["ACGTGA", "TGCAGT", "AGCTCA", "TCGAGT"],
    ["TGACTC", "GAGTCA", "TCAGTG", "CACTGA"],
]


def _planted_phi(boost: float = 6.0, background_boost: float = 0.3) -> np.ndarray:
    theta = np.zeros((len(FAVOURED), len(KMERS)))
    for m, kmers in enumerate(FAVOURED):
        theta[m, [KMERS.index(k) for k in kmers]] = background_boost if m == 4 else boost
    phi = np.exp(theta)
    return phi / phi.sum(axis=1, keepdims=True)


def _composition() -> pd.DataFrame:
    return titles.composition_from_phi(_planted_phi(), KMERS, n_top=4)


def _probe_mapping(n_topics: int) -> pd.DataFrame:
    # Every topic gets one strongly assigned TF, as sampled probes give an AT-rich or repeat topic.
    rng = np.random.default_rng(0)
    labels = np.repeat([f"TF{m}" for m in range(n_topics)] + ["rest"], 50)
    scores = rng.normal(size=(len(labels), n_topics))
    for m in range(n_topics):
        scores[labels == f"TF{m}", m] += 4.0
    return naming.map_topics_to_tfs(scores, labels)


def test_repeat_unit():
    assert titles.repeat_unit("AAAAAAAA") == "A" and titles.repeat_unit("TTTTNNTT") == "A"
    assert titles.repeat_unit("CACANNCA") == "AC" and titles.repeat_unit("GTGTGTGT") == "AC"
    assert titles.repeat_unit("ATATATAT") == "AT" and titles.repeat_unit("GGGGGGGG") == "C"
    assert titles.repeat_unit("ATGAGTCA") == "" and titles.repeat_unit("AATTAATT") == ""


def test_composition_measures_planted_topics():
    comp = _composition().set_index("topic")
    assert comp["gc_corpus"].nunique() == 1 and 0.4 < comp["gc_corpus"].iloc[0] < 0.5  # poly-A and AT-rich pull it down
    assert comp.loc["topic_000", "repeat_share"] > 0.99 and comp.loc["topic_000", "repeat_unit"] == "A"
    assert comp.loc["topic_001", "repeat_share"] > 0.99 and comp.loc["topic_001", "repeat_unit"] == "AC"
    assert comp.loc["topic_002", "gc"] > 0.99 and comp.loc["topic_003", "gc"] < 0.01
    assert comp.loc["topic_005", "repeat_share"] == 0.0 and comp.loc["topic_005", "gc"] == pytest.approx(0.5)
    # The background topic does not stand out from the others; every planted one does, by far.
    assert comp.loc["topic_004", "fold"] < 3 and comp.loc["topic_004", "gc"] == pytest.approx(0.5)
    assert comp.drop("topic_004")["fold"].min() > 50


def test_titles_say_what_a_topic_is_when_nothing_names_it():
    comp = _composition()
    table, mapping = titles.title_topics(comp, _probe_mapping(len(comp)), matches=None)
    by_topic = table.set_index("topic")
    assert by_topic["title"].tolist() == ["low complexity (A)n", "low complexity (AC)n", "GC-rich", "AT-rich",
                                          "background", "TF5 (probes)"]
    assert by_topic["evidence"].tolist() == ["composition"] * 5 + ["probes"]
    # Composition topics keep their probe statistics but lose the assignment, with the reason.
    status = mapping[mapping["tf"] == mapping["topic"].str.replace("topic_00", "TF")].set_index("topic")["status"]
    assert status.to_dict() == {"topic_000": "low-complexity topic", "topic_001": "low-complexity topic",
                                "topic_002": "composition topic", "topic_003": "composition topic",
                                "topic_004": "background topic", "topic_005": "assigned"}
    assert naming.assigned_tfs(mapping) == {"topic_005": ["TF5"]}


def _matches(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["query", "target", "target_name", "q_value", "repeat"])
    return naming.assign_matches(frame.assign(rank=1))


def test_titles_prefer_motif_similarity_and_name_the_source():
    comp = _composition()
    matches = _matches([("topic_003", "MA1", "FOXA1", 1e-3, False), ("topic_005", "MA2", "FOS::JUN", 1e-4, False),
                        ("topic_000", "MA3", "ZNF384", 1e-3, True)])
    table, mapping = titles.title_topics(comp, _probe_mapping(len(comp)), matches)
    by_topic = table.set_index("topic")
    # An AT-rich topic with a significant database match is that motif (e.g. a forkhead site); its
    # probe TF, of another family, is withdrawn and the composition is still said.
    assert by_topic.loc["topic_003", "title"] == "FOXA1 (motif similarity); AT-rich"
    assert by_topic.loc["topic_003", "evidence"] == "motif similarity, composition"
    assert by_topic.loc["topic_005", "title"] == "FOS::JUN (motif similarity); TF5 (probes)"
    assert by_topic.loc["topic_005", "evidence"] == "motif similarity, probes"
    # A match to a database motif that is itself a repeat (ZNF384's poly-A) names nothing.
    assert by_topic.loc["topic_000", "title"] == "low complexity (A)n"
    assert naming.assigned_tfs(mapping) == {"topic_005": ["TF5"]}


def test_titles_keep_probe_tfs_the_match_supports_on_a_mixed_topic():
    # A CTCF topic that also took the CA repeat: the CTCF match names it, the CTCF-family probe TF
    # stays assigned, an unrelated one is withdrawn, and the repeat is said.
    comp = _composition()
    rng = np.random.default_rng(0)
    labels = np.repeat(["CTCFL", "ZNF9"] + [f"rest{i}" for i in range(10)], 50)
    scores = rng.normal(size=(len(labels), len(comp)))
    scores[labels == "CTCFL", 1] += 4.0
    scores[labels == "ZNF9", 1] += 4.5
    matches = _matches([("topic_001", "MA0139", "CTCF", 1e-3, False)])
    supported = naming.supported_by_matches(matches, labels, {"CTCF": "C2H2", "CTCFL": "C2H2"})
    mapping = naming.map_topics_to_tfs(scores, labels, supported=supported)
    table, mapping = titles.title_topics(comp, mapping, matches)
    assert table.set_index("topic").loc["topic_001", "title"] == (
        "CTCF (motif similarity); CTCFL (probes); low complexity (AC)n")
    status = mapping[mapping["topic"] == "topic_001"].set_index("tf")["status"]
    assert status["CTCFL"] == "assigned" and status["ZNF9"] == "low-complexity topic"


def test_is_repeat_motif():
    from bindvae.motif import Motif

    def motif(consensus):
        return Motif("m", np.eye(4)[["ACGT".index(c) for c in consensus]] * 0.9 + 0.025)

    assert titles.is_repeat_motif(motif("AAAAAAAAAA")) and titles.is_repeat_motif(motif("CACACACA"))
    assert not titles.is_repeat_motif(motif("GCCACCAGGGGGCGC")) and not titles.is_repeat_motif(motif("TGTTTAC"))


def test_titles_without_any_evidence():
    comp = _composition()
    empty = pd.DataFrame(columns=naming.MAPPING_COLUMNS).astype({"assigned": bool})
    table, _ = titles.title_topics(comp, empty, None)
    assert table["title"].tolist()[4:] == ["background", "unassigned"]
    strict = titles.TitleRules(min_fold=1e9, min_gc_shift=0.3)
    table, _ = titles.title_topics(comp, empty, None, strict)
    assert table["title"].tolist()[2:] == ["background (GC-rich)", "background (AT-rich)", "background", "background"]
