"""Pipeline fragments both training pipelines share: the data stages before training
and the stages after it. Plain functions that add tasks to the pipeline being built."""

# No `from __future__ import annotations` here: kfp reads the annotation objects.
import os
from dataclasses import dataclass
from typing import Any

from kfp import dsl, kubernetes

from pipelines import components as c

# The steps that read or write the registry take its S3 settings from this Secret
# (in a cluster; the platform chart's MinIO writes it for release "mlpatterns"), so a
# run registers into the object store, not into its pod. Read when compiled.
STORAGE_SECRET = os.environ.get("MLPATTERNS_STORAGE_SECRET", "mlpatterns-storage-training")
S3_SETTINGS = (
    "MLPATTERNS_S3_ENDPOINT",
    "MLPATTERNS_S3_BUCKET",
    "MLPATTERNS_S3_SECURE",
    "MLPATTERNS_S3_ACCESS_KEY",
    "MLPATTERNS_S3_SECRET_KEY",
)


def with_storage(task: Any) -> Any:
    """`task` with the registry's S3 settings as environment, from STORAGE_SECRET."""
    return kubernetes.use_secret_as_env(
        task, secret_name=STORAGE_SECRET, secret_key_to_env={k: k for k in S3_SETTINGS}
    )


@dataclass(frozen=True)
class PreparedData:
    loaded: Any  # kfp PipelineTasks
    drawn: Any

    @property
    def schema(self) -> Any:
        return self.loaded.outputs["schema"]


def prepare_data(
    dataset: Any,
    schema_file: Any,
    max_invalid_fraction: Any,
    split_method: Any,
    test_ratio: Any,
    seed: Any,
) -> PreparedData:
    """load -> validate -> split."""
    loaded = with_storage(c.load(dataset=dataset, schema_file=schema_file))
    validated = c.validate(
        data=loaded.outputs["data"],
        schema=loaded.outputs["schema"],
        max_invalid_fraction=max_invalid_fraction,
    )
    drawn = c.split(
        valid=validated.outputs["valid"],
        schema=loaded.outputs["schema"],
        method=split_method,
        test_ratio=test_ratio,
        seed=seed,
    )
    return PreparedData(loaded, drawn)


def train_and_register(
    data: PreparedData,
    *,
    name: Any,
    model_type: Any,
    parameters: Any,
    gate: Any,
    seed: Any,
    release: Any,
) -> Any:
    """train -> evaluate -> export -> register; returns the version (a kfp channel)."""
    trained = c.train(
        train=data.drawn.outputs["train"],
        schema=data.schema,
        model_type=model_type,
        parameters=parameters,
        seed=seed,
    )
    evaluated = c.evaluate(
        model=trained.outputs["model"],
        test=data.drawn.outputs["test"],
        schema=data.schema,
        gate=gate,
    )
    exported = c.export(
        model=trained.outputs["model"], test=data.drawn.outputs["test"], schema=data.schema
    )
    registered = c.register(
        name=name,
        model_type=model_type,
        parameters=parameters,
        release=release,
        run_id=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        onnx=exported.outputs["onnx"],
        metrics=evaluated.outputs["metrics"],
        record=data.loaded.outputs["record"],
        split=data.drawn.outputs["split"],
        train=data.drawn.outputs["train"],
        schema=data.schema,
    )
    return with_storage(registered).outputs["Output"]
