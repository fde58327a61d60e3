#!/usr/bin/env bash
# Test a built wheel: ./test-wheel.sh WHEEL EMULATOR_URL
#
# Installs WHEEL into a fresh virtual environment in a temporary directory (outside the
# source tree), copies tests/ next to it so they import the installed package, then runs
# pytest against the emulator at EMULATOR_URL (key `emulator-key`) and `mypy --strict` over
# a small consumer of the public API. Start the emulator with
#   host-demo emulator --listen 127.0.0.1:8787 [--jobs linear --queued-secs 1 --running-secs 2]
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 WHEEL EMULATOR_URL" >&2
    exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
wheel="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
url="$2"
python="${PYTHON:-python3}"

if ! "$python" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1] + '/v1/account/usage', timeout=5)" "$url" 2>/dev/null; then
    # 401 (no key) still proves something answers; only a failure to connect is fatal.
    "$python" - "$url" <<'PY' || { echo "error: no emulator answers at $url" >&2; exit 1; }
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1] + "/v1/account/usage", timeout=5)
except urllib.error.HTTPError:
    pass
PY
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/happyhorse-test.XXXXXX")"
trap 'rm -rf "$work"' EXIT
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "$wheel" "mypy==2.4.1" "pytest==9.2.0"
cp -R "$here/tests" "$work/tests"
cd "$work/tests"

echo "== pytest (installed: $("$work/venv/bin/python" -c 'import happyhorse; print(happyhorse.__file__)'))"
HAPPYHORSE_EMULATOR_URL="$url" "$work/venv/bin/python" -m pytest -q -p no:cacheprovider .
echo "== mypy --strict consumer.py"
"$work/venv/bin/python" -m mypy --strict --no-incremental consumer.py
echo "== mypy --strict on the installed package"
"$work/venv/bin/python" -m mypy --strict --no-incremental -p happyhorse
