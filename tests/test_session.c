/*
 * test_session.c: the protocol-neutral session model (ABI 2, core/session.c) end to end: a real
 * MariaDB, the in-process core with the second protocol plugin tests/plugins/tp_proto.so loaded,
 * and real TCP to that plugin. Identities are not YKC's: pile "CP-ALPHA-0001", trade numbers
 * such as "txn-42-α" (UTF-8, up to 64 bytes).
 *
 * Asserts: authorisation results (accepted, unknown, blocked, no funds, unknown vehicle, the
 * stored PIN hash handed back); open takes the tariff snapshot (a later change of the pile's
 * tariff does not reprice it); meter readings stored; the close priced by the tenant's own Lua
 * tariff script with line items adding up to the total; the plugin's evidence row written in the
 * same transaction (a failing evidence statement leaves nothing of the close); TRANSACTION_CLOSED
 * and SESSION_STOPPED published once by the core with the plugin as source; a duplicate close
 * writes nothing; a conflicting close keeps the first and raises one alarm; a close the core
 * never saw open is created; many closes at once (group commit) with one bad one in the middle;
 * database down -> "unavailable" and nothing stored.
 *
 * Needs the EVCS_DB_* environment of tests/mariadb.sh plus EVCS_MARIADB_SH and EVCS_DB_DIR
 * (tests/with-mariadb.sh sets them); without them the suite FAILS with a message.
 */
#include "core.h"
#include "db.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <jansson.h>
#include <mysql.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef EVCS_TOP_SRCDIR
#define EVCS_TOP_SRCDIR "."
#endif
#ifndef TEST_PLUGIN_DIR
#define TEST_PLUGIN_DIR "."
#endif

#define PILE "CP-ALPHA-0001"
#define T1_SLOTS "333333333333333322222222222222222200001111111111"
#define T2_SLOTS "222222222222222222222222222222222222222222222222"

static evcs_core_t core;
static int core_up;
static evcs_db_config_t cfg;
static MYSQL *my;
static char conf_path[256];
static int port;
static int64_t tenant_id, pile_id, t1_id, t2_id, driver_id;
static int sock = -1;
static char inbuf[1 << 16];
static size_t inlen;
static long tagseq;

/* events seen on the bus */
static int n_closed, n_stopped, n_alarm;
static char last_closed_trade[80], last_closed_source[40];
static int64_t last_closed_session, last_closed_amount;

/* ---- SQL helpers ------------------------------------------------------------------------------ */

static const char *env(const char *k) { return getenv(k) && *getenv(k) ? getenv(k) : NULL; }

static int db_connect(void)
{
	char err[512];
	if (my)
		mysql_close(my);
	my = evcs_db_connect_raw(&cfg, 1, err, sizeof err);
	if (!my)
		fprintf(stderr, "db: %s\n", err);
	return my ? 0 : -1;
}

static int sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sql(const char *fmt, ...)
{
	char q[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q, sizeof q, fmt, ap);
	va_end(ap);
	if (mysql_query(my, q) != 0) {
		/* the test's own connection may have been cut by the database-down test */
		if (db_connect() < 0 || mysql_query(my, q) != 0) {
			fprintf(stderr, "sql failed: %s\n  %s\n", mysql_error(my), q);
			return -1;
		}
	}
	do {
		MYSQL_RES *r = mysql_store_result(my);
		if (r)
			mysql_free_result(r);
	} while (mysql_next_result(my) == 0);
	return 0;
}

/* First column of the first row as text into buf; NULL when no row or SQL NULL. */
static const char *qstr(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static const char *qstr(char *buf, size_t cap, const char *fmt, ...)
{
	char q[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q, sizeof q, fmt, ap);
	va_end(ap);
	if (mysql_query(my, q) != 0 && (db_connect() < 0 || mysql_query(my, q) != 0)) {
		fprintf(stderr, "query failed: %s\n  %s\n", mysql_error(my), q);
		return NULL;
	}
	MYSQL_RES *r = mysql_store_result(my);
	MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
	const char *out = NULL;
	if (row && row[0]) {
		snprintf(buf, cap, "%s", row[0]);
		out = buf;
	}
	if (r)
		mysql_free_result(r);
	return out;
}

#define qint(...) qint_(qstr(qbuf, sizeof qbuf, __VA_ARGS__))
static char qbuf[65536];
static long long qint_(const char *s) { return s ? atoll(s) : -1; }

/* ---- the plugin's wire ------------------------------------------------------------------------ */

static void pump_ms(int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	event_base_loopexit(core.base, &tv);
	event_base_loop(core.base, 0);
}

static void read_some(void)
{
	for (;;) {
		ssize_t n = recv(sock, inbuf + inlen, sizeof inbuf - 1 - inlen, 0);
		if (n <= 0)
			return;
		inlen += (size_t)n;
		inbuf[inlen] = 0;
	}
}

/* Take the answer line for tag out of the buffer into out; 1 when found. */
static int take_answer(const char *tag, char *out, size_t cap)
{
	size_t tl = strlen(tag);
	char *p = inbuf;
	while (p < inbuf + inlen) {
		char *nl = memchr(p, '\n', (size_t)(inbuf + inlen - p));
		if (!nl)
			return 0;
		if ((size_t)(nl - p) > tl && !strncmp(p, tag, tl) && p[tl] == ' ') {
			size_t l = (size_t)(nl - p) - tl - 1;
			snprintf(out, cap, "%.*s", (int)l, p + tl + 1);
			memmove(p, nl + 1, (size_t)(inbuf + inlen - nl - 1));
			inlen -= (size_t)(nl + 1 - p);
			inbuf[inlen] = 0;
			return 1;
		}
		p = nl + 1;
	}
	return 0;
}

static void send_line(const char *line)
{
	size_t off = 0, len = strlen(line);
	while (off < len) {
		ssize_t n = send(sock, line + off, len - off, MSG_NOSIGNAL);
		if (n > 0)
			off += (size_t)n;
		else {
			pump_ms(1);
			read_some();
		}
	}
}

/* Send "CMD tag REST" and return its answer (without the tag), "" on timeout. */
static const char *ask_to(int timeout_ms, const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const char *ask_to(int timeout_ms, const char *cmd, const char *fmt, ...)
{
	static char answer[512];
	char tag[24], rest[1024], line[1200];
	snprintf(tag, sizeof tag, "t%ld", ++tagseq);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rest, sizeof rest, fmt, ap);
	va_end(ap);
	snprintf(line, sizeof line, "%s %s %s\n", cmd, tag, rest);
	send_line(line);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		read_some();
		if (take_answer(tag, answer, sizeof answer))
			return answer;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 > timeout_ms)
			break;
		pump_ms(2);
	}
	fprintf(stderr, "no answer to %s", line);
	answer[0] = 0;
	return answer;
}
#define ask(...) ask_to(10000, __VA_ARGS__)

