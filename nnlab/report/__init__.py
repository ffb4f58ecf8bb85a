"""Reports: one figure per analysis (`nnlab.report.figures`) and the per-study page."""
