"""The prediction server as seen from the preprocess server: an Open Inference
Protocol v2 client whose failures become clear 502/503/504 answers."""

from __future__ import annotations

import logging
import time

import httpx
import numpy as np
import numpy.typing as npt

from mlpatterns.logsetup import request_fields
from mlpatterns.serving.inputs import AnswerError
from mlpatterns.serving.model import Prediction

__all__ = ["READY_CACHE_SECONDS", "RemotePredictor", "UpstreamError", "log"]

READY_CACHE_SECONDS = 1.0
log = logging.getLogger("mlpatterns.serving")


class UpstreamError(AnswerError):
    """The prediction server failed us (5xx to our client, who did nothing wrong)."""


class RemotePredictor:
    def __init__(self, url: str, model_name: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.model_name = model_name
        self._client = httpx.AsyncClient(base_url=self.url, timeout=timeout)
        self._ready_at = 0.0
        self._ready = False

    async def predict(self, features: npt.NDArray[np.float32], request_id: str) -> Prediction:
        body = {
            "id": request_id,
            "inputs": [
                {
                    "name": "input",
                    "shape": list(features.shape),
                    "datatype": "FP32",
                    "data": features.ravel().tolist(),
                }
            ],
        }
        try:
            answer = await self._client.post(
                f"/v2/models/{self.model_name}/infer",
                json=body,
                headers={"x-request-id": request_id},
            )
        except httpx.TimeoutException:
            raise self._failed(504, "did not answer in time", request_id, "timeout") from None
        except httpx.HTTPError as error:
            raise self._failed(503, "is unavailable", request_id, repr(error)) from None
        if answer.status_code >= 400:  # 5xx: it failed; 4xx: our request was wrong
            said = "failed" if answer.status_code >= 500 else "refused the request"
            raise self._failed(502, said, request_id, answer.text[:200])
        outputs = {o["name"]: o for o in answer.json()["outputs"]}
        probabilities = np.asarray(outputs["probabilities"]["data"], dtype=np.float32)
        return Prediction.checked(
            [str(v) for v in outputs["label"]["data"]],
            probabilities.reshape(outputs["probabilities"]["shape"]),
        )

    def _failed(self, status: int, what: str, request_id: str, detail: str) -> UpstreamError:
        """The client is told what happened; the log also gets where and why (the
        prediction server's address is not the client's business)."""
        log.warning(
            "request %s: the prediction server at %s %s: %s",
            request_id,
            self.url,
            what,
            detail,
            extra=request_fields(request_id),
        )
        return UpstreamError(status, f"the prediction server {what} (request id {request_id})")

    async def ready(self) -> bool:
        """Whether the prediction server is ready (asked at most once a second)."""
        now = time.monotonic()
        if now - self._ready_at >= READY_CACHE_SECONDS:
            try:
                answer = await self._client.get("/v2/health/ready", timeout=1.0)
                self._ready = answer.status_code == 200
            except httpx.HTTPError:
                self._ready = False
            self._ready_at = now
        return self._ready

    async def close(self) -> None:
        await self._client.aclose()