static int on_bus(const evcs_event_t *ev, void *ud)
{
	(void)ud;
	if (ev->type == EVCS_EV_TRANSACTION_CLOSED) {
		n_closed++;
		const char *t = NULL;
		for (size_t i = 0; i < ev->nfields; i++) {
			if (!strcmp(ev->fields[i].name, "trade_no"))
				t = ev->fields[i].s;
			if (!strcmp(ev->fields[i].name, "session_id"))
				last_closed_session = ev->fields[i].i;
			if (!strcmp(ev->fields[i].name, "total_amount"))
				last_closed_amount = ev->fields[i].i;
		}
		snprintf(last_closed_trade, sizeof last_closed_trade, "%s", t ? t : "");
		snprintf(last_closed_source, sizeof last_closed_source, "%s", ev->source ? ev->source : "");
	} else if (ev->type == EVCS_EV_SESSION_STOPPED) {
		n_stopped++;
	} else if (ev->type == EVCS_EV_ALARM_RAISED) {
		/* the core's own alarms (the default alarms script raises its AMOUNT_MISMATCH too) */
		for (size_t i = 0; i < ev->nfields; i++)
			if (!strcmp(ev->fields[i].name, "code") && ev->fields[i].s &&
			    (!strncmp(ev->fields[i].s, "bill.mismatch.", 14) ||
			     !strncmp(ev->fields[i].s, "record.conflict.", 16)))
				n_alarm++;
	}
	return EVCS_OK;
}

/* ---- set-up ------------------------------------------------------------------------------------ */

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t l = sizeof sa;
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &l) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return ntohs(sa.sin_port);
}

/* The tenant's own tariff script: the standard model of tariff T1 plus a fixed session fee, so
 * a bill made by it is recognisable. */
static const char *tenant_script =
    "local Y = evcs.yuan\n"
    "RATES = { sharp = { elec = Y\"1.20000\", service = Y\"0.80000\" },\n"
    "  peak = { elec = Y\"1.00000\", service = Y\"0.80000\" },\n"
    "  flat = { elec = Y\"0.70000\", service = Y\"0.60000\" },\n"
    "  valley = { elec = Y\"0.35000\", service = Y\"0.40000\" } }\n"
    "SLOTS = evcs.slots{ { \"00:00\", \"08:00\", \"valley\" }, { \"08:00\", \"17:00\", \"flat\" },\n"
    "  { \"17:00\", \"19:00\", \"sharp\" }, { \"19:00\", \"24:00\", \"peak\" } }\n"
    "function tariff(pile) return { model = \"0001\", rates = RATES, slots = SLOTS } end\n"
    "function quote(s)\n"
    "  local items = evcs.standard_items(s, s.tariff)\n"
    "  items[#items + 1] = { kind = \"fee\", label = \"session fee\", unit = \"session\", qty = 1,\n"
    "    unit_price = Y\"0.50000\", amount = Y\"0.50000\" }\n"
    "  return { items = items }\n"
    "end\n"
    "tests = {}\n"
    "function tests.fee_is_added()\n"
    "  local b = quote({ kwh = { sharp = 0, peak = 0, flat = 100000, valley = 0 }, tariff = tariff() })\n"
    "  evcs.expect_eq(evcs.sum(b.items), 1300000 + Y\"0.50000\", \"10 kWh flat and the fee\")\n"
    "end\n";

static int connect_plugin(void)
{
	if (sock >= 0)
		close(sock);
	inlen = 0;
	sock = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (sock < 0 || connect(sock, (struct sockaddr *)&sa, sizeof sa) < 0)
		return -1;
	fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK);
	const char *a = ask("HELLO", "%s", PILE);
	long long t = 0, p = 0;
	if (sscanf(a, "ok %lld %lld", &t, &p) != 2 || t != tenant_id || p != pile_id) {
		fprintf(stderr, "HELLO answered '%s'\n", a);
		return -1;
	}
	return 0;
}

