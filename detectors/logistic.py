"""L2-penalised binary logistic regression, solved exactly by Newton's method, for the detector's many small fits.

A detector's calibration fits thousands of small logistic models: for every cross-fitting fold, every generator's
expert, every value of the regularisation grid and every inner fold (docs/detect.md, "Fitting the logistic
models"). Each is a few hundred to a thousand rows of at most a few dozen standardised features, where
scikit-learn's ``LogisticRegression`` spends most of its time in input validation and its L-BFGS loop rather
than in arithmetic, and stops at a gradient tolerance of 1e-4, short of the optimum (decisions 0.03 apart from
the exact solution's on the demo's features). This module minimises the same objective as
``LogisticRegression(C=C)`` with its default L2 penalty,

    C * sum_i log(1 + exp(-s_i (x_i . w + b))) + 1/2 |w|^2,   s_i = 2 y_i - 1, the intercept b not penalised,

by Newton steps with a backtracking line search (Boyd and Vandenberghe, "Convex Optimization", 9.5) until the
Newton decrement is below ``tol`` times the objective (about its floating-point resolution). The problem is
strictly convex (the penalty makes the Hessian positive definite in w, and the intercept's curvature is the
sum of p (1 - p) over the rows), so the minimiser is unique and any exact solver gives it:
``tests/test_detect_logistic.py`` checks it against scikit-learn's Newton solver run to a tight tolerance.
BLAS threads cost more than they give on matrices this small: the detector fits its models under one.
"""

from __future__ import annotations

import logging

import numpy as np

from audit.errors import InputError

log = logging.getLogger(__name__)

TOL = 1e-15  # on the Newton decrement relative to the objective: half the decrement estimates how far the
# objective is above its minimum, so this stops at about its floating-point resolution
MAX_ITER = 100  # Newton steps; the problems met here take 6-10
QUADRATIC = 1e-6  # below this relative decrement the full Newton step is taken without a line search


def fit_logistic(
    X: np.ndarray, y: np.ndarray, C: float, *, tol: float = TOL, max_iter: int = MAX_ITER
) -> tuple[np.ndarray, float]:
    """The coefficients (d,) and the intercept of the L2-penalised logistic model of labels ``y`` (0 or 1, both
    present) on ``X`` (n, d), with inverse regularisation strength ``C`` (the module docstring's objective)."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or len(X) != len(y):
        raise InputError(f"logistic regression needs an (n, d) X and n labels, got {X.shape} and {y.shape}")
    if not np.isin(y, (0, 1)).all() or len(np.unique(y)) != 2:
        raise InputError("logistic regression needs labels 0 and 1, both present")
    if not C > 0:
        raise InputError(f"C must be positive, got {C}")
    n, d = X.shape
    A = np.hstack([X, np.ones((n, 1))])  # the intercept as a last column of ones
    target = y.astype(np.float64)
    sign = 2.0 * target - 1.0
    penalty = np.full(d + 1, 1.0 / C)
    penalty[-1] = 0.0  # the intercept is not penalised

    def objective(beta: np.ndarray) -> float:  # the module's objective divided by C
        return float(np.sum(np.logaddexp(0.0, -sign * (A @ beta))) + 0.5 * np.sum(penalty * beta * beta))

    beta = np.zeros(d + 1)
    value = objective(beta)
    for _ in range(max_iter):
        p = _sigmoid(A @ beta)
        gradient = A.T @ (p - target) + penalty * beta
        hessian = (A.T * (p * (1.0 - p))) @ A + np.diag(penalty)
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:  # the intercept's curvature underflowed (all p at 0 or 1)
            step = np.linalg.lstsq(hessian, gradient, rcond=None)[0]
        decrement = float(gradient @ step)
        if decrement <= tol * max(value, np.finfo(np.float64).tiny):
            break
        if decrement <= QUADRATIC * value:  # Newton's quadratic convergence: the full step, no search
            beta = beta - step
            value = objective(beta)
            continue
        t = 1.0
        while True:  # backtracking (Armijo): Newton's full step is taken near the optimum
            candidate = beta - t * step
            new_value = objective(candidate)
            if new_value <= value - 0.25 * t * decrement or t < 1e-10:
                break
            t *= 0.5
        if new_value > value:  # no step lowers the objective: at the optimum to floating-point precision
            break
        beta, value = candidate, new_value
    else:
        log.warning("logistic regression: %d Newton steps without converging (decrement %.3g)", max_iter, decrement)
    return beta[:-1], float(beta[-1])


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)) without overflow for large |z|."""
    out = np.empty_like(z)
    positive = z >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-z[positive]))
    e = np.exp(z[~positive])
    out[~positive] = e / (1.0 + e)
    return out
