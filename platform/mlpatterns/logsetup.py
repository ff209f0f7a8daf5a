"""One logging setup for every mlpatterns process.

Records go to standard error: as JSON lines when it is not a terminal (a pod's log,
a supervisor's file: one object per line for a collector to parse), as plain lines
on a terminal. The level is `MLPATTERNS_LOG_LEVEL` (INFO by default). uvicorn's
loggers are routed through the same handler, and a record's `request_id` (passed as
`extra={"request_id": ...}`) becomes a field of its own, so that every failed request
can be found by the id its client was given.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO

__all__ = [
    "ACCESS",
    "CHATTY",
    "FIELDS",
    "LEVELS",
    "JsonLines",
    "configure_logging",
    "level_from",
    "log_access",
    "request_fields",
    "wants_json",
]

# `extra` keys that become fields: a request's id, and an access line's parts
FIELDS = ("request_id", "service", "version", "method", "path", "status", "duration_ms")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LEVEL_ENV = "MLPATTERNS_LOG_LEVEL"
UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access")
# client libraries that log every request at INFO: one line per call drowns the
# process's own log (the quickstart's 1,500 feedback posts); their warnings still show
CHATTY = ("httpx", "httpcore")
PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ACCESS = logging.getLogger("mlpatterns.access")  # one line per request, where it is on


class JsonLines(logging.Formatter):
    """A record as one JSON object: time, level, logger, message, the known extra
    fields, and the traceback as `error` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def request_fields(request_id: str) -> dict[str, str]:
    """The `extra` of a record about one request: `log.warning(..., extra=...)`."""
    return {"request_id": request_id}


def log_access(
    request_id: str, method: str, path: str, status: int, seconds: float, **fields: str
) -> None:
    """One request's access line: `POST /predict 200 0.412 ms`, and as fields."""
    duration_ms = round(seconds * 1000, 3)
    ACCESS.info(
        "%s %s %d %.3f ms",
        method,
        path,
        status,
        duration_ms,
        extra={
            "request_id": request_id,
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
            **fields,
        },
    )


def wants_json(stream: IO[str]) -> bool:
    """JSON lines unless a person is reading: off a terminal."""
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream: a machine reads it
        return True


def level_from(environ: Mapping[str, str]) -> str:
    """The level `MLPATTERNS_LOG_LEVEL` asks for (INFO when unset), or a ValueError that
    says which levels there are."""
    wanted = environ.get(LEVEL_ENV, "INFO").strip().upper() or "INFO"
    if wanted not in LEVELS:
        raise ValueError(
            f"{LEVEL_ENV}={environ[LEVEL_ENV]!r} is not a level; use one of {', '.join(LEVELS)}"
        )
    return wanted


def configure_logging(level: str = "INFO", *, stream: IO[str] | None = None) -> None:
    """Make the root logger write `level` and above to `stream` (standard error), and
    uvicorn's loggers write through it; the CHATTY clients log warnings only, unless
    the level is DEBUG. Calling it again replaces the handler."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines() if wants_json(stream) else logging.Formatter(PLAIN))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in UVICORN:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for name in CHATTY:
        quiet = root.level > logging.DEBUG
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.DEBUG)
