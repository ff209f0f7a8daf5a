"""Training's pure parts: validation, export parity, gates, search spaces, CLI parsing."""

from __future__ import annotations

import numpy as np
import pytest
import typer

from mlpatterns.cli.training import parse_params
from mlpatterns.registry.metadata import DatasetSchema, FeatureSchema, Split
from mlpatterns.training import (
    choices,
    datasets,
    evaluation,
    export,
    models,
    search,
    space,
    validation,
)
from mlpatterns.training.kfp_local import failure_excerpt, parse_event

pytestmark = pytest.mark.unit

SCHEMA = DatasetSchema(
    features=[FeatureSchema(name="a", minimum=0, maximum=10), FeatureSchema(name="b")],
    label="label",
    classes=["x", "y"],
)


def test_validation_names_each_rejected_row_and_reason() -> None:
    rows = b"a,b,label\n1,2,x\nabc,2,y\n11,2,x\n3,,y\n3,inf,x\n4,5,z\n5,6\n" + b"2,2,y\n" * 2
    with pytest.raises(validation.InvalidDataError) as caught:
        validation.validate(rows, SCHEMA, max_invalid_fraction=0.5)
    report = caught.value.report
    assert report.rows == 9
    assert {r.line: r.reasons for r in report.rejected} == {
        3: ("a='abc' is not a number",),
        4: ("a=11 is above the maximum 10",),
        5: ("b is missing",),
        6: ("b=inf is not finite",),
        7: ("label='z' is not one of ['x', 'y']",),
        8: ("has 2 fields, the header has 3",),
    }
    assert "line 3: a='abc' is not a number" in str(caught.value)


def test_validation_keeps_valid_rows_under_the_threshold() -> None:
    rows = b"a,b,label\n" + b"1,2,x\n" * 19 + b"-1,2,y\n"
    table = validation.validate(rows, SCHEMA, max_invalid_fraction=0.1)
    assert table.features.shape == (19, 2)
    assert [r.line for r in table.report.rejected] == [21]


def test_missing_columns_are_named() -> None:
    with pytest.raises(validation.InvalidDataError, match=r"lacks the columns \['b'\]"):
        validation.validate(b"a,label\n1,x\n", SCHEMA)


@pytest.mark.parametrize("model_type", sorted(models.ESTIMATORS))
def test_onnx_matches_scikit_learn_and_is_deterministic(model_type: str) -> None:
    raw = datasets.load_builtin("iris")
    table = validation.validate(raw.csv_bytes, raw.schema)
    train, test, _ = evaluation.split_rows(table.labels, Split())
    fitted = models.build(model_type, {}, 42).fit(table.features[train], table.labels[train])
    first = export.export(fitted, table.features[test])
    assert first.max_abs_difference <= export.PARITY_TOLERANCE
    assert set(first.files) == {"model.onnx", "preprocess.onnx", "predictor.onnx"}
    assert export.export(fitted, table.features[test]).files == first.files
    outputs = [o.name for o in export.signature(first.files["model.onnx"]).outputs]
    assert outputs == ["label", "probabilities"]


def test_preprocess_then_predictor_equals_the_whole_model() -> None:
    raw = datasets.load_builtin("digits")
    table = validation.validate(raw.csv_bytes, raw.schema)
    fitted = models.build("logreg", {}, 42).fit(table.features, table.labels)
    files = export.export(fitted, table.features[:200]).files
    rows = table.features[:200].astype(np.float32)
    features = export.session(files["preprocess.onnx"]).run(None, {"input": rows})[0]
    split_probabilities = export.session(files["predictor.onnx"]).run(
        ["probabilities"], {"input": features}
    )[0]
    whole = export.predict_proba(files["model.onnx"], table.features[:200])
    assert np.max(np.abs(split_probabilities - whole)) <= 1e-5


def test_unknown_model_type_and_parameters_are_explained() -> None:
    with pytest.raises(models.ModelTypeError, match="choose one of logreg, svc"):
        models.build("xgboost", {}, 1)
    with pytest.raises(models.ModelTypeError, match="invalid parameters for logreg"):
        models.build("logreg", {"depth": 3}, 1)


def test_gate() -> None:
    gate = choices.Gate.parse("accuracy>=0.9")
    assert gate.judge({"accuracy": 0.95}) == (True, "accuracy=0.9500 passes the gate accuracy>=0.9")
    assert gate.judge({"accuracy": 0.5})[0] is False
    assert "names 'accuracy'" in gate.judge({"f1_macro": 1.0})[1]
    with pytest.raises(ValueError, match="write <metric><op><value>"):
        choices.Gate.parse("accuracy is high")


