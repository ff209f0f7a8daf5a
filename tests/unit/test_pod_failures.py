"""Why pods do not run, as the ModelService's Degraded condition tells it."""

from __future__ import annotations

from typing import Any

import pytest

from mlpatterns.operator.pods import PodFailure, pod_failures

pytestmark = pytest.mark.unit


def pod(
    name: str, init: list[dict[str, Any]] | None = None, main: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"version": "v1"}},
        "status": {"initContainerStatuses": init or [], "containerStatuses": main or []},
    }


def crashed(name: str, code: int, message: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": code, "message": message}},
    }


def test_a_model_that_fails_its_digest_check_is_a_model_load_failure() -> None:
    said = (
        "iled to persist telemetry device ID\x1b[m\n"
        "error: model tampered 0.1.0 does not match its digest; refusing it\n"
    )
    failures = pod_failures([pod("p-1", init=[crashed("fetch-model", 1, said)])])
    assert failures == [
        PodFailure(
            "v1",
            "ModelLoadFailed",
            "pod p-1: container fetch-model exited with 1: error: model tampered 0.1.0 "
            "does not match its digest; refusing it",
        )
    ]


def test_image_pull_and_config_errors_have_their_own_reasons() -> None:
    pulling = {
        "name": "server",
        "state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}},
    }
    config = {
        "name": "server",
        "state": {
            "waiting": {"reason": "CreateContainerConfigError", "message": 'secret "s3" not found'}
        },
    }
    failures = pod_failures([pod("b", main=[config]), pod("a", main=[pulling])])
    assert [(f.reason, f.message) for f in failures] == [
        ("ImagePullFailed", "pod a: container server: not found"),
        ("ContainerConfigInvalid", 'pod b: container server: secret "s3" not found'),
    ]


def test_running_starting_and_recovered_pods_are_not_failures() -> None:
    running = {
        "name": "server",
        "state": {"running": {}},
        "lastState": {"terminated": {"exitCode": 1}},
    }
    starting = {"name": "server", "state": {"waiting": {"reason": "ContainerCreating"}}}
    done = {"name": "fetch-model", "state": {"terminated": {"exitCode": 0}}}
    leaving = {
        **pod("gone", main=[crashed("server", 2)]),
        "metadata": {"name": "gone", "deletionTimestamp": "x"},
    }
    assert (
        pod_failures([pod("a", init=[done], main=[running]), pod("b", main=[starting]), leaving])
        == []
    )


def test_a_server_that_keeps_exiting_is_failing_with_its_last_words_bounded() -> None:
    failures = pod_failures([pod("p", main=[crashed("server", 137, "x" * 5000)])])
    assert failures[0].reason == "ContainerFailing"
    assert failures[0].message.startswith("pod p: container server exited with 137: ...xxx")
    assert len(failures[0].message) < 500


def test_only_the_last_line_is_kept_without_colours() -> None:
    said = "loading\n\x1b[31mTraceback ...\x1b[0m\nValueError: bad \x07input\n\n"
    failures = pod_failures([pod("p", main=[crashed("server", 1, said)])])
    assert failures[0].message == "pod p: container server exited with 1: ValueError: bad input"


def test_an_init_container_retrying_after_a_failure_is_failing() -> None:
    retrying = {
        "name": "fetch-model",
        "state": {"running": {}},
        "lastState": {"terminated": {"exitCode": 1, "message": "digest mismatch"}},
    }
    failures = pod_failures([pod("p", init=[retrying])])
    assert [(f.reason, f.message) for f in failures] == [
        ("ModelLoadFailed", "pod p: container fetch-model exited with 1: digest mismatch")
    ]
