"""Holm and Benjamini-Hochberg over a family of tests: the textbook adjustments, and a
family-wise error rate at alpha where raw p-values exceed it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from nnlab.analysis import Family, adjust, benjamini_hochberg, holm
from nnlab.analysis.distribution import HypothesisTest
from nnlab.errors import NNLabError


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> cummax
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])


def test_benjamini_hochberg_is_scipys():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205])
    np.testing.assert_allclose(benjamini_hochberg(p), stats.false_discovery_control(p))
    np.testing.assert_allclose(adjust(p, "bh"), benjamini_hochberg(p))
    assert np.all(adjust(p) >= benjamini_hochberg(p))  # Holm is the stricter


def test_holm_keeps_the_family_wise_error_rate_where_raw_p_values_do_not():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=(4000, 10))  # ten true null hypotheses per family
    raw = np.mean((p < 0.05).any(axis=1))
    adjusted = np.mean([(holm(row) < 0.05).any() for row in p])
    assert raw > 0.35 and adjusted <= 0.06


def test_a_family_collects_named_tests_and_shows_raw_beside_adjusted():
    family = Family("does noise change the spread?")
    family.add("grad 1e-3", HypothesisTest("Pitman-Morgan", 0.3, 0.01))
    family.add("grad 1e-4", HypothesisTest("Pitman-Morgan", 0.1, 0.04)).add("weight", 0.5)
    assert family.adjusted == pytest.approx({"grad 1e-3": 0.03, "grad 1e-4": 0.08,
                                             "weight": 0.5})
    assert family.p_text("grad 1e-3") == "0.01 (Holm 0.03)"
    table = family.table()
    assert list(table["rejects"]) == [True, False, False]
    assert "3 tests, Holm-adjusted at alpha=0.05: 1 reject" in family.summary()
    json.dumps(family.to_dict())
    with pytest.raises(NNLabError, match="already holds a test named 'weight'"):
        family.add("weight", 0.2)
    with pytest.raises(NNLabError, match="method: expected one of"):
        Family("q", method="bonferroni")
    with pytest.raises(NNLabError, match="p_values: expected one or more numbers in"):
        holm([0.2, 1.5])
