"""Block resampling (audit.metrics.blocks) and the float32 neighbour passes: each blocked draw equals the
metric computed directly on the images its blocks stand for, and block intervals are as wide as the
sampling spread they estimate."""

from __future__ import annotations

import numpy as np
import pytest

from audit.metrics.blocks import (
    CosineBlocks,
    FrechetBlocks,
    block_count,
    block_labels,
    bootstrap_weights,
    half_weights,
)
from audit.metrics.frechet import gaussian_stats
from audit.metrics.neighbour_passes import NeighbourPasses
from audit.metrics.resampling import FrechetToReference
from audit.metrics.vendi import vendi_score


def _rows_of(labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The image indices a block weighting stands for (a block counted twice appears twice)."""
    return np.concatenate([np.nonzero(labels == b)[0] for b, w in enumerate(weights) for _ in range(int(w))])


def test_block_labels_are_a_balanced_seeded_partition() -> None:
    labels = block_labels(1000, seed=4, blocks=32)
    counts = np.bincount(labels, minlength=32)
    assert counts.min() == 31 and counts.max() == 32 and counts.sum() == 1000
    assert np.array_equal(labels, block_labels(1000, seed=4, blocks=32))  # the same draws in every cell
    assert not np.array_equal(labels, block_labels(1000, seed=5, blocks=32))
    assert not np.array_equal(labels[:32], np.arange(32))  # not the generation order
    with pytest.raises(ValueError, match="at least 64"):
        block_labels(63, seed=0, blocks=32)


def test_block_draws_equal_the_metrics_on_the_images_they_stand_for() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(600, 7))
    fake = rng.normal(0.2, 1.2, size=(500, 7)) @ rng.normal(size=(7, 7))
    labels = block_labels(len(fake), seed=1, blocks=32)
    exact = FrechetToReference(*gaussian_stats(real))
    frechet, cosine = FrechetBlocks(*gaussian_stats(real), fake, labels), CosineBlocks(fake, labels)
    assert frechet(np.ones(32)) == pytest.approx(exact(fake), rel=1e-10)
    assert cosine(np.ones(32)) == pytest.approx(vendi_score(fake), rel=1e-10)
    draws = np.random.default_rng(2)
    for _ in range(5):
        weights = bootstrap_weights(draws, 32)
        assert weights.sum() == 32 and weights.max() > 1  # with replacement
        assert frechet(weights) == pytest.approx(exact(fake[_rows_of(labels, weights)]), rel=1e-10)
        half = half_weights(draws, 32)
        assert sorted(set(half)) == [0.0, 1.0] and half.sum() == 16
        assert cosine(half) == pytest.approx(vendi_score(fake[_rows_of(labels, half)]), rel=1e-10)


def test_kernel_block_sums_give_the_unbiased_mmd_of_the_chosen_blocks() -> None:
    rng = np.random.default_rng(5)
    real, fake = rng.normal(size=(300, 5)), rng.normal(0.4, 1.0, size=(256, 5))
    labels = block_labels(len(fake), seed=3, blocks=32)
    kernel = NeighbourPasses(real, fake, labels).kernel

    def k(a, b):  # cubic polynomial kernel, written out
        return (a @ b.T / 5 + 1.0) ** 3

    draws = np.random.default_rng(6)
    for _ in range(4):
        weights = half_weights(draws, 32)
        f = fake[_rows_of(labels, weights)]
        m, n = len(f), len(real)
        expected = (
            (k(real, real).sum() - np.trace(k(real, real))) / (n * (n - 1))
            + (k(f, f).sum() - np.trace(k(f, f))) / (m * (m - 1))
            - 2 * k(real, f).mean()
        )
        assert kernel(weights) == pytest.approx(expected, rel=1e-5, abs=1e-7)  # float32 Gram blocks


def test_block_bootstrap_spread_matches_the_spread_over_fresh_samples() -> None:
    """The block bootstrap's standard deviation of FID against FID's standard deviation over 200 fresh
    generated sets from the same distribution (the quantity an interval must capture), at the block
    count chosen for 6-d features (256) and at the fewest (32, where the width is itself noisier)."""
    rng = np.random.default_rng(9)
    dims, n = 6, 2000
    mix = rng.normal(size=(dims, dims))
    real = rng.normal(size=(4000, dims))
    reference = FrechetToReference(*gaussian_stats(real))
    fresh = [reference(rng.normal(0.1, 1.0, size=(n, dims)) @ mix) for _ in range(200)]
    fake = rng.normal(0.1, 1.0, size=(n, dims)) @ mix
    assert block_count(n, dims) == 256 and block_count(n, 2048) == 32 and block_count(100, 6) == 50
    for blocks, (low, high) in [(256, (0.8, 1.25)), (32, (0.6, 1.4))]:
        frechet = FrechetBlocks(*gaussian_stats(real), fake, block_labels(n, seed=0, blocks=blocks))
        draws = np.random.default_rng(1)
        spread = np.std([frechet(bootstrap_weights(draws, blocks)) for _ in range(400)], ddof=1)
        ratio = spread / np.std(fresh, ddof=1)
        assert low < ratio < high, (blocks, ratio)


def test_a_zero_feature_vector_is_refused_by_blocks_as_by_the_direct_vendi() -> None:
    from audit.errors import InputError

    fake = np.random.default_rng(0).normal(size=(100, 4))
    fake[17] = 0.0
    with pytest.raises(InputError, match="all zeros"):
        vendi_score(fake)
    with pytest.raises(InputError, match="all zeros"):
        CosineBlocks(fake, block_labels(100, seed=0, blocks=32))
