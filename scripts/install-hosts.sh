#!/usr/bin/env bash
# Install the hosts that tests/all/hosts.rs runs only when they are present: the wasmtime CLI
# (wasmtime run / wasmtime serve), Obelisk, and wac (to compose the serverless example).
# They build from source with cargo, without LTO (below): about 10, 19.2 and 6.8 min measured on
# a 2-core AMD EPYC.
#
#   scripts/install-hosts.sh [--root DIR] [wasmtime] [obelisk] [wac]
#
# Without names, all three are installed. Binaries go to DIR/bin (default: cargo's own,
# ~/.cargo/bin, which is on PATH). Elsewhere, put DIR/bin on PATH or point the tests at them:
#   WASMTIME_BIN=DIR/bin/wasmtime OBELISK_BIN=DIR/bin/obelisk WAC_BIN=DIR/bin/wac cargo test ...
# Node.js and Python dependencies are cheap and installed by .ci/run instead.
set -euo pipefail

WASMTIME_VERSION=48.0.8
OBELISK_VERSION=0.38.3
WAC_VERSION=0.12.0

root=()
hosts=()
while (($#)); do
  case "$1" in
    --root) root=(--root "$2"); shift 2 ;;
    wasmtime|obelisk|wac) hosts+=("$1"); shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
((${#hosts[@]})) || hosts=(wasmtime obelisk wac)

have() { command -v "$1" >/dev/null 2>&1; }

# Built to run tests, not to ship: no link-time optimisation and cargo's default 16 codegen
# units for release. Obelisk's own release profile asks for fat LTO in one codegen unit, a
# long single-threaded tail on 2 cores. HOSTS_OWN_PROFILES=1 keeps each package's profile.
build=(env)
if [ "${HOSTS_OWN_PROFILES:-0}" != 1 ]; then
  build=(env CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16)
fi

for host in "${hosts[@]}"; do
  case "$host" in
    wasmtime)
      # Only what `wasmtime run` and `wasmtime serve` need for a WASI 0.2 component (the
      # examples and tests/all/hosts.rs use nothing else): no explorer, wast, objdump,
      # Winch, Pulley, GC proposals, wizer, wasi-nn/-tls/-keyvalue/-config or profiling.
      # `serve` names WASIp3 types whatever its features, hence component-model-async.
      "${build[@]}" cargo install --locked "${root[@]}" --no-default-features \
        --features run,serve,cranelift,wasi-http,component-model,component-model-async,cache,parallel-compilation,pooling-allocator,wat,logging \
        "wasmtime-cli@${WASMTIME_VERSION}"
      ;;
    obelisk)
      # Obelisk's build compiles protobuf definitions and needs protoc.
      if ! have protoc || [ ! -f /usr/include/google/protobuf/duration.proto ]; then
        if have apt-get; then
          sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_=sudo
          $sudo_ apt-get update
          # protoc, and the well-known types (google/protobuf/*.proto) it imports.
          $sudo_ apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev
        else
          echo "obelisk needs protoc: install protobuf-compiler with your package manager" >&2
          exit 1
        fi
      fi
      "${build[@]}" cargo install --locked "${root[@]}" "obelisk@${OBELISK_VERSION}"
      # The example workflow (examples/obelisk/workflow) is built for this target.
      if have rustup; then rustup target add wasm32-unknown-unknown; fi
      ;;
    wac)
      "${build[@]}" cargo install --locked "${root[@]}" "wac-cli@${WAC_VERSION}"
      ;;
  esac
done
