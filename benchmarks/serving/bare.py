"""The floor: a constant answer on the same HTTP stack as mlpatterns' model server
(Starlette on uvicorn with uvloop and httptools, orjson), configured as it is (the
same HTTP limits, no proxy-headers middleware, the same garbage collector
settings), with no model and no parsing.
    python bare.py PORT [--plain]    (--plain: uvicorn's own protocol, no limits)"""

import sys

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlpatterns.process import calm_garbage_collector
from mlpatterns.server_limits import uvicorn_config
from mlpatterns.web import WebLimits

ANSWER = orjson.dumps(
    {
        "model_name": "iris",
        "outputs": [
            {
                "name": "probabilities",
                "datatype": "FP32",
                "shape": [1, 3],
                "data": [0.98, 0.02, 0.0],
            }
        ],
    }
)


async def infer(request: Request) -> Response:
    await request.body()
    return Response(ANSWER, media_type="application/json")


app = Starlette(routes=[Route("/v2/models/iris/infer", infer, methods=["POST"])])

if __name__ == "__main__":
    calm_garbage_collector()
    port = int(sys.argv[1])
    if "--plain" in sys.argv:
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            loop="uvloop",
            http="httptools",
            access_log=False,
            log_level="warning",
            proxy_headers=False,
        )
    else:
        config = uvicorn_config(app, "127.0.0.1", port, WebLimits())
    uvicorn.Server(config).run()
