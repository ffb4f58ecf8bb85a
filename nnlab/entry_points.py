"""Entry points: user code named as "package.module:function", imported when needed.

The module is imported as Python imports any: installed, on PYTHONPATH, or (as with
`python -m`) in the current folder, which is added to the end of the import path.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable
from typing import Any

from nnlab.errors import ConfigError, NNLabError

FORM = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
FORM_TEXT = "'package.module:function'"


def is_entry_point(value: object) -> bool:
    """Whether `value` has the form "package.module:function"."""
    return isinstance(value, str) and FORM.match(value) is not None


def load_entry_point(value: str, field: str) -> Callable[..., Any]:
    """The function `value` names; NNLabError naming `field` when it is not of the form,
    its module does not import or has no such function."""
    if not is_entry_point(value):
        raise ConfigError(field, f"{FORM_TEXT}", value)
    module_name, _, name = value.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # any failure of the user's import: one line, naming it
        raise ConfigError(field, "a module importable from here (installed, on PYTHONPATH "
                          "or in the current folder)", problem=f"cannot import {module_name!r} "
                          f"({type(err).__name__}: {err})") from err
    function = getattr(module, name, None)
    if not callable(function):
        raise ConfigError(field, "", problem=f"module {module_name!r} has no function "
                          f"{name!r}")
    return function


def call_entry_point(value: str, field: str, *args: Any) -> Any:
    """`value`'s function called with `args`; whatever it raises becomes one NNLabError
    naming `field` and the entry point."""
    function = load_entry_point(value, field)
    try:
        return function(*args)
    except NNLabError as err:
        raise err.within(f"{field}: {value}") from err
    except Exception as err:  # the user's code failed: one line, naming it
        raise NNLabError(f"{value} raised {type(err).__name__}: {err}", field=field) from err
