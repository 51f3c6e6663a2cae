"""The drift statistics: MMD permutation test, out-of-support p-value, BH, kNN reference."""

from __future__ import annotations

import numpy as np

from dissensus.analytics.drift.reference import build_reference, joint_features
from dissensus.analytics.drift.twosample import (
    benjamini_hochberg,
    exceedance_p_value,
    fisher_greater,
    fisher_two_sided,
    mmd_permutation_test,
    simes,
)


def test_mmd_holds_its_level_and_finds_a_shift() -> None:
    rng = np.random.default_rng(0)
    null = [mmd_permutation_test(rng.normal(size=(60, 8)), rng.normal(size=(60, 8)),
                                 permutations=300, seed=s)[1] for s in range(40)]
    assert np.mean(np.array(null) <= 0.05) <= 0.15  # 5% level, 40 draws
    shifted = rng.normal(size=(60, 8))
    shifted[:, 0] += 1.0
    _, p = mmd_permutation_test(shifted, rng.normal(size=(60, 8)), permutations=300)
    assert p < 0.01


def test_exceedance_p_value_is_beta_binomial() -> None:
    # 1% beyond, as the held-out set promises: nothing to see
    assert exceedance_p_value(2, 200, 1000, 10) > 0.3
    # a third of the turns beyond the 99th percentile: overwhelming
    assert exceedance_p_value(60, 200, 1000, 10) < 1e-10
    assert exceedance_p_value(0, 200, 1000, 10) == 1.0
    assert fisher_greater(30, 100, 1, 100) < 1e-6 and fisher_greater(1, 100, 1, 100) > 0.5


def test_a_rate_that_falls_is_as_visible_as_one_that_rises() -> None:
    fell, rose = fisher_two_sided(25, 100, 55, 100), fisher_two_sided(55, 100, 25, 100)
    assert fell == rose < 1e-4
    assert fisher_two_sided(50, 100, 52, 100) > 0.5
    assert fisher_two_sided(0, 0, 5, 10) == 1.0


def test_simes_combines_a_cells_rates() -> None:
    assert simes([]) == 1.0
    assert simes([0.01]) == 0.01
    assert simes([0.01, 0.5, 0.9]) == 0.03  # the smallest, times the number of tests
    assert simes([0.02, 0.025]) == 0.025  # two small ones support each other
    assert simes([0.9, 0.95]) == 0.95


def test_benjamini_hochberg_rejects_only_small_p_values() -> None:
    p = np.array([0.0001, 0.0004, 0.2, 0.5, 0.9] + [0.3] * 20)
    assert benjamini_hochberg(p, 0.05).tolist()[:5] == [True, True, False, False, False]
    assert benjamini_hochberg(np.full(50, 0.04), 0.05).all()  # all equal: all rejected
    assert not benjamini_hochberg(np.array([0.04] + [0.9] * 49), 0.05).any()
    assert benjamini_hochberg(np.array([]), 0.05).size == 0


def _unit(rng: np.random.Generator, n: int, dims: slice) -> np.ndarray:
    """``n`` random unit vectors in 32 dimensions, non-zero only in ``dims``."""
    out = np.zeros((n, 32), np.float32)
    out[:, dims] = rng.normal(size=(n, dims.stop - dims.start))
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_held_out_percentiles_are_calibrated_and_new_points_are_far() -> None:
    rng = np.random.default_rng(1)
    old = slice(0, 8)
    features = joint_features(_unit(rng, 900, old), _unit(rng, 900, old))
    groups = [f"p{i // 3}" for i in range(900)]  # three replies per prompt
    reference, held, _ = build_reference(features, groups, n_components=4)
    assert 0.1 < held.mean() < 0.3
    same = joint_features(_unit(rng, 2000, old), _unit(rng, 2000, old))
    new = joint_features(_unit(rng, 200, slice(8, 16)), _unit(rng, 200, old))
    share_same = (reference.distance(same) > reference.p99).mean()
    assert share_same < 0.03  # 1% expected
    assert (reference.distance(new) > reference.p99).mean() > 0.9
    percentiles = reference.percentile(reference.distance(same))
    assert 40 < np.median(percentiles) < 60
    assert reference.project(features).shape == (900, 4)
