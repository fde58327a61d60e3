"""`Client`: the `video-gen` contract as Python methods, one fresh component instance per call."""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Sequence, Unpack
from urllib.parse import urlsplit

from . import _component, _convert, errors
from .types import (CostEstimate, JobFailure, JobResult, JobState, JobStatus, PollPolicy,
                    ResolutionRate, TransportKind, ValidatedRequest, VideoRequestArgs)

#: The real service. Point `base_url` at an emulator for tests.
DEFAULT_BASE_URL = "https://api.empiriolabs.ai"
KEY_VARIABLE = "EMPIRIOLABS_API_KEY"

ProgressCallback = Callable[[JobStatus], object]


class _Cancelled(Exception):
    """Internal: `AsyncClient` abandoned a wait; the worker thread stops at its next step."""


class Client:
    """A client of HappyHorse 1.1 through the bundled WebAssembly component.

    `api_key` defaults to the `EMPIRIOLABS_API_KEY` environment variable (read now, once);
    `base_url` to the real service. Timeouts are seconds; `None` keeps the component's
    defaults (connect 10 s, first byte 30 s, between bytes 15 s, 1 MiB responses).

    Every call blocks its thread and runs in a fresh instance of the component, so one
    `Client` may be shared by many threads. Creating the first client compiles the component
    (once per process) and raises `happyhorse.ComponentError` if it is missing or corrupt.
    """

    def __init__(self, api_key: str | None = None, base_url: str | None = None, *,
                 connect_timeout: float | None = None,
                 first_byte_timeout: float | None = None,
                 between_bytes_timeout: float | None = None,
                 max_response_bytes: int | None = None,
                 poll: PollPolicy | None = None) -> None:
        self._configure(api_key, base_url, connect_timeout, first_byte_timeout,
                        between_bytes_timeout, max_response_bytes, poll)
        _component.load()

    def _configure(self, api_key: str | None, base_url: str | None,
                   connect_timeout: float | None, first_byte_timeout: float | None,
                   between_bytes_timeout: float | None, max_response_bytes: int | None,
                   poll: PollPolicy | None) -> None:
        self.base_url = base_url or DEFAULT_BASE_URL
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http:// or https:// URL, not {self.base_url!r}")
        self._api_key = api_key if api_key is not None else os.environ.get(KEY_VARIABLE)
        self.poll_policy = poll or PollPolicy()
        if max_response_bytes is not None and not 0 < max_response_bytes <= _convert.U32_MAX:
            raise ValueError(f"max_response_bytes must be 1 to {_convert.U32_MAX}")
        # Checked now (a ValueError here, not at the first call), then rebuilt per call.
        _convert.poll_record(self.poll_policy)
        self._timeouts = {
            "connect_timeout_ms": _convert.millis("connect_timeout", connect_timeout),
            "first_byte_timeout_ms": _convert.millis("first_byte_timeout", first_byte_timeout),
            "between_bytes_timeout_ms": _convert.millis("between_bytes_timeout",
                                                        between_bytes_timeout),
        }
        self._max_response_bytes = max_response_bytes

    def __repr__(self) -> str:  # never the key
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def _config(self, deadline: float | None = None) -> Any:
        # A key of None makes the component read EMPIRIOLABS_API_KEY from its own WASI
        # environment, which is empty: it then raises UnauthorizedError (missing_api_key).
        return _convert.record(
            base_url=self.base_url, api_key=self._api_key, **self._timeouts,
            max_response_bytes=self._max_response_bytes,
            poll=_convert.poll_record(self.poll_policy, deadline))

    # --- The contract ---------------------------------------------------------------------

    def validate(self, **request: Unpack[VideoRequestArgs]) -> ValidatedRequest:
        """Check a request against every rule, offline; return it with defaults filled in.

        Raises `InvalidRequestError` listing every violated rule.
        """
        value = _component.call("validate", _convert.request_record(request))
        return _convert.validated_request(_convert.unwrap(value))

    def estimate_cost(self, *, rates: Sequence[ResolutionRate] | None = None,
                      **request: Unpack[VideoRequestArgs]) -> CostEstimate:
        """Price a request if it succeeds, offline. `rates` overrides the built-in rate card."""
        value = _component.call("estimate-cost", _convert.request_record(request),
                                _convert.rates_list(rates))
        return _convert.cost_estimate(_convert.unwrap(value))

    def submit(self, **request: Unpack[VideoRequestArgs]) -> str:
        """Validate, then send the request as exactly one job; return its id. Persist the id.

        An invalid request raises `InvalidRequestError` before anything is sent.
        `SubmitOutcomeUnknownError` means a job may exist: do not resubmit blindly.
        """
        record = _convert.request_record(request)
        return str(_convert.unwrap(_component.call("submit", self._config(), record)))

    def poll(self, job_id: str) -> JobStatus:
        """Read a job's state once."""
        return self._poll(job_id, None)

    def wait(self, job_id: str, *, timeout: float | None = None,
             on_progress: ProgressCallback | None = None) -> JobResult:
        """Poll until the job completes; return its outputs.

        `timeout` (seconds, default the poll policy's `deadline`) bounds the whole wait; then
        `happyhorse.TimeoutError` carries the job id to resume with. `on_progress` is called
        in this thread with every reading. A job that fails raises `JobFailedError`.
        """
        return self._wait(job_id, timeout, on_progress, 0.0, None)

    def generate(self, *, timeout: float | None = None,
                 on_progress: ProgressCallback | None = None,
                 **request: Unpack[VideoRequestArgs]) -> JobResult:
        """`submit`, then `wait`. Any error after the submit carries the job's id in `job_id`,
        so the caller can resume with `wait` instead of paying for a second job."""
        return self._generate(timeout, on_progress, None, request)

    # --- How wait and generate are driven -------------------------------------------------

    def _generate(self, timeout: float | None, on_progress: ProgressCallback | None,
                  cancel: threading.Event | None, request: VideoRequestArgs) -> JobResult:
        # Submit and wait as two calls rather than the contract's `generate`, so that the id
        # is known here and attached to every later error, and progress can be reported.
        job_id = self.submit(**request)
        if cancel is not None and cancel.is_set():
            raise _Cancelled
        # A job just accepted is queued: polling at once would only spend request budget.
        return self._wait(job_id, timeout, on_progress, self.poll_policy.min_interval, cancel)

    def _poll(self, job_id: str, deadline: float | None) -> JobStatus:
        if not isinstance(job_id, str):
            raise TypeError(f"job_id must be str, not {type(job_id).__name__}")
        try:
            value = _component.call("poll", self._config(deadline), job_id)
            return _convert.job_status(_convert.unwrap(value))
        except errors.Error as e:
            e.job_id = e.job_id or job_id
            raise

    def _wait(self, job_id: str, timeout: float | None, on_progress: ProgressCallback | None,
              first_delay: float, cancel: threading.Event | None) -> JobResult:
        if not isinstance(job_id, str):
            raise TypeError(f"job_id must be str, not {type(job_id).__name__}")
        budget = self.poll_policy.deadline if timeout is None else timeout
        if budget <= 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        end = time.monotonic() + budget
        try:
            if on_progress is None and cancel is None:
                # Nothing to report: the component's own `wait` does the polling.
                _sleep(min(first_delay, budget), None)
                left = end - time.monotonic()
                if left <= 0.001:
                    raise errors.TimeoutError(job_id, None)
                value = _component.call("wait", self._config(left), job_id)
                return _convert.job_result(_convert.unwrap(value))
            return self._poll_loop(job_id, end, on_progress, first_delay, cancel)
        except errors.Error as e:
            e.job_id = e.job_id or job_id
            raise

    def _poll_loop(self, job_id: str, end: float, on_progress: ProgressCallback | None,
                   delay: float, cancel: threading.Event | None) -> JobResult:
        # The contract's `wait` reports no progress, so to report it (or to stop when an
        # AsyncClient task is cancelled) the package polls itself, by the same rules as the
        # component's loop (guest/core/src/client/wait.rs): space polls by `next_poll_ms`,
        # give each poll only what is left of the deadline, and absorb failures that cost
        # one poll but not the job.
        last: JobStatus | None = None
        while True:
            now = time.monotonic()
            if now >= end:
                raise errors.TimeoutError(job_id, last)
            if delay > 0:
                _sleep(min(delay, end - now), cancel)
                if time.monotonic() >= end:
                    raise errors.TimeoutError(job_id, last)
            try:
                status = self._poll(job_id, max(end - time.monotonic(), 0.001))
            except (errors.RateLimitedError, errors.ServerError):
                delay = self.poll_policy.max_interval
                continue
            except errors.TransportError as e:
                if e.kind in (TransportKind.DENIED, TransportKind.TLS):
                    raise
                delay = self.poll_policy.max_interval
                continue
            except errors.MalformedResponseError:
                if time.monotonic() < end:
                    raise
                continue  # cut short by the deadline: the check above raises TimeoutError
            if cancel is not None and cancel.is_set():
                raise _Cancelled
            if on_progress is not None:
                on_progress(status)
            done = _finished(job_id, status)
            if done is not None:
                return done
            last, delay = status, status.next_poll_ms / 1000


def _finished(job_id: str, status: JobStatus) -> JobResult | None:
    """A terminal reading as `wait`'s outcome (as the component words it); None while going."""
    if status.state is JobState.COMPLETED:
        return JobResult(job_id=job_id, outputs=status.outputs, status=status)
    if status.state is JobState.FAILED:
        raise errors.JobFailedError(job_id, status.failure or JobFailure("failed", status.raw_status))
    if status.state is JobState.CANCELLED:
        raise errors.JobFailedError(job_id, JobFailure("cancelled", "the job was cancelled"))
    if status.state is JobState.EXPIRED:
        raise errors.JobFailedError(job_id, JobFailure("expired", "the job expired"))
    return None


def _sleep(seconds: float, cancel: threading.Event | None) -> None:
    if seconds <= 0:
        return
    if cancel is None:
        time.sleep(seconds)
    elif cancel.wait(seconds):
        raise _Cancelled
