"""The detector's logistic regression (detectors/logistic.py): scikit-learn's L2 objective, solved exactly."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from audit.errors import InputError
from detectors.logistic import fit_logistic


def _reference(features: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """scikit-learn's solution, its Newton solver run to a tolerance far below its default."""
    model = LogisticRegression(C=c, tol=1e-12, max_iter=100_000, solver="newton-cholesky").fit(features, y)
    return model.coef_[0], float(model.intercept_[0])


def _problems() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(11)
    overlapping = rng.normal(size=(300, 8)) + np.repeat([[0.0], [0.6]], 150, axis=0)
    separable = np.r_[rng.normal(-3, 1, (40, 3)), rng.normal(3, 1, (40, 3))]
    imbalanced = np.r_[rng.normal(0, 1, (200, 5)), rng.normal(1, 1, (5, 5))]
    constant = np.c_[overlapping[:, :3], np.zeros(300)]  # a column without variance (standardised to zeros)
    return {
        "overlapping": (overlapping, np.repeat([0, 1], 150)),
        "separable": (separable, np.repeat([0, 1], 40)),
        "imbalanced": (imbalanced, np.r_[np.zeros(200, int), np.ones(5, int)]),
        "constant column": (constant, np.repeat([0, 1], 150)),
    }


@pytest.mark.parametrize("c", [0.01, 0.1, 1.0, 10.0, 1e4])
@pytest.mark.parametrize("name", list(_problems()))
def test_the_solution_is_scikit_learns(name: str, c: float) -> None:
    C = c
    X, y = _problems()[name]
    coef, intercept = fit_logistic(X, y, C)
    ref_coef, ref_intercept = _reference(X, y, C)
    scale = 1.0 + np.abs(ref_coef).max()
    assert np.abs(coef - ref_coef).max() < 1e-6 * scale and abs(intercept - ref_intercept) < 1e-6 * scale
    # and the optimality condition worked by hand (the objective divided by C): X^T (p - y) + w / C = 0,
    # sum(p - y) = 0
    p = 1.0 / (1.0 + np.exp(-(X @ coef + intercept)))
    assert np.abs(X.T @ (p - y) + coef / C).max() < 1e-5 and abs(np.sum(p - y)) < 1e-5
    if name == "constant column":
        assert coef[-1] == 0.0


def test_the_default_solver_stops_short_of_the_optimum_this_one_reaches() -> None:
    """Why the detector does not call LogisticRegression as it is: L-BFGS at its default tolerance (1e-4) ends
    measurably away from the minimiser on weakly regularised problems; this solver's objective is lower."""
    X, y = _problems()["separable"]
    coef, intercept = fit_logistic(X, y, 10.0)
    default = LogisticRegression(C=10.0, max_iter=5000).fit(X, y)

    def objective(w: np.ndarray, b: float) -> float:
        return float(10.0 * np.sum(np.logaddexp(0.0, -(2 * y - 1) * (X @ w + b))) + 0.5 * w @ w)

    assert objective(coef, intercept) <= objective(default.coef_[0], float(default.intercept_[0]))


def test_bad_input_is_refused() -> None:
    X = np.zeros((4, 2))
    with pytest.raises(InputError, match="labels 0 and 1, both present"):
        fit_logistic(X, np.zeros(4, int), 1.0)
    with pytest.raises(InputError, match="labels 0 and 1"):
        fit_logistic(X, np.array([0, 1, 2, 1]), 1.0)
    with pytest.raises(InputError, match="C must be positive"):
        fit_logistic(X, np.array([0, 1, 0, 1]), 0.0)
    with pytest.raises(InputError, match=r"\(n, d\) X"):
        fit_logistic(np.zeros(4), np.array([0, 1, 0, 1]), 1.0)
