"""The study engine: specs, Optuna storage, parallel trials, parquet results."""

from nnlab.study.spec import StudySpec
from nnlab.study.study import Study

__all__ = ["Study", "StudySpec"]
