"""One figure per analysis: each takes the analysis result, returns a matplotlib Figure
annotated with n and CIs, and writes a PNG when given `path=`."""

from nnlab.report.figures._base import save_figure
from nnlab.report.figures.distribution import compare_figure, normality_figure
from nnlab.report.figures.learning_rate import eta_curves_figure, power_law_figure
from nnlab.report.figures.predictions import (
    confidence_figure,
    confused_pairs_figure,
    confusion_figure,
    reliability_figure,
)
from nnlab.report.figures.variance import variance_figure

__all__ = [
    "compare_figure",
    "confidence_figure",
    "confused_pairs_figure",
    "confusion_figure",
    "eta_curves_figure",
    "normality_figure",
    "power_law_figure",
    "reliability_figure",
    "save_figure",
    "variance_figure",
]
