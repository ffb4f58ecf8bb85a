"""nnlab: study how neural networks train."""

from nnlab.errors import NNLabError

__all__ = ["NNLabError"]
__version__ = "0.1.0"
