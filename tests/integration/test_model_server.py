"""The ONNX model server as a real process on loopback: both APIs, errors, metrics,
the prediction log on SIGTERM, model load failures and model-in-image."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from mlpatterns.training.export import predict_proba
from tests.support.metrics import sample, scrape
from tests.support.processes import die_with_parent, free_port, http_ok, wait_until

pytestmark = pytest.mark.integration
MLPATTERNS = str(Path(sys.executable).with_name("mlpatterns"))
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    home: Path

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def start_server(home: Path, model: str, *extra: str, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    process = subprocess.Popen(
        [MLPATTERNS, "serve", "model", "--model", model, "--port", str(port), *extra],
        env={**os.environ, "MLPATTERNS_HOME": str(home), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=die_with_parent,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            "model server", lambda: process.poll() is None and http_ok(f"{url}/v2/health/ready"), 60
        )
    except Exception:
        process.kill()
        raise AssertionError(process.communicate()[0]) from None
    return Server(url, process, home)


@pytest.fixture(scope="module")
def server(trained: tuple[Path, str]) -> Iterator[Server]:
    running = start_server(trained[0], "models:/iris@candidate")
    yield running
    running.stop()


def test_open_inference_protocol_v2(server: Server, trained: tuple[Path, str]) -> None:
    version = trained[1]
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/v2/health/live").json() == {"live": True}
        assert client.get("/v2/health/ready").json() == {"ready": True}
        meta = client.get("/v2/models/iris").json()
        assert meta["versions"] == [version]
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
        assert client.get(f"/v2/models/iris/versions/{version}/ready").json()["ready"] is True
        request = {
            "id": "req-7",
            "inputs": [
                {
                    "name": "input",
                    "shape": [3, 4],
                    "datatype": "FP32",
                    "data": [v for row in ROWS for v in row],
                }
            ],
        }
        for path in ("/v2/models/iris/infer", f"/v2/models/iris/versions/{version}/infer"):
            answer = client.post(path, json=request)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["id"] == "req-7"
            assert body["model_version"] == version
            label, probabilities = body["outputs"]
            assert label["data"] == ["setosa", "virginica", "versicolor"]
            assert probabilities["shape"] == [3, 3]
    model_file = trained[0] / "cache" / "models"
    [folder] = list(model_file.iterdir())
    expected = predict_proba((folder / "model.onnx").read_bytes(), np.asarray(ROWS))
    assert np.allclose(np.asarray(probabilities["data"]).reshape(3, 3), expected, atol=1e-6)


def test_simple_api_and_correlation_headers(server: Server, trained: tuple[Path, str]) -> None:
    with httpx.Client(base_url=server.url) as client:
        answer = client.post("/predict", json={"data": ROWS}, headers={"x-request-id": "abc-123"})
        assert answer.status_code == 200
        assert answer.headers["x-request-id"] == "abc-123"
        assert answer.headers["x-mlpatterns-version"] == trained[1]
        assert len(answer.json()["probabilities"]) == 3
        labels = client.post("/predict/label", json={"data": ROWS})
        assert labels.json() == {"labels": ["setosa", "virginica", "versicolor"]}
        assert len(labels.headers["x-request-id"]) == 32  # generated when absent
        meta = client.get("/metadata").json()
        assert meta["version"] == trained[1]
        assert meta["labels"] == ["setosa", "versicolor", "virginica"]
        assert len(meta["digest"]) == 64
        assert client.get("/health").json() == {"status": "ok"}


INFER = "/v2/models/iris/infer"


def v2(*, outputs: object = None, parameters: object = None, **tensor: object) -> bytes:
    """An infer request for one iris row, with `tensor`'s fields in place of the right ones."""
    sent = {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4], **tensor}
    request: dict[str, object] = {"inputs": [sent]}
    if outputs is not None:
        request["outputs"] = outputs
    if parameters is not None:
        request["parameters"] = parameters
    return json.dumps(request).encode()


