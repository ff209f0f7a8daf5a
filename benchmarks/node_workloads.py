"""The job-shaped workloads on a real node against their peers on this machine (a test
cluster of its own, root):

1. asynchronous jobs/s: 500 jobs submitted by four clients until every one is done,
   through the cluster's Service (API pods, worker pods, the chart's Redis) against
   `mlpatterns up` of the same ModelService (its SQLite queue), in alternating rounds;
2. batch rows/s: four million rows from MinIO to Parquet parts in MinIO, a Job made
   from the batch CronJob (creation to completion) against `mlpatterns batch predict`
   run here on the same objects (process start to exit), in alternating rounds;
3. training to serving: a Job made from the chart's training CronJob, from its
   creation to its completion, then to the new model answering through a Service
   that serves models:/iris@candidate (the operator looks at the registry every 30 s).

Run:  .venv/bin/python benchmarks/node_workloads.py [--rounds 3]
(builds missing images and tools first; everything it starts is stopped at the end)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.node.conftest import PLATFORM_IMAGES  # noqa: E402
from tests.support.embedded import start_up  # noqa: E402
from tests.support.images import build, import_into_containerd  # noqa: E402
from tests.support.processes import wait_until  # noqa: E402
from tests.support.testcluster import RealCluster  # noqa: E402
from tests.support.training import aliased_iris  # noqa: E402
from tests.support.walkthrough import (  # noqa: E402
    NAMESPACE,
    Walkthrough,
    enable_training,
    fetched_model,
    following,
    install_platform,
    register_models,
)
from tests.support.workloads import (  # noqa: E402
    await_results,
    iris_rows_csv,
    served_version,
    submit_jobs,
)

JOBS, ROWS = 500, 4_000_000
PARTS = "batch/iris-predictions.parquet/"


def report(what: str, unit: str, seen: dict[str, list[float]]) -> None:
    """The medians of two peers measured in alternating rounds, and their ratio in each
    round: its median and range."""
    (first, ours), (second, theirs) = seen.items()
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    print(
        f"{what}: {first} {statistics.median(ours):,.0f} {unit}, "
        f"{second} {statistics.median(theirs):,.0f} {unit}, "
        f"ratio {statistics.median(ratios):.2f} ({min(ratios):.2f} to {max(ratios):.2f})"
    )


def jobs_per_second(url: str) -> float:
    started = time.monotonic()
    jobs = submit_jobs(url, JOBS)
    if len(await_results(url, jobs, 300)) != JOBS:
        raise RuntimeError(f"not every job was done at {url} within 300 s")
    return JOBS / (time.monotonic() - started)


def clear_parts(walk: Walkthrough) -> None:
    minio = walk.minio()
    for found in minio.list_objects("mlpatterns", PARTS, recursive=True):
        minio.remove_object("mlpatterns", str(found.object_name))


def job_seconds(walk: Walkthrough, cron_job: str, name: str) -> float:
    """A Job made from `cron_job`, from its creation to its completion."""
    started = time.monotonic()
    walk.kubectl("create", "job", f"--from=cronjob/{cron_job}", name)

    def complete() -> bool:
        status = walk.get("job", name).get("status", {})
        if status.get("failed"):
            raise RuntimeError(f"job {name} failed: {walk.kubectl('logs', f'job/{name}')}")
        return bool(status.get("succeeded"))

    wait_until(f"job {name} complete", complete, 900)
    return time.monotonic() - started


def host_batch_seconds(walk: Walkthrough, model: Path) -> float:
    home = model.with_name("host-home")
    env = {**os.environ, **walk.env, **walk.s3_env("serving"), "MLPATTERNS_HOME": str(home)}
    started = time.monotonic()
    subprocess.run(
        ["mlpatterns", "batch", "predict", "--model", str(model),
         "--input", "s3://mlpatterns/batch/iris-rows.csv",
         "--output", "s3://mlpatterns/batch/iris-predictions.parquet", "--no-log-predictions"],
        env=env, check=True, capture_output=True, timeout=900,
    )  # fmt: skip
    return time.monotonic() - started


def asynchronous(walk: Walkthrough, home: Path, rounds: int) -> None:
    walk.apply_pattern("asynchronous", "iris-async", answers=202)
    cluster = f"http://{walk.cluster_ip('iris-async')}:8080"
    up = start_up(home, REPO / "manifests/patterns/asynchronous/modelservice.yaml")
    try:
        seen: dict[str, list[float]] = {"cluster": [], "embedded": []}
        for _ in range(rounds):
            seen["cluster"].append(jobs_per_second(cluster))
            seen["embedded"].append(jobs_per_second(up.url))
    finally:
        up.stop()
        walk.kubectl("delete", "modelservice", "iris-async", "--wait=true")
    report(f"asynchronous, {JOBS} jobs", "jobs/s", seen)


def batch(walk: Walkthrough, folder: Path, rounds: int) -> None:
    data = iris_rows_csv(ROWS)
    walk.minio().put_object("mlpatterns", "batch/iris-rows.csv", io.BytesIO(data), len(data))
    model = folder / "production"
    fetched_model(walk, "models:/iris@production", model)
    walk.run("kubectl", "apply", "-n", NAMESPACE, "-k", "manifests/overlays/batch-object-store")
    wait_until("the CronJob", lambda: bool(walk.get("cronjobs")["items"]), 60)
    seen: dict[str, list[float]] = {"job": [], "host": []}
    try:
        for index in range(rounds):
            clear_parts(walk)
            seen["job"].append(ROWS / job_seconds(walk, "iris-batch", f"iris-batch-{index}"))
            clear_parts(walk)
            seen["host"].append(ROWS / host_batch_seconds(walk, model))
    finally:
        walk.kubectl("delete", "modelservice", "iris-batch", "--wait=true")
    report(f"batch, {ROWS:,} rows MinIO to MinIO", "rows/s", seen)


def training(walk: Walkthrough, folder: Path) -> None:
    cron_job = enable_training(walk, folder, "training.params=C=0.5")
    walk.kubectl("apply", "-f", "-", input=json.dumps(following("iris-follow", "candidate")))
    walk.wait_ready("iris-follow")
    url = f"http://{walk.cluster_ip('iris-follow')}:8080"
    before = served_version(url)
    trained = job_seconds(walk, cron_job, "iris-train")
    started = time.monotonic()
    wait_until("the new model answering", lambda: served_version(url) != before, 300)
    answering = time.monotonic() - started
    print(
        f"training to serving: the training Job {trained:.1f} s (creation to completion), "
        f"then {answering:.1f} s to the new model answering "
        f"({trained + answering:.1f} s in all)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlpatterns-bench-") as name:
        folder = Path(name)
        home = folder / "embedded-home"
        aliased_iris(home)
        cluster = RealCluster(folder=folder / "cluster", die_with_parent=True)
        cluster.start()
        try:
            images = build(PLATFORM_IMAGES)
            import_into_containerd(cluster.node.containerd_socket, images)
            walk = Walkthrough(cluster, cluster.plane.tool_environment())
            install_platform(walk, {image.role: image for image in images})
            register_models(walk, folder / "user-home")
            asynchronous(walk, home, args.rounds)
            batch(walk, folder, args.rounds)
            training(walk, folder)
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
