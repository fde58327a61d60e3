"""The installed `happyhorse` wheel against a running emulator (see test-wheel.sh)."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import pytest

import happyhorse
from happyhorse import _component

from conftest import FAST, KEY

PROMPT = "A horse gallops along a beach at sunset."


def test_imports_the_installed_wheel_with_its_component() -> None:
    package = Path(happyhorse.__file__).parent
    assert "site-packages" in package.parts, package
    assert (package / "happyhorse.wasm").is_file()
    assert (package / "py.typed").is_file()
    assert happyhorse.__version__ == "0.3.0"


def test_generate_end_to_end(client: happyhorse.Client, emulator_url: str) -> None:
    result = client.generate(prompt=PROMPT, duration_seconds=5)
    assert result.job_id.startswith("job_")
    assert result.status.state is happyhorse.JobState.COMPLETED
    assert result.outputs and all(u.startswith(emulator_url + "/files/") for u in result.outputs)
    with urllib.request.urlopen(result.outputs[0], timeout=10) as response:
        assert response.read(12)[4:8] == b"ftyp"  # an MP4


def test_submit_poll_wait(client: happyhorse.Client,
                          finished_jobs: Callable[[], set[str]]) -> None:
    before = finished_jobs()
    job_id = client.submit(prompt=PROMPT, mode="t2v", resolution="1080p", seed=42)
    status = client.poll(job_id)
    assert status.job_id == job_id and not status.state.is_terminal
    result = client.wait(job_id)
    assert result.job_id == job_id and result.outputs == result.status.outputs
    assert finished_jobs() - before == {job_id}  # one job: polling and waiting never submit


def test_validate_and_estimate_offline(closed_port: str) -> None:
    # No key and nothing listening: both work without the network.
    client = happyhorse.Client(api_key="unused", base_url=closed_port)
    checked = client.validate(prompt=PROMPT)
    assert checked.request.resolution == "720p" and checked.request.duration_seconds == 5
    cost = client.estimate_cost(prompt=PROMPT, duration_seconds=8, resolution="1080p")
    assert (cost.currency, cost.billed_seconds) == ("USD", 8)
    assert cost.total_micros == 8 * cost.micros_per_second
    own = client.estimate_cost(prompt=PROMPT, rates=[happyhorse.ResolutionRate("720p", 1)])
    assert own.total_micros == 5


def test_invalid_request_raises_before_sending(
        client: happyhorse.Client, finished_jobs: Callable[[], set[str]],
        closed_port: str) -> None:
    bad = dict(prompt="", duration_seconds=99, seed=-1)
    before = finished_jobs()
    with pytest.raises(happyhorse.InvalidRequestError) as caught:
        client.submit(**bad)  # type: ignore[arg-type]
    assert {v.field for v in caught.value.violations} == {"prompt", "duration", "seed"}
    assert {v.rule for v in caught.value.violations} >= {"out-of-range"}
    with pytest.raises(happyhorse.InvalidRequestError):
        client.generate(prompt="x", aspect_ratio="7:3")
    # A job those calls had made would be older than this one, and finished by now.
    valid = client.generate(prompt=PROMPT)
    assert finished_jobs() - before == {valid.job_id}
    # Nothing listens here: the error is the request's, not a connection failure.
    offline = happyhorse.Client(api_key=KEY, base_url=closed_port)
    with pytest.raises(happyhorse.InvalidRequestError):
        offline.submit(**bad)  # type: ignore[arg-type]
    with pytest.raises(happyhorse.InvalidRequestError) as mode:
        offline.validate(prompt="x", mode="sideways")
    assert mode.value.violations[0].field == "mode"


def test_wrong_types_are_type_errors(client: happyhorse.Client) -> None:
    with pytest.raises(TypeError):
        client.validate(prompt="x", colour="red")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        client.validate(prompt="x", duration_seconds="5")  # type: ignore[arg-type]


def test_valid_request_to_a_closed_port_is_a_transport_error(closed_port: str) -> None:
    client = happyhorse.Client(api_key=KEY, base_url=closed_port,
                               poll=happyhorse.PollPolicy(max_retries=0))
    with pytest.raises(happyhorse.TransportError) as caught:
        client.submit(prompt=PROMPT)
    assert caught.value.kind is happyhorse.TransportKind.CONNECT


def test_wrong_key_is_unauthorized(emulator_url: str) -> None:
    client = happyhorse.Client(api_key="not-the-key", base_url=emulator_url)
    with pytest.raises(happyhorse.UnauthorizedError) as caught:
        client.submit(prompt=PROMPT)
    assert caught.value.status == 401 and caught.value.code == "invalid_api_key"
    assert isinstance(caught.value, happyhorse.ApiError)
    assert "not-the-key" not in repr(client)


def test_missing_key_is_unauthorized(emulator_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMPIRIOLABS_API_KEY", raising=False)
    with pytest.raises(happyhorse.UnauthorizedError) as caught:
        happyhorse.Client(base_url=emulator_url).submit(prompt=PROMPT)
    assert caught.value.status == 0  # found by the component, nothing sent
    monkeypatch.setenv("EMPIRIOLABS_API_KEY", KEY)
    from_env = happyhorse.Client(base_url=emulator_url, poll=FAST)
    assert from_env.generate(prompt=PROMPT).outputs


def test_unknown_job_is_not_found(client: happyhorse.Client) -> None:
    with pytest.raises(happyhorse.NotFoundError) as caught:
        client.poll("job_00000000000000000000000000000000")
    assert caught.value.job_id == "job_00000000000000000000000000000000"


def test_timeout_carries_the_job_id_and_the_job_resumes(client: happyhorse.Client) -> None:
    job_id = client.submit(prompt=PROMPT)
    with pytest.raises(happyhorse.TimeoutError) as caught:
        client.wait(job_id, timeout=0.3)
    assert caught.value.job_id == job_id
    seen: list[happyhorse.JobStatus] = []
    with pytest.raises(happyhorse.TimeoutError) as again:
        client.wait(job_id, timeout=0.5, on_progress=seen.append)
    assert again.value.job_id == job_id and again.value.last_status is not None
    assert client.wait(job_id).job_id == job_id


def test_on_progress_is_called(client: happyhorse.Client) -> None:
    seen: list[happyhorse.JobStatus] = []
    result = client.generate(prompt=PROMPT, on_progress=seen.append)
    assert seen and seen[-1].state is happyhorse.JobState.COMPLETED and seen[-1] == result.status
    assert {s.job_id for s in seen} == {result.job_id}
    assert not any(s.state.is_terminal for s in seen[:-1])


def test_progress_as_written(client: happyhorse.Client) -> None:
    # The emulator answers this job's polls with 0.6, then 6: a percent job's first readings.
    job_id = client.submit(prompt=f"{PROMPT} [emulator:progress=0.6,6]")
    status = client.poll(job_id)
    while status.state is happyhorse.JobState.QUEUED:
        time.sleep(0.1)
        status = client.poll(job_id)
    assert status.state is happyhorse.JobState.RUNNING
    assert status.progress_reading == happyhorse.ProgressReading(0.6, False)
    assert status.progress == 0.6
    status = client.poll(job_id)
    assert status.progress_reading == happyhorse.ProgressReading(6.0, False)
    assert status.progress == 0.06
    assert client.wait(job_id).status.state is happyhorse.JobState.COMPLETED


def test_threads_share_one_client(client: happyhorse.Client) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda i: client.generate(prompt=f"{PROMPT} #{i}"), range(4)))
    assert len({r.job_id for r in results}) == 4
    assert all(r.outputs for r in results)


def test_async_client_does_not_block_the_loop(emulator_url: str) -> None:
    async def main() -> None:
        client = happyhorse.AsyncClient(api_key=KEY, base_url=emulator_url, poll=FAST)
        ticks = 0
        loop_thread = threading.get_ident()
        callback_threads: set[int] = set()

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        def progress(status: happyhorse.JobStatus) -> None:
            callback_threads.add(threading.get_ident())

        tick_task = asyncio.create_task(ticker())
        started = time.monotonic()
        results = await asyncio.gather(
            client.generate(prompt=PROMPT, on_progress=progress),
            client.generate(prompt=PROMPT + " Again."),
            client.validate(prompt=PROMPT))
        elapsed = time.monotonic() - started
        tick_task.cancel()
        first, second, checked = results
        assert first.job_id != second.job_id and first.outputs and second.outputs
        assert checked.request.prompt == PROMPT
        assert callback_threads == {loop_thread}  # callbacks run on the loop's thread
        # The loop kept ticking throughout the waits (most of the expected ticks happened).
        assert ticks >= 0.5 * elapsed / 0.05, (ticks, elapsed)
        with pytest.raises(happyhorse.InvalidRequestError):
            await client.submit(prompt="")

    asyncio.run(main())


def test_async_cancellation_stops_the_wait(emulator_url: str) -> None:
    async def main() -> None:
        client = happyhorse.AsyncClient(api_key=KEY, base_url=emulator_url, poll=FAST)
        job_id = await client.submit(prompt=PROMPT)
        task = asyncio.create_task(client.wait(job_id))
        await asyncio.sleep(0.3)
        task.cancel()
        started = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 1.0
        assert (await client.wait(job_id)).job_id == job_id  # the job itself went on

    asyncio.run(main())


def test_corrupt_component_is_a_clear_error(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    corrupt = tmp_path / "happyhorse.wasm"
    corrupt.write_bytes(b"\0asm\x0d\0\x01\0" + b"\xff" * 64)
    monkeypatch.setattr(_component, "COMPONENT_FILE", corrupt)
    with pytest.raises(happyhorse.ComponentError) as caught:
        happyhorse.Client(api_key=KEY)
    assert "not a valid WebAssembly component" in str(caught.value)
    assert "wasm backtrace" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    # AsyncClient compiles on its first call, in a worker thread: the same error there.
    with pytest.raises(happyhorse.ComponentError):
        asyncio.run(happyhorse.AsyncClient(api_key=KEY).validate(prompt=PROMPT))


def test_missing_component_is_a_clear_error(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_component, "COMPONENT_FILE", tmp_path / "gone.wasm")
    with pytest.raises(happyhorse.ComponentError, match="cannot be read"):
        happyhorse.Client(api_key=KEY)


def test_a_core_module_is_not_the_component(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "module.wasm"
    module.write_bytes(b"\0asm\x01\0\0\0")  # an empty, valid core module
    monkeypatch.setattr(_component, "COMPONENT_FILE", module)
    with pytest.raises(happyhorse.ComponentError):
        happyhorse.Client(api_key=KEY)


def test_bad_configuration_is_refused_at_once() -> None:
    with pytest.raises(ValueError):
        happyhorse.Client(api_key=KEY, base_url="ftp://example.com")
    with pytest.raises(ValueError):
        happyhorse.Client(api_key=KEY, connect_timeout=0)
    with pytest.raises(ValueError):
        happyhorse.Client(api_key=KEY, poll=happyhorse.PollPolicy(deadline=-1))


def test_every_wit_error_case_has_a_class() -> None:
    cases = {"permanent-invalid-request", "permanent-unauthorized", "insufficient-credits",
             "rate-limited", "job-failed", "not-found", "server-error", "transport-error",
             "permanent-submit-outcome-unknown", "timeout", "malformed-response",
             "execution-failed"}
    classes = [getattr(happyhorse, n) for n in happyhorse.__all__]
    found = {c.case for c in classes if isinstance(c, type) and issubclass(c, happyhorse.Error)}
    assert cases <= found
