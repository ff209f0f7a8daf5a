"""Seldon Core's own SeldonClient against a server speaking Seldon's protocol (the
executor's REST API): ndarray and tensor predictions and a feedback. Given a gRPC
address too, the server is a Seldon microservice (`seldon-core-microservice`): it is
also called as one, over REST and gRPC, and sent rows of the wrong width. Runs in
seldon-core's environment; prints the answers as JSON.

    python seldon_client.py HOST:PORT ROWS_JSON [GRPC_HOST:PORT]
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
from google.protobuf.json_format import MessageToDict
from seldon_core.seldon_client import SeldonClient


def _plain(answer: Any) -> dict[str, Any]:
    response = answer.response
    if response is not None and not isinstance(response, dict):
        response = MessageToDict(response)
    return {"success": answer.success, "msg": answer.msg, "response": response}


def main(endpoint: str, rows: list[list[float]], grpc_endpoint: str | None) -> None:
    client = SeldonClient(gateway="seldon", transport="rest", gateway_endpoint=endpoint)
    data = np.asarray(rows)
    got: dict[str, Any] = {}
    for form in ("ndarray", "tensor"):
        answer = client.predict(data=data, payload_type=form, client_return_type="dict")
        got[form] = _plain(answer)
    sent = client.predict(data=data, payload_type="ndarray", client_return_type="proto")
    feedback = client.feedback(
        prediction_request=sent.request, prediction_response=sent.response, reward=1.0
    )
    got["feedback"] = {"success": feedback.success, "msg": feedback.msg}
    if grpc_endpoint is not None:
        for transport, address in (("rest", endpoint), ("grpc", grpc_endpoint)):
            answer = client.microservice(
                data=data, method="predict", transport=transport,
                microservice_endpoint=address, payload_type="ndarray",
            )  # fmt: skip
            got[f"microservice_{transport}"] = _plain(answer)
        wrong = client.microservice(
            data=data[:, :3], method="predict", transport="rest", microservice_endpoint=endpoint
        )
        got["wrong_width"] = _plain(wrong)
    print(json.dumps(got))


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
