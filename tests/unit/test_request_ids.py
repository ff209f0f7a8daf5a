"""Request ids: unique within a server process and across forked workers."""

from __future__ import annotations

import os

import pytest

from mlpatterns.web import new_request_id

pytestmark = pytest.mark.unit


def test_ids_look_like_uuid_hex_and_do_not_repeat() -> None:
    ids = [new_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_a_forked_worker_draws_its_own_prefix() -> None:
    read, write = os.pipe()
    parent = new_request_id()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    os.close(read)
    assert len(child) == 32
    assert child[:16] != parent[:16]  # same counter position, different process prefix
