#!/usr/bin/env python3
"""Generate one HappyHorse 1.1 video from Python, through the video-gen WebAssembly component.

The component runs in Wasmtime (PyPI `wasmtime`, pinned in requirements.txt) with WASI 0.2 and
outgoing WASI-HTTP. The script submits one job, prints its id (persist it: `--resume JOB_ID`
picks the job up again without paying twice), waits for it, and prints the output URLs.

    python generate.py --component happyhorse_component.wasm \
        --base-url http://127.0.0.1:8787 --prompt "A horse gallops along a beach at sunset."

The key comes from `--key` or `EMPIRIOLABS_API_KEY`; it is given to the component as its
only environment variable. Exit codes: 0 completed, 1 the job or the call failed, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
import functools
from typing import Any

from wasmtime import Config, Engine, Store, WasiConfig, WasmtimeError
from wasmtime.component import Component, Linker, Record, Variant

print = functools.partial(print, flush=True)  # keep stdout and stderr in order

INTERFACE = "videogen:api/video-gen@0.2.0"


# --- Values in and out of the component -------------------------------------------------------
#
# wasmtime-py maps a WIT record to `Record` with its fields as attributes spelled as in WIT
# (kebab-case), an option to `None` or the value, an enum to its case name, and a variant to
# `Variant(tag, payload)` when its cases cannot be told apart by Python type.
#
# A `result<T, E>` comes back in one of two shapes:
#   - tagged, `Variant('ok', value)` / `Variant('err', error)`, when T and E share a Python type;
#   - untagged, the ok value itself or the error itself, when they do not.
# With this contract every result is untagged today (T is a record or a string, E the `error`
# variant), but that is a property of the types, not a promise: `unwrap` accepts both.


def record(**fields: Any) -> Record:
    """A WIT record; Python keyword `a_b` becomes WIT field `a-b`."""
    value = Record()
    for name, field in fields.items():
        setattr(value, name.replace("_", "-"), field)
    return value


def field(value: Any, name: str) -> Any:
    """Read a record field by its WIT name (`job-id`) or Python spelling (`job_id`)."""
    return getattr(value, name.replace("_", "-"))


class VideoGenError(Exception):
    """The component's `error` variant: `.tag` is the case name, `.payload` its value."""

    def __init__(self, error: Variant):
        self.tag = error.tag
        self.payload = error.payload
        super().__init__(describe_error(error))


def unwrap(result: Any) -> Any:
    """The ok value of a `result<T, error>` in either shape; raises VideoGenError otherwise."""
    if isinstance(result, Variant) and result.tag in ("ok", "err"):
        # Tagged shape. (No case of `error` is named ok or err, so this cannot be mistaken.)
        if result.tag == "ok":
            return result.payload
        raise VideoGenError(result.payload)
    if isinstance(result, Variant):
        # Untagged shape: an error comes back as the `error` variant itself.
        raise VideoGenError(result)
    return result


def describe_error(error: Variant) -> str:
    tag, payload = error.tag, error.payload
    if payload is None:
        return tag
    if tag == "permanent-invalid-request":
        return tag + ": " + "; ".join(f"{field(v, 'field')}: {field(v, 'message')}" for v in payload)
    if tag == "timeout":
        return f"{tag}: job {field(payload, 'job-id')} is still running (resume it with --resume)"
    if tag == "job-failed":
        failure = field(payload, "failure")
        return f"{tag}: job {field(payload, 'job-id')}: {field(failure, 'code')}: {field(failure, 'message')}"
    if tag == "not-found":
        return f"{tag}: job {payload}"
    if isinstance(payload, Record):
        message = getattr(payload, "message", None)
        code = getattr(payload, "code", None)
        kind = getattr(payload, "kind", None)
        parts = [p for p in (kind, code, message) if p]
        return f"{tag}: " + ": ".join(str(p) for p in parts)
    return f"{tag}: {payload!r}"


def state_label(state: Variant) -> str:
    if state.tag == "running" and state.payload is not None:
        return f"running {state.payload * 100:.0f}%"
    return state.tag


# --- The host ---------------------------------------------------------------------------------


class VideoGen:
    """One instance of the component, with a key in its environment and nothing else."""

    def __init__(self, component_path: str, api_key: str | None):
        engine = Engine(Config())
        component = Component.from_file(engine, component_path)
        linker = Linker(engine)
        linker.add_wasip2()
        linker.add_wasi_http()

        wasi = WasiConfig()
        # The component sees only this variable: not the rest of the process's environment.
        wasi.env = [("EMPIRIOLABS_API_KEY", api_key)] if api_key else []
        wasi.inherit_stdout()
        wasi.inherit_stderr()
        self.store = Store(engine)
        self.store.set_wasi(wasi)
        self.store.set_wasi_http()

        instance = linker.instantiate(self.store, component)
        interface = instance.get_export_index(self.store, INTERFACE)
        if interface is None:
            raise SystemExit(f"{component_path} does not export {INTERFACE}")
        self.funcs = {}
        for name in ("validate", "estimate-cost", "submit", "poll", "wait", "generate"):
            index = instance.get_export_index(self.store, name, interface)
            self.funcs[name] = instance.get_func(self.store, index)

    def call(self, name: str, *args: Any) -> Any:
        func = self.funcs[name]
        result = func(self.store, *args)
        func.post_return(self.store)
        return unwrap(result)


