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
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
dir=$(realpath -m "$2")

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

case $action in
start)
  mkdir -p "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    rm -rf "$dir/data" "$dir/socket"
    mkdir -p "$dir/data" "$dir/socket"
    # The password the nodes use, kept beside the data, readable by this user only.
    password=${POSTGRES_PASSWORD:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}
    (umask 077; printf '%s' "$password" >"$dir/password")
    pwfile=$(mktemp "$dir/.pwfile.XXXXXX")
    printf '%s\n' "$password" >"$pwfile"
    if [ "$(id -u)" -eq 0 ]; then
      # The server's user must reach its own files.
      chmod 755 "$dir"
      chown "$os_user": "$dir/data" "$dir/socket" "$pwfile"
    fi
    as_owner "$(pg_bin initdb)" --pgdata="$dir/data" --username=obelisk --pwfile="$pwfile" \
      --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { rm -f "$pwfile"; cat "$dir/initdb.log" >&2; exit 1; }
    rm -f "$pwfile"
  fi
  as_owner "$(pg_bin pg_ctl)" --pgdata="$dir/data" --log="$dir/data/postgres.log" --wait \
    --options="-c listen_addresses= -c unix_socket_directories=$dir/socket -c port=5432" \
    start >/dev/null
  echo "export POSTGRES_HOST=$dir/socket"
  echo "export POSTGRES_USER=obelisk"
  echo "export POSTGRES_PASSWORD=$(cat "$dir/password")"
  echo "export POSTGRES_DATABASE=happyhorse"
  ;;
stop)
  as_owner "$(pg_bin pg_ctl)" --pgdata="$dir/data" --mode=fast --wait stop >/dev/null
  ;;
*) usage ;;
esac
