"""Files an attacker or a full disk can spoil: the model cache and the prediction log."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.test_model_server import start_server
from tests.support.training import train

pytestmark = [pytest.mark.integration, pytest.mark.attack]


def test_an_edited_model_cache_is_replaced_by_the_registrys_bytes(tmp_path: Path) -> None:
    """With both files of a cached model edited (model and metadata.json agreeing),
    the server still serves the registry's bytes under the registered version, never
    the edited ones."""
    current, other = train(
        tmp_path,
        {"dataset": "iris", "name": "iris"},
        {"dataset": "iris", "name": "other", "model_type": "random_forest"},
    )
    server = start_server(tmp_path, f"models:/iris/{current}", "--no-log-predictions")
    digest = httpx.get(f"{server.url}/metadata").json()["digest"]
    server.stop()
    cached = tmp_path / "cache" / "models" / digest
    decoy = start_server(tmp_path, f"models:/other/{other}", "--no-log-predictions")
    decoy_digest = httpx.get(f"{decoy.url}/metadata").json()["digest"]
    decoy.stop()
    for name in ("model.onnx", "metadata.json"):  # a consistent forgery in the cache
        shutil.copy(cached.parent / decoy_digest / name, cached / name)
    assert json.loads((cached / "metadata.json").read_text())["name"] == "other"
    server = start_server(tmp_path, f"models:/iris/{current}", "--no-log-predictions")
    try:
        served = httpx.get(f"{server.url}/metadata").json()
        assert (served["name"], served["digest"]) == ("iris", digest)
    finally:
        server.stop()


WRITER = """
import resource, signal, sys
from pathlib import Path
from mlpatterns.logstreams import FileSink

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
sink = FileSink(Path(sys.argv[1]))
sink.write([b'{"a": 1}\\n'])
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (100, hard))  # a disk that fills mid-batch
try:
    sink.write([b'{"b": "' + b"x" * 200 + b'"}\\n', b'{"b": 2}\\n'])
except OSError as error:
    print("refused", error.errno)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
sink.write([b'{"c": 3}\\n'])
sink.close()
"""


def test_a_full_disk_leaves_no_torn_line(tmp_path: Path) -> None:
    log = tmp_path / "predictions.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", WRITER, str(log)], capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith("refused")
    lines = log.read_bytes().splitlines()
    assert [json.loads(line) for line in lines] == [{"a": 1}, {"c": 3}]
