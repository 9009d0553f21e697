#!/bin/bash
# tests/test_example_plugin.sh: the plugin SDK works out of tree.
#
# Builds evcsd from this source tree, installs it into a temporary prefix,
# copies plugins/example (its sources, schema/ and Makefile) somewhere else and
# builds the plugin there with nothing but `pkg-config evcs-plugin` (plus
# jansson) and the SDK's evcs-embed-sql (pc variable embed_sql), which compiles
# schema/001_notes.sql into the descriptor. A second plugin,
# tests/plugins/tp_service.c, is built the same way: it consumes the service
# the example offers. Both are installed into the pc file's plugindir.
# Then, against a private MariaDB and on ephemeral loopback ports:
#   - with only tp_service: evcsd --migrate, start: the service is "not available";
#   - with the example: it refuses to start before its migration, and the log
#     says to run `evcsd --migrate`; --migrate applies 001_notes (table
#     example_notes exists);
#   - running: the echo-status protocol (PING/STATUS/QUIT) over TCP; the
#     plugin's HTTP route and metrics; its operator-API route
#     /api/v1/example/notes: a note created for tenant A is listed for A, not
#     for B, 401 without a token, 403 for a read-only token on POST, 400 for bad
#     input, an audit row in the same transaction, the operations in the served
#     openapi.json; the "messaging" service it looks up is "not available";
#     tp_service sees the example's service (version 1, the note counted) and
#     "not available" for version 2; the bus subscription (SIGHUP publishes
#     config_reloaded); SIGTERM drains an open connection and exits 0.
#
# Usage: tests/test_example_plugin.sh        (from anywhere; exit 0 = pass)
# Database: EVCS_DB_* from tests/with-mariadb.sh; when they are unset the script
# re-runs itself under with-mariadb.sh. The database EVCS_DB_NAME is dropped and
# created again.
# Needs: the build dependencies, pkg-config, curl, binutils (nm), mariadb-client.
# KEEP_TMP=1 keeps the temporary directory (build, prefix, logs).
# EVCS_CONFIGURE_ARGS replaces the extra configure arguments (default
# --enable-werror); CFLAGS/LDFLAGS reach both builds, e.g. for a sanitizer run:
#   CFLAGS="-O1 -g -fsanitize=address,undefined" LDFLAGS=-fsanitize=address,undefined \
#   EVCS_CONFIGURE_ARGS= tests/test_example_plugin.sh
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${EVCS_DB_USER:-}" ]; then
	exec "$top/tests/with-mariadb.sh" "$0" "$@"
fi
: "${EVCS_DB_PASSWORD?}" "${EVCS_DB_NAME?}"
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
embed_sql=$(pkg-config --variable=embed_sql evcs-plugin)
check_eq "pc file names the installed evcs-embed-sql" "$prefix/bin/evcs-embed-sql" "$embed_sql"
[ -x "$embed_sql" ] && ok "evcs-embed-sql is installed and executable" || fail "$embed_sql is not executable"

# ---- build the plugins outside the source tree -----------------------------
# Only the files a third party would have: no path back into the tree.
mkdir "$tmp/example"
cp "$top"/plugins/example/{Makefile,example.c,example.h,notes.c,example_service.h} "$tmp/example/"
cp -r "$top/plugins/example/schema" "$tmp/example/"
make -C "$tmp/example" >"$tmp/example-build.log" 2>&1 ||
	{ cat "$tmp/example-build.log"; die "example plugin did not build against the SDK"; }
make -C "$tmp/example" install >>"$tmp/example-build.log" 2>&1 || die "example install failed"
[ -f "$plugindir/example.so" ] && ok "example.so built with pkg-config only and installed" ||
	fail "example.so not in $plugindir"
grep -q 'CREATE TABLE example_notes' "$tmp/example/example_schema.c" &&
	ok "evcs-embed-sql compiled schema/001_notes.sql into the plugin" ||
	fail "example_schema.c does not hold the migration"
exports=$(nm -D --defined-only "$plugindir/example.so" | awk '{print $3}')
check_eq "example.so exports only the entry point" "evcs_plugin_entry" "$exports"
# the consumer of the example's service: its source and the provider's header, nothing else
mkdir "$tmp/tp"
cp "$top/tests/plugins/tp_service.c" "$top/plugins/example/example_service.h" "$tmp/tp/"
# shellcheck disable=SC2046 # pkg-config output is a list of flags
${CC:-cc} -std=c11 -Wall -Wextra -Werror ${CFLAGS:-} -fvisibility=hidden -I"$tmp/tp" \
	$(pkg-config --cflags evcs-plugin) -o "$plugindir/tp_service.so" "$tmp/tp/tp_service.c" \
	${LDFLAGS:-} $(pkg-config --libs evcs-plugin) >"$tmp/tp-build.log" 2>&1 ||
	{ cat "$tmp/tp-build.log"; die "tp_service did not build against the SDK"; }
ok "tp_service.so built with pkg-config only and installed"

