"""The ModelService resource (`mlpatterns.io/v1alpha1`): one served model, its
versions and its traffic policy, as a user writes it (YAML) and as the platform
reads it (the CLI, the gateway, the operator). Field names are the YAML's.

Checks that span fields (a route naming an unknown version, weights that do not
add up, a shadow that would take all the traffic, ...) run when a ModelService is
built, each with a message that says what is wrong and how to fix it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from mlpatterns.api.base import Strict
from mlpatterns.api.breaker import CircuitBreaker, check_fallbacks
from mlpatterns.api.cache import CACHED_PATTERNS, Cache
from mlpatterns.api.features import FEATURE_PATTERNS, Features
from mlpatterns.api.graph import Graph, check_graph
from mlpatterns.api.loadtest import LoadTest
from mlpatterns.api.rollout import Rollout, RolloutStatus, check_rollout
from mlpatterns.api.stages import FollowUp, check_follow_up
from mlpatterns.api.traffic import (
    DAYS,
    HEADER_NAME,
    Day,
    Destination,
    Match,
    Rule,
    Shadow,
    Sticky,
    StringMatch,
    TimeWindow,
    Traffic,
    check_time_windows,
    check_weights,
)

__all__ = [
    "API_VERSION",
    "CRON",
    "DAYS",
    "DNS_LABEL",
    "HEADER_NAME",
    "KIND",
    "QUANTITY",
    "Autoscaling",
    "Batch",
    "Condition",
    "Day",
    "Destination",
    "Logging",
    "Match",
    "Metadata",
    "ModelService",
    "ModelSource",
    "Parameters",
    "Pattern",
    "Queue",
    "Resources",
    "Rule",
    "Shadow",
    "Spec",
    "Status",
    "Sticky",
    "Storage",
    "Strict",
    "StringMatch",
    "TimeWindow",
    "Traffic",
    "Version",
    "VersionStatus",
]

API_VERSION: Literal["mlpatterns.io/v1alpha1"] = "mlpatterns.io/v1alpha1"
KIND: Literal["ModelService"] = "ModelService"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
Pattern = Literal["web-single", "synchronous", "asynchronous", "batch", "preprocess-prediction"]


class ModelSource(Strict):
    uri: str = Field(description="models:/name/version, models:/name@alias, s3://... or a folder.")


class Parameters(Strict):
    """Parameter-based serving: behaviour changed without retraining."""

    active: bool = Field(
        default=True, description="Kill switch: false sends this version's traffic to the fallback."
    )
    threshold: float | None = Field(
        default=None, ge=0, le=1, description="Positive-class probability cut-off (binary models)."
    )
    timeout_seconds: float | None = Field(default=None, gt=0, alias="timeoutSeconds")
    retries: int | None = Field(default=None, ge=0, le=5)


QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"


class Resources(Strict):
    """A container's requests and limits (Kubernetes quantities)."""

    cpu: str = Field(default="100m", pattern=QUANTITY)
    memory: str = Field(default="256Mi", pattern=QUANTITY)
    cpu_limit: str = Field(default="1", pattern=QUANTITY, alias="cpuLimit")
    memory_limit: str = Field(default="512Mi", pattern=QUANTITY, alias="memoryLimit")


class Autoscaling(Strict):
    """A HorizontalPodAutoscaler (autoscaling/v2) on CPU for this version."""

    min_replicas: int = Field(default=1, ge=1, alias="minReplicas")
    max_replicas: int = Field(ge=1, alias="maxReplicas")
    cpu_utilization: int = Field(default=70, ge=1, le=100, alias="cpuUtilization")
    scale_down_seconds: int | None = Field(
        default=None,
        ge=0,
        le=3600,
        alias="scaleDownSeconds",
        description="Seconds the load must stay low before pods are removed (the "
        "HorizontalPodAutoscaler's scale-down stabilization window; Kubernetes' default "
        "is 300).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Autoscaling:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"autoscaling.maxReplicas ({self.max_replicas}) is below minReplicas "
                f"({self.min_replicas})"
            )
        return self


