#!/bin/bash
# tests/test_package.sh: the Debian packages install, run and purge cleanly.
#
# Builds the .debs with packaging/build-deb.sh (lintian errors fail it),
# installs them with apt-get, and checks what the packaging promises: the evcs
# system user; /etc/evcs 0750 and evcsd.conf 0640 root:evcs (it holds
# secrets), surviving a reinstall; /var/lib/evcs 0750 evcs:evcs; conffiles;
# the unit file; the SDK's pkg-config file and its evcs-embed-sql (it compiles
# a plugin's migrations into C that builds against the packaged header). It then fills the packaged config
# with the test database (as an operator would), runs the migrations through
# the postinst upgrade path, starts /usr/sbin/evcsd directly as user evcs
# (systemd is not running here) with NOTIFY_SOCKET set, checks READY=1 and
# /healthz, stops it with SIGTERM, and finally checks that remove keeps and
# purge deletes the user, config and state.
#
# Runs as root on a machine where evcsd is not installed (it installs and
# purges system packages). Database: EVCS_DB_* from tests/with-mariadb.sh;
# when they are unset the script re-runs itself under with-mariadb.sh.
# Needs: the Build-Depends, dpkg-dev debhelper fakeroot lintian, mariadb-server,
# curl, socat, systemd (for systemd-analyze), man-db.
# Usage: tests/test_package.sh          KEEP_TMP=1 keeps the work directory.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || {
	echo "FAIL - must run as root (installs packages)"
	exit 1
}
if [ -z "${EVCS_DB_USER:-}" ]; then
	exec "$top/tests/with-mariadb.sh" "$0" "$@"
fi
: "${EVCS_DB_PASSWORD?}" "${EVCS_DB_NAME?}"

status=$(dpkg-query -W -f '${db:Status-Status}' evcsd 2>/dev/null || true)
if [ -n "$status" ] && [ "$status" != not-installed ]; then
	echo "FAIL - evcsd is already on this machine ($status); purge it first (apt-get purge evcsd)"
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/evcs-pkg.XXXXXX")
chmod 0711 "$tmp" # user evcs reaches the notify socket in here
pid=
notify_pid=
installed=0
fails=0
export DEBIAN_FRONTEND=noninteractive

cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
	[ -n "$notify_pid" ] && kill "$notify_pid" 2>/dev/null || true
	if [ "$installed" = 1 ]; then
		dpkg --purge evcsd-plugin-cec libevcs-plugin-dev evcsd >/dev/null 2>&1 || true
	fi
	if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

ok() { echo "ok   - $*"; }
fail() {
	echo "FAIL - $*"
	fails=$((fails + 1))
}
check_eq() {
	if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: expected '$2', got '$3'"; fi
}
check_grep() { # DESCRIPTION FIXED-STRING FILE
	if grep -qF -- "$2" "$3"; then ok "$1"; else
		fail "$1: '$2' not in $3:"
		sed 's/^/       | /' "$3"
	fi
}
die() {
	echo "FAIL - $*"
	[ -f "$tmp/evcsd.log" ] && { echo "----- evcsd log"; cat "$tmp/evcsd.log"; }
	exit 1
}
mode_of() { stat -c '%a %U:%G' "$1" 2>/dev/null || echo missing; }