BAD_REQUESTS = [
    ("POST", "/predict", b"{not json", 400, "not valid JSON"),
    ("POST", "/predict", b"", 400, "body is empty"),
    ("POST", "/predict", b'{"rows": []}', 422, '{"data"'),
    ("POST", "/predict", b'{"data": [[1, 2, 3]]}', 422, "list of 4 numbers, got 3 values"),
    ("POST", "/predict", b'{"data": [[1, 2, "3", 4]]}', 422, "every value must be a number"),
    ("POST", "/predict", b'{"data": [[1, 2, true, 4]]}', 422, "every value must be a number"),
    ("POST", "/predict", b'{"data": [[1, 2, 1e39, 4]]}', 422, "too large for float32"),
    ("POST", "/predict", b'{"data": [[1, 2, NaN, 4]]}', 400, "not valid JSON"),
    ("POST", "/predict", b'{"data": []}', 422, "non-empty list"),
    ("POST", INFER, v2(datatype="BYTES", data=["a"]), 400, "this model takes FP32"),
    ("POST", INFER, v2(datatype="FP64"), 400, "this model takes FP32"),
    ("POST", INFER, v2(name="x"), 400, "this model's input is 'input'"),
    ("POST", INFER, v2(shape=[2, 4]), 422, "needs 8"),
    ("POST", INFER, v2(shape=[1, 5], data=[1, 2, 3, 4, 5]), 422, "takes 4 features"),
    ("POST", INFER, v2(outputs=[{"name": "scores"}]), 400, "outputs are 'label' and"),
    ("POST", INFER, v2(outputs=[{"name": "label"}] * 2), 400, "a second time"),
    (
        "POST",
        INFER,
        v2(outputs=[{"name": "label", "parameters": {"classification": 2}}]),
        400,
        "classification extension",
    ),
    ("POST", INFER, v2(parameters={"binary_data_output": "yes"}), 400, "true or false"),
    ("POST", INFER, v2(parameters={"nested": {"a": 1}}), 400, "string, number or boolean"),
    ("POST", "/v2/models/wine/infer", b'{"inputs": []}', 404, "no model 'wine'"),
    ("POST", "/v1/models/iris:predict", b'{"instances": [[1, 2, 3]]}', 422, "got 3 values"),
    ("POST", "/v1/models/iris:predict", b'{"rows": [[1, 2, 3, 4]]}', 422, '{"instances"'),
    ("POST", "/v1/models/wine:predict", b'{"instances": []}', 404, "no model 'wine'"),
    ("POST", "/api/v1.0/predictions", b'{"data": {"strData": "x"}}', 422, "data.ndarray or"),
    (
        "POST",
        "/api/v1.0/predictions",
        b'{"data": {"tensor": {"shape": [1, 3], "values": [1, 2, 3]}}}',
        422,
        "data.tensor.shape must be [rows, 4]",
    ),
    ("POST", "/api/v1.0/predictions", b'{"data": {"ndarray": [["a", 2, 3, 4]]}}', 422, "number"),
    ("POST", "/api/v1.0/feedback", b'{"reward": "good"}', 422, '"reward": <number>'),
    ("GET", "/v2/models/iris/versions/9.9.9/ready", b"", 404, "no version '9.9.9'"),
    ("GET", "/predict", b"", 405, "wrong method"),
    ("GET", "/no/such/route", b"", 404, "routes this server has"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), BAD_REQUESTS)
def test_client_mistakes_get_a_4xx_that_says_why(
    server: Server, method: str, path: str, body: bytes, status: int, message: str
) -> None:
    answer = httpx.request(method, f"{server.url}{path}", content=body)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]


def test_oversized_body_is_a_413(server: Server) -> None:
    huge = json.dumps({"data": [[1.0, 2.0, 3.0, 4.0]] * 300_000}).encode()  # > 4 MiB
    answer = httpx.post(f"{server.url}/predict", content=huge)
    assert answer.status_code == 413
    assert "limit" in answer.json()["error"]


