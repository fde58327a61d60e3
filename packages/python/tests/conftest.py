"""Fixtures: the emulator under test (HAPPYHORSE_EMULATOR_URL, key `emulator-key`)."""

from __future__ import annotations

import json
import os
import socket
import urllib.request
from typing import Callable, Iterator

import pytest

import happyhorse

KEY = "emulator-key"
# Emulator jobs take seconds: poll often so the suite stays quick, but not so often that the
# emulator's account budget (50 requests a minute, as the real service) makes calls wait.
FAST = happyhorse.PollPolicy(min_interval=0.5, max_interval=1.0, deadline=120.0)


@pytest.fixture(scope="session")
def emulator_url() -> str:
    url = os.environ.get("HAPPYHORSE_EMULATOR_URL")
    if not url:
        pytest.fail("set HAPPYHORSE_EMULATOR_URL to a running `host-demo emulator`")
    return url.rstrip("/")


@pytest.fixture
def client(emulator_url: str) -> happyhorse.Client:
    return happyhorse.Client(api_key=KEY, base_url=emulator_url, poll=FAST)


@pytest.fixture
def finished_jobs(emulator_url: str) -> Callable[[], set[str]]:
    """The ids of the emulator's finished jobs (its `/v1/account/usage` lists those only).

    Every test waits for the jobs it submits, so a job that appears between two readings
    was made by the code in between.
    """

    def read() -> set[str]:
        request = urllib.request.Request(f"{emulator_url}/v1/account/usage",
                                         headers={"Authorization": f"Bearer {KEY}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return {entry["job_id"] for entry in json.load(response)["data"]}

    return read


@pytest.fixture
def closed_port() -> Iterator[str]:
    """A URL on 127.0.0.1 where nothing listens (a port bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield f"http://127.0.0.1:{port}"
