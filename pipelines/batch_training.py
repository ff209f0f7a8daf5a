"""Batch training: load -> validate -> split -> train -> evaluate -> export -> register.

Each step is its own component taking its inputs by artifact; with caching on, a
rerun after a failure does not redo the steps that finished.
"""

# No `from __future__ import annotations` here: kfp reads the annotation objects.

from typing import cast

from kfp import dsl

from pipelines import components as c


@dsl.pipeline(
    name="batch-training",
    description="Train, evaluate, export to ONNX and register a classifier.",
)
def batch_training(
    dataset: str = "iris",
    name: str = "iris",
    model_type: str = "logreg",
    parameters: str = "{}",
    gate: str = "",
    schema_file: str = "",
    max_invalid_fraction: float = 0.05,
    split_method: str = "stratified",
    test_ratio: float = 0.2,
    seed: int = 42,
    release: int = 0,
) -> str:
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
    trained = c.train(
        train=drawn.outputs["train"],
        schema=loaded.outputs["schema"],
        model_type=model_type,
        parameters=parameters,
        seed=seed,
    )
    evaluated = c.evaluate(
        model=trained.outputs["model"],
        test=drawn.outputs["test"],
        schema=loaded.outputs["schema"],
        gate=gate,
    )
    exported = c.export(
        model=trained.outputs["model"], test=drawn.outputs["test"], schema=loaded.outputs["schema"]
    )
    registered = c.register(
        name=name,
        model_type=model_type,
        parameters=parameters,
        release=release,
        run_id=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        onnx=exported.outputs["onnx"],
        metrics=evaluated.outputs["metrics"],
        record=loaded.outputs["record"],
        split=drawn.outputs["split"],
        train=drawn.outputs["train"],
        schema=loaded.outputs["schema"],
    )
    return cast(str, registered.outputs["Output"])  # a channel kfp resolves to a str
