"""The loading-test pattern: a ModelService's `loadTest` run with vegeta, a well-kept
HTTP load generator (a constant rate, or a fixed number of workers sending in turn),
its report read and each threshold judged.

The pure parts build vegeta's target and arguments and judge its JSON report; `run`
is the one side effect: it starts `vegeta attack | vegeta report`, bounded by the
test's duration.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpatterns.api.loadtest import LoadTest, LoadThresholds

__all__ = [
    "LoadResult",
    "LoadTestError",
    "Verdict",
    "attack_argv",
    "find_vegeta",
    "parse_report",
    "run",
    "target_text",
    "verdicts",
]

NANOSECONDS_PER_MS = 1_000_000


class LoadTestError(RuntimeError):
    pass


@dataclass(frozen=True)
class LoadResult:
    requests: int
    rate: float  # requests sent per second
    throughput: float  # successful answers per second
    success_ratio: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    status_codes: dict[str, int]
    errors: list[str]


@dataclass(frozen=True)
class Verdict:
    measure: str
    threshold: str
    value: str
    passed: bool


def target_text(url: str, test: LoadTest, body: Path) -> str:
    """vegeta's HTTP target: the request line, its header, and the body's file."""
    return f"POST {url.rstrip('/')}{test.path}\nContent-Type: application/json\n@{body}\n"


def attack_argv(vegeta: str, test: LoadTest, targets: Path) -> list[str]:
    """`vegeta attack` at the test's rate, or with its number of workers and no rate."""
    load = (
        [f"-rate={test.rate}/s"]
        if test.rate is not None
        else ["-rate=0", f"-workers={test.concurrency}", f"-max-workers={test.concurrency}"]
    )
    return [
        vegeta,
        "attack",
        f"-targets={targets}",
        f"-duration={test.duration_seconds:g}s",
        f"-timeout={test.timeout_seconds:g}s",
        *load,
    ]


def parse_report(text: str) -> LoadResult:
    """vegeta's `report -type=json` as a LoadResult (latencies are in nanoseconds)."""
    report: dict[str, Any] = json.loads(text)
    latencies = report["latencies"]
    return LoadResult(
        requests=int(report["requests"]),
        rate=float(report["rate"]),
        throughput=float(report["throughput"]),
        success_ratio=float(report["success"]),
        p50_ms=latencies["50th"] / NANOSECONDS_PER_MS,
        p90_ms=latencies["90th"] / NANOSECONDS_PER_MS,
        p99_ms=latencies["99th"] / NANOSECONDS_PER_MS,
        max_ms=latencies["max"] / NANOSECONDS_PER_MS,
        status_codes={str(k): int(v) for k, v in (report.get("status_codes") or {}).items()},
        errors=[str(e) for e in report.get("errors") or []],
    )


def verdicts(result: LoadResult, thresholds: LoadThresholds) -> list[Verdict]:
    """Each threshold the spec sets, judged against the result."""
    rows = [  # measure, threshold, value, at most (else at least), unit, digits
        ("p50", thresholds.p50_ms, result.p50_ms, True, " ms", 2),
        ("p99", thresholds.p99_ms, result.p99_ms, True, " ms", 2),
        ("success ratio", thresholds.min_success_ratio, result.success_ratio, False, "", 4),
        ("throughput", thresholds.min_throughput, result.throughput, False, "/s", 1),
    ]
    judged = []
    for measure, limit, value, at_most, unit, digits in rows:
        if limit is None:
            continue
        passed = value <= limit if at_most else value >= limit
        sign = "<=" if at_most else ">="
        judged.append(
            Verdict(measure, f"{sign} {limit:g}{unit}", f"{value:.{digits}f}{unit}", passed)
        )
    return judged


def find_vegeta() -> str:
    found = shutil.which("vegeta")
    if found is None:
        raise LoadTestError(
            "vegeta is not on PATH: `go install github.com/tsenart/vegeta/v12@v12.13.0`, "
            "or in this repository `hack/tools build vegeta` and "
            'PATH="$(hack/tools path):$PATH"'
        )
    return found


def run(url: str, test: LoadTest, folder: Path, vegeta: str | None = None) -> LoadResult:
    """Load `url` as `test` says and read vegeta's report (files go to `folder`)."""
    binary = vegeta or find_vegeta()
    body = folder / "body.json"
    body.write_text(json.dumps(test.body))
    targets = folder / "targets.txt"
    targets.write_text(target_text(url, test, body))
    limit = test.duration_seconds + test.timeout_seconds + 30
    try:
        attack = subprocess.run(
            attack_argv(binary, test, targets), capture_output=True, timeout=limit, check=False
        )
        if attack.returncode != 0:
            raise LoadTestError(f"vegeta attack failed: {attack.stderr.decode().strip()}")
        report = subprocess.run(
            [binary, "report", "-type=json"],
            input=attack.stdout,
            capture_output=True,
            timeout=60,
            check=True,
        )
    except subprocess.TimeoutExpired:
        raise LoadTestError(f"vegeta did not finish within {limit:g} s") from None
    except subprocess.CalledProcessError as error:
        raise LoadTestError(f"vegeta report failed: {error.stderr.decode().strip()}") from None
    return parse_report(report.stdout.decode())
