"""Parameter and architecture search: a space, N trials, every trial recorded, the best kept.

A space maps each parameter to a list of choices or a range:

    {"model_type": ["logreg", "svc"],                  # architecture: a searchable choice
     "C": {"low": 0.01, "high": 100, "log": true},     # range: sampled, or `num` grid points
     "kernel": ["rbf", "linear"]}

Trials stop being started when the count is reached, the time budget is spent, or a
finished trial met the target; a trial that fails is recorded as failed and the
search goes on. Trials share their results through the registry's store, which is
how parallel trials learn that a target was met.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold, cross_val_score

from mlpatterns.registry.registry import Registry
from mlpatterns.training import models
from mlpatterns.training.space import SearchSpaceError
from mlpatterns.training.validation import ValidTable

__all__ = [
    "LOWER_IS_BETTER",
    "SCORERS",
    "best_trial",
    "run_trial",
    "trial_results",
]

LOWER_IS_BETTER = {"log_loss"}
SCORERS = {"accuracy": "accuracy", "f1_macro": "f1_macro", "log_loss": "neg_log_loss"}


def _better(metric: str, a: float, b: float) -> bool:
    return a < b if metric in LOWER_IS_BETTER else a > b


def _target_met(metric: str, value: float, target: float | None) -> bool:
    if target is None:
        return False
    return value <= target if metric in LOWER_IS_BETTER else value >= target


def run_trial(
    registry: Registry,
    search_id: str,
    index: int,
    trial: dict[str, Any],
    table: ValidTable,
    *,
    default_model_type: str,
    metric: str,
    seed: int,
    deadline: float | None = None,
    target: float | None = None,
    folds: int = 3,
) -> dict[str, Any]:
    """Score one trial by cross-validation on the training rows. Never raises: a
    failure is a result with status `failed` and the error."""
    params = dict(trial)
    model_type = params.pop("model_type", default_model_type)
    result: dict[str, Any] = {
        "search_id": search_id,
        "index": index,
        "model_type": model_type,
        "parameters": params,
    }
    earlier = trial_results(registry, search_id)
    started = time.time()
    if deadline is not None and started > deadline:
        result.update(status="skipped", reason="the search's time budget was spent")
    elif any(r["status"] == "ok" and _target_met(metric, r["metric"], target) for r in earlier):
        result.update(status="skipped", reason=f"another trial already met the target {target}")
    else:
        try:
            if metric not in SCORERS:
                raise SearchSpaceError(f"metric {metric!r} not one of {sorted(SCORERS)}")
            pipeline = models.build(model_type, params, seed)
            splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
            scores = cross_val_score(
                pipeline,
                table.features,
                table.labels,
                cv=splitter,
                scoring=SCORERS[metric],
                error_score="raise",
            )
            value = float(np.mean(scores))
            result.update(status="ok", metric=-value if metric == "log_loss" else value)
        except Exception as error:  # a trial's failure is data, not a crash of the search
            # the message only: results travel as kfp command arguments, and kfp's local
            # runner rewrites every "python3" in those (tracebacks' paths included)
            result.update(status="failed", error=f"{type(error).__name__}: {error}")
    result["seconds"] = round(time.time() - started, 3)
    key = f"searches/{search_id}/trials/{index:05d}.json"
    registry.store.put(key, json.dumps(result, sort_keys=True, default=str).encode())
    return result


def trial_results(registry: Registry, search_id: str) -> list[dict[str, Any]]:
    keys = registry.store.list(f"searches/{search_id}/trials/")
    return [json.loads(registry.store.get(k).data) for k in keys]


def best_trial(results: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """The best successful trial; an error naming every failure when none succeeded."""
    ok = [r for r in results if r["status"] == "ok"]
    if not ok:
        failures = "; ".join(f"#{r['index']}: {r.get('error', r.get('reason'))}" for r in results)
        raise RuntimeError(f"no trial succeeded: {failures}")
    best = ok[0]
    for candidate in ok[1:]:
        if _better(metric, candidate["metric"], best["metric"]):
            best = candidate
    return best
