#!/bin/bash
# tests/test_example_plugin.sh: the plugin SDK works out of tree.
#
# Builds evcsd from this source tree, installs it into a temporary prefix,
# copies plugins/example/{example.c,Makefile} somewhere else and builds the
# plugin there with nothing but `pkg-config evcs-plugin` (PKG_CONFIG_PATH into
# the prefix), installs it into the pc file's plugindir, then runs the
# installed evcsd in the foreground on ephemeral loopback ports and checks:
# --check-config sees the plugin; the echo-status protocol (PING/STATUS/QUIT)
# over TCP; the plugin's HTTP route and metrics on the core's server; the bus
# subscription (SIGHUP publishes config_reloaded); SIGTERM drains an open
# connection and exits 0.
#
# No database is needed: [database] required = no.
# Usage: tests/test_example_plugin.sh        (from anywhere; exit 0 = pass)
# Needs: the build dependencies, pkg-config, curl, binutils (nm).
# KEEP_TMP=1 keeps the temporary directory (build, prefix, logs).
# EVCS_CONFIGURE_ARGS replaces the extra configure arguments (default
# --enable-werror); CFLAGS/LDFLAGS reach both builds, e.g. for a sanitizer run:
#   CFLAGS="-O1 -g -fsanitize=address,undefined" LDFLAGS=-fsanitize=address,undefined \
#   EVCS_CONFIGURE_ARGS= tests/test_example_plugin.sh
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/evcs-example.XXXXXX")
pid=
fails=0

cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
	if [ "${KEEP_TMP:-0}" = 1 ]; then
		echo "kept $tmp" >&2
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT

ok() { echo "ok   - $*"; }
fail() {
	echo "FAIL - $*"
	fails=$((fails + 1))
}
# check DESCRIPTION EXPECTED ACTUAL
check_eq() {
	if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: expected '$2', got '$3'"; fi
}
# check_has DESCRIPTION NEEDLE HAYSTACK (fixed string, one line of the haystack)
check_has() {
	if printf '%s\n' "$3" | grep -qxF -- "$2"; then ok "$1"; else
		fail "$1: no line '$2' in:"
		printf '%s\n' "$3" | sed 's/^/       | /'
	fi
}
die() {
	echo "FAIL - $*"
	if [ -f "$tmp/evcsd.log" ]; then
		echo "----- evcsd log"
		cat "$tmp/evcsd.log"
	fi
	exit 1
}

# ---- build and install the tree -------------------------------------------
if [ ! -x "$top/configure" ]; then
	(cd "$top" && ./autogen.sh) >"$tmp/autogen.log" 2>&1 || die "autogen.sh failed: $tmp/autogen.log"
fi
prefix="$tmp/prefix"
mkdir -p "$tmp/build"
(
	cd "$tmp/build"
	# shellcheck disable=SC2086 # word splitting of the extra arguments is wanted
	"$top/configure" -q --prefix="$prefix" ${EVCS_CONFIGURE_ARGS---enable-werror}
	make -j"$(nproc)"
	make install
) >"$tmp/build.log" 2>&1 || { tail -40 "$tmp/build.log"; die "build/install of evcsd failed"; }
ok "evcsd built and installed into a temporary prefix"

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
plugindir=$(pkg-config --variable=plugindir evcs-plugin) || die "pkg-config cannot find evcs-plugin"
check_eq "pc file's plugindir is the installed daemon's" "$prefix/lib/evcsd/plugins" "$plugindir"

# ---- build the example outside the source tree -----------------------------
# Only the two files a third party would have: no path back into the tree.
mkdir "$tmp/example"
cp "$top/plugins/example/example.c" "$top/plugins/example/Makefile" "$tmp/example/"
make -C "$tmp/example" >"$tmp/example-build.log" 2>&1 ||
	{ cat "$tmp/example-build.log"; die "example plugin did not build against the SDK"; }
make -C "$tmp/example" install >>"$tmp/example-build.log" 2>&1 || die "example install failed"
[ -f "$plugindir/example.so" ] && ok "example.so built with pkg-config only and installed" ||
	fail "example.so not in $plugindir"
exports=$(nm -D --defined-only "$plugindir/example.so" | awk '{print $3}')
check_eq "example.so exports only the entry point" "evcs_plugin_entry" "$exports"

# ---- configure and check -----------------------------------------------------
mkdir "$tmp/state"
conf="$tmp/evcsd.conf"
cat >"$conf" <<EOF
[core]
log_level = debug
state_dir = $tmp/state
shutdown_timeout = 5000

[http]
listen = 127.0.0.1:0

[database]
# no database: the plugin needs none
required = no
host = 127.0.0.1
port = 1

[plugin example]
listen = 127.0.0.1:0
idle_timeout = 60
EOF
evcsd="$prefix/sbin/evcsd"
out=$("$evcsd" --check-config -c "$conf" 2>&1) || die "--check-config failed: $out"
check_has "--check-config loads the plugin from the default plugin dir" \
	"plugin example 1.0.0 (ABI 1.0): $plugindir/example.so" "$out"

