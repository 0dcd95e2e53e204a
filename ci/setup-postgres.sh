#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server on loopback for the shared job store's tests, from
# Debian's packages (installed with apt when missing). Idempotent: a server already answering
# on the port is reused. Prints one line, the connection string of a role that may create
# databases (each test makes its own database and drops it):
#
#   postgresql://edgepack:edgepack-ci@127.0.0.1:54329/postgres
#
#   bash ci/setup-postgres.sh          # start (or find) it; print the connection string
#   bash ci/setup-postgres.sh --stop   # stop it and remove its data
#
# EDGEPACK_PG_PORT (default 54329) and EDGEPACK_PG_DIR (default /tmp/edgepack-pg-<port>)
# choose where. As root, the server runs as the `postgres` user (PostgreSQL refuses root).
set -euo pipefail
port=${EDGEPACK_PG_PORT:-54329}
dir=${EDGEPACK_PG_DIR:-/tmp/edgepack-pg-$port}
password=edgepack-ci
url="postgresql://edgepack:$password@127.0.0.1:$port/postgres"

say() { echo "setup-postgres: $*" >&2; }

sudo_=""
[ "$(id -u)" = 0 ] || sudo_=sudo
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    say "installing postgresql (apt)"
    $sudo_ apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq postgresql >/dev/null
    # Debian's package starts its own cluster on 5432; ours is separate, that one is left alone.
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi

# Runs a command as the server's owner.
if [ "$(id -u)" = 0 ]; then
    as_owner() { runuser -u postgres -- "$@"; }
else
    as_owner() { "$@"; }
fi

if [ "${1:-}" = "--stop" ]; then
    if [ -d "$dir" ]; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
        rm -rf "$dir"
    fi
    say "stopped"
    exit 0
fi

if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
    echo "$url"
    exit 0
fi

if [ ! -f "$dir/data/PG_VERSION" ]; then
    say "initdb in $dir/data"
    rm -rf "$dir"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
        -E UTF8 --locale=C.UTF-8 >/dev/null
fi
# Loopback only, sockets in the data folder (not /var/run/postgresql, which may not exist).
as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300 -c fsync=off" start >&2 \
    || { cat "$dir/server.log" >&2; exit 1; }
as_owner "$bin/psql" -q -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 >&2 <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'edgepack') THEN
    CREATE ROLE edgepack LOGIN CREATEDB PASSWORD '$password';
  END IF;
END \$\$;
SQL
say "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
echo "$url"
