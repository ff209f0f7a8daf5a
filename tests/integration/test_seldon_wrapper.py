"""A registry model under Seldon Core's own Python wrapper (`seldon-core-microservice
mlpatterns.seldon.Model`), as a real process in the `seldon` extra's environment,
loaded from the folder `mlpatterns fetch-model` writes (as the init container does),
called with seldon-core's SeldonClient over REST and gRPC. Every answer equals the
model's own in process; a tampered model never serves."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt
import pytest

from mlpatterns.training.export import predict_proba
from tests.integration.test_model_server import MLPATTERNS, ROWS
from tests.support.peers import REPO, extra_python, peer_client
from tests.support.processes import free_port, http_ok, wait_until

pytestmark = pytest.mark.integration


def fetched(home: Path, version: str, folder: Path) -> Path:
    """The model as the init container leaves it: `mlpatterns fetch-model` into a folder."""
    subprocess.run(
        [MLPATTERNS, "fetch-model", f"models:/iris/{version}", str(folder)],
        env={**os.environ, "MLPATTERNS_HOME": str(home)},
        check=True,
        capture_output=True,
    )
    return folder


@dataclass
class Wrapper:
    """seldon-core-microservice in a session of its own (its REST, gRPC and metrics
    servers are processes of their own), with its output in `log`."""

    process: subprocess.Popen[bytes]
    log: Path
    http: str
    grpc: str

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def answering(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"exited with {self.process.returncode}:\n{self.output()}")
        return http_ok(f"http://{self.http}/health/status")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def start_wrapper(folder: Path, log: Path) -> Wrapper:
    """seldon-core-microservice serving the model in `folder`."""
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    python = extra_python("seldon")
    parameters = [{"name": "model_folder", "value": str(folder), "type": "STRING"}]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(python.with_name("seldon-core-microservice")), "mlpatterns.seldon.Model",
             "--service-type", "MODEL", "--parameters", json.dumps(parameters),
             "--http-port", str(http_port), "--grpc-port", str(grpc_port),
             "--metrics-port", str(metrics_port)],
            env={**os.environ, "PYTHONPATH": str(REPO / "platform")},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return Wrapper(process, log, f"127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}")


@pytest.fixture(scope="module")
def wrapper(
    trained: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Wrapper]:
    folder = tmp_path_factory.mktemp("seldon")
    running = start_wrapper(fetched(*trained, folder / "model"), folder / "log")
    try:
        wait_until("seldon wrapper", running.answering, 120)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def expected(
    trained: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> npt.NDArray[np.float32]:
    folder = fetched(*trained, tmp_path_factory.mktemp("expected") / "model")
    return np.asarray(predict_proba((folder / "model.onnx").read_bytes(), np.asarray(ROWS)))


def test_seldon_client_gets_the_registry_model_s_answers_from_seldon_s_wrapper(
    wrapper: Wrapper, expected: npt.NDArray[np.float32]
) -> None:
    got = peer_client("seldon", wrapper.http, json.dumps(ROWS), wrapper.grpc)
    names = ["setosa", "versicolor", "virginica"]
    for answer in ("ndarray", "microservice_rest", "microservice_grpc"):
        assert got[answer]["success"], (answer, got[answer]["msg"])
        data = got[answer]["response"]["data"]
        assert data["names"] == names, answer
        assert np.allclose(data["ndarray"], expected, atol=1e-6), answer
    tensor = got["tensor"]["response"]["data"]["tensor"]
    assert tensor["shape"] == [len(ROWS), 3]
    assert np.allclose(np.reshape(tensor["values"], (len(ROWS), 3)), expected, atol=1e-6)
    tags = got["ndarray"]["response"]["meta"]["tags"]
    assert tags["model"] == "iris"
    assert got["feedback"]["success"], got["feedback"]["msg"]
    wrong = got["wrong_width"]
    assert not wrong["success"]
    assert "rows of 4 numbers" in json.dumps(wrong["response"]) + str(wrong["msg"])


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"data": {"ndarray": [[1, 2, 3]]}}, 400, "rows of 4 numbers"),
        ({"data": {"ndarray": [[1, 2, 3, "x"]]}}, 400, "no text"),
        ({"data": {"ndarray": [[1, 2, 3, 1e39]]}}, 400, "float32"),
        ({"strData": "hello"}, 400, "strData"),
        ({"data": {"ndarray": [[0.0] * 4] * 10_001}}, 413, "at most 10000"),
    ],
)
def test_seldon_wrapper_refuses_what_the_model_cannot_take(
    wrapper: Wrapper, body: dict[str, object], code: int, message: str
) -> None:
    answer = httpx.post(f"http://{wrapper.http}/api/v1.0/predictions", json=body, timeout=30)
    assert answer.status_code == code, answer.text
    assert message in answer.text


def test_seldon_metadata_is_the_registry_s_record(
    wrapper: Wrapper, trained: tuple[Path, str]
) -> None:
    metadata = httpx.get(f"http://{wrapper.http}/metadata", timeout=30).json()
    assert metadata["name"] == "iris"
    assert metadata["versions"] == [trained[1]]
    assert metadata["outputs"][0]["schema"]["names"] == ["setosa", "versicolor", "virginica"]


def test_a_tampered_model_never_serves(
    trained: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("tampered")
    model = fetched(*trained, folder / "model") / "model.onnx"
    model.write_bytes(model.read_bytes() + b"\0")
    running = start_wrapper(model.parent, folder / "log")
    try:
        refusal = "refusing to load a model that is not the registered one"
        wait_until("the refusal in its log", lambda: refusal in running.output(), 120)
        with contextlib.suppress(httpx.TransportError):
            answer = httpx.post(
                f"http://{running.http}/api/v1.0/predictions",
                json={"data": {"ndarray": ROWS}},
                timeout=30,
            )
            assert answer.status_code >= 500, answer.text
    finally:
        running.stop()
