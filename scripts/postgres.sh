#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster on a loopback port for the tests.
# Usage: source scripts/postgres.sh   (exports PPML_TEST_POSTGRES, sets a trap to stop it)
# Installs Debian's postgresql package when initdb/pg_ctl are missing.
# PostgreSQL refuses to run as root, so as root it runs as the postgres user.

pg_bin() {
  local d
  for d in "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")" /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  return 1
}

if ! PGBIN=$(pg_bin); then
  echo "postgres.sh: installing Debian's postgresql package" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  PGBIN=$(pg_bin) || { echo "postgres.sh: initdb still missing after installing postgresql" >&2; return 1 2>/dev/null || exit 1; }
fi

PG_DIR=$(mktemp -d /tmp/ppml-pg.XXXXXX)
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}
[ "$(id -u)" = 0 ] && chown postgres "$PG_DIR"
chmod 700 "$PG_DIR"
as_pg "$PGBIN/initdb" -D "$PG_DIR/data" -U postgres -A trust --no-sync >"$PG_DIR/initdb.log" 2>&1 \
  || { cat "$PG_DIR/initdb.log" >&2; return 1 2>/dev/null || exit 1; }
# A random port can be taken by another PostgreSQL on this machine (parallel
# runs): try a few before giving up.
pg_fixed=${PG_PORT:-}
for pg_try in 1 2 3 4 5; do
  PG_PORT=${pg_fixed:-$(( 20000 + RANDOM % 20000 ))}
  if as_pg "$PGBIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c max_connections=200 -c fsync=on" start >/dev/null; then
    break
  fi
  if [ "$pg_try" = 5 ] || [ -n "$pg_fixed" ]; then
    cat "$PG_DIR/server.log" >&2; return 1 2>/dev/null || exit 1
  fi
done
export PPML_TEST_POSTGRES="postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
stop_postgres() { as_pg "$PGBIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$PG_DIR"; }
echo "postgres.sh: PostgreSQL on 127.0.0.1:$PG_PORT (data in $PG_DIR)" >&2
