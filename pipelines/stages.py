"""Pipeline fragments both training pipelines share: the data stages before training
and the stages after it. Plain functions that add tasks to the pipeline being built."""

# No `from __future__ import annotations` here: kfp reads the annotation objects.
from dataclasses import dataclass
from typing import Any

from kfp import dsl

from pipelines import components as c


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
    loaded = c.load(dataset=dataset, schema_file=schema_file)
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
    return registered.outputs["Output"]
