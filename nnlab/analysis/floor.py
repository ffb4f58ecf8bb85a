"""Fitting var(N) = c + a N^-b to the variances of restarts, and the floor c's interval.

Two ways, chosen by `variance_vs_n`:
- "bootstrap" (FloorFit): least squares weighted by the inverse sampling variance of each
  N's variance, the interval of c the percentile interval of bootstrap refits over seeds;
- "profile" (ProfileFloorFit): c by maximum likelihood, each N's sample variance s^2 taken
  as gamma distributed with Var(s^2) = phi v^2 (McCullagh & Nelder 1989, "Generalized
  Linear Models", ch. 8 and 10), and c's interval the profile likelihood-ratio interval
  {c0 >= 0: LR(c0) <= critical}, LR(c0) the rise of the deviance when c is held at c0 and
  a >= 0, b refitted. It stays valid at the boundary c = 0, where a bootstrap of c is not
  (Andrews 2000, Econometrica 68): there LR follows the mixture 1/2 chi2_0 + 1/2 chi2_1
  (Self & Liang 1987, JASA 82), which gives the p-value of "no floor" and makes the
  interval conservative at 0. phi need not be right: LR is divided by lambda =
  Var_sandwich(c) / Var_model(c) (an adjusted profile likelihood, Chandler & Bate 2007,
  Biometrika 94), with the covariance of the variances across N from the bootstrap over
  seeds, so runs read at several N (the same seeds at every N) and heavy tails are taken
  into account; lambda being estimated from fourth moments of the seeds, the critical
  value is F(1, nu) (`scale_df`) rather than chi2_1.

phi, by `weights`: "normal" 2 / (m - 1); "kurtosis" 2 / (m - 1) + kappa / m, kappa each N's
sample excess kurtosis, at least MIN_KURTOSIS (O'Neill 2014, "Some useful moment results in
sampling problems", Am. Stat. 68); "bootstrap" the bootstrap variance of s^2 over s^4. The
least-squares weights are 1 / (phi v^2), v from a first fit, not each N's noisy s^2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, stats

from nnlab.analysis._bootstrap import Estimate, estimate, interval
from nnlab.analysis.power_law import MIN_HEADLINE_POINTS
from nnlab.errors import ConfigError, InsufficientData

WEIGHTS = ("normal", "kurtosis", "bootstrap")
FLOOR_INTERVALS = ("bootstrap", "profile")
MIN_KURTOSIS = -1.5  # excess kurtosis below it is taken as this: -2 would give s^2 no error
EXPONENT_STEPS = 291  # exponents tried between the ends of exponent_range


@dataclass(frozen=True)
class FloorFit:
    """var(N) = floor + scale * N^-exponent by weighted least squares, over N >= n_from.

    boot: (n_resamples, 3) bootstrap fits (floor, scale, exponent) behind the intervals.
    exponent_max: the largest exponent the fit may take; n_left_out: how many of the
    shortest N the fit leaves out (`variance_vs_n`'s fit_from); n_lengths: the N it fits.
    `exploratory`: fewer than 5 lengths for 3 parameters (a floor whose interval holds 0 is
    not exploratory: it is the finding "no floor detected", with the floors it rules out).
    """

    floor: Estimate
    scale: Estimate
    exponent: Estimate
    boot: np.ndarray = field(repr=False)
    n_from: float
    exponent_max: float
    n_left_out: int
    n_lengths: int

    @property
    def exploratory(self) -> bool:
        return self.n_lengths < MIN_HEADLINE_POINTS

    def range_text(self, n_col: str) -> str:
        """'' when every N is fitted, else ' over n_steps >= 316'."""
        return f" over {n_col} >= {self.n_from:g}" if self.n_left_out else ""

    @property
    def exponent_at_bound(self) -> bool:
        """True when the exponent's interval reaches the largest value the fit allows: b is
        not pinned by the data (few seeds), or over some of the fitted N the variance falls
        faster than the model can follow (an early transient, such as runs taking off
        late), and the floor takes up what the power law cannot."""
        return self.exponent.high >= self.exponent_max

    @property
    def floor_excludes_zero(self) -> bool:
        """True when the floor's interval lies above 0: the variance tends to a constant."""
        return self.floor.low > 0

    def floor_difference(self, other: FloorFit) -> Estimate:
        """This floor minus `other`'s, for fits to two independent groups of runs (other
        seeds, or another setting), with the interval of the difference of their bootstrap
        floors; both fits need the same number of resamples and confidence."""
        if not isinstance(other, FloorFit):
            raise ConfigError("FloorFit.floor_difference.other", "a FloorFit",
                              shown=type(other).__name__)
        if (other.boot.shape != self.boot.shape
                or other.floor.confidence != self.floor.confidence):
            raise ConfigError(
                "FloorFit.floor_difference.other", "a fit with the same resamples and "
                f"confidence ({len(self.boot)}, {self.floor.confidence:g})",
                shown=f"({len(other.boot)}, {other.floor.confidence:g})")
        return estimate(self.floor.value - other.floor.value,
                        self.boot[:, 0] - other.boot[:, 0], self.floor.confidence)

    def predict(self, n: np.ndarray) -> np.ndarray:
        """Fitted variance at N (any shape)."""
        return self.floor.value + self.scale.value * np.asarray(n, dtype=float) ** (
            -self.exponent.value
        )

    def band(self, n: np.ndarray, confidence: float | None = None) -> tuple:
        """Pointwise bootstrap band (low, high) of the fitted variance at N (m,)."""
        n = np.asarray(n, dtype=float)
        floor, scale, exponent = (self.boot[:, i, None] for i in range(3))
        return interval(floor + scale * n**-exponent, confidence or self.floor.confidence)

    def to_dict(self) -> dict:
        return {
            "floor": self.floor.to_dict(),
            "scale": self.scale.to_dict(),
            "exponent": self.exponent.to_dict(),
            "floor_excludes_zero": self.floor_excludes_zero,
            "n_from": self.n_from,
            "n_left_out": self.n_left_out,
            "n_lengths": self.n_lengths,
            "exploratory": self.exploratory,
            "exponent_at_bound": self.exponent_at_bound,
        }


def _weighted_floor_fit(ns: np.ndarray, variance: np.ndarray, dof: np.ndarray,
                        boot_var: np.ndarray, start: int, exponent_range: tuple[float, float],
                        confidence: float) -> FloorFit:
    """The floor fit of `variance` (k,) at `ns` (k,) from index `start` on, weighted as
    `variance_vs_n` says, with intervals from the bootstrap variances boot_var (R, k)."""
    ns, variance, dof, boot_var = ns[start:], variance[start:], dof[start:], boot_var[:, start:]
    grid = np.linspace(*exponent_range, EXPONENT_STEPS)
    first = _fit_floor(ns, variance[None, :], dof / variance**2, grid)
    fitted = first[0] + first[1] * ns ** -first[2]
    weights = dof / np.where(fitted > 0, fitted, variance) ** 2
    point = _fit_floor(ns, variance[None, :], weights, grid)
    boot = np.column_stack(_fit_floor(ns, boot_var, weights, grid))
    floor, scale, exponent = (estimate(point[i][0], boot[:, i], confidence) for i in range(3))
    return FloorFit(floor, scale, exponent, boot=boot, n_from=float(ns[0]),
                    exponent_max=float(grid[-1]), n_left_out=start, n_lengths=int(ns.size))


def _fit_floor(ns: np.ndarray, variance: np.ndarray, weights: np.ndarray, grid: np.ndarray):
    """Weighted LS of variance (R, k) on c + a N^-b with c, a >= 0, for each row.

    Returns (c, a, b), each (R,). For each b on `grid` the model is linear in (c, a): the
    best non-negative pair is the unconstrained solution when it is feasible, else the
    better of the two edges (c = 0 or a = 0); the b with the smallest weighted residual sum
    of squares is kept.
    """
    w = weights / weights.sum()
    z = ns[None, :] ** -grid[:, None]  # (G, k)
    s_z, s_zz = z @ w, (z**2) @ w  # (G,)
    s_v, s_vv = variance @ w, variance**2 @ w  # (R,)
    s_vz = variance @ (w * z).T  # (R, G)
    s_v, s_vv = s_v[:, None], s_vv[:, None]

    def sse(c: np.ndarray, a: np.ndarray) -> np.ndarray:
        return s_vv - 2 * c * s_v - 2 * a * s_vz + c**2 + 2 * a * c * s_z + a**2 * s_zz

    scale = (s_vz - s_v * s_z) / (s_zz - s_z**2)
    floor = s_v - scale * s_z
    candidates = [
        (floor, scale),
        (np.zeros_like(scale), np.maximum(s_vz / s_zz, 0)),
        (np.broadcast_to(np.maximum(s_v, 0), scale.shape), np.zeros_like(scale)),
    ]
    losses = np.stack([sse(c, a) for c, a in candidates])  # (3, R, G)
    losses[0][(floor < 0) | (scale < 0)] = np.inf
    choice = np.argmin(losses, axis=0)  # (R, G)
    loss = np.take_along_axis(losses, choice[None], axis=0)[0]
    best = np.argmin(loss, axis=1)
    rows = np.arange(variance.shape[0])
    pick = choice[rows, best]
    c = np.stack([np.broadcast_to(c, scale.shape) for c, _ in candidates])[pick, rows, best]
    a = np.stack([a for _, a in candidates])[pick, rows, best]
    return c, a, grid[best]


@dataclass(frozen=True)
class ProfileFloorFit(FloorFit):
    """A FloorFit whose floor interval is the boundary-aware profile likelihood-ratio one.

    floor, scale, exponent: the maximum-likelihood fit (gamma deviance); the floor's and the
    exponent's intervals are profile likelihood-ratio ones, the scale's that of the
    bootstrap refits (widened to hold the estimate).
    p_zero: p-value of "no floor" (c = 0) from the Self-Liang mixture; lr_scale: lambda,
    the sandwich adjustment LR is divided by, lr_scale_df its degrees of freedom; weights:
    how the N were weighted; kurtosis: each fitted N's excess kurtosis behind "kurtosis"
    weights (None otherwise); exponent_min: the smallest exponent allowed; var_at_longest:
    the fitted variance at the longest N.
    """

    p_zero: float
    lr_scale: float
    lr_scale_df: float
    weights: str
    kurtosis: tuple[float, ...] | None
    exponent_min: float
    var_at_longest: float

    @property
    def floor_excludes_zero(self) -> bool:
        return self.floor.low > 0

    @property
    def exponent_at_bound(self) -> bool:
        """b's profile interval, or that of the least-squares refits, reaches the largest
        exponent allowed. The refits are kept as a second opinion: an early transient
        drives them to the bound, while the likelihood fit, which trusts every N alike in
        relative terms, absorbs it with a steep b and a biased floor."""
        refits = interval(self.boot[:, 2], self.floor.confidence)[1]
        return bool(self.exponent.high >= self.exponent_max or refits >= self.exponent_max)

    @property
    def plateau_reason(self) -> str:
        """Why the fit does not separate a floor from a slow decline ('' when it does): b's
        interval reaches an end of its range (at the top: a fast early transient; at the
        bottom: a decline so slow it looks flat), or the floor's interval holds both 0 and
        all of the fitted variance at the longest N (the c and a terms trade off)."""
        reasons = []
        if self.exponent_at_bound:
            reasons.append(f"b's interval reaches its upper bound {self.exponent_max:g}")
        if self.exponent.low <= self.exponent_min:
            reasons.append(f"b's interval reaches its lower bound {self.exponent_min:g}")
        if self.floor.low <= 0 and self.floor.high >= self.var_at_longest:
            reasons.append("the floor's interval holds both 0 and the whole variance at the "
                           "longest N")
        return "; ".join(reasons)

    @property
    def plateau(self) -> bool:
        """The variance levels off, but the fit cannot tell a floor from a slow decline."""
        return bool(self.plateau_reason)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "floor_interval": "profile", "weights": self.weights,
                "kurtosis": None if self.kurtosis is None else list(self.kurtosis),
                "p_zero": self.p_zero, "lr_scale": self.lr_scale,
                "lr_scale_df": self.lr_scale_df,
                "plateau": self.plateau, "plateau_reason": self.plateau_reason}


