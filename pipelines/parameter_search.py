"""Parameter (and architecture) search: N trials in parallel, each recorded, the best
trained on all training rows, evaluated, exported and registered."""

# No `from __future__ import annotations` here: kfp reads the annotation objects.
from collections.abc import Callable
from typing import Any, cast

from kfp import dsl

from pipelines import components as c
from pipelines.stages import prepare_data, train_and_register

DEFAULT_PARALLELISM = 4


def make_parameter_search(parallelism: int = DEFAULT_PARALLELISM) -> Callable[..., Any]:
    """The pipeline with a given trial parallelism (kfp fixes it when the pipeline is built)."""

    @dsl.pipeline(
        name="parameter-search",
        description="Search a parameter space with parallel trials; register the best.",
    )
    def parameter_search(
        dataset: str = "iris",
        name: str = "iris",
        space: str = '{"C": [0.1, 1.0, 10.0]}',
        strategy: str = "grid",
        trials: int = 8,
        metric: str = "accuracy",
        target: str = "",
        time_budget_seconds: float = 0.0,
        model_type: str = "logreg",
        gate: str = "",
        schema_file: str = "",
        max_invalid_fraction: float = 0.05,
        test_ratio: float = 0.2,
        seed: int = 42,
        release: int = 0,
    ) -> str:
        data = prepare_data(
            dataset, schema_file, max_invalid_fraction, "stratified", test_ratio, seed
        )
        planned = c.plan_search(
            space=space,
            strategy=strategy,
            trials=trials,
            seed=seed,
            time_budget_seconds=time_budget_seconds,
        )
        with dsl.ParallelFor(planned.output, parallelism=parallelism) as trial:
            tried = c.search_trial(
                train=data.drawn.outputs["train"],
                schema=data.schema,
                trial=trial,
                model_type=model_type,
                metric=metric,
                seed=seed,
                target=target,
            )
        best = c.select_best(results=dsl.Collected(tried.output), metric=metric)
        version = train_and_register(
            data,
            name=name,
            model_type=best.outputs["model_type"],
            parameters=best.outputs["parameters"],
            gate=gate,
            seed=seed,
            release=release,
        )
        return cast(str, version)  # a channel kfp resolves to a str

    return cast(Callable[..., Any], parameter_search)


parameter_search = make_parameter_search()
