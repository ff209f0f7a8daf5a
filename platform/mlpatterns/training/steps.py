"""The batch-training steps as plain functions over files: what kfp components call.

    load -> validate -> split -> train -> evaluate -> export -> register

Each step reads its inputs from paths and writes its outputs to paths, the way kfp
hands artifacts to a component, so the same functions run in a pipeline, in a
test, or one after the other (`run_directly`). Between `train` and the steps after
it, the fitted scikit-learn pipeline travels as a pickle inside the pipeline's own
artifact store; nothing outside training ever loads it: serving loads ONNX only.
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpatterns.registry.metadata import DatasetRef, DatasetSchema, ModelDraft, Split
from mlpatterns.registry.promotion import promote
from mlpatterns.registry.registry import Registry
from mlpatterns.settings import load_settings
from mlpatterns.training import validation

__all__ = [
    "CANDIDATE",
    "StrPath",
    "TrainingRequest",
    "code_version",
    "evaluate_step",
    "export_step",
    "frameworks",
    "hand_over_step",
    "load_step",
    "read_table",
    "register_step",
    "run_directly",
    "split_step",
    "train_step",
    "validate_step",
]

# Each step imports the heavy libraries it needs (scikit-learn, skl2onnx) itself: every
# step is its own process in a pipeline, and most of its start-up time is imports.

CANDIDATE = "candidate"


# kfp hands artifact paths over as strings; tests and run_directly pass Paths.
StrPath = str | os.PathLike[str]


def _write_json(path: StrPath, value: object) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, sort_keys=True, default=str))


def _read_json(path: StrPath) -> Any:
    return json.loads(Path(path).read_text())


def _schema(path: StrPath) -> DatasetSchema:
    return DatasetSchema.model_validate(_read_json(path))


def read_table(csv_path: StrPath, schema_path: StrPath) -> validation.ValidTable:
    # rows that reach this point were validated already: none may be rejected now
    return validation.validate(
        Path(csv_path).read_bytes(), _schema(schema_path), max_invalid_fraction=0.0
    )


def load_step(
    dataset: str, schema_file: str, data: StrPath, schema: StrPath, record: StrPath
) -> None:
    """Load a built-in or user dataset and snapshot it in the registry."""
    from mlpatterns.training import datasets

    raw = datasets.load(dataset, Path(schema_file) if schema_file else None)
    snapshot = Registry.from_settings(load_settings()).register_dataset(
        raw.name, raw.csv_bytes, raw.schema, raw.csv_bytes.count(b"\n") - 1, raw.source
    )
    Path(data).write_bytes(raw.csv_bytes)
    _write_json(schema, raw.schema.model_dump())
    _write_json(record, snapshot.model_dump(mode="json", by_alias=True))


def validate_step(
    data: StrPath, schema: StrPath, max_invalid_fraction: float, valid: StrPath, report: StrPath
) -> None:
    """Keep the valid rows; fail, with the report, when too many are invalid."""
    from mlpatterns.training import datasets

    dataset_schema = _schema(schema)
    try:
        table = validation.validate(
            Path(data).read_bytes(), dataset_schema, max_invalid_fraction=max_invalid_fraction
        )
    except validation.InvalidDataError as error:
        _write_json(report, error.report.as_dict())
        raise
    _write_json(report, table.report.as_dict())
    rows = [
        [repr(float(v)) for v in features] + [label]
        for features, label in zip(table.features, table.labels, strict=True)
    ]
    header = [*dataset_schema.feature_names, dataset_schema.label]
    Path(valid).write_bytes(datasets.write_csv(header, rows))


def split_step(
    valid: StrPath,
    schema: StrPath,
    method: str,
    test_ratio: float,
    seed: int,
    train: StrPath,
    test: StrPath,
    split: StrPath,
) -> None:
    """Draw train and test rows; record the split with the digests of both row sets."""
    from mlpatterns.training import evaluation

    lines = Path(valid).read_bytes().splitlines(keepends=True)
    table = read_table(valid, schema)
    requested = Split.model_validate({"method": method, "test_ratio": test_ratio, "seed": seed})
    train_rows, test_rows, recorded = evaluation.split_rows(table.labels, requested)
    Path(train).write_bytes(b"".join([lines[0], *(lines[i + 1] for i in train_rows)]))
    Path(test).write_bytes(b"".join([lines[0], *(lines[i + 1] for i in test_rows)]))
    _write_json(split, recorded.model_dump())


def train_step(
    train: StrPath, schema: StrPath, model_type: str, parameters: str, seed: int, model: StrPath
) -> None:
    """Fit the model type with the given parameters (JSON) on the training rows."""
    from mlpatterns.training import models

    table = read_table(train, schema)
    pipeline = models.build(model_type, json.loads(parameters or "{}"), seed)
    pipeline.fit(table.features, table.labels)
    Path(model).write_bytes(pickle.dumps(pipeline))


def _fitted(model: StrPath) -> Any:
    # Written by train_step in this same pipeline run; never user input.
    return pickle.loads(Path(model).read_bytes())  # noqa: S301


def evaluate_step(
    model: StrPath, test: StrPath, schema: StrPath, gate: str, metrics: StrPath
) -> bool:
    """Measure the model on the test rows and judge it against the gate ('' for none)."""
    from mlpatterns.training import choices, evaluation

    table = read_table(test, schema)
    pipeline = _fitted(model)
    classes = [str(c) for c in pipeline.classes_]
    measured = evaluation.classification_metrics(
        table.labels, pipeline.predict_proba(table.features), classes
    )
    passed, reason = choices.Gate.parse(gate).judge(measured) if gate else (True, "no gate")
    _write_json(metrics, {"metrics": measured, "gate": gate, "passed": passed, "reason": reason})
    return passed


def export_step(model: StrPath, test: StrPath, schema: StrPath, onnx_dir: StrPath) -> float:
    """Write the three ONNX graphs; fail when ONNX disagrees with scikit-learn."""
    from mlpatterns.training import export

    exported = export.export(_fitted(model), read_table(test, schema).features)
    Path(onnx_dir).mkdir(parents=True, exist_ok=True)
    for name, data in exported.files.items():
        (Path(onnx_dir) / name).write_bytes(data)
    return exported.max_abs_difference


def code_version() -> str | None:
    """The git commit of the training code, when it runs from a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def frameworks() -> dict[str, str]:
    from importlib.metadata import version

    names = ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "mlpatterns")
    return {"python": platform.python_version(), **{n: version(n) for n in names}}


