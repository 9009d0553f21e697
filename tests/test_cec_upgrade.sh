#!/bin/bash
# tests/test_cec_upgrade.sh: an installation from before the CEC tables moved into the cec
# plugin keeps its partners. Run by `make check` (needs tests/with-mariadb.sh's EVCS_DB_*; the
# MariaDB root account on that socket creates a private database).
#
#   1. A fresh database gets the core migrations as they were: schema/ with the old
#      005_interconnect.sql and 006_partner_profile.sql (tests/fixtures/cec_upgrade/, the text of
#      those files before the move), which create partners, partner_stations and outbox.
#   2. A partner, its station permission, an undelivered push and a partner-started session are
#      stored in those tables.
#   3. `evcsd --migrate` of this build with [plugin cec] configured: the core's files (005/006
#      now empty; already applied here) and then the plugin's 001, which renames the tables.
#   4. Checks: the old tables are gone, cec_partners / cec_partner_stations / cec_outbox hold
#      the same rows (secrets and profile included), the session's StartChargeSeq is in
#      cec_starts, a second --migrate changes nothing, and the resulting tables are exactly those
#      of a fresh install (SHOW CREATE TABLE compared).
# Exit 0 = pass. From the build tree: tests/with-mariadb.sh ../../tests/test_cec_upgrade.sh
set -euo pipefail