static int migrate_plugin(void)
{
	void *dl = dlopen(TEST_PLUGIN_DIR "/tp_proto.so", RTLD_NOW | RTLD_LOCAL);
	evcs_plugin_entry_fn entry = dl ? (evcs_plugin_entry_fn)dlsym(dl, EVCS_PLUGIN_ENTRY_SYMBOL) : NULL;
	const evcs_plugin_info_t *info = entry ? entry(EVCS_ABI_MAJOR, EVCS_ABI_MINOR) : NULL;
	char err[512] = "";
	int from = -1, to = -1;
	int rc = info && info->migrations ? evcs_db_migrate_plugin(&cfg, info->name, info->migrations,
								   &from, &to, err, sizeof err)
					  : -1;
	if (rc != 0)
		fprintf(stderr, "tp_proto migrations: %s %s\n", dl ? "" : dlerror(), err);
	if (dl)
		dlclose(dl);
	return rc == 0 && to == 1 ? 0 : -1;
}

static int suite_init(void)
{
	const char *user = env("EVCS_DB_USER"), *name = env("EVCS_DB_NAME");
	const char *dsock = env("EVCS_DB_SOCKET"), *dport = env("EVCS_DB_PORT");
	if (!user || !name || (!dsock && !dport) || !env("EVCS_MARIADB_SH") || !env("EVCS_DB_DIR")) {
		fprintf(stderr, "\n*** test_session needs a private MariaDB: run it as tests/with-mariadb.sh "
				"tests/test_session ***\n");
		return -1;
	}
	cfg.host = env("EVCS_DB_HOST") ? env("EVCS_DB_HOST") : "127.0.0.1";
	cfg.port = dport ? (unsigned)atoi(dport) : 0;
	cfg.socket = dsock;
	cfg.user = user;
	cfg.password = env("EVCS_DB_PASSWORD") ? env("EVCS_DB_PASSWORD") : "";
	cfg.name = name;
	cfg.connect_timeout_s = 2;
	if (db_connect() < 0)
		return -1;
	if (sql("DROP DATABASE IF EXISTS `%s`", name) < 0 ||
	    sql("CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci", name) < 0 ||
	    sql("USE `%s`", name) < 0)
		return -1;
	char err[512];
	int from = 0, to = 0;
	if (evcs_db_migrate(&cfg, EVCS_TOP_SRCDIR "/schema", &from, &to, err, sizeof err) != 0) {
		fprintf(stderr, "migrate: %s\n", err);
		return -1;
	}
	if (db_connect() < 0)
		return -1;
	/* the plugin's own table: its migrations, from its descriptor, as `evcsd --migrate` does */
	if (migrate_plugin() < 0)
		return -1;
	if (sql("INSERT INTO tenants (name) VALUES ('neutral')") < 0)
		return -1;
	tenant_id = qint("SELECT id FROM tenants WHERE name = 'neutral'");
	long long t = tenant_id;
	sql("INSERT INTO stations (tenant_id, name) VALUES (%lld, 'S1')", t);
	long long st = qint("SELECT id FROM stations WHERE tenant_id = %lld", t);
	sql("INSERT INTO tariffs (tenant_id, name, model, sharp_elec_rate, sharp_service_rate, "
	    "peak_elec_rate, peak_service_rate, flat_elec_rate, flat_service_rate, valley_elec_rate, "
	    "valley_service_rate, slots, state) VALUES (%lld, 'std', '0001', 120000, 80000, 100000, "
	    "80000, 70000, 60000, 35000, 40000, '" T1_SLOTS "', 'active'), (%lld, 'flat2', '0002', 0, 0, "
	    "0, 0, 200000, 100000, 0, 0, '" T2_SLOTS "', 'active')",
	    t, t);
	t1_id = qint("SELECT id FROM tariffs WHERE tenant_id = %lld AND model = '0001'", t);
	t2_id = qint("SELECT id FROM tariffs WHERE tenant_id = %lld AND model = '0002'", t);
	sql("INSERT INTO piles (tenant_id, station_id, serial, protocol, gun_count, tariff_id) VALUES "
	    "(%lld, %lld, '" PILE "', 'tp', 2, %lld)", t, st, (long long)t1_id);
	pile_id = qint("SELECT id FROM piles WHERE serial = '" PILE "'");
	/* driver 1: 100 yuan, card with a PIN; driver 2: no money; driver 3: blocked card */
	sql("INSERT INTO drivers (tenant_id, phone, name) VALUES (%lld, '1', 'rich'), (%lld, '2', 'poor'), "
	    "(%lld, '3', 'blocked')", t, t, t);
	driver_id = qint("SELECT id FROM drivers WHERE tenant_id = %lld AND phone = '1'", t);
	long long d2 = qint("SELECT id FROM drivers WHERE tenant_id = %lld AND phone = '2'", t);
	long long d3 = qint("SELECT id FROM drivers WHERE tenant_id = %lld AND phone = '3'", t);
	sql("INSERT INTO wallets (tenant_id, driver_id) VALUES (%lld, %lld), (%lld, %lld), (%lld, %lld)",
	    t, (long long)driver_id, t, d2, t, d3);
	long long w1 = qint("SELECT id FROM wallets WHERE driver_id = %lld", (long long)driver_id);
	sql("INSERT INTO wallet_ledger (tenant_id, wallet_id, amount, kind) VALUES (%lld, %lld, 10000000, 'topup')",
	    t, w1);
	sql("INSERT INTO rfid_cards (tenant_id, driver_id, logical_no, physical_no, pin_md5) VALUES "
	    "(%lld, %lld, '0000000000000001', '00000000000000A1', MD5('1234')), "
	    "(%lld, %lld, '0000000000000002', '00000000000000A2', NULL)",
	    t, (long long)driver_id, t, d2);
	sql("INSERT INTO rfid_cards (tenant_id, driver_id, logical_no, physical_no, status) VALUES "
	    "(%lld, %lld, '0000000000000003', '00000000000000A3', 'blocked')", t, d3);
	sql("INSERT INTO vehicles (tenant_id, driver_id, vin) VALUES (%lld, %lld, 'LSVAU2180N2183294')",
	    t, (long long)driver_id);
	/* the tenant's tariff script */
	static char esc[4096];
	mysql_real_escape_string(my, esc, tenant_script, strlen(tenant_script));
	if (sql("INSERT INTO tenant_scripts (tenant_id, kind, name, version, source, sha256, active) "
		"VALUES (%lld, 'tariff', 'tariff', 1, '%s', SHA2('%s', 256), 1)", t, esc, esc) < 0)
		return -1;
	if (tenant_id <= 0 || pile_id <= 0 || t1_id <= 0 || t2_id <= 0 || driver_id <= 0 || w1 <= 0)
		return -1;

	port = free_port();
	snprintf(conf_path, sizeof conf_path, "/tmp/evcs-session-%d.conf", (int)getpid());
	FILE *f = fopen(conf_path, "w");
	if (!f)
		return -1;
	fprintf(f,
		"[core]\nlog_level = %s\nplugin_dir = %s\nschema_dir = %s/schema\nscript_dir = %s/scripts\n"
		"[http]\nlisten = 127.0.0.1:0\n"
		"[database]\n%s%s\nport = %u\nuser = %s\npassword = %s\nname = %s\npool = 2\n"
		"connect_timeout = 2\n[scripts]\namount_tolerance = 1000\n"
		"[plugin tp_proto]\nport = %d\n",
		env("EVCS_TEST_LOG") ? env("EVCS_TEST_LOG") : "warning", TEST_PLUGIN_DIR, EVCS_TOP_SRCDIR,
		EVCS_TOP_SRCDIR, dsock ? "socket = " : "host = ", dsock ? dsock : cfg.host,
		cfg.port ? cfg.port : 3306, user, cfg.password, name, port);
	fclose(f);
	if (evcs_core_start(&core, conf_path, err, sizeof err) != 0) {
		fprintf(stderr, "core start: %s\n", err);
		return -1;
	}
	core_up = 1;
	evcs_bus_subscribe(core.bus, EVCS_EV_TRANSACTION_CLOSED, 0, on_bus, NULL, "test", NULL);
	evcs_bus_subscribe(core.bus, EVCS_EV_SESSION_STOPPED, 0, on_bus, NULL, "test", NULL);
	evcs_bus_subscribe(core.bus, EVCS_EV_ALARM_RAISED, 0, on_bus, NULL, "test", NULL);
	if (connect_plugin() < 0)
		return -1;
	/* the tenant's scripts load asynchronously after the first touch (the login) */
	pump_ms(500);
	return 0;
}

