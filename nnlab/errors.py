"""The one error type nnlab raises for bad input: the CLI prints it as one line."""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path


class NNLabError(Exception):
    """Bad input or an unusable resource; the message names the field or file and what
    was expected."""


def is_int(value: object) -> bool:
    """A Python int that is not a bool (what TOML and JSON give for integers)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_integer(value: object) -> bool:
    """A Python or numpy integer that is not a bool (what the Python API accepts)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """A finite Python int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def checked_int(field: str, value: object, low: int, high: int | None = None,
                why: str = "") -> int:
    """`value` if it is an int in low..high (no upper bound for None), else NNLabError
    naming `field` and the range (followed by `why`)."""
    if not is_int(value) or value < low or (high is not None and value > high):
        expected = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"
        raise NNLabError(f"{field}: expected {expected}{why}, got {value!r}")
    return value


def as_path(value: object, field: str) -> Path:
    """`value` (a str or os.PathLike) as a Path, else NNLabError naming `field`."""
    if not isinstance(value, str | os.PathLike):
        raise NNLabError(f"{field}: expected a path, got {value!r}")
    return Path(value)


def file_in_the_way(folder: Path) -> Path | None:
    """The first of `folder` and its parents that exists and is not a folder (so `folder`
    cannot be made), or None."""
    return next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
