#!/bin/sh
# tests/bench/bench_records.sh [BUILD_DIR]: transaction records persisted per second into
# MariaDB (run by hand, never by `make check`; tests/bench/README.md).
#
# Starts a private MariaDB (tests/mariadb.sh) in a temporary directory, runs
# BUILD_DIR/tests/bench/bench_records N K, appends a section to tests/bench/RESULTS.md
# (RESULTS=... to change) and stops the server again, also on failure.
# The figure is session closes per second through the real path (the tp_proto test
# protocol plugin over TCP -> api->session_close -> priced by the tenant's tariff script ->
# session + bill + the plugin's evidence row committed -> answered), and its ratio to plain
# single-row INSERTs of a record-sized row through the same data layer, same run; also closes of
# sessions the core never saw open.
#
# Environment: N (records, default 5000), K (calls in flight, default 64).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
B=${1:-${BUILD_DIR:-$top/_build/main}}
B=$(cd "$B" && pwd)
N=${N:-5000}
K=${K:-64}
RESULTS=${RESULTS:-$top/tests/bench/RESULTS.md}
prog=$B/tests/bench/bench_records
[ -x "$prog" ] || { echo "bench_records.sh: $prog not built (make tests/bench/bench_records)" >&2; exit 1; }
# the protocol plugin the closes go through (a check-only module)
make -C "$B" -s tests/plugins/tp_proto.la >/dev/null
export EVCS_BENCH_PLUGIN_DIR="$B/tests/plugins/.libs"

# short path: the server's unix socket path must stay under 100 bytes
dir=$(mktemp -d /tmp/evcs-benchrec.XXXXXX)
cleanup() {
	"$top/tests/mariadb.sh" stop "$dir" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

eval "$("$top/tests/mariadb.sh" start "$dir")"
# the server's CPU per baseline row and per close (read from /proc by bench_records)
EVCS_BENCH_SERVER_PID=$(cat "$dir/mysqld.pid" 2>/dev/null || true)
export EVCS_BENCH_SERVER_PID
out=$dir/bench.out
"$prog" "$N" "$K" | tee "$out"
line=$(grep '^RESULT ' "$out") || { echo "bench_records.sh: no RESULT line" >&2; exit 1; }

# RESULT server=.. n=.. k=.. pool=.. baseline_rows_per_s=.. records_per_s=.. ratio=.. offline_per_s=..
# offline_ratio=.. baseline_latency_ms=.. record_latency_ms=.. offline_latency_ms=..
val() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
{
	echo
	echo "### bench_records $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -r), N=$(val n) K=$(val k)"
	echo
	echo "MariaDB $(val server) (private, tests/mariadb.sh defaults), core db pool $(val pool)."
	echo
	echo "| path | per second | mean latency ms | x baseline |"
	echo "|---|---|---|---|"
	echo "| baseline: single-row INSERT (CHAR(32) key + 20 BIGINT) via evcs_db_query_platform | $(val baseline_rows_per_s) rows | $(val baseline_latency_ms) | 1.00 |"
	echo "| session_close via the tp_proto plugin over TCP, opened sessions (priced by the tenant script; session + bill + evidence, group commit; answered after COMMIT) | $(val records_per_s) records | $(val record_latency_ms) | $(val ratio) |"
	echo "| session_close of sessions the core never saw open (read back first) | $(val offline_per_s) records | $(val offline_latency_ms) | $(val offline_ratio) |"
	echo
	echo "Rounds' ratios $(val ratio_min)-$(val ratio_max); CPU per close: this process $(val client_cpu_us) us, database server $(val server_cpu_us_close) us (per baseline row: $(val server_cpu_us_base) us)."
} >>"$RESULTS"
echo "appended to $RESULTS"