# ---- database ------------------------------------------------------------------
db_where=(-h "${EVCS_DB_HOST:-127.0.0.1}" -P "${EVCS_DB_PORT:-3306}")
[ -n "${EVCS_DB_SOCKET:-}" ] && db_where=(-S "$EVCS_DB_SOCKET")
sqlq() { # SQL: the result as tab-separated text without column names
	mariadb --no-defaults "${db_where[@]}" -u "$EVCS_DB_USER" --password="$EVCS_DB_PASSWORD" -N -B \
		-e "$1" "$EVCS_DB_NAME"
}
sqlq "DROP DATABASE IF EXISTS \`$EVCS_DB_NAME\`; CREATE DATABASE \`$EVCS_DB_NAME\` \
CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci" || die "cannot reset database $EVCS_DB_NAME"

# ---- configuration ----------------------------------------------------------------
BOOT=example-test-bootstrap-token-0123456789
mkdir "$tmp/state"
# write_conf FILE SECTIONS...: the common part, then the named plugin sections
write_conf() {
	local f=$1
	shift
	{
		printf '[core]\nlog_level = debug\nstate_dir = %s\nshutdown_timeout = 5000\n\n' "$tmp/state"
		printf '[http]\nlisten = 127.0.0.1:0\n\n[api]\nbootstrap_token = %s\n\n[database]\n' "$BOOT"
		if [ -n "${EVCS_DB_SOCKET:-}" ]; then printf 'socket = %s\n' "$EVCS_DB_SOCKET"; else
			printf 'host = %s\nport = %s\n' "${EVCS_DB_HOST:-127.0.0.1}" "${EVCS_DB_PORT:-3306}"
		fi
		printf 'user = %s\npassword = %s\nname = %s\n' "$EVCS_DB_USER" "$EVCS_DB_PASSWORD" "$EVCS_DB_NAME"
		for s in "$@"; do
			case $s in
			example) printf '\n[plugin example]\nlisten = 127.0.0.1:0\nidle_timeout = 60\n' ;;
			tp_service) printf '\n[plugin tp_service]\nfile = tp_service.so\n' ;;
			esac
		done
	} >"$f"
}
evcsd="$prefix/sbin/evcsd"

