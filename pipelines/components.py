"""The kfp components of the training pipelines: each one calls a plain function of
`mlpatterns.training`, so what a component does is tested without kfp.

Every component runs in the training image (mlpatterns with the `training` extra).
Which image is a setting, read when the pipeline is defined or compiled:
`MLPATTERNS_TRAINING_IMAGE` (default `mlpatterns-training:<version>`, the name the
README's image build gives it; never a hard-coded registry).
"""

# No `from __future__ import annotations` here: kfp reads the annotation objects.
import os

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from mlpatterns import __version__

TRAINING_IMAGE = os.environ.get("MLPATTERNS_TRAINING_IMAGE", f"mlpatterns-training:{__version__}")


def component(function):  # type: ignore[no-untyped-def]
    # The image already carries kfp: nothing is pip-installed when a step starts.
    return dsl.component(base_image=TRAINING_IMAGE, install_kfp_package=False)(function)


@component
def load(
    dataset: str,
    schema_file: str,
    data: Output[Dataset],
    schema: Output[Artifact],
    record: Output[Artifact],
) -> None:
    from mlpatterns.training.steps import load_step

    load_step(dataset, schema_file, data.path, schema.path, record.path)


@component
def validate(
    data: Input[Dataset],
    schema: Input[Artifact],
    max_invalid_fraction: float,
    valid: Output[Dataset],
    report: Output[Artifact],
) -> None:
    from mlpatterns.training.steps import validate_step

    validate_step(data.path, schema.path, max_invalid_fraction, valid.path, report.path)


@component
def split(
    valid: Input[Dataset],
    schema: Input[Artifact],
    method: str,
    test_ratio: float,
    seed: int,
    train: Output[Dataset],
    test: Output[Dataset],
    split: Output[Artifact],
) -> None:
    from mlpatterns.training.steps import split_step

    split_step(valid.path, schema.path, method, test_ratio, seed, train.path, test.path, split.path)


@component
def train(
    train: Input[Dataset],
    schema: Input[Artifact],
    model_type: str,
    parameters: str,
    seed: int,
    model: Output[Model],
) -> None:
    from mlpatterns.training.steps import train_step

    train_step(train.path, schema.path, model_type, parameters, seed, model.path)


@component
def evaluate(
    model: Input[Model],
    test: Input[Dataset],
    schema: Input[Artifact],
    gate: str,
    metrics: Output[Artifact],
    scores: Output[Metrics],
) -> bool:
    import json

    from mlpatterns.training.steps import evaluate_step

    passed = evaluate_step(model.path, test.path, schema.path, gate, metrics.path)
    with open(metrics.path) as measured:
        values = json.load(measured)["metrics"]
    for name, value in values.items():
        scores.log_metric(name, value)
    return passed


@component
def export(
    model: Input[Model], test: Input[Dataset], schema: Input[Artifact], onnx: Output[Model]
) -> float:
    from mlpatterns.training.steps import export_step

    return export_step(model.path, test.path, schema.path, onnx.path)


@component
def register(
    name: str,
    model_type: str,
    parameters: str,
    release: int,
    run_id: str,
    onnx: Input[Model],
    metrics: Input[Artifact],
    record: Input[Artifact],
    split: Input[Artifact],
    train: Input[Dataset],
    schema: Input[Artifact],
    result: Output[Artifact],
) -> str:
    from mlpatterns.training.steps import register_step

    return register_step(
        name,
        model_type,
        parameters,
        release,
        run_id,
        onnx.path,
        metrics.path,
        record.path,
        split.path,
        train.path,
        schema.path,
        result.path,
    )


@component
def hand_over(name: str, version: str, alias: str, run_id: str) -> str:
    from mlpatterns.training.steps import hand_over_step

    return hand_over_step(name, version, alias, run_id)


@component
def plan_search(
    space: str, strategy: str, trials: int, seed: int, time_budget_seconds: float
) -> list[str]:
    from mlpatterns.training.search_steps import plan_step

    return plan_step(space, strategy, trials, seed, time_budget_seconds)


@component
def search_trial(
    train: Input[Dataset],
    schema: Input[Artifact],
    trial: str,
    model_type: str,
    metric: str,
    seed: int,
    target: str,
) -> str:
    from mlpatterns.training.search_steps import trial_step

    return trial_step(train.path, schema.path, trial, model_type, metric, seed, target)


@component
def select_best(
    results: list[str],
    metric: str,
    table: Output[Artifact],
    model_type: dsl.OutputPath(str),  # type: ignore[valid-type]
    parameters: dsl.OutputPath(str),  # type: ignore[valid-type]
) -> None:
    from mlpatterns.training.search_steps import select_step

    best_type, best_parameters = select_step(results, metric, table.path)
    with open(model_type, "w") as sink:
        sink.write(best_type)
    with open(parameters, "w") as sink:
        sink.write(best_parameters)
