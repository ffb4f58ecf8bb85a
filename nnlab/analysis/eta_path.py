"""The optimum path eta*(N) of a smooth model of the metric over (log eta, log N).

The per-N parabola of `eta_best` uses three (or five) grid points at each N on their own;
here the N share the shape of the bowl: around each N's best grid point the seed-mean
metric is a cubic (or quadratic) in log eta,

    metric(eta, N) = alpha_N + s_N u + c2(log N) u^2 + c3(log N) u^3,
    u = log eta - centre of the grid,

with a free level alpha_N and slope s_N per N (the slope places the optimum, which may move
freely with N) and the curvature c2 and asymmetry c3 polynomials in log N, pooled across
the N. The path is the surface's maximum at each N. The cubic term lets the bowl be
asymmetric, as the metric is around the optimum (steeper towards small eta): a parabola
through five points of such a bowl leans to its shallow side by ~1/4 grid step, more than
the seed noise (tests).
Seed effects: every (N, eta) cell holds the same seeds, so fitting the cell means equals the
fit with an intercept per (seed, N) (a balanced design); the bootstrap resamples whole seeds
(the same resamples as `eta_best`), so a seed's correlated runs move together.
Reference: response-surface estimation of an optimum (Box & Draper 2007, "Response
Surfaces, Mixtures, and Ridge Analyses", ch. 6 and 10), the coefficients smooth in a
covariate as in varying-coefficient models (Hastie & Tibshirani 1993).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nnlab.analysis.learning_rate import EDGE_SHARE_MAX, EtaBestResult
from nnlab.analysis.power_law import PowerLawFit, fit_power_law
from nnlab.errors import ConfigError, InsufficientData, is_integer

_WHERE = "eta_path"


@dataclass(frozen=True)
class EtaPathResult:
    """The argmax path of the smooth surface, one row per N.

    table: `n_col`, eta_path, low, high (bootstrap band), inside (the point estimate lies
        between the best grid point's neighbours, both fitted: not at the grid edge, not
        beside a cliff), outside_share (replicates where it does not, or whose surface has
        no maximum), excluded (not inside, or outside_share > max_share: left out of
        `power_law`).
    boot_log_eta: (n_resamples, n_N) replicates of log eta_path (NaN where undefined).
    """

    table: pd.DataFrame
    n_col: str
    window: int
    degree: int
    cubic: bool
    confidence: float
    boot_log_eta: np.ndarray = field(repr=False)

    def power_law(self, keep: np.ndarray | None = None, seed: int = 0) -> PowerLawFit:
        """eta_path = a N^-b over the N not `excluded` (and within the mask `keep` (n_N,)),
        the band's replicates propagated; replicates undefined at a used N are dropped."""
        use = ~self.table["excluded"].to_numpy()
        if keep is not None:
            use = use & np.asarray(keep, dtype=bool)
        if use.sum() < 3:
            raise InsufficientData(f"{_WHERE}.power_law: {use.sum()} value(s) of {self.n_col!r} "
                                   "have a path point inside the fitted etas; a fit needs 3")
        boot = self.boot_log_eta[:, use]
        boot = boot[np.all(np.isfinite(boot), axis=1)]
        return fit_power_law(self.table[self.n_col].to_numpy(dtype=float)[use],
                             self.table["eta_path"].to_numpy()[use], y_boot=np.exp(boot),
                             boot_unit="seeds", seed=seed, confidence=self.confidence)

    def summary(self) -> str:
        level = f"{100 * self.confidence:g}%"
        shape = "cubic" if self.cubic else "quadratic"
        lines = [f"eta_path per {self.n_col} (argmax of a surface {shape} in log eta, its "
                 f"curvature of degree {self.degree} in log N, {2 * self.window + 1} etas "
                 f"around each N's best; {level} band by bootstrap of seeds):"]
        for row in self.table.to_dict("records"):
            flag = " (!) left out of fits" if row["excluded"] else ""
            share = 100 * row["outside_share"]
            lines.append(f"  {self.n_col}={row[self.n_col]:g}: {row['eta_path']:.3g} "
                         f"[{row['low']:.3g}, {row['high']:.3g}], {share:.0f}% of replicates "
                         f"undefined or outside the fitted etas{flag}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"n_col": self.n_col, "window": self.window, "degree": self.degree,
                "cubic": self.cubic, "confidence": self.confidence,
                "n_resamples": int(self.boot_log_eta.shape[0]),
                "table": self.table.to_dict(orient="records")}