static int suite_clean(void)
{
	if (sock >= 0)
		close(sock);
	if (core_up)
		evcs_core_free(&core);
	if (my)
		mysql_close(my);
	if (conf_path[0])
		unlink(conf_path);
	return 0;
}

/* ---- tests ------------------------------------------------------------------------------------- */

static void test_authorize(void)
{
	char res[512];
	long long drv = 0, card = 0, bal = 0;
	int result = -1;
	char pin[64] = "";
	snprintf(res, sizeof res, "%s", ask("AUTH", "card 00000000000000A1"));
	CU_ASSERT_EQUAL(sscanf(res, "ok %d %lld %lld %lld %63s", &result, &drv, &card, &bal, pin), 5);
	CU_ASSERT_EQUAL(result, EVCS_AUTH_ACCEPTED);
	CU_ASSERT_EQUAL(drv, driver_id);
	CU_ASSERT(card > 0);
	CU_ASSERT_EQUAL(bal, 10000000);
	/* the PIN check is the protocol's: the core hands back the stored hash */
	CU_ASSERT_STRING_EQUAL(pin, "81dc9bdb52d04dc20036dbd8313ed055");
	CU_ASSERT_EQUAL(sscanf(ask("AUTH", "card 00000000000000FF"), "ok %d", &result), 1);
	CU_ASSERT_EQUAL(result, EVCS_AUTH_UNKNOWN);
	/* any identity shape: a token no card table could hold is simply unknown */
	CU_ASSERT_EQUAL(sscanf(ask("AUTH", "card κάρτα-0123456789-0123456789"), "ok %d", &result), 1);
	CU_ASSERT_EQUAL(result, EVCS_AUTH_UNKNOWN);
	CU_ASSERT_EQUAL(sscanf(ask("AUTH", "card 00000000000000A3"), "ok %d", &result), 1);
	CU_ASSERT_EQUAL(result, EVCS_AUTH_BLOCKED);
	CU_ASSERT_EQUAL(sscanf(ask("AUTH", "card 00000000000000A2"), "ok %d %*d %*d %*d %63s", &result, pin), 2);
	CU_ASSERT_EQUAL(result, EVCS_AUTH_NO_FUNDS);
	CU_ASSERT_STRING_EQUAL(pin, "-");
	CU_ASSERT_EQUAL(sscanf(ask("AUTH", "vin LSVAU2180N2183294"), "ok %d %lld", &result, &drv), 2);
	CU_ASSERT_EQUAL(result, EVCS_AUTH_ACCEPTED);
	CU_ASSERT_EQUAL(drv, driver_id);
	CU_ASSERT_EQUAL(sscanf(ask("AUTH", "vin LSVAU2180N2183295"), "ok %d", &result), 1);
	CU_ASSERT_EQUAL(result, EVCS_AUTH_UNKNOWN_VEHICLE);
	char acct[32];
	snprintf(acct, sizeof acct, "account %lld", (long long)driver_id);
	CU_ASSERT_EQUAL(sscanf(ask("AUTH", "%s", acct), "ok %d", &result), 1);
	CU_ASSERT_EQUAL(result, EVCS_AUTH_ACCEPTED);
	/* the pile disabled: refused whatever the card */
	sql("UPDATE piles SET status = 'disabled' WHERE id = %lld", (long long)pile_id);
	CU_ASSERT_EQUAL(sscanf(ask("AUTH", "card 00000000000000A1"), "ok %d", &result), 1);
	CU_ASSERT_EQUAL(result, EVCS_AUTH_PILE_DISABLED);
	sql("UPDATE piles SET status = 'enabled' WHERE id = %lld", (long long)pile_id);
}

