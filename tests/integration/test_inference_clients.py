"""The clients users already have, against the model server as a real process: Triton's
HTTP and gRPC clients with their defaults (binary tensor data on), asynchronous calls,
output selection, FP64 refused, and the configuration, statistics and repository
extensions. Every prediction equals the model's own answer in process."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.grpc.aio as triton_grpc_aio
import tritonclient.http as triton_http
import tritonclient.http.aio as triton_http_aio
from tritonclient.utils import InferenceServerException

from mlpatterns.training.export import predict_proba
from tests.integration.test_model_server import ROWS, Server, start_server
from tests.support.metrics import sample, scrape
from tests.support.peers import peer_client
from tests.support.processes import free_port

pytestmark = pytest.mark.integration
LABELS = ["setosa", "virginica", "versicolor"]  # ROWS' labels


GRPC_PORT = free_port()


@pytest.fixture(scope="module")
def server(trained: tuple[Path, str]) -> Iterator[Server]:
    running = start_server(
        trained[0], "models:/iris@candidate", "--no-log-predictions", "--grpc-port", str(GRPC_PORT)
    )
    yield running
    running.stop()


@pytest.fixture
def grpc_client(server: Server) -> Iterator[triton_grpc.InferenceServerClient]:
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{GRPC_PORT}")
    yield client
    client.close()


@pytest.fixture(scope="module")
def expected(trained: tuple[Path, str]) -> npt.NDArray[np.float32]:
    """The model's probabilities for ROWS, computed in process."""
    [folder] = list((trained[0] / "cache" / "models").iterdir())
    return np.asarray(predict_proba((folder / "model.onnx").read_bytes(), np.asarray(ROWS)))


def rows_input(dtype: str = "FP32") -> triton_http.InferInput:
    """ROWS as the client sends them by default: raw bytes after the JSON header."""
    tensor = triton_http.InferInput("input", [len(ROWS), 4], dtype)
    tensor.set_data_from_numpy(np.asarray(ROWS, dtype=np.float32 if dtype == "FP32" else None))
    return tensor


def labels_of(result: triton_http.InferResult) -> list[str]:
    return [label.decode() for label in result.as_numpy("label")]


def test_triton_http_client_with_its_defaults_gets_the_model_s_answers(
    server: Server, expected: npt.NDArray[np.float32]
) -> None:
    client = triton_http.InferenceServerClient(server.url.removeprefix("http://"))
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    assert client.get_model_metadata("iris")["inputs"][0]["name"] == "input"

    result = client.infer("iris", [rows_input()])  # binary in, binary out
    assert np.allclose(result.as_numpy("probabilities"), expected, atol=1e-6)
    assert labels_of(result) == LABELS

    as_json = [triton_http.InferRequestedOutput("probabilities", binary_data=False)]
    only = client.infer("iris", [rows_input()], outputs=as_json, request_id="req-9")
    assert only.as_numpy("label") is None
    assert np.allclose(only.as_numpy("probabilities"), expected, atol=1e-6)
    assert only.get_response()["id"] == "req-9"

    handles = [client.async_infer("iris", [rows_input()]) for _ in range(4)]
    for handle in handles:
        assert labels_of(handle.get_result()) == LABELS
    client.close()


def test_triton_http_client_mistakes_are_refused_with_what_the_model_expects(
    server: Server,
) -> None:
    client = triton_http.InferenceServerClient(server.url.removeprefix("http://"))
    with pytest.raises(InferenceServerException, match="this model takes FP32"):
        client.infer("iris", [rows_input(dtype="FP64")])
    wrong = triton_http.InferInput("features", [len(ROWS), 4], "FP32")
    wrong.set_data_from_numpy(np.asarray(ROWS, dtype=np.float32))
    with pytest.raises(InferenceServerException, match="this model's input is 'input'"):
        client.infer("iris", [wrong])
    unknown = [triton_http.InferRequestedOutput("scores")]
    with pytest.raises(InferenceServerException, match="outputs are 'label' and"):
        client.infer("iris", [rows_input()], outputs=unknown)
    client.close()