class Version(Strict):
    name: str = Field(
        pattern=DNS_LABEL, description="Version name; the `version` label of its pods."
    )
    model: ModelSource | None = Field(
        default=None, description="Model load: fetched at start, digest checked."
    )
    image: str | None = Field(
        default=None, description="Model in image: the model is built into this image."
    )
    replicas: int = Field(default=1, ge=0)
    parameters: Parameters = Field(default_factory=Parameters)
    resources: Resources = Field(default_factory=Resources)
    autoscaling: Autoscaling | None = None
    min_available: int | None = Field(
        default=None, ge=1, alias="minAvailable", description="A PodDisruptionBudget's floor."
    )
    circuit_breaker: CircuitBreaker | None = Field(
        default=None,
        alias="circuitBreaker",
        description="Requests in flight at most, and failures in a row that eject the version.",
    )
    cache: Cache | None = Field(
        default=None, description="The prediction cache: identical inputs answered from memory."
    )
    features: Features | None = Field(
        default=None,
        description='The data cache: requests naming entities ({"ids": [...]}) get their '
        "features from this source, through a cache.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Version:
        if (self.model is None) == (self.image is None):
            raise ValueError(
                f"version {self.name!r}: give exactly one of `model` (model load: "
                "{uri: models:/...}) or `image` (model in image)"
            )
        return self


class Logging(Strict):
    predictions: bool = True


CRON = r"^(\S+\s+){4}\S+$"


class Batch(Strict):
    """The batch pattern: predict stored rows on a schedule, only rows not yet done."""

    schedule: str = Field(pattern=CRON, description="Cron schedule, five fields (UTC).")
    input: str = Field(
        description="data.csv, data.parquet (either may be s3://bucket/key) or data.db:<table>."
    )
    output: str = Field(
        description="predictions.db (SQLite), predictions.csv, or predictions.parquet (a "
        "folder of Parquet parts, which may be s3://bucket/prefix.parquet: the object store "
        "of the storage Secret, written with the serving user's keys under batch/)."
    )
    id_column: str = Field(default="id", alias="idColumn")
    volume_claim: str | None = Field(
        default=None,
        alias="volumeClaim",
        description="In a cluster: the PersistentVolumeClaim holding local input and output "
        "(none is needed when both are s3://).",
    )

    @model_validator(mode="after")
    def _objects_go_to_parts(self) -> Batch:
        stored = [x for x in (self.input, self.output) if x.startswith("s3://")]
        if stored and not self.output.endswith(".parquet"):
            raise ValueError(
                f"batch {', '.join(stored)}: s3:// is read and written by the columnar path "
                "only; name the output s3://<bucket>/<prefix>.parquet (a folder of Parquet parts)"
            )
        return self


class Storage(Strict):
    """Where model load fetches from in a cluster: the Secret holding MLPATTERNS_S3_*."""

    secret_name: str = Field(pattern=DNS_LABEL, alias="secretName")


class Queue(Strict):
    """The asynchronous pattern's Redis: a URL, or the Secret holding MLPATTERNS_REDIS_URL."""

    redis_url: str | None = Field(default=None, alias="redisUrl", pattern=r"^rediss?://")
    secret_name: str | None = Field(default=None, alias="secretName", pattern=DNS_LABEL)

    @field_validator("redis_url")
    @classmethod
    def _no_password(cls, value: str | None) -> str | None:
        if value is not None and "@" in value.split("://", 1)[1].split("/", 1)[0]:
            raise ValueError(
                "queue.redisUrl must not carry credentials (a spec is readable by anyone "
                "who can read the resource); put the URL and MLPATTERNS_REDIS_PASSWORD in a "
                "Secret and name it in queue.secretName"
            )
        return value


class Spec(Strict):
    pattern: Pattern = "synchronous"
    versions: list[Version] = Field(min_length=1)
    traffic: Traffic = Field(default_factory=Traffic)
    logging: Logging = Field(default_factory=Logging)
    batch: Batch | None = Field(default=None, description="Required by the batch pattern.")
    storage: Storage | None = None
    queue: Queue | None = None
    router: Literal["istio", "gateway", "seldon"] | None = Field(
        default=None,
        description=(
            "Who routes: Istio, the mlpatterns gateway (default: Istio if installed), or "
            "Seldon Core 1.x (a SeldonDeployment)."
        ),
    )
    rollout: Rollout | None = Field(
        default=None, description="Training-to-serving: the candidate's steps to all traffic."
    )
    graph: Graph | None = Field(
        default=None,
        description="An inference graph: the versions in sequence or as an ensemble, "
        "executed by the gateway for the simple API.",
    )
    follow_up: FollowUp | None = Field(
        default=None,
        alias="followUp",
        description="Multiple-stage prediction: a heavy version that answers every request "
        "again, asynchronously, at /jobs/{request id}.",
    )
    load_test: LoadTest | None = Field(
        default=None,
        alias="loadTest",
        description="The load the service must take and the thresholds its answers must meet "
        "(`mlpatterns loadtest`).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Spec:
        names = [v.name for v in self.versions]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"version names must be unique; repeated: {duplicated}")
        known = set(names)

        def check(where: str, version: str) -> None:
            if version not in known:
                raise ValueError(
                    f"{where} names version {version!r}, "
                    f"which is not in spec.versions {sorted(known)}"
                )

        traffic = self.traffic
        for index, rule in enumerate(traffic.rules):
            for destination in rule.route:
                check(f"traffic.rules[{index}].route", destination.version)
            check_weights(f"traffic.rules[{index}].route", rule.route)
        for destination in traffic.split:
            check("traffic.split", destination.version)
        if traffic.split:
            check_weights("traffic.split", traffic.split)
        if traffic.shadow is not None:
            check("traffic.shadow", traffic.shadow.version)
            if set(self.default_answering()) == {traffic.shadow.version}:
                raise ValueError(
                    f"traffic.shadow copies requests to {traffic.shadow.version!r}, "
                    "which is also the only "
                    "version answering them; shadow a different version, or drop the shadow"
                )
        check_time_windows(traffic.rules)
        check_fallbacks(
            {v.name: v.circuit_breaker for v in self.versions if v.circuit_breaker}, known
        )
        if self.rollout is not None:
            check_rollout(
                self.rollout,
                names,
                self.default_answering(),
                traffic.shadow.version if traffic.shadow else None,
            )
        if self.graph is not None:
            check_graph(
                self.graph,
                pattern=self.pattern,
                versions={v.name: v.parameters.active for v in self.versions},
                others=[
                    name
                    for name, given in (
                        ("traffic.rules", bool(traffic.rules)),
                        ("traffic.split", bool(traffic.split)),
                        ("traffic.shadow", traffic.shadow is not None),
                        ("traffic.sticky", traffic.sticky is not None),
                        ("followUp", self.follow_up is not None),
                        ("rollout", self.rollout is not None),
                    )
                    if given
                ],
            )
        if self.follow_up is not None:
            check_follow_up(
                self.follow_up,
                pattern=self.pattern,
                versions=known,
                answering=self.answering(),
                shadow=traffic.shadow.version if traffic.shadow else None,
                has_rollout=self.rollout is not None,
            )
        self._check_pattern()
        if self.router == "seldon":
            _check_seldon(self)
        return self

    def _check_pattern(self) -> None:
        if self.pattern == "batch" and self.batch is None:
            raise ValueError(
                "pattern batch needs spec.batch: {schedule: '0 * * * *', input: rows.csv, "
                "output: predictions.db}"
            )
        if self.pattern != "batch" and self.batch is not None:
            raise ValueError(f"spec.batch applies to pattern batch only, not {self.pattern}")
        cached = [v.name for v in self.versions if v.cache is not None]
        if cached and self.pattern not in CACHED_PATTERNS:
            raise ValueError(
                f"versions {cached} have a cache, which pattern {self.pattern} does not use "
                f"(a prediction cache serves {', '.join(CACHED_PATTERNS)}); drop it"
            )
        featured = [v.name for v in self.versions if v.features is not None]
        if featured and self.pattern not in FEATURE_PATTERNS:
            raise ValueError(
                f"versions {featured} have features, which pattern {self.pattern} does not "
                f"use (a data cache serves {', '.join(FEATURE_PATTERNS)}); drop them"
            )
        split = len(self.default_answering()) > 1
        if self.pattern == "asynchronous" and split and self.traffic.sticky is None:
            raise ValueError(
                "pattern asynchronous with a split needs traffic.sticky: a job is polled at "
                "the version that took it, so a client's polls must reach the same version"
            )

    def default_route(self) -> list[Destination]:
        """Where requests that match no rule go: the split, or else the first version."""
        return list(self.traffic.split) or [Destination(version=self.versions[0].name, weight=100)]

    def default_answering(self) -> list[str]:
        """The versions the default route gives a share of the traffic, in its order."""
        return [d.version for d in self.default_route() if d.weight > 0]

    def answering(self) -> set[str]:
        """The versions some route (a rule's or the default) gives a share of the traffic."""
        rules = {d.version for rule in self.traffic.rules for d in rule.route if d.weight > 0}
        return set(self.default_answering()) | rules


def _check_seldon(spec: Spec) -> None:
    """What a SeldonDeployment cannot express, refused with what it can."""
    unlike = [
        (spec.pattern not in ("synchronous", "web-single"),
         f"pattern {spec.pattern} (Seldon serves one model server per version: "
         "synchronous or web-single)"),
        (bool(spec.traffic.rules), "traffic.rules (Seldon routes by weight only)"),
        (spec.traffic.sticky is not None, "traffic.sticky (Seldon's split is per request)"),
        (spec.traffic.shadow is not None and spec.traffic.shadow.percent != 100,
         "a shadow of less than 100% (Seldon's shadow predictor copies every request)"),
        (spec.rollout is not None, "spec.rollout (it measures through the mlpatterns gateway)"),
        (any(v.image is not None for v in spec.versions),
         "model-in-image versions (Seldon's wrapper serves a registry model: give `model`)"),
        (any(v.parameters != Parameters() for v in spec.versions),
         "versions[].parameters (the mlpatterns gateway applies them)"),
        (any(v.circuit_breaker is not None for v in spec.versions),
         "versions[].circuitBreaker (the mlpatterns gateway or Istio applies it)"),
        (any(v.cache is not None for v in spec.versions),
         "versions[].cache (the mlpatterns model server keeps it)"),
        (spec.follow_up is not None,
         "followUp (Seldon serves no asynchronous API)"),
        (spec.graph is not None,
         "graph (the mlpatterns gateway executes it)"),
        (any(v.features is not None for v in spec.versions),
         "versions[].features (the mlpatterns model server reads them)"),
        (any(v.autoscaling and v.autoscaling.scale_down_seconds for v in spec.versions),
         "autoscaling.scaleDownSeconds (Seldon's hpaSpec has no behavior)"),
    ]  # fmt: skip
    refused = [what for wrong, what in unlike if wrong]
    if refused:
        raise ValueError(
            "spec.router seldon cannot express: "
            + "; ".join(refused)
            + "; drop them or choose router gateway or istio"
        )


class Metadata(Strict):
    name: str = Field(pattern=DNS_LABEL)
    namespace: str | None = Field(default=None, pattern=DNS_LABEL)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int | None = None

    model_config = ConfigDict(extra="ignore", frozen=True)  # the API server adds fields


class Condition(Strict):
    type: Literal["Ready", "Progressing", "Degraded"]
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: str | None = Field(default=None, alias="lastTransitionTime")


class VersionStatus(Strict):
    name: str
    replicas: int = 0
    ready_replicas: int = Field(default=0, alias="readyReplicas")


class Status(Strict):
    conditions: list[Condition] = Field(default_factory=list)
    versions: list[VersionStatus] = Field(default_factory=list)
    weights: dict[str, int] = Field(
        default_factory=dict, description="Weights in force, by version."
    )
    version_names: str | None = Field(default=None, alias="versionNames")
    split: str | None = Field(default=None, description="The weights in force, as a=90,b=10.")
    shadow: str | None = Field(default=None, description="The shadow in force, as b:100%.")
    ready: str | None = Field(default=None, description="Ready replicas over desired, as 3/3.")
    router: str | None = None
    models: dict[str, str] = Field(
        default_factory=dict,
        description="The model each version serves, its registry reference resolved.",
    )
    rollout: RolloutStatus | None = None
    observed_generation: int | None = Field(default=None, alias="observedGeneration")


class ModelService(Strict):
    api_version: Literal["mlpatterns.io/v1alpha1"] = Field(default=API_VERSION, alias="apiVersion")
    kind: Literal["ModelService"] = KIND
    metadata: Metadata
    spec: Spec
    status: Status | None = None
