#!/usr/bin/env bash
# Stops the throwaway PostgreSQL cluster started by tools/pg-start.sh (same
# ACQUIT_PG_DIR). Does nothing when it is not running.
set -euo pipefail
PG_DIR="${ACQUIT_PG_DIR:-$(cd "$(dirname "$0")/.." && pwd)/.tmp/pg}"
DATA="$PG_DIR/data"
[ -f "$DATA/PG_VERSION" ] || exit 0
BIN=""
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
  if [ -x "$d/pg_ctl" ]; then BIN="$d"; break; fi
done
[ -n "$BIN" ] || exit 0
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
  echo "pg-stop: stopping the test cluster in $DATA" >&2
  as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >&2
fi
