"""One HappyHorse 1.1 generation from Python, with the `happyhorse` package.

Install the wheel `cargo xtask dist` writes (pip install dist/python/happyhorse-*.whl), then:

    EMPIRIOLABS_API_KEY=... python generate.py --prompt "A horse gallops along a beach at sunset."

Prints the estimate, the job id as soon as it exists, progress, the output URLs; with
--download DIR saves the clips; with --json ends with one summary line (the tests read it).
"""

import argparse
import json
import os
import sys
import urllib.request
from typing import Any

import happyhorse


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default=os.environ.get("EMPIRIOLABS_BASE_URL"),
                        help="API base URL, e.g. an emulator's (default: the real service)")
    parser.add_argument("--key", help="API key (default: EMPIRIOLABS_API_KEY)")
    parser.add_argument("--prompt", default="A horse gallops along a beach at sunset.")
    parser.add_argument("--resolution")
    parser.add_argument("--duration", type=int)
    parser.add_argument("--deadline", type=float, help="stop waiting after S seconds (resume later)")
    parser.add_argument("--fast-poll", action="store_true", help="poll every 0.2-1 s (an emulator)")
    parser.add_argument("--request-timeout", type=float, metavar="S",
                        help="seconds an answer may take to start, and may pause")
    parser.add_argument("--resume", metavar="JOB_ID", help="wait for this job instead of submitting")
    parser.add_argument("--download", metavar="DIR", help="save the output videos into DIR")
    parser.add_argument("--json", action="store_true", help="end with one JSON summary line")
    args = parser.parse_args()

    poll = happyhorse.PollPolicy(min_interval=0.2, max_interval=1.0) if args.fast_poll else None
    client = happyhorse.Client(api_key=args.key, base_url=args.base_url, poll=poll,
                               first_byte_timeout=args.request_timeout,
                               between_bytes_timeout=args.request_timeout)
    request: happyhorse.VideoRequestArgs = {"prompt": args.prompt}
    if args.resolution:
        request["resolution"] = args.resolution
    if args.duration:
        request["duration_seconds"] = args.duration

    summary: dict[str, Any] = {"host": "python", "job_id": args.resume}
    seen: set[str] = set()

    def progress(status: happyhorse.JobStatus) -> None:
        if status.job_id not in seen:  # the first reading: the id exists, say it at once
            seen.add(status.job_id)
            print(f"job {status.job_id} (resume with --resume {status.job_id})")
        print(f"job {status.job_id}: {status.state.value} {status.progress or ''}")

    code = 0
    try:
        if args.resume:
            result = client.wait(args.resume, timeout=args.deadline, on_progress=progress)
        else:
            cost = client.estimate_cost(**request)
            print(f"estimated cost: {cost.total_micros / 1e6:.2f} {cost.currency}")
            result = client.generate(**request, timeout=args.deadline, on_progress=progress)
        summary.update(job_id=result.job_id, state="completed", outputs=list(result.outputs))
        print(f"job {result.job_id}: completed", *result.outputs, sep="\n")
        if args.download:
            summary["files"] = download(list(result.outputs), args.download, result.job_id)
    except happyhorse.Error as error:
        summary.update(job_id=error.job_id or summary["job_id"], state="error",
                       error=error.case, message=str(error))
        print(f"error: {error}", file=sys.stderr)
        code = 1
    except OSError as failure:  # the download; the job itself is done and paid for
        summary.update(download_error=str(failure))
        print(f"download failed (resume the job for fresh URLs): {failure}", file=sys.stderr)
        code = 1
    if args.json:
        print(json.dumps(summary))
    return code


def download(urls: list[str], directory: str, job_id: str) -> list[dict[str, Any]]:
    """Save each output URL (signed, short-lived) as DIR/<job id>[-n].mp4."""
    os.makedirs(directory, exist_ok=True)
    saved = []
    for i, url in enumerate(urls):
        path = os.path.join(directory, f"{job_id}{f'-{i}' if len(urls) > 1 else ''}.mp4")
        with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as out:
            out.write(response.read())
        saved.append({"path": path, "bytes": os.path.getsize(path)})
        print(f"saved: {path}")
    return saved


if __name__ == "__main__":
    sys.exit(main())
