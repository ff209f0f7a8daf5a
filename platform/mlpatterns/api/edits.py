"""Traffic changes as pure edits of a ModelService: each returns a new, validated
ModelService or raises ModelServiceError with the reason. `mlpatterns traffic set`
(embedded) and `kubectl mlpatterns traffic` (cluster) both go through here, so a
change is checked the same way wherever it is made."""

from __future__ import annotations

from typing import Any

from mlpatterns.api.load import ModelServiceError, parse_model_service
from mlpatterns.api.modelservice import ModelService

__all__ = [
    "apply_changes",
    "parse_shadow",
    "parse_split",
    "set_active",
    "set_shadow",
    "set_split",
    "set_sticky",
    "traffic_patch",
]


def parse_split(text: str) -> list[dict[str, Any]]:
    """`a=90,b=10` -> [{"version": "a", "weight": 90}, ...]."""
    split = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        if not name or not weight.strip().lstrip("-").isdigit():
            raise ModelServiceError(
                "--split", [f"{part!r}: write each share as version=weight, e.g. a=90,b=10"]
            )
        split.append({"version": name.strip(), "weight": int(weight)})
    if not split:
        raise ModelServiceError("--split", ["give at least one version=weight"])
    return split


def parse_shadow(text: str) -> dict[str, Any]:
    """`b:50` -> {"version": "b", "percent": 50.0}; `b` alone mirrors everything."""
    name, _, percent = text.partition(":")
    try:
        return {"version": name.strip(), "percent": float(percent) if percent else 100.0}
    except ValueError:
        raise ModelServiceError(
            "--shadow", [f"{text!r}: write version:percent, e.g. b:50"]
        ) from None


def _spec_data(service: ModelService) -> dict[str, Any]:
    return service.model_dump(mode="json", by_alias=True, exclude_none=True)


def _rebuilt(service: ModelService, data: dict[str, Any]) -> ModelService:
    return parse_model_service(data, f"ModelService {service.metadata.name} after the change")


def set_split(service: ModelService, split: list[dict[str, Any]]) -> ModelService:
    data = _spec_data(service)
    data["spec"].setdefault("traffic", {})["split"] = split
    return _rebuilt(service, data)


def set_shadow(service: ModelService, shadow: dict[str, Any] | None) -> ModelService:
    data = _spec_data(service)
    traffic = data["spec"].setdefault("traffic", {})
    if shadow is None:
        traffic.pop("shadow", None)
    else:
        traffic["shadow"] = shadow
    return _rebuilt(service, data)


def set_sticky(service: ModelService, header: str | None) -> ModelService:
    data = _spec_data(service)
    traffic = data["spec"].setdefault("traffic", {})
    if header is None:
        traffic.pop("sticky", None)
    else:
        traffic["sticky"] = {"header": header}
    return _rebuilt(service, data)


def set_active(service: ModelService, version: str, active: bool) -> ModelService:
    data = _spec_data(service)
    names = [v["name"] for v in data["spec"]["versions"]]
    if version not in names:
        raise ModelServiceError(
            f"ModelService {service.metadata.name}",
            [f"there is no version {version!r}; the versions are {names}"],
        )
    for entry in data["spec"]["versions"]:
        if entry["name"] == version:
            entry.setdefault("parameters", {})["active"] = active
    return _rebuilt(service, data)


def apply_changes(
    service: ModelService,
    *,
    split: str | None = None,
    shadow: str | None = None,
    no_shadow: bool = False,
    off: list[str] | None = None,
    on: list[str] | None = None,
    sticky: str | None = None,
    no_sticky: bool = False,
) -> ModelService:
    """The CLI's flags, applied in a fixed order: switches, stickiness, split, shadow."""
    if shadow is not None and no_shadow:
        raise ModelServiceError("the flags", ["give --shadow or --no-shadow, not both"])
    for version in on or []:
        service = set_active(service, version, True)
    for version in off or []:
        service = set_active(service, version, False)
    if sticky is not None or no_sticky:
        service = set_sticky(service, None if no_sticky else sticky)
    if split is not None:
        service = set_split(service, parse_split(split))
    if no_shadow:
        service = set_shadow(service, None)
    elif shadow is not None:
        service = set_shadow(service, parse_shadow(shadow))
    return service


def traffic_patch(service: ModelService) -> dict[str, Any]:
    """A merge patch that makes a live resource's spec.traffic and versions this one's."""
    data = _spec_data(service)["spec"]
    return {"spec": {"traffic": data.get("traffic", {}), "versions": data["versions"]}}