# conf_set FILE SECTION KEY VALUE: set KEY in [SECTION], replacing its active
# line or adding one at the end of the section (commented-out examples stay
# comments). The file is rewritten in place, so owner and mode stay as the
# package set them.
conf_set() {
	awk -v sec="[$2]" -v key="$3" -v val="$4" '
		/^\[/ {
			if (insec && !done) { print key " = " val; done = 1 }
			insec = ($0 == sec)
		}
		insec && !done && $0 ~ "^[ \t]*" key "[ \t]*=" { print key " = " val; done = 1; next }
		{ print }
		END { if (!done) { if (!insec) { print ""; print sec } print key " = " val } }
	' "$1" >"$tmp/conf.new"
	cat "$tmp/conf.new" >"$1"
}

# ---- build and install --------------------------------------------------------
"$top/packaging/build-deb.sh" "$tmp/debs" >"$tmp/build.log" 2>&1 ||
	{ tail -60 "$tmp/build.log"; die "packaging/build-deb.sh failed"; }
ok "build-deb.sh built the packages; lintian found no errors"
(cd "$tmp/debs" && apt-get install -y -q ./evcsd_*.deb ./evcsd-plugin-cec_*.deb \
	./libevcs-plugin-dev_*.deb) >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log"; die "apt-get install of the .debs failed"; }
installed=1
ok "apt-get install ./*.deb"

# ---- what the installation created ---------------------------------------------
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd evcs || echo "x:x:99999:x:x:x:x")
if [ "$uid" -lt 1000 ]; then ok "evcs is a system user (uid $uid)"; else fail "no system user evcs (uid '$uid')"; fi
check_eq "evcs home" "/var/lib/evcs" "$home"
check_eq "evcs shell" "/usr/sbin/nologin" "$shell"
check_eq "evcs primary group" "evcs" "$(id -gn evcs 2>/dev/null || echo none)"
check_eq "/etc/evcs" "750 root:evcs" "$(mode_of /etc/evcs)"
check_eq "/etc/evcs/evcsd.conf" "640 root:evcs" "$(mode_of /etc/evcs/evcsd.conf)"
check_eq "/var/lib/evcs" "750 evcs:evcs" "$(mode_of /var/lib/evcs)"
conffiles=$(dpkg-query -W -f '${Conffiles}\n' evcsd | awk 'NF {print $1}' | sort | tr '\n' ' ')
check_eq "conffiles" "/etc/default/evcsd /etc/evcs/evcsd.conf " "$conffiles"
check_eq "daemon version" "evcsd $(dpkg-parsechangelog -l "$top/packaging/debian/changelog" -S Version | sed 's/-[^-]*$//')" \
	"$(/usr/sbin/evcsd --version | cut -d' ' -f1-2)"
[ -f /lib/systemd/system/evcsd.service ] && ok "unit installed" || fail "no /lib/systemd/system/evcsd.service"
if out=$(systemd-analyze verify /lib/systemd/system/evcsd.service 2>&1) && [ -z "$out" ]; then
	ok "systemd-analyze verify evcsd.service"
else
	fail "systemd-analyze verify: $out"
fi
for page in evcsd.8 evcsd.conf.5 evcs-lua.7 evcs-plugin.3; do
	f=$(find /usr/share/man -name "$page.gz" | head -1)
	if [ -n "$f" ] && out=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -l "$f" 2>&1 >/dev/null) &&
		[ -z "$out" ]; then ok "man page $page installed and renders cleanly"; else fail "man page $page: ${f:-missing} $out"; fi
done
plugindir=$(pkg-config --variable=plugindir evcs-plugin 2>/dev/null || echo none)
[ -f "$plugindir/ykc.so" ] && [ -f "$plugindir/cec.so" ] &&
	ok "pkg-config plugindir ($plugindir) holds the packaged plugins" ||
	fail "plugindir '$plugindir' does not hold ykc.so and cec.so"
pkg-config --cflags evcs-plugin | grep -q -- '-fPIC' && ok "pkg-config evcs-plugin works" ||
	fail "pkg-config --cflags evcs-plugin"
embed=$(pkg-config --variable=embed_sql evcs-plugin 2>/dev/null || echo none)
check_eq "pkg-config names the packaged evcs-embed-sql" "/usr/bin/evcs-embed-sql" "$embed"
check_eq "evcs-embed-sql belongs to libevcs-plugin-dev" "libevcs-plugin-dev" \
	"$(dpkg -S /usr/bin/evcs-embed-sql 2>/dev/null | cut -d: -f1)"
mkdir "$tmp/embed"
cat >"$tmp/embed/001_items.sql" <<'EOF'
CREATE TABLE pk_items (id BIGINT, note VARCHAR(8) DEFAULT "a\b");
EOF
echo 'ALTER TABLE pk_items ADD tenant_id BIGINT;' >"$tmp/embed/002_tenant.sql"
cat >"$tmp/embed/main.c" <<'EOF'
#include <evcs/plugin.h>
#include <stdio.h>
#include <string.h>
extern const evcs_migration_t m[];
int main(void)
{
	for (int i = 0; m[i].version; i++)
		printf("%u %s %d\n", m[i].version, m[i].name, strstr(m[i].sql, "\"a\\b\"") != NULL);
	return 0;
}
EOF
# shellcheck disable=SC2046 # pkg-config output is a list of flags
if /usr/bin/evcs-embed-sql m "$tmp/embed/002_tenant.sql" "$tmp/embed/001_items.sql" >"$tmp/embed/m.c" &&
	cc -Wall -Werror $(pkg-config --cflags evcs-plugin) -o "$tmp/embed/t" "$tmp/embed/main.c" \
		"$tmp/embed/m.c" 2>"$tmp/embed/cc.log"; then
	check_eq "evcs-embed-sql output builds against the packaged header, migrations in order" \
		"1 001_items 1|2 002_tenant 0" "$("$tmp/embed/t" | paste -sd'|')"
