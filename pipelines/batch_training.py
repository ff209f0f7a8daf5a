"""Batch training: load -> validate -> split -> train -> evaluate -> export -> register.

Each step is its own component taking its inputs by artifact; with caching on, a
rerun after a failure does not redo the steps that finished.
"""

# No `from __future__ import annotations` here: kfp reads the annotation objects.

from typing import cast

from kfp import dsl

from pipelines.stages import prepare_data, train_and_register


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
    data = prepare_data(dataset, schema_file, max_invalid_fraction, split_method, test_ratio, seed)
    version = train_and_register(
        data,
        name=name,
        model_type=model_type,
        parameters=parameters,
        gate=gate,
        seed=seed,
        release=release,
    )
    return cast(str, version)  # a channel kfp resolves to a str
