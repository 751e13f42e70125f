"""FID: parity with clean-fid's Frechet distance, a case worked by hand, clear errors for too few samples."""

from __future__ import annotations

import numpy as np
import pytest

from audit.errors import InputError
from audit.metrics import fid, frechet_distance


def test_parity_with_clean_fid(rng: np.random.Generator) -> None:
    cleanfid = pytest.importorskip("cleanfid.fid", reason="clean-fid (the fid extra) is the reference")
    real = rng.normal(size=(400, 16))
    fake = rng.normal(loc=0.3, scale=1.2, size=(300, 16)) @ rng.normal(size=(16, 16)) * 0.3
    mu1, s1 = real.mean(0), np.cov(real, rowvar=False)
    mu2, s2 = fake.mean(0), np.cov(fake, rowvar=False)
    expected = cleanfid.frechet_distance(mu1, s1, mu2, s2)
    assert fid(real, fake) == pytest.approx(expected, rel=1e-6)


def test_one_dimension_by_hand() -> None:
    # N(mu1, v1) vs N(mu2, v2) in 1-D: (mu1 - mu2)^2 + v1 + v2 - 2 sqrt(v1 v2)
    assert frechet_distance(np.array([0.0]), np.array([[1.0]]), np.array([3.0]), np.array([[4.0]])) == pytest.approx(
        9.0 + 1.0 + 4.0 - 2.0 * 2.0
    )
    real = np.array([[0.0], [2.0], [4.0]])  # mean 2, unbiased variance 4
    fake = np.array([[1.0], [2.0], [3.0]])  # mean 2, variance 1
    assert fid(real, fake) == pytest.approx(4.0 + 1.0 - 2.0 * 2.0)


def test_identical_sets_give_zero(rng: np.random.Generator) -> None:
    x = rng.normal(size=(200, 8))
    assert abs(fid(x, x)) < 1e-8


def test_too_few_samples_is_a_clear_error(rng: np.random.Generator) -> None:
    with pytest.raises(InputError, match="at least 2 real samples"):
        fid(rng.normal(size=(1, 4)), rng.normal(size=(10, 4)))
    with pytest.raises(InputError, match="more fake samples than feature dimensions"):
        fid(rng.normal(size=(50, 8)), rng.normal(size=(8, 8)))
    value = fid(rng.normal(size=(50, 8)), rng.normal(size=(8, 8)), allow_singular=True)
    assert np.isfinite(value) and isinstance(value, float)
    with pytest.raises(InputError, match="differ in dimension"):
        fid(rng.normal(size=(50, 8)), rng.normal(size=(50, 9)))
    with pytest.raises(InputError, match="NaN"):
        fid(np.full((50, 2), np.nan), rng.normal(size=(50, 2)))
