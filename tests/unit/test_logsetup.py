"""The one logging setup: JSON lines off a terminal, plain lines on one, a request's
id as a field, the level from MLPATTERNS_LOG_LEVEL with a clear refusal."""

from __future__ import annotations

import io
import json
import logging

import pytest

from mlpatterns.logsetup import configure_logging, level_from, request_fields

pytestmark = pytest.mark.unit


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_root() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield None
    root.handlers[:] = handlers
    root.setLevel(level)


def test_off_a_terminal_each_record_is_one_json_object() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    log = logging.getLogger("mlpatterns.test")
    log.debug("not at INFO")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("request %s failed", "r-1", extra=request_fields("r-1"))
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "error"
    assert record["logger"] == "mlpatterns.test"
    assert record["message"] == "request r-1 failed"
    assert record["request_id"] == "r-1"
    assert "RuntimeError: boom" in record["error"]


def test_on_a_terminal_lines_are_plain_and_uvicorn_goes_through_the_same_handler() -> None:
    stream = Terminal()
    configure_logging("WARNING", stream=stream)
    logging.getLogger("uvicorn.error").warning("port in use")
    assert stream.getvalue().rstrip().endswith("WARNING uvicorn.error: port in use")


def test_the_level_comes_from_the_environment_and_a_wrong_one_is_refused() -> None:
    assert level_from({}) == "INFO"
    assert level_from({"MLPATTERNS_LOG_LEVEL": "debug"}) == "DEBUG"
    with pytest.raises(ValueError, match="use one of DEBUG, INFO, WARNING, ERROR"):
        level_from({"MLPATTERNS_LOG_LEVEL": "loud"})