def test_a_client_gone_before_its_whole_body_is_a_499_not_a_server_fault(server: Server) -> None:
    closed = {"endpoint": "/predict", "status": "499"}
    before = sample(scrape(server.url), "mlpatterns_requests_total", **closed)
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"data": [[5.1,'
        )
    wait_until(
        "the 499 in the metrics",
        lambda: sample(scrape(server.url), "mlpatterns_requests_total", **closed) == before + 1,
        timeout=10,
    )
    assert sample(scrape(server.url), "mlpatterns_requests_total", status="500") == 0


def test_metrics_parse_and_count_what_was_served(server: Server) -> None:
    before = scrape(server.url)
    requests = 8  # one in DRIFT_SAMPLE requests reaches the drift window
    for _ in range(requests):
        assert httpx.post(f"{server.url}/predict", json={"data": ROWS}).status_code == 200
    assert httpx.post(f"{server.url}/predict", content=b"{").status_code == 400
    families = scrape(server.url)
    for name in (
        "mlpatterns_requests",
        "mlpatterns_request_duration_seconds",
        "mlpatterns_inference_duration_seconds",
        "mlpatterns_batch_size",
        "mlpatterns_predictions",
        "mlpatterns_requests_in_flight",
        "mlpatterns_prediction_log_dropped",
        "mlpatterns_model_info",
        "mlpatterns_drift_window_rows",
        "mlpatterns_feature_psi",
        "mlpatterns_feature_ks_p_value",
        "mlpatterns_class_mix_psi",
        "mlpatterns_repeated_inputs_ratio",
        "process_cpu_seconds",
        "process_resident_memory_bytes",
        "process_open_fds",
    ):
        assert name in families, name
    features = {s.labels["feature"] for s in families["mlpatterns_feature_psi"].samples}
    assert len(features) == 4  # iris' features, from the model's training profile
    [info] = families["mlpatterns_model_info"].samples
    assert info.labels["name"] == "iris"
    assert len(info.labels["digest"]) == 64

    def grew(name: str, **labels: str) -> float:
        return sample(families, name, **labels) - sample(before, name, **labels)

    predict = {"endpoint": "/predict"}
    assert grew("mlpatterns_requests_total", **predict, status="200") == requests
    assert grew("mlpatterns_requests_total", **predict, status="400") == 1
    ok, refused = {**predict, "status": "200"}, {**predict, "status": "400"}
    assert grew("mlpatterns_request_duration_seconds_count", **ok) == requests
    assert grew("mlpatterns_request_duration_seconds_count", **refused) == 1
    assert grew("mlpatterns_request_duration_seconds_bucket", **ok, le="+Inf") == requests
    assert grew("mlpatterns_batch_size_sum") == requests * len(ROWS)  # every row, in batches
    by_class = {
        c: grew("mlpatterns_predictions_total", **{"class": c})
        for c in ("setosa", "versicolor", "virginica")
    }
    assert by_class == {"setosa": requests, "versicolor": requests, "virginica": requests}
    buckets = [
        s.value
        for s in families["mlpatterns_request_duration_seconds"].samples
        if s.name.endswith("_bucket")
        and s.labels["endpoint"] == "/predict"
        and s.labels["status"] == "200"
    ]
    assert buckets == sorted(buckets)  # cumulative
    durations = families["mlpatterns_request_duration_seconds"].samples
    bounds = {s.labels["le"] for s in durations if s.name.endswith("_bucket")}
    assert {"5e-05", "0.0001", "0.00025"} <= bounds  # a tenth of a millisecond resolves
    # the scrape itself is the one request in flight while it is answered
    assert sample(families, "mlpatterns_requests_in_flight") == 1


def test_sigterm_flushes_every_prediction_record(trained: tuple[Path, str], tmp_path: Path) -> None:
    home = trained[0]
    running = start_server(home, "models:/iris@candidate", "--service", "flush-test")
    requests = 200
    with httpx.Client(base_url=running.url) as client:
        for index in range(requests):
            client.post(
                "/predict", json={"data": [ROWS[index % 3]]}, headers={"x-request-id": f"r{index}"}
            )
    assert running.stop() == 0
    log = home / "logs" / "predictions" / "flush-test" / "flush-test.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == requests
    assert {r["request_id"] for r in records} == {f"r{i}" for i in range(requests)}
    assert set(records[0]) == {
        "request_id",
        "service",
        "version",
        "model",
        "digest",
        "shadow",
        "input",
        "output",
        "latency_seconds",
        "timestamp",
    }


def test_a_corrupt_model_never_becomes_ready(trained: tuple[Path, str], tmp_path: Path) -> None:
    home, version = trained
    corrupted = tmp_path / "corrupt"
    subprocess.run(
        [MLPATTERNS, "fetch-model", f"models:/iris/{version}", str(corrupted)],
        env={**os.environ, "MLPATTERNS_HOME": str(home)},
        check=True,
        capture_output=True,
    )
    (corrupted / "model.onnx").write_bytes(b"\x08\x01garbage")
    result = subprocess.run(
        [MLPATTERNS, "serve", "model", "--model", str(corrupted), "--port", str(free_port())],
        env={**os.environ, "MLPATTERNS_HOME": str(home), "COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert f"models:/iris/{version}" in message
    assert "refusing to load a model that is not the registered one" in message
    missing = subprocess.run(
        [MLPATTERNS, "fetch-model", "models:/iris/9.9.9", str(tmp_path / "nothing")],
        env={**os.environ, "MLPATTERNS_HOME": str(home), "COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 1
    assert "model iris has no version 9.9.9" in " ".join(missing.stderr.split())


def test_model_in_image_serves_without_the_registry(
    trained: tuple[Path, str], tmp_path: Path
) -> None:
    home, version = trained
    context = tmp_path / "context"
    built = subprocess.run(
        [MLPATTERNS, "build-context", "models:/iris@candidate", "-o", str(context)],
        env={**os.environ, "MLPATTERNS_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    dockerfile = (context / "Dockerfile").read_text()
    assert f'io.mlpatterns.model.version="{version}"' in dockerfile
    assert "USER 10001" in dockerfile
    assert f"docker build -t iris:{version}" in " ".join(built.stderr.split())
    # No registry: an empty home, and object storage pointing at a closed port.
    unreachable = {
        "MLPATTERNS_S3_ENDPOINT": f"127.0.0.1:{free_port()}",
        "MLPATTERNS_S3_SECURE": "false",
    }
    running = start_server(tmp_path / "empty-home", str(context / "model"), env=unreachable)
    try:
        answer = httpx.post(f"{running.url}/predict/label", json={"data": ROWS})
        assert answer.json() == {"labels": ["setosa", "virginica", "versicolor"]}
        assert answer.headers["x-mlpatterns-version"] == version
    finally:
        running.stop()


def test_several_workers_answer_alike(trained: tuple[Path, str]) -> None:
    running = start_server(
        trained[0], "models:/iris@candidate", "--workers", "2", "--no-log-predictions"
    )
    try:
        with httpx.Client(base_url=running.url) as client:
            answers = {
                json.dumps(client.post("/predict", json={"data": ROWS}).json()) for _ in range(20)
            }
        assert len(answers) == 1  # replicas give identical answers (web single pattern)
    finally:
        assert running.stop() == 0


def test_schema_driven_fuzz_of_the_openapi_document(server: Server, tmp_path: Path) -> None:
    """schemathesis generates requests from /openapi.json, valid and invalid, and checks
    every answer: no 5xx, documented statuses and content, 405s with Allow, and that
    invalid requests are refused. One check is left out: a request the schema allows
    may still be refused (422) when its values overflow the model's float32 math; the
    schema cannot state the model's numeric range."""
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("st")),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            "100",
            "--seed",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,  # schemathesis keeps a cache in its working directory
    )
    assert result.returncode == 0, result.stdout[-5000:]
    assert "Tested: 10" in result.stdout


def test_a_stopped_server_drains_then_exits_cleanly(trained: tuple[Path, str]) -> None:
    """Told to stop, a server with a drain answers on for its drain seconds, each answer
    closing its connection (clients move elsewhere), then exits with status 0."""
    running = start_server(
        trained[0], "models:/iris@candidate", env={"MLPATTERNS_HTTP_DRAIN_SECONDS": "2"}
    )
    row = {"data": [[5.1, 3.5, 1.4, 0.2]]}
    with httpx.Client(base_url=running.url, timeout=5) as client:
        before = client.post("/predict", json=row)
        assert before.headers.get("connection") != "close"  # kept alive
        stopped = time.monotonic()
        running.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        answers = []
        while running.process.poll() is None and time.monotonic() - stopped < 1.5:
            answers.append(client.post("/predict", json=row))
            time.sleep(0.1)
        assert answers, "the server stopped at once"
        assert {a.status_code for a in answers} == {200}
        assert {a.headers.get("connection") for a in answers} == {"close"}
        assert running.process.wait(timeout=30) == 0
        assert time.monotonic() - stopped >= 2
