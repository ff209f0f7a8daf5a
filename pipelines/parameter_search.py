"""Parameter (and architecture) search: N trials in parallel, each recorded, the best
trained on all training rows, evaluated, exported and registered."""

# No `from __future__ import annotations` here: kfp reads the annotation objects.
from collections.abc import Callable
from typing import Any, cast

from kfp import dsl

from pipelines import components as c

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
        loaded = c.load(dataset=dataset, schema_file=schema_file)
        validated = c.validate(
            data=loaded.outputs["data"],
            schema=loaded.outputs["schema"],
            max_invalid_fraction=max_invalid_fraction,
        )
        drawn = c.split(
            valid=validated.outputs["valid"],
            schema=loaded.outputs["schema"],
            method="stratified",
            test_ratio=test_ratio,
            seed=seed,
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
                train=drawn.outputs["train"],
                schema=loaded.outputs["schema"],
                trial=trial,
                model_type=model_type,
                metric=metric,
                seed=seed,
                target=target,
            )
        best = c.select_best(results=dsl.Collected(tried.output), metric=metric)
        trained = c.train(
            train=drawn.outputs["train"],
            schema=loaded.outputs["schema"],
            model_type=best.outputs["model_type"],
            parameters=best.outputs["parameters"],
            seed=seed,
        )
        evaluated = c.evaluate(
            model=trained.outputs["model"],
            test=drawn.outputs["test"],
            schema=loaded.outputs["schema"],
            gate=gate,
        )
        exported = c.export(
            model=trained.outputs["model"],
            test=drawn.outputs["test"],
            schema=loaded.outputs["schema"],
        )
        registered = c.register(
            name=name,
            model_type=best.outputs["model_type"],
            parameters=best.outputs["parameters"],
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

    return cast(Callable[..., Any], parameter_search)


parameter_search = make_parameter_search()