# ---- run ----------------------------------------------------------------------
"$evcsd" -f -c "$conf" >"$tmp/evcsd.log" 2>&1 &
pid=$!
port=
http=
for _ in $(seq 100); do
	port=$(sed -n 's/.*\[example\] echo-status listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/evcsd.log")
	http=$(sed -n 's/.*\[http\] listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/evcsd.log")
	[ -n "$port" ] && [ -n "$http" ] && break
	kill -0 "$pid" 2>/dev/null || die "evcsd exited during start-up"
	sleep 0.1
done
[ -n "$port" ] && [ -n "$http" ] || die "evcsd did not report its listeners within 10 s"
ok "evcsd running: plugin on port $port, HTTP on port $http"

# One request/response over a bash /dev/tcp socket on fd 3.
send() { printf '%s\r\n' "$1" >&3; }
recv() {
	local line
	IFS= read -r -t 5 line <&3 || { echo "<no reply>"; return 0; }
	printf '%s' "${line%$'\r'}"
}

# expect_eof FD DESCRIPTION: the peer closed FD (EOF within 5 s; a timeout or
# a line is a failure).
expect_eof() {
	local line rc=0
	IFS= read -r -t 5 line <&"$1" || rc=$?
	if [ "$rc" = 0 ]; then fail "$2: connection still open (read '$line')"
	elif [ "$rc" -gt 128 ]; then fail "$2: connection still open (no EOF within 5 s)"
	else ok "$2"; fi
}

exec 3<>"/dev/tcp/127.0.0.1/$port" || die "cannot connect to the example plugin"
send PING
check_eq "PING answers PONG" "PONG" "$(recv)"
send STATUS
check_eq "STATUS counts the connection and the ping" "STATUS connections=1 pings=1 reloads=0" "$(recv)"
exec 4<>"/dev/tcp/127.0.0.1/$port" || die "second connection refused"
printf 'PING\nSTATUS\n' >&4 # LF-only line ends are accepted too
IFS= read -r -t 5 l1 <&4 || l1="<no reply>"
IFS= read -r -t 5 l2 <&4 || l2="<no reply>"
check_eq "second connection, LF line ends: PING" "PONG" "${l1%$'\r'}"
check_eq "second connection sees two connections" "STATUS connections=2 pings=2 reloads=0" "${l2%$'\r'}"
send "HELLO"
check_eq "unknown command" "ERR unknown command" "$(recv)"
printf 'QUIT\n' >&4
IFS= read -r -t 5 l1 <&4 || l1="<no reply>"
check_eq "QUIT answers BYE" "BYE" "${l1%$'\r'}"
expect_eof 4 "QUIT closes the connection"
exec 4<&-

# A peer that never ends its line must not grow the input buffer forever.
exec 4<>"/dev/tcp/127.0.0.1/$port" || die "third connection refused"
head -c 600 /dev/zero | tr '\0' A >&4
expect_eof 4 "a line longer than 512 bytes closes the connection"
exec 4<&-

body=$(curl -sS --max-time 5 -w '\n%{http_code} %{content_type}' "http://127.0.0.1:$http/example/status") ||
	die "GET /example/status failed"
check_has "route answers 200 text/plain" "200 text/plain; charset=utf-8" "$body"
check_has "route reports pings" "pings 2" "$body"
for _ in $(seq 50); do # the QUIT connection's close is processed asynchronously
	body=$(curl -sS --max-time 5 "http://127.0.0.1:$http/example/status")
	printf '%s\n' "$body" | grep -qx 'connections 1' && break
	sleep 0.1
done
check_has "route reports the one open connection" "connections 1" "$body"

metrics=$(curl -sS --max-time 5 "http://127.0.0.1:$http/metrics") || die "GET /metrics failed"
check_has "counter metric" "evcs_example_pings_total 2" "$metrics"
check_has "gauge metric" "evcs_example_connections 1" "$metrics"
check_has "counter metric type" "# TYPE evcs_example_pings_total counter" "$metrics"

health=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http/healthz")
check_eq "/healthz answers 200" "200" "$health"

# SIGHUP makes the core publish config_reloaded; the plugin counts it.
kill -HUP "$pid"
for _ in $(seq 50); do
	body=$(curl -sS --max-time 5 "http://127.0.0.1:$http/example/status")
	printf '%s\n' "$body" | grep -qx 'reloads 1' && break
	sleep 0.1
done
check_has "bus subscription sees the reload" "reloads 1" "$body"
send STATUS
check_eq "connection survives the reload" "STATUS connections=1 pings=2 reloads=1" "$(recv)"

# SIGTERM with fd 3 still open: the drain closes it and the daemon exits 0,
# well before [core] shutdown_timeout (5 s), which it would wait out if the
# connection stayed open.
t0=$(date +%s%N)
kill -TERM "$pid"
status=0
for _ in $(seq 150); do
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
	fail "evcsd still running 15 s after SIGTERM"
	kill -KILL "$pid"
fi
wait "$pid" || status=$?
elapsed=$((($(date +%s%N) - t0) / 1000000))
pid=
check_eq "evcsd exits 0 after SIGTERM" "0" "$status"
if [ "$elapsed" -lt 4000 ]; then ok "the drain closed the open connection (exit after $elapsed ms)"; else
	fail "exit took $elapsed ms: the drain waited out shutdown_timeout"
fi
expect_eof 3 "the client sees the connection closed"
exec 3<&-
if grep -q 'ERROR: AddressSanitizer\|runtime error:' "$tmp/evcsd.log"; then
	fail "sanitizer report in the daemon log"
fi

if [ "$fails" -ne 0 ]; then
	echo "----- evcsd log"
	cat "$tmp/evcsd.log"
	echo "$fails check(s) failed"
	exit 1
fi
echo "all checks passed"
