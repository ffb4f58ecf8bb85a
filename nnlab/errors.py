"""The one error type nnlab raises for bad input: the CLI prints it as one line."""

from __future__ import annotations

import os
from pathlib import Path


class NNLabError(Exception):
    """Bad input or an unusable resource; the message names the field or file and what
    was expected."""


def as_path(value: object, field: str) -> Path:
    """`value` (a str or os.PathLike) as a Path, else NNLabError naming `field`."""
    if not isinstance(value, str | os.PathLike):
        raise NNLabError(f"{field}: expected a path, got {value!r}")
    return Path(value)


def file_in_the_way(folder: Path) -> Path | None:
    """The first of `folder` and its parents that exists and is not a folder (so `folder`
    cannot be made), or None."""
    return next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
