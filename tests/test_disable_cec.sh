#!/bin/bash
# tests/test_disable_cec.sh: a build configured with --disable-cec has nothing of CEC: no
# cec.so, no CEC tables after `evcsd --migrate` of a fresh database, no partner routes served
# and none in the served OpenAPI document.
#
# Configures and builds this source tree in a temporary directory with --disable-cec, runs
# `evcsd --migrate` against a fresh database of a private MariaDB (tests/with-mariadb.sh; the
# script re-runs itself under it when EVCS_DB_* is not set), then starts that evcsd in the
# foreground on an ephemeral loopback port and asks it over HTTP. Checks:
#   - the build made no plugins/cec/cec.so
#   - no table named cec_*, partner*, or outbox exists, while the core's tables do
#   - GET /api/v1/openapi.json has no /api/v1/partners... path and no Partner schema
#   - GET and POST /api/v1/partners answer 404 to an authenticated platform admin (and
#     GET /api/v1/tenants answers 200 to the same token, so the 404 is about the route)
# Run by tests/run-all.sh; alone: tests/test_disable_cec.sh (exit 0 = pass).
# EVCS_CONFIGURE_ARGS replaces the extra configure arguments (default --enable-werror).
# KEEP_TMP=1 keeps the build and the logs.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${EVCS_DB_SOCKET:-}" ]; then
	exec "$top/tests/with-mariadb.sh" "$0" "$@"
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/evcs-nocec.XXXXXX")
db="evcs_nocec_$$"
pid=
fails=0
root() { mysql --no-defaults --protocol=socket --socket="$EVCS_DB_SOCKET" -uroot "$@"; }
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	root -e "DROP DATABASE IF EXISTS \`$db\`" >/dev/null 2>&1 || true
	if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
ok() { echo "ok   - $*"; }
fail() {
	echo "FAIL - $*"
	fails=$((fails + 1))
}
check_eq() { if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: expected '$2', got '$3'"; fi; }
die() {
	echo "FAIL - $*"
	[ -f "$tmp/evcsd.log" ] && sed 's/^/       | /' "$tmp/evcsd.log" | tail -n 30
	exit 1
}

# ---- build ----------------------------------------------------------------------------------
[ -x "$top/configure" ] || (cd "$top" && ./autogen.sh >/dev/null 2>&1)
mkdir "$tmp/build"
(cd "$tmp/build" && "$top/configure" -q --disable-cec ${EVCS_CONFIGURE_ARGS---enable-werror} >"$tmp/configure.log" 2>&1 &&
	make -j"$(nproc 2>/dev/null || echo 2)" >"$tmp/make.log" 2>&1) ||
	{ tail -n 30 "$tmp/make.log" "$tmp/configure.log" 2>/dev/null; die "the --disable-cec build failed"; }
ok "built with --disable-cec"
evcsd=$tmp/build/core/evcsd
check_eq "no cec.so was built" "" "$(find "$tmp/build" -name 'cec.so' -o -name 'cec.la' | head -n 1)"

# ---- a fresh database, migrated ----------------------------------------------------------------
root -e "CREATE DATABASE \`$db\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
	GRANT ALL PRIVILEGES ON \`$db\`.* TO '$EVCS_DB_USER'@'localhost';
	GRANT ALL PRIVILEGES ON \`$db\`.* TO '$EVCS_DB_USER'@'127.0.0.1';"
boot="nocec-bootstrap-token-0123456789"
cat >"$tmp/evcsd.conf" <<EOF
[core]
log_level = info
plugin_dir = $tmp/build/plugins
[http]
listen = 127.0.0.1:0
[database]
socket = $EVCS_DB_SOCKET
user = $EVCS_DB_USER
password = ${EVCS_DB_PASSWORD:-}
name = $db
[api]
bootstrap_token = $boot
EOF
EVCS_SCHEMA_DIR=$top/schema "$evcsd" --migrate -c "$tmp/evcsd.conf" >"$tmp/migrate.log" 2>&1 ||
	{ cat "$tmp/migrate.log"; die "evcsd --migrate failed"; }
tables=$(root -N -B "$db" -e "SHOW TABLES")
[ -n "$(printf '%s\n' "$tables" | grep -x 'charging_sessions')" ] && ok "the core's tables exist" ||
	fail "no core tables after --migrate: $tables"
check_eq "no CEC table (cec_*, partner*, outbox)" "" \
	"$(printf '%s\n' "$tables" | grep -Ei '^(cec_.*|partner.*|outbox)$' || true)"

# ---- the running server ------------------------------------------------------------------------
EVCS_SCHEMA_DIR=$top/schema "$evcsd" -f -c "$tmp/evcsd.conf" >"$tmp/evcsd.log" 2>&1 &
pid=$!
http=
for _ in $(seq 1 100); do
	http=$(sed -n 's/.*\[http\] listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/evcsd.log" | head -n 1)
	[ -n "$http" ] && break
	kill -0 "$pid" 2>/dev/null || die "evcsd exited"
	sleep 0.1
done
[ -n "$http" ] || die "evcsd did not report its HTTP port within 10 s"
ok "evcsd running on port $http"
base="http://127.0.0.1:$http"
spec=$(curl -sS --max-time 5 "$base/api/v1/openapi.json") || die "GET /api/v1/openapi.json failed"
paths=$(printf '%s' "$spec" | grep -o '"/api/v1/[^"]*"' | sort -u)
[ "$(printf '%s\n' "$paths" | wc -l)" -gt 10 ] && ok "the OpenAPI document lists the core's paths" ||
	fail "OpenAPI document looks empty: $paths"
check_eq "no partner path in the OpenAPI document" "" "$(printf '%s\n' "$paths" | grep -i partner || true)"
check_eq "no Partner schema in the OpenAPI document" "" "$(printf '%s' "$spec" | grep -o '"Partner[A-Za-z]*"' || true)"
code() { curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $boot" "$@"; }
check_eq "GET /api/v1/tenants (control)" "200" "$(code "$base/api/v1/tenants")"
check_eq "GET /api/v1/partners" "404" "$(code "$base/api/v1/partners")"
check_eq "POST /api/v1/partners" "404" "$(code -X POST -H 'Content-Type: application/json' -d '{"name":"x"}' \
	"$base/api/v1/partners")"
check_eq "GET /api/v1/partners/1" "404" "$(code "$base/api/v1/partners/1")"

kill -TERM "$pid"
wait "$pid" && ok "evcsd stopped cleanly" || fail "evcsd exit status $?"
pid=

[ "$fails" -eq 0 ] && echo "PASS: a --disable-cec build has nothing of CEC" || echo "$fails check(s) failed"
[ "$fails" -eq 0 ]
