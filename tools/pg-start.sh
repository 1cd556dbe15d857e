#!/usr/bin/env bash
# Starts (idempotently) a throwaway PostgreSQL cluster for acquit's tests and
# prints `export ACQUIT_TEST_PG_DSN=...` for eval:
#
#   eval "$(tools/pg-start.sh)"
#
# Runs as root on Debian: installs postgresql with apt-get when initdb/pg_ctl
# are missing, creates the cluster under ${ACQUIT_PG_DIR:-<repo>/.tmp/pg}
# owned by the postgres user, listening on 127.0.0.1:${ACQUIT_PG_PORT:-54329}
# only. Everything but the export line goes to stderr.
set -euo pipefail

PG_DIR="${ACQUIT_PG_DIR:-$(cd "$(dirname "$0")/.." && pwd)/.tmp/pg}"
PG_PORT="${ACQUIT_PG_PORT:-54329}"
PG_DB="${ACQUIT_PG_DB:-acquit_test}"
PG_USER=postgres
log() { echo "pg-start: $*" >&2; }

find_bin() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  return 1
}

BIN="$(find_bin || true)"
if [ -z "$BIN" ]; then
  if [ "$(id -u)" != 0 ]; then log "postgresql is not installed and I am not root"; exit 1; fi
  log "installing postgresql with apt-get"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  BIN="$(find_bin)" || { log "initdb not found after install"; exit 1; }
fi

as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u "$PG_USER" -- "$@"
  else
    "$@"
  fi
}

if [ "$(id -u)" = 0 ]; then
  id "$PG_USER" >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash "$PG_USER"
  mkdir -p "$PG_DIR"
  chown "$PG_USER" "$PG_DIR"
  # The postgres user must be able to reach the directory.
  d="$(dirname "$PG_DIR")"
  while [ "$d" != "/" ]; do chmod o+x "$d" 2>/dev/null || true; d="$(dirname "$d")"; done
else
  mkdir -p "$PG_DIR"
fi

DATA="$PG_DIR/data"
if [ ! -f "$DATA/PG_VERSION" ]; then
  log "initdb $DATA"
  as_pg "$BIN/initdb" -D "$DATA" -U "$PG_USER" --auth=trust -E UTF8 --locale=C.UTF-8 >&2 \
    || as_pg "$BIN/initdb" -D "$DATA" -U "$PG_USER" --auth=trust -E UTF8 --no-locale >&2
fi

if ! as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
  log "starting on 127.0.0.1:$PG_PORT"
  as_pg "$BIN/pg_ctl" -D "$DATA" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c fsync=off -c full_page_writes=off -c max_connections=300" start >&2
fi

PSQL=("$BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -X -q -At)
for _ in $(seq 1 50); do
  if as_pg "${PSQL[@]}" -d postgres -c 'SELECT 1' >/dev/null 2>&1; then break; fi
  sleep 0.2
done
if [ "$(as_pg "${PSQL[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]; then
  log "creating database $PG_DB"
  as_pg "${PSQL[@]}" -d postgres -c "CREATE DATABASE $PG_DB" >&2
fi

echo "export ACQUIT_TEST_PG_DSN='postgres://$PG_USER@127.0.0.1:$PG_PORT/$PG_DB?sslmode=disable'"
