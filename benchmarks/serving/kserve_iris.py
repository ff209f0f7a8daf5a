"""KServe's Python model server with an onnxruntime model: the peer users would pick.
Runs in its own virtual environment (see run.py).  python kserve_iris.py MODEL.onnx PORT"""

import sys

import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer


class OnnxIris(Model):
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.ready = True

    async def predict(self, payload, headers=None, response_headers=None):  # type: ignore[no-untyped-def]
        if isinstance(payload, InferRequest):
            rows = payload.inputs[0].as_numpy().astype(np.float32)
        else:
            rows = np.asarray(payload["instances"], dtype=np.float32)
        rows = rows.reshape(-1, 4)
        _, probabilities = self.session.run(["label", "probabilities"], {"input": rows})
        output = InferOutput("probabilities", list(probabilities.shape), "FP32", probabilities)
        return InferResponse(response_id="", model_name=self.name, infer_outputs=[output])


if __name__ == "__main__":
    model_path, port = sys.argv[1], int(sys.argv[2])
    server = ModelServer(
        http_port=port,
        grpc_port=port + 1,
        workers=1,
        enable_grpc=False,
        enable_latency_logging=False,
    )
    server.start([OnnxIris("iris", model_path)])
