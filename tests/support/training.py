"""Registering models for tests: training in a subprocess, as a user's run would,
into a given MLPATTERNS_HOME, and the aliases most tests serve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mlpatterns.registry.registry import Registry
from mlpatterns.settings import load_settings


def train(home: Path, *requests: dict[str, str]) -> list[str]:
    """Run `run_directly` for each request (TrainingRequest fields); the versions."""
    code = (
        "import json, sys\n"
        "from mlpatterns.training.steps import TrainingRequest, run_directly\n"
        "for request in json.loads(sys.argv[1]):\n"
        "    print(run_directly(TrainingRequest(**request)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(list(requests))],
        env={**os.environ, "MLPATTERNS_HOME": str(home)},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return out.stdout.split()[-len(requests) :]


LOGISTIC = {"dataset": "iris", "name": "iris"}
FOREST = {"dataset": "iris", "name": "iris", "model_type": "random_forest"}


def aliased_iris(home: Path, **more: dict[str, str]) -> dict[str, str]:
    """Train iris@production (logistic regression, the default), iris@candidate (a
    random forest: agrees on about 95% of rows) and one model per further alias (its
    TrainingRequest fields) into `home`'s registry; the versions by alias."""
    aliases = {"production": LOGISTIC, "candidate": FOREST, **more}
    versions = dict(zip(aliases, train(home, *aliases.values()), strict=True))
    registry = Registry.from_settings(load_settings(home=home))
    for alias, version in versions.items():
        registry.move_alias("iris", alias, version)
    return versions


STACKED = ["p_setosa", "p_versicolor", "p_virginica"]


def stacked_iris(home: Path) -> str:
    """iris-stacked@production: a model whose inputs are iris@production's three
    probabilities (the second step of a sequence), trained on them for iris' rows;
    its version."""
    from sklearn.datasets import load_iris

    from mlpatterns.training.datasets import write_csv
    from mlpatterns.training.export import predict_proba

    registry = Registry.from_settings(load_settings(home=home))
    first = registry.read_file(registry.resolve("models:/iris@production"))
    data = load_iris()
    probabilities = predict_proba(first, data.data).tolist()
    labels = [str(data.target_names[i]) for i in data.target]
    folder = home / "stacked"
    folder.mkdir(parents=True, exist_ok=True)
    rows = [[*p, label] for p, label in zip(probabilities, labels, strict=True)]
    (folder / "iris-probabilities.csv").write_bytes(write_csv([*STACKED, "label"], rows))
    schema = {
        "features": [{"name": n, "minimum": 0, "maximum": 1} for n in STACKED],
        "label": "label",
        "classes": [str(c) for c in data.target_names],
    }
    (folder / "schema.json").write_text(json.dumps(schema))
    request = {
        "dataset": str(folder / "iris-probabilities.csv"),
        "name": "iris-stacked",
        "schema_file": str(folder / "schema.json"),
    }
    [version] = train(home, request)
    registry.move_alias("iris-stacked", "production", version)
    return version