static long long s42; /* session of "txn-42-α" */

static void test_open_takes_snapshot(void)
{
	long long sid = 0, sid2 = 0;
	int created = -1;
	CU_ASSERT_EQUAL(sscanf(ask("OPEN", "1 txn-42-α card 00000000000000A1"), "ok %lld %d", &sid, &created), 2);
	CU_ASSERT(sid > 0);
	CU_ASSERT_EQUAL(created, 1);
	/* idempotent: the same open again is the same row */
	CU_ASSERT_EQUAL(sscanf(ask("OPEN", "1 txn-42-α card 00000000000000A1"), "ok %lld %d", &sid2, &created), 2);
	CU_ASSERT_EQUAL(sid2, sid);
	CU_ASSERT_EQUAL(created, 0);
	s42 = sid;
	char b[128];
	CU_ASSERT_STRING_EQUAL(qstr(b, sizeof b, "SELECT CONCAT(state, '/', start_mode, '/', physical_card) "
						 "FROM charging_sessions WHERE id = %lld", sid),
			       "starting/card/00000000000000A1");
	CU_ASSERT_EQUAL(qint("SELECT tariff_id FROM charging_sessions WHERE id = %lld", sid), t1_id);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM charging_sessions WHERE id = %lld AND state = 'starting' "
			     "AND tariff_model = '0001' AND tariff_flat_elec_rate = 70000 AND tariff_slots = '" T1_SLOTS "' "
			     "AND trade_no = 'txn-42-α'", sid),
			1);
	/* the pile's tariff changes after the open: the session keeps its snapshot */
	sql("UPDATE piles SET tariff_id = %lld WHERE id = %lld", (long long)t2_id, (long long)pile_id);
}

static void test_meter_readings(void)
{
	long long now = (long long)time(NULL) * 1000;
	CU_ASSERT_STRING_EQUAL(ask("METER", "1 txn-42-α %lld 20000 30000 40", now - 3000), "ok");
	CU_ASSERT_STRING_EQUAL(ask("METER", "1 txn-42-α %lld 60000 80000 50", now - 2000), "ok");
	CU_ASSERT_STRING_EQUAL(ask("METER", "1 txn-42-α %lld 150000 160000 60", now - 1000), "ok");
	/* a reading for a session that does not exist is refused quietly (nothing stored) */
	CU_ASSERT_STRING_EQUAL(ask("METER", "1 txn-nope %lld 1 1 1", now), "ok");
	/* the batch writes within 1 s and the live figures follow: wait for them (bounded), a
	 * loaded machine may need longer than the batch interval */
	for (int i = 0; i < 100; i++) {
		pump_ms(100);
		if (qint("SELECT COUNT(*) FROM meter_samples WHERE session_id = %lld", s42) == 3 &&
		    qint("SELECT live_kwh FROM charging_sessions WHERE id = %lld", s42) == 150000)
			break;
	}
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM meter_samples WHERE session_id = %lld", s42), 3);
	CU_ASSERT_EQUAL(qint("SELECT MAX(kwh) FROM meter_samples WHERE session_id = %lld", s42), 150000);
	CU_ASSERT_EQUAL(qint("SELECT live_kwh FROM charging_sessions WHERE id = %lld", s42), 150000);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM meter_samples s JOIN charging_sessions c ON c.id = s.session_id "
			     "WHERE c.trade_no = 'txn-nope'"), 0);
}

/* 10 kWh flat + 5 kWh valley under T1: 7.00 + 1.75 energy, 6.00 + 2.00 service, 0.50 fee */
#define WANT_TOTAL 1725000

