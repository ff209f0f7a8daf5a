"""The gateway in front of two real model servers: splits, stickiness, rules, shadow
isolation, and routes reloaded live under load."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.integration.test_model_server import Server, start_server
from tests.support.load import steady_load
from tests.support.metrics import sample, scrape
from tests.support.processes import die_with_parent, free_port, http_ok, wait_until
from tests.support.training import train

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("data_plane")]
MLPATTERNS = str(Path(sys.executable).with_name("mlpatterns"))
ROW = {"data": [[5.9, 3.0, 4.2, 1.5]]}


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    home = tmp_path_factory.mktemp("gateway-home")
    svc_version, rf_version = train(
        home,
        {"dataset": "iris", "name": "iris"},
        {"dataset": "iris", "name": "iris", "model_type": "random_forest"},
    )
    servers = {
        "svc": start_server(home, f"models:/iris/{svc_version}", "--no-log-predictions"),
        "rf": start_server(home, f"models:/iris/{rf_version}", "--no-log-predictions"),
    }
    yield servers
    for server in servers.values():
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGCONT)
            server.stop()


def write(path: Path, traffic: dict[str, object], rf_active: bool = True) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "mlpatterns.io/v1alpha1",
                "kind": "ModelService",
                "metadata": {"name": "iris"},
                "spec": {
                    "versions": [
                        {"name": "svc", "model": {"uri": "models:/iris@candidate"}},
                        {
                            "name": "rf",
                            "model": {"uri": "models:/iris@candidate"},
                            "parameters": {"active": rf_active},
                        },
                    ],
                    "traffic": traffic,
                },
            }
        )
    )


def start_gateway(
    spec: Path,
    upstreams: dict[str, str],
    home: Path,
    env: dict[str, str] | None = None,
    stderr: Path | None = None,
    *options: str,
) -> tuple[str, subprocess.Popen[bytes]]:
    """`mlpatterns serve gateway` for `spec` with `options`, its logs under `home`, its own
    log (standard error) in `stderr` if given."""
    port = free_port()
    command = [MLPATTERNS, "serve", "gateway", "-f", str(spec), "--port", str(port), *options]
    for version, url in upstreams.items():
        command += ["--upstream", f"{version}={url}"]
    process = subprocess.Popen(
        command,
        env={**os.environ, "MLPATTERNS_HOME": str(home), **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=stderr.open("wb") if stderr else subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until("gateway", lambda: http_ok(f"{url}/-/health"), 60)
    return url, process


@pytest.fixture
def gateway(two_versions: dict[str, Server], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    spec = tmp_path / "iris.yaml"
    write(spec, {"split": [{"version": "svc", "weight": 70}, {"version": "rf", "weight": 30}]})
    upstreams = {name: server.url for name, server in two_versions.items()}
    url, process = start_gateway(spec, upstreams, tmp_path)
    yield url, spec
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def versions(url: str, count: int, headers: dict[str, str] | None = None) -> Counter[str]:
    with httpx.Client(base_url=url) as client:
        return Counter(
            client.post("/predict", json=ROW, headers=headers or {}).headers["x-mlpatterns-version"]
            for _ in range(count)
        )


def wait_for_routes(url: str, expected: dict[str, int]) -> None:
    def applied() -> bool:
        routes = httpx.get(f"{url}/-/routes").json()["routes"]
        return bool(routes[-1]["destinations"] == expected)

    wait_until("reloaded routes", applied, 15)


def test_split_share_and_answers(gateway: tuple[str, Path], data_plane: str) -> None:
    url, _ = gateway
    assert httpx.get(f"{url}/-/health").json() == {"status": "ok", "data_plane": data_plane}
    seen = versions(url, 1000)
    assert set(seen) == {"svc", "rf"}
    assert abs(seen["rf"] / 1000 - 0.30) < 0.06  # binomial sd 1.45%: about 4 of them
    answer = httpx.post(f"{url}/predict", json=ROW, headers={"x-request-id": "gw-1"})
    assert answer.headers["x-request-id"] == "gw-1"
    assert answer.headers["x-mlpatterns-model-version"].startswith("0.1.")
    families = scrape(url)
    counted = {
        (s.labels["route"], s.labels["version"], s.labels["status"]): s.value
        for s in families["mlpatterns_gateway_requests"].samples
        if s.name.endswith("_total")
    }
    assert counted[("default", "rf", "200")] + counted[("default", "svc", "200")] >= 1001
    overhead = families["mlpatterns_gateway_overhead_seconds"].samples
    assert sample(families, "mlpatterns_gateway_overhead_seconds_count", service="iris") >= 1001
    assert {"5e-05", "0.0001"} <= {s.labels["le"] for s in overhead if "le" in s.labels}
    assert "process_resident_memory_bytes" in families


def test_sticky_users_and_header_rules(gateway: tuple[str, Path]) -> None:
    url, spec = gateway
    write(
        spec,
        {
            "rules": [
                {"match": {"headers": {"x-region": {"exact": "eu"}}}, "route": [{"version": "rf"}]}
            ],
            "split": [{"version": "svc", "weight": 50}, {"version": "rf", "weight": 50}],
            "sticky": {"header": "x-user-id"},
        },
    )
    wait_for_routes(url, {"svc": 50, "rf": 50})
    for user in range(30):
        assert len(versions(url, 10, {"x-user-id": f"u{user}"})) == 1  # never changes version
    assert versions(url, 20, {"x-region": "eu", "x-user-id": "u1"}) == Counter({"rf": 20})


def test_kill_switch_and_live_reload_under_load_drop_nothing(gateway: tuple[str, Path]) -> None:
    url, spec = gateway
    with steady_load(url, ROW) as failures:
        write(spec, {"split": [{"version": "svc", "weight": 90}, {"version": "rf", "weight": 10}]})
        wait_for_routes(url, {"svc": 90, "rf": 10})
        write(
            spec,
            {"split": [{"version": "svc", "weight": 90}, {"version": "rf", "weight": 10}]},
            rf_active=False,
        )
        wait_for_routes(url, {"svc": 100})
    assert failures == []
    assert versions(url, 200) == Counter({"svc": 200})  # switched off: no traffic at once


def test_a_broken_shadow_never_reaches_the_client(
    gateway: tuple[str, Path], two_versions: dict[str, Server]
) -> None:
    url, spec = gateway
    write(
        spec,
        {"split": [{"version": "svc", "weight": 100}], "shadow": {"version": "rf", "percent": 100}},
    )
    wait_until(
        "shadow configured",
        lambda: httpx.get(f"{url}/-/routes").json()["shadow"] == ["rf", 100.0],
        15,
    )
    two_versions["rf"].process.send_signal(signal.SIGSTOP)  # the shadow hangs
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            answers = [client.post("/predict", json=ROW) for _ in range(100)]
    finally:
        two_versions["rf"].process.send_signal(signal.SIGCONT)
    assert {a.status_code for a in answers} == {200}
    assert {a.headers["x-mlpatterns-version"] for a in answers} == {"svc"}
    metrics = httpx.get(f"{url}/metrics").text
    assert "mlpatterns_gateway_mirror_drops_total" in metrics


def test_a_dead_shadow_stops_receiving_copies(
    two_versions: dict[str, Server], tmp_path: Path
) -> None:
    spec = tmp_path / "iris.yaml"
    write(
        spec,
        {"split": [{"version": "svc", "weight": 100}], "shadow": {"version": "rf", "percent": 100}},
    )
    refusing = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    url, process = start_gateway(spec, {"svc": two_versions["svc"].url, "rf": refusing}, tmp_path)
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            answers = [client.post("/predict", json=ROW) for _ in range(200)]

        def shadow_counts() -> dict[str, float]:
            return {
                sample.name: sample.value
                for family in scrape(url).values()
                for sample in family.samples
                if sample.name.startswith("mlpatterns_gateway_shadow_")
                and sample.name.endswith("_total")
            }

        # the last copies may still be failing when the last answer is back
        wait_until("every copy accounted for", lambda: sum(shadow_counts().values()) == 200, 10)
        metrics = shadow_counts()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert {a.status_code for a in answers} == {200}
    errors = metrics["mlpatterns_gateway_shadow_errors_total"]
    skipped = metrics["mlpatterns_gateway_shadow_skipped_total"]
    # five failures open the circuit; a probe a second at most after that
    assert 5 <= errors < 20
    assert errors + skipped == 200


def test_oversized_bodies_query_strings_and_unknown_paths(gateway: tuple[str, Path]) -> None:
    url, _ = gateway
    too_big = httpx.post(f"{url}/predict", content=b"x" * (4 << 20 | 1))
    assert too_big.status_code == 413
    assert "the limit is 4194304" in too_big.json()["error"]
    with_query = httpx.post(f"{url}/predict?trace=1", json=ROW, headers={"x-request-id": "q-1"})
    assert with_query.status_code == 200
    assert with_query.headers["x-request-id"] == "q-1"
    missing = httpx.get(f"{url}/no/such/path")
    assert missing.status_code == 404  # the model server's answer, passed on
    assert missing.headers["x-mlpatterns-version"] in {"svc", "rf"}


def test_a_failed_request_is_logged_as_json_with_its_request_id(tmp_path: Path) -> None:
    spec = tmp_path / "iris.yaml"
    write(spec, {"split": [{"version": "svc", "weight": 100}]})
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    log = tmp_path / "gateway.log"
    url, process = start_gateway(
        spec, {"svc": nobody, "rf": nobody}, tmp_path, None, log, "--access-log"
    )
    try:
        answer = httpx.post(f"{url}/predict", json=ROW, headers={"x-request-id": "req-42"})
        assert answer.status_code == 503
        assert "127.0.0.1" not in answer.text  # the client learns no address; the log does

        def logged() -> list[dict[str, object]]:
            lines = log.read_text().splitlines()
            return [json.loads(line) for line in lines if line.startswith("{")]

        def both() -> bool:
            return len([r for r in logged() if r.get("request_id") == "req-42"]) == 2

        wait_until("the failure and its access line logged", both, 10)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    record, access = [r for r in logged() if r.get("request_id") == "req-42"]
    assert (access["logger"], access["status"]) == ("mlpatterns.access", 503)
    assert access["message"].startswith("POST /predict 503 ")
    assert record["level"] == "warning"
    assert record["logger"] == "mlpatterns.gateway"
    assert "version svc" in str(record["message"])
    assert nobody in str(record["message"])
