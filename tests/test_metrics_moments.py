"""Mergeable statistics: the merged value equals the one-pass value, for any split into shards."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from audit.errors import InputError
from audit.metrics.moments import CosineSecondMoment, Moments, frechet_from_moments, merge_all


def _splits(n: int, rng: np.random.Generator, parts: int) -> list[slice]:
    cuts = np.sort(rng.choice(np.arange(1, n), size=parts - 1, replace=False))
    edges = [0, *cuts.tolist(), n]
    return [slice(a, b) for a, b in itertools.pairwise(edges)]


def test_merged_moments_equal_one_pass_mean_and_covariance(rng) -> None:
    x = rng.normal(5.0, 3.0, size=(1000, 16)) + 1e4  # a large offset: the naive formula would lose digits
    for parts in (2, 3, 7, 50):
        merged = merge_all([Moments.of(x[s]) for s in _splits(len(x), rng, parts)])
        assert merged.n == 1000
        np.testing.assert_allclose(merged.mean, x.mean(axis=0), rtol=1e-14)
        np.testing.assert_allclose(merged.covariance(), np.cov(x, rowvar=False), rtol=1e-9, atol=1e-9)


def test_fid_from_merged_moments_equals_the_one_process_fid(rng) -> None:
    from audit.metrics.frechet import fid

    real = rng.normal(size=(600, 8))
    fake = rng.normal(0.3, 1.2, size=(500, 8))
    expected = fid(real, fake)
    got = frechet_from_moments(
        merge_all([Moments.of(real[s]) for s in _splits(600, rng, 5)]),
        merge_all([Moments.of(fake[s]) for s in _splits(500, rng, 4)]),
    )
    assert got == pytest.approx(expected, rel=1e-10)
    # worked by hand in one dimension: N(0, 1) vs N(2, 4): (0-2)^2 + 1 + 4 - 2*sqrt(1*4) = 5
    a = Moments(3, np.array([0.0]), np.array([[2.0]]))  # variance 2 / (3 - 1) = 1
    b = Moments(5, np.array([2.0]), np.array([[16.0]]))  # variance 16 / 4 = 4
    assert frechet_from_moments(a, b) == pytest.approx(5.0, abs=1e-12)


def test_vendi_from_merged_second_moments_equals_the_one_pass_vendi(rng) -> None:
    from audit.metrics.vendi import vendi_score

    x = rng.normal(size=(300, 12))
    merged = merge_all([CosineSecondMoment.of(x[s]) for s in _splits(300, rng, 6)])
    assert merged.vendi() == pytest.approx(vendi_score(x), rel=1e-10)
    identical = CosineSecondMoment.of(np.ones((10, 4))).merge(CosineSecondMoment.of(np.ones((5, 4)) * 3))
    assert identical.vendi() == pytest.approx(1.0)  # one direction: one effective sample


def test_bad_merges_are_clear_errors() -> None:
    with pytest.raises(InputError, match="feature dimensions differ"):
        Moments.of(np.ones((3, 2))).merge(Moments.of(np.ones((3, 4))))
    with pytest.raises(InputError, match="nothing to merge"):
        merge_all([])
    with pytest.raises(InputError, match="at least 2 rows"):
        Moments.of(np.ones((1, 2))).covariance()
