"""Too many pipes: a compiled Kubeflow pipeline (its IR YAML) that spreads one job
over too many tools (images), data sources, or hand-offs between tools."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mlpatterns.lint.rules import Finding
from mlpatterns.lint.sources import Document

__all__ = ["PipeLimits", "is_pipeline", "pipeline_findings"]

URI = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$", re.IGNORECASE)


@dataclass(frozen=True)
class PipeLimits:
    images: int = 3  # distinct container images (tools)
    sources: int = 2  # distinct external data locations (importers, URI constants)
    handoffs: int = 4  # artifacts or values passed from one image's step to another's


def is_pipeline(document: Document) -> bool:
    data = document.data
    return isinstance(data, dict) and "pipelineInfo" in data and "deploymentSpec" in data


def _dags(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield spec.get("root", {}).get("dag", {})
    for component in spec.get("components", {}).values():
        if "dag" in component:
            yield component["dag"]


def _executor_of(spec: Mapping[str, Any], task: Mapping[str, Any]) -> str | None:
    component = spec.get("components", {}).get(task.get("componentRef", {}).get("name"), {})
    label = component.get("executorLabel")
    return label if isinstance(label, str) else None


def _constants(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("constant", "defaultValue", "artifactUri") and isinstance(value, str):
                yield value
            else:
                yield from _constants(value)
    elif isinstance(node, list):
        for item in node:
            yield from _constants(item)


def pipeline_findings(path: str, document: Document, limits: PipeLimits) -> list[Finding]:
    spec: Mapping[str, Any] = document.data
    name = spec.get("pipelineInfo", {}).get("name", "the pipeline")
    executors: Mapping[str, Any] = spec.get("deploymentSpec", {}).get("executors", {})
    images: dict[str, str] = {}  # image -> the first executor that runs it
    image_of: dict[str, str] = {}
    for label, executor in executors.items():
        image = executor.get("container", {}).get("image")
        if isinstance(image, str):
            images.setdefault(image, label)
            image_of[label] = image
    sources = sorted({value for value in _constants(spec) if URI.match(value)})
    handoffs = []
    for dag in _dags(spec):
        tasks: Mapping[str, Any] = dag.get("tasks", {})
        for task_name, task in tasks.items():
            consumer = image_of.get(_executor_of(spec, task) or "")
            for producer_name in task.get("dependentTasks", []):
                producer = image_of.get(_executor_of(spec, tasks.get(producer_name, {})) or "")
                if consumer and producer and consumer != producer:
                    handoffs.append(f"{producer_name}->{task_name}")
    found = []
    fix = "run the steps in fewer images, read data from fewer sources, and pass artifacts"
    if len(images) > limits.images:
        label = list(images.values())[limits.images]
        found.append(
            Finding(
                "too-many-pipes",
                path,
                document.line(("deploymentSpec", "executors", label, "container", "image")),
                f"pipeline {name} runs {len(images)} images (more than {limits.images}): "
                f"{', '.join(sorted(images))}",
                f"{fix}; one training image can run every step",
            )
        )
    if len(sources) > limits.sources:
        found.append(
            Finding(
                "too-many-pipes",
                path,
                document.line(("root",)),
                f"pipeline {name} reads {len(sources)} data locations (more than "
                f"{limits.sources}): {', '.join(sources)}",
                f"{fix}; register one dataset (`mlpatterns datasets`) and read it by reference",
            )
        )
    if len(handoffs) > limits.handoffs:
        found.append(
            Finding(
                "too-many-pipes",
                path,
                document.line(("root", "dag", "tasks")),
                f"pipeline {name} hands work between images {len(handoffs)} times (more "
                f"than {limits.handoffs}): {', '.join(handoffs)}",
                fix,
            )
        )
    return found
