"""A small program using the public API, checked with `mypy --strict` (not run by pytest)."""

from __future__ import annotations

import asyncio

import happyhorse
from happyhorse import JobResult, JobStatus


def show(status: JobStatus) -> None:
    percent = "" if status.progress is None else f" {status.progress:.0%}"
    print(f"{status.job_id}: {status.state.value}{percent}")


def main() -> JobResult | None:
    client = happyhorse.Client(base_url="http://127.0.0.1:8787", first_byte_timeout=30.0,
                               poll=happyhorse.PollPolicy(min_interval=1.0, deadline=60.0))
    checked = client.validate(prompt="A horse", mode=happyhorse.Mode.T2V, duration_seconds=5)
    for warning in checked.warnings:
        print(warning.field, warning.message)
    cost = client.estimate_cost(prompt="A horse", resolution="1080p")
    print(cost.total_micros / 1_000_000, cost.currency)
    try:
        job_id: str = client.submit(prompt="A horse", images=[], seed=7, watermark=False)
        return client.wait(job_id, timeout=30.0, on_progress=show)
    except happyhorse.InvalidRequestError as e:
        print([v.rule for v in e.violations])
    except happyhorse.RateLimitedError as e:
        retry: float | None = e.retry_after
        print(retry)
    except happyhorse.TimeoutError as e:
        last = e.last_status
        print(e.job_id, None if last is None else last.state)
    except happyhorse.Error as e:
        print(type(e).__name__, e.job_id)
    return None


async def main_async() -> tuple[str, ...]:
    client = happyhorse.AsyncClient(api_key="emulator-key")
    result = await client.generate(prompt="A horse", timeout=60.0, on_progress=show)
    status: JobStatus = await client.poll(result.job_id)
    return status.outputs


if __name__ == "__main__":
    main()
    asyncio.run(main_async())