def register_step(
    name: str,
    model_type: str,
    parameters: str,
    release: int,
    run_id: str,
    onnx_dir: StrPath,
    metrics: StrPath,
    record: StrPath,
    split: StrPath,
    train: StrPath,
    schema: StrPath,
    result: StrPath,
) -> str:
    """Register the model when it passed its gate and make it the candidate; else say why.

    Returns the version registered, or '' when the gate kept it out.
    """
    from mlpatterns.training import evaluation, export

    evaluated = _read_json(metrics)
    registry = Registry.from_settings(load_settings())
    if not evaluated["passed"]:
        outcome = {"registered": False, "version": "", "reason": evaluated["reason"]}
        registry.record_run(run_id, {"name": name, **outcome, "metrics": evaluated["metrics"]})
        _write_json(result, outcome)
        return ""
    dataset = _read_json(record)
    table = read_table(train, schema)
    files = {p.name: p.read_bytes() for p in sorted(Path(onnx_dir).glob("*.onnx"))}
    classes = _schema(schema).classes or sorted(set(table.labels.tolist()))
    draft = ModelDraft(
        name=name,
        signature=export.signature(files["model.onnx"]),
        labels=classes,
        model_type=model_type,
        parameters=json.loads(parameters or "{}"),
        metrics=evaluated["metrics"],
        dataset=DatasetRef(name=dataset["name"], sha256=dataset["sha256"], rows=dataset["rows"]),
        split=Split.model_validate(_read_json(split)),
        feature_names=_schema(schema).feature_names,
        code_version=code_version(),
        pipeline_run_id=run_id or None,
        frameworks=frameworks(),
        profile=evaluation.profile(table.features, _schema(schema).feature_names, table.labels),
        latency=export.latency(files["model.onnx"], table.features[0]),
    )
    registered = registry.register_model(draft, files, release=release)
    registry.move_alias(name, CANDIDATE, registered.version)
    outcome = {"registered": True, "version": registered.version, "reason": evaluated["reason"]}
    registry.record_run(run_id, {"name": name, **outcome, "metrics": evaluated["metrics"]})
    _write_json(result, outcome)
    return registered.version


def hand_over_step(name: str, version: str, alias: str, run_id: str) -> str:
    """Point `alias` at `version` (the rollout's candidate follows it), recorded as done
    by this run; nothing when the gate kept the version out (`version` is ''). What
    happened, in a line."""
    if not version:
        return f"nothing handed over: the gate kept the model out ({name}@{alias} unchanged)"
    registry = Registry.from_settings(load_settings())
    if registry.aliases(name).get(alias) == version:
        return f"{name}@{alias} names {version}: its rollout takes it from there"
    moved = promote(registry, name, version, alias, by=f"pipeline run {run_id or 'local'}")
    return f"{name}@{alias} -> {moved.version} (was {moved.previous or 'unset'})"


@dataclass(frozen=True)
class TrainingRequest:
    dataset: str
    name: str
    model_type: str = "logreg"
    parameters: str = "{}"
    gate: str = ""
    schema_file: str = ""
    max_invalid_fraction: float = 0.05
    split_method: str = "stratified"
    test_ratio: float = 0.2
    seed: int = 42
    release: int = 0


def run_directly(request: TrainingRequest, run_id: str = "direct") -> str:
    """Every step in order, in this process, with files in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="mlpatterns-train-") as folder:
        f = Path(folder)
        load_step(
            request.dataset,
            request.schema_file,
            f / "data.csv",
            f / "schema.json",
            f / "record.json",
        )
        validate_step(
            f / "data.csv",
            f / "schema.json",
            request.max_invalid_fraction,
            f / "valid.csv",
            f / "report.json",
        )
        split_step(
            f / "valid.csv",
            f / "schema.json",
            request.split_method,
            request.test_ratio,
            request.seed,
            f / "train.csv",
            f / "test.csv",
            f / "split.json",
        )
        train_step(
            f / "train.csv",
            f / "schema.json",
            request.model_type,
            request.parameters,
            request.seed,
            f / "model.pkl",
        )
        evaluate_step(
            f / "model.pkl", f / "test.csv", f / "schema.json", request.gate, f / "metrics.json"
        )
        export_step(f / "model.pkl", f / "test.csv", f / "schema.json", f / "onnx")
        return register_step(
            request.name,
            request.model_type,
            request.parameters,
            request.release,
            run_id,
            f / "onnx",
            f / "metrics.json",
            f / "record.json",
            f / "split.json",
            f / "train.csv",
            f / "schema.json",
            f / "result.json",
        )
