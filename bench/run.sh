#!/usr/bin/env bash
# Runs acquit's benchmarks (go test -bench) and writes the raw output to
# bench/results-<date>.txt. The figures in docs/benchmarks.md come from it.
# Needs a PostgreSQL for the payments benchmarks on that driver (started
# like make test does). Takes about 10 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${ACQUIT_TEST_PG_DSN:-}" ] && [ -x tools/pg-start.sh ]; then eval "$(tools/pg-start.sh)"; fi
out="bench/results-$(date -u +%Y%m%d-%H%M).txt"
run() { echo "== go test -run '^\$' -bench '$2' $3 $1" | tee -a "$out"; go test -run '^$' -bench "$2" $3 "$1" 2>&1 | grep -E '^(Benchmark|goos|cpu|ok|FAIL)' | tee -a "$out"; }
{ uname -a; nproc; grep -m1 'model name' /proc/cpuinfo; uptime; } >> "$out"
run ./daemon/outbox 'BenchmarkEmitAndDeliver' '-benchtime 3000x'
run ./daemon/hooks 'BenchmarkDeliver$|BenchmarkCallSerial|BenchmarkDeliverShopHook' ''
run ./daemon/pluginhost 'BenchmarkPluginRPC' ''
run ./daemon/payments 'BenchmarkAutomaticResponse|BenchmarkBareSealHandler' '-benchtime 2000x'
run ./plugins/atos/sips 'BenchmarkVerifyAutomaticResponse' ''
run ./daemon/acks 'BenchmarkParsePSR100k' '-benchtime 3x'
run ./plugins/ebics/protocol 'BenchmarkDeflateAES' ''
run ./plugins/ebics/client 'BenchmarkUpload100MB$' '-benchtime 1x'
run ./daemon/store/sqlite 'BenchmarkRecordRaw|BenchmarkClaimComplete' ''
echo "results in $out"
