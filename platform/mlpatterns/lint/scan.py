"""Walking a repository for the lint: which files are what (ModelServices, model-service
chart values, compiled pipelines, Dockerfiles, pyproject and requirements files), and
every finding on them. Reading files and the registry happens here; the checks are
pure functions of what was read."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from mlpatterns.api.load import ModelServiceError, parse_model_service
from mlpatterns.lint import images
from mlpatterns.lint.pipelines import PipeLimits, is_pipeline, pipeline_findings
from mlpatterns.lint.rules import Finding
from mlpatterns.lint.services import ServiceSource, served_models, service_findings
from mlpatterns.lint.sources import Document, FieldPath, yaml_documents
from mlpatterns.registry.metadata import ModelMetadata
from mlpatterns.registry.store import StoreError

__all__ = ["LintReport", "Resolver", "lint_paths"]

Resolver = Callable[[str], ModelMetadata]  # a models:/ reference -> its metadata, or raises

SKIPPED_FOLDERS = frozenset(
    {"node_modules", "__pycache__", "venv", "site-packages", "dist", "build", "templates"}
)
DOCKERFILES = ("Dockerfile", "Containerfile", "*.Dockerfile", "*.Containerfile", "Dockerfile.*")


@dataclass
class LintReport:
    findings: list[Finding] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what could not be checked at all
    notes: list[str] = field(default_factory=list)  # checks left out, and why
    checked: list[str] = field(default_factory=list)  # the files of a kind it checks


def _files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for path in sorted(root.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            if path.name not in SKIPPED_FOLDERS:
                yield from _files(path)
        else:
            yield path


def _is_dockerfile(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in DOCKERFILES)


def _chart_defaults(path: Path) -> bool:
    """A chart's own values.yaml: its defaults, not a service anyone runs."""
    return path.name == "values.yaml" and (path.parent / "Chart.yaml").is_file()


def _file_check(path: Path, shown: str) -> Callable[[str], list[Finding]] | None:
    """The check of a file that is not YAML, by its name; None for any other file."""
    if _is_dockerfile(path.name):
        return partial(images.dockerfile_findings, shown)
    if path.name == "pyproject.toml":
        return partial(images.pyproject_findings, shown)
    if fnmatch.fnmatch(path.name, "requirements*.txt"):
        return partial(images.requirements_findings, shown, name=path.stem)
    return None


def _values_service(document: Document, stem: str) -> tuple[dict[str, Any], Callable[..., int]]:
    """A model-service chart values document as the ModelService the chart renders."""
    values = document.data
    data = {
        "apiVersion": "mlpatterns.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {
            "name": values.get("name") or stem,
            "labels": values.get("labels") or {},
            "annotations": values.get("annotations") or {},
        },
        "spec": values["spec"],
    }

    def line(where: FieldPath) -> int:
        # the values' top level holds what the chart puts in the ModelService's metadata
        if where and where[0] == "metadata":
            return document.line(where[1:] or ["name"])
        return document.line(where)

    return data, line


def _is_values(document: Document) -> bool:
    data = document.data
    return (
        isinstance(data, dict)
        and "kind" not in data
        and isinstance(data.get("spec"), dict)
        and "versions" in data["spec"]
    )


@dataclass
class _Linter:
    report: LintReport
    resolve: Resolver | None
    limits: PipeLimits
    resolved: dict[str, ModelMetadata | None] = field(default_factory=dict)

    def model(self, uri: str) -> ModelMetadata | None:
        if self.resolve is None:
            return None
        if uri not in self.resolved:
            try:
                self.resolved[uri] = self.resolve(uri)
            except (StoreError, ValueError, OSError) as error:
                self.resolved[uri] = None
                self.report.notes.append(
                    f"{uri}: not in the registry ({error}); its latency and lineage "
                    "checks were left out"
                )
        return self.resolved[uri]

    def service(self, path: str, data: dict[str, Any], line: Callable[..., int]) -> None:
        try:
            service = parse_model_service(data, path)
        except ModelServiceError as error:
            self.report.problems.append(str(error))
            return
        source = ServiceSource(service, path, line)
        self.report.findings.extend(service_findings(source, served_models(service, self.model)))

    def yaml_file(self, path: Path, shown: str, explicit: bool) -> None:
        try:
            documents = yaml_documents(path.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            if explicit:
                self.report.problems.append(f"{shown}: cannot read it as YAML: {error}")
            return
        known = False
        for document in documents:
            data = document.data
            if isinstance(data, dict) and data.get("kind") == "ModelService":
                self.service(shown, data, document.line)
            elif is_pipeline(document):
                self.report.findings.extend(pipeline_findings(shown, document, self.limits))
            elif _is_values(document) and (explicit or not _chart_defaults(path)):
                values, line = _values_service(document, path.stem)
                self.service(shown, values, line)
            else:
                continue
            known = True
        if known:
            self.report.checked.append(shown)

    def file(self, path: Path, shown: str, explicit: bool) -> None:
        if path.name.endswith((".yaml", ".yml")):
            self.yaml_file(path, shown, explicit)
            return
        check = _file_check(path, shown)
        if check is None:
            return
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as error:
            self.report.problems.append(f"{shown}: cannot read it: {error}")
            return
        self.report.checked.append(shown)
        self.report.findings.extend(check(text))


def lint_paths(
    paths: list[Path],
    *,
    resolve: Resolver | None = None,
    limits: PipeLimits | None = None,
    relative_to: Path | None = None,
) -> LintReport:
    """Lint files and folders; `resolve` reads a model's registry metadata (None: the
    checks that need it are left out)."""
    linter = _Linter(LintReport(), resolve, limits or PipeLimits())
    for root in paths:
        if not root.exists():
            linter.report.problems.append(f"{root}: no such file or folder")
            continue
        for path in _files(root):
            linter.file(path, _shown(path, relative_to), explicit=path == root)
    if resolve is None:
        linter.report.notes.append(
            "no registry: the checks of models' latency and lineage were left out"
        )
    return linter.report


def _shown(path: Path, relative_to: Path | None) -> str:
    if relative_to is not None:
        try:
            return str(path.resolve().relative_to(relative_to.resolve()))
        except ValueError:
            pass
    return str(path)
