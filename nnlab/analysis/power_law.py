"""Power-law fits y = a * x^-b with bootstrap confidence intervals."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from nnlab.analysis._bootstrap import Estimate, estimate, interval, resample_groups
from nnlab.analysis._checks import check_resampling, finite_values
from nnlab.errors import ConfigError, DataError, InsufficientData, is_number

METHODS = ("ols", "wls", "nls")
_WHERE = "fit_power_law"
MIN_HEADLINE_POINTS = 5  # a fit on fewer distinct x is exploratory
# A fit that leaves more than a tenth of the variance (in its fit space) unexplained is not
# one power law over its range. On simulated studies with a true power law (10 seeds, 7
# lengths; tests/test_analysis_coverage.py) R^2 was 0.972 at the lowest in 200; eta-vs-n's
# single power law over a plateau and a fall has 0.36.
MIN_R_SQUARED = 0.9


def r_squared(residuals: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None
              ) -> float:
    """1 - (weighted) residual sum of squares over the sum of squares of `y` (n,) about
    its (weighted) mean; 1.0 where `y` does not vary (nothing is left to explain)."""
    w = np.ones_like(y) if weights is None else weights
    total = np.sum(w * (y - np.sum(w * y) / np.sum(w)) ** 2)
    return float(1 - np.sum(w * residuals**2) / total) if total > 0 else 1.0


def exploratory_reasons(value: Estimate, n_points: int, r_squared: float | None = None
                        ) -> list[str]:
    """Why a fitted value is exploratory, not a headline (empty: it may be one): fewer
    than MIN_HEADLINE_POINTS points (distinct x) behind it, an interval wider than the
    estimate itself, or a fit with R^2 below MIN_R_SQUARED."""
    reasons = []
    if n_points < MIN_HEADLINE_POINTS:
        reasons.append(f"{n_points} points, fewer than {MIN_HEADLINE_POINTS}")
    if not (value.high - value.low <= abs(value.value)):
        reasons.append("a CI wider than the estimate")
    if r_squared is not None and not r_squared >= MIN_R_SQUARED:
        reasons.append(f"R^2 = {r_squared:.2f} below {MIN_R_SQUARED:g}")
    return reasons


@dataclass(frozen=True)
class PowerLawFit:
    """y = prefactor * x^-exponent fitted to n points.

    `residuals` (n,) are in the space of the fit: log(y) - log(fitted) for "ols"/"wls",
    y - fitted for "nls"; `r_squared` is measured in that space too. `boot_log_prefactor` and
    `boot_exponent` (n_resamples,) are the bootstrap fits behind the intervals and the band.
    `exploratory` (with `exploratory_reasons`): fewer than 5 distinct x, a CI of b wider
    than b, or R^2 below 0.9; such a fit is not a headline.
    """

    prefactor: Estimate
    exponent: Estimate
    r_squared: float
    residuals: np.ndarray
    x: np.ndarray
    y: np.ndarray
    method: str
    resampling: str
    boot_log_prefactor: np.ndarray = field(repr=False)
    boot_exponent: np.ndarray = field(repr=False)

    @property
    def n(self) -> int:
        return int(self.x.size)

    @property
    def exploratory_reasons(self) -> list[str]:
        """Why the fit is exploratory (`exploratory_reasons` of b, over distinct x)."""
        return exploratory_reasons(self.exponent, int(np.unique(self.x).size),
                                   self.r_squared)

    @property
    def exploratory(self) -> bool:
        return bool(self.exploratory_reasons)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Fitted y at x (any shape)."""
        return self.prefactor.value * np.asarray(x, dtype=float) ** -self.exponent.value

    def inverse(self, y: float) -> Estimate:
        """The x at which the fitted curve reaches y, (a / y)^(1/b), with its bootstrap
        interval (from the same resampled fits as a and b)."""
        if not (is_number(y) and y > 0):
            raise ConfigError("PowerLawFit.inverse.y", "a positive number", y)
        boot = np.exp((self.boot_log_prefactor - math.log(y)) / self.boot_exponent)
        value = (self.prefactor.value / y) ** (1 / self.exponent.value)
        return estimate(value, boot, self.exponent.confidence)

    def band(self, x: np.ndarray, confidence: float | None = None) -> tuple:
        """Pointwise bootstrap band (low, high) of the fitted curve at x (m,)."""
        log_x = np.log(np.asarray(x, dtype=float))
        curves = self.boot_log_prefactor[:, None] - self.boot_exponent[:, None] * log_x
        low, high = interval(curves, confidence or self.exponent.confidence)
        return np.exp(low), np.exp(high)

    def summary(self) -> str:
        space = "linear" if self.method == "nls" else "log"
        return (
            f"power law y = a x^-b ({_METHOD_NAMES[self.method]}, n={self.n} points, "
            f"CI by bootstrap of {self.resampling}, {self.boot_exponent.size} resamples): "
            f"b = {self.exponent}, a = {self.prefactor}, R^2 = {self.r_squared:.3f} ({space})"
            + (f"; exploratory: {', '.join(self.exploratory_reasons)}" if self.exploratory
               else "")
        )

    def to_dict(self) -> dict:
        return {
            "prefactor": self.prefactor.to_dict(),
            "exponent": self.exponent.to_dict(),
            "r_squared": float(self.r_squared),
            "n": self.n,
            "exploratory": self.exploratory,
            "exploratory_reasons": self.exploratory_reasons,
            "method": self.method,
            "resampling": self.resampling,
            "n_resamples": int(self.boot_exponent.size),
            "x": self.x.tolist(),
            "y": self.y.tolist(),
            "residuals": self.residuals.tolist(),
        }


