#!/usr/bin/env bash
# Start a throw-away PostgreSQL server on 127.0.0.1 for the multi-worker study tests.
#
# Installs Debian's postgresql package when the server binaries are missing (as root), creates a
# cluster under ${PAPLOSS_PG_DIR:-/tmp/paploss-pg} owned by the `postgres` user, listens on
# 127.0.0.1:${PAPLOSS_PG_PORT:-55432} with trust authentication for local connections only, and
# creates the database `paploss_test`. Idempotent: a running server is left as it is.
# The tests read PAPLOSS_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:55432/paploss_test).
set -euo pipefail

PGDIR="${PAPLOSS_PG_DIR:-/tmp/paploss-pg}"
PORT="${PAPLOSS_PG_PORT:-55432}"

bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
if [[ -z "$bindir" || ! -x "$bindir/initdb" ]]; then
    if [[ "$(id -u)" -ne 0 ]]; then
        echo "start_postgres: PostgreSQL server binaries missing and not root; install postgresql" >&2
        exit 1
    fi
    echo "start_postgres: installing Debian's postgresql package" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bindir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
fi

as_postgres() {
    if [[ "$(id -u)" -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if as_postgres "$bindir/pg_ctl" -D "$PGDIR/data" status >/dev/null 2>&1; then
    echo "start_postgres: server already running in $PGDIR" >&2
else
    mkdir -p "$PGDIR"
    [[ "$(id -u)" -eq 0 ]] && chown postgres:postgres "$PGDIR"
    if [[ ! -f "$PGDIR/data/PG_VERSION" ]]; then
        as_postgres "$bindir/initdb" -D "$PGDIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
    fi
    as_postgres "$bindir/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w start \
        -o "-p $PORT -c listen_addresses=127.0.0.1 -k $PGDIR -c max_connections=200" >/dev/null
fi
if ! as_postgres "$bindir/psql" -h 127.0.0.1 -p "$PORT" -U postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='paploss_test'" | grep -q 1; then
    as_postgres "$bindir/createdb" -h 127.0.0.1 -p "$PORT" -U postgres paploss_test
fi
echo "start_postgres: postgresql://postgres@127.0.0.1:$PORT/paploss_test" >&2
