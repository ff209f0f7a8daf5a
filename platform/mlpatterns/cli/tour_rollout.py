"""The quickstart's last step, training to serving: the training_to_serving pipeline
trains a new model, gates it and hands it over as iris@candidate; a ModelService
with `spec.rollout` then takes it from a shadow to all traffic in steps, analysed
on live traffic, and promotes it to iris@production, or rolls it back."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
from rich.console import Console

from mlpatterns.api.load import dump_model_service, parse_model_service
from mlpatterns.api.modelservice import ModelService
from mlpatterns.api.rollout import TERMINAL, RolloutStatus
from mlpatterns.cli import training
from mlpatterns.cli.rollout import print_rollout
from mlpatterns.cli.tour import iris_rows
from mlpatterns.files import read_if_present

__all__ = ["ROLLOUT_SERVICE", "rollout_service", "run_rollout"]

ROLLOUT_SERVICE = "iris-rollout"
TRAINING_TO_SERVING_TASKS = 8


def rollout_service() -> ModelService:
    return parse_model_service(
        {
            "apiVersion": "mlpatterns.io/v1alpha1",
            "kind": "ModelService",
            "metadata": {"name": ROLLOUT_SERVICE},
            "spec": {
                "versions": [
                    {"name": "current", "model": {"uri": "models:/iris@production"}},
                    {"name": "challenger", "model": {"uri": "models:/iris@candidate"}},
                ],
                "rollout": {
                    "candidate": "challenger",
                    "steps": [
                        {"shadow": True, "requests": 60},
                        {"weight": 10, "requests": 15},
                        {"weight": 50, "requests": 40},
                        {"weight": 100, "requests": 20},
                    ],
                    "analysis": {
                        "intervalSeconds": 2,
                        "minRequests": 10,
                        "failureLimit": 1,
                        "maxErrorRate": 0.01,
                        "maxLatencyP99Seconds": 1.0,
                        "minShadowAgreement": 0.8,
                    },
                    "promoteAlias": "production",
                },
            },
        }
    )


def run_rollout(console: Console, home: Path, port: int, limit: float = 180.0) -> Path:
    """Train and hand over a candidate, then roll it out under traffic until the
    rollout ends (or `limit` seconds); the ModelService file it wrote."""
    from mlpatterns.local.rollout import status_path
    from mlpatterns.local.runtime import embedded
    from mlpatterns.rollout.status import parse_status

    console.rule("6. training to serving: a new candidate, rolled out step by step")
    arguments = training.batch_training_arguments(
        "iris", name="iris", model="gradient_boosting", gate="accuracy>=0.9"
    )
    handed = training.run_with_progress(
        "training_to_serving", arguments, TRAINING_TO_SERVING_TASKS, 1, True
    )
    console.print(f"training_to_serving: {handed}")
    service = rollout_service()
    file = home / "quickstart" / "iris-rollout.yaml"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(dump_model_service(service))
    console.print(f"mlpatterns up -f {file} --port {port}")
    status: RolloutStatus | None = None
    with embedded(file, home, port=port, say=console.print) as running:
        stopping = threading.Event()
        supervising = threading.Thread(target=running.supervise, args=(stopping,), daemon=True)
        supervising.start()
        deadline = time.monotonic() + limit
        rows = iris_rows(20_000, seed=3)
        with httpx.Client(base_url=running.gateway_url or "", timeout=30) as client:
            for features, _ in rows:
                client.post("/predict", json={"data": [features]}).raise_for_status()
                status = parse_status(read_if_present(status_path(home, ROLLOUT_SERVICE)))
                if (status and status.phase in TERMINAL) or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
        stopping.set()
        supervising.join(timeout=10)
    print_rollout(service, status)
    return file
