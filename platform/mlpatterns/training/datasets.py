"""Datasets: scikit-learn's bundled sets (nothing is downloaded) and the user's CSV or
Parquet files with a declared schema. Every dataset becomes one canonical CSV (the
features, then the label as a class name), which is what the registry snapshots.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlpatterns.registry.metadata import DatasetSchema, FeatureSchema

__all__ = [
    "BUILTIN",
    "DatasetError",
    "RawDataset",
    "load",
    "load_builtin",
    "load_file",
    "load_schema",
    "write_csv",
]

BUILTIN = ("iris", "breast_cancer", "digits")


@dataclass(frozen=True)
class RawDataset:
    """A dataset before validation: canonical CSV bytes and the schema it must meet."""

    name: str
    csv_bytes: bytes
    schema: DatasetSchema
    source: str


class DatasetError(ValueError):
    pass


def _column_name(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def write_csv(header: list[str], rows: list[list[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def load_builtin(name: str) -> RawDataset:
    """One of scikit-learn's bundled datasets, which ship inside the package."""
    from sklearn import datasets as sk

    loaders: dict[str, Callable[..., Any]] = {
        "iris": sk.load_iris,
        "breast_cancer": sk.load_breast_cancer,
        "digits": sk.load_digits,
    }
    if name not in loaders:
        raise DatasetError(f"unknown built-in dataset {name!r}; choose one of {', '.join(BUILTIN)}")
    bunch = loaders[name]()
    classes = [str(c) for c in bunch.target_names]
    features = [_column_name(str(f)) for f in bunch.feature_names]
    upper = 16.0 if name == "digits" else None  # digits are 4-bit grey levels
    schema = DatasetSchema(
        features=[FeatureSchema(name=f, minimum=0.0, maximum=upper) for f in features],
        label="label",
        classes=classes,
    )
    rows = [
        [repr(float(v)) for v in row] + [classes[int(target)]]
        for row, target in zip(bunch.data, bunch.target, strict=True)
    ]
    # registry names are DNS labels: breast_cancer is registered as breast-cancer
    registered = name.replace("_", "-")
    return RawDataset(registered, write_csv([*features, "label"], rows), schema, f"sklearn:{name}")


def load_schema(path: Path) -> DatasetSchema:
    """A schema file (YAML or JSON): features with dtype and range, the label, its classes."""
    try:
        return DatasetSchema.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError, ValueError) as error:
        raise DatasetError(f"cannot read schema {path}: {error}") from None


def load_file(path: Path, schema: DatasetSchema, name: str | None = None) -> RawDataset:
    """The user's CSV (kept as is) or Parquet (converted to canonical CSV) file."""
    dataset_name = name or _column_name(path.stem).replace("_", "-")
    if path.suffix.lower() == ".parquet":
        return RawDataset(dataset_name, _parquet_to_csv(path), schema, f"file:{path.name}")
    if path.suffix.lower() != ".csv":
        raise DatasetError(f"{path}: only .csv and .parquet files are supported")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DatasetError(f"cannot read {path}: {error}") from None
    return RawDataset(dataset_name, data, schema, f"file:{path.name}")


def _parquet_to_csv(path: Path) -> bytes:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError("reading Parquet needs pyarrow: pip install pyarrow") from None
    table = pq.read_table(path)
    columns = table.column_names
    rows = [["" if v is None else v for v in row.values()] for row in table.to_pylist()]
    return write_csv(columns, rows)


def load(name_or_path: str, schema_path: Path | None = None) -> RawDataset:
    """A built-in dataset by name, or a file with its schema."""
    if name_or_path in BUILTIN:
        return load_builtin(name_or_path)
    if schema_path is None:
        raise DatasetError(
            f"{name_or_path!r} is not a built-in dataset ({', '.join(BUILTIN)}); "
            "for your own file pass --schema with its features, label and classes"
        )
    return load_file(Path(name_or_path), load_schema(schema_path))
