"""Statistics on study results: pure functions from DataFrames to results with uncertainty.

Each analysis returns a frozen dataclass with `summary()` (one readable paragraph: numbers
with CIs and n) and `to_dict()` (JSON-able, for the report). Every bootstrap takes
`n_resamples` and `seed`.

Diverged runs: `eta_best` keeps them (a diverged run is a bad result for its learning
rate); `variance_vs_n` and `compare_variance_by` leave them out and report how many.

Conventions (docs/analysis.md): each interval names its unit of replication (`unit`);
groups that share seeds are compared paired (`paired=`, `pair_on=`); "no difference"
comes with equivalence bounds (`tost_*`) and power (`power`,
`minimum_detectable_effect`); tests of one question are adjusted together (`Family`).
"""

from nnlab.analysis._bootstrap import Estimate, end_mc_error, metric_bounds
from nnlab.analysis.arms import ArmDifference, EtaBestRatio, eta_best_ratio, floor_difference
from nnlab.analysis.compare import CompareResult, compare_variance, compare_variance_by
from nnlab.analysis.distribution import HypothesisTest, NormalityResult, normality, shapiro_power
from nnlab.analysis.equivalence import (
    Equivalence,
    pitman_morgan_interval,
    tost_mean_difference,
    tost_std_ratio,
)
from nnlab.analysis.finite_test_set import TestSetVarianceResult, test_set_variance
from nnlab.analysis.learning_rate import EtaBestResult, eta_best
from nnlab.analysis.multiplicity import Family, adjust, benjamini_hochberg, holm
from nnlab.analysis.paired import PairedDifference, paired_difference
from nnlab.analysis.power import minimum_detectable_effect, power
from nnlab.analysis.power_law import PowerLawFit, fit_power_law
from nnlab.analysis.predictions import ErrorAnalysisResult, error_analysis
from nnlab.analysis.variance import FloorFit, VarianceVsNResult, variance_vs_n
from nnlab.analysis.variance_components import (
    Component,
    VarianceComponentsResult,
    variance_components,
)

__all__ = [
    "CompareResult",
    "ErrorAnalysisResult",
    "Estimate",
    "EtaBestResult",
    "FloorFit",
    "HypothesisTest",
    "NormalityResult",
    "PowerLawFit",
    "TestSetVarianceResult",
    "VarianceVsNResult",
    "Component",
    "VarianceComponentsResult",
    "compare_variance",
    "compare_variance_by",
    "end_mc_error",
    "error_analysis",
    "eta_best",
    "fit_power_law",
    "metric_bounds",
    "normality",
    "shapiro_power",
    "test_set_variance",
    "variance_vs_n",
    "variance_components",
    # units of replication, paired designs, equivalence, power and multiplicity
    "ArmDifference",
    "Equivalence",
    "EtaBestRatio",
    "Family",
    "PairedDifference",
    "adjust",
    "benjamini_hochberg",
    "eta_best_ratio",
    "floor_difference",
    "holm",
    "minimum_detectable_effect",
    "paired_difference",
    "pitman_morgan_interval",
    "power",
    "tost_mean_difference",
    "tost_std_ratio",
]

# What eta_best's seed CI does not know (estimator, grid, breakpoints), variance floors
# that hold at the boundary, and the learning-rate time of the validation peak.
from nnlab.analysis.breakpoint import (  # noqa: E402
    BrokenPowerLawFit,
    ExtrapolationCheck,
    extrapolation_check,
    fit_broken_power_law,
)
from nnlab.analysis.eta_path import EtaPathResult, eta_path  # noqa: E402
from nnlab.analysis.eta_sensitivity import SensitivityResult, eta_sensitivity  # noqa: E402
from nnlab.analysis.floor import ProfileFloorFit  # noqa: E402
from nnlab.analysis.peak_time import (  # noqa: E402
    EtaBestPrediction,
    PeakTimeResult,
    peak_time,
    predict_eta_best,
)

__all__ += [
    "BrokenPowerLawFit",
    "EtaBestPrediction",
    "EtaPathResult",
    "ExtrapolationCheck",
    "PeakTimeResult",
    "ProfileFloorFit",
    "SensitivityResult",
    "eta_path",
    "eta_sensitivity",
    "extrapolation_check",
    "fit_broken_power_law",
    "peak_time",
    "predict_eta_best",
]
