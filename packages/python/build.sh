#!/usr/bin/env bash
# Build the happyhorse wheel: ./build.sh OUT_DIR COMPONENT_WASM
#
# Copies the package into a temporary staging directory, puts the component in as
# happyhorse/happyhorse.wasm there (so the source tree never holds a build product), and
# builds a pure-Python wheel into OUT_DIR with pip (setuptools is fetched from PyPI).
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 OUT_DIR COMPONENT_WASM" >&2
    exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"
wasm="$2"
python="${PYTHON:-python3}"

# A component, not a core module or some other file: the binary header's layer field is 1.
if [ "$(head -c 8 "$wasm" | od -An -tx1 | tr -d ' \n')" != "0061736d0d000100" ]; then
    echo "error: $wasm is not a WebAssembly component" >&2
    exit 1
fi

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp -R "$here/pyproject.toml" "$here/README.md" "$here/src" "$stage/"
rm -rf "$stage/src/happyhorse/__pycache__" "$stage"/src/*.egg-info
cp "$wasm" "$stage/src/happyhorse/happyhorse.wasm"

"$python" -m pip wheel --no-deps --quiet -w "$out" "$stage"
ls "$out"/happyhorse-*.whl
