"""Exceptions: one class per case of the WIT `error` variant, all under `happyhorse.Error`.

The WIT prefixes two cases with `permanent-` to tell workflow engines not to retry them; the
classes drop the prefix (`permanent-unauthorized` is `UnauthorizedError`) and keep the rule
in their docstrings. `ComponentError` is the package's own: the bundled component is missing,
corrupt or unusable.
"""

from __future__ import annotations

from typing import Sequence

from .types import FieldViolation, JobFailure, JobStatus, TransportKind


class Error(Exception):
    """Base class of every error this package raises on purpose.

    `job_id` names the submitted job when the error happened after a submit (in `generate`)
    or concerns one job (`poll`, `wait`): resume with `Client.wait(job_id)` rather than
    submitting, and paying, again. `None` otherwise.
    """

    #: The WIT case name (`permanent-invalid-request`, ...), or `None` for `ComponentError`.
    case: str | None = None

    def __init__(self, message: str, *, job_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.job_id = job_id


class ComponentError(Error):
    """The bundled WebAssembly component is missing, corrupt, or does not export the contract."""


class InvalidRequestError(Error):
    """`permanent-invalid-request`: the request broke these rules; nothing was sent.

    Fix the fields in `violations` and call again.
    """

    case = "permanent-invalid-request"

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        self.violations: tuple[FieldViolation, ...] = tuple(violations)
        super().__init__("invalid request: " + "; ".join(
            f"{v.field}: {v.message}" for v in self.violations))


class ApiError(Error):
    """Base of the cases that carry the provider's answer (WIT `api-error`).

    `status` is the HTTP status, or 0 when the component found the problem before sending
    anything (`missing_api_key`); `code` is the provider's error code when it sent one.
    """

    def __init__(self, status: int, code: str | None, message: str, *,
                 job_id: str | None = None) -> None:
        self.status = status
        self.code = code
        prefix = f"{status} {code}: " if code else (f"{status}: " if status else "")
        super().__init__(prefix + message, job_id=job_id)
        self.message = message


class UnauthorizedError(ApiError):
    """`permanent-unauthorized`: the API key is missing, malformed or refused. Fix the key."""

    case = "permanent-unauthorized"


class InsufficientCreditsError(ApiError):
    """`insufficient-credits`: the account cannot pay for this job (402)."""

    case = "insufficient-credits"


class ServerError(ApiError):
    """`server-error`: the provider failed (5xx or an unexpected status) even after retries."""

    case = "server-error"


class MalformedResponseError(ApiError):
    """`malformed-response`: an answer the component cannot read, or one over `max_response_bytes`."""

    case = "malformed-response"


class RateLimitedError(Error):
    """`rate-limited`: the account's request budget is spent (429, even after retries).

    Wait `retry_after` seconds (when the provider said) and call again.
    """

    case = "rate-limited"

    def __init__(self, retry_after_ms: int | None, message: str, *,
                 job_id: str | None = None) -> None:
        self.retry_after_ms = retry_after_ms
        super().__init__(message, job_id=job_id)

    @property
    def retry_after(self) -> float | None:
        """The delay the provider asked for, in seconds, or `None` if it sent none."""
        return None if self.retry_after_ms is None else self.retry_after_ms / 1000


class JobFailedError(Error):
    """`job-failed`: the job ended as failed, cancelled or expired; `failure` says why."""

    case = "job-failed"

    def __init__(self, job_id: str, failure: JobFailure) -> None:
        self.failure = failure
        super().__init__(f"job {job_id} failed: {failure.code}: {failure.message}", job_id=job_id)


class NotFoundError(Error):
    """`not-found`: the provider does not know this job id (404)."""

    case = "not-found"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} not found", job_id=job_id)


class TransportError(Error):
    """`transport-error`: the request never produced an HTTP response; `kind` says why."""

    case = "transport-error"

    def __init__(self, kind: TransportKind, message: str, *, job_id: str | None = None) -> None:
        self.kind = kind
        super().__init__(f"{kind.value}: {message}", job_id=job_id)
        self.message = message


class SubmitOutcomeUnknownError(Error):
    """`permanent-submit-outcome-unknown`: a submit was sent, but whether it created (and
    billed) a job is unknown.

    Do not resubmit blindly: check the provider's usage or job list first.
    """

    case = "permanent-submit-outcome-unknown"


class TimeoutError(Error):  # noqa: A001 - named after the WIT case, like asyncio.TimeoutError was
    """`timeout`: `wait` reached its deadline; the job goes on at the provider.

    Resume with `Client.wait(err.job_id)`. `last_status` is the last reading, if any poll
    succeeded. Not the built-in `TimeoutError`: catch `happyhorse.TimeoutError`.
    """

    case = "timeout"
    job_id: str

    def __init__(self, job_id: str, last_status: JobStatus | None) -> None:
        self.last_status = last_status
        super().__init__(f"job {job_id} did not end in time; it goes on: resume it with wait",
                         job_id=job_id)


class ExecutionFailedError(Error):
    """`execution-failed`: the component trapped or the host stopped the call.

    The component never returns this case itself; the package raises it when the WebAssembly
    call traps. `detail` holds Wasmtime's full message (with the wasm backtrace) for a bug report.
    """

    case = "execution-failed"

    def __init__(self, message: str, *, detail: str = "", job_id: str | None = None) -> None:
        self.detail = detail
        super().__init__(message, job_id=job_id)
