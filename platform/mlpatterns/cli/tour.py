"""The quickstart's serving tour, on this machine with no cluster: the current iris
model serving with the challenger in shadow, then a 90/10 online A/B test with
sticky users and feedback, each followed by its report. Every step goes through
the same parts a user runs (`up`'s runtime, `traffic set`'s edits, the gateway's
`/feedback`, `report`)."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from mlpatterns.api.edits import apply_changes
from mlpatterns.api.load import dump_model_service, parse_model_service
from mlpatterns.cli.report import print_ab, print_shadow
from mlpatterns.logstreams import Place, Stream
from mlpatterns.monitoring import html
from mlpatterns.monitoring.coverage import utc_time
from mlpatterns.monitoring.reports import ab_report, shadow_report

__all__ = ["SERVICE", "iris_rows", "run_tour", "tour_service"]

SERVICE = "iris-quickstart"


def tour_service() -> dict[str, object]:
    return {
        "apiVersion": "mlpatterns.io/v1alpha1",
        "kind": "ModelService",
        "metadata": {"name": SERVICE},
        "spec": {
            "pattern": "synchronous",
            "versions": [
                {"name": "current", "model": {"uri": "models:/iris@production"}},
                {"name": "challenger", "model": {"uri": "models:/iris@candidate"}},
            ],
            "traffic": {"shadow": {"version": "challenger", "percent": 100}},
        },
    }


def iris_rows(count: int, seed: int = 7) -> list[tuple[list[float], str]]:
    """Live-looking traffic: iris flowers with measurement noise, and their species."""
    from sklearn.datasets import load_iris

    data = load_iris()
    draw = random.Random(seed)  # noqa: S311 (sample traffic, not secrets)
    rows = []
    for _ in range(count):
        index = draw.randrange(len(data.data))
        features = [round(float(x) + draw.gauss(0, 0.25), 2) for x in data.data[index]]
        rows.append((features, str(data.target_names[data.target[index]])))
    return rows


def _send(
    console: Console, client: httpx.Client, title: str, rows: list[tuple[list[float], str]]
) -> list[tuple[httpx.Response, str, str]]:
    answers = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task(title, total=len(rows))
        for number, (features, truth) in enumerate(rows):
            user = f"user-{number % 200}"
            response = client.post(
                "/predict", json={"data": [features]}, headers={"x-user-id": user}
            )
            response.raise_for_status()
            answers.append((response, user, truth))
            progress.advance(bar)
    return answers


def run_tour(
    console: Console, home: Path, where: Place, port: int, requests: int, with_pages: bool
) -> list[Path]:
    """Run both QA patterns end to end, the servers writing their logs to `where`;
    the files it wrote (the HTML pages `with_pages`). Records of earlier tours are
    left out by their time."""
    from mlpatterns.local.runtime import embedded

    folder = home / "quickstart"
    folder.mkdir(parents=True, exist_ok=True)
    began = datetime.now(UTC)
    file = folder / "iris-modelservice.yaml"
    service = parse_model_service(tour_service())
    file.write_text(dump_model_service(service))
    console.rule("4. shadow A/B: the challenger sees every request, answers none")
    console.print(f"mlpatterns up -f {file} --port {port}")
    with embedded(file, home, port=port, say=console.print) as running:
        url = running.gateway_url
        assert url is not None
        with httpx.Client(base_url=url, timeout=30) as client:
            _send(console, client, "shadow traffic", iris_rows(requests, seed=1))
            # the model servers flush their logs in batches; give the last one time
            predictions = _wait_for_records(where, began, requests)
            shadow = shadow_report(SERVICE, predictions)
            print_shadow(shadow)
            console.rule("5. online A/B: 90/10 with sticky users, feedback per answer")
            console.print(
                f"mlpatterns traffic set {SERVICE} --no-shadow --split current=90,challenger=10 "
                "--sticky x-user-id"
            )
            started = datetime.now(UTC)
            changed = apply_changes(
                service, split="current=90,challenger=10", no_shadow=True, sticky="x-user-id"
            )
            file.write_text(dump_model_service(changed))
            client.post("/-/reload").raise_for_status()
            answers = _send(console, client, "A/B traffic", iris_rows(requests * 3, seed=2))
            seen: dict[str, set[str]] = defaultdict(set)
            for response, user, truth in answers:
                seen[user].add(response.headers["x-mlpatterns-version"])
                client.post(
                    "/feedback",
                    json={"request_id": response.headers["x-request-id"], "outcome": truth},
                ).raise_for_status()
            moved = sum(1 for versions in seen.values() if len(versions) > 1)
            console.print(f"{len(seen)} users; users who saw more than one version: {moved}")
    ab = ab_report(
        SERVICE,
        where.read(Stream.DECISIONS, SERVICE, started).items,
        where.read(Stream.FEEDBACK, SERVICE, started).items,
        where.read(Stream.PREDICTIONS, SERVICE, started).items,
        control="current",
        since=started,
    )
    print_ab(ab)
    if not with_pages:
        console.print("no HTML pages: their plots need the reports extra (mlpatterns[reports])")
        return [file]
    shadow_html, ab_html = folder / "shadow-report.html", folder / "ab-report.html"
    shadow_html.write_text(html.shadow_page(shadow))
    ab_html.write_text(html.ab_page(ab))
    return [file, shadow_html, ab_html]


def _wait_for_records(
    where: Place, began: datetime, requests: int, timeout: float = 10.0
) -> list[dict[str, object]]:
    """This tour's prediction records, once the shadow's are all written (the servers
    flush their logs in batches), or whatever is there after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        records = [
            r
            for r in where.read(Stream.PREDICTIONS, SERVICE, began).items
            if (when := utc_time(r.get("timestamp"))) is not None and when >= began
        ]
        if sum(1 for r in records if r.get("shadow")) >= requests:
            return records
        if time.monotonic() > deadline:
            return records
        time.sleep(0.2)
