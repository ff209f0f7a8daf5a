"""KServe's Python client against a model server: v1, v2 over REST with binary data off
and on, and v2 over gRPC. Runs in KServe's environment; prints the answers as JSON.

    python kserve_client.py http://HOST:PORT HOST:GRPC_PORT MODEL ROWS_JSON
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import numpy as np
from kserve import (
    InferenceGRPCClient,
    InferenceRESTClient,
    InferInput,
    InferRequest,
    RESTConfig,
)


def _request(model: str, rows: list[list[float]], binary: bool) -> InferRequest:
    tensor = InferInput("input", [len(rows), len(rows[0])], "FP32")
    tensor.set_data_from_numpy(np.asarray(rows, dtype=np.float32), binary_data=binary)
    return InferRequest(model_name=model, infer_inputs=[tensor], request_id="kserve-1")


def _outputs(response: Any) -> dict[str, Any]:
    answers = {}
    for output in response.outputs:
        values = output.as_numpy()
        if values.dtype == object:
            answers[output.name] = [v.decode() if isinstance(v, bytes) else v for v in values]
        else:
            answers[output.name] = values.tolist()
    return answers


async def main(url: str, grpc_address: str, model: str, rows: list[list[float]]) -> None:
    got: dict[str, Any] = {}
    v1 = InferenceRESTClient(RESTConfig(protocol="v1"))
    got["v1_live"] = await v1.is_server_live(url)
    got["v1_ready"] = await v1.is_model_ready(url, model)
    got["v1"] = await v1.infer(url, {"instances": rows}, model_name=model)
    v2 = InferenceRESTClient(RESTConfig(protocol="v2"))
    got["v2_ready"] = await v2.is_model_ready(url, model)
    for binary in (False, True):
        response = await v2.infer(url, _request(model, rows, binary), model_name=model)
        got[f"v2_binary_{str(binary).lower()}"] = _outputs(response)
    async with InferenceGRPCClient(grpc_address) as grpc_client:
        got["grpc_ready"] = await grpc_client.is_model_ready(model)
        got["grpc"] = _outputs(await grpc_client.infer(_request(model, rows, True)))
    print(json.dumps(got))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])))
