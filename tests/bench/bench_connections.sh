#!/bin/sh
# tests/bench/bench_connections.sh: connection and frame benchmarks (run by hand,
# never by `make check`). See tests/bench/README.md for what the figures mean.
#
#   tests/bench/bench_connections.sh [BUILD_DIR]
#
# For every server available it starts the server, ramps evcs-sim to TARGET
# piles (heartbeat every 10 s per gun), holds them for HOLD seconds and reports:
#   - server RSS per connected pile   (VmRSS from /proc/PID/status, before and after)
#   - server CPU per 1000 piles       (utime+stime from /proc/PID/stat over the hold)
#   - heartbeat -> 0x04 round trip p50/p99 under that load (from evcs-sim)
#   - frames/s at saturation          (FLOOD_PILES piles x FLOOD_WINDOW heartbeats in flight)
# Servers, in order: the plain libevent echo server (tests/bench/echo_baseline,
# the floor), the scripted YKC stub (tests/bench/ykc-stub-server, codec cost
# without storage) and evcsd with the ykc plugin and a private MariaDB when the
# plugin is built. The saturation ratio to the echo server is printed for each.
# Figures are appended to tests/bench/RESULTS.md (RESULTS=... to change).
#
# Environment: TARGET (20000) HOLD (20 s) RAMP (connections/s, 4000) GUNS (1)
#   FLOOD_PILES (200) FLOOD_WINDOW (16) FLOOD_SECONDS (10) SRC (source address range,
#   default 127.0.0.2-127.0.0.20 when TARGET needs more than one address) SERVERS
#   (space-separated subset of "echo stub evcsd")
#
# 100000 piles: raise the descriptor limits of both processes (ulimit -n 210000 as
# root, fs.nr_open and fs.file-max if needed), keep SRC spanning at least
# TARGET/28000 addresses (default range covers 19), give the loopback enough
# memory (net.ipv4.tcp_mem) and run TARGET=100000 RAMP=5000 HOLD=60.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
B=${1:-${BUILD_DIR:-$top/_build/main}}
B=$(cd "$B" && pwd)
TARGET=${TARGET:-20000}
HOLD=${HOLD:-20}
RAMP=${RAMP:-4000}
GUNS=${GUNS:-1}
FLOOD_PILES=${FLOOD_PILES:-200}
FLOOD_WINDOW=${FLOOD_WINDOW:-16}
FLOOD_SECONDS=${FLOOD_SECONDS:-10}
SERVERS=${SERVERS:-echo stub evcsd}
RESULTS=${RESULTS:-$top/tests/bench/RESULTS.md}
SIM=$B/plugins/ykc/evcs-sim
ECHO=$B/tests/bench/echo_baseline
STUB=$B/tests/bench/ykc-stub-server
work=$(mktemp -d "${TMPDIR:-/tmp}/evcs-bench.XXXXXX")
server_pid=
mdb_started=

die() { echo "bench: $*" >&2; exit 1; }
cleanup() {
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
	[ -n "$mdb_started" ] && "$top/tests/mariadb.sh" stop "$work/mdb" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -x "$SIM" ] || die "$SIM not built (make in $B)"
# both the simulator and the server need one descriptor per pile
want=$((TARGET + 200))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want" ]; then
	ulimit -n "$want" 2>/dev/null || {
		hard=$(ulimit -Hn)
		echo "bench: descriptor limit $(ulimit -n) (hard $hard) < $want; TARGET lowered" >&2
		ulimit -n "$hard" 2>/dev/null || true
		TARGET=$(( $(ulimit -n) - 200 ))
	}
fi
src_opt=
if [ "$TARGET" -gt 25000 ] || [ -n "${SRC:-}" ]; then
	src_opt="--source-addrs ${SRC:-127.0.0.2-127.0.0.20}"
fi

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
jnum() { sed -n "s/.*\"$2\": \\([0-9.e+-]*\\).*/\\1/p" "$1" | head -n1; }
hz=$(getconf CLK_TCK)

start_listener() { # PROG: starts it, sets server_pid and port
	"$@" 0 127.0.0.1 >"$work/port" 2>"$work/server.err" &
	server_pid=$!
	i=0
	while ! grep -q '^port ' "$work/port" 2>/dev/null; do
		i=$((i + 1)); [ $i -lt 100 ] || die "server $1 did not start"
		sleep 0.05
	done
	port=$(awk '/^port / {print $2}' "$work/port")
}

have_evcsd() { [ -x "$B/core/evcsd" ] && [ -f "$B/plugins/ykc/.libs/ykc.so" ]; }

