"""Seldon Core's own SeldonClient against a server speaking Seldon's protocol (the
executor's REST API): ndarray and tensor predictions and a feedback. Runs in
seldon-core's environment; prints the answers as JSON.

    python seldon_client.py HOST:PORT ROWS_JSON
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
from seldon_core.seldon_client import SeldonClient


def main(endpoint: str, rows: list[list[float]]) -> None:
    client = SeldonClient(gateway="seldon", transport="rest", gateway_endpoint=endpoint)
    got: dict[str, Any] = {}
    for form in ("ndarray", "tensor"):
        answer = client.predict(data=np.asarray(rows), payload_type=form, client_return_type="dict")
        got[form] = {"success": answer.success, "msg": answer.msg, "response": answer.response}
    sent = client.predict(data=np.asarray(rows), payload_type="ndarray", client_return_type="proto")
    feedback = client.feedback(
        prediction_request=sent.request, prediction_response=sent.response, reward=1.0
    )
    got["feedback"] = {"success": feedback.success, "msg": feedback.msg}
    print(json.dumps(got))


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]))