else
	fail "evcs-embed-sql output does not build: $(cat "$tmp/embed/cc.log")"
fi

# ---- the operator's configuration ---------------------------------------------------
conf=/etc/evcs/evcsd.conf
conf_set $conf core log_level debug
conf_set $conf http listen 127.0.0.1:0
conf_set $conf "plugin ykc" listen 127.0.0.1:0/1.6
# The private server's socket sits in a root-only directory; user evcs goes by TCP then.
if [ -n "${EVCS_DB_SOCKET:-}" ] && setpriv --reuid=evcs --regid=evcs --init-groups -- test -w "$EVCS_DB_SOCKET" 2>/dev/null; then
	conf_set $conf database socket "$EVCS_DB_SOCKET"
else
	conf_set $conf database host "${EVCS_DB_HOST:-127.0.0.1}"
	conf_set $conf database port "${EVCS_DB_PORT:-3306}"
fi
conf_set $conf database user "$EVCS_DB_USER"
conf_set $conf database password "$EVCS_DB_PASSWORD"
conf_set $conf database name "$EVCS_DB_NAME"
check_eq "edited config keeps its mode" "640 root:evcs" "$(mode_of $conf)"
out=$(setpriv --reuid=evcs --regid=evcs --init-groups -- /usr/sbin/evcsd --check-config -c $conf 2>&1) ||
	fail "evcsd --check-config as evcs: $out"

# Reinstalling over the edited conffile keeps the edit and the permissions.
dpkg -i "$tmp"/debs/evcsd_*.deb >"$tmp/reinstall.log" 2>&1 || { cat "$tmp/reinstall.log"; die "dpkg -i (reinstall) failed"; }
grep -qxF "password = $EVCS_DB_PASSWORD" $conf && ok "reinstall keeps the edited conffile" ||
	fail "reinstall lost the edited conffile"
check_eq "reinstall keeps the config's mode" "640 root:evcs" "$(mode_of $conf)"

# ---- migrations through the upgrade path of postinst ----------------------------------
# Called as dpkg calls it, so the debhelper snippets behave as in a real upgrade.
postinst() {
	DPKG_MAINTSCRIPT_PACKAGE=evcsd DPKG_MAINTSCRIPT_NAME=postinst DPKG_MAINTSCRIPT_ARCH=$(dpkg --print-architecture) \
		/var/lib/dpkg/info/evcsd.postinst "$@"
}
postinst configure 0.0.1-1 >"$tmp/upgrade1.log" 2>&1 || fail "postinst configure (upgrade) failed"
check_grep "upgrade prints the migration command" "    evcsd --migrate -c /etc/evcs/evcsd.conf" "$tmp/upgrade1.log"
sed -i 's/^EVCSD_MIGRATE_ON_UPGRADE=.*/EVCSD_MIGRATE_ON_UPGRADE=yes/' /etc/default/evcsd
postinst configure 0.0.1-1 >"$tmp/upgrade2.log" 2>&1 || fail "postinst configure (upgrade, migrate=yes) failed"
check_grep "upgrade with EVCSD_MIGRATE_ON_UPGRADE=yes runs the migrations" "evcsd: migrations applied" "$tmp/upgrade2.log"

# ---- run the packaged daemon as systemd would (without systemd) ------------------------------
socat -u "UNIX-RECV:$tmp/notify.sock,perm=0666" "OPEN:$tmp/notify.log,creat,append" &
notify_pid=$!
for _ in $(seq 50); do [ -S "$tmp/notify.sock" ] && break; sleep 0.1; done
(cd / && exec env NOTIFY_SOCKET="$tmp/notify.sock" setpriv --reuid=evcs --regid=evcs --init-groups -- \
	/usr/sbin/evcsd -f -c $conf) >"$tmp/evcsd.log" 2>&1 &
