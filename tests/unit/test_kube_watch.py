"""The gateway's routes watch: which events carry routes, and which end the watch."""

from __future__ import annotations

import pytest

from mlpatterns.routing.kube_watch import config_map_text

pytestmark = pytest.mark.unit


def event(
    kind: str, name: str = "iris-routes", data: dict[str, str] | None = None
) -> dict[str, object]:
    meta = {"name": name, "resourceVersion": "42"}
    return {"type": kind, "object": {"metadata": meta, "data": data or {}}}


def test_added_and_modified_events_carry_the_key_s_text() -> None:
    for kind in ("ADDED", "MODIFIED"):
        assert config_map_text(
            event(kind, data={"modelservice.yaml": "a: 1"}), "iris-routes", "modelservice.yaml"
        ) == ("42", b"a: 1")


def test_other_events_names_and_keys_carry_nothing_but_their_version() -> None:
    assert config_map_text(event("DELETED", data={"k": "x"}), "iris-routes", "k") == ("42", None)
    assert config_map_text(event("MODIFIED", "other", {"k": "x"}), "iris-routes", "k") == (
        "42",
        None,
    )
    assert config_map_text(event("MODIFIED", data={"j": "x"}), "iris-routes", "k") == ("42", None)
    assert config_map_text(
        {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "7"}}}, "n", "k"
    ) == ("7", None)


def test_an_error_event_ends_the_watch_with_the_api_server_s_message() -> None:
    gone = {
        "type": "ERROR",
        "object": {"kind": "Status", "code": 410, "message": "too old resource version"},
    }
    with pytest.raises(RuntimeError, match="too old resource version"):
        config_map_text(gone, "iris-routes", "k")
