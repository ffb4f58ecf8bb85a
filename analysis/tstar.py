"""Question 1, the mechanism: is eta_best ~ N^-1 early stopping in learning-rate time?

If validation accuracy depends on a constant-eta run only through eta x step and peaks at
T*, the best eta for N steps is T*/N. From the archived curves of results/eta-vs-n (N =
32..10^4) and results/eta-vs-n-long (N = 1000..10^5): T*(eta) per learning rate with seed
CIs (`nnlab.analysis.peak_time`), the slope of log T* in log eta (0 if T* is one number),
and eta_best(N) = T*/N against the measured eta_best at lengths the T* did not use. Then
results/eta-vs-n-wd (the same network and seeds with L2 weight decay, whose hypotheses its
spec declared before it ran): does removing the fall after the peak move eta_best and
its exponent as the mechanism predicts? And results/eta-vs-n-cosine (the same seeds with a
cosine decay over each run's N steps, whose hypotheses studies/eta-vs-n-cosine.toml
declared before any run): is eta_best twice the constant eta's, as a run that accumulates
eta x N / 2 of learning-rate time needs? Until that study has run its hypotheses are listed
as declared, not evaluated. -> results/eta-vs-n-wd/findings.md, findings.json,
findings/peak_time.png.

    python analysis/tstar.py
"""

from __future__ import annotations

from pathlib import Path

import eta_vs_n
import numpy as np
import pandas as pd
from common import (
    as_written,
    bootstrap_p,
    ci,
    claims_lines,
    claims_table,
    complete_seeds,
    figure_path,
    hypothesis_records,
    load,
    load_if_run,
    log2_statistic,
    percentile_interval,
    replicate_interval,
    run,
    runs_by_length,
    scale_up,
    statistic,
    verdict_line,
    write_findings,
)
from common import render as render_template
from matplotlib.figure import Figure
from scipy import stats

from nnlab.analysis import (
    EtaBestResult,
    Family,
    PeakTimeResult,
    PowerLawFit,
    eta_best,
    eta_best_ratio,
    fit_power_law,
    peak_time,
    predict_eta_best,
)
from nnlab.analysis.power_law import t_over_z
from nnlab.errors import DataError
from nnlab.report.figures import save_figure
from nnlab.study import Study, StudySpec
from nnlab.study.hypotheses import evaluate_all

STUDY = "eta-vs-n-wd"  # the intervention; the findings are written beside its results
SHORT, LONG = "eta-vs-n", "eta-vs-n-long"
STALLED_AT = 0.2  # as analysis/eta_vs_n.py: a run no better than twice chance stalled
SMALL_ETAS = 1.0  # the learning rates that are best somewhere in N = 10^4..10^5
FALLING = [3162, 5623, 10000]  # eta-vs-n's lengths past its breakpoint (finding 1)
FALL_ETA = 2.0  # the manipulation check's learning rate
N_RESAMPLES = 2000
COSINE = "eta-vs-n-cosine"  # the schedule intervention (declared; judged once it has run)
COSINE_SPEC = Path(__file__).resolve().parent.parent / "studies" / f"{COSINE}.toml"
COSINE_FIT = [10000, 17783, 31623, 56234, 100000]  # b in both arms (the spec's lengths)
COSINE_LONGEST = [56234, 100000]  # the primary's lengths: the constant optimum is sharpest


def curves(name: str) -> pd.DataFrame:
    """One row per (run, evaluation) of results/<name>: eta, seed, step, val_acc."""
    data = load(name).curves(columns=["step", "val_acc"], with_params=True)
    return data[["eta", "seed", "step", "val_acc"]]


def measured(name: str, lengths: list[int] | None = None,
             seeds: list[int] | None = None, etas: list[float] | None = None
             ) -> EtaBestResult:
    """eta_best per N of results/<name> as finding 1 computes it (small-sample widened,
    stalled runs make cliffs), at `lengths` (default all), on `seeds` and `etas` (all)."""
    runs = runs_by_length(name)
    if lengths is not None:
        runs = runs[runs["n_steps"].isin(lengths)]
    if seeds is not None:
        runs = runs[runs["seed"].isin(seeds)]
    if etas is not None:
        runs = runs[runs["eta"].isin(etas)]
    return eta_best(runs, stalled_at=STALLED_AT, small_sample=True, n_resamples=N_RESAMPLES)


def slope_estimate(fit) -> dict:
    """The slope of log T* in log eta (-b of T* = a eta^-b) with its interval."""
    e = fit.exponent
    return {"value": -e.value, "low": -e.high, "high": -e.low, "confidence": e.confidence}


def peak_tables() -> dict:
    """T* per learning rate from each archive, and its slope in eta (the long study: every
    uncensored learning rate, and those up to SMALL_ETAS)."""
    found = {name: peak_time(curves(name), n_resamples=N_RESAMPLES) for name in (SHORT, LONG)}
    long = found[LONG]
    small = long.table["eta"].to_numpy() <= SMALL_ETAS
    return {"found": found, "slope_all": long.slope(), "slope_small": long.slope(small)}


