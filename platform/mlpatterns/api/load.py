"""Reading ModelServices from YAML or dicts, with every problem reported at once as
`<field path>: <what is wrong and how to fix it>`. The CLI, the gateway and the
operator all load through here, so a user sees the same message everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mlpatterns.api.modelservice import ModelService

__all__ = ["ModelServiceError", "dump_model_service", "load_model_service", "parse_model_service"]


class ModelServiceError(ValueError):
    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        listed = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source} is not a valid ModelService:\n{listed}")


def _problems(error: ValidationError) -> list[str]:
    found = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        found.append(f"{where}: {message}")
    return found


def parse_model_service(data: Any, source: str = "the ModelService") -> ModelService:
    if not isinstance(data, dict):
        raise ModelServiceError(
            source, ["expected a mapping with apiVersion, kind, metadata and spec"]
        )
    try:
        return ModelService.model_validate(data)
    except ValidationError as error:
        raise ModelServiceError(source, _problems(error)) from None


def load_model_service(path: Path) -> ModelService:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ModelServiceError(str(path), [f"cannot read it: {error}"]) from None
    return parse_model_service(data, str(path))


def dump_model_service(service: ModelService) -> str:
    """YAML as a user would write it: aliases, no empty defaults."""
    data = service.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)
    data = {"apiVersion": service.api_version, "kind": service.kind, **data}
    return yaml.safe_dump(data, sort_keys=False)
