"""The linear autoregression: ridge least squares from the flattened window to
every horizon step. A baseline every network is scored against, the start of
the linear skip (`models.skip`), and how `auto` settings are chosen
(`models.selection`). NumPy only.

Shape legend: W windows, L input steps, C input features, T horizon, K targets.
"""

import numpy as np


def fit_linear_baseline(
    x: np.ndarray, y: np.ndarray, ridge: float = 1e-3
) -> np.ndarray:
    """Ridge least squares from the flattened window to all horizon steps.

    Args:
        x: (W, L, C) training windows; y: (W, T, K) their targets.

    Returns:
        coefficients of shape (L*C + 1, T*K); the last row is the intercept.
    """
    design = _design(x)  # (W, L*C + 1)
    penalty = ridge * np.eye(design.shape[1])
    penalty[-1, -1] = 0.0  # never shrink the intercept
    gram = design.T @ design + penalty
    return np.linalg.solve(gram, design.T @ y.reshape(len(y), -1))


def predict_linear_baseline(
    coef: np.ndarray, x: np.ndarray, output_shape
) -> np.ndarray:
    """(W, L, C) -> (W, T, K) with coefficients from `fit_linear_baseline`."""
    return (_design(x) @ coef).reshape(len(x), *output_shape)


def _design(x: np.ndarray) -> np.ndarray:
    flat = np.asarray(x, np.float64).reshape(len(x), -1)
    return np.hstack([flat, np.ones((len(x), 1))])
