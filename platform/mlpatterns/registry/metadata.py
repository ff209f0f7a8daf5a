"""What the registry records about datasets and model versions.

A model version names everything needed to reproduce and trust it: its code,
parameters, exact data and split, evaluation, the digests of its files, and a
profile of the training features that drift monitoring compares live traffic to.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "MODEL_FILE",
    "AliasRecord",
    "DatasetRef",
    "DatasetSchema",
    "DatasetVersion",
    "FeatureProfile",
    "FeatureSchema",
    "Frozen",
    "Histogram",
    "Latency",
    "ModelDraft",
    "ModelMetadata",
    "Profile",
    "Promotion",
    "Signature",
    "Split",
    "TensorSpec",
]

MODEL_FILE = "model.onnx"  # every model version's graph; a split model adds its halves


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TensorSpec(Frozen):
    name: str
    shape: list[int | str | None]  # None or a name for a dynamic dimension
    dtype: str  # as onnxruntime names it, e.g. "tensor(float)"


class Signature(Frozen):
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


class FeatureSchema(Frozen):
    name: str
    dtype: Literal["float", "int"] = "float"
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False


class DatasetSchema(Frozen):
    features: list[FeatureSchema]
    label: str
    classes: list[str] = Field(default_factory=list)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]


class DatasetVersion(Frozen):
    """A content-addressed snapshot: its `sha256` is the digest of the stored bytes."""

    name: str
    sha256: str
    format: Literal["csv"]
    rows: int
    schema_: DatasetSchema = Field(alias="schema")
    source: str
    created_at: datetime

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @property
    def ref(self) -> str:
        return f"datasets:/{self.name}/{self.sha256[:12]}"


class Split(Frozen):
    """How train and test rows were drawn; the digests let anyone check a re-draw."""

    method: Literal["random", "stratified"] = "stratified"
    test_ratio: float = Field(default=0.2, gt=0, lt=1)
    seed: int = 42
    train_rows_sha256: str | None = None
    test_rows_sha256: str | None = None

    @property
    def label(self) -> str:
        return f"{self.method[:5]}{round(self.test_ratio * 100)}s{self.seed}"


class Histogram(Frozen):
    edges: list[float]
    counts: list[int]


class FeatureProfile(Frozen):
    name: str
    count: int
    missing: int
    mean: float
    std: float
    minimum: float
    maximum: float
    quantiles: dict[str, float]  # "0.05" -> value
    histogram: Histogram


class Profile(Frozen):
    """The training features' distribution, the reference for drift detection."""

    rows: int
    features: list[FeatureProfile]
    class_frequencies: dict[str, float] = Field(default_factory=dict)


class Latency(Frozen):
    """How long the model takes for one row, measured where it was trained
    (onnxruntime, one thread): what an online service level is checked against."""

    p50_ms: float
    p99_ms: float
    runs: int


class DatasetRef(Frozen):
    name: str
    sha256: str
    rows: int


class ModelDraft(Frozen):
    """What training knows about a model before the registry gives it a version."""

    name: str
    signature: Signature
    labels: list[str]
    model_type: str
    parameters: dict[str, Any]
    metrics: dict[str, float]
    dataset: DatasetRef
    split: Split
    feature_names: list[str]
    code_version: str | None
    pipeline_run_id: str | None
    frameworks: dict[str, str]
    profile: Profile | None
    latency: Latency | None = None


class ModelMetadata(ModelDraft):
    """A registered version: the draft plus its number, file digests and fingerprint."""

    version: str  # X.Y.Z-<data>.<split>
    sha256: str  # of model.onnx, the file a server loads
    size_bytes: int
    files: dict[str, str]  # file name -> sha256 (model.onnx, preprocess.onnx, predictor.onnx)
    created_at: datetime
    fingerprint: str  # same files, data, split and parameters -> same fingerprint

    @property
    def core_version(self) -> str:
        return self.version.split("-", 1)[0]

    @property
    def ref(self) -> str:
        return f"models:/{self.name}/{self.version}"


class AliasRecord(Frozen):
    alias: str
    version: str
    moved_at: datetime
    previous: str | None = None


class Promotion(Frozen):
    """One move of an alias by `mlpatterns promote`: what, by whom, when, and the
    training run that made the version (its lineage)."""

    name: str
    alias: str
    version: str
    previous: str | None
    source: str  # what was promoted, as given: an alias (candidate) or a version
    by: str
    at: datetime
    run: str | None  # the pipeline run that registered the version
