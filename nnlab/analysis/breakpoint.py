"""Breakpoints chosen by the data: a broken power law with its breakpoint's CI, and a
held-out check of a power law's extrapolation.

A broken (segmented) power law is two straight lines in log-log that meet at the
breakpoint x_b:

    log y = log y_b - b1 (log x - log x_b)   for x <= x_b,
    log y = log y_b - b2 (log x - log x_b)   for x >= x_b.

For a given x_b the model is linear, so the least-squares x_b is found by profiling over
the intervals between the data's x exactly (Hudson 1966, "Fitting segmented curves whose
join points have to be estimated", JASA 61), and found again in every bootstrap replicate,
so its interval carries the breakpoint's own uncertainty and the slopes' intervals carry
that of the breakpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nnlab.analysis._bootstrap import Estimate, estimate, interval
from nnlab.analysis._checks import check_resampling
from nnlab.analysis.power_law import (
    PowerLawFit,
    bootstrap_in_fit_space,
    checked_xy,
    exploratory_reasons,
    fit_power_law,
    r_squared,
    t_over_z,
)
from nnlab.errors import ConfigError, is_integer

_WHERE = "fit_broken_power_law"


@dataclass(frozen=True)
class BrokenPowerLawFit:
    """y = y_b (x / x_b)^-b1 up to the breakpoint x_b, y_b (x / x_b)^-b2 after it.

    breakpoint: x_b with its bootstrap interval; exponent_before / exponent_after: b1, b2;
    value_at_break: y_b. n_before / n_after: points with x <= x_b / x >= x_b.
    boot: (n_resamples, 4) replicates of (log x_b, log y_b, b1, b2).
    """

    breakpoint: Estimate
    exponent_before: Estimate
    exponent_after: Estimate
    value_at_break: Estimate
    n_before: int
    n_after: int
    r_squared: float
    residuals: np.ndarray
    x: np.ndarray
    y: np.ndarray
    resampling: str
    boot: np.ndarray = field(repr=False)

    @property
    def exploratory_reasons(self) -> list[str]:
        """Why the power law after the breakpoint (what "a power law from x_b on" states) is
        exploratory: too few points after it, an interval wider than its exponent, or a
        broken fit with a low R^2 (`power_law.exploratory_reasons`)."""
        return exploratory_reasons(self.exponent_after, self.n_after, self.r_squared)

    @property
    def exploratory(self) -> bool:
        return bool(self.exploratory_reasons)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Fitted y at x (any shape)."""
        point = np.array([[math.log(self.breakpoint.value), math.log(self.value_at_break.value),
                           self.exponent_before.value, self.exponent_after.value]])
        return np.exp(_broken(np.log(np.asarray(x, dtype=float)).ravel(), point)[0]).reshape(
            np.shape(x))

    def band(self, x: np.ndarray, confidence: float | None = None) -> tuple:
        """Pointwise bootstrap band (low, high) of the fitted curve at x (m,)."""
        curves = _broken(np.log(np.asarray(x, dtype=float)), self.boot)
        low, high = interval(curves, confidence or self.breakpoint.confidence)
        return np.exp(low), np.exp(high)

    def summary(self) -> str:
        flag = (f" (exploratory: {', '.join(self.exploratory_reasons)})" if self.exploratory
                else "")
        return (f"broken power law (two slopes in log-log, continuous at the breakpoint, "
                f"n={self.x.size} points, CI by bootstrap of {self.resampling}, "
                f"{self.boot.shape[0]} resamples, the breakpoint found again in each){flag}: "
                f"breakpoint x_b = {self.breakpoint}, b = {self.exponent_before.format('.2f')} "
                f"before it ({self.n_before} points) and {self.exponent_after.format('.2f')} "
                f"after it ({self.n_after} points), R^2 = {self.r_squared:.3f} (log)")

    def to_dict(self) -> dict:
        return {"breakpoint": self.breakpoint.to_dict(),
                "exponent_before": self.exponent_before.to_dict(),
                "exponent_after": self.exponent_after.to_dict(),
                "value_at_break": self.value_at_break.to_dict(),
                "n_before": self.n_before, "n_after": self.n_after,
                "r_squared": self.r_squared, "exploratory": self.exploratory,
                "exploratory_reasons": self.exploratory_reasons,
                "resampling": self.resampling, "n_resamples": int(self.boot.shape[0]),
                "x": self.x.tolist(), "y": self.y.tolist(),
                "residuals": self.residuals.tolist()}


