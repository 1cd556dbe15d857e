#!/usr/bin/env bash
# Runs acquit's benchmarks (go test -bench), writes the raw output to
# bench/results-<date>.txt and prints the issue 12 table (each figure beside
# the limit it is measured against, same run; see bench/table.go).
#
#   bench/run.sh          the table's benchmarks only (about 3 minutes)
#   bench/run.sh --all    every benchmark of docs/benchmarks.md (about 10 minutes)
#
# The load average is recorded before and after each benchmark: on a shared
# machine the figures are only as good as the load they ran under.
# Needs a PostgreSQL for the payments benchmarks on that driver (started
# like make test does) and builds bin/ (make build) for the idle-daemon row.
set -euo pipefail
cd "$(dirname "$0")/.."
all=0
[ "${1:-}" = "--all" ] && all=1
if [ "$all" = 1 ] && [ -z "${ACQUIT_TEST_PG_DSN:-}" ] && [ -x tools/pg-start.sh ]; then eval "$(tools/pg-start.sh)"; fi
out="bench/results-$(date -u +%Y%m%d-%H%M).txt"
run() {
	echo "== ${GOMAXPROCS:+GOMAXPROCS=$GOMAXPROCS }go test -run '^\$' -bench '$2' $3 $1    [$(uptime | sed 's/.*load/load/')]" | tee -a "$out"
	go test -run '^$' -bench "$2" $3 "$1" 2>&1 | grep -E '^(Benchmark|goos|cpu|ok|FAIL)' | tee -a "$out"
}
{ uname -a; nproc; grep -m1 'model name' /proc/cpuinfo; uptime; } >> "$out"
make build >/dev/null
# The table (issue 12). SQLite only for the payments rows: the limit is
# measured on the same driver the default deployment uses.
run ./daemon/payments 'BenchmarkAutomaticResponse$/sqlite|BenchmarkAutomaticResponse32/sqlite|BenchmarkBareSealHandler' '-benchtime 2000x'
run ./daemon/payments 'BenchmarkAutomaticResponseOffered1000/sqlite' '-benchtime 3000x'
run ./plugins/ebics/protocol 'BenchmarkDeflateAES' '-benchtime 5x'
run ./plugins/ebics/client 'BenchmarkUpload100MBExternalSim' '-benchtime 1x'
run ./daemon/acks 'BenchmarkParsePSR100k' '-benchtime 3x'
run ./daemon/pluginhost 'BenchmarkPluginRPC|BenchmarkGRPCFloor|BenchmarkSocketFloor' '-benchtime 3000x'
# The same with the calling process on one scheduler thread: what the
# second one costs each round trip on this machine (only the max_procs=1
# figures count: max_procs=0 plugins inherit GOMAXPROCS=1 here).
GOMAXPROCS=1 run ./daemon/pluginhost 'BenchmarkPluginRPC$|BenchmarkPluginRPCHealth|BenchmarkGRPCFloor' '-benchtime 3000x'
ACQUIT_BIN_DIR=$PWD/bin run ./e2e 'BenchmarkIdleDaemon' '-benchtime 1x'
if [ "$all" = 1 ]; then
	run ./daemon/payments 'BenchmarkAutomaticResponse|BenchmarkAutomaticResponseParallel' '-benchtime 2000x'
	run ./daemon/payments 'BenchmarkWebhook|BenchmarkBareWebhookHandler' '-benchtime 2000x'
	run ./daemon/outbox 'BenchmarkEmitAndDeliver' '-benchtime 3000x'
	run ./daemon/hooks 'BenchmarkDeliver$|BenchmarkCallSerial|BenchmarkDeliverShopHook' ''
	run ./plugins/atos/sips 'BenchmarkVerifyAutomaticResponse' ''
	run ./plugins/ebics/client 'BenchmarkUpload100MB$' '-benchtime 1x'
	run ./daemon/store/sqlite 'BenchmarkRecordRaw|BenchmarkClaimComplete' ''
fi
echo "load after the run: $(uptime | sed "s/.*load/load/")" >> "$out"
echo
go run bench/table.go "$out"
echo
echo "raw results in $out"