def held_out(found: dict[str, PeakTimeResult]) -> dict:
    """eta_best = T*/N at lengths the T* did not use: T* from eta-vs-n (steps <= 10^4)
    against eta-vs-n-long's eta_best at N > 10^4, and T* from eta-vs-n-long's small
    learning rates (peaks past 10^4) against eta-vs-n's eta_best at N = 3162..10^4."""
    long_result = measured(LONG)
    beyond = [n for n in long_result.table["n_steps"] if n > 10000]
    forward = predict_eta_best(found[SHORT], long_result, beyond)
    small = found[LONG].table["eta"].to_numpy() <= SMALL_ETAS
    backward = predict_eta_best(found[LONG], measured(SHORT), FALLING, keep=small)
    return {"forward": forward, "backward": backward}


# --- the intervention -------------------------------------------------------------------

def seed_mean_fall(data: pd.DataFrame, eta: float, seed: int = 0) -> dict:
    """How far the seed-mean val_acc at `eta` falls from its highest evaluation to its
    last: (max - last), bootstrap over seeds (percentile, widened by t/z)."""
    table = data[(data["eta"] == eta) & (data["step"] > 0)].pivot(
        index="seed", columns="step", values="val_acc").to_numpy()
    rng = np.random.default_rng(seed)
    index = rng.integers(0, table.shape[0], (N_RESAMPLES, table.shape[0]))
    boot_means = table[index].mean(axis=1)  # (R, n_evals)
    value = float(table.mean(axis=0).max() - table.mean(axis=0)[-1])
    found = widened(value, boot_means.max(axis=1) - boot_means[:, -1], table.shape[0])
    return {**found, "low": max(found["low"], 0.0)}


def best_cell_difference(a: pd.DataFrame, b: pd.DataFrame, seed: int = 0) -> dict:
    """The best seed-mean val_acc over the (eta, N) cells of arm a minus arm b's, both on
    the same seeds (a resampled seed brings its runs in both arms), percentile bootstrap
    widened by t/z."""
    tables = [arm.pivot_table(index="seed", columns=["eta", "n_steps"], values="val_acc")
              for arm in (a, b)]
    n = tables[0].shape[0]
    index = np.random.default_rng(seed).integers(0, n, (N_RESAMPLES, n))
    values = [t.to_numpy() for t in tables]
    value = float(values[0].mean(axis=0).max() - values[1].mean(axis=0).max())
    boot = values[0][index].mean(axis=1).max(axis=1) - values[1][index].mean(axis=1).max(axis=1)
    return widened(value, boot, n)


def widened(value: float, boot: np.ndarray, n_seeds: int) -> dict:
    """value with the 95% percentile interval of its bootstrap replicates (n_resamples,)
    over n_seeds seeds, their spread about value widened by t_(n-1) / z."""
    return {"value": value,
            **replicate_interval(value + t_over_z(n_seeds - 1, 0.95) * (boot - value)),
            "n_seeds": n_seeds}


def sweep_eta_best(runs: pd.DataFrame) -> EtaBestResult:
    """eta_best per N of one arm's runs (one row per run and N: n_steps, eta, seed, status,
    val_acc), as every comparison of arms here computes it (stalled runs make cliffs,
    small-sample widened, resampling seed 0: arms on the same seeds pair)."""
    return eta_best(runs, stalled_at=STALLED_AT, n_resamples=N_RESAMPLES)


def power_laws(arms: dict[str, EtaBestResult], lengths: list[int]) -> dict[str, PowerLawFit]:
    """eta_best = a N^-b of each arm over `lengths` (ascending), its bootstrap over seeds
    propagated from the arm's replicates."""
    fits = {}
    for name, result in arms.items():
        keep = result.table["n_steps"].isin(lengths).to_numpy()
        fits[name] = fit_power_law(lengths, result.table["eta_best"].to_numpy()[keep],
                                   y_boot=np.exp(result.boot_log_eta[:, keep]),
                                   boot_unit="seeds", n_resamples=N_RESAMPLES)
    return fits


def exponent_difference(first: PowerLawFit, second: PowerLawFit) -> tuple[dict, np.ndarray]:
    """b of `first` minus b of `second`, with its percentile interval and replicates
    (n_resamples,). Paired: fitted from arms bootstrapped with the same `seed` over the same
    seeds, replicate k of both resampled the same seeds (nnlab.analysis.arms)."""
    boot = first.boot_exponent - second.boot_exponent
    return {"value": first.exponent.value - second.exponent.value,
            **replicate_interval(boot), "confidence": 0.95}, boot


