"""nnlab: study how neural networks train."""

from nnlab.errors import NNLabError
from nnlab.study import Study, StudySpec

__all__ = ["NNLabError", "Study", "StudySpec"]
__version__ = "0.1.0"