static void test_close_priced_by_script(void)
{
	int closed0 = n_closed, stopped0 = n_stopped;
	long long sid = 0, total = 0, alarm = -1;
	int dup = -1, conf = -1, mis = -1;
	long long end = (long long)time(NULL) * 1000, start = end - 3600000;
	const char *a = ask("CLOSE", "1 txn-42-α %lld %lld 150000 %d d1 0,0,100000,50000 ok", start, end,
			    WANT_TOTAL);
	CU_ASSERT_EQUAL(sscanf(a, "ok %lld %d %d %d %lld %lld", &sid, &dup, &conf, &mis, &total, &alarm), 6);
	CU_ASSERT_EQUAL(sid, s42);
	CU_ASSERT_EQUAL(dup, 0);
	CU_ASSERT_EQUAL(conf, 0);
	CU_ASSERT_EQUAL(mis, 0);
	CU_ASSERT_EQUAL(total, WANT_TOTAL);
	CU_ASSERT_EQUAL(alarm, 0);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM charging_sessions WHERE id = %lld AND state = 'finished' "
			     "AND total_amount = %d AND flat_kwh = 100000 AND valley_kwh = 50000 AND "
			     "close_digest = 'd1' AND close_source = 'tp_proto' AND pile_amount = %d",
			     sid, WANT_TOTAL, WANT_TOTAL),
			1);
	/* the bill: the tenant script's line items, adding up to the total */
	char *bill = strdup(qstr(qbuf, sizeof qbuf, "SELECT bill FROM charging_sessions WHERE id = %lld", sid));
	json_t *b = json_loads(bill, 0, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(b, "pricing")), "script");
	json_t *items = json_object_get(b, "items");
	CU_ASSERT(json_array_size(items) >= 5);
	long long sum = 0;
	int fee = 0;
	size_t i;
	json_t *it;
	json_array_foreach(items, i, it) {
		sum += json_integer_value(json_object_get(it, "amount"));
		const char *label = json_string_value(json_object_get(it, "label"));
		fee |= label && !strcmp(label, "session fee");
	}
	CU_ASSERT_EQUAL(sum, WANT_TOTAL);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(b, "total")), WANT_TOTAL);
	CU_ASSERT(fee);
	/* priced under the snapshot (T1), not the pile's tariff now (T2) */
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_object_get(b, "tariff_snapshot"), "model")), "0001");
	json_decref(b);
	free(bill);
	/* the evidence row, in the same transaction */
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM tp_proto_evidence WHERE session_id = %lld AND tenant_id = %lld "
			     "AND trade_no = 'txn-42-α' AND raw = 'txn-42-α|150000|%d|d1'",
			     sid, (long long)tenant_id, WANT_TOTAL),
			1);
	/* published once, by the core, with the plugin as source */
	CU_ASSERT_EQUAL(n_closed, closed0 + 1);
	CU_ASSERT_EQUAL(n_stopped, stopped0 + 1);
	CU_ASSERT_STRING_EQUAL(last_closed_trade, "txn-42-α");
	CU_ASSERT_STRING_EQUAL(last_closed_source, "tp_proto");
	CU_ASSERT_EQUAL(last_closed_session, sid);
	CU_ASSERT_EQUAL(last_closed_amount, WANT_TOTAL);
}

static void test_duplicate_close_writes_nothing(void)
{
	int closed0 = n_closed, alarms0 = n_alarm;
	long long sid = 0, total = 0, alarm = -1;
	int dup = -1, conf = -1, mis = -1;
	long long end = (long long)time(NULL) * 1000, start = end - 3600000;
	const char *a = ask("CLOSE", "1 txn-42-α %lld %lld 150000 %d d1 0,0,100000,50000 ok", start, end,
			    WANT_TOTAL);
	CU_ASSERT_EQUAL(sscanf(a, "ok %lld %d %d %d %lld %lld", &sid, &dup, &conf, &mis, &total, &alarm), 6);
	CU_ASSERT_EQUAL(sid, s42);
	CU_ASSERT_EQUAL(dup, 1);
	CU_ASSERT_EQUAL(conf, 0);
	CU_ASSERT_EQUAL(total, WANT_TOTAL);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM tp_proto_evidence WHERE session_id = %lld", sid), 1);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM record_conflicts"), 0);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM alarms"), 0);
	pump_ms(50);
	CU_ASSERT_EQUAL(n_closed, closed0);
	CU_ASSERT_EQUAL(n_alarm, alarms0);
}

static void test_conflicting_close_keeps_first(void)
{
	int closed0 = n_closed, alarms0 = n_alarm;
	long long sid = 0, total = 0, alarm = 0;
	int dup = -1, conf = -1, mis = -1;
	long long end = (long long)time(NULL) * 1000, start = end - 3600000;
	const char *a = ask("CLOSE", "1 txn-42-α %lld %lld 170000 1900000 d2 0,0,120000,50000 ok", start, end);
	CU_ASSERT_EQUAL(sscanf(a, "ok %lld %d %d %d %lld %lld", &sid, &dup, &conf, &mis, &total, &alarm), 6);
	CU_ASSERT_EQUAL(sid, s42);
	CU_ASSERT_EQUAL(conf, 1);
	CU_ASSERT(alarm > 0);
	/* a second different resend: another conflict row, still one (open) alarm */
	a = ask("CLOSE", "1 txn-42-α %lld %lld 180000 1950000 d3 0,0,130000,50000 ok", start, end);
	CU_ASSERT_EQUAL(sscanf(a, "ok %lld %d %d", &sid, &dup, &conf), 3);
	CU_ASSERT_EQUAL(conf, 1);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM record_conflicts WHERE session_id = %lld AND trade_no = 'txn-42-α'", sid), 2);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM alarms WHERE session_id = %lld AND severity = 'major'", sid), 1);
	CU_ASSERT_EQUAL(n_alarm, alarms0 + 1);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM charging_sessions WHERE id = %lld AND close_digest = 'd1' "
			     "AND total_kwh = 150000 AND total_amount = %d", sid, WANT_TOTAL),
			1);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM tp_proto_evidence WHERE session_id = %lld", sid), 1);
	CU_ASSERT_EQUAL(n_closed, closed0);
}