src=${srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
src=$(cd "$src" && pwd)
build=$(pwd)
evcsd=$build/core/evcsd
plugdir=$build/plugins/cec/.libs
: "${EVCS_DB_SOCKET:?run under tests/with-mariadb.sh}"
fails=0
ok() { echo "ok   - $*"; }
fail() {
	echo "FAIL - $*"
	fails=$((fails + 1))
}
check_eq() { if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: expected '$2', got '$3'"; fi; }

[ -x "$evcsd" ] || { echo "FAIL - no $evcsd (run from the build tree)"; exit 1; }
[ -f "$plugdir/cec.so" ] || { echo "FAIL - no $plugdir/cec.so"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/evcs-cec-upg.XXXXXX")
db="evcs_cecupg_$$"
root() { mysql --no-defaults --protocol=socket --socket="$EVCS_DB_SOCKET" -uroot "$@"; }
cleanup() {
	root -e "DROP DATABASE IF EXISTS \`$db\`" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT
q() { root -N -B "$db" -e "$1"; }

root -e "CREATE DATABASE \`$db\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
	GRANT ALL PRIVILEGES ON \`$db\`.* TO '$EVCS_DB_USER'@'localhost';
	GRANT ALL PRIVILEGES ON \`$db\`.* TO '$EVCS_DB_USER'@'127.0.0.1';"

# 1. the old core schema
mkdir "$tmp/oldschema"
cp "$src"/schema/[0-9]*.sql "$tmp/oldschema/"
cp "$src"/tests/fixtures/cec_upgrade/005_interconnect.sql "$src"/tests/fixtures/cec_upgrade/006_partner_profile.sql \
	"$tmp/oldschema/"
conf() {
	cat >"$1" <<EOF
[core]
plugin_dir = $plugdir
[database]
socket = $EVCS_DB_SOCKET
user = $EVCS_DB_USER
password = ${EVCS_DB_PASSWORD:-}
name = $2
$3
EOF
}
conf "$tmp/core.conf" "$db" ""
EVCS_SCHEMA_DIR=$tmp/oldschema "$evcsd" --migrate -c "$tmp/core.conf" >"$tmp/m1.log" 2>&1 ||
	{ cat "$tmp/m1.log"; echo "FAIL - old core migrations"; exit 1; }
check_eq "the old core schema has partners" "partners" "$(q "SHOW TABLES LIKE 'partners'")"

# 2. data in the old tables
q "INSERT INTO tenants (name) VALUES ('upgrade');
   SET @t = LAST_INSERT_ID();
   INSERT INTO stations (tenant_id, name) VALUES (@t, 'S1');
   SET @s = LAST_INSERT_ID();
   INSERT INTO partners (tenant_id, name, operator_id, our_operator_id, base_url, operator_secret, data_secret,
     data_secret_iv, sig_secret, profile)
   VALUES (@t, 'Old partner', 'PTNR00007', 'MA1EVCS01', 'https://p.example/', 'op-secret', 'DataSecret16byte',
     'IVsecret16bytes!', 'sig-secret', '{\"preset\": \"orise\", \"token_ttl\": 86400}');
   SET @p = LAST_INSERT_ID();
   INSERT INTO partner_stations (tenant_id, partner_id, station_id) VALUES (@t, @p, @s);
   INSERT INTO outbox (tenant_id, partner_id, kind, payload, idem_key) VALUES (@t, @p, 'notification_stationStatus', '{}', 'k1');
   INSERT INTO piles (tenant_id, station_id, serial) VALUES (@t, @s, '32010200000777');
   INSERT INTO charging_sessions (tenant_id, station_id, pile_id, gun_no, trade_no, state, start_mode, partner_id, partner_seq)
   VALUES (@t, @s, LAST_INSERT_ID(), 1, '32010200000777012512010000000001', 'pending', 'partner', @p, 'PTNR00007000000000000000001');"
pid=$(q "SELECT id FROM partners")
sid=$(q "SELECT id FROM stations")

# 3. this build's --migrate with the plugin
conf "$tmp/cec.conf" "$db" "[plugin cec]"
EVCS_SCHEMA_DIR=$src/schema "$evcsd" --migrate -c "$tmp/cec.conf" >"$tmp/m2.log" 2>&1 ||
	{ cat "$tmp/m2.log"; echo "FAIL - evcsd --migrate with the cec plugin"; exit 1; }
grep -q "plugin cec: schema migrated from version 0 to 1" "$tmp/m2.log" && ok "the plugin's migration ran" ||
	fail "no 'plugin cec: schema migrated' line in: $(cat "$tmp/m2.log")"

# 4. the rows survived under the new names
check_eq "old tables are gone" "" "$(q "SHOW TABLES WHERE Tables_in_$db IN ('partners', 'partner_stations', 'outbox')")"
check_eq "the partner kept its id, codes, secrets and profile" \
	"$pid	PTNR00007	MA1EVCS01	DataSecret16byte	sig-secret	orise	86400" \
	"$(q "SELECT id, operator_id, our_operator_id, data_secret, sig_secret, JSON_VALUE(profile, '\$.preset'),
	      JSON_VALUE(profile, '\$.token_ttl') FROM cec_partners")"
check_eq "its station permission" "$pid	$sid" "$(q "SELECT partner_id, station_id FROM cec_partner_stations")"
check_eq "its undelivered push" "pending	k1" "$(q "SELECT state, idem_key FROM cec_outbox WHERE partner_id = $pid")"
check_eq "its StartChargeSeq is remembered" "PTNR00007000000000000000001" \
	"$(q "SELECT partner_seq FROM cec_starts WHERE partner_id = $pid")"
check_eq "plugin version recorded" "1" "$(q "SELECT MAX(version) FROM plugin_schema_version WHERE plugin = 'cec'")"

EVCS_SCHEMA_DIR=$src/schema "$evcsd" --migrate -c "$tmp/cec.conf" >"$tmp/m3.log" 2>&1 ||
	{ cat "$tmp/m3.log"; fail "second --migrate"; }
grep -q "plugin cec: schema is current (version 1)" "$tmp/m3.log" && ok "a second --migrate has nothing to do" ||
	fail "second run: $(cat "$tmp/m3.log")"
check_eq "still one partner" "1" "$(q "SELECT COUNT(*) FROM cec_partners")"

# the upgraded tables are those of a fresh install
fresh="${db}_fresh"
root -e "CREATE DATABASE \`$fresh\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
	GRANT ALL PRIVILEGES ON \`$fresh\`.* TO '$EVCS_DB_USER'@'localhost';
	GRANT ALL PRIVILEGES ON \`$fresh\`.* TO '$EVCS_DB_USER'@'127.0.0.1';"
trap 'root -e "DROP DATABASE IF EXISTS \`$fresh\`" >/dev/null 2>&1 || true; cleanup' EXIT
conf "$tmp/fresh.conf" "$fresh" "[plugin cec]"
EVCS_SCHEMA_DIR=$src/schema "$evcsd" --migrate -c "$tmp/fresh.conf" >"$tmp/m4.log" 2>&1 ||
	{ cat "$tmp/m4.log"; echo "FAIL - fresh --migrate"; exit 1; }
for t in cec_partners cec_partner_stations cec_outbox cec_starts; do
	a=$(root -N -B "$db" -e "SHOW CREATE TABLE $t" | sed 's/ AUTO_INCREMENT=[0-9]*//')
	b=$(root -N -B "$fresh" -e "SHOW CREATE TABLE $t" | sed 's/ AUTO_INCREMENT=[0-9]*//')
	check_eq "$t: upgraded = fresh" "$b" "$a"
done

[ "$fails" -eq 0 ] && echo "PASS: the upgrade keeps the partners" || echo "$fails check(s) failed"
[ "$fails" -eq 0 ]
