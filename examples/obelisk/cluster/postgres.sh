#!/usr/bin/env bash
# A private PostgreSQL for the Obelisk cluster: data, socket and log in one directory, no TCP
# port at all (a Unix socket in that directory), password authentication.
#
#   examples/obelisk/cluster/postgres.sh start DIR   # initialises DIR on first use; prints the
#                                                    # POSTGRES_* variables the nodes read
#   examples/obelisk/cluster/postgres.sh stop DIR
#
# PostgreSQL is Debian's `postgresql` package (any version Obelisk supports; 15 here). It
# refuses to run as root, so a root caller runs it as the unprivileged `postgres` user the
# package creates (PG_OS_USER overrides). Obelisk 0.38's `database.postgres` has no port key:
# it connects to port 5432 of `host`, and a `host` that is a directory is a Unix socket there —
# so the server listens only on `DIR/socket/.s.PGSQL.5432`, which no other PostgreSQL on the
# machine can collide with and nothing off the machine can reach.
#
# DIR must not exist, be empty, or be a directory this script made (it holds `.happyhorse-pg`):
# the script never touches a folder of yours. Its name is limited to letters, digits and
# `._/-`, because pg_ctl passes it through a shell. `start` on a running server only prints the
# variables again.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
dir=$(realpath -m -- "$2")
if [[ ! $dir =~ ^[A-Za-z0-9._/-]+$ ]]; then
  echo "DIR may hold only letters, digits and ._/- (got: $dir)" >&2
  exit 2
fi
marker="$dir/.happyhorse-pg"

pg_bin() {
  if command -v "$1" >/dev/null 2>&1; then command -v "$1"; return; fi
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1)
  [ -n "$found" ] || { echo "no $1: install PostgreSQL (apt-get install postgresql)" >&2; exit 1; }
  echo "$found"
}

os_user=${PG_OS_USER:-postgres}
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u "$os_user" -- "$@"; else "$@"; fi
}

print_env() {
  printf 'export POSTGRES_HOST=%q\n' "$dir/socket"
  printf 'export POSTGRES_USER=%q\n' obelisk
  printf 'export POSTGRES_PASSWORD=%q\n' "$(cat "$dir/password")"
  printf 'export POSTGRES_DATABASE=%q\n' happyhorse
}

running() {
  [ -f "$dir/data/PG_VERSION" ] && as_owner "$(pg_bin pg_ctl)" --pgdata="$dir/data" status >/dev/null 2>&1
}

case $action in
start)
  if [ -e "$dir" ] && [ ! -f "$marker" ] && [ -n "$(ls -A -- "$dir")" ]; then
    echo "$dir exists and was not made by this script: give a new or empty directory" >&2
    exit 1
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    mkdir -p "$dir"
    touch "$marker"
    rm -rf "$dir/data" "$dir/socket"
    mkdir -p "$dir/data" "$dir/socket"
    # A fresh random password for the nodes, kept beside the data, readable by this user only.
    (umask 077; od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$dir/password")
    pwfile=$(mktemp "$dir/.pwfile.XXXXXX")
    trap 'rm -f "$pwfile"' EXIT
    cat "$dir/password" >"$pwfile"
    if [ "$(id -u)" -eq 0 ]; then
      # The server's user must reach its own files (DIR is ours: see the marker).
      chmod 755 "$dir"
      chown "$os_user": "$dir/data" "$dir/socket" "$pwfile"
    fi
    as_owner "$(pg_bin initdb)" --pgdata="$dir/data" --username=obelisk --pwfile="$pwfile" \
      --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    rm -f "$pwfile"
  fi
  if ! running; then
    as_owner "$(pg_bin pg_ctl)" --pgdata="$dir/data" --log="$dir/data/postgres.log" --wait \
      --options="-c listen_addresses= -c unix_socket_directories=$dir/socket -c unix_socket_permissions=0700 -c port=5432" \
      start >/dev/null
  fi
  print_env
  ;;
stop)
  if running; then
    as_owner "$(pg_bin pg_ctl)" --pgdata="$dir/data" --mode=fast --wait stop >/dev/null
  fi
  ;;
*) usage ;;
esac
