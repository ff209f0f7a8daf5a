"""The batch pattern: `mlpatterns batch predict` as a process, killed mid-run and rerun."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.processes import die_with_parent

pytestmark = pytest.mark.integration
MLPATTERNS = str(Path(sys.executable).with_name("mlpatterns"))
FEATURES = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]
IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def write_rows(
    path: Path,
    count: int,
    extra: list[list[object]] = (),  # type: ignore[assignment]
    id_format: str = "r{}",
) -> None:
    with path.open("w", newline="") as sink:
        writer = csv.writer(sink)
        writer.writerow(["id", *FEATURES])
        for index in range(count):
            writer.writerow([id_format.format(index), *IRIS_ROWS[index % 3]])
        writer.writerows(extra)


def batch(home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [MLPATTERNS, "batch", "predict", "--model", "models:/iris@candidate", *args],
        env={**os.environ, "MLPATTERNS_HOME": str(home), "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=die_with_parent,
    )


def finish(process: subprocess.Popen[str]) -> dict[str, object]:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    summary: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return summary


def count(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as connection:
        total, distinct = connection.execute(
            "SELECT COUNT(*), COUNT(DISTINCT id) FROM predictions"
        ).fetchone()
    return total, distinct


def test_a_rerun_after_a_crash_redoes_only_what_is_missing(
    trained: tuple[Path, str], tmp_path: Path
) -> None:
    home = trained[0]
    rows = 300_000
    source, output = tmp_path / "rows.csv", tmp_path / "predictions.db"
    write_rows(source, rows)
    first = batch(
        home,
        "--input",
        str(source),
        "--output",
        str(output),
        "--chunk-rows",
        "5000",
        "--no-log-predictions",
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill it once some chunks are committed, before the end
        if output.exists():
            try:
                done = count(output)[0]
            except sqlite3.OperationalError:
                done = 0
            if done >= 20_000:
                break
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    committed, _ = count(output)
    assert 0 < committed < rows, "the run ended before it could be interrupted"
    assert committed % 5000 == 0  # whole chunks only: a chunk is one transaction

    summary = finish(
        batch(home, "--input", str(source), "--output", str(output), "--no-log-predictions")
    )
    assert summary["predicted"] == rows - committed
    assert summary["skipped"] == committed
    assert count(output) == (rows, rows)  # every row once, none twice

    again = finish(
        batch(home, "--input", str(source), "--output", str(output), "--no-log-predictions")
    )
    assert again["predicted"] == 0
    forced = finish(
        batch(
            home, "--input", str(source), "--output", str(output), "--force", "--no-log-predictions"
        )
    )
    assert forced["predicted"] == rows
    assert count(output) == (rows, rows)


def test_csv_output_bad_rows_and_prediction_log(trained: tuple[Path, str], tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    for part in ("registry", "cache"):
        os.symlink(trained[0] / part, home / part)
    source, output = tmp_path / "rows.csv", tmp_path / "predictions.csv"
    write_rows(source, 10, extra=[["bad", "x", 1, 2, 3], ["short", 1, 2], ["r1", 1, 1, 1, 1]])
    summary = finish(batch(home, "--input", str(source), "--output", str(output)))
    assert summary == {
        "read": 13,
        "predicted": 10,
        "skipped": 1,
        "rejected": 2,
        "output": str(output),
    }
    with output.open() as written:
        predictions = list(csv.DictReader(written))
    assert [p["id"] for p in predictions] == [f"r{i}" for i in range(10)]
    assert predictions[0]["label"] == "setosa"
    assert set(predictions[0]) == {
        "id",
        "label",
        "p_setosa",
        "p_versicolor",
        "p_virginica",
        "model_version",
    }
    log = home / "logs" / "predictions" / "iris" / "iris.batch.jsonl"
    assert len(log.read_text().splitlines()) == 10
    # a crash mid-append leaves half a line: the rerun drops it and redoes that row
    text = output.read_text()
    output.write_text(text[: text.rfind("r9,")] + "r9,setos")
    rerun = finish(
        batch(home, "--input", str(source), "--output", str(output), "--no-log-predictions")
    )
    assert rerun["predicted"] == 1
    with output.open() as written:
        assert [p["id"] for p in csv.DictReader(written)] == [f"r{i}" for i in range(10)]


def test_sqlite_table_input_and_clear_errors(trained: tuple[Path, str], tmp_path: Path) -> None:
    database = tmp_path / "warehouse.db"
    with sqlite3.connect(database) as connection:
        connection.execute(
            f"CREATE TABLE flowers (id TEXT, {', '.join(f + ' REAL' for f in FEATURES)})"
        )
        connection.executemany(
            "INSERT INTO flowers VALUES (?, ?, ?, ?, ?)",
            [(f"f{i}", *IRIS_ROWS[i % 3]) for i in range(50)],
        )
    summary = finish(
        batch(
            trained[0],
            "--input",
            f"{database}:flowers",
            "--output",
            str(tmp_path / "out.db"),
            "--no-log-predictions",
        )
    )
    assert summary["predicted"] == 50
    missing = batch(
        trained[0], "--input", str(tmp_path / "nope.csv"), "--output", str(tmp_path / "o.db")
    )
    _, err = missing.communicate(timeout=120)
    assert missing.returncode == 1
    assert "does not exist" in err


def parquet_ids(folder: Path) -> list[str]:
    import pyarrow.parquet as pq

    return [str(v) for v in pq.read_table(folder, columns=["id"]).column("id").to_pylist()]


def test_parquet_parts_resume_and_reject_like_the_row_path(
    trained: tuple[Path, str], tmp_path: Path
) -> None:
    home = trained[0]
    rows = 400_000
    source, output = tmp_path / "rows.csv", tmp_path / "predictions.parquet"
    # ids in key order, so that each chunk is selected, predicted and written as soon as
    # it is read: ids out of it ("r10" before "r2") are all read and sorted first, and on
    # a file this small the run would often be over before the kill
    write_rows(source, rows, id_format="r{:09d}")
    first = batch(
        home,
        "--input",
        str(source),
        "--output",
        str(output),
        "--chunk-rows",
        "20000",
        "--no-log-predictions",
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(output.glob("part-*.parquet"))) < 2:
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    committed = len(parquet_ids(output))
    assert 0 < committed < rows, "the run ended before it could be interrupted"
    assert committed % 20000 == 0  # whole parts only
    first_parts = set(output.glob("part-*.parquet"))
    summary = finish(
        batch(
            home,
            "--input",
            str(source),
            "--output",
            str(output),
            "--no-log-predictions",
            "--compression",
            "zstd",
        )
    )
    assert (summary["predicted"], summary["skipped"]) == (rows - committed, committed)
    ids = parquet_ids(output)
    assert len(ids) == len(set(ids)) == rows  # every row once, none twice
    assert not list(output.glob(".part-*"))  # no half-written part is left
    # parts uncompressed by default and compressed as asked read as one table
    codecs = {part: part_codecs(part) for part in output.glob("part-*.parquet")}
    assert {codecs[part] for part in first_parts} == {"UNCOMPRESSED"}
    assert {codecs[part] for part in set(codecs) - first_parts} == {"ZSTD"}

    bad = tmp_path / "bad.csv"
    write_rows(bad, 10, extra=[["bad", "x", 1, 2, 3], ["short", 1, 2], ["r1", 1, 1, 1, 1]])
    checked = finish(
        batch(
            home,
            "--input",
            str(bad),
            "--output",
            str(tmp_path / "b.parquet"),
            "--no-log-predictions",
        )
    )
    assert checked == {
        "read": 13,
        "predicted": 10,
        "skipped": 1,
        "rejected": 2,
        "output": str(tmp_path / "b.parquet"),
    }
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "b.parquet")
    assert table.column_names == [
        "id",
        "label",
        "p_setosa",
        "p_versicolor",
        "p_virginica",
        "model_version",
        "predicted_at",
    ]
    assert table.column("label").to_pylist()[:3] == ["setosa", "virginica", "versicolor"]


def part_codecs(part: Path) -> str:
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(part).metadata
    codecs = {
        metadata.row_group(group).column(column).compression
        for group in range(metadata.num_row_groups)
        for column in range(metadata.num_columns)
    }
    assert len(codecs) == 1, codecs
    return codecs.pop()


@pytest.mark.parametrize(
    ("output", "codec", "complaint"),
    [
        ("out.parquet", "snappy2", "'snappy2' is not a Parquet codec: choose one of none, snappy"),
        ("out.db", "zstd", "compression applies to Parquet parts only"),
    ],
)
def test_a_compression_that_cannot_apply_is_refused_before_reading(
    trained: tuple[Path, str], tmp_path: Path, output: str, codec: str, complaint: str
) -> None:
    source = tmp_path / "rows.csv"
    write_rows(source, 3)
    process = batch(
        trained[0],
        *("--input", str(source), "--output", str(tmp_path / output), "--compression", codec),
    )
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1, (out, err)
    assert complaint in " ".join((out + err).split())
    assert not (tmp_path / output).exists()


def write_input(kind: str, folder: Path, ids: list[str | None]) -> str:
    """The same rows as CSV (an empty field for a missing id), Parquet or a SQLite
    table (nulls)."""
    rows = [IRIS_ROWS[index % 3] for index in range(len(ids))]
    if kind == "csv":
        source = folder / "rows.csv"
        with source.open("w", newline="") as sink:
            writer = csv.writer(sink)
            writer.writerow(["id", *FEATURES])
            writer.writerows(
                ["" if i is None else i, *row] for i, row in zip(ids, rows, strict=True)
            )
        return str(source)
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = {name: [row[n] for row in rows] for n, name in enumerate(FEATURES)}
        pq.write_table(
            pa.table({"id": pa.array(ids, pa.string()), **columns}), folder / "rows.parquet"
        )
        return str(folder / "rows.parquet")
    database = folder / "rows.db"
    with sqlite3.connect(database) as connection:
        connection.execute(f"CREATE TABLE t (id TEXT, {', '.join(f + ' REAL' for f in FEATURES)})")
        connection.executemany(
            "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
            [(i, *row) for i, row in zip(ids, rows, strict=True)],
        )
    return f"{database}:t"


@pytest.mark.parametrize(
    ("kind", "output"),
    [
        ("csv", "out.db"),
        ("csv", "out.parquet"),
        ("parquet", "out.db"),
        ("parquet", "out.parquet"),
        ("sqlite", "out.db"),
    ],
)
def test_rows_without_an_id_are_rejected_alike_on_both_paths(
    trained: tuple[Path, str], tmp_path: Path, kind: str, output: str
) -> None:
    """Before, the row path read a null id as the text "None" (and an empty CSV field
    as the id ""): the first such row was predicted under it, the others skipped as
    repeats, with nothing said. "NA" is an id like any other."""
    from mlpatterns.registry.registry import Registry
    from mlpatterns.serving.batch import predict_batch
    from mlpatterns.serving.model import LoadedModel
    from mlpatterns.settings import load_settings

    registry = Registry.from_settings(load_settings(home=trained[0]))
    registry.fetch(f"models:/iris/{trained[1]}", tmp_path / "model")
    source = write_input(kind, tmp_path, ["r0", None, "NA", "r2", None, "r0"])
    result = predict_batch(LoadedModel(tmp_path / "model"), source, tmp_path / output)
    assert (result.read, result.predicted, result.skipped) == (6, 3, 1)
    assert result.rejected == {"<row 2>": "has no id", "<row 5>": "has no id"}


@pytest.mark.parametrize("logged", [True, False])
def test_parts_hold_each_ids_first_prediction_on_a_first_run_and_a_rerun(
    trained: tuple[Path, str], tmp_path: Path, logged: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ids out of key order are all read and sorted before the first chunk is selected;
    each chunk waits for its selection, and each id's row in the parts holds the
    prediction of that id's first row (every row's features different), on a first
    run and on a rerun that finds some done; the prediction log is handed the same."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlpatterns.registry.registry import Registry
    from mlpatterns.serving.batch import ids as batch_ids
    from mlpatterns.serving.batch import predict_batch
    from mlpatterns.serving.model import LoadedModel, Prediction
    from mlpatterns.settings import load_settings

    # Timing, which no input can set: selecting is held back, so that the features are
    # read well ahead of their selection, and predicting must wait for it.
    decide = batch_ids.first_occurrences

    def slow_decide(ids: object) -> object:
        time.sleep(0.2)
        return decide(ids)  # type: ignore[arg-type]

    monkeypatch.setattr(batch_ids, "first_occurrences", slow_decide)
    registry = Registry.from_settings(load_settings(home=trained[0]))
    registry.fetch(f"models:/iris/{trained[1]}", tmp_path / "model")
    model = LoadedModel(tmp_path / "model")
    rows = np.random.default_rng(7).uniform(0.1, 7.9, size=(13, 4)).astype(np.float32)
    # out of key order from the second id, repeats within and across chunks of 3
    ids = ["c", "a", "b", "a", "d", "c", "e", "b", "f", "g", "h", "a", "i"]

    handed: dict[str, tuple[list[float], str]] = {}  # what the prediction log is handed

    def log(chunk_ids: list[str], matrix: np.ndarray, prediction: Prediction) -> None:
        for row_id, row, label in zip(chunk_ids, matrix, prediction.labels, strict=True):
            assert row_id not in handed
            handed[row_id] = (row.tolist(), label)

    def run(count: int) -> tuple[int, int, int]:
        source = tmp_path / f"rows{count}.parquet"
        columns = {name: rows[:count, n] for n, name in enumerate(FEATURES)}
        pq.write_table(pa.table({"id": ids[:count], **columns}), source)
        output = tmp_path / "out.parquet"
        result = predict_batch(
            model, str(source), output, chunk_rows=3, on_prediction=log if logged else None
        )
        return result.read, result.predicted, result.skipped

    def written() -> dict[str, tuple[str, list[float]]]:
        table = pq.read_table(tmp_path / "out.parquet").to_pylist()
        return {r["id"]: (r["label"], [r[f"p_{c}"] for c in model.labels]) for r in table}

    def expected(count: int) -> dict[str, tuple[str, list[float]]]:
        labels, probabilities = model.session.run(None, {model.input_name: rows[:count]})
        first = {row_id: ids.index(row_id) for row_id in ids[:count]}
        return {i: (str(labels[at]), probabilities[at].tolist()) for i, at in first.items()}

    assert run(10) == (10, 7, 3)  # a first run
    assert written().keys() == expected(10).keys()
    for row_id, (label, probabilities) in expected(10).items():
        assert written()[row_id][0] == label
        assert written()[row_id][1] == pytest.approx(probabilities, abs=1e-6)
    assert run(13) == (13, 2, 11)  # a rerun: h and i are new
    assert {k: v[0] for k, v in written().items()} == {k: v[0] for k, v in expected(13).items()}
    first_rows = {row_id: rows[ids.index(row_id)].tolist() for row_id in ids}
    by_log = {i: (first_rows[i], label) for i, (label, _) in expected(13).items()}
    assert handed == (by_log if logged else {})
    assert not list((tmp_path / "out.parquet").glob(".part-*"))  # no temporary part left


@pytest.mark.parametrize("output", ["o.db", "o.csv", "o.parquet"])
@pytest.mark.parametrize("source", ["nope.csv", "nope.parquet", "nope.db:flowers"])
def test_a_refused_input_writes_nothing(
    trained: tuple[Path, str], tmp_path: Path, source: str, output: str
) -> None:
    """A missing input leaves no output database and no empty log behind."""
    home = tmp_path / "home"
    (home / "registry").parent.mkdir(parents=True)
    (home / "registry").symlink_to(trained[0] / "registry")
    work = tmp_path / "work"
    work.mkdir()
    refused = batch(home, "--input", str(work / source), "--output", str(work / output))
    _, err = refused.communicate(timeout=120)
    assert refused.returncode == 1
    assert "does not exist" in err
    assert list(work.iterdir()) == []
    assert not (home / "logs").exists()
