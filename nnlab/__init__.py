"""nnlab: study how neural networks train.

`import nnlab` loads only the errors; `nnlab.Study` and `nnlab.StudySpec` import the study
engine (Optuna, SQLAlchemy, pandas: about a second) when first used (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from nnlab.errors import ConfigError, DataError, InsufficientData, NNLabError, StorageError

if TYPE_CHECKING:
    from nnlab.study import Study, StudySpec

_LAZY = {"Study": "nnlab.study", "StudySpec": "nnlab.study"}  # name -> module that defines it

__all__ = ["ConfigError", "DataError", "InsufficientData", "NNLabError", "StorageError",
           "Study", "StudySpec"]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module 'nnlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