def check_floor_options(weights: object, floor_interval: object, where: str) -> None:
    """Raise NNLabError unless weights and floor_interval are among the known ones."""
    if weights not in WEIGHTS:
        raise ConfigError(f"{where}.weights", f"one of {WEIGHTS}", weights)
    if floor_interval not in FLOOR_INTERVALS:
        raise ConfigError(f"{where}.floor_interval", f"one of {FLOOR_INTERVALS}", floor_interval)


def fit_floor(ns: np.ndarray, variance: np.ndarray, runs: np.ndarray, boot_var: np.ndarray,
              start: int, exponent_range: tuple[float, float], confidence: float,
              weights: str = "normal", floor_interval: str = "bootstrap",
              kurtosis: np.ndarray | None = None, scale_df: float | None = None) -> FloorFit:
    """The floor fit of `variance` (k,) at `ns` (k,) from index `start` on.

    runs: (k,) seeds behind each variance; boot_var: (R, k) bootstrap variances over seeds;
    kurtosis: (k,) each N's excess kurtosis, needed for weights="kurtosis"; scale_df: the
    degrees of freedom of the sandwich scale (`scale_df`), needed for the profile.
    """
    if weights == "normal" and floor_interval == "bootstrap":
        return _weighted_floor_fit(ns, variance, runs - 1, boot_var, start, exponent_range,
                                   confidence)
    ns, variance, runs, boot_var = ns[start:], variance[start:], runs[start:], boot_var[:, start:]
    if kurtosis is not None:
        kurtosis = np.maximum(kurtosis[start:], MIN_KURTOSIS)
    grid = np.linspace(*exponent_range, EXPONENT_STEPS)
    phi = _relative_variance(variance, runs, boot_var, weights, kurtosis)
    w = _working_weights(ns, variance, phi, grid)
    point = _fit_floor(ns, variance[None, :], w, grid)
    boot = np.column_stack(_fit_floor(ns, boot_var, w, grid))
    c, a, b = (float(p[0]) for p in point)
    common: dict[str, Any] = {"boot": boot, "n_from": float(ns[0]),
                              "exponent_max": float(grid[-1]), "n_left_out": start,
                              "n_lengths": int(ns.size)}
    scale, exponent = (estimate(point[i][0], boot[:, i], confidence) for i in (1, 2))
    if floor_interval == "bootstrap":
        return FloorFit(estimate(c, boot[:, 0], confidence), scale, exponent, **common)
    if scale_df is None:
        raise ConfigError("fit_floor.scale_df", "the sandwich scale's degrees of freedom with "
                          "floor_interval='profile'", scale_df)
    deviance = _Deviance(ns, variance, 1 / phi, grid)
    by_exponent, floors, scales = deviance.by_exponent()
    best = int(np.argmin(by_exponent))
    lowest, c, a, b = by_exponent[best], floors[best], scales[best], grid[best]
    fitted = c + a * ns**-b
    lr_scale = _sandwich_scale(ns, deviance.prior / fitted**2,
                               np.cov(boot_var, rowvar=False), c, a, b)
    critical = stats.f.ppf(confidence, 1, scale_df)

    def lr(c0: float) -> float:
        return (deviance(c0) - lowest) / lr_scale[0]

    lr_at_fit = lr(c)
    if lr_at_fit > critical:  # the floor's profile does not reach the joint fit's minimum
        raise InsufficientData(
            f"fit_floor: the profile of the floor c does not come back to the joint fit at "
            f"c = {c:.3g} (their deviances differ by {lr_at_fit:.3g} on the likelihood-ratio "
            f"scale, above the critical {critical:.3g}): c + a N^-b does not describe these "
            "variances; fit from a later N")
    low = 0.0 if lr(0.0) <= critical else optimize.brentq(
        lambda c0: lr(c0) - critical, 0.0, c)
    top = max(c, float(variance.max()))
    while lr(top) <= critical:
        top *= 2
    high = optimize.brentq(lambda c0: lr(c0) - critical, c, top)
    lr_zero = max(lr(0.0), 0.0)
    inside = grid[(by_exponent - lowest) / lr_scale[2] <= critical]
    exponent = Estimate(float(b), float(inside.min()), float(inside.max()), confidence)
    a_low, a_high = interval(boot[:, 1], confidence)  # the bootstrap refits', around a
    scale = Estimate(float(a), float(min(a_low, a)), float(max(a_high, a)), confidence)
    return ProfileFloorFit(
        Estimate(c, float(low), float(high), confidence), scale, exponent, **common,
        p_zero=float(0.5 * stats.f.sf(lr_zero, 1, scale_df)) if lr_zero > 0 else 1.0,
        lr_scale=float(lr_scale[0]), lr_scale_df=float(scale_df), weights=weights,
        kurtosis=None if kurtosis is None or weights != "kurtosis" else tuple(
            float(k) for k in kurtosis),
        exponent_min=float(grid[0]), var_at_longest=float(c + a * ns[-1] ** -b))


