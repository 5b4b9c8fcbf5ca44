"""One alphabet and code table for every reader of DNA (featurizer, inference, site scans, yardsticks)."""

from __future__ import annotations

import numpy as np

from bindvae import dna


def test_codes_are_case_insensitive_and_everything_else_is_not_a_base():
    np.testing.assert_array_equal(dna.codes("ACGTacgtNnRé-"), [0, 1, 2, 3, 0, 1, 2, 3, 4, 4, 4, 4, 4])
    assert dna.BASE_CODE.dtype == np.int8 and not dna.BASE_CODE.flags.writeable


def test_padded_codes_and_the_complement_of_codes_match_the_letters():
    padded = dna.encode_padded(["ACGTN", "gg", ""])
    np.testing.assert_array_equal(padded, [[0, 1, 2, 3, 4], [2, 2, 4, 4, 4], [4, 4, 4, 4, 4]])
    assert dna.encode_padded([]).shape == (0, 0)
    sequence = "AACGTTNGCa"
    np.testing.assert_array_equal(
        dna.COMPLEMENT[dna.codes(sequence)][::-1], dna.codes(dna.reverse_complement(sequence))
    )
    assert dna.reverse_complement("AACGTTNGCa") == "tGCNAACGTT"