def intervention() -> dict:
    """The weight-decay arm against eta-vs-n's runs of the same seeds and learning rates:
    T* per learning rate, eta_best per N and its ratio to no decay, b over the falling
    lengths in each arm and their paired difference, the manipulation check and the best
    cell; the spec's hypotheses judged on them."""
    study = load(STUDY)
    wd, design = complete_seeds(study)
    seeds, etas = design["seeds_used"], design["etas"]
    control = runs_by_length(SHORT)
    control = control[control["seed"].isin(seeds) & control["eta"].isin(etas)]
    arms = {"weight decay": sweep_eta_best(wd), "none": sweep_eta_best(control)}
    ratio = eta_best_ratio(wd, control, names=("weight decay", "none"), paired=True,
                           stalled_at=STALLED_AT, n_resamples=N_RESAMPLES)
    fits = power_laws(arms, FALLING)
    b_difference, b_boot = exponent_difference(fits["none"], fits["weight decay"])
    wd_curves = curves(STUDY)
    wd_curves = wd_curves[wd_curves["seed"].isin(seeds)]
    short_curves = curves(SHORT)
    short_curves = short_curves[short_curves["seed"].isin(seeds)]
    falls = {name: seed_mean_fall(data, FALL_ETA)
             for name, data in (("weight decay", wd_curves), ("none", short_curves))}
    best = best_cell_difference(wd[wd["status"] == "ok"], control[control["status"] == "ok"])
    at_longest = ratio.table.iloc[-1]
    unit, n = "seed", len(seeds)
    b_wd = fits["weight decay"].exponent
    statistics = {
        "wd.eta_best_ratio": statistic({**at_longest, "value": at_longest["ratio"]}, unit, n),
        "wd.b": statistic(vars(b_wd), unit, n),
        "wd.b_difference": statistic(b_difference, unit, n),
        "wd.fall_after_peak": statistic(falls["weight decay"], unit, n),
        "wd.best_val_acc_difference": statistic(best, unit, n),
    }
    verdicts = evaluate_all(study.spec.hypotheses, statistics)
    return {"study": study, "design": design, "seeds": seeds, "etas": etas, "arms": arms,
            "ratio": ratio, "fits": fits, "b_difference": b_difference, "b_boot": b_boot,
            "falls": falls, "best": best, "verdicts": verdicts,
            "peak": peak_time(wd_curves, n_resamples=N_RESAMPLES),
            "weight_decay": float(study.spec.base_config().weight_decay)}


# --- the cosine schedule ------------------------------------------------------------------

def cosine_runs(study: Study) -> tuple[pd.DataFrame, dict]:
    """The cosine study's runs at their ends, one row per run (trial, n_steps, eta, seed,
    status, val_acc, test_acc), of the seeds that finished every (eta, n_steps) of its grid
    (the grid enqueues the seeds one after another: a study stopped early is the same
    design on fewer seeds), and {"seeds_used", "runs_finished"}. A cosine spreads its decay
    over its run, so each length is a run of its own."""
    grid = study.spec.grid
    trials = study.trials()
    done = trials[trials["state"] == "COMPLETE"]
    finished = done.groupby("seed").size()  # one trial per (eta, n_steps) and seed
    seeds = sorted(int(s) for s in finished.index
                   if finished[s] == len(grid["eta"]) * len(grid["n_steps"]))
    if len(seeds) < 2:
        name = study.spec.name
        raise DataError(f"{name}: {len(seeds)} seed(s) have finished every (eta, n_steps) of "
                        f"its grid; the comparison needs 2 (`nnlab run studies/{name}.toml`)")
    runs = done.loc[done["seed"].isin(seeds),
                    ["trial", "n_steps", "eta", "seed", "status", "val_acc", "test_acc"]]
    return runs.astype({"n_steps": int, "eta": float}), {"seeds_used": seeds,
                                                         "runs_finished": len(done)}


def cosine_design(spec: StudySpec) -> dict:
    """What the cosine spec plans: etas, lengths N, seeds (replicates), schedule; its
    lengths must be COSINE_FIT, the lengths this analysis fits."""
    lengths = sorted(int(n) for n in spec.grid.get("n_steps", []))
    if lengths != COSINE_FIT:
        raise DataError(f"{spec.name}: grid.n_steps must be {COSINE_FIT} (the lengths "
                        f"analysis/tstar.py fits), got {lengths}")
    return {"etas": [float(e) for e in spec.grid["eta"]], "lengths": lengths,
            "planned_seeds": spec.replicates, "schedule": spec.base_config().schedule}


def paired_log_ratio(a: EtaBestResult, b: EtaBestResult, lengths: list[int]
                     ) -> tuple[pd.DataFrame, np.ndarray]:
    """eta_best of arm a over arm b at `lengths` (ascending): one row per N with n_steps,
    ratio, low, high (95% percentile interval), and the (n_resamples, n_lengths) replicates
    of the log ratio. The arms must hold the same seeds and have been bootstrapped alike
    (`sweep_eta_best`): replicate k then resampled the same seeds in both, and the ratio's
    replicates pair."""
    if a.resampling != b.resampling or not a.resampling.startswith("seeds, shared"):
        raise DataError("a paired eta_best ratio needs both arms resampled jointly over "
                        f"their seeds, got {a.resampling!r} and {b.resampling!r}")
    columns = [np.flatnonzero(r.table["n_steps"].isin(lengths).to_numpy()) for r in (a, b)]
    if any(c.size != len(lengths) for c in columns):
        raise DataError(f"a paired eta_best ratio needs both arms at N = {lengths}")
    log_ratio = np.log(a.table["eta_best"].to_numpy()[columns[0]]
                       / b.table["eta_best"].to_numpy()[columns[1]])
    boot = a.boot_log_eta[:, columns[0]] - b.boot_log_eta[:, columns[1]]
    intervals = [percentile_interval(np.exp(boot[:, j])) for j in range(len(lengths))]
    table = pd.DataFrame({"n_steps": lengths, "ratio": np.exp(log_ratio),
                          "low": [i[0] for i in intervals], "high": [i[1] for i in intervals]})
    return table, boot