def fit_broken_power_law(
    x: object,
    y: object,
    *,
    y_boot: object | None = None,
    boot_unit: str | None = None,
    min_segment: int = 3,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> BrokenPowerLawFit:
    """Fit a broken power law by least squares in log-log, the breakpoint included.

    x, y: (n,) positive; x may repeat (replicates, e.g. one y per seed).
    y_boot: (n_resamples, n) bootstrap replicates of y (e.g. `eta_best`'s, whose unit of
        replication is the seed); else replicates within each x are resampled when every x
        has 2, and the residuals otherwise (those two widened by t_df / z as in
        `fit_power_law`). boot_unit: what y_boot's rows resample ("seeds"), for the summary.
    min_segment: distinct x values at least on each side of the breakpoint (one at it
        counts on both sides).
    """
    check_resampling(n_resamples, confidence, _WHERE)
    if not is_integer(min_segment) or min_segment < 2:
        raise ConfigError(f"{_WHERE}.min_segment", "an integer >= 2", min_segment)
    x, y = checked_xy(x, y, 2 * min_segment - 1, _WHERE)
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    log_x, log_y = np.log(x), np.log(y)
    rng = np.random.default_rng(seed)
    boot, resampling, df = bootstrap_in_fit_space(x, log_y, y_boot, order, True, n_resamples,
                                                  rng, _WHERE, boot_unit)
    point = _profile_fit(log_x, log_y[None, :], min_segment)
    residuals = log_y - _broken(log_x, point)[0]
    if boot is None:
        df = x.size - 4
        scale = math.sqrt(x.size / df)
        index = rng.integers(0, x.size, size=(n_resamples, x.size))
        boot = (log_y - residuals) + scale * residuals[index]
    boot_params = _profile_fit(log_x, boot, min_segment)
    if df is not None:
        boot_params = point + t_over_z(df, confidence) * (boot_params - point)
    log_b, log_yb, b1, b2 = point[0]
    return BrokenPowerLawFit(
        breakpoint=estimate(math.exp(log_b), np.exp(boot_params[:, 0]), confidence),
        exponent_before=estimate(b1, boot_params[:, 2], confidence),
        exponent_after=estimate(b2, boot_params[:, 3], confidence),
        value_at_break=estimate(math.exp(log_yb), np.exp(boot_params[:, 1]), confidence),
        n_before=int(np.count_nonzero(log_x <= log_b)),
        n_after=int(np.count_nonzero(log_x >= log_b)),
        r_squared=r_squared(residuals, log_y),
        residuals=residuals, x=x, y=y, resampling=resampling, boot=boot_params)


def _broken(log_x: np.ndarray, params: np.ndarray) -> np.ndarray:
    """(R, n) log y of the broken power law for each row (log x_b, log y_b, b1, b2)."""
    log_b, level, b1, b2 = (params[:, i, None] for i in range(4))
    offset = log_x[None, :] - log_b
    return level - b1 * np.minimum(offset, 0) - b2 * np.maximum(offset, 0)


def _profile_fit(log_x: np.ndarray, log_y: np.ndarray, min_segment: int) -> np.ndarray:
    """(R, 4) exact least-squares (log x_b, log y_b, b1, b2) for each row of log_y (R, n).

    Hudson's (1966, JASA 61) method: with the breakpoint strictly between two neighbouring
    distinct x, the two segments are separate lines; if those lines, fitted on their own,
    cross inside that interval, the crossing is the best breakpoint there; otherwise the
    best one there is at an end, a distinct x, where the continuous model is linear. The
    candidate with the smallest residual sum of squares wins.
    """
    distinct = np.unique(log_x)
    k = distinct.size
    rows = log_y.shape[0]
    best_sse = np.full(rows, np.inf)
    best = np.zeros((rows, 4))

    def keep(sse: np.ndarray, params: np.ndarray) -> None:
        better = sse < best_sse
        best_sse[better] = sse[better]
        best[better] = params[better]

    for log_b in distinct[min_segment - 1:k - min_segment + 1]:  # at a distinct x
        offset = log_x - log_b
        design = np.column_stack([np.ones_like(offset), np.minimum(offset, 0),
                                  np.maximum(offset, 0)])
        coef = log_y @ np.linalg.pinv(design).T
        sse = np.sum((log_y - coef @ design.T) ** 2, axis=1)
        keep(sse, np.column_stack([np.full(rows, log_b), coef[:, 0], -coef[:, 1], -coef[:, 2]]))
    for j in range(min_segment - 1, k - min_segment):  # strictly between distinct[j], [j+1]
        left = log_x <= distinct[j]
        (a_left, s_left, sse_left), (a_right, s_right, sse_right) = (
            _line(log_x[side], log_y[:, side]) for side in (left, ~left))
        with np.errstate(divide="ignore", invalid="ignore"):
            crossing = (a_right - a_left) / (s_left - s_right)
        inside = (distinct[j] < crossing) & (crossing < distinct[j + 1])
        crossing = np.where(inside, crossing, distinct[j])
        params = np.column_stack([crossing, a_left + s_left * crossing, -s_left, -s_right])
        keep(np.where(inside, sse_left + sse_right, np.inf), params)
    return best


def _line(x: np.ndarray, y: np.ndarray) -> tuple:
    """Least-squares line of each row of y (R, m) on x (m,): (intercept, slope, SSE), each
    (R,)."""
    dx = x - x.mean()
    slope = (y - y.mean(axis=1, keepdims=True)) @ dx / np.sum(dx**2)
    intercept = y.mean(axis=1) - slope * x.mean()
    sse = np.sum((y - intercept[:, None] - slope[:, None] * x) ** 2, axis=1)
    return intercept, slope, sse


@dataclass(frozen=True)
class ExtrapolationCheck:
    """A power law fitted without the longest x predicts them.

    table: one row per held-out x: x, observed, observed_low, observed_high, predicted,
        predicted_low, predicted_high, ratio (observed / predicted), ratio_low, ratio_high
        (from the same replicates: paired), holds (the ratio's interval holds 1).
    fit: the power law on the other points.
    """

    table: pd.DataFrame
    fit: PowerLawFit
    confidence: float

    @property
    def holds(self) -> bool:
        """Every held-out point agrees with the extrapolation."""
        return bool(self.table["holds"].all())

    def summary(self) -> str:
        level = f"{100 * self.confidence:g}%"
        rows = "; ".join(
            f"at x = {r['x']:g} observed {r['observed']:.3g} [{r['observed_low']:.3g}, "
            f"{r['observed_high']:.3g}], predicted {r['predicted']:.3g} "
            f"[{r['predicted_low']:.3g}, {r['predicted_high']:.3g}], ratio {r['ratio']:.2f} "
            f"[{r['ratio_low']:.2f}, {r['ratio_high']:.2f}]"
            for r in self.table.to_dict("records"))
        verdict = ("the extrapolation holds" if self.holds else
                   "(!) the extrapolation fails: the power law does not carry on")
        return (f"held-out check ({level} CIs by bootstrap of {self.fit.resampling}; the power "
                f"law fitted on {self.fit.n} points, x = "
                f"{self.fit.x.min():g}..{self.fit.x.max():g}, b = "
                f"{self.fit.exponent.format('.2f')}): {rows}; {verdict}")

    def to_dict(self) -> dict:
        return {"table": self.table.to_dict(orient="records"), "fit": self.fit.to_dict(),
                "holds": self.holds, "confidence": self.confidence}


def extrapolation_check(
    x: object,
    y: object,
    *,
    y_boot: object | None = None,
    boot_unit: str | None = None,
    n_held_out: int = 1,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> ExtrapolationCheck:
    """Fit y = a x^-b on all but the `n_held_out` largest x and predict those.

    x, y: (n,) positive, one y per x (e.g. eta_best per N from some N on: the range a
        "power law from N on" statement claims), or several per x (replicates: their
        geometric mean per x is fitted and resampled).
    y_boot: (n_resamples, n) bootstrap replicates of y, needed with one y per x; boot_unit:
        what they resample ("seeds"), for the fit's summary.
    The observed value's interval comes from its replicates, the prediction's from the fit
    on the same replicates, so their ratio's interval is paired: a ratio interval without 1
    says the power law does not carry on to the held-out x (Hastie, Tibshirani & Friedman
    2009, sec. 7.2: an assessment on data the fit did not see).
    """
    where = "extrapolation_check"
    check_resampling(n_resamples, confidence, where)
    if not is_integer(n_held_out) or n_held_out < 1:
        raise ConfigError(f"{where}.n_held_out", "an integer >= 1", n_held_out)
    x, y = checked_xy(x, y, n_held_out + 3, where)
    order = np.argsort(x, kind="stable")
    x, log_y = x[order], np.log(y[order])
    rng = np.random.default_rng(seed)
    boot, _, _ = bootstrap_in_fit_space(x, log_y, y_boot, order, True, n_resamples, rng, where)
    if boot is None:
        raise ConfigError(f"{where}.y_boot", "", problem="one y per x needs its bootstrap "
                          "replicates y_boot (or give several replicates per x)")
    xs, start = np.unique(x, return_index=True)
    groups = np.split(np.arange(x.size), start[1:])
    if len(groups) != x.size:  # replicates: one geometric mean per x
        boot = np.column_stack([boot[:, g].mean(axis=1) for g in groups])
        log_y = np.array([log_y[g].mean() for g in groups])
    fit_n = xs.size - n_held_out
    fit = fit_power_law(xs[:fit_n], np.exp(log_y[:fit_n]), y_boot=np.exp(boot[:, :fit_n]),
                        boot_unit=boot_unit, seed=seed, confidence=confidence)
    held = xs[fit_n:]
    predicted_boot = fit.boot_log_prefactor[:, None] - fit.boot_exponent[:, None] * np.log(held)
    predicted = math.log(fit.prefactor.value) - fit.exponent.value * np.log(held)
    observed_low, observed_high = interval(boot[:, fit_n:], confidence)
    predicted_low, predicted_high = interval(predicted_boot, confidence)
    ratio_low, ratio_high = interval(boot[:, fit_n:] - predicted_boot, confidence)
    ratio = log_y[fit_n:] - predicted
    table = pd.DataFrame({
        "x": held, "observed": np.exp(log_y[fit_n:]), "observed_low": np.exp(observed_low),
        "observed_high": np.exp(observed_high), "predicted": np.exp(predicted),
        "predicted_low": np.exp(predicted_low), "predicted_high": np.exp(predicted_high),
        "ratio": np.exp(ratio), "ratio_low": np.exp(ratio_low),
        "ratio_high": np.exp(ratio_high), "holds": (ratio_low <= 0) & (0 <= ratio_high)})
    return ExtrapolationCheck(table=table, fit=fit, confidence=confidence)
