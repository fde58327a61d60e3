"""Marshalling between this package's types and wasmtime-py's component values.

wasmtime-py passes a WIT record as `Record` whose attributes are the WIT field names
(kebab-case, so `getattr(r, "job-id")`), an option as `None` or the value, an enum as its
case name, and a variant as `Variant(tag, payload)`. A `result<T, error>` comes back either
tagged (`Variant("ok"|"err", v)`) or untagged (the value, or the `error` variant itself),
depending on whether Python can tell T and E apart; `unwrap` accepts both.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from wasmtime.component import Record, Variant

from . import errors
from .types import (CostEstimate, FieldViolation, FieldWarning, JobFailure, JobResult,
                    JobState, JobStatus, Mode, PollPolicy, ProgressReading, ResolutionRate,
                    TransportKind, ValidatedRequest, VideoRequest)

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
S64_MIN, S64_MAX = -(2**63), 2**63 - 1

REQUEST_FIELDS = ("model", "prompt", "mode", "images", "aspect_ratio", "resolution",
                  "duration_seconds", "seed", "watermark")


def record(**fields: Any) -> Record:
    """A WIT record from Python keywords (`job_id` becomes the field `job-id`)."""
    value = Record()
    for name, field in fields.items():
        setattr(value, name.replace("_", "-"), field)
    return value


def _get(value: Any, name: str) -> Any:
    return getattr(value, name.replace("_", "-"))


# --- Into the component -------------------------------------------------------------------


def _optional(name: str, value: Any, kind: type) -> Any:
    # `bool` is an `int` in Python; a flag passed as a number (or vice versa) is a mistake.
    if value is None or (isinstance(value, kind) and not (kind is int and isinstance(value, bool))):
        return value
    raise TypeError(f"{name} must be {kind.__name__} or None, not {type(value).__name__}")


def request_record(request: Mapping[str, Any]) -> Record:
    """The WIT `video-request` for keyword arguments; `TypeError` for a wrong name or type.

    Values of the right type but out of the WIT's integer range, and unknown modes, raise
    `InvalidRequestError` like the component's own rules do: they could not even be passed.
    """
    unknown = sorted(set(request) - set(REQUEST_FIELDS))
    if unknown:
        raise TypeError(f"unknown request field(s): {', '.join(unknown)}; "
                        f"expected some of {', '.join(REQUEST_FIELDS)}")
    if "prompt" not in request:
        raise TypeError("the request needs a prompt")
    prompt = request["prompt"]
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be str, not {type(prompt).__name__}")
    images = request.get("images", ())
    if isinstance(images, (str, bytes)) or not all(isinstance(i, str) for i in images):
        raise TypeError("images must be a sequence of URL strings")

    violations: list[FieldViolation] = []
    mode = request.get("mode")
    if mode is not None:
        try:
            mode = Mode(mode).value
        except ValueError:
            violations.append(FieldViolation("mode", "one-of", f"mode is {mode!r}; use one of "
                                             + ", ".join(m.value for m in Mode)))
            mode = None
    duration = _optional("duration_seconds", request.get("duration_seconds"), int)
    if duration is not None and not 0 <= duration <= U32_MAX:
        violations.append(FieldViolation("duration", "out-of-range",
                                         f"duration is {duration} s; give a positive number"))
    seed = _optional("seed", request.get("seed"), int)
    if seed is not None and not S64_MIN <= seed <= S64_MAX:
        violations.append(FieldViolation("seed", "out-of-range", f"seed {seed} is out of range"))
    if violations:
        raise errors.InvalidRequestError(violations)

    return record(
        model=_optional("model", request.get("model"), str),
        prompt=prompt,
        mode=mode,
        images=list(images),
        aspect_ratio=_optional("aspect_ratio", request.get("aspect_ratio"), str),
        resolution=_optional("resolution", request.get("resolution"), str),
        duration_seconds=duration,
        seed=seed,
        watermark=_optional("watermark", request.get("watermark"), bool),
    )


def rates_list(rates: Sequence[ResolutionRate] | None) -> list[Record] | None:
    """The `rates` argument of `estimate-cost`."""
    if rates is None:
        return None
    return [record(resolution=r.resolution, micros_per_second=r.micros_per_second) for r in rates]


def millis(name: str, seconds: float | None, maximum: int = U32_MAX) -> int | None:
    """Seconds (as the Python API takes them) to the WIT's whole milliseconds."""
    if seconds is None:
        return None
    ms = round(seconds * 1000)
    if not 0 < ms <= maximum:
        raise ValueError(f"{name} must be more than 0 and at most {maximum / 1000:g} s, not {seconds!r}")
    return ms


