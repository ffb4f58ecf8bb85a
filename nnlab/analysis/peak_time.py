"""The learning-rate time at which validation accuracy peaks, T*(eta) = eta x step of the
peak, per learning rate, with a bootstrap CI over seeds; and the best learning rate it
predicts for a training length N, eta_best(N) = T* / N.

If a run's metric depends on its learning rate and step only through the learning-rate
time eta x step (as gradient flow's does), a constant-eta run peaks at the same T* for
every eta, and the best eta for N steps is the one that reaches the peak at step N:
T* / N. The peak of each learning rate's seed-mean curve is located between its
evaluations by the vertex of a parabola in log step through the best evaluation and its
neighbours (the `eta_best` estimator, in log step instead of log eta). A peak at the last
evaluation is right-censored (the metric was still rising: T* >= eta x last step), one at
the first left-censored; the table says so and both stay out of `pooled`, `slope` and the
predictions. The bootstrap resamples whole seeds (every evaluation of a resampled seed
comes with it, in every learning rate when all hold the same seeds), and its spread of
log T* is widened by t_(m-1) / z as `eta_best`'s is.
Reference: Ali, Kolter & Tibshirani (2019, "A continuous-time view of early stopping for
least squares regression", AISTATS): gradient flow stopped at time t is close to ridge
regression with lambda = 1/t.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nnlab.analysis._bootstrap import Estimate, estimate, interval, resample_groups
from nnlab.analysis._checks import check_resampling, require_columns
from nnlab.analysis.learning_rate import EDGE_SHARE_MAX, EtaBestResult, _parabola_vertex
from nnlab.analysis.power_law import PowerLawFit, fit_power_law, t_over_z
from nnlab.errors import ConfigError, InsufficientData, is_number

_WHERE = "peak_time"


@dataclass(frozen=True)
class PeakTimeResult:
    """T*(eta) for each learning rate.

    table: one row per learning rate: `eta_col`, t_peak (eta x step of the peak), low,
        high (CI; for a censored peak the bound it gives: [eta x last step, inf) or
        (0, eta x first step]), step_peak, step_grid (the best evaluation), metric_at_peak
        (its seed mean), n_seeds, n_evals, censored ("right", "left" or "no"),
        censored_share (bootstrap replicates whose best evaluation is the first or the
        last), complete (every run has every evaluation, with a finite metric: False for
        learning rates with a diverged run, which are not estimated), excluded (not
        complete, censored, or censored_share > max_share: left out of `pooled`, `slope`
        and predictions).
    boot_log_t: (n_resamples, n_eta) replicates of log T*, columns in table order (NaN for
        a learning rate that is not complete).
    """

    table: pd.DataFrame
    eta_col: str
    metric: str
    resampling: str
    confidence: float
    max_share: float
    boot_log_t: np.ndarray = field(repr=False)

    def used(self, keep: np.ndarray | None = None) -> np.ndarray:
        """(n_eta,) bool: the learning rates not `excluded` (and within the mask `keep`)."""
        use = ~self.table["excluded"].to_numpy(dtype=bool)
        if keep is not None:
            use = use & np.asarray(keep, dtype=bool)
        return use

    def pooled_replicates(self, keep: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """(T*, replicates (n_resamples,)): the geometric mean of T* over the learning
        rates used (`used`), and the same mean in each bootstrap replicate."""
        use = self.used(keep)
        if not use.any():
            raise InsufficientData(f"{_WHERE}.pooled: no learning rate has an uncensored "
                                   "peak (every one is censored, incomplete or left out)")
        value = math.exp(float(np.log(self.table["t_peak"].to_numpy()[use]).mean()))
        return value, np.exp(self.boot_log_t[:, use].mean(axis=1))

    def pooled(self, keep: np.ndarray | None = None) -> Estimate:
        """T* pooled over the learning rates used: their geometric mean, percentile CI."""
        value, boot = self.pooled_replicates(keep)
        return estimate(value, boot, self.confidence)

    def slope(self, keep: np.ndarray | None = None, seed: int = 0) -> PowerLawFit:
        """T* = a eta^-b over the learning rates used, fitted on log-log axes with the
        bootstrap replicates propagated (`fit_power_law`): the slope of log T* against
        log eta is -b (0 when T* does not depend on eta)."""
        use = self.used(keep)
        if use.sum() < 3:
            raise InsufficientData(f"{_WHERE}.slope: {use.sum()} learning rate(s) with an "
                                   "uncensored peak; a slope needs 3")
        return fit_power_law(self.table[self.eta_col].to_numpy(dtype=float)[use],
                             self.table["t_peak"].to_numpy()[use],
                             y_boot=np.exp(self.boot_log_t[:, use]), boot_unit="seeds",
                             seed=seed, confidence=self.confidence)

    def summary(self) -> str:
        level = f"{100 * self.confidence:g}%"
        lines = [f"T* = {self.eta_col} x step of the peak of {self.metric} (vertex of a "
                 f"parabola in log step; {level} CI by bootstrap of {self.resampling}, "
                 f"{self.boot_log_t.shape[0]} resamples):"]
        for row in self.table.to_dict("records"):
            if not row["complete"]:
                lines.append(f"  {self.eta_col}={row[self.eta_col]:g}: not estimated (a run "
                             "diverged or misses evaluations)")
                continue
            flag = {"right": " (!) right-censored: still rising at the last evaluation",
                    "left": " (!) left-censored: falling from the first evaluation",
                    "no": ""}[row["censored"]]
            if row["censored"] == "no" and row["excluded"]:
                flag = (f" (!) {100 * row['censored_share']:.0f}% of replicates censored: "
                        "left out")
            lines.append(f"  {self.eta_col}={row[self.eta_col]:g}: T* = {row['t_peak']:.4g} "
                         f"[{row['low']:.4g}, {row['high']:.4g}] (step {row['step_peak']:.4g},"
                         f" {self.metric} {row['metric_at_peak']:.4f}, {row['n_seeds']} "
                         f"seeds){flag}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"eta_col": self.eta_col, "metric": self.metric,
                "resampling": self.resampling, "confidence": self.confidence,
                "max_share": self.max_share, "n_resamples": int(self.boot_log_t.shape[0]),
                "table": self.table.to_dict(orient="records")}


def peak_time(
    curves: pd.DataFrame,
    eta_col: str = "eta",
    metric: str = "val_acc",
    *,
    seed_col: str = "seed",
    step_col: str = "step",
    maximize: bool = True,
    window: int = 1,
    small_sample: bool = True,
    max_share: float = EDGE_SHARE_MAX,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PeakTimeResult:
    """T*(eta) = eta x step at which the seed-mean `metric` peaks, per learning rate.

    curves: one row per (run, evaluation): `eta_col`, `seed_col`, `step_col`, `metric`
        (`Study.curves(with_params=True)`); one run per (eta, seed). Evaluations at step 0
        are ignored (log step). A learning rate whose runs do not all have the same
        evaluations with a finite metric (a diverged run) is listed but not estimated.
    window: evaluations on each side of the best one that the parabola in log step uses.
    small_sample: widen the bootstrap spread of log T* by t_(m-1) / z (m seeds), as
        `eta_best` does. max_share: a learning rate whose replicates put the peak at the
        first or last evaluation more often than this is left out of the pooled T*.
    """
    check_resampling(n_resamples, confidence, _WHERE)
    if not isinstance(window, int) or window < 1:
        raise ConfigError(f"{_WHERE}.window", "an integer >= 1", window)
    if not (is_number(max_share) and 0 <= max_share <= 1):
        raise ConfigError(f"{_WHERE}.max_share", "a share in [0, 1]", max_share)
    require_columns(curves, [eta_col, seed_col, step_col, metric], _WHERE)
    data = curves[curves[step_col] > 0]
    if data.empty:
        raise InsufficientData(f"{_WHERE}: no evaluation after step 0")
    if data.duplicated([eta_col, seed_col, step_col]).any():
        raise InsufficientData(f"{_WHERE}: several rows for one ({eta_col}, {seed_col}, "
                               f"{step_col}); expected one run per {eta_col} and seed")

    etas = np.unique(data[eta_col].to_numpy(dtype=float))
    tables = {float(eta): data[data[eta_col] == eta].pivot(index=seed_col, columns=step_col,
                                                            values=metric) for eta in etas}
    complete = {eta: bool(np.isfinite(t.to_numpy(dtype=float)).all()) and t.shape[0] >= 2
                and t.shape[1] >= 3 for eta, t in tables.items()}
    if not any(complete.values()):
        raise InsufficientData(f"{_WHERE}: no {eta_col} has 2 or more complete runs with 3 "
                               "or more evaluations after step 0")
    boot_means = _resampled_means({eta: tables[eta] for eta in tables if complete[eta]},
                                  n_resamples, np.random.default_rng(seed))
    same_seeds = len({tuple(t.index) for eta, t in tables.items() if complete[eta]}) == 1

    sign = 1.0 if maximize else -1.0
    rows, boot = [], []
    for eta, table in tables.items():
        row: dict = {eta_col: eta, "n_seeds": int(table.shape[0]),
                     "n_evals": int(table.shape[1]), "complete": complete[eta]}
        if not complete[eta]:
            rows.append(row | {"t_peak": math.nan, "low": math.nan, "high": math.nan,
                               "step_peak": math.nan, "step_grid": math.nan,
                               "metric_at_peak": math.nan, "censored": "no",
                               "censored_share": math.nan, "excluded": True})
            boot.append(np.full(n_resamples, math.nan))
            continue
        steps = table.columns.to_numpy(dtype=float)
        log_step = np.log(steps)
        means = table.to_numpy(dtype=float).mean(axis=0)
        point_log, best = _parabola_vertex(log_step, sign * means[None, :], window)
        boot_log, boot_best = _parabola_vertex(log_step, sign * boot_means[eta], window)
        if small_sample:
            boot_log = point_log[0] + t_over_z(table.shape[0] - 1, confidence) * (
                boot_log - point_log[0])
        k = int(best[0])
        censored = "right" if k == steps.size - 1 else "left" if k == 0 else "no"
        share = float(np.mean((boot_best == 0) | (boot_best == steps.size - 1)))
        t_peak = eta * math.exp(point_log[0])
        low, high = (eta * np.exp(end) for end in interval(boot_log, confidence))
        if censored != "no":  # only a bound: beyond the last (before the first) evaluation
            t_peak = eta * steps[k]
            low, high = (t_peak, math.inf) if censored == "right" else (0.0, t_peak)
        rows.append(row | {"t_peak": t_peak, "low": float(low), "high": float(high),
                           "step_peak": math.exp(point_log[0]), "step_grid": steps[k],
                           "metric_at_peak": float(means[k]), "censored": censored,
                           "censored_share": share,
                           "excluded": censored != "no" or share > max_share})
        boot.append(math.log(eta) + boot_log)
    columns = [eta_col, "t_peak", "low", "high", "step_peak", "step_grid", "metric_at_peak",
               "n_seeds", "n_evals", "censored", "censored_share", "complete", "excluded"]
    return PeakTimeResult(
        table=pd.DataFrame(rows)[columns], eta_col=eta_col, metric=metric,
        resampling=("seeds, shared across learning rates" if same_seeds
                    else "seeds within each learning rate")
        + (", widened by t/z" if small_sample else ""),
        confidence=confidence, max_share=float(max_share), boot_log_t=np.column_stack(boot))


def _resampled_means(tables: dict[float, pd.DataFrame], n_resamples: int,
                     rng: np.random.Generator) -> dict[float, np.ndarray]:
    """Per learning rate, (n_resamples, n_evals) bootstrap seed means of its curve
    (`resample_groups`, each evaluation a group): one shared seed index over every learning
    rate when all hold the same seeds (sorted), else one per learning rate."""
    def means(groups: list[pd.DataFrame]) -> list[np.ndarray]:
        cells = [t[step].to_numpy(dtype=float) for t in groups for step in t.columns]
        resampled = resample_groups(cells, n_resamples, rng, paired=True)
        return [r.mean(axis=1) for r in resampled]

    ordered = {eta: t.sort_index() for eta, t in tables.items()}
    if len({tuple(t.index) for t in ordered.values()}) == 1:
        flat = iter(means(list(ordered.values())))
        return {eta: np.column_stack([next(flat) for _ in t.columns])
                for eta, t in ordered.items()}
    return {eta: np.column_stack(means([t])) for eta, t in ordered.items()}


@dataclass(frozen=True)
class EtaBestPrediction:
    """eta_best(N) = T* / N against the measured eta_best(N).

    table: one row per N: `n_col`, eta_best, low, high (measured, its CI), eta_pred,
        pred_low, pred_high (T* / N), ratio, ratio_low, ratio_high (measured / predicted).
    mean_ratio: the geometric mean of the ratio over the N, with its interval;
        boot_log_mean_ratio (n_resamples,) its replicates (log).
    t_star: the pooled T* the prediction uses, and the learning rates it pools.
    Measured and predicted replicates are combined as independent (the T* replicates drawn
    at random for each measured one): when both rest on the same seeds their positive
    correlation would narrow the ratio's interval, so it is conservative there.
    """

    table: pd.DataFrame
    mean_ratio: Estimate
    t_star: Estimate
    etas: list[float]
    n_col: str
    confidence: float
    boot_log_mean_ratio: np.ndarray = field(repr=False)

    def summary(self) -> str:
        etas = ", ".join(f"{eta:g}" for eta in self.etas)
        lines = [f"eta_best = T*/N with T* = {self.t_star} (pooled over eta = {etas}); "
                 f"measured / predicted, geometric mean over the N: {self.mean_ratio}"]
        lines += [f"  {self.n_col}={row[self.n_col]:g}: measured {row['eta_best']:.3g} "
                  f"[{row['low']:.3g}, {row['high']:.3g}], predicted {row['eta_pred']:.3g} "
                  f"[{row['pred_low']:.3g}, {row['pred_high']:.3g}], ratio {row['ratio']:.3g}"
                  f" [{row['ratio_low']:.3g}, {row['ratio_high']:.3g}]"
                  for row in self.table.to_dict("records")]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"n_col": self.n_col, "confidence": self.confidence, "etas": self.etas,
                "t_star": self.t_star.to_dict(), "mean_ratio": self.mean_ratio.to_dict(),
                "table": self.table.to_dict(orient="records")}


def predict_eta_best(peak: PeakTimeResult, measured: EtaBestResult,
                     n_values: object | None = None, keep: np.ndarray | None = None,
                     seed: int = 0) -> EtaBestPrediction:
    """Compare eta_best(N) = T*/N (T* pooled over `peak`'s learning rates used, within the
    mask `keep`) with `measured`'s eta_best at the lengths `n_values` (default: all of
    its N; for a held-out check, lengths the T* runs did not reach)."""
    if not isinstance(peak, PeakTimeResult):
        raise ConfigError(f"{_WHERE}.peak", "a PeakTimeResult", shown=type(peak).__name__)
    if not isinstance(measured, EtaBestResult):
        raise ConfigError(f"{_WHERE}.measured", "an EtaBestResult",
                          shown=type(measured).__name__)
    t_value, t_boot = peak.pooled_replicates(keep)
    lengths = measured.table[measured.n_col].to_numpy(dtype=float)
    wanted = lengths if n_values is None else np.asarray(n_values, dtype=float).ravel()
    missing = np.setdiff1d(wanted, lengths)
    if missing.size or wanted.size == 0:
        raise ConfigError(f"{_WHERE}.n_values", f"values of {measured.n_col!r} the measured "
                          f"result has ({', '.join(f'{n:g}' for n in lengths)})",
                          shown=", ".join(f"{n:g}" for n in missing) or "none")
    columns = np.searchsorted(lengths, wanted)
    rng = np.random.default_rng(seed)
    boot_t = np.log(t_boot)[rng.integers(0, t_boot.size, measured.boot_log_eta.shape[0])]
    boot_ratio = measured.boot_log_eta[:, columns] - (boot_t[:, None] - np.log(wanted))
    log_ratio = (np.log(measured.table["eta_best"].to_numpy()[columns])
                 - np.log(t_value / wanted))
    pred_low, pred_high = interval(np.log(t_boot), peak.confidence)
    ratio_low, ratio_high = interval(boot_ratio, peak.confidence)
    rows = measured.table.iloc[columns]
    table = pd.DataFrame({
        measured.n_col: wanted, "eta_best": rows["eta_best"].to_numpy(),
        "low": rows["low"].to_numpy(), "high": rows["high"].to_numpy(),
        "eta_pred": t_value / wanted, "pred_low": np.exp(pred_low) / wanted,
        "pred_high": np.exp(pred_high) / wanted, "ratio": np.exp(log_ratio),
        "ratio_low": np.exp(ratio_low), "ratio_high": np.exp(ratio_high)})
    mean_ratio = estimate(math.exp(float(log_ratio.mean())),
                          np.exp(boot_ratio.mean(axis=1)), peak.confidence)
    etas = peak.table[peak.eta_col].to_numpy(dtype=float)[peak.used(keep)]
    return EtaBestPrediction(table=table, mean_ratio=mean_ratio,
                             t_star=estimate(t_value, t_boot, peak.confidence),
                             etas=[float(e) for e in etas], n_col=measured.n_col,
                             confidence=peak.confidence,
                             boot_log_mean_ratio=boot_ratio.mean(axis=1))