def gain_at_doubled_eta(cosine: pd.DataFrame, constant: pd.DataFrame,
                        doubled: dict[int, float]) -> dict:
    """The manipulation check: per seed, the mean over N of the cosine run's val_acc minus
    the constant-eta run's, both at eta = doubled[N] after N steps; the mean over seeds
    with Student's t 95% interval. cosine, constant: one row per run and N (n_steps, eta,
    seed, val_acc) on the same seeds."""
    def per_seed(runs: pd.DataFrame, arm: str) -> pd.Series:
        cells = runs.astype({"n_steps": int, "eta": float}).set_index(
            ["n_steps", "eta", "seed"])["val_acc"]
        missing = [(n, eta) for n, eta in doubled.items() if (n, eta) not in cells.index]
        if missing:
            raise DataError(f"the manipulation check needs the {arm} arm's runs at (N, eta) "
                            f"= {missing}")
        return pd.concat([cells.loc[(n, eta)] for n, eta in doubled.items()],
                         axis=1).mean(axis=1)

    difference = per_seed(cosine, "cosine") - per_seed(constant, "constant")
    low, high = stats.ttest_1samp(difference.to_numpy(), 0.0).confidence_interval(0.95)
    return {"value": float(difference.mean()), "low": float(low), "high": float(high),
            "n_seeds": int(difference.size),
            "cells": [{"n_steps": n, "eta": eta} for n, eta in doubled.items()]}


def cosine_numbers(cosine: pd.DataFrame, constant: pd.DataFrame) -> dict:
    """The cosine arm against the constant-eta runs of the same seeds (both one row per
    run and N, at N = COSINE_FIT): eta_best per N in each and their paired ratio, its
    geometric mean over COSINE_LONGEST (the primary), b over COSINE_FIT in each and
    b(constant) - b(cosine), and the manipulation check at twice the constant arm's best
    grid eta; `statistics`: the Estimates the spec's hypotheses name."""
    arms = {"cosine": sweep_eta_best(cosine), "constant": sweep_eta_best(constant)}
    table, boot = paired_log_ratio(arms["cosine"], arms["constant"], COSINE_FIT)
    longest = eta_vs_n.geometric_mean(table, boot,
                                      table["n_steps"].isin(COSINE_LONGEST).to_numpy())
    fits = power_laws(arms, COSINE_FIT)
    b_difference, _ = exponent_difference(fits["constant"], fits["cosine"])
    best_grid = arms["constant"].table.set_index("n_steps")["eta_grid"]
    etas = np.unique(cosine["eta"].to_numpy(dtype=float))  # eta_grid is exp(log eta): snap
    doubled = {n: float(next(iter(etas[np.isclose(etas, 2 * best_grid[n])]),
                             2 * best_grid[n])) for n in COSINE_FIT}
    gain = gain_at_doubled_eta(cosine, constant, doubled)
    n, unit = gain["n_seeds"], "seed"
    statistics = {
        "cos.log2_ratio_longest": log2_statistic(longest, longest["boot_log"], unit, n),
        "cos.b_difference": statistic(b_difference, unit, n),
        "cos.gain_at_doubled_eta": statistic(gain, unit, n)}
    return {"eta_best": {name: r.table[["n_steps", "eta_best", "low", "high", "eta_grid",
                                        "bracketed"]].to_dict(orient="records")
                         for name, r in arms.items()},
            "ratio": table.to_dict(orient="records"),
            "longest": {**{k: longest[k] for k in ("value", "low", "high")},
                        "log2": {k: float(np.log2(longest[k])) for k in ("value", "low", "high")},
                        "lengths": COSINE_LONGEST},
            "b": {name: fit.to_dict() for name, fit in fits.items()},
            "b_difference": b_difference, "gain": gain, "statistics": statistics}


def cosine() -> dict:
    """The cosine study's declared hypotheses: judged on its runs once results/eta-vs-n-
    cosine exists (paired with finding 1's constant-eta runs of the same seeds), else
    listed as declared and not evaluated, from the spec in studies/."""
    study = load_if_run(COSINE)
    if study is None:
        return not_run(StudySpec.from_toml(COSINE_SPEC))
    runs, used = cosine_runs(study)
    design = {**cosine_design(study.spec), **used}
    constant, _ = eta_vs_n.batch_runs(100)
    constant = constant[constant["seed"].isin(design["seeds_used"])
                        & constant["n_steps"].isin(COSINE_FIT)]
    return judged(study.spec, runs, constant, design)


def not_run(spec: StudySpec) -> dict:
    """The cosine study's plan and its hypotheses, each not evaluated: it has not run."""
    reason = f"{COSINE} has not run yet"
    verdicts = evaluate_all(spec.hypotheses, {h.statistic: reason for h in spec.hypotheses})
    return {"run": False, "design": cosine_design(spec),
            "hypotheses": hypothesis_records(verdicts)}


