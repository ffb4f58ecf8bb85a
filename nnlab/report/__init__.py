"""Reports: one figure per analysis (`nnlab.report.figures`) and the per-study page
(`write_report`: figures/*.png and report.html in the study's results folder)."""

from nnlab.report.build import write_report

__all__ = ["write_report"]
