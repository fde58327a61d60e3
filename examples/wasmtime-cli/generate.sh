#!/usr/bin/env bash
# One HappyHorse 1.1 generation with nothing but the wasmtime CLI: `estimate-cost`, `submit`,
# `poll` and `wait`, each a `wasmtime run --invoke` of the unchanged component (WAVE syntax).
#
#   EMPIRIOLABS_API_KEY=... [EMPIRIOLABS_BASE_URL=http://127.0.0.1:8787] [FAST_POLL=1] \
#     examples/wasmtime-cli/generate.sh path/to/happyhorse_component.wasm "A horse gallops along a beach."
#
# WASMTIME names the binary (default: `wasmtime` on PATH). FAST_POLL=1 polls every 0.2-1 s with
# a 60 s deadline (for the emulator; the real service wants the defaults: 5-15 s, 15 min).
# Prints the job id right after the submit and the output URLs at the end. Exit status: 0
# completed, 1 any `err(...)` (the wasmtime CLI itself exits 0 after printing an `err`), 2 usage.
set -euo pipefail

wasm=${1:?usage: generate.sh COMPONENT.wasm [PROMPT]}
prompt=${2:-A horse gallops along a beach at sunset.}
wasmtime=${WASMTIME:-wasmtime}
: "${EMPIRIOLABS_API_KEY:?set EMPIRIOLABS_API_KEY}"

# A WAVE string literal: backslashes and double quotes escaped, newlines as \n.
wave_string() {
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  printf '"%s"' "$s"
}

# client-config: options that are `none` may be left out of a WAVE record, and `some(x)` may
# be written as plain `x`.
config="{"
if [[ -n "${EMPIRIOLABS_BASE_URL:-}" ]]; then
  config+="base-url: $(wave_string "$EMPIRIOLABS_BASE_URL"), "
fi
if [[ "${FAST_POLL:-0}" == 1 ]]; then
  config+="poll: {min-interval-ms: 200, max-interval-ms: 1000, deadline-ms: 60000, max-retries: 4}, "
fi
config+="}"
[[ "$config" == "{}" ]] && config="{:}" # WAVE's empty record (every field none)

request="{prompt: $(wave_string "$prompt"), images: []}"

# `wasmtime run` prints the call's result as WAVE (`ok(...)` / `err(...)`) and exits 0 either
# way, so success is read from the output. The key reaches the component as its environment;
# -S http links wasi:http (with no allow-list: the component may reach any host).
invoke() {
  local out
  out=$("$wasmtime" run -S http --env "EMPIRIOLABS_API_KEY=$EMPIRIOLABS_API_KEY" \
    --invoke "$1" "$wasm")
  if [[ "$out" != ok\(* ]]; then
    echo "error: ${1%%(*} returned $out" >&2
    exit 1
  fi
  printf '%s\n' "$out"
}

echo "estimate-cost: $(invoke "estimate-cost($request, none)")"

submitted=$(invoke "submit($config, $request)")
# ok("job_...") -> job_...
job=${submitted#ok(\"}
job=${job%\")}
echo "submitted job $job"

echo "poll: $(invoke "poll($config, $(wave_string "$job"))")"

result=$(invoke "wait($config, $(wave_string "$job"))")
echo "wait: $result"
# The outputs are the job-result's first list of strings: `outputs: ["http://...", ...]`.
grep -o 'outputs: \[[^]]*\]' <<<"$result" | grep -o '"[^"]*"' | tr -d '"' | sed 's/^/output: /'
echo "job $job: completed"
