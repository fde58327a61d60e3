"""`AsyncClient`: the same calls for asyncio, run in worker threads so the loop never blocks."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, Sequence, TypeVar, Unpack

from .client import Client, ProgressCallback, _Cancelled
from .types import (CostEstimate, JobResult, JobStatus, PollPolicy, ResolutionRate,
                    ValidatedRequest, VideoRequestArgs)

T = TypeVar("T")


class AsyncClient:
    """`Client` for asyncio. Arguments, results and errors are `Client`'s.

    Each call runs in the default executor (a thread), in its own component instance, so
    many calls may run at once. `on_progress` is called on the event loop's thread.
    Cancelling a `wait` or `generate` task stops its polling at the next step (within one
    poll request); a `submit` already sent cannot be taken back.
    """

    def __init__(self, api_key: str | None = None, base_url: str | None = None, *,
                 connect_timeout: float | None = None,
                 first_byte_timeout: float | None = None,
                 between_bytes_timeout: float | None = None,
                 max_response_bytes: int | None = None,
                 poll: PollPolicy | None = None) -> None:
        # Configure without compiling: compiling (~0.2 s) happens in the first call's
        # worker thread instead of blocking the event loop here.
        self._client = Client.__new__(Client)
        self._client._configure(api_key, base_url, connect_timeout, first_byte_timeout,
                                between_bytes_timeout, max_response_bytes, poll)

    @property
    def base_url(self) -> str:
        """The API base URL calls go to."""
        return self._client.base_url

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    async def validate(self, **request: Unpack[VideoRequestArgs]) -> ValidatedRequest:
        """See `Client.validate`."""
        return await asyncio.to_thread(self._client.validate, **request)

    async def estimate_cost(self, *, rates: Sequence[ResolutionRate] | None = None,
                            **request: Unpack[VideoRequestArgs]) -> CostEstimate:
        """See `Client.estimate_cost`."""
        return await asyncio.to_thread(self._client.estimate_cost, rates=rates, **request)

    async def submit(self, **request: Unpack[VideoRequestArgs]) -> str:
        """See `Client.submit`."""
        return await asyncio.to_thread(self._client.submit, **request)

    async def poll(self, job_id: str) -> JobStatus:
        """See `Client.poll`."""
        return await asyncio.to_thread(self._client.poll, job_id)

    async def wait(self, job_id: str, *, timeout: float | None = None,
                   on_progress: ProgressCallback | None = None) -> JobResult:
        """See `Client.wait`."""
        return await self._cancellable(
            lambda cancel, report: self._client._wait(job_id, timeout, report, 0.0, cancel),
            on_progress)

    async def generate(self, *, timeout: float | None = None,
                       on_progress: ProgressCallback | None = None,
                       **request: Unpack[VideoRequestArgs]) -> JobResult:
        """See `Client.generate`."""
        return await self._cancellable(
            lambda cancel, report: self._client._generate(timeout, report, cancel, request),
            on_progress)

    async def _cancellable(self, run: Callable[[threading.Event, ProgressCallback | None], T],
                           on_progress: ProgressCallback | None) -> T:
        loop = asyncio.get_running_loop()
        cancel = threading.Event()
        report: ProgressCallback | None = None
        if on_progress is not None:
            callback = on_progress

            def report(status: JobStatus) -> Any:
                # Hand each reading to the loop's thread, so callbacks need no locking.
                return loop.call_soon_threadsafe(callback, status)
        try:
            return await asyncio.to_thread(run, cancel, report)
        except asyncio.CancelledError:
            cancel.set()  # the worker thread notices between polls and ends quietly
            raise
        except _Cancelled:  # pragma: no cover - only after the task was cancelled
            raise asyncio.CancelledError from None
