"""The errors nnlab raises for bad input, and the small checks that raise them.

NNLabError is the base: bad input or an unusable resource, its message naming the field
or file and what was expected (the CLI prints it as one line, exit code 2). Its kinds:

- ConfigError: a parameter of the wrong form; `field` names it as the library calls it
  ("TrainConfig.eta", "n_jobs"; the CLI shows its flag instead);
- DataError: data that cannot be used (a file, a data set, a split);
- StorageError: a study's storage or results folder that cannot be used;
- InsufficientData: too little data for an analysis, the one kind a report shows as a
  quiet note instead of failing.

This module imports nothing heavy: `import nnlab.errors` stays cheap.
"""

from __future__ import annotations

import copy
import math
import numbers
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

if TYPE_CHECKING:
    import numpy as np

_NOT_GIVEN: Any = object()


class NNLabError(Exception):
    """Bad input or an unusable resource; the message names the field or file and what
    was expected.

    When the error is about one parameter, `field` names it as the library calls it
    ("storage", "n_jobs") and `value` shows what was given (or is None): the message reads
    "<field> <value>: <detail>" (or "<field>: <detail>"), and `renamed(name)` is the same
    error naming the parameter otherwise (the CLI shows its flag so). Otherwise `field` is
    None and the message is `detail`.
    """

    def __init__(self, detail: str, *, field: str | None = None,
                 value: str | None = None) -> None:
        message = detail
        if field is not None:
            message = f"{field}: {detail}" if value is None else f"{field} {value}: {detail}"
        super().__init__(message)
        self.field, self.value, self.detail = field, value, detail
        self.context = ""

    def renamed(self, field: str) -> NNLabError:
        """This error naming `field` instead of its own (itself when it names none)."""
        if self.field is None:
            return self
        return self._in_context(type(self)(self.detail, field=field, value=self.value))

    def within(self, context: str) -> NNLabError:
        """This error, of the same kind and parts, its message preceded by "<context>: "
        (where it happened: "grid point {...}", an entry point); `context` keeps them."""
        error = copy.copy(self)
        error.args = (f"{context}: {self}",)
        error.context = f"{context}: {self.context}" if self.context else context
        return error

    def _in_context(self, error: NNLabError) -> NNLabError:
        return error.within(self.context) if self.context else error

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled as message and attributes (a study's worker processes send errors back),
        # as subclasses take other arguments than the message
        return _restore, (type(self), self.args, self.__dict__)


def _restore(cls: type[NNLabError], args: tuple, state: dict[str, Any]) -> NNLabError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class ConfigError(NNLabError, ValueError):
    """A parameter that does not have the expected form.

    The message reads "<field>: expected <expected>, got <got>", `got` shown by its repr
    or by `shown` when a description says more (an array's shape, a type's name); or,
    when what is wrong is not one value, "<field>: <problem>; expected <expected>", or
    "<field>: <problem>" when the problem says what is expected (`expected` "").
    Attributes: field, expected, got (None when not given), shown (how got is shown, None
    when not given), problem ("" when not given).
    """

    def __init__(self, field: str, expected: str, got: object = _NOT_GIVEN, *,
                 shown: str | None = None, problem: str = "") -> None:
        if shown is None and got is not _NOT_GIVEN:
            shown = repr(got)
        expecting = f"expected {expected}" + ("" if shown is None else f", got {shown}")
        detail = "; ".join(part for part in (problem, expected and expecting) if part)
        super().__init__(detail, field=field)
        self.expected, self.problem, self.shown = expected, problem, shown
        self.got = None if got is _NOT_GIVEN else got

    def renamed(self, field: str) -> NNLabError:
        return self._in_context(ConfigError(field, self.expected, shown=self.shown,
                                            problem=self.problem))


class DataError(NNLabError):
    """Data that cannot be used: a file of the wrong form, a data set or split that is
    malformed; the message names the file (and row) or the split."""


class StorageError(NNLabError):
    """A study's storage or results folder that cannot be used (unreachable, of another
    study, damaged)."""


class InsufficientData(NNLabError):
    """Too little data for an analysis (too few seeds, lengths or runs): a report shows it
    as a note and goes on; every other error is a failure."""


def is_int(value: object) -> TypeGuard[int]:
    """A Python int that is not a bool (what TOML and JSON give for integers)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_integer(value: object) -> TypeGuard[int | np.integer]:
    """A Python or numpy integer that is not a bool (what the Python API accepts)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    """A finite Python int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def checked_int(field: str, value: object, low: int, high: int | None = None,
                why: str = "") -> int:
    """`value` if it is an int in low..high (no upper bound for None), else ConfigError
    naming `field` and the range (followed by `why`), as nnlab.validation.Integers says."""
    from nnlab.validation import Integers, checked  # imported here: it imports this module
    return checked(field, value, Integers(low, high, note=why))


def as_path(value: object, field: str) -> Path:
    """`value` (a str or os.PathLike) as a Path, else ConfigError naming `field`."""
    if not isinstance(value, str | os.PathLike):
        raise ConfigError(field, "a path", value)
    return Path(value)


def file_in_the_way(folder: Path) -> Path | None:
    """The first of `folder` and its parents that exists and is not a folder (so `folder`
    cannot be made), or None."""
    return next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