def scale_df(groups: list[np.ndarray]) -> float:
    """Degrees of freedom of the sandwich scale, a ratio of fourth moments estimated from m
    seeds: nu = 2 m / (mu8 / mu4^2 - 1), the relative variance of a fourth-moment estimate
    written as a chi-square's 2 / nu (Satterthwaite 1946), mu4 and mu8 the standardised
    moments pooled over the groups (each (m,), one per fitted N), m the fewest seeds; 19 for
    normal runs at m = 100, fewer for heavier tails."""
    deviations = np.concatenate([(g - g.mean()) / g.std() for g in groups])
    mu4, mu8 = np.mean(deviations**4), np.mean(deviations**8)
    return float(max(2 * min(g.size for g in groups) / max(mu8 / mu4**2 - 1, 1e-9), 1.0))


def _relative_variance(variance: np.ndarray, runs: np.ndarray, boot_var: np.ndarray,
                       weights: str, kurtosis: np.ndarray | None) -> np.ndarray:
    """(k,) phi with Var(s^2) = phi var^2: 2 / (m - 1) (+ kappa / m), or the bootstrap's."""
    if weights == "bootstrap":
        spread = boot_var.var(axis=0)
        if np.any(spread <= 0):
            raise InsufficientData("variance_vs_n.weights: a length's variance does not vary over "
                                   "the bootstrap; use weights='normal'")
        return spread / variance**2
    return 2 / (runs - 1) + (0.0 if weights == "normal" else kurtosis / runs)


