"""python -m experiments.featurize with many inputs, shard_size=N (sharded dataset) and workers=N (processes)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from bindvae.features import shards
from bindvae.features.formats import load_features
from bindvae.features.kmers import Vocabulary, featurize
from experiments.featurize import main


def write_fastas(tmp_path, sizes=(5, 9, 3)):
    rng = np.random.default_rng(11)
    paths, expected = [], {}
    for f, n in enumerate(sizes):
        records = {f"f{f}_s{i}": "".join(rng.choice(list("ACGT"), size=int(rng.integers(30, 90)))) for i in range(n)}
        records[f"f{f}_short"] = "ACG"
        path = tmp_path / f"in{f}.fa"
        path.write_text("".join(f">{k}\n{v}\n" for k, v in records.items()))
        paths.append(path)
        expected.update({k: v for k, v in records.items() if len(v) >= 8})
    return paths, expected


def read_all(index):
    parts = [shards.read_shard(index, i) for i in range(index.n_shards)]
    return sp.vstack([p[0] for p in parts], format="csr"), sum((p[1] for p in parts), [])


@pytest.mark.parametrize("workers", [1, 2])
def test_many_inputs_to_a_sharded_dataset(tmp_path, capsys, workers):
    paths, expected = write_fastas(tmp_path)
    out = tmp_path / "set"
    code = main([f"input={','.join(map(str, paths))}", f"output={out}", "shard_size=4", f"workers={workers}"])
    stdout = capsys.readouterr().out
    assert code == 0, stdout
    index = shards.open_shards(out)
    assert index.fingerprint == Vocabulary.gapped8().fingerprint and index.n_kmers == 112_800
    # each input's rows go to its own shards (<= 4 rows), in input order, whatever the worker count
    assert [s.n_sequences for s in index.shards] == [4, 1, 4, 4, 1, 3]
    X, names = read_all(index)
    assert names == list(expected)
    assert (X != featurize(list(expected.values()))).nnz == 0
    assert "featurize: 20 sequences in, 17 featurized, 3 skipped (3 shorter than 8 bp)" in stdout
    assert "(6 shards of <= 4 sequences)" in stdout
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("in")) == ["set"]


def test_many_inputs_to_one_npz_match_sharded(tmp_path, capsys):
    paths, expected = write_fastas(tmp_path)
    out = tmp_path / "all.npz"
    assert main([f"input={','.join(map(str, paths))}", f"output={out}"]) == 0
    X, names, _ = load_features(out)
    assert names == list(expected) and (X != featurize(list(expected.values()))).nnz == 0


def test_sharded_output_refuses_a_foreign_folder_and_keeps_old_set_on_failure(tmp_path, capsys):
    paths, _ = write_fastas(tmp_path)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert main([f"input={paths[0]}", f"output={foreign}", "shard_size=2", "overwrite=true"]) != 0
    assert "is not a sharded dataset" in capsys.readouterr().err and (foreign / "notes.txt").exists()
    out = tmp_path / "set"
    assert main([f"input={paths[0]}", f"output={out}", "shard_size=2"]) == 0
    assert main([f"input={paths[1]}", f"output={out}", "shard_size=2"]) != 0
    assert "exists; pass overwrite=true" in capsys.readouterr().err
    missing = tmp_path / "missing.fa"
    assert main([f"input={paths[1]},{missing}", f"output={out}", "shard_size=2", "overwrite=true"]) != 0
    assert capsys.readouterr().err.strip() == f"error: {missing}: no such file"
    assert shards.open_shards(out).n_sequences == 5  # the first dataset, untouched
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("in")) == ["mine", "set"]