def test_split_is_recorded_and_reproducible() -> None:
    labels = np.asarray(["x", "y"] * 50)
    train, test, recorded = evaluation.split_rows(labels, Split(test_ratio=0.2, seed=7))
    again_train, again_test, again = evaluation.split_rows(labels, Split(test_ratio=0.2, seed=7))
    assert (train == again_train).all()
    assert (test == again_test).all()
    assert recorded.test_rows_sha256 == again.test_rows_sha256
    assert len(test) == 20
    assert not set(train) & set(test)
    assert recorded.label == "strat20s7"


def test_profile_has_summaries_and_histograms() -> None:
    features = np.asarray([[1.0, np.nan], [2.0, 4.0], [3.0, 6.0]])
    profile = evaluation.profile(features, ["a", "b"], np.asarray(["x", "x", "y"]))
    assert profile.features[0].mean == 2.0
    assert profile.features[1].missing == 1
    assert sum(profile.features[0].histogram.counts) == 3
    assert profile.class_frequencies == {"x": pytest.approx(2 / 3), "y": pytest.approx(1 / 3)}


def test_search_spaces() -> None:
    grid = space.expand({"C": [0.1, 1.0], "kernel": ["rbf", "linear"]}, "grid", 10, 0)
    assert len(grid) == 4
    assert {"C": 0.1, "kernel": "linear"} in grid
    assert len(space.expand({"C": [1, 2, 3]}, "grid", 2, 0)) == 2
    points = space.expand({"C": {"low": 0.01, "high": 100, "log": True}}, "random", 20, 3)
    assert all(0.01 <= p["C"] <= 100 for p in points)
    assert points == space.expand({"C": {"low": 0.01, "high": 100, "log": True}}, "random", 20, 3)
    with pytest.raises(space.SearchSpaceError, match="needs `num`"):
        space.expand({"C": {"low": 1, "high": 2}}, "grid", 3, 0)
    with pytest.raises(space.SearchSpaceError, match="unknown strategy"):
        space.expand({"C": [1]}, "bayes", 3, 0)


def test_best_trial_skips_failures_and_respects_direction() -> None:
    results = [
        {"index": 0, "status": "ok", "metric": 0.4},
        {"index": 1, "status": "failed", "error": "boom"},
        {"index": 2, "status": "ok", "metric": 0.2},
    ]
    assert search.best_trial(results, "accuracy")["index"] == 0
    assert search.best_trial(results, "log_loss")["index"] == 2
    with pytest.raises(RuntimeError, match="#1: boom"):
        search.best_trial([results[1]], "accuracy")


def test_parse_params() -> None:
    assert parse_params('{"C": 1}') == {"C": 1}
    assert parse_params("C=0.5,kernel=rbf,probability=true") == {
        "C": 0.5,
        "kernel": "rbf",
        "probability": True,
    }
    with pytest.raises(typer.BadParameter, match="is not key=value"):
        parse_params("C")


def test_kfp_log_parsing() -> None:
    assert parse_event("12:00:00.1 - INFO - Executing task \x1b[96m'load'\x1b[0m").task == "load"
    finished = parse_event(
        "Task \x1b[96m'split'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m"
    )
    assert finished is not None
    assert finished.status == "FAILURE"
    assert parse_event("Task train cache hit (key=abc); skipping execution.").status == "CACHED"
    log = "x\n    InvalidDataError: too many rows\n    line 3: bad\n12:00:00.100 - ERROR - Task\n"
    assert failure_excerpt(log) == "InvalidDataError: too many rows\nline 3: bad"


def test_parquet_datasets_become_canonical_csv(tmp_path: object) -> None:
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(str(tmp_path)) / "flowers.parquet"
    table = pa.table({"a": [1.0, 2.5, None], "b": [3.0, 4.0, 5.0], "label": ["x", "y", "x"]})
    pq.write_table(table, path)
    schema = DatasetSchema(
        features=[FeatureSchema(name="a", nullable=True), FeatureSchema(name="b")],
        label="label",
        classes=["x", "y"],
    )
    raw = datasets.load_file(path, schema)
    assert raw.name == "flowers"
    assert raw.csv_bytes.decode().splitlines() == ["a,b,label", "1.0,3.0,x", "2.5,4.0,y", ",5.0,x"]
    valid = validation.validate(raw.csv_bytes, schema)
    assert valid.features.shape == (3, 2)
    assert np.isnan(valid.features[2, 0])  # a nullable missing value is kept, imputed in training


def test_the_model_types_the_cli_checks_are_the_ones_training_builds() -> None:
    assert tuple(models.ESTIMATORS) == choices.MODEL_TYPES
    assert tuple(search.SCORERS) == choices.SEARCH_METRICS
