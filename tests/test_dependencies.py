"""pyproject.toml declares what nnlab imports, and nnlab imports what it declares.

Every third-party top-level module imported anywhere under nnlab/ (found with `ast`: in
functions, under TYPE_CHECKING, everywhere) must come from a distribution that the
[project] dependencies or an optional-dependencies group name, mapped module -> distribution
by `importlib.metadata.packages_distributions()`; and every runtime dependency must be
imported somewhere, or be in NOT_IMPORTED with the reason.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]

# runtime dependencies that nnlab never imports, and why they are declared
NOT_IMPORTED: dict[str, str] = {}


def normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them (Optuna_Dashboard == optuna-dashboard)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def third_party_imports(sources: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    """{top-level module: the files that import it} of the (file name, source) pairs, for
    modules that are neither the standard library's nor nnlab's (relative imports are
    nnlab's)."""
    found: dict[str, set[str]] = {}
    for name, source in sources:
        for node in ast.walk(ast.parse(source, filename=name)):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.partition(".")[0]
                if top != "nnlab" and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(name)
    return found


def declared(pyproject: dict) -> tuple[set[str], set[str]]:
    """(runtime dependencies, every declared distribution: runtime and optional), names
    normalized, extras and versions dropped."""
    project = pyproject["project"]
    runtime = {normalized(Requirement(r).name) for r in project["dependencies"]}
    optional = {normalized(Requirement(r).name)
                for group in project.get("optional-dependencies", {}).values() for r in group}
    return runtime, runtime | optional


@functools.cache
def installed() -> dict[str, list[str]]:
    """{top-level module: the installed distributions that provide it}."""
    return importlib.metadata.packages_distributions()


def providers(module: str) -> set[str]:
    """The installed distributions that provide top-level `module` (normalized names)."""
    return {normalized(d) for d in installed().get(module, [])}


def undeclared(imports: dict[str, set[str]], allowed: set[str]) -> list[str]:
    """One line per imported module that no distribution of `allowed` provides."""
    return [f"{module} (imported in {', '.join(sorted(files))}) comes from "
            f"{', '.join(sorted(providers(module))) or 'no installed distribution'}, "
            "which pyproject.toml does not declare"
            for module, files in sorted(imports.items()) if not providers(module) & allowed]


def nnlab_sources() -> list[tuple[str, str]]:
    return [(str(path.relative_to(ROOT)), path.read_text())
            for path in sorted((ROOT / "nnlab").rglob("*.py"))]


def test_every_module_nnlab_imports_comes_from_a_declared_distribution():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    imports = third_party_imports(nnlab_sources())
    assert {"numpy", "optuna", "sqlalchemy", "loky"} <= set(imports)  # the scan finds them
    assert undeclared(imports, declared(pyproject)[1]) == []


def test_every_runtime_dependency_is_imported_or_says_why_not():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = declared(pyproject)[0]
    imported = set().union(*map(providers, third_party_imports(nnlab_sources())))
    assert sorted(runtime - imported - set(NOT_IMPORTED)) == []
    assert set(NOT_IMPORTED) <= runtime - imported  # no stale excuse


def test_an_import_of_an_undeclared_distribution_is_named_with_its_file():
    # PyYAML is installed (Optuna needs it) but not declared; distributed is installed by
    # the dask extra, whose requirement must name it (it is what nnlab imports)
    sources = [("nnlab/a.py", "import numpy as np\nfrom . import b\n"),
               ("nnlab/b.py", "def f():\n    import yaml.loader\n    import os.path\n"),
               ("nnlab/c.py", "from distributed import Client\nimport nnlab.errors\n")]
    imports = third_party_imports(sources)
    assert imports == {"numpy": {"nnlab/a.py"}, "yaml": {"nnlab/b.py"},
                       "distributed": {"nnlab/c.py"}}
    declared_ = {"numpy", "optuna", "dask"}
    assert undeclared(imports, declared_) == [
        "distributed (imported in nnlab/c.py) comes from distributed, which pyproject.toml "
        "does not declare",
        "yaml (imported in nnlab/b.py) comes from pyyaml, which pyproject.toml does not "
        "declare"]
