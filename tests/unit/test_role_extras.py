"""Each role's image installs only its extra (hack/images/*.Dockerfile): every
third-party module a role's code can import must come from the core dependencies or
that extra, or the image fails at run time where no test on this machine (with every
extra installed) would notice. Imports are read statically (grimp, import-linter's
graph), those inside functions included."""

from __future__ import annotations

import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import grimp
import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
ROLES = {"operator": ("mlpatterns.operator",), "serving": ("mlpatterns.serving",)}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def _names(requirements: list[str]) -> set[str]:
    return {_normal(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in requirements}


@pytest.mark.parametrize("role", sorted(ROLES))
def test_a_role_imports_only_what_its_extra_installs(role: str) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = _names(project["dependencies"]) | _names(project["optional-dependencies"][role])
    graph = grimp.build_graph("mlpatterns", include_external_packages=True)
    imported = set()
    for package in ROLES[role]:
        imported |= graph.find_upstream_modules(package, as_package=True)
    external = {m.split(".")[0] for m in imported if not m.startswith("mlpatterns")}
    distributions = packages_distributions()
    missing = {
        module: distributions.get(module, ["?"])
        for module in sorted(external - set(sys.stdlib_module_names))
        if not {_normal(d) for d in distributions.get(module, [])} & installed
    }
    assert missing == {}, f"the {role} image would lack these (add them to its extra)"
