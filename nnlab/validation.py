"""Declared constraints of a config's fields, and the one check that walks them.

A config declares each field's constraint once, in a table {field name: constraint}
(`nnlab.train_config.CONSTRAINTS`; a study spec's [study] and [data] keys). `checked_fields`
checks the values a table names, in the table's order, and returns them as stored
(numbers as floats); the first that fails is a ConfigError naming "<owner>.<field>" and
the constraint's description: "TrainConfig.eta: expected a positive number, got -1".
Checks that relate several fields stay with the config that has them.

Constraint kinds, each with `accepts(value)`, `description` (the expected form as a message
shows it) and `converted(value)` (an accepted value as stored):

- Interval(low, high, closed): a finite number (int or float, not a bool) between low and
  high (None: unbounded), `closed` saying which ends are included; stored as a float;
- Integers(low, high): a Python int (not a bool) in low..high (None: unbounded);
- OneOf(choices): one of the strings `choices`;
- Boolean(): True or False;
- InstanceOf(types, what): an instance of `types`, described as `what`;
- ListOf(item, min_length): a list or tuple of at least `min_length` items, each accepted
  by `item` (an Integers); stored as a list;
- Satisfies(test, what): a value `test` accepts, described as `what` (a form only code
  can tell);
- AnyOf(*constraints): a value one of them accepts (stored as the first of them stores it);
- Optional(constraint): None, or a value `constraint` accepts (described as `constraint`
  is: None is the field's "not set", which a message need not offer).

Interval, Integers, OneOf and ListOf take a `note`, said after the description
(" (the samplers' seed range)"). POSITIVE, NON_NEGATIVE, POSITIVE_INT and NON_NEGATIVE_INT
name the common ones.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from nnlab.errors import ConfigError, is_int, is_number

Closed = Literal["both", "left", "right", "neither"]


class Constraint(ABC):
    """What one field accepts; the kinds below say how."""

    @property
    @abstractmethod
    def description(self) -> str:
        """The expected form, as an error message shows it after "expected"."""

    @abstractmethod
    def accepts(self, value: object) -> bool:
        """Whether `value` has the form."""

    def converted(self, value: Any) -> Any:
        """An accepted `value` as the config stores it: itself unless the kind says."""
        return value


def checked(field: str, value: object, constraint: Constraint) -> Any:
    """`value` as `constraint` stores it, else ConfigError "<field>: expected
    <description>, got <value>"."""
    if not constraint.accepts(value):
        raise ConfigError(field, constraint.description, value)
    return constraint.converted(value)


def checked_fields(owner: str, constraints: Mapping[str, Constraint],
                   values: Mapping[str, object]) -> dict[str, Any]:
    """Every value of `values` whose name `constraints` declares, checked in the table's
    order and converted; ConfigError naming "<owner>.<name>" at the first that fails.
    Names the table does not declare are left out (the caller checks those)."""
    return {name: checked(f"{owner}.{name}", values[name], constraint)
            for name, constraint in constraints.items() if name in values}


@dataclass(frozen=True)
class Interval(Constraint):
    """A finite number in the interval from `low` to `high` (None: unbounded); `closed`
    names the ends included: "both", "left", "right" or "neither"."""

    low: float | None = None
    high: float | None = None
    closed: Closed = "both"
    note: str = ""

    def accepts(self, value: object) -> bool:
        if not is_number(value):
            return False
        left, right = self._closed_ends()
        above = self.low is None or (value >= self.low if left else value > self.low)
        below = self.high is None or (value <= self.high if right else value < self.high)
        return above and below

    def converted(self, value: Any) -> float:
        return float(value)

    @property
    def description(self) -> str:
        left, right = self._closed_ends()
        if self.low is not None and self.high is not None:
            text = (f"a number in {'[' if left else '('}{self.low:g}, "
                    f"{self.high:g}{']' if right else ')'}")
        elif self.low is not None:
            text = ("a positive number" if self.low == 0 and not left
                    else f"a number {'>=' if left else '>'} {self.low:g}")
        elif self.high is not None:
            text = f"a number {'<=' if right else '<'} {self.high:g}"
        else:
            text = "a finite number"
        return text + self.note

    def _closed_ends(self) -> tuple[bool, bool]:
        return self.closed in ("both", "left"), self.closed in ("both", "right")