def _working_weights(ns: np.ndarray, variance: np.ndarray, phi: np.ndarray,
                     grid: np.ndarray) -> np.ndarray:
    """(k,) inverse sampling variances of the variances, phi var^2, var from a first fit
    weighted by phi s^4."""
    first = _fit_floor(ns, variance[None, :], 1 / (phi * variance**2), grid)
    fitted = first[0] + first[1] * ns ** -first[2]
    return 1 / (phi * np.where(fitted > 0, fitted, variance) ** 2)


@dataclass(frozen=True)
class _Deviance:
    """The gamma deviance of the variances s^2 (k,) at `ns` (k,) under var(N) = c + a N^-b:
    D = 2 sum prior ((s^2 - v) / v - log(s^2 / v)), prior (k,) = 1 / phi with
    Var(s^2) = phi v^2 (McCullagh & Nelder 1989, "Generalized Linear Models", ch. 8 and 10:
    sample variances are gamma distributed for normal runs, and the deviance's variance
    grows with v, so an interval reaches further above a low estimate than below it)."""

    ns: np.ndarray
    variance: np.ndarray
    prior: np.ndarray
    grid: np.ndarray

    def fit(self, c0: float) -> tuple[float, float, float]:
        """(deviance, a, b) with c held at c0: for each b on the grid, a >= 0 by Fisher
        scoring (weights prior / v^2, 20 steps), then the b of the smallest deviance."""
        z = self.ns[None, :] ** -self.grid[:, None]  # (G, k)
        tiny = 1e-12 * float(self.variance.max())
        v = np.broadcast_to(self.variance, z.shape)
        rest = self.variance - c0
        for _ in range(20):
            w = self.prior / v**2
            a = np.maximum(np.sum(w * z * rest, axis=1) / np.sum(w * z**2, axis=1), 0)
            v = np.maximum(c0 + a[:, None] * z, tiny)
        ratio = self.variance / v
        deviance = 2 * np.sum(self.prior * (1 / ratio - 1 + np.log(ratio)), axis=1)
        best = int(np.argmin(deviance))
        return float(deviance[best]), float(a[best]), float(self.grid[best])

    def __call__(self, c0: float) -> float:
        return self.fit(c0)[0]

    def by_exponent(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each b on the grid: (deviance, c, a), each (G,), with c, a >= 0 by
        iteratively reweighted least squares (weights prior / v^2, 20 steps)."""
        z = self.ns[None, :] ** -self.grid[:, None]  # (G, k)
        tiny = 1e-12 * float(self.variance.max())
        v = np.broadcast_to(self.variance, z.shape)
        for _ in range(20):
            c, a = _nonnegative_line(self.prior / v**2, z, self.variance)
            v = np.maximum(c[:, None] + a[:, None] * z, tiny)
        ratio = self.variance / v
        return 2 * np.sum(self.prior * (1 / ratio - 1 + np.log(ratio)), axis=1), c, a


def _nonnegative_line(w: np.ndarray, z: np.ndarray, y: np.ndarray) -> tuple:
    """Weighted least squares of y (k,) on c + a z per row of w, z (G, k) with c, a >= 0:
    the unconstrained solution where both are >= 0, else the better edge (c = 0 or a = 0).
    Returns (c, a), each (G,)."""
    s_w, s_z, s_zz = w.sum(axis=1), (w * z).sum(axis=1), (w * z**2).sum(axis=1)
    s_y, s_zy = w @ y, (w * z) @ y
    det = s_w * s_zz - s_z**2
    with np.errstate(divide="ignore", invalid="ignore"):
        a_free = (s_w * s_zy - s_z * s_y) / det
        c_free = (s_zz * s_y - s_z * s_zy) / det
    candidates = [(c_free, a_free), (np.zeros_like(s_w), np.maximum(s_zy / s_zz, 0)),
                  (np.maximum(s_y / s_w, 0), np.zeros_like(s_w))]
    sse = np.stack([np.sum(w * (y - c[:, None] - a[:, None] * z) ** 2, axis=1)
                    for c, a in candidates])
    sse[0][~((c_free >= 0) & (a_free >= 0) & np.isfinite(sse[0]))] = np.inf
    pick = np.argmin(sse, axis=0)
    rows = np.arange(w.shape[0])
    return (np.stack([c for c, _ in candidates])[pick, rows],
            np.stack([a for _, a in candidates])[pick, rows])


def _sandwich_scale(ns: np.ndarray, w: np.ndarray, cov: np.ndarray, c: float, a: float,
                    b: float) -> np.ndarray:
    """lambda = (J^-1 K J^-1)_ii / (J^-1)_ii for c, a, b (3,) at the weighted fit (c, a, b):
    J = X'WX, K = X'W cov W X, X the model's gradient in (c, a, b); where a = 0 leaves b
    undefined, (c, a) only and b's lambda 1."""
    z = ns**-b
    columns = [np.ones_like(z), z] + ([-a * z * np.log(ns)] if a > 0 else [])
    x = np.column_stack(columns)
    weighted = x.T * w
    j_inv = np.linalg.pinv(weighted @ x)
    sandwich = j_inv @ (weighted @ cov @ weighted.T) @ j_inv
    ratio = np.diag(sandwich) / np.diag(j_inv)
    return np.append(ratio, [1.0] * (3 - ratio.size))