def judged(spec: StudySpec, runs: pd.DataFrame, constant: pd.DataFrame, design: dict
           ) -> dict:
    """findings.json's "cosine" once the study has run: `cosine_numbers` of its runs
    against the constant-eta runs of the same seeds, and the verdicts on `spec`'s
    hypotheses; design: `cosine_runs`'s."""
    found = cosine_numbers(runs, constant)
    verdicts = evaluate_all(spec.hypotheses, found.pop("statistics"))
    return {"run": True, "design": design, "hypotheses": hypothesis_records(verdicts),
            **found}


def compute() -> dict:
    """Every number of this finding (read only): {"numbers": findings.json's content,
    "figures": what the figure draws, "summaries": printed lines}."""
    peaks = peak_tables()
    found = peaks["found"]
    checks = held_out(found)
    wd = intervention()
    schedule = cosine()

    family = Family("finding 7: eta_best ~ 1/N as early stopping in learning-rate time")
    claims = {}
    for key, label in (("slope_all", "every uncensored eta"),
                       ("slope_small", f"eta <= {SMALL_ETAS:g}")):
        name = f"slope of log T* in log eta = 0 ({label}, {LONG})"
        family.add(name, bootstrap_p(peaks[key].boot_exponent, 0.0))
        claims[name] = f"T* changes with eta ({label})"
    for key, label in (("forward", f"T* from {SHORT}, eta_best of {LONG} at N > 10^4"),
                       ("backward", f"T* from {LONG} (eta <= {SMALL_ETAS:g}), eta_best of "
                                    f"{SHORT} at N = 3162..10^4")):
        name = f"measured / predicted eta_best = 1 ({label})"
        family.add(name, bootstrap_p(checks[key].boot_log_mean_ratio, 0.0))
        claims[name] = f"eta_best is not T*/N ({label})"
    name = "b(no decay) - b(weight decay) = 0, N = 3162..10^4"
    family.add(name, bootstrap_p(wd["b_boot"], 0.0))
    claims[name] = "weight decay changes b over N = 3162..10^4"

    def peak_records(result: PeakTimeResult) -> list[dict]:
        return result.table.to_dict(orient="records")

    hypotheses = hypothesis_records(wd["verdicts"])
    numbers = {
        "peak_time": {name: {"table": peak_records(r), "resampling": r.resampling,
                             "max_share": r.max_share}
                      for name, r in found.items()},
        "slope": {"all": {"estimate": slope_estimate(peaks["slope_all"]),
                          "fit": peaks["slope_all"].to_dict()},
                  "small": {"estimate": slope_estimate(peaks["slope_small"]),
                            "fit": peaks["slope_small"].to_dict(), "eta_max": SMALL_ETAS}},
        "pooled": {name: r.pooled().to_dict() for name, r in found.items()},
        "held_out": {key: check.to_dict() for key, check in checks.items()},
        "intervention": {
            "weight_decay": wd["weight_decay"], "seeds": wd["seeds"], "etas": wd["etas"],
            "design": wd["design"], "n_runs": len(wd["seeds"]) * len(wd["etas"]),
            "eta_best": {name: r.table[["n_steps", "eta_best", "low", "high", "bracketed"]]
                         .to_dict(orient="records") for name, r in wd["arms"].items()},
            "ratio": wd["ratio"].table.to_dict(orient="records"),
            "b": {name: fit.to_dict() for name, fit in wd["fits"].items()},
            "b_difference": wd["b_difference"],
            "fall_after_peak": {"eta": FALL_ETA, **wd["falls"]},
            "best_cell_difference": wd["best"],
            "peak_time": peak_records(wd["peak"]),
        },
        "cosine": schedule,
        "hypotheses": hypotheses,
        "claims": claims_table(family, claims),
        "family": family.to_dict(),
        "summary": {
            "t_star_small": found[LONG].pooled(
                found[LONG].table["eta"].to_numpy() <= SMALL_ETAS).to_dict(),
            "slope": slope_estimate(peaks["slope_all"]),
            "forward_ratio": checks["forward"].mean_ratio.to_dict(),
            "primary": next((h["verdict"] for h in hypotheses if h["primary"]), None)},
    }
    summaries = [r.summary() for r in found.values()] + [
        peaks["slope_all"].summary(), peaks["slope_small"].summary(),
        checks["forward"].summary(), checks["backward"].summary(), wd["peak"].summary(),
        wd["ratio"].summary(),
        family.summary()]
    return {"numbers": numbers, "figures": {"found": found, "wd": wd["peak"]},
            "summaries": summaries}