# start_evcsd CONF LOG: run in the foreground (background job), wait for the HTTP port
start_evcsd() {
	"$evcsd" -f -c "$1" >"$2" 2>&1 &
	pid=$!
	http=
	for _ in $(seq 100); do
		http=$(sed -n 's/.*\[http\] listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$2")
		[ -n "$http" ] && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
stop_evcsd() {
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=
}

# ---- the provider absent: only the consumer ------------------------------------------
conf0="$tmp/evcsd-noexample.conf"
write_conf "$conf0" tp_service
out=$("$evcsd" --migrate -c "$conf0" 2>&1) || die "evcsd --migrate (core only) failed: $out"
check_eq "--migrate without the example creates no example table" "" \
	"$(sqlq "SHOW TABLES LIKE 'example_notes'")"
start_evcsd "$conf0" "$tmp/evcsd-noexample.log" || { cat "$tmp/evcsd-noexample.log"; die "evcsd (tp_service only) did not start"; }
body=$(curl -sS --max-time 5 "http://127.0.0.1:$http/tp_service/status") || die "GET /tp_service/status failed"
check_has "consumer without the provider: not available" "example.notes v1: not available" "$body"
stop_evcsd

# ---- the example before and after its migration ---------------------------------------------
conf="$tmp/evcsd.conf"
write_conf "$conf" example tp_service
out=$("$evcsd" --check-config -c "$conf" 2>&1) || die "--check-config failed: $out"
check_has "--check-config loads the plugin from the default plugin dir" \
	"plugin example 2.0.0 (ABI 2.0): $plugindir/example.so" "$out"
rc=0
timeout 15 "$evcsd" -f -c "$conf" >"$tmp/evcsd-unmigrated.log" 2>&1 || rc=$?
if [ "$rc" != 0 ] && grep -q 'evcsd --migrate' "$tmp/evcsd-unmigrated.log" &&
	grep -q 'example' "$tmp/evcsd-unmigrated.log"; then
	ok "the example refuses to start before its migration and the log says to run evcsd --migrate"
else
	fail "unmigrated start: exit $rc, log:"
	sed 's/^/       | /' "$tmp/evcsd-unmigrated.log"
fi
out=$("$evcsd" --migrate -c "$conf" 2>&1) || die "evcsd --migrate failed: $out"
check_eq "--migrate creates the example's table" "example_notes" "$(sqlq "SHOW TABLES LIKE 'example_notes'")"
check_eq "--migrate records the example's version" "1 001_notes applied" \
	"$(sqlq "SELECT CONCAT(version, ' ', name, ' ', status) FROM plugin_schema_version WHERE plugin = 'example'")"
out2=$("$evcsd" --migrate -c "$conf" 2>&1) || fail "a second --migrate failed: $out2"
ok "a second --migrate has nothing to do and succeeds"

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

# ---- the operator-API route on the plugin's own table ---------------------------------------
api="http://127.0.0.1:$http/api/v1"
# call METHOD PATH TOKEN [TENANT] [BODY]: prints "STATUS BODY"
call() {
	local args=(-sS --max-time 10 -o "$tmp/resp" -w '%{http_code}' -X "$1" -H 'Content-Type: application/json')
	[ -n "$3" ] && args+=(-H "Authorization: Bearer $3")
	[ -n "${4:-}" ] && args+=(-H "X-Tenant-ID: $4")
	[ -n "${5:-}" ] && args+=(--data "$5")
	local code
	code=$(curl "${args[@]}" "$api$2") || code=000
	printf '%s %s' "$code" "$(cat "$tmp/resp" 2>/dev/null)"
}
json_int() { sed -n "s/.*\"$1\":\([0-9-]*\).*/\1/p"; }
json_str() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
new_tenant() { call POST /tenants "$BOOT" "" "{\"name\":\"$1\"}" | cut -d' ' -f2- | json_int id; }
new_token() { call POST /tokens "$BOOT" "$1" "{\"username\":\"$2\",\"role\":\"$3\"}" | cut -d' ' -f2- | json_str token; }
tA=$(new_tenant "Example A")
tB=$(new_tenant "Example B")
[ -n "$tA" ] && [ -n "$tB" ] || die "cannot create tenants through the API"
opA=$(new_token "$tA" ex-a-op operator)
roA=$(new_token "$tA" ex-a-ro read-only)
opB=$(new_token "$tB" ex-b-op operator)
[ -n "$opA" ] && [ -n "$roA" ] && [ -n "$opB" ] || die "cannot create tokens through the API"

r=$(call POST /example/notes "$opA" "" '{"text":"gun 2 cable worn"}')
check_eq "POST a note for tenant A answers 201" "201" "${r%% *}"
note=$(printf '%s' "${r#* }" | json_int id)
check_eq "the reply carries the note" "gun 2 cable worn" "$(printf '%s' "${r#* }" | json_str text)"
check_eq "the note names its author" "user:ex-a-op" "$(printf '%s' "${r#* }" | json_str created_by)"
check_eq "messaging service absent: not available" "not available" "$(printf '%s' "${r#* }" | json_str messaging)"
grep -q '\[example\].*messaging service not available' "$tmp/evcsd.log" &&
	ok "the absent messaging service is logged" || fail "no log line about the absent messaging service"
check_eq "the row is tenant A's" "$tA" "$(sqlq "SELECT tenant_id FROM example_notes WHERE id = ${note:-0}")"
check_eq "one audit row for the note, tenant A" "1" \
	"$(sqlq "SELECT COUNT(*) FROM audit_log WHERE tenant_id = $tA AND action = 'example.note_create' AND object_type = 'example_note' AND object_id = '${note:-0}' AND actor = 'user:ex-a-op'")"
r=$(call GET /example/notes "$opA")
check_eq "GET for tenant A answers 200" "200" "${r%% *}"
case ${r#* } in *'"text":"gun 2 cable worn"'*) ok "tenant A lists its note" ;; *) fail "tenant A's list: ${r#* }" ;; esac
case ${r#* } in *'"next_offset":null'*) ok "one page: next_offset null" ;; *) fail "paging fields: ${r#* }" ;; esac
r=$(call GET /example/notes "$roA")
check_eq "read-only may list" "200" "${r%% *}"
r=$(call GET /example/notes "$opB")
check_eq "GET for tenant B answers 200" "200" "${r%% *}"
case ${r#* } in *'"items":[]'*) ok "tenant B does not see tenant A's note" ;; *) fail "tenant B's list: ${r#* }" ;; esac
r=$(call GET "/example/notes?tenant_id=$tA" "$opB")
case ${r#* } in *'gun 2 cable worn'*) fail "tenant B read A's note naming A's tenant: $r" ;; *) ok "tenant B cannot name tenant A" ;; esac
r=$(call GET /example/notes "")
check_eq "no token: 401" "401" "${r%% *}"
r=$(call POST /example/notes "$roA" "" '{"text":"read-only writes"}')
check_eq "read-only token on POST: 403" "403" "${r%% *}"
r=$(call POST /example/notes "$opA" "" '{"text":""}')
check_eq "empty text: 400" "400" "${r%% *}"
r=$(call POST /example/notes "$opA" "" '{"text":"x","colour":"red"}')
check_eq "unknown field: 400" "400" "${r%% *}"
r=$(call GET "/example/notes?limit=0" "$opA")
check_eq "bad limit: 400" "400" "${r%% *}"
check_eq "nothing written by the refused requests" "1" "$(sqlq "SELECT COUNT(*) FROM example_notes")"
r=$(call GET /openapi.json "")
case ${r#* } in *'"/api/v1/example/notes"'*) ok "openapi.json describes the plugin's route" ;; *) fail "openapi.json lacks /api/v1/example/notes" ;; esac

# ---- services: the example's, seen by the second plugin -------------------------------------------
body=$(curl -sS --max-time 5 "http://127.0.0.1:$http/tp_service/status") || die "GET /tp_service/status failed"
check_has "consumer with the provider loaded: the service answers" \
	"example.notes v1: available (version 1) notes_created=1" "$body"
check_has "a version the provider does not offer: not available" "example.notes v2: not available" "$body"

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