def client_config(base_url: str | None, deadline_s: float | None, fast: bool,
                  request_timeout_s: float | None = None) -> Record:
    poll = None  # the component's defaults: every 5 s backing off to 15 s, 15 min deadline
    # The wait for an answer to start, and the longest pause inside one (default 30 s, 15 s).
    timeout_ms = None if request_timeout_s is None else int(request_timeout_s * 1000)
    if fast or deadline_s is not None:
        # Fast polling suits an emulator whose jobs finish in seconds, not the real service.
        interval = (200, 1000) if fast else (5000, 15000)
        deadline_ms = int((deadline_s if deadline_s is not None else 900) * 1000)
        poll = record(min_interval_ms=interval[0], max_interval_ms=interval[1],
                      deadline_ms=deadline_ms, max_retries=4)
    return record(base_url=base_url, api_key=None, connect_timeout_ms=None,
                  first_byte_timeout_ms=timeout_ms, between_bytes_timeout_ms=timeout_ms,
                  max_response_bytes=None, poll=poll)


def video_request(args: argparse.Namespace) -> Record:
    return record(model=None, prompt=args.prompt, mode=None, images=args.image or [],
                  aspect_ratio=args.aspect_ratio, resolution=args.resolution,
                  duration_seconds=args.duration, seed=args.seed, watermark=None)


def download(urls: list[str], directory: str, job_id: str) -> list[dict[str, Any]]:
    """Save each output URL (signed, short-lived) as DIR/<job id>[-n].mp4."""
    os.makedirs(directory, exist_ok=True)
    saved = []
    for i, url in enumerate(urls):
        suffix = f"-{i}" if len(urls) > 1 else ""
        path = os.path.join(directory, f"{job_id}{suffix}.mp4")
        with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as out:
            out.write(response.read())
        saved.append({"path": path, "bytes": os.path.getsize(path)})
    return saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--component", default=os.environ.get("HAPPYHORSE_WASM", "happyhorse_component.wasm"),
                        help="the video-gen component (.wasm); env HAPPYHORSE_WASM")
    parser.add_argument("--base-url", default=os.environ.get("EMPIRIOLABS_BASE_URL"),
                        help="API base URL, e.g. an emulator's; env EMPIRIOLABS_BASE_URL "
                             "(default: the real service)")
    parser.add_argument("--key", default=os.environ.get("EMPIRIOLABS_API_KEY"),
                        help="API key; env EMPIRIOLABS_API_KEY")
    parser.add_argument("--prompt", default="A horse gallops along a beach at sunset.")
    parser.add_argument("--image", action="append", help="reference image URL (repeatable)")
    parser.add_argument("--aspect-ratio")
    parser.add_argument("--resolution")
    parser.add_argument("--duration", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--deadline", type=float,
                        help="give up waiting after this many seconds (the job goes on; resume it)")
    parser.add_argument("--fast-poll", action="store_true",
                        help="poll every 0.2-1 s (for an emulator)")
    parser.add_argument("--request-timeout", type=float, metavar="S",
                        help="seconds an answer may take to start, and may pause (default 30 and 15)")
    parser.add_argument("--resume", metavar="JOB_ID", help="wait for an existing job instead of submitting")
    parser.add_argument("--download", metavar="DIR", help="save the output videos into DIR")
    parser.add_argument("--json", action="store_true", help="print one JSON summary line at the end")
    args = parser.parse_args()

    if not args.key:
        parser.error("no API key: pass --key or set EMPIRIOLABS_API_KEY")
    if not os.path.isfile(args.component):
        parser.error(f"component not found: {args.component} (see examples/README or --component)")

    summary: dict[str, Any] = {"host": "python", "job_id": args.resume}
    try:
        videogen = VideoGen(args.component, args.key)
        config = client_config(args.base_url, args.deadline, args.fast_poll, args.request_timeout)
        request = video_request(args)

        if args.resume:
            job_id = args.resume
        else:
            validated = videogen.call("validate", request)
            for warning in field(validated, "warnings"):
                print(f"warning: {field(warning, 'field')}: {field(warning, 'message')}", file=sys.stderr)
            cost = videogen.call("estimate-cost", request, None)
            print(f"estimated cost: {field(cost, 'total-micros') / 1e6:.2f} {field(cost, 'currency')} "
                  f"for {field(cost, 'billed-seconds')} s")
            job_id = videogen.call("submit", config, request)
            summary["job_id"] = job_id
            print(f"submitted job {job_id} (resume with --resume {job_id})")

        status = videogen.call("poll", config, job_id)
        print(f"job {job_id}: {state_label(field(status, 'state'))}")

        result = videogen.call("wait", config, job_id)
        outputs = list(field(result, "outputs"))
        summary.update(state="completed", outputs=outputs)
        print(f"job {job_id}: completed")
        for url in outputs:
            print(f"output: {url}")
        code = 0
        if args.download:
            summary["files"] = download(outputs, args.download, job_id)
            for saved in summary["files"]:
                print(f"saved: {saved['path']} ({saved['bytes']} bytes)")
    except VideoGenError as error:
        summary.update(state="error", error=error.tag, message=str(error))
        print(f"error: {error}", file=sys.stderr)
        code = 1
    except OSError as failure:  # the download; the job itself is done
        summary.update(download_error=str(failure))
        print(f"download failed (poll the job again for fresh URLs): {failure}", file=sys.stderr)
        code = 1
    except WasmtimeError as trap:
        summary.update(state="trap", message=str(trap))
        print(f"the component trapped: {trap}", file=sys.stderr)
        code = 1
    if args.json:
        print(json.dumps(summary))
    return code


if __name__ == "__main__":
    sys.exit(main())
