"""Loading the bundled component once per process, and calling it in a fresh Store.

Compiling the component (~0.2 s) happens once per file per process, under a lock. Each call
then gets its own `Store` and instance (~1 ms): wasmtime Stores are not thread-safe, and a
Store whose call trapped must not be reused, so nothing mutable is shared between calls.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime.component import Component, Func, Linker

from .errors import ComponentError, ExecutionFailedError

#: The component shipped inside the wheel. Tests point this elsewhere to simulate damage.
COMPONENT_FILE = Path(__file__).with_name("happyhorse.wasm")

INTERFACE = "videogen:api/video-gen@0.3.0"
FUNCTIONS = ("validate", "estimate-cost", "submit", "poll", "wait", "generate")

#: Linear memory a call may grow to, as `host-demo` allows a plugin (64 MiB).
MEMORY_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class _Compiled:
    engine: wasmtime.Engine
    component: Component
    linker: Linker
    # Serialises instantiation: wasmtime-py marks a Linker "locked" while it is being used,
    # and checking that flag is not atomic. Instantiating takes about a millisecond.
    linker_lock: threading.Lock


_cache: dict[Path, _Compiled] = {}
_cache_lock = threading.Lock()


def _compile(path: Path) -> _Compiled:
    try:
        wasm = path.read_bytes()
    except OSError as e:
        raise ComponentError(
            f"the bundled component {path} cannot be read ({e.strerror or e}); "
            "reinstall the happyhorse package") from None
    engine = wasmtime.Engine(wasmtime.Config())
    try:
        component = Component(engine, wasm)
        linker = Linker(engine)
        linker.add_wasip2()
        linker.add_wasi_http()
    except wasmtime.WasmtimeError as e:
        raise ComponentError(
            f"the bundled component {path} is not a valid WebAssembly component "
            f"({_first_line(e)}); reinstall the happyhorse package") from None
    compiled = _Compiled(engine, component, linker, threading.Lock())
    # Instantiate once now, so that a component that compiles but does not fit (wrong
    # imports, no `video-gen` export) fails here, clearly, and not in the middle of a call.
    _Instance(compiled, path)
    return compiled


def load(path: Path | None = None) -> _Compiled:
    """The compiled component at `path` (default: the bundled one), compiled on first use."""
    path = COMPONENT_FILE if path is None else path
    with _cache_lock:
        compiled = _cache.get(path)
        if compiled is None:
            # Failures are not cached: a file put right (or a test's patch undone) is picked up.
            compiled = _compile(path)
            _cache[path] = compiled
        return compiled


class _Instance:
    """One Store and one instance of the component: good for one call."""

    def __init__(self, compiled: _Compiled, path: Path) -> None:
        self.store = wasmtime.Store(compiled.engine)
        self.store.set_limits(memory_size=MEMORY_LIMIT)
        # An empty WASI environment: no variables (the key travels in `client-config`, not
        # the environment), no arguments, no preopened directories, stdin empty and
        # stdout/stderr discarded, and no `wasi:sockets` network (not inherited).
        self.store.set_wasi(wasmtime.WasiConfig())
        self.store.set_wasi_http()
        try:
            with compiled.linker_lock:
                instance = compiled.linker.instantiate(self.store, compiled.component)
            interface = instance.get_export_index(self.store, INTERFACE)
            if interface is None:
                raise ComponentError(f"the component {path} does not export {INTERFACE}")
            self.funcs: dict[str, Func] = {}
            for name in FUNCTIONS:
                index = instance.get_export_index(self.store, name, interface)
                func = None if index is None else instance.get_func(self.store, index)
                if func is None:
                    raise ComponentError(f"the component {path} lacks {INTERFACE}#{name}")
                self.funcs[name] = func
        except wasmtime.WasmtimeError as e:
            raise ComponentError(
                f"the component {path} cannot be instantiated ({_first_line(e)})") from None


def call(name: str, *args: Any, path: Path | None = None) -> Any:
    """Call one export of `video-gen` in a fresh Store; return its raw result.

    A trap becomes `ExecutionFailedError`: the caller sees one line, not a stack of wasm frames.
    """
    target = COMPONENT_FILE if path is None else path
    instance = _Instance(load(target), target)
    func = instance.funcs[name]
    try:
        result = func(instance.store, *args)
        func.post_return(instance.store)
    except (wasmtime.WasmtimeError, wasmtime.Trap) as e:
        raise ExecutionFailedError(
            f"the component trapped in {name}: {_first_line(e)}", detail=str(e)) from None
    return result


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
