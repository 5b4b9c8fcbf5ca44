"""Cooperative binding and non-TF flags end to end, on a checkpoint counted from a generated set.

The generated set (:mod:`tests.helpers.planted`) has the Oct-Sox pair planted as one composite site
at a fixed spacing, CEBPB alone, a (CA)n repeat, GC-rich peaks and Tn5 target sites; the checkpoint's
topics are built from its truth (a short training run does not separate them reliably in test time).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from bindvae.analysis import cooperative, naming, pair_route
from bindvae.features.kmers import Vocabulary
from bindvae.motif import format_meme
from experiments import analyze
from tests.analysis.test_report import _save_run
from tests.helpers.planted import FEATURES, SPACING, counted_model, generated_set

PAIR, DECOY = "SOX2::POU5F1", "CEBPB::SOX2"
TOPIC = {feature: f"topic_{m:03d}" for m, feature in enumerate(FEATURES)}


def _pair_probe_table(motifs: dict, n: int = 150) -> pd.DataFrame:
    """Composite probes of the planted pair and of a decoy pair never planted together, and partner probes."""
    rng = np.random.default_rng(1)
    rows = [(PAIR, s) for s in pair_route.composite_probes(rng, motifs["SOX2"], motifs["POU5F1"], SPACING, n)]
    rows += [(DECOY, s) for s in pair_route.composite_probes(rng, motifs["CEBPB"], motifs["SOX2"], SPACING, n)]
    partners = naming.sample_probes(rng, [motifs[tf] for tf in ("SOX2", "POU5F1", "CEBPB")], n,
                                    cooperative.PROBE_LENGTH)
    rows += list(zip(partners["tf"], partners["sequence"]))
    return pd.DataFrame(rows, columns=["pair", "sequence"])


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    from bindvae.motif import load_motif_database

    vocab = Vocabulary.gapped8()
    dataset = generated_set()
    run_dir = tmp_path_factory.mktemp("planted_run")
    _save_run(run_dir, counted_model(dataset, vocab), vocab)
    jaspar = load_motif_database()
    wanted = {"MA0142.1", *(m.name for m in dataset.motifs.values())}
    database = jaspar[:60] + [m for m in jaspar if m.name in wanted]  # planted motifs among others, for the null
    (run_dir / "db.meme").write_text(format_meme(database))
    _pair_probe_table(dataset.motifs).to_csv(run_dir / "pairs.tsv", sep="\t", index=False)
    # The checkpoint is counted, not trained, and saves no training data: the peaks are given.
    peaks = "".join(f">{n}\n{s}\n" for n, s in zip(dataset.names[:500], dataset.sequences[:500]))
    (run_dir / "peaks.fa").write_text(peaks)
    code = analyze.main([f"run_dir={run_dir}", f"pairs={run_dir / 'pairs.tsv'}", f"motif_db={run_dir / 'db.meme'}",
                         "n_probes_per_tf=50", "n_15mers=200000", f"peaks={run_dir / 'peaks.fa'}"])
    assert code == 0
    return run_dir / "analysis"


def _read(path):
    return pd.read_csv(path, sep="\t", comment="#", keep_default_na=False)


def test_composite_topic_is_flagged_cooperative(analysed):
    table = _read(analysed / "cooperative.tsv")
    assigned = table[table["assigned"].astype(str) == "True"]
    assert set(zip(assigned["pair"], assigned["topic"])) == {(PAIR, TOPIC["SOX2"])}
    hit = assigned.iloc[0]
    assert hit["q_value"] < 0.05 and hit["p_first"] < 0.05 and hit["p_second"] < 0.05
    assert min(hit["effect_first"], hit["effect_second"]) >= naming.MIN_EFFECT
    # The decoy's probes carry a CEBPB and a SOX2 site but never beat both partners in one topic.
    assert not table.loc[table["pair"] == DECOY, "assigned"].astype(str).eq("True").any()


def test_composite_motif_is_written_and_compared_with_the_pair_matrix(analysed):
    from bindvae.motif import read_meme

    motifs = read_meme(analysed / "composite.meme")
    assert [m.name for m in motifs] == [f"composite_{TOPIC['SOX2']}"] and motifs[0].alt_name == PAIR
    assert (analysed / "logos" / f"composite_{TOPIC['SOX2']}.png").is_file()
    table = _read(analysed / "cooperative.tsv")
    hit = table[table["assigned"].astype(str) == "True"].iloc[0]
    # Compared with the pair's JASPAR matrix (reported with its q and rank among all targets). From a
    # uniform sample of 15-mers the composite holds the stronger half of the site, here a partner's.
    assert (
        hit["pair_matrix"] == "MA0142.1" and 0 < float(hit["pair_matrix_q"]) <= 1 and int(hit["pair_matrix_rank"]) >= 1
    )
    assert hit["best_match"].split()[1] in {"SOX2", "POU5F1"} and float(hit["best_match_q"]) < 0.05
    n_scored = re.search(r"([\d,]+) distinct 15-mers", (analysed / "cooperative.tsv").read_text()).group(1)
    assert 190_000 < int(n_scored.replace(",", "")) <= 200_000


@pytest.mark.parametrize("argument, content, message", [
    ("pairs", None, "cannot read pair probe table"),
    ("pairs", "tf\tsequence\nA\tACGT\n", "needs columns 'pair' and 'sequence'"),
    ("pairs", "pair\tsequence\nA::B\tACGT\nA\tACGT\n", "no pair 'A::B' with probes of its own and of both"),
    ("pairs", "pair\tsequence\nA::B\tACXT\n", "letters other than ACGTN"),
    ("bias_motifs", "not a motif file\n", "no motif found"),
])
def test_bad_pair_or_bias_input_is_one_line_error(analysed, tmp_path, capsys, argument, content, message):
    path = tmp_path / "input.txt"
    if content is not None:
        path.write_text(content)
    code = analyze.main([f"run_dir={analysed.parent}", f"{argument}={path}", "motif_db=none"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert message in err and str(path) in err


def test_n_15mers_must_be_positive(analysed, capsys):
    assert analyze.main([f"run_dir={analysed.parent}", "n_15mers=0", "motif_db=none"]) == 2
    assert "n_15mers" in capsys.readouterr().err


def test_non_tf_topics_are_flagged_and_the_tf_topics_are_not(analysed):
    flags = _read(analysed / "topic_flags.tsv").set_index("topic")
    assert flags.loc[TOPIC["CA-repeat"], "flag"] == "low complexity"
    assert flags.loc[TOPIC["GC-rich"], "flag"] == "GC-rich background"
    assert flags.loc[TOPIC["Tn5"], "flag"] == "cutting bias" and flags.loc[TOPIC["Tn5"], "bias_motif"] == "Tn5"
    for feature in ("CEBPB", "SOX2"):
        assert flags.loc[TOPIC[feature], "flagged"].astype(str) == "False", feature


def test_flagged_topics_are_never_titled_with_tf_names(analysed):
    titles = _read(analysed / "topic_titles.tsv").set_index("topic")
    mapping = _read(analysed / "tf_mapping.tsv")
    flagged = [TOPIC[f] for f in ("CA-repeat", "GC-rich", "Tn5")]
    assert titles.loc[flagged, "title"].tolist() == ["low complexity (AC)n", "GC-rich background", "cutting bias (Tn5)"]
    assert not mapping.loc[mapping["topic"].isin(flagged), "assigned"].astype(str).eq("True").any()
    assert "CEBPB" in titles.loc[TOPIC["CEBPB"], "title"]


def test_report_groups_flagged_topics_apart_with_their_evidence(analysed):
    html = (analysed / "report.html").read_text()
    tf_part, flagged_part = html.split('id="flagged"')
    assert f'id="{TOPIC["CEBPB"]}"' in tf_part and f'id="{TOPIC["Tn5"]}"' not in tf_part
    for feature in ("CA-repeat", "GC-rich", "Tn5"):
        assert f'id="{TOPIC[feature]}"' in flagged_part
    assert "dinucleotide entropy" in flagged_part and "best match Tn5" in flagged_part
    assert "Cooperative binding" in tf_part and PAIR in tf_part


def test_planted_pair_is_read_from_the_truth_table():
    dataset = generated_set(n_peaks=400)
    first, second, spacing = pair_route.planted_pair(dataset.truth, dataset.motifs)
    assert (first.alt_name, second.alt_name, spacing) == ("SOX2", "POU5F1", SPACING)


@pytest.mark.parametrize("topics, route", [
    ("composite", "one composite topic"), ("partners apart", "two topics"), ("neither", "missed")])
def test_planted_pair_route_tells_one_composite_topic_from_two_topics_and_missed(topics, route):
    from tests.helpers.analysis import planted_model

    motifs = generated_set(n_peaks=50).motifs
    sox, oct_ = motifs["SOX2"].consensus, motifs["POU5F1"].consensus
    # A consensus shorter than 8 bp has no 8-mer of its own: partners alone are padded to 10 bp.
    planted = {"composite": [sox + oct_, "CTCGAGGTAC"], "partners apart": [f"T{sox}TT", f"T{oct_}TT", "CTCGAGGTAC"],
               "neither": ["CTCGAGGTAC", "GGATCCTTAA"]}[topics]
    model = planted_model(Vocabulary.gapped8(), planted, num_topics=len(planted))
    found = pair_route.planted_pair_route(model, motifs["SOX2"], motifs["POU5F1"], SPACING)
    assert found["route"] == route
    if route == "one composite topic":
        assert found["topic"] == "topic_000" and found["q_value"] < 0.05
    if route == "two topics":
        assert found["topic"] == "topic_000,topic_001"


def test_bias_topic_is_called_against_the_whole_jaspar_database(analysed):
    # Against all of JASPAR (880 motifs) the Tn5 topic's motif still ranks the bias motif first, and
    # its q corrects over the bias motifs only (over all 880 targets it would be about 0.3).
    from bindvae.analysis import flags
    from bindvae.motif import load_motif_database, read_meme

    motif = [m for m in read_meme(analysed / "motifs.meme") if m.name == TOPIC["Tn5"]]
    hit = flags.bias_matches(motif, flags.bias_motifs(), load_motif_database()).iloc[0]
    assert hit["bias_is_best"] and hit["bias_q"] < 0.05