static void test_failing_evidence_stores_nothing(void)
{
	int closed0 = n_closed;
	long long sid = 0;
	int created = 0;
	CU_ASSERT_EQUAL(sscanf(ask("OPEN", "2 txn-43-β app"), "ok %lld %d", &sid, &created), 2);
	long long end = (long long)time(NULL) * 1000, start = end - 600000;
	const char *a = ask("CLOSE", "2 txn-43-β %lld %lld 10000 0 e1 0,0,10000,0 fail", start, end);
	CU_ASSERT_STRING_EQUAL(a, "error 0 0 0 0 0 0");
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM charging_sessions WHERE id = %lld AND state = 'starting' AND "
			     "close_digest IS NULL AND total_kwh = 0 AND bill IS NULL", sid),
			1);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM tp_proto_evidence WHERE session_id = %lld", sid), 0);
	CU_ASSERT_EQUAL(n_closed, closed0);
	/* an evidence statement without the tenant marker is refused before anything is queued:
	 * the plugin hears "invalid" at once (tp_proto has none such, so check the same close works) */
	long long sid2 = 0;
	int dup = -1;
	a = ask("CLOSE", "2 txn-43-β %lld %lld 10000 13000 e1 0,0,10000,0 ok", start, end);
	CU_ASSERT_EQUAL(sscanf(a, "ok %lld %d", &sid2, &dup), 2);
	CU_ASSERT_EQUAL(sid2, sid);
	CU_ASSERT_EQUAL(dup, 0);
	CU_ASSERT_EQUAL(n_closed, closed0 + 1);
}

static void test_offline_close_created(void)
{
	/* 64 bytes, never opened; the pile does not split periods: the core does */
	const char *trade = "txn-offline-γ-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLM";
	CU_ASSERT_EQUAL(strlen(trade), 64);
	long long sid = 0, total = 0, alarm = 0;
	int dup = -1, conf = -1, mis = -1;
	long long end = (long long)time(NULL) * 1000, start = end - 1800000;
	/* the pile's tariff is T2 now: flat all day, 2.00 + 1.00 per kWh; 5 kWh = 15.00 + fee 0.50 */
	const char *a = ask("CLOSE", "1 %s %lld %lld 50000 1550000 o1 - ok offline_card", trade, start, end);
	CU_ASSERT_EQUAL(sscanf(a, "ok %lld %d %d %d %lld %lld", &sid, &dup, &conf, &mis, &total, &alarm), 6);
	CU_ASSERT(sid > 0);
	CU_ASSERT_EQUAL(dup, 0);
	CU_ASSERT_EQUAL(total, 1550000);
	CU_ASSERT_EQUAL(mis, 0);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM charging_sessions WHERE id = %lld AND trade_no = '%s' AND "
			     "state = 'finished' AND start_mode = 'offline_card' AND tariff_id = %lld AND "
			     "flat_kwh = 50000 AND total_amount = 1550000",
			     sid, trade, (long long)t2_id),
			1);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM tp_proto_evidence WHERE session_id = %lld", sid), 1);
	/* a longer trade number is refused at once */
	a = ask("CLOSE", "1 %sX %lld %lld 50000 1550000 o1 - ok offline_card", trade, start, end);
	CU_ASSERT_STRING_EQUAL(a, "invalid");
}

static void test_mismatch_alarm(void)
{
	int alarms0 = n_alarm;
	long long sid = 0, total = 0, alarm = 0;
	int dup = -1, conf = -1, mis = -1;
	long long end = (long long)time(NULL) * 1000, start = end - 1800000;
	const char *a = ask("CLOSE", "1 txn-44-δ %lld %lld 50000 999 m1 0,0,50000,0 ok app", start, end);
	CU_ASSERT_EQUAL(sscanf(a, "ok %lld %d %d %d %lld %lld", &sid, &dup, &conf, &mis, &total, &alarm), 6);
	CU_ASSERT_EQUAL(mis, 1);
	CU_ASSERT(alarm > 0);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM alarms WHERE id = %lld AND session_id = %lld AND "
			     "code = 'bill.mismatch.%lld' AND source = 'tp_proto'", alarm, sid, sid),
			1);
	CU_ASSERT_EQUAL(n_alarm, alarms0 + 1);
}

/* Many closes at once share transactions; one bad close does not take its neighbours down. */
static void test_group_commit_isolates_failures(void)
{
	enum { N = 60, BAD = 29 };
	int closed0 = n_closed;
	long long end = (long long)time(NULL) * 1000, start = end - 600000;
	for (int i = 0; i < N; i++) {
		char tr[32];
		snprintf(tr, sizeof tr, "grp-%02d", i);
		long long sid;
		int created;
		CU_ASSERT_EQUAL_FATAL(sscanf(ask("OPEN", "%d %s app", 1 + i % 2, tr), "ok %lld %d", &sid, &created), 2);
	}
	char tags[N][24];
	for (int i = 0; i < N; i++) {
		snprintf(tags[i], sizeof tags[i], "g%d", i);
		char line[2048];
		snprintf(line, sizeof line, "CLOSE %s %d grp-%02d %lld %lld 10000 13000 g 0,0,10000,0 %s\n",
			 tags[i], 1 + i % 2, i, start, end, i == BAD ? "fail" : "ok");
		send_line(line);
	}
	int got = 0, ok = 0, bad = 0;
	char ans[256];
	for (int spins = 0; got < N && spins < 5000; spins++) {
		pump_ms(2);
		read_some();
		for (int i = 0; i < N; i++)
			if (tags[i][0] && take_answer(tags[i], ans, sizeof ans)) {
				got++;
				if (i == BAD)
					bad += !strncmp(ans, "error", 5);
				else
					ok += !strncmp(ans, "ok ", 3);
				tags[i][0] = 0;
			}
	}
	CU_ASSERT_EQUAL(got, N);
	CU_ASSERT_EQUAL(ok, N - 1);
	CU_ASSERT_EQUAL(bad, 1);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM charging_sessions WHERE trade_no LIKE 'grp-%%' AND state = 'finished'"), N - 1);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM tp_proto_evidence WHERE trade_no LIKE 'grp-%%'"), N - 1);
	char b[32];
	CU_ASSERT_STRING_EQUAL(qstr(b, sizeof b, "SELECT state FROM charging_sessions WHERE trade_no = 'grp-%02d'", BAD),
			       "starting");
	CU_ASSERT_EQUAL(n_closed, closed0 + N - 1);
}