def poll_record(policy: PollPolicy, deadline: float | None = None) -> Record:
    """The WIT `poll-policy`; `deadline` (seconds) overrides the policy's own."""
    return record(
        min_interval_ms=millis("min_interval", policy.min_interval),
        max_interval_ms=millis("max_interval", policy.max_interval),
        deadline_ms=millis("deadline", policy.deadline if deadline is None else deadline, U64_MAX),
        max_retries=policy.max_retries,
    )


# --- Out of the component -----------------------------------------------------------------


def unwrap(result: Any) -> Any:
    """The ok value of a `result<T, error>` in either shape; raises the error's exception."""
    if isinstance(result, Variant) and result.tag in ("ok", "err"):
        # Tagged shape. No case of `error` is named ok or err, so this cannot be mistaken.
        payload: Any = result.payload
        if result.tag == "ok":
            return payload
        raise exception(payload)
    if isinstance(result, Variant):
        # Untagged: the `error` variant itself (no ok type of this contract is a variant).
        raise exception(result)
    return result


def video_request(value: Any) -> VideoRequest:
    mode = _get(value, "mode")
    return VideoRequest(
        model=_get(value, "model"), prompt=_get(value, "prompt"),
        mode=None if mode is None else Mode(mode), images=tuple(_get(value, "images")),
        aspect_ratio=_get(value, "aspect_ratio"), resolution=_get(value, "resolution"),
        duration_seconds=_get(value, "duration_seconds"), seed=_get(value, "seed"),
        watermark=_get(value, "watermark"))


def validated_request(value: Any) -> ValidatedRequest:
    return ValidatedRequest(
        request=video_request(_get(value, "request")),
        warnings=tuple(FieldWarning(_get(w, "field"), _get(w, "message"))
                       for w in _get(value, "warnings")))


def cost_estimate(value: Any) -> CostEstimate:
    return CostEstimate(*(_get(value, f) for f in
                          ("currency", "billed_seconds", "micros_per_second", "total_micros")))


def job_failure(value: Any) -> JobFailure:
    return JobFailure(_get(value, "code"), _get(value, "message"))


def job_status(value: Any) -> JobStatus:
    state: Variant = _get(value, "state")
    payload: Any
    tag, payload = JobState(state.tag), state.payload
    return JobStatus(
        job_id=_get(value, "job_id"), state=tag, raw_status=_get(value, "raw_status"),
        next_poll_ms=_get(value, "next_poll_ms"),
        progress=payload if tag is JobState.RUNNING else None,
        outputs=tuple(payload) if tag is JobState.COMPLETED else (),
        failure=job_failure(payload) if tag is JobState.FAILED else None,
        created_at=_get(value, "created_at"), completed_at=_get(value, "completed_at"),
        progress_reading=progress_reading(_get(value, "progress_reading")))


def progress_reading(value: Any) -> ProgressReading | None:
    if value is None:
        return None
    return ProgressReading(_get(value, "value"), _get(value, "marked_percent"))


def job_result(value: Any) -> JobResult:
    return JobResult(job_id=_get(value, "job_id"), outputs=tuple(_get(value, "outputs")),
                     status=job_status(_get(value, "status")))


def exception(error: Variant) -> errors.Error:
    """The exception for one case of the WIT `error` variant."""
    p: Any
    tag, p = error.tag, error.payload
    if tag == "permanent-invalid-request":
        return errors.InvalidRequestError(
            [FieldViolation(_get(v, "field"), _get(v, "rule"), _get(v, "message")) for v in p])
    api = {"permanent-unauthorized": errors.UnauthorizedError,
           "insufficient-credits": errors.InsufficientCreditsError,
           "server-error": errors.ServerError,
           "malformed-response": errors.MalformedResponseError}
    if tag in api:
        return api[tag](_get(p, "status"), _get(p, "code"), _get(p, "message"))
    if tag == "rate-limited":
        return errors.RateLimitedError(_get(p, "retry_after_ms"), _get(p, "message"))
    if tag == "job-failed":
        return errors.JobFailedError(_get(p, "job_id"), job_failure(_get(p, "failure")))
    if tag == "not-found":
        return errors.NotFoundError(p)
    if tag == "transport-error":
        return errors.TransportError(TransportKind(_get(p, "kind")), _get(p, "message"))
    if tag == "permanent-submit-outcome-unknown":
        return errors.SubmitOutcomeUnknownError(_get(p, "message"))
    if tag == "timeout":
        last = _get(p, "last_status")
        return errors.TimeoutError(_get(p, "job_id"), None if last is None else job_status(last))
    if tag == "execution-failed":
        return errors.ExecutionFailedError("the host stopped the call")
    # A newer component with a case this package does not know: still a happyhorse.Error.
    return errors.Error(f"{tag}: {p!r}")
