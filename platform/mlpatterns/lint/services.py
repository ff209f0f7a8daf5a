"""The anti-pattern checks of one ModelService: pure functions of the service, where
its fields are in its file, and the registry metadata of the models it serves."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from mlpatterns.api.modelservice import ModelService, Version
from mlpatterns.lint.rules import Finding, RuleId
from mlpatterns.lint.sources import FieldPath
from mlpatterns.registry.metadata import ModelMetadata

__all__ = [
    "DESCRIPTION_ANNOTATION",
    "IGNORE_ANNOTATION",
    "ONLINE_PATTERNS",
    "OWNER_ANNOTATION",
    "ServiceSource",
    "served_models",
    "service_findings",
]

OWNER_ANNOTATION = "mlpatterns.io/owner"
DESCRIPTION_ANNOTATION = "mlpatterns.io/description"
IGNORE_ANNOTATION = "mlpatterns.io/lint-ignore"  # rule ids, comma-separated
ONLINE_PATTERNS = ("synchronous", "web-single", "preprocess-prediction")


@dataclass(frozen=True)
class ServiceSource:
    """A ModelService and where it was written: `line` maps a field path of the
    ModelService (metadata..., spec...) to a line of `path`."""

    service: ModelService
    path: str
    line: Callable[[FieldPath], int] = field(default=lambda _: 1)


def served_models(
    service: ModelService, lookup: Callable[[str], ModelMetadata | None]
) -> dict[str, ModelMetadata]:
    """The registry metadata of each version whose model is a registry reference that
    `lookup` finds (None: not found), by version name."""
    found = {}
    for version in service.spec.versions:
        uri = version.model.uri if version.model else ""
        if uri.startswith("models:/") and (metadata := lookup(uri)) is not None:
            found[version.name] = metadata
    return found


def service_findings(
    source: ServiceSource, models: Mapping[str, ModelMetadata] | None = None
) -> list[Finding]:
    """Every finding on `source`; `models` are the registry metadata of the versions
    that resolved (by version name); the checks that need one skip the others. Rules
    named in the mlpatterns.io/lint-ignore annotation are left out."""
    resolved = models or {}
    found = [
        *_no_logging(source),
        *_nobody_knows(source),
        *_all_in_one(source, resolved),
        *_offline_only(source),
        *_online_bigsize(source, resolved),
        *_only_me(source, resolved),
    ]
    ignored = _ignored(source.service)
    return [finding for finding in found if finding.rule not in ignored]


def _ignored(service: ModelService) -> set[str]:
    text = service.metadata.annotations.get(IGNORE_ANNOTATION, "")
    return {part.strip() for part in text.split(",") if part.strip()}


def _finding(
    source: ServiceSource, rule: RuleId, where: FieldPath, message: str, fix: str
) -> Finding:
    name = source.service.metadata.name
    return Finding(rule, source.path, source.line(where), f"{name}: {message}", fix)


def _no_logging(source: ServiceSource) -> list[Finding]:
    if source.service.spec.logging.predictions:
        return []
    return [
        _finding(
            source,
            "no-logging",
            ("spec", "logging", "predictions"),
            "spec.logging.predictions is false, so no prediction is recorded: drift "
            "monitoring, shadow and A/B reports and audits have nothing to read",
            "set spec.logging.predictions: true (records are written off the request path)",
        )
    ]


def _nobody_knows(source: ServiceSource) -> list[Finding]:
    annotations = source.service.metadata.annotations
    missing = [
        key for key in (OWNER_ANNOTATION, DESCRIPTION_ANNOTATION) if not annotations.get(key)
    ]
    if not missing:
        return []
    return [
        _finding(
            source,
            "nobody-knows",
            ("metadata", "annotations"),
            f"no {' and no '.join(missing)} annotation: nobody is named to explain what it "
            "predicts, for whom, or to answer when it misbehaves",
            f"add metadata.annotations {OWNER_ANNOTATION}: <team or person> and "
            f"{DESCRIPTION_ANNOTATION}: <what it predicts, from what, for whom>",
        )
    ]


def _model_name(version: Version, resolved: Mapping[str, ModelMetadata]) -> str | None:
    if version.name in resolved:
        return resolved[version.name].name
    uri = version.model.uri if version.model else ""
    if uri.startswith("models:/"):
        return uri.removeprefix("models:/").split("/")[0].split("@")[0]
    return None


def _all_in_one(source: ServiceSource, resolved: Mapping[str, ModelMetadata]) -> list[Finding]:
    if source.service.spec.graph is not None:  # a graph composes models: its purpose
        return []
    versions = source.service.spec.versions
    named = [(i, v, _model_name(v, resolved)) for i, v in enumerate(versions)]
    first = next((name for _, _, name in named if name is not None), None)
    for index, version, name in named:
        if name is not None and name != first:
            return [
                _finding(
                    source,
                    "all-in-one",
                    ("spec", "versions", index, "model", "uri"),
                    f"version {version.name} serves model {name!r} beside model {first!r}: "
                    "versions of one ModelService are alternatives for the same requests, "
                    "not different models",
                    f"move {name!r} to a ModelService of its own",
                )
            ]
    return []


def _offline_only(source: ServiceSource) -> list[Finding]:
    spec = source.service.spec
    if spec.rollout is not None or spec.traffic.shadow is not None or spec.graph is not None:
        return []
    default = spec.default_answering()
    if len(default) != 1:
        return []
    everything = default[0]
    answering = spec.answering()
    fallbacks = {
        v.circuit_breaker.fallback
        for v in spec.versions
        if v.circuit_breaker and v.circuit_breaker.fallback
    }
    follow_up = {spec.follow_up.version} if spec.follow_up else set()
    dark = [v.name for v in spec.versions if v.name not in answering | fallbacks | follow_up]
    index = [v.name for v in spec.versions].index(everything)
    model = spec.versions[index].model
    uri = model.uri if model else ""
    if dark:
        message = (
            f"version {everything} takes all traffic while {', '.join(dark)} takes none, "
            "with no shadow, split or rollout: one of them was judged on offline metrics "
            "alone"
        )
    elif uri.endswith("@candidate"):
        message = (
            f"version {everything} answers every request with {uri}, a candidate that "
            "only offline evaluation has judged"
        )
    else:
        return []
    where = ("spec", "traffic", "split") if spec.traffic.split else ("spec", "versions", index)
    return [
        _finding(
            source,
            "offline-only",
            where,
            message,
            "shadow the new version (traffic.shadow), give it a share (traffic.split), or "
            "release it with spec.rollout, which judges it on live metrics",
        )
    ]


def _online_bigsize(source: ServiceSource, resolved: Mapping[str, ModelMetadata]) -> list[Finding]:
    spec = source.service.spec
    if spec.pattern not in ONLINE_PATTERNS:
        return []
    thresholds = spec.load_test.thresholds if spec.load_test else None
    found = []
    for index, version in enumerate(spec.versions):
        metadata = resolved.get(version.name)
        if metadata is None or metadata.latency is None:
            continue
        measured = metadata.latency
        limits: list[tuple[FieldPath, str, float, float]] = []
        if thresholds is not None and thresholds.p99_ms is not None:
            at = ("spec", "loadTest", "thresholds", "p99Ms")
            limits.append((at, "p99", measured.p99_ms, thresholds.p99_ms))
        if thresholds is not None and thresholds.p50_ms is not None:
            at = ("spec", "loadTest", "thresholds", "p50Ms")
            limits.append((at, "p50", measured.p50_ms, thresholds.p50_ms))
        timeout = version.parameters.timeout_seconds
        if timeout is not None:
            limits.append(
                (("spec", "versions", index, "parameters", "timeoutSeconds"), "p99",
                 measured.p99_ms, timeout * 1000)
            )  # fmt: skip
        for where, quantile, took, limit in limits:
            if took > limit:
                found.append(
                    _finding(
                        source,
                        "online-bigsize",
                        where,
                        f"version {version.name}'s model {metadata.ref} takes {took:.2f} ms "
                        f"at {quantile} for one row (measured at training), over the "
                        f"{limit:g} ms this service allows",
                        "serve it with pattern asynchronous, answer first with a lighter "
                        "model (multiple-stage prediction), or train a smaller model",
                    )
                )
    return found


def _only_me(source: ServiceSource, resolved: Mapping[str, ModelMetadata]) -> list[Finding]:
    found = []
    for index, version in enumerate(source.service.spec.versions):
        metadata = resolved.get(version.name)
        if metadata is None or metadata.code_version or metadata.pipeline_run_id:
            continue
        found.append(
            _finding(
                source,
                "only-me",
                ("spec", "versions", index, "model", "uri"),
                f"version {version.name}'s model {metadata.ref} records neither the commit "
                "of its training code nor a pipeline run: nobody else can train it again",
                "train it again from a committed checkout (`mlpatterns train`) or a pipeline "
                "(`mlpatterns pipeline submit`), and serve that version",
            )
        )
    return found
