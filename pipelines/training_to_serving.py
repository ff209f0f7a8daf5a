"""Training to serving: load -> validate -> split -> train -> evaluate -> export ->
register (only past the gate, as the candidate) -> hand over.

The hand-over points the alias a ModelService's rollout candidate serves
(`rollout_alias`, default `candidate`) at the new version, recorded in the model's
lineage as done by this run. The platform does the rest: the candidate's servers
load the new model, its rollout starts from its first step, and passing every step
promotes it (`spec.rollout.promoteAlias`); failing one rolls it back.
"""

# No `from __future__ import annotations` here: kfp reads the annotation objects.

from typing import cast

from kfp import dsl

from pipelines import components as c
from pipelines.stages import prepare_data, train_and_register, with_storage


@dsl.pipeline(
    name="training-to-serving",
    description="Train, gate and register a classifier, then hand it to a rollout.",
)
def training_to_serving(
    dataset: str = "iris",
    name: str = "iris",
    model_type: str = "logreg",
    parameters: str = "{}",
    gate: str = "accuracy>=0.9",
    rollout_alias: str = "candidate",
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
    handed = with_storage(
        c.hand_over(
            name=name,
            version=version,
            alias=rollout_alias,
            run_id=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        )
    )
    return cast(str, handed.output)  # a channel kfp resolves to a str
