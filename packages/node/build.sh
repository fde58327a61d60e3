#!/usr/bin/env bash
# Build the `happyhorse` npm package: transpile the component into generated/, then pack.
#
#   packages/node/build.sh OUT_DIR COMPONENT_WASM    →  OUT_DIR/happyhorse-0.3.0.tgz
#
# The bindings are made here, at build time, and ship in the tarball: installing the package
# runs no script and needs no jco. jco 1.35.0 is this package's devDependency (pinned in
# package-lock.json); `npm ci` installs it when node_modules/ is missing.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 OUT_DIR COMPONENT_WASM" >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"
wasm="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
if [[ ! -f "$wasm" ]]; then
  echo "no component at $2" >&2
  exit 2
fi

cd "$here"
# One install at a time: two builds at once (the tests run two `cargo xtask dist`) would
# otherwise both run `npm ci` in this folder.
# (flock is util-linux's; where it is missing, builds are assumed not to overlap.)
(
  if command -v flock >/dev/null; then flock 9; fi
  if [[ ! -x node_modules/.bin/jco ]]; then
    npm ci --no-audit --no-fund
  fi
) 9>"$here/node_modules.lock"

# The package is assembled in a folder of its own, so that concurrent builds never share
# generated/ and the source tree never holds a build product.
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp -R package.json README.md lib "$stage/"

# --map: the component's only way out, wasi:http/outgoing-handler, goes through lib/egress.js,
# which allows the client's API origin and nothing else (the shim alone would allow any host).
# --no-typescript: lib/index.d.ts is the package's public type surface; jco's are not shipped.
node_modules/.bin/jco transpile "$wasm" \
  --name happyhorse \
  --out-dir "$stage/generated" \
  --no-typescript \
  --quiet \
  --map 'wasi:http/outgoing-handler@0.2.*=../lib/egress.js#outgoingHandler'

# Fail the build, not the first user, if the mapping did not take.
if ! grep -q "from '../lib/egress.js'" "$stage/generated/happyhorse.js"; then
  echo "jco did not route wasi:http/outgoing-handler through lib/egress.js" >&2
  exit 1
fi

(cd "$stage" && npm pack --pack-destination "$out")