/* The pile resends before the first copy is committed: both reach the core while the session
 * is still open; one is stored and published, the other is answered as a duplicate. */
static void test_resend_while_first_in_flight(void)
{
	long long sid = 0;
	int created = 0;
	CU_ASSERT_EQUAL_FATAL(sscanf(ask("OPEN", "1 txn-46-ζ app"), "ok %lld %d", &sid, &created), 2);
	int closed0 = n_closed;
	long long end = (long long)time(NULL) * 1000, start = end - 600000;
	char line[512];
	for (int i = 0; i < 2; i++) {
		snprintf(line, sizeof line, "CLOSE r%d 1 txn-46-ζ %lld %lld 10000 13000 z1 0,0,10000,0 ok\n",
			 i, start, end);
		send_line(line);
	}
	char a0[256] = "", a1[256] = "";
	int got0 = 0, got1 = 0;
	for (int spins = 0; (!got0 || !got1) && spins < 5000; spins++) {
		pump_ms(2);
		read_some();
		got0 = got0 || take_answer("r0", a0, sizeof a0);
		got1 = got1 || take_answer("r1", a1, sizeof a1);
	}
	long long s0 = 0, s1 = 0;
	int d0 = -1, d1 = -1;
	CU_ASSERT_EQUAL(sscanf(a0, "ok %lld %d", &s0, &d0), 2);
	CU_ASSERT_EQUAL(sscanf(a1, "ok %lld %d", &s1, &d1), 2);
	CU_ASSERT_EQUAL(s0, sid);
	CU_ASSERT_EQUAL(s1, sid);
	CU_ASSERT_EQUAL(d0 + d1, 1);
	CU_ASSERT_EQUAL(n_closed, closed0 + 1);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM tp_proto_evidence WHERE session_id = %lld", sid), 1);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM record_conflicts WHERE session_id = %lld", sid), 0);
}

static void test_database_down_stores_nothing(void)
{
	long long sid = 0;
	int created = 0;
	CU_ASSERT_EQUAL_FATAL(sscanf(ask("OPEN", "2 txn-45-ε app"), "ok %lld %d", &sid, &created), 2);
	int closed0 = n_closed;
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "'%s' stop '%s' >/dev/null 2>&1", env("EVCS_MARIADB_SH"), env("EVCS_DB_DIR"));
	CU_ASSERT_FATAL(system(cmd) == 0);
	long long end = (long long)time(NULL) * 1000, start = end - 600000;
	const char *a = ask_to(20000, "CLOSE", "2 txn-45-ε %lld %lld 10000 13000 u1 0,0,10000,0 ok", start, end);
	char got[64];
	snprintf(got, sizeof got, "%s", a);
	snprintf(cmd, sizeof cmd, "'%s' start '%s' >/dev/null 2>&1", env("EVCS_MARIADB_SH"), env("EVCS_DB_DIR"));
	CU_ASSERT_FATAL(system(cmd) == 0);
	CU_ASSERT_STRING_EQUAL(got, "unavailable 0 0 0 0 0 0");
	CU_ASSERT_EQUAL(n_closed, closed0);
	CU_ASSERT_FATAL(db_connect() == 0);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM charging_sessions WHERE id = %lld AND state = 'starting' "
			     "AND close_digest IS NULL", sid),
			1);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM tp_proto_evidence WHERE session_id = %lld", sid), 0);
	/* the pile resends once the database is back: stored once */
	for (int i = 0; i < 10; i++) {
		a = ask_to(15000, "CLOSE", "2 txn-45-ε %lld %lld 10000 13000 u1 0,0,10000,0 ok", start, end);
		if (!strncmp(a, "ok ", 3))
			break;
		pump_ms(500);
	}
	CU_ASSERT_EQUAL(strncmp(a, "ok ", 3), 0);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM tp_proto_evidence WHERE session_id = %lld", sid), 1);
	CU_ASSERT_EQUAL(n_closed, closed0 + 1);
}

static void register_tests(void)
{
	CU_pSuite s = CU_add_suite("session", suite_init, suite_clean);
	EVCS_ADD(s, test_authorize);
	EVCS_ADD(s, test_open_takes_snapshot);
	EVCS_ADD(s, test_meter_readings);
	EVCS_ADD(s, test_close_priced_by_script);
	EVCS_ADD(s, test_duplicate_close_writes_nothing);
	EVCS_ADD(s, test_conflicting_close_keeps_first);
	EVCS_ADD(s, test_failing_evidence_stores_nothing);
	EVCS_ADD(s, test_offline_close_created);
	EVCS_ADD(s, test_mismatch_alarm);
	EVCS_ADD(s, test_group_commit_isolates_failures);
	EVCS_ADD(s, test_resend_while_first_in_flight);
	EVCS_ADD(s, test_database_down_stores_nothing);
}

EVCS_TEST_MAIN(register_tests)