pid=$!
http=
for _ in $(seq 200); do
	http=$(sed -n 's/.*\[http\] listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/evcsd.log")
	[ -n "$http" ] && grep -q 'READY=1' "$tmp/notify.log" 2>/dev/null && break
	kill -0 "$pid" 2>/dev/null || die "evcsd exited during start-up"
	sleep 0.1
done
[ -n "$http" ] || die "evcsd did not report its HTTP listener within 20 s"
check_grep "READY=1 sent to NOTIFY_SOCKET" "READY=1" "$tmp/notify.log"
check_eq "daemon runs as evcs" "evcs" "$(ps -o user= -p "$pid" | tr -d ' ')"
code=$(curl -sS --max-time 5 -o "$tmp/healthz" -w '%{http_code}' "http://127.0.0.1:$http/healthz" || echo none)
check_eq "/healthz answers 200" "200" "$code"
check_grep "/healthz says ready" '"status":"ready"' "$tmp/healthz"
code=$(curl -sS --max-time 5 -o "$tmp/metrics" -w '%{http_code}' "http://127.0.0.1:$http/metrics" || echo none)
check_eq "/metrics answers 200" "200" "$code"
check_grep "ykc plugin loaded from the package" 'evcs_plugin_up{plugin="ykc"' "$tmp/metrics"

kill -TERM "$pid"
for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then fail "evcsd still running 20 s after SIGTERM"; kill -KILL "$pid"; fi
rc=0
wait "$pid" || rc=$?
pid=
check_eq "evcsd exits 0 after SIGTERM" "0" "$rc"
check_grep "STOPPING=1 sent on SIGTERM" "STOPPING=1" "$tmp/notify.log"

# ---- remove keeps, purge deletes --------------------------------------------------------------
apt-get remove -y -q evcsd evcsd-plugin-cec libevcs-plugin-dev >"$tmp/remove.log" 2>&1 ||
	{ cat "$tmp/remove.log"; die "apt-get remove failed"; }
[ ! -e /usr/sbin/evcsd ] && ok "remove deletes the daemon" || fail "remove left /usr/sbin/evcsd"
[ ! -e /usr/bin/evcs-embed-sql ] && ok "remove deletes evcs-embed-sql" || fail "remove left /usr/bin/evcs-embed-sql"
for p in evcsd-plugin-cec libevcs-plugin-dev; do
	check_eq "remove takes $p completely (no conffiles)" "not-installed" \
		"$(dpkg-query -W -f '${db:Status-Status}' $p 2>/dev/null || echo not-installed)"
done
[ -f $conf ] && getent passwd evcs >/dev/null && [ -d /var/lib/evcs ] &&
	ok "remove keeps config, user and state" || fail "remove deleted config, user or state"
# The other two have no conffiles: remove already took them completely.
apt-get purge -y -q evcsd >"$tmp/purge.log" 2>&1 ||
	{ cat "$tmp/purge.log"; die "apt-get purge failed"; }
installed=0
check_eq "purge leaves no trace in dpkg" "not-installed" \
	"$(dpkg-query -W -f '${db:Status-Status}' evcsd 2>/dev/null || echo not-installed)"
getent passwd evcs >/dev/null && fail "purge left user evcs" || ok "purge removes user evcs"
getent group evcs >/dev/null && fail "purge left group evcs" || ok "purge removes group evcs"
for path in /etc/evcs /etc/default/evcsd /var/lib/evcs /etc/systemd/system/multi-user.target.wants/evcsd.service; do
	[ -e "$path" ] || [ -L "$path" ] && fail "purge left $path" || ok "purge removes $path"
done
dpkg-statoverride --list | grep -q '/etc/evcs' && fail "purge left dpkg-statoverride entries" ||
	ok "purge removes the statoverrides"

if [ "$fails" -ne 0 ]; then
	[ -f "$tmp/evcsd.log" ] && { echo "----- evcsd log"; cat "$tmp/evcsd.log"; }
	echo "$fails check(s) failed"
	exit 1
fi
echo "all checks passed"