def test_triton_asyncio_client_gets_the_model_s_answers(
    server: Server, expected: npt.NDArray[np.float32]
) -> None:
    async def ask() -> list[triton_http_aio.InferResult]:
        client = triton_http_aio.InferenceServerClient(server.url.removeprefix("http://"))
        try:
            calls = [client.infer("iris", [rows_input()]) for _ in range(3)]
            return list(await asyncio.gather(*calls))
        finally:
            await client.close()

    for result in asyncio.run(ask()):
        assert np.allclose(result.as_numpy("probabilities"), expected, atol=1e-6)
        assert labels_of(result) == LABELS


def test_configuration_statistics_and_repository_as_triton_s_client_reads_them(
    server: Server, trained: tuple[Path, str]
) -> None:
    client = triton_http.InferenceServerClient(server.url.removeprefix("http://"))
    before = client.get_inference_statistics("iris")["model_stats"][0]
    client.infer("iris", [rows_input()])
    with pytest.raises(InferenceServerException):
        client.infer("iris", [rows_input(dtype="FP64")])  # refused before the model
    stats = client.get_inference_statistics("iris")["model_stats"][0]
    assert stats["name"] == "iris"
    assert stats["version"] == trained[1]
    assert stats["inference_count"] - before["inference_count"] == len(ROWS)
    assert stats["execution_count"] - before["execution_count"] == 1
    success, earlier = stats["inference_stats"]["success"], before["inference_stats"]["success"]
    assert success["count"] - earlier["count"] == 1
    assert success["ns"] > earlier["ns"]
    assert stats["last_inference"] > 0

    config = client.get_model_config("iris")
    assert config["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [-1, 4]}]
    assert [o["name"] for o in config["output"]] == ["label", "probabilities"]
    index = client.get_model_repository_index()
    assert index == [{"name": "iris", "version": trained[1], "state": "READY"}]
    with pytest.raises(InferenceServerException, match="fixed when it started"):
        client.load_model("wine")
    client.close()


def grpc_rows(dtype: str = "FP32", name: str = "input") -> triton_grpc.InferInput:
    tensor = triton_grpc.InferInput(name, [len(ROWS), 4], dtype)
    tensor.set_data_from_numpy(np.asarray(ROWS, dtype=np.float32 if dtype == "FP32" else None))
    return tensor


def test_triton_grpc_client_gets_the_model_s_answers(
    grpc_client: triton_grpc.InferenceServerClient,
    expected: npt.NDArray[np.float32],
    trained: tuple[Path, str],
) -> None:
    client = grpc_client
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert "binary_tensor_data" in client.get_server_metadata().extensions
    meta = client.get_model_metadata("iris", as_json=True)
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": ["-1", "4"]}]
    result = client.infer("iris", [grpc_rows()], request_id="grpc-1")
    assert np.allclose(result.as_numpy("probabilities"), expected, atol=1e-6)
    assert labels_of(result) == LABELS
    assert result.get_response().id == "grpc-1"
    only = client.infer("iris", [grpc_rows()], outputs=[triton_grpc.InferRequestedOutput("label")])
    assert only.as_numpy("probabilities") is None
    assert labels_of(only) == LABELS

    done: list[object] = []
    client.async_infer("iris", [grpc_rows()], callback=lambda result, error: done.append(result))
    deadline = time.monotonic() + 10
    while not done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert labels_of(done[0]) == LABELS

    config = client.get_model_config("iris", as_json=True)["config"]
    assert config["input"][0]["data_type"] == "TYPE_FP32"
    stats = client.get_inference_statistics("iris", as_json=True)["model_stats"][0]
    assert int(stats["inference_count"]) >= 3 * len(ROWS)
    index = client.get_model_repository_index(as_json=True)["models"]
    assert index == [{"name": "iris", "version": trained[1], "state": "READY"}]


def test_triton_grpc_asyncio_client_gets_the_model_s_answers(
    server: Server, expected: npt.NDArray[np.float32]
) -> None:
    async def ask() -> list[triton_grpc.InferResult]:
        client = triton_grpc_aio.InferenceServerClient(f"127.0.0.1:{GRPC_PORT}")
        try:
            return list(
                await asyncio.gather(*(client.infer("iris", [grpc_rows()]) for _ in range(3)))
            )
        finally:
            await client.close()

    for result in asyncio.run(ask()):
        assert np.allclose(result.as_numpy("probabilities"), expected, atol=1e-6)


GRPC_MISTAKES = [
    ({"dtype": "FP64"}, "INVALID_ARGUMENT", "this model takes FP32"),
    ({"name": "features"}, "INVALID_ARGUMENT", "this model's input is 'input'"),
    ({"model": "wine"}, "NOT_FOUND", "no model 'wine'"),
    ({"outputs": ["scores"]}, "INVALID_ARGUMENT", "outputs are 'label' and"),
]


@pytest.mark.parametrize(("mistake", "code", "message"), GRPC_MISTAKES)
def test_grpc_mistakes_get_the_status_that_says_why(
    grpc_client: triton_grpc.InferenceServerClient,
    mistake: dict[str, Any],
    code: str,
    message: str,
) -> None:
    tensor = grpc_rows(mistake.get("dtype", "FP32"), mistake.get("name", "input"))
    outputs = [triton_grpc.InferRequestedOutput(n) for n in mistake.get("outputs", [])] or None
    with pytest.raises(InferenceServerException) as refused:
        grpc_client.infer(mistake.get("model", "iris"), [tensor], outputs=outputs)
    assert refused.value.status() == f"StatusCode.{code}"
    assert message in refused.value.message()


def test_kserve_python_client_gets_the_model_s_answers_over_v1_v2_and_grpc(
    server: Server, expected: npt.NDArray[np.float32]
) -> None:
    grpc_address = f"127.0.0.1:{GRPC_PORT}"
    got = peer_client("kserve", server.url, grpc_address, "iris", json.dumps(ROWS))
    assert got["v1_live"] is True
    assert got["v1_ready"] is True
    assert got["v2_ready"] is True
    assert got["grpc_ready"] is True
    assert got["v1"] == {"predictions": LABELS}
    for answer in ("v2_binary_false", "v2_binary_true", "grpc"):
        assert got[answer]["label"] == LABELS, answer
        assert np.allclose(got[answer]["probabilities"], expected, atol=1e-6), answer


def test_seldon_s_client_gets_the_model_s_probabilities_and_sends_feedback(
    server: Server, expected: npt.NDArray[np.float32]
) -> None:
    got = peer_client("seldon", server.url.removeprefix("http://"), json.dumps(ROWS))
    ndarray, tensor = got["ndarray"], got["tensor"]
    assert ndarray["success"], ndarray["msg"]
    assert tensor["success"], tensor["msg"]
    assert ndarray["response"]["data"]["names"] == ["setosa", "versicolor", "virginica"]
    assert np.allclose(ndarray["response"]["data"]["ndarray"], expected, atol=1e-6)
    values = tensor["response"]["data"]["tensor"]["values"]
    assert tensor["response"]["data"]["tensor"]["shape"] == [len(ROWS), 3]
    assert np.allclose(np.reshape(values, (len(ROWS), 3)), expected, atol=1e-6)
    assert got["feedback"]["success"], got["feedback"]["msg"]
    families = scrape(server.url)
    assert sample(families, "mlpatterns_feedback_reward_sum") >= 1.0
    assert httpx.get(f"{server.url}/health/ping").text == "pong"
    assert httpx.get(f"{server.url}/health/status").json()["status"]["status"] == "SUCCESS"
