"""HappyHorse 1.1 video generation (EmpirioLabs) through a sandboxed WebAssembly component.

    import happyhorse
    client = happyhorse.Client()  # key from EMPIRIOLABS_API_KEY
    result = client.generate(prompt="A horse gallops along a beach at sunset.")
    print(result.outputs)

The package bundles the `videogen:api/video-gen@0.3.0` component and runs it in Wasmtime
(`wasmtime` from PyPI). See the README for what that sandbox does and does not restrict.
"""

from .async_client import AsyncClient
from .client import DEFAULT_BASE_URL, Client, ProgressCallback
from .errors import (ApiError, ComponentError, Error, ExecutionFailedError,
                     InsufficientCreditsError, InvalidRequestError, JobFailedError,
                     MalformedResponseError, NotFoundError, RateLimitedError, ServerError,
                     SubmitOutcomeUnknownError, TimeoutError, TransportError, UnauthorizedError)
from .types import (CostEstimate, FieldViolation, FieldWarning, JobFailure, JobResult, JobState,
                    JobStatus, Mode, PollPolicy, ProgressReading, ResolutionRate, TransportKind,
                    ValidatedRequest, VideoRequest, VideoRequestArgs)

__version__ = "0.3.0"

__all__ = [
    "AsyncClient", "Client", "DEFAULT_BASE_URL", "ProgressCallback",
    "Error", "ComponentError", "InvalidRequestError", "ApiError", "UnauthorizedError",
    "InsufficientCreditsError", "RateLimitedError", "JobFailedError", "NotFoundError",
    "ServerError", "TransportError", "SubmitOutcomeUnknownError", "TimeoutError",
    "MalformedResponseError", "ExecutionFailedError",
    "CostEstimate", "FieldViolation", "FieldWarning", "JobFailure", "JobResult", "JobState",
    "JobStatus", "Mode", "PollPolicy", "ProgressReading", "ResolutionRate", "TransportKind", "ValidatedRequest",
    "VideoRequest", "VideoRequestArgs",
]
