"""The parameter-search steps as plain functions over files and strings: what the
`parameter_search` pipeline's components call (plan, one trial, select)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from mlpatterns.registry.registry import Registry
from mlpatterns.settings import load_settings
from mlpatterns.training import search
from mlpatterns.training.space import SearchSpaceError, expand
from mlpatterns.training.steps import StrPath, read_table

__all__ = ["plan_step", "select_step", "trial_step"]


def plan_step(
    space: str, strategy: str, trials: int, seed: int, time_budget_seconds: float
) -> list[str]:
    """Each trial as a JSON string: its index, parameters and the search's deadline."""
    try:
        parsed = json.loads(space)
    except json.JSONDecodeError as error:
        raise SearchSpaceError(f"the search space is not JSON: {error}") from None
    planned = expand(parsed, strategy, trials, seed)
    deadline = time.time() + time_budget_seconds if time_budget_seconds > 0 else None
    # One id shared by every trial (kfp's own run names differ per loop iteration),
    # under which trials see each other's results in the store.
    search_id = f"search-{uuid.uuid4().hex[:12]}"
    return [
        json.dumps({"search_id": search_id, "index": i, "parameters": p, "deadline": deadline})
        for i, p in enumerate(planned)
    ]


def trial_step(
    train: StrPath,
    schema: StrPath,
    trial: str,
    model_type: str,
    metric: str,
    seed: int,
    target: str,
) -> str:
    """Run one trial; its result (ok, failed or skipped) as a JSON string. Never raises."""
    planned: dict[str, Any] = json.loads(trial)
    result = search.run_trial(
        Registry.from_settings(load_settings()),
        planned["search_id"],
        planned["index"],
        planned["parameters"],
        read_table(train, schema),
        default_model_type=model_type,
        metric=metric,
        seed=seed,
        deadline=planned["deadline"],
        target=float(target) if target else None,
    )
    return json.dumps(result, sort_keys=True, default=str)


def select_step(results: list[str], metric: str, table: StrPath) -> tuple[str, str]:
    """The best trial's model type and parameters (JSON); every trial goes to `table`."""
    parsed = sorted((json.loads(r) for r in results), key=lambda r: r["index"])
    Path(table).write_text(json.dumps(parsed, indent=2, sort_keys=True))
    best = search.best_trial(parsed, metric)
    summary = {"metric": metric, "best": best, "trials": parsed, "finished_at": time.time()}
    registry = Registry.from_settings(load_settings())
    registry.store.put(
        f"searches/{best['search_id']}/summary.json",
        json.dumps(summary, indent=2, sort_keys=True, default=str).encode(),
    )
    return best["model_type"], json.dumps(best["parameters"], sort_keys=True)
