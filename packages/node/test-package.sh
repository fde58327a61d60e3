#!/usr/bin/env bash
# Test the packed `happyhorse` package the way a user gets it.
#
#   packages/node/test-package.sh TARBALL EMULATOR_URL
#
# Makes a fresh npm project in a temporary directory outside the repository, installs the
# tarball and TypeScript there, type-checks test/consumer.ts with `tsc --strict`, and runs
# test/package.test.mjs (node:test) against the emulator at EMULATOR_URL (key `emulator-key`):
#   host-demo emulator --listen 127.0.0.1:8787 --time-scale 0.1
# TYPESCRIPT_VERSION picks the TypeScript (default 5.9.3); KEEP_TEST_DIR=1 keeps the project.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 TARBALL EMULATOR_URL" >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
tarball="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
emulator="$2"
[[ -f "$tarball" ]] || { echo "no tarball at $1" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/happyhorse-package-test.XXXXXX")"
# Inside the repository, node would find packages/node/node_modules or the sources instead of
# the installed tarball, and the test would prove nothing.
case "$work/" in
  "$repo"/*) echo "the test project $work must be outside $repo" >&2; exit 2 ;;
esac
if [[ "${KEEP_TEST_DIR:-}" == 1 ]]; then
  echo "test project: $work"
else
  trap 'rm -rf "$work"' EXIT
fi

cd "$work"
npm init -y >/dev/null
npm pkg set type=module >/dev/null
npm install --no-audit --no-fund --loglevel=error "$tarball" "typescript@${TYPESCRIPT_VERSION:-5.9.3}"
cp "$here/test/consumer.ts" "$here/test/package.test.mjs" .

echo "== tsc --strict --noEmit --module nodenext consumer.ts"
npx --no-install tsc --version
npx --no-install tsc --strict --noEmit --module nodenext --moduleResolution nodenext --target es2022 consumer.ts
echo "tsc: no errors"

echo "== node --test package.test.mjs (emulator: $emulator)"
HAPPYHORSE_EMULATOR_URL="$emulator" node --test --test-reporter=spec package.test.mjs
