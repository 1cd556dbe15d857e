#!/usr/bin/env bash
# Runs acquit's whole test suite: starts (and on a fresh Debian machine
# installs) a throwaway PostgreSQL for the multi-instance tests, installs
# xmllint for the EBICS schema checks and xmlsec1 + openssl for the
# independent EBICS signature/encryption checks and chromium for the
# dashboard's browser tests, then go vet and go test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v xmllint >/dev/null 2>&1 || need_apt+=(libxml2-utils)
command -v xmlsec1 >/dev/null 2>&1 || need_apt+=(xmlsec1)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# Headless Chromium for the dashboard's browser tests (e2e/dashboard_test.go).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# promtool checks and unit-tests configs/alerts.yaml (configs/monitoring_test.go).
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
  echo "tools/test.sh: installing ${need_apt[*]}"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ -z "${ACQUIT_TEST_PG_DSN:-}" ] && [ -x tools/pg-start.sh ]; then
  # A failed start must stop the run: eval "$(...)" alone would hide it.
  pg_env=$(tools/pg-start.sh) || { echo "tools/test.sh: PostgreSQL did not start (see .tmp/pg/server.log)" >&2; exit 1; }
  eval "$pg_env"
  # The cluster this run started is stopped when the run ends, pass or fail.
  trap 'tools/pg-stop.sh || true' EXIT
fi
export ACQUIT_TEST_PG_DSN="${ACQUIT_TEST_PG_DSN:-}"
export ACQUIT_BIN_DIR="$PWD/bin"

go vet ./...
# -race (in -short mode: smaller soak sizes) on the packages where
# concurrency is the point, then every package without -race at full size.
race_pkgs=$(go list ./daemon/outbox/... ./daemon/payments/... ./daemon/hooks/... ./daemon/pluginhost/... ./daemon/transmissions/... 2>/dev/null || true)
status=0
if [ -n "$race_pkgs" ]; then
  go test -race -short -count=1 -timeout 15m $race_pkgs || status=$?
fi
# -json through tools/testsummary: the same output, then every skipped test
# with its reason and "N passed, N failed, N skipped".
go build -o .tmp/testsummary ./tools/testsummary
go test -json -count=1 -timeout 25m ./... | .tmp/testsummary || status=$?
exit $status