def draw(found: dict[str, PeakTimeResult], wd: PeakTimeResult) -> None:
    """findings/peak_time.png: T* against eta per study (uncensored, with CIs; censored as
    bounds), and the line T* = eta_best x N of finding 1's range."""
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    ax = figure.subplots()
    shown = {**found, f"{STUDY} (weight decay)": wd}
    for k, (name, result) in enumerate(shown.items()):
        table = result.table[result.table["complete"]
                             & (result.table["metric_at_peak"] > STALLED_AT)]
        inside = table[~table["excluded"]]
        shift = 1.04 ** (k - 1)
        ax.errorbar(inside["eta"] * shift, inside["t_peak"],
                    yerr=[inside["t_peak"] - inside["low"], inside["high"] - inside["t_peak"]],
                    fmt="o", capsize=3, color=f"C{k}", label=f"{name}")
        bounds = table[table["censored"] == "right"]
        ax.plot(bounds["eta"] * shift, bounds["t_peak"], "^", color=f"C{k}", alpha=0.5,
                label=f"{name}: still rising at its last evaluation (T* above)")
    ax.axhspan(6.0e3, 7.6e3, color="0.85", label="eta_best x N, N = 3162..10^5 (finding 1)")
    ax.set(xscale="log", yscale="log", xlabel="eta", ylabel="T* = eta x step of the peak",
           title="Learning-rate time of the val_acc peak (95% CI over seeds)")
    ax.legend(fontsize="x-small")
    save_figure(figure, figure_path(STUDY, "peak_time.png"))


def peak_at(table: list[dict], eta: float) -> str:
    """'2.4e+04 [2.02e+04, 2.8e+04]': T* of one learning rate of a peak-time table."""
    row = next(r for r in table if r["eta"] == eta)
    return f"{row['t_peak']:.3g} [{row['low']:.3g}, {row['high']:.3g}]"


def values_list(values: list) -> str:
    """'0.125, 0.25, 0.5'."""
    return ", ".join(f"{v:g}" for v in values)


def eta_cell(row: dict) -> str:
    """'eta_best [low, high]' of one length, marked where the optimum is the grid's edge."""
    return (f"{row['eta_best']:.3g} [{row['low']:.3g}, {row['high']:.3g}]"
            f"{'' if row['bracketed'] else ' (grid edge)'}")


def cosine_text(found: dict) -> str:
    """The cosine section of findings.md from findings.json's "cosine": the design and the
    declared hypotheses, not evaluated until the study has run; then their verdicts, eta_best
    per N in both arms with the prediction 2x, b in each and the manipulation check."""
    design = found["design"]
    plan = (f"a cosine decay from eta to 0 over each run's N steps, {len(design['etas'])} "
            f"learning rates ({values_list(design['etas'])}) x N = "
            f"{values_list(design['lengths'])} x {design['planned_seeds']} seeds (0-"
            f"{design['planned_seeds'] - 1}, paired with the constant-eta runs of eta-vs-n and "
            f"eta-vs-n-long) = "
            f"{len(design['etas']) * len(design['lengths']) * design['planned_seeds']} runs")
    verdicts = "\n".join(verdict_line(h) for h in found["hypotheses"])
    reasoning = (
        "A cosine run of N steps accumulates eta x N / 2 of learning-rate time, so if "
        "val_acc peaks at one learning-rate time the best cosine eta is twice the best "
        "constant eta at every N (the same b, the level doubled); if instead the constant "
        "eta_best fell as 1/N because a constant rate's noise costs accuracy at the end (no "
        "peak), the decay to zero would remove that cost and the cosine optimum would stay "
        "near the stability plateau (~3) at every N (b near 0).")
    if not found["run"]:
        return (f"**Declared, not run yet.** studies/{COSINE}.toml: {plan}. {reasoning} Its "
                "hypotheses, declared before any of its runs (judged here once it has run):"
                f"\n\n{verdicts}\n\nRun it with `nnlab run studies/{COSINE}.toml --jobs 2` "
                "(the run time: the spec's header), then `python analysis/tstar.py`.")
    used = design["seeds_used"]
    stopped = ("" if len(used) == design["planned_seeds"] else
               f" The study was stopped before all its runs had finished: the analysis uses "
               f"the {len(used)} seeds that finished every (eta, N) ({values_list(used)}).")
    rows = "\n".join(
        f"| {c['n_steps']:g} | {eta_cell(c)} | {k['eta_best']:.3g} [{k['low']:.3g}, "
        f"{k['high']:.3g}] | {2 * k['eta_best']:.3g} | {r['ratio']:.2f} [{r['low']:.2f}, "
        f"{r['high']:.2f}] |"
        for c, k, r in zip(found["eta_best"]["cosine"], found["eta_best"]["constant"],
                           found["ratio"], strict=True))
    b, gain, log2 = found["b"], found["gain"], found["longest"]["log2"]
    cells = ", ".join(f"({c['eta']:g}, {c['n_steps']:g})" for c in gain["cells"])
    return (
        f"studies/{COSINE}.toml: {plan}.{stopped} {reasoning} Judged by the interval rule "
        f"of docs/hypotheses.md:\n\n{verdicts}\n\n"
        "| N | eta_best, cosine | eta_best, constant | predicted: 2 x constant | "
        "ratio cosine / constant (paired) |\n|---|---|---|---|---|\n"
        f"{rows}\n\n"
        f"Geometric mean of the ratio at N = {values_list(found['longest']['lengths'])}: "
        f"{found['longest']['value']:.2f} [{found['longest']['low']:.2f}, "
        f"{found['longest']['high']:.2f}] (log2 {log2['value']:.2f} [{log2['low']:.2f}, "
        f"{log2['high']:.2f}]; 1 by the mechanism). b over N = "
        f"{values_list(design['lengths'])}: {ci(b['cosine']['exponent'], '.2f')} with the "
        f"cosine, {ci(b['constant']['exponent'], '.2f')} at a constant eta; difference "
        f"(constant - cosine) {ci(found['b_difference'], '.2f')}. Manipulation check, "
        f"val_acc of the cosine minus the constant eta at the (eta, N) cells {cells} (twice "
        f"the constant arm's best grid eta), mean over N and seeds: {gain['value']:.4f} "
        f"[{gain['low']:.4f}, {gain['high']:.4f}] ({gain['n_seeds']} seeds, Student's t).")