def eta_path(result: EtaBestResult, *, window: int = 2, degree: int = 1, cubic: bool = True,
             max_share: float = EDGE_SHARE_MAX) -> EtaPathResult:
    """The smooth optimum path of an `eta_best` result, on its bootstrap resamples.

    result: `eta_best(...)` on trials with several N (its curves and bootstrap cell means;
        pass it stalled_at so that cells of runs stuck at chance stay out of the fit).
    window: grid points on each side of each N's best grid point that enter the fit (cells
        holding a diverged or stalled run never do); the best point is chosen again in every
        replicate. degree: of the polynomials in log N for the curvature and asymmetry (at
        most n_N - 1, which fits each N on its own). cubic: a cubic in log eta (needs
        window >= 2) rather than a parabola.
    max_share: an N is left out of `power_law` when more replicates than this have no
        vertex inside its fitted etas.
    """
    if not isinstance(result, EtaBestResult):
        raise ConfigError(f"{_WHERE}.result", "an EtaBestResult", shown=f"{type(result).__name__}")
    curves = result.curves
    n_values = np.unique(curves[result.n_col].to_numpy(dtype=float))
    if not is_integer(window) or window < 1:
        raise ConfigError(f"{_WHERE}.window", "an integer >= 1", window)
    if not is_integer(degree) or not 0 <= degree < n_values.size:
        raise ConfigError(f"{_WHERE}.degree", f"an integer in 0..{n_values.size - 1} (below the "
                          f"number of {result.n_col!r} values)", degree)
    if cubic and window < 2:
        raise ConfigError(f"{_WHERE}.window", "window >= 2 with cubic=True (5 etas per N)",
                          window)
    if not 0 <= max_share <= 1:
        raise ConfigError(f"{_WHERE}.max_share", "a share in [0, 1]", max_share)

    sign = 1.0 if result.maximize else -1.0
    log_eta = np.log(curves[result.eta_col].to_numpy(dtype=float))
    group = np.searchsorted(n_values, curves[result.n_col].to_numpy(dtype=float))
    surface = _Surface(log_eta, group, _log_n_basis(n_values, degree), ~result.cliff_cells,
                       window, 3 if cubic else 2)
    point, point_low, point_high = surface.vertex(sign * curves["mean"].to_numpy()[None, :])
    boot_log, boot_low, boot_high = surface.vertex(sign * result.boot_means)
    inside = (point_low <= point) & (point <= point_high)
    outside_share = np.mean(~((boot_low <= boot_log) & (boot_log <= boot_high)), axis=0)
    low, high = _finite_interval(boot_log, result.confidence)
    table = pd.DataFrame({
        result.n_col: n_values, "eta_path": np.exp(point[0]), "low": np.exp(low),
        "high": np.exp(high), "inside": inside[0], "outside_share": outside_share,
        "excluded": ~inside[0] | (outside_share > max_share)})
    return EtaPathResult(table=table, n_col=result.n_col, window=int(window),
                         degree=int(degree), cubic=bool(cubic), confidence=result.confidence,
                         boot_log_eta=boot_log)


def _log_n_basis(n_values: np.ndarray, degree: int) -> np.ndarray:
    """(n_N, degree + 1) Legendre polynomials of log N scaled to [-1, 1]."""
    log_n = np.log(n_values)
    span = np.ptp(log_n) or 1.0
    return np.polynomial.legendre.legvander(2 * (log_n - log_n.min()) / span - 1, degree)