# MariaDB starts before any load run: its port is picked from the ephemeral range,
# which the load's TIME_WAIT sockets would otherwise still occupy
start_mdb() {
	envs=$("$top/tests/mariadb.sh" start "$work/mdb") || return 1
	eval "$envs"
	mdb_started=1
}

start_evcsd() {
	[ -n "$mdb_started" ] || start_mdb || return 1
	# below the ephemeral range, where the load runs leave TIME_WAIT sockets
	port=$(( 20000 + $$ % 10000 ))
	http=$((port + 1))
	cat >"$work/evcsd.conf" <<EOF
[core]
log_level = warning
plugin_dir = $B/plugins/ykc/.libs
script_dir = $top/scripts
state_dir = $work/state
schema_dir = $top/schema
[http]
listen = 127.0.0.1:$http
[database]
socket = $EVCS_DB_SOCKET
user = $EVCS_DB_USER
password = $EVCS_DB_PASSWORD
name = $EVCS_DB_NAME
[api]
bootstrap_token = bench-token-0123456789
[plugin ykc]
listen = 127.0.0.1:$port/1.6
max_conns_per_addr = 1000000
EOF
	mkdir -p "$work/state"
	"$B/core/evcsd" -c "$work/evcsd.conf" --migrate >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log" >&2; return 1; }
	# register the serials the simulator will use (32010600000001 + i)
	mysql_c="mariadb --no-defaults --socket=$EVCS_DB_SOCKET -u$EVCS_DB_USER -p$EVCS_DB_PASSWORD $EVCS_DB_NAME"
	$mysql_c -e "INSERT INTO tenants (name) VALUES ('bench');
		INSERT INTO stations (tenant_id, name) SELECT id, 'bench' FROM tenants WHERE name = 'bench';" || return 1
	awk -v n="$TARGET" 'BEGIN { print "INSERT INTO piles (tenant_id, station_id, serial, gun_count) VALUES";
		for (i = 0; i < n; i++) printf "%s((SELECT id FROM tenants WHERE name=\"bench\"), (SELECT id FROM stations WHERE name=\"bench\"), \"%014d\", 1)\n", (i ? "," : ""), 32010600000001 + i; print ";" }' \
		>"$work/piles.sql"
	$mysql_c <"$work/piles.sql" || return 1
	"$B/core/evcsd" -c "$work/evcsd.conf" -f >"$work/evcsd.log" 2>&1 &
	server_pid=$!
	i=0
	while ! curl -fsS "http://127.0.0.1:$http/healthz" >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -lt 200 ] || { tail "$work/evcsd.log" >&2; return 1; }
		sleep 0.1
	done
}

stop_server() {
	[ -n "$server_pid" ] || return 0
	kill "$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
	server_pid=
}

# remote start through the operator API under load: POST .../commands start on
# API_N different piles (each waits for the pile's 0x33), then stop them
api_rtt() {
	tenant=$($mysql_c -N -e "SELECT id FROM tenants WHERE name = 'bench'")
	: >"$work/api.times"
	i=0
	while [ $i -lt "${API_N:-50}" ]; do
		serial=$(printf '%014d' $((32010600000001 + i * (TARGET / ${API_N:-50}))))
		curl -sS -o "$work/api.out" -w '%{http_code} %{time_total}\n' -X POST \
			-H 'Authorization: Bearer bench-token-0123456789' -H "X-Tenant-ID: $tenant" \
			-H 'Content-Type: application/json' --data '{"command":"start","gun":1}' \
			"http://127.0.0.1:$http/api/v1/piles/$serial/commands" >>"$work/api.times" || true
		curl -sS -o /dev/null -X POST -H 'Authorization: Bearer bench-token-0123456789' \
			-H "X-Tenant-ID: $tenant" -H 'Content-Type: application/json' --data '{"command":"stop","gun":1}' \
			"http://127.0.0.1:$http/api/v1/piles/$serial/commands" || true
		i=$((i + 1))
	done
	ok=$(awk '$1 == 200' "$work/api.times" | wc -l)
	api_line=$(awk '$1 == 200 {print $2 * 1000}' "$work/api.times" | sort -n | awk '{a[NR] = $1} END {
		if (NR == 0) { print "no successful start"; exit }
		i50 = int(NR * 0.5 + 0.5); i99 = int(NR * 0.99 + 0.5); if (i50 < 1) i50 = 1; if (i99 < 1) i99 = 1
		printf "p50 %.1f ms p99 %.1f ms", a[i50], a[i99] }')
	echo "  remote start via the API under load: $ok/${API_N:-50} ok, $api_line"
	extra="$extra remote start via API: $api_line ($ok ok)."
}