def render(numbers: dict) -> str:
    """findings.md from findings.json's `numbers` (templates/tstar.md)."""
    def t_row(name: str, row: dict) -> str:
        if not row["complete"]:
            return f"| {name} | {row['eta']:g} | not estimated (a run diverged) | | | |"
        if row["metric_at_peak"] <= STALLED_AT:
            return (f"| {name} | {row['eta']:g} | none: its runs stall near chance | | "
                    f"{row['metric_at_peak']:.4f} | {row['n_seeds']} |")
        if row["censored"] != "no":
            side = ">=" if row["censored"] == "right" else "<="
            return (f"| {name} | {row['eta']:g} | {side} {row['t_peak']:.3g} ({row['censored']}"
                    f"-censored) | {row['step_grid']:g} | {row['metric_at_peak']:.4f} | "
                    f"{row['n_seeds']} |")
        flag = (f" (left out: {100 * row['censored_share']:.0f}% of replicates censored)"
                if row["excluded"] else "")
        return (f"| {name} | {row['eta']:g} | {row['t_peak']:.3g} [{row['low']:.3g}, "
                f"{row['high']:.3g}]{flag} | {row['step_peak']:.3g} | "
                f"{row['metric_at_peak']:.4f} | {row['n_seeds']} |")

    peaks = numbers["peak_time"]
    t_table = "\n".join(t_row(name, row) for name in (LONG, SHORT)
                        for row in peaks[name]["table"])

    def prediction_rows(check: dict) -> str:
        return "\n".join(
            f"| {row['n_steps']:g} | {row['eta_best']:.3g} [{row['low']:.3g}, "
            f"{row['high']:.3g}] | {row['eta_pred']:.3g} [{row['pred_low']:.3g}, "
            f"{row['pred_high']:.3g}] | {row['ratio']:.2f} [{row['ratio_low']:.2f}, "
            f"{row['ratio_high']:.2f}] |" for row in check["table"])

    held = numbers["held_out"]
    wd = numbers["intervention"]

    eta_rows = "\n".join(
        f"| {a['n_steps']:g} | {eta_cell(a)} | {eta_cell(b)} | {r['ratio']:.2f} "
        f"[{r['low']:.2f}, {r['high']:.2f}] | {a['eta_best'] * a['n_steps']:.3g} |"
        for a, b, r in zip(wd["eta_best"]["weight decay"], wd["eta_best"]["none"],
                           wd["ratio"], strict=True))
    wd_t = "\n".join(t_row(f"{STUDY}", row) for row in wd["peak_time"])
    b = wd["b"]
    falls = wd["fall_after_peak"]

    def fall(d: dict) -> str:
        return f"{d['value']:.4f} [{d['low']:.4f}, {d['high']:.4f}]"

    def holds_one(e: dict) -> bool:
        return e["low"] <= 1.0 <= e["high"]

    forward, backward = held["forward"]["mean_ratio"], held["backward"]["mean_ratio"]
    slope = numbers["slope"]["all"]["estimate"]
    off = ("within its interval" if holds_one(forward) else
           f"off by a factor {1 / forward['value']:.1f}")
    held_reading = (
        f"T* taken where the peak is seen early (eta = {values_list(held['forward']['etas'])})"
        f" predicts eta_best at N > 10^4 {off}"
        f"; T* taken at the learning rates that are best at those lengths "
        f"{'agrees' if holds_one(backward) else 'disagrees'} with eta_best at N = 3162..10^4 "
        f"(ratio {backward['value']:.2f}). eta_best = T*/N holds only with the T* of the "
        "learning rate that is best at N, and measured eta_best lies below it: at a fixed N "
        "a smaller eta also peaks a little higher (the seed-mean val_acc at the peak falls "
        "from 0.9698 at eta = 0.0625 to 0.9663 at eta = 2), which pulls the best eta below "
        "the one whose peak is at N.")
    design = wd["design"]
    stopped = ("" if len(design["seeds_used"]) == design["planned_seeds"] else
               f" **The study was stopped before all its runs had finished**: "
               f"{design['runs_finished']} of its {design['planned_seeds'] * len(wd['etas'])}"
               f" runs had, and the analysis uses the {len(design['seeds_used'])} seeds that "
               f"had finished every learning rate ({values_list(design['seeds_used'])}); the "
               "hypotheses were declared for 5 seeds and are judged on these. `nnlab run "
               "studies/eta-vs-n-wd.toml --jobs 1` finishes the study, keeping these runs.")
    primary = next(h for h in numbers["hypotheses"] if h["primary"])
    ratio_longest = wd["ratio"][-1]
    check = next(h for h in numbers["hypotheses"] if h["statistic"] == "wd.fall_after_peak")
    falls = wd["fall_after_peak"]
    manipulation = (
        "" if check["verdict"] == "held" else
        f" The manipulation check did not hold: with decay the seed-mean val_acc at eta = "
        f"{falls['eta']:g} still falls by {falls['weight decay']['value']:.4f} after its "
        f"peak ({falls['none']['value']:.4f} without), and at eta = 4 val_acc still peaks "
        f"inside the run, at T* = {peak_at(wd['peak_time'], 4.0)} with decay and "
        f"{peak_at(peaks[SHORT]['table'], 4.0)} without; this decay did not remove the "
        "fall the mechanism rests on, so the "
        "study does not say what removing it would do to eta_best and b.")
    wd_reading = (
        f"With weight decay {wd['weight_decay']:g}, the primary prediction "
        f"({primary['prediction']}) is {primary['verdict']}: eta_best at N = 10^4 is "
        f"{ratio_longest['ratio']:.2f} [{ratio_longest['low']:.2f}, "
        f"{ratio_longest['high']:.2f}] times eta-vs-n's on the same seeds "
        f"({len(wd['seeds'])} seeds)." + manipulation)
    answer = (
        f"Partly. At the learning rates that are best for N = 10^4..10^5 (eta <= "
        f"{SMALL_ETAS:g}) val_acc peaks at T* = {ci(numbers['summary']['t_star_small'], '.3g')}"
        f" (geometric mean over eta; seeds), the eta_best x N of finding 1. But T* is not one"
        f" number: it grows with eta (slope of log T* in log eta {ci(slope, '.2f')}, 10 "
        "seeds), so a T* read off the large learning rates, whose peak falls inside "
        f"N <= 10^4, predicts eta_best at N > 10^4 with measured / predicted = "
        f"{ci(forward, '.2f')} (held out; the prediction that a constant T* makes, ratio 1, "
        f"{'holds' if holds_one(forward) else 'fails'}). " + wd_reading)
    values = {
        "answer": answer, "held_reading": held_reading, "stopped": stopped,
        "wd_reading": wd_reading, "seeds": values_list(wd["seeds"]),
        "t_table": t_table,
        "slope_all": ci(numbers["slope"]["all"]["estimate"], ".2f"),
        "slope_all_n": numbers["slope"]["all"]["fit"]["n"],
        "slope_all_r2": f"{numbers['slope']['all']['fit']['r_squared']:.2f}",
        "slope_small": ci(numbers["slope"]["small"]["estimate"], ".2f"),
        "slope_small_n": numbers["slope"]["small"]["fit"]["n"],
        "small_etas": f"{SMALL_ETAS:g}",
        "t_small": ci(numbers["summary"]["t_star_small"], ".3g"),
        "pooled_short": ci(numbers["pooled"][SHORT], ".3g"),
        "forward_etas": ", ".join(f"{e:g}" for e in held["forward"]["etas"]),
        "forward_t": ci(held["forward"]["t_star"], ".3g"),
        "forward_rows": prediction_rows(held["forward"]),
        "forward_ratio": ci(held["forward"]["mean_ratio"], ".2f"),
        "backward_etas": ", ".join(f"{e:g}" for e in held["backward"]["etas"]),
        "backward_t": ci(held["backward"]["t_star"], ".3g"),
        "backward_rows": prediction_rows(held["backward"]),
        "backward_ratio": ci(held["backward"]["mean_ratio"], ".2f"),
        "weight_decay": f"{wd['weight_decay']:g}",
        "n_runs": wd["n_runs"], "n_seeds": len(wd["seeds"]),
        "etas": values_list(wd["etas"]),
        "verdicts": "\n".join(verdict_line(h) for h in numbers["hypotheses"]),
        "eta_rows": eta_rows,
        "b_wd": ci(b["weight decay"]["exponent"], ".2f"),
        "b_none": ci(b["none"]["exponent"], ".2f"),
        "b_difference": ci(wd["b_difference"], ".2f"),
        "fall_eta": f"{falls['eta']:g}",
        "fall_wd": fall(falls["weight decay"]), "fall_none": fall(falls["none"]),
        "best_difference": (f"{wd['best_cell_difference']['value']:.4f} "
                            f"[{wd['best_cell_difference']['low']:.4f}, "
                            f"{wd['best_cell_difference']['high']:.4f}]"),
        "wd_t": wd_t,
        "claims": claims_lines(numbers["claims"]),
        "cosine": cosine_text(numbers["cosine"]),
        "scale_up": scale_up(
            "evaluations between 10^4 and 10^5 steps for the large learning rates (T* of "
            "eta = 2..8 rests on 10 log-spaced points, a factor 1.78 apart), more seeds "
            "(the seed-mean peak is flat: its CI is wide), and the weight-decay arm to 10^5 "
            "steps (a new spec with a larger n_steps, as eta-vs-n-long is to eta-vs-n)."),
    }
    return render_template("tstar", values)


def main() -> None:
    found = compute()
    draw(found["figures"]["found"], found["figures"]["wd"])
    print(*[s for s in found["summaries"] if s], sep="\n")
    numbers = as_written(found["numbers"])
    write_findings(STUDY, render(numbers), numbers)


if __name__ == "__main__":
    run(main)