_METHOD_NAMES = {
    "ols": "log-log least squares",
    "wls": "weighted log-log least squares",
    "nls": "nonlinear least squares",
}


def fit_power_law(
    x: object,
    y: object,
    *,
    method: str = "ols",
    weights: object | None = None,
    y_boot: object | None = None,
    boot_unit: str | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PowerLawFit:
    """Fit y = a * x^-b; return a, b with bootstrap CIs, R^2 and residuals.

    x, y: (n,) positive numbers; x may repeat (replicates, e.g. one y per seed).
    method: "ols" least squares of log y on log x; "wls" the same weighted by `weights`;
        "nls" least squares on y itself (Levenberg-Marquardt from the log-log fit),
        weighted when `weights` are given.
    weights: (n,) positive, for "wls"/"nls"; for "wls" without weights, the inverse
        variance of each point's log in `y_boot`.
    y_boot: (n_resamples, n) bootstrap replicates of y (e.g. from `eta_best`); the fit is
        repeated on each row, so their uncertainty propagates to a and b.
    boot_unit: what y_boot's rows resample ("seeds" for `eta_best`'s), named in the summary.
    Without y_boot the bootstrap resamples the replicates within each x when every x has at
    least 2, and the residuals of the fit otherwise; these intervals are widened by
    t_df / z (df = residual degrees of freedom), a small-sample correction.
    """
    if method not in METHODS:
        raise ConfigError(f"{_WHERE}.method", f"one of {METHODS}", method)
    check_resampling(n_resamples, confidence, _WHERE)
    x, y = checked_xy(x, y, 3, _WHERE)
    if weights is not None and method == "ols":
        raise ConfigError(f"{_WHERE}.weights", "None with method='ols' (weights need "
                          "method='wls' or 'nls')", shown="weights")

    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    log_space = method != "nls"
    to_fit_space = np.log if log_space else np.asarray
    y_fit = to_fit_space(y)
    rng = np.random.default_rng(seed)
    boot_fit, resampling, df = bootstrap_in_fit_space(
        x, y_fit, y_boot, order, log_space, n_resamples, rng, _WHERE, boot_unit)
    if boot_fit is None:
        df = x.size - 2

    w = _weights(method, weights, order, boot_fit if y_boot is not None else None)
    log_a, b = _fit(x, y_fit[None, :], w, method)
    fitted = _model(x, log_a, b, log_space)[0]
    residuals = y_fit - fitted
    if boot_fit is None:
        boot_fit = _resample_residuals(fitted, residuals, w, n_resamples, rng)
    boot_log_a, boot_b = _fit(x, boot_fit, w, method)
    if df is not None:
        # small-sample correction: widen the bootstrap spread by t_df / z
        factor = t_over_z(df, confidence)
        boot_log_a = log_a[0] + factor * (boot_log_a - log_a[0])
        boot_b = b[0] + factor * (boot_b - b[0])

    return PowerLawFit(
        prefactor=estimate(math.exp(log_a[0]), np.exp(boot_log_a), confidence),
        exponent=estimate(b[0], boot_b, confidence),
        r_squared=r_squared(residuals, y_fit, w),
        residuals=residuals,
        x=x,
        y=y,
        method=method,
        resampling=resampling,
        boot_log_prefactor=boot_log_a,
        boot_exponent=boot_b,
    )


def t_over_z(df: int, confidence: float) -> float:
    """t_df / z at the two-sided `confidence`: how much wider a t interval with df degrees
    of freedom is than a normal one (the small-sample widening of bootstrap spreads)."""
    upper = 1 - (1 - confidence) / 2
    return float(stats.t.ppf(upper, df) / stats.norm.ppf(upper))


def checked_xy(x: object, y: object, min_distinct: int, where: str
               ) -> tuple[np.ndarray, np.ndarray]:
    """x, y as (n,) float arrays of positive finite numbers, x with at least
    `min_distinct` distinct values; else NNLabError naming the argument."""
    x = finite_values(x, "x", min_distinct, where)
    y = finite_values(y, "y", 1, where)
    if x.size != y.size:
        raise ConfigError(f"{where}.y", f"{x.size} values like x", shown=f"{y.size}")
    for name, values in (("x", x), ("y", y)):
        if np.any(values <= 0):
            raise DataError(f"{where}.{name}: expected positive numbers, got {values.min()}")
    if np.unique(x).size < min_distinct:
        raise InsufficientData(f"{where}.x: needs at least {min_distinct} distinct values, got "
                               f"{np.unique(x)}")
    return x, y


def bootstrap_in_fit_space(x: np.ndarray, y_fit: np.ndarray, y_boot: object | None,
                           order: np.ndarray, log_space: bool, n_resamples: int,
                           rng: np.random.Generator, where: str,
                           boot_unit: str | None = None) -> tuple:
    """(boot (n_resamples, n) in fit space or None, resampling text, df or None).

    x (n,) sorted, y_fit (n,) in fit space in that order; `order` sorts the caller's points.
    y_boot given: its rows (propagated, df None; `boot_unit` names what they resample in
    the text). Else, with >= 2 replicates at every x:
    replicates resampled within each x (df = n - distinct x, for the t/z widening). Else
    None: the caller resamples its own residuals.
    """
    groups = np.split(y_fit, np.flatnonzero(np.diff(x)) + 1)
    if y_boot is not None:
        boot = np.asarray(y_boot, dtype=float)
        if boot.ndim != 2 or boot.shape[1] != x.size or boot.shape[0] < 100:
            raise ConfigError(f"{where}.y_boot", f"shape (n_resamples >= 100, {x.size})",
                              shown=f"{boot.shape}")
        if not np.all(np.isfinite(boot)) or (log_space and np.any(boot <= 0)):
            raise DataError(f"{where}.y_boot: expected finite positive numbers")
        boot = boot[:, order]
        text = ("the given replicates (propagated)" if boot_unit is None else
                f"{boot_unit} (the given replicates, propagated)")
        return (np.log(boot) if log_space else boot), text, None
    if min(len(g) for g in groups) >= 2:
        boot = np.hstack(resample_groups(groups, n_resamples, rng, paired=False))
        return boot, "replicates within each x", x.size - len(groups)
    return None, "residuals", None


def _weights(
    method: str, weights: object | None, order: np.ndarray, boot_fit: np.ndarray | None
) -> np.ndarray:
    """Per-point weights (n,) in sorted-x order."""
    n = order.size
    if weights is not None:
        w = finite_values(weights, "weights", n, _WHERE)
        if w.size != n or np.any(w <= 0):
            raise ConfigError(f"{_WHERE}.weights", f"{n} positive numbers")
        return w[order]
    if method != "wls":
        return np.ones(n)
    if boot_fit is None:
        raise ConfigError(f"{_WHERE}.weights", "", problem="method='wls' needs weights or "
                          "y_boot")
    variance = boot_fit.var(axis=0)
    if np.any(variance <= 0):
        raise InsufficientData(f"{_WHERE}.weights: a point has zero variance; pass weights")
    return 1 / variance


def _model(x: np.ndarray, log_a: np.ndarray, b: np.ndarray, log_space: bool) -> np.ndarray:
    """(R, n) model values in fit space for R parameter pairs."""
    log_y = log_a[:, None] - b[:, None] * np.log(x)
    return log_y if log_space else np.exp(log_y)


def _fit(x: np.ndarray, y_fit: np.ndarray, w: np.ndarray, method: str) -> tuple:
    """(log a (R,), b (R,)) for each row of y_fit (R, n) in fit space."""
    if method == "nls":
        start = _fit_log(np.log(x), np.log(np.clip(y_fit, 1e-300, None)), w)
        return _fit_nls(x, y_fit, w, *start)
    return _fit_log(np.log(x), y_fit, w)


def _fit_log(log_x: np.ndarray, log_y: np.ndarray, w: np.ndarray) -> tuple:
    """Weighted least squares of log y (R, n) on log x (n,), all rows at once."""
    w = w / w.sum()
    x_mean = np.sum(w * log_x)
    y_mean = log_y @ w
    dx = log_x - x_mean
    slope = ((log_y - y_mean[:, None]) @ (w * dx)) / np.sum(w * dx**2)
    return y_mean - slope * x_mean, -slope


def _fit_nls(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, log_a: np.ndarray, b: np.ndarray
) -> tuple:
    """Levenberg-Marquardt for y ~ exp(log_a - b log x), vectorised over the rows of y."""
    log_x = np.log(x)
    damping = np.full(log_a.shape, 1e-3)

    def loss(log_a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.sum(w * (y - _model(x, log_a, b, False)) ** 2, axis=1)

    current = loss(log_a, b)
    for _ in range(50):
        f = _model(x, log_a, b, False)
        r = y - f
        j_a, j_b = f, -f * log_x
        a00 = np.sum(w * j_a * j_a, axis=1) * (1 + damping)
        a11 = np.sum(w * j_b * j_b, axis=1) * (1 + damping)
        a01 = np.sum(w * j_a * j_b, axis=1)
        g_a, g_b = np.sum(w * j_a * r, axis=1), np.sum(w * j_b * r, axis=1)
        det = a00 * a11 - a01**2
        step_a = (a11 * g_a - a01 * g_b) / det
        step_b = (a00 * g_b - a01 * g_a) / det
        trial = loss(log_a + step_a, b + step_b)
        improvement = current - trial
        better = improvement > 0
        log_a = np.where(better, log_a + step_a, log_a)
        b = np.where(better, b + step_b, b)
        current = np.where(better, trial, current)
        damping = np.where(better, damping / 3, damping * 3)
        if np.all(np.abs(improvement) <= 1e-12 * current):
            break
    return log_a, b


def _resample_residuals(
    fitted: np.ndarray, residuals: np.ndarray, w: np.ndarray, n_resamples: int, rng
) -> np.ndarray:
    """(n_resamples, n) fit-space data: fitted + resampled standardised residuals."""
    n = fitted.size
    standardised = np.sqrt(w) * residuals * math.sqrt(n / (n - 2))
    index = rng.integers(0, n, size=(n_resamples, n))
    return fitted + standardised[index] / np.sqrt(w)
