"""The run's report shows a section per further analysis (projection, ChIP overlap, comparison) that was run."""

from __future__ import annotations

import pandas as pd

from bindvae.analysis import other_analyses


def _table(path, **columns):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# a note\n" + pd.DataFrame(columns).to_csv(sep="\t", index=False))


def test_sections_appear_for_the_analyses_run_and_refreshing_keeps_one_block(tmp_path):
    assert not other_analyses.refresh(tmp_path)  # no report yet: nothing written
    (tmp_path / "report.html").write_text("<html><body><h1>run</h1></body></html>")
    _table(tmp_path / "projection" / "set_topic_auroc.tsv", set=["CTCF"] * 30, topic=range(30), auroc=[0.97] * 30)
    (tmp_path / "projection" / "umap.png").write_bytes(b"png")
    assert other_analyses.refresh(tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert 'id="analysis-projection"' in html and 'src="projection/umap.png"' in html
    assert "first 20 of 30 rows" in html and html.count("<td>CTCF</td>") == 20
    assert 'id="analysis-chip_overlap"' not in html and "best_topic_boxplots.png" not in html  # absent files
    _table(tmp_path / "chip_overlap" / "overlap_scores.tsv", tf=["NRF1"], topic=[2], p_value=[1e-12])
    other_analyses.refresh(tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert html.count(other_analyses.START) == 1 and html.count('id="analysis-projection"') == 1
    assert html.index('id="analysis-projection"') < html.index('id="analysis-chip_overlap"') < html.index("</body>")
    assert "<td>1e-12</td>" in html