echo_fps=
extra=
report=""
measure() { # NAME EXTRA_SIM_ARGS...
	name=$1
	shift
	connected=- cps=- line=- p50=- p99=-
	[ "${FRAMES_ONLY:-0}" = 1 ] || load "$@"
	flood "$@"
	report="$report| $name | $TARGET | $connected | $cps | $line | $p50 / $p99 | $fps | $ratio |
"
}

load() {
	rss0=$(rss_kb "$server_pid")
	ramp_s=$(( TARGET / RAMP + 5 ))
	dur=$(( ramp_s + HOLD + 3 ))
	echo "== $name: $TARGET piles, ramp ${RAMP}/s, hold ${HOLD}s (port $port)"
	# shellcheck disable=SC2086
	"$SIM" --host 127.0.0.1 --port "$port" --piles "$TARGET" --guns "$GUNS" --heartbeat-s 10 \
		--ramp "$RAMP" --duration "$dur" --stats-s 5 --json $src_opt "$@" >"$work/load.json" 2>"$work/load.err" &
	sim_pid=$!
	sleep "$ramp_s"
	c0=$(cpu_ticks "$server_pid"); t0=$(date +%s.%N)
	sleep "$HOLD"
	c1=$(cpu_ticks "$server_pid"); t1=$(date +%s.%N)
	rss1=$(rss_kb "$server_pid")
	[ "$name" = evcsd ] && api_rtt
	wait "$sim_pid" || true
	tail -n 3 "$work/load.err" | grep -v '^$' || true
	connected=$(jnum "$work/load.json" connected)
	[ -n "$connected" ] && [ "$connected" -gt 0 ] || { echo "  no pile connected"; tail "$work/load.err" >&2; connected=0; return 0; }
	p50=$(jnum "$work/load.json" rtt_p50_ms | awk '{printf "%.3f", $1}')
	p99=$(jnum "$work/load.json" rtt_p99_ms | awk '{printf "%.3f", $1}')
	cps=$(jnum "$work/load.json" peak_connects_per_s | awk '{printf "%.0f", $1}')
	line=$(awk -v r0="$rss0" -v r1="$rss1" -v n="$connected" -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v hz="$hz" \
		'BEGIN { cpu = (c1 - c0) / hz / (t1 - t0); printf "%.0f B/pile (RSS %.1f -> %.1f MiB), CPU %.2f%% of a core per 1000 piles", (r1 - r0) * 1024 / n, r0 / 1024, r1 / 1024, cpu * 100 / (n / 1000) }')
	echo "  connected $connected, peak $cps connects/s; $line; heartbeat rtt p50 $p50 ms p99 $p99 ms"
}

flood() {
	# saturation: few piles, many heartbeats in flight each
	"$SIM" --host 127.0.0.1 --port "$port" --piles "$FLOOD_PILES" --flood "$FLOOD_WINDOW" --ramp 0 \
		--duration "$FLOOD_SECONDS" --stats-s 2 --json --serial-base 32010600000001 "$@" >"$work/flood.json" 2>"$work/flood.err" || true
	fps=$(jnum "$work/flood.json" avg_frames_per_s | awk '{printf "%.0f", $1}')
	[ "$name" = echo ] && echo_fps=$fps
	ratio=$(awk -v a="$fps" -v b="${echo_fps:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
	echo "  saturation: $fps frames/s (tx+rx, $FLOOD_PILES piles x $FLOOD_WINDOW in flight), ${ratio} x echo"
}

case " $SERVERS " in
*" evcsd "*) if have_evcsd; then start_mdb || die "could not start MariaDB"; fi ;;
esac

for s in $SERVERS; do
	case $s in
	echo)
		[ -x "$ECHO" ] || die "$ECHO not built"
		start_listener "$ECHO"
		measure echo --echo
		stop_server ;;
	stub)
		[ -x "$STUB" ] || die "$STUB not built"
		start_listener "$STUB"
		measure ykc-stub
		stop_server ;;
	evcsd)
		if ! have_evcsd; then
			echo "== evcsd: NOT AVAILABLE (needs core/evcsd and the ykc plugin $B/plugins/ykc/.libs/ykc.so); skipped"
		elif start_evcsd; then
			measure evcsd
			stop_server
		else
			stop_server
			echo "== evcsd: FAILED to start (see the messages above); skipped"
		fi ;;
	*) die "unknown server $s" ;;
	esac
done

{
	echo
	echo "### $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -r), TARGET=$TARGET HOLD=$HOLD GUNS=$GUNS"
	echo
	echo "| server | target | connected | peak connects/s | server memory and CPU | hb rtt p50 / p99 ms | saturation frames/s | x echo |"
	echo "|---|---|---|---|---|---|---|---|"
	printf '%s' "$report"
	[ -z "$extra" ] || printf '\n%s\n' "$extra"
} >>"$RESULTS"
echo "figures appended to $RESULTS"
