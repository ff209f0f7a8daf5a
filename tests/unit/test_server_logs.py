"""What the model server logs: every fault of its own with the traceback under the
request id (HTTP and gRPC), and, when asked, one access line per request."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.grpc.aio as triton_grpc_aio
from starlette.testclient import TestClient
from tritonclient.utils import InferenceServerException

from mlpatterns.logsetup import JsonLines
from mlpatterns.serving.app import ServerConfig, ServerState, create_app
from mlpatterns.serving.grpc_service import start_grpc_server
from mlpatterns.serving.metrics import ServerMetrics
from mlpatterns.serving.model import LoadedModel, Prediction
from tests.support.processes import free_port
from tests.support.served import iris_model

pytestmark = pytest.mark.unit
ROW = {"data": [[5.1, 3.5, 1.4, 0.2]]}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    return iris_model(tmp_path_factory.mktemp("home"))


@pytest.fixture
def failing(model: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> LoadedModel:
    """The model, made to fail as no request can make it (a mock: the fault is ours)."""

    def broken(rows: object) -> Prediction:
        raise RuntimeError("onnxruntime lost its session")

    monkeypatch.setattr(model, "predict", broken)
    return model


def state_of(model: LoadedModel, **config: object) -> ServerState:
    return ServerState(
        model=model,
        config=ServerConfig(**config),  # type: ignore[arg-type]
        metrics=ServerMetrics("iris", model.version),
    )


@pytest.fixture
def client(failing: LoadedModel) -> Iterator[TestClient]:
    with TestClient(create_app(state_of(failing)), raise_server_exceptions=False) as test_client:
        yield test_client


def faults(records: list[logging.LogRecord], request_id: str) -> list[logging.LogRecord]:
    return [
        r
        for r in records
        if r.levelno == logging.ERROR and getattr(r, "request_id", None) == request_id
    ]


def test_a_fault_of_the_server_is_a_500_logged_with_its_traceback_and_request_id(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    answer = client.post("/predict", json=ROW, headers={"x-request-id": "fault-1"})
    assert answer.status_code == 500
    assert "request id fault-1" in answer.json()["error"]
    assert "onnxruntime" not in answer.text  # the detail is for the log, not the client
    [record] = faults(caplog.records, "fault-1")
    assert record.exc_info is not None
    line = json.loads(JsonLines().format(record))
    assert line["request_id"] == "fault-1"
    assert "RuntimeError: onnxruntime lost its session" in line["error"]


def test_a_fault_over_grpc_is_internal_and_logged_with_its_traceback_and_request_id(
    failing: LoadedModel, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    state = state_of(failing, batching=False)

    async def ask() -> InferenceServerException:
        server = await start_grpc_server(state, f"127.0.0.1:{port}")
        client = triton_grpc_aio.InferenceServerClient(f"127.0.0.1:{port}")
        tensor = triton_grpc.InferInput("input", [1, 4], "FP32")
        tensor.set_data_from_numpy(np.asarray(ROW["data"], dtype=np.float32))
        try:
            with pytest.raises(InferenceServerException) as refused:
                await client.infer("iris", [tensor], request_id="fault-2")
            return refused.value
        finally:
            await client.close()
            await server.stop(None)

    state.ready = True
    error = asyncio.run(ask())
    assert error.status() == "StatusCode.INTERNAL"
    assert "request id fault-2" in error.message()
    [record] = faults(caplog.records, "fault-2")
    assert record.exc_info is not None


def test_the_access_log_has_a_line_per_request_when_asked(
    model: LoadedModel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mlpatterns.access")
    for access_log, ids in ((False, ("quiet-1",)), (True, ("seen-1", "seen-2"))):
        with TestClient(create_app(state_of(model, access_log=access_log))) as client:
            for request_id in ids:
                client.post("/predict", json=ROW, headers={"x-request-id": request_id})
            client.post("/predict", content=b"{", headers={"x-request-id": f"bad-{access_log}"})
    lines = [
        json.loads(JsonLines().format(r)) for r in caplog.records if r.name == "mlpatterns.access"
    ]
    assert [line["request_id"] for line in lines] == ["seen-1", "seen-2", "bad-True"]
    assert [line["status"] for line in lines] == [200, 200, 400]
    assert all(line["method"] == "POST" and line["path"] == "/predict" for line in lines)
    assert all(0 < line["duration_ms"] < 10_000 for line in lines)
    assert lines[0]["message"].startswith("POST /predict 200 ")
