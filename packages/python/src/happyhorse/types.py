"""The values the `video-gen` contract passes, as frozen dataclasses and enums.

Field names are the WIT's in snake_case (`job-id` is `job_id`), so the contract's own
documentation (`wit/deps/videogen-api/video-gen.wit` in the project) describes them.
Durations the caller *passes* (timeouts, poll spacing) are seconds, as usual in Python;
durations the contract *returns* keep their WIT name and unit (`next_poll_ms`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NotRequired, Required, Sequence, TypedDict


class Mode(str, enum.Enum):
    """How the provider should interpret a request (WIT `mode`)."""

    AUTO = "auto"
    """Choose from the images: none is text-to-video, one image-to-video, several reference-to-video."""
    T2V = "t2v"
    """Text to video: no images."""
    I2V = "i2v"
    """Image to video: animate exactly one image."""
    R2V = "r2v"
    """Reference to video: keep the characters of the images consistent."""


class VideoRequestArgs(TypedDict, total=False):
    """The keyword arguments of a request (WIT `video-request`); only `prompt` is required.

    Omitted fields take the provider's default; `Client.validate` returns them filled in.
    """

    prompt: Required[str]
    model: NotRequired[str | None]
    mode: NotRequired[Mode | str | None]
    images: NotRequired[Sequence[str]]
    aspect_ratio: NotRequired[str | None]
    resolution: NotRequired[str | None]
    duration_seconds: NotRequired[int | None]
    seed: NotRequired[int | None]
    watermark: NotRequired[bool | None]


@dataclass(frozen=True)
class VideoRequest:
    """A request as the component will send it (WIT `video-request`)."""

    prompt: str
    model: str | None = None
    mode: Mode | None = None
    images: tuple[str, ...] = ()
    aspect_ratio: str | None = None
    resolution: str | None = None
    duration_seconds: int | None = None
    seed: int | None = None
    watermark: bool | None = None


@dataclass(frozen=True)
class FieldViolation:
    """One rule a request broke. `field` is the provider's wire spelling (`duration`, `image`)."""

    field: str
    rule: str
    message: str


@dataclass(frozen=True)
class FieldWarning:
    """Something `validate` accepted that may not do what the caller expects."""

    field: str
    message: str


@dataclass(frozen=True)
class ValidatedRequest:
    """The outcome of `validate`: the request with every default filled in, and warnings."""

    request: VideoRequest
    warnings: tuple[FieldWarning, ...]


@dataclass(frozen=True)
class ResolutionRate:
    """A price per second of video at one resolution, in millionths of a currency unit."""

    resolution: str
    micros_per_second: int


@dataclass(frozen=True)
class CostEstimate:
    """What a request will cost if it succeeds; amounts in millionths (700000 = 0.70)."""

    currency: str
    billed_seconds: int
    micros_per_second: int
    total_micros: int


@dataclass(frozen=True)
class PollPolicy:
    """How `wait` spaces its polls and how long it may take, in seconds (WIT `poll-policy`)."""

    min_interval: float = 5.0
    max_interval: float = 15.0
    deadline: float = 900.0
    """How long one `wait` may take in all before it raises `happyhorse.TimeoutError`."""
    max_retries: int = 4
    """How often one request is retried after a 429, a 5xx on a read, or a refused connection."""


class JobState(str, enum.Enum):
    """Where a job stands (the case of WIT `job-state`)."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        """True once the job will not change any more."""
        return self not in (JobState.QUEUED, JobState.RUNNING)


@dataclass(frozen=True)
class JobFailure:
    """Why a job failed, as the provider put it."""

    code: str
    message: str


@dataclass(frozen=True)
class ProgressReading:
    """A job's progress as the provider wrote it, before scaling (WIT `progress-reading`).

    One reading alone cannot always tell a fraction from a percentage: a job that ever writes
    a number above 1, or a `%`, reports percentages, and its earlier readings too.
    """

    value: float
    marked_percent: bool


@dataclass(frozen=True)
class JobStatus:
    """One reading of a job (WIT `job-status`).

    The WIT variant `job-state` is flattened: `state` is its case, and its payload is
    `progress` (running, 0.0-1.0 from this one reading, when reported), `outputs` (completed)
    or `failure` (failed). `progress_reading` is the number as written, to settle a job's
    scale across its readings.
    """

    job_id: str
    state: JobState
    raw_status: str
    next_poll_ms: int
    progress: float | None = None
    outputs: tuple[str, ...] = ()
    failure: JobFailure | None = None
    created_at: str | None = None
    completed_at: str | None = None
    progress_reading: ProgressReading | None = None


@dataclass(frozen=True)
class JobResult:
    """A completed job: output video URLs (signed, short-lived: download them promptly)."""

    job_id: str
    outputs: tuple[str, ...]
    status: JobStatus


class TransportKind(str, enum.Enum):
    """What kind of transport failure happened (WIT `transport-kind`)."""

    DNS = "dns"
    CONNECT = "connect"
    DENIED = "denied"
    TLS = "tls"
    INTERRUPTED = "interrupted"
    OTHER = "other"