@dataclass(frozen=True)
class Integers(Constraint):
    """A Python int (not a bool) in low..high, both ends included (None: unbounded)."""

    low: int | None = None
    high: int | None = None
    note: str = ""

    def accepts(self, value: object) -> bool:
        return is_int(value) and (self.low is None or value >= self.low) and (
            self.high is None or value <= self.high)

    @property
    def description(self) -> str:
        return f"an integer{self._range()}{self.note}"

    @property
    def plural(self) -> str:
        """The description of several ("integers >= 1"), for a list of them."""
        return f"integers{self._range()}{self.note}"

    def _range(self) -> str:
        if self.low is not None and self.high is not None:
            return f" in {self.low}..{self.high}"
        if self.low is not None:
            return f" >= {self.low}"
        return "" if self.high is None else f" <= {self.high}"


@dataclass(frozen=True)
class OneOf(Constraint):
    """One of the strings `choices`."""

    choices: tuple[str, ...]
    note: str = ""

    def accepts(self, value: object) -> bool:
        return isinstance(value, str) and value in self.choices

    @property
    def description(self) -> str:
        return f"one of {', '.join(self.choices)}{self.note}"


@dataclass(frozen=True)
class Boolean(Constraint):
    """True or False (TOML's true or false); not 0 or 1."""

    def accepts(self, value: object) -> bool:
        return isinstance(value, bool)

    @property
    def description(self) -> str:
        return "true or false"


@dataclass(frozen=True)
class InstanceOf(Constraint):
    """An instance of `types`, described as `what` ("a string (the CNN layer spec)")."""

    types: type | tuple[type, ...]
    what: str

    def accepts(self, value: object) -> bool:
        return isinstance(value, self.types)

    @property
    def description(self) -> str:
        return self.what


@dataclass(frozen=True)
class ListOf(Constraint):
    """A list or tuple of at least `min_length` items, each accepted by `item`; stored as
    a list."""

    item: Integers
    min_length: int = 0
    note: str = ""

    def accepts(self, value: object) -> bool:
        return isinstance(value, list | tuple) and len(value) >= self.min_length and all(
            self.item.accepts(v) for v in value)

    def converted(self, value: Any) -> list[Any]:
        return [self.item.converted(v) for v in value]

    @property
    def description(self) -> str:
        least = f"at least {self.min_length} " if self.min_length else ""
        return f"a list of {least}{self.item.plural}{self.note}"


@dataclass(frozen=True)
class Satisfies(Constraint):
    """A value `test` accepts, described as `what`: a form only code can tell."""

    test: Callable[[object], bool]
    what: str

    def accepts(self, value: object) -> bool:
        return self.test(value)

    @property
    def description(self) -> str:
        return self.what


@dataclass(frozen=True, init=False)
class AnyOf(Constraint):
    """A value one of `constraints` accepts, stored as the first that accepts it stores it;
    described as theirs joined by "or"."""

    constraints: tuple[Constraint, ...]

    def __init__(self, *constraints: Constraint) -> None:
        object.__setattr__(self, "constraints", constraints)

    def accepts(self, value: object) -> bool:
        return any(c.accepts(value) for c in self.constraints)

    def converted(self, value: Any) -> Any:
        return next(c for c in self.constraints if c.accepts(value)).converted(value)

    @property
    def description(self) -> str:
        return " or ".join(c.description for c in self.constraints)


@dataclass(frozen=True)
class Optional(Constraint):
    """None (the field not set), or a value `constraint` accepts; described as
    `constraint` is."""

    constraint: Constraint

    def accepts(self, value: object) -> bool:
        return value is None or self.constraint.accepts(value)

    def converted(self, value: Any) -> Any:
        return None if value is None else self.constraint.converted(value)

    @property
    def description(self) -> str:
        return self.constraint.description


POSITIVE = Interval(0, closed="neither")  # "a positive number"
NON_NEGATIVE = Interval(0, closed="left")  # "a number >= 0"
POSITIVE_INT = Integers(1)  # "an integer >= 1"
NON_NEGATIVE_INT = Integers(0)  # "an integer >= 0"