@dataclass(frozen=True)
class _Surface:
    """The surface's fixed parts: log_eta (n_cells,), group (n_cells,) each cell's N index,
    basis (n_N, k) in log N, usable (n_cells,) cells without a cliff, window, order (2 or
    3: the power of u)."""

    log_eta: np.ndarray
    group: np.ndarray
    basis: np.ndarray
    usable: np.ndarray
    window: int
    order: int

    def vertex(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each row of scores (R, n_cells) (higher is better): log eta at the surface's
        maximum (R, n_N) (NaN where it has none) and the range it may take at each N,
        between the best grid point's neighbours, low and high (R, n_N) (empty, low > high,
        where the best point is at the grid edge or beside a cliff).

        In u = log eta minus the grid's centre, each N has its own level and slope (the
        slope places the optimum, which may move freely with N); the curvature and the
        cubic's asymmetry are polynomials in log N, pooled over the N."""
        rows = scores.shape[0]
        n_n, k = self.basis.shape
        centre = self.log_eta.mean()
        u = self.log_eta - centre
        weights = np.zeros(scores.shape)
        low = np.empty((rows, n_n))
        high = np.empty_like(low)
        for j in range(n_n):
            at_n = np.flatnonzero(self.group == j)
            best = np.argmax(scores[:, at_n], axis=1)
            near = np.abs(np.arange(at_n.size)[None, :] - best[:, None]) <= self.window
            fitted = near & self.usable[at_n]
            weights[:, at_n] = fitted
            # the range the vertex may take: between the best point's fitted neighbours;
            # empty when one is missing (the best point at the grid edge or a cliff)
            padded_u = np.pad(u[at_n], 1, constant_values=np.nan)
            padded = np.pad(fitted, ((0, 0), (1, 1)))
            index = np.arange(rows)
            both = padded[index, best] & padded[index, best + 2]
            low[:, j] = np.where(both, padded_u[best], np.inf)
            high[:, j] = np.where(both, padded_u[best + 2], -np.inf)
        own = np.eye(n_n)[self.group]  # (n_cells, n_N)
        pooled = self.basis[self.group]  # (n_cells, k)
        design = np.hstack([own, own * u[:, None],
                            *(pooled * u[:, None] ** p for p in range(2, self.order + 1))])
        weighted = design.T[None, :, :] * weights[:, None, :]  # (R, p, n_cells)
        gram = weighted @ design
        rhs = (weights * scores) @ design
        coef = (np.linalg.pinv(gram, hermitian=True) @ rhs[..., None])[..., 0]
        c1 = coef[:, n_n:2 * n_n]
        c2 = coef[:, 2 * n_n:2 * n_n + k] @ self.basis.T
        c3 = (coef[:, 2 * n_n + k:] @ self.basis.T if self.order == 3
              else np.zeros_like(c1))
        # the maximum of c1 u + c2 u^2 + c3 u^3: the root of c1 + 2 c2 u + 3 c3 u^2 where
        # the second derivative is negative, 2 c1 / (-2 c2 + sqrt(4 c2^2 - 12 c1 c3))
        # (-c1 / (2 c2) for c3 = 0); undefined where the surface has no maximum
        discriminant = 4 * c2**2 - 12 * c1 * c3
        denominator = -2 * c2 + np.sqrt(np.clip(discriminant, 0, None))
        defined = (discriminant >= 0) & (denominator > 0)
        vertex = np.where(defined, 2 * c1 / np.where(defined, denominator, 1.0), np.nan)
        return vertex + centre, low + centre, high + centre


def _finite_interval(samples: np.ndarray, confidence: float) -> tuple:
    """Percentile interval per column of samples (R, n) over its finite values (NaN where a
    column has none)."""
    tail = 100 * (1 - confidence) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column with no finite value
        low, high = np.nanpercentile(np.where(np.isfinite(samples), samples, np.nan),
                                     [tail, 100 - tail], axis=0)
    return low, high
