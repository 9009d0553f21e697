/*
 * test_ykc_e2e.c: the ykc plugin end to end: the real core (evcs_core_start) loading ykc.so,
 * real TCP from scripted piles (tests/ykc_pile.c), a real private MariaDB.
 *
 * Needs the EVCS_DB_* environment of tests/mariadb.sh (tests/with-mariadb.sh sets it) plus
 * EVCS_MARIADB_SH and EVCS_DB_DIR for the database-down test; without them the suite FAILS with
 * a message (never skipped). The database named by EVCS_DB_NAME is dropped and re-created.
 * Single-threaded: the piles use blocking sockets and run the core's loop while they wait.
 * The tests form one scenario and run in order (they share the piles and the database).
 * Piles A and B connect from 127.0.0.1; the 1.6 pile C and the connection-limit tests use their
 * own loopback source addresses (127.0.0.2-7, all on Linux's lo) so the per-address cap (4) and
 * the failed-login limit (3 per minute) hit only the test that means to hit them.
 * No timing assertions: every wait is a bounded loop for a condition; "nothing was answered" is
 * shown with a barrier frame sent after it on the same connection where the server is synchronous.
 * The device-command tests are in test_ykc_e2e_cmds.c (shared helpers: ykc_e2e.h).
 */
#include "core.h"
#include "db.h"
#include "store.h"
#include "testdb.h"
#include "testproc.h"
#include "testutil.h"
#include "ykc_e2e.h"
#include "ykc_pile.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>
#include <mysql.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef EVCS_TOP_SRCDIR
#define EVCS_TOP_SRCDIR "."
#endif
#ifndef EVCS_YKC_PLUGIN_DIR
#define EVCS_YKC_PLUGIN_DIR "plugins/ykc/.libs"
#endif
#ifndef TEST_EVCSD
#define TEST_EVCSD "core/evcsd"
#endif



evcs_core_t core;
int core_up;
evcs_db_config_t cfg;
MYSQL *my;
char conf_path[256];
int port15, port16;
int64_t tenant_id, pile_a_id, pile_b_id, pile_c_id, tariff_id;
struct ykc_pile pa, pb, pa2, pc;
struct ykc_pile *keepalive[4];
int n_online_ev, n_offline_ev;
char trade1[33];
int64_t session1;
/* events about pile C, counted by on_bus_c */
int n_c_gun_status, n_c_fault, n_c_online, n_c_offline;
char c_fault_frame[8];
long long c_fault_code;
int c_fault_gun;
/* TRANSACTION_CLOSED / SESSION_STOPPED per trade number (on_bus_closed) */
static struct closed_count closed_counts[16];

/* ---- loop, database helpers ---------------------------------------------------------------- */

void pump(void *ud)
{
	(void)ud;
	struct timeval tv = {0, 3000};
	event_base_loopexit(core.base, &tv);
	event_base_loop(core.base, 0);
	for (int i = 0; i < 4; i++)
		if (keepalive[i] && keepalive[i]->fd >= 0) {
			/* reading also queues the 0x04 answers; drop them so queues stay small */
			ykc_pile_tick(keepalive[i]);
		}
}

void run_ms(int ms)
{
	long long end = ykc_pile_now_ms() + ms;
	while (ykc_pile_now_ms() < end)
		pump(NULL);
}

int db_reconnect(void)
{
	if (my && mysql_ping(my) == 0)
		return 0;
	if (my)
		mysql_close(my);
	char err[256];
	my = evcs_db_connect_raw(&cfg, 0, err, sizeof err);
	if (!my)
		fprintf(stderr, "db: %s\n", err);
	return my ? 0 : -1;
}

int sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int sql(const char *fmt, ...)
{
	char q[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q, sizeof q, fmt, ap);
	va_end(ap);
	if (db_reconnect() < 0)
		return -1;
	return testdb_sql(my, "%s", q);
}

/* First column of the first row as an integer; -1 when no row or NULL; -2 on error. */
long long vqint(const char *fmt, va_list ap)
{
	char q[4096];
	vsnprintf(q, sizeof q, fmt, ap);
	if (db_reconnect() < 0)
		return -2;
	return testdb_qint(my, "%s", q);
}

long long qint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
long long qint(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	long long v = vqint(fmt, ap);
	va_end(ap);
	return v;
}

/* Poll a number (running the loop) until it equals want or timeout_ms passes; returns it. */
long long wait_count(long long want, int timeout_ms, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
long long wait_count(long long want, int timeout_ms, const char *fmt, ...)
{
	long long end = ykc_pile_now_ms() + timeout_ms, v;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		v = vqint(fmt, ap);
		va_end(ap);
		if (v == want || ykc_pile_now_ms() >= end)
			return v;
		run_ms(50);
	}
}

int qstr(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int qstr(char *out, size_t cap, const char *fmt, ...)
{
	char q[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q, sizeof q, fmt, ap);
	va_end(ap);
	out[0] = 0;
	if (db_reconnect() < 0 || mysql_query(my, q) != 0)
		return -1;
	MYSQL_RES *r = mysql_store_result(my);
	MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
	int ok = row && row[0];
	if (ok)
		snprintf(out, cap, "%s", row[0]);
	if (r)
		mysql_free_result(r);
	return ok ? 0 : -1;
}

int on_bus(const evcs_event_t *ev, void *ud)
{
	if (ev->pile && !strcmp(ev->pile, PILE_B)) {
		if (ev->type == EVCS_EV_PILE_ONLINE)
			n_online_ev++;
		if (ev->type == EVCS_EV_PILE_OFFLINE)
			n_offline_ev++;
	}
	return EVCS_OK;
}

int on_bus_c(const evcs_event_t *ev, void *ud)
{
	if (!ev->pile || strcmp(ev->pile, PILE_C) != 0)
		return EVCS_OK;
	switch (ev->type) {
	case EVCS_EV_GUN_STATUS: n_c_gun_status++; break;
	case EVCS_EV_PILE_ONLINE: n_c_online++; break;
	case EVCS_EV_PILE_OFFLINE: n_c_offline++; break;
	case EVCS_EV_PILE_FAULT:
		n_c_fault++;
		c_fault_gun = ev->gun;
		c_fault_frame[0] = 0;
		c_fault_code = -1;
		for (size_t i = 0; i < ev->nfields; i++) {
			if (!strcmp(ev->fields[i].name, "frame") && ev->fields[i].s)
				snprintf(c_fault_frame, sizeof c_fault_frame, "%s", ev->fields[i].s);
			if (!strcmp(ev->fields[i].name, "code"))
				c_fault_code = ev->fields[i].i;
		}
		break;
	}
	return EVCS_OK;
}

struct closed_count *closed_of(const char *trade)
{
	for (size_t i = 0; i < sizeof closed_counts / sizeof *closed_counts; i++)
		if (!strcmp(closed_counts[i].trade, trade))
			return &closed_counts[i];
	return NULL;
}

/* Counts the session-end events per trade number. The core publishes them once per stored
 * close; a plugin that published them too would show up as a second one. */
int on_bus_closed(const evcs_event_t *ev, void *ud)
{
	(void)ud;
	const char *trade = NULL;
	for (size_t i = 0; i < ev->nfields; i++)
		if (!strcmp(ev->fields[i].name, "trade_no") && ev->fields[i].kind == EVCS_F_STR)
			trade = ev->fields[i].s;
	if (!trade || strlen(trade) != 32)
		return EVCS_OK;
	struct closed_count *c = closed_of(trade);
	for (size_t i = 0; !c && i < sizeof closed_counts / sizeof *closed_counts; i++)
		if (!closed_counts[i].trade[0]) {
			c = &closed_counts[i];
			snprintf(c->trade, sizeof c->trade, "%s", trade);
		}
	if (!c)
		return EVCS_OK;
	if (ev->type == EVCS_EV_TRANSACTION_CLOSED)
		c->closed++;
	else
		c->stopped++;
	return EVCS_OK;
}

int n_closed(const char *trade)
{
	struct closed_count *c = closed_of(trade);
	return c ? c->closed : 0;
}

/* Run the loop until *counter reaches want or timeout_ms passes; returns the counter. */
int wait_int(const int *counter, int want, int timeout_ms)
{
	long long end = ykc_pile_now_ms() + timeout_ms;
	while (*counter < want && ykc_pile_now_ms() < end)
		pump(NULL);
	return *counter;
}

/* Current value of a metric line ("name{labels}"), 0 when not registered yet. */
long long metric(const char *name)
{
	struct evbuffer *b = evbuffer_new();
	if (!b)
		return -1;
	evcs_metrics_render(core.metrics, b);
	size_t n = evbuffer_get_length(b);
	char *txt = malloc(n + 1);
	long long v = 0;
	if (txt) {
		evbuffer_copyout(b, txt, n);
		txt[n] = 0;
		size_t nl = strlen(name);
		for (char *line = txt; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
			if (!strncmp(line, name, nl) && line[nl] == ' ') {
				v = atoll(line + nl + 1);
				break;
			}
		free(txt);
	}
	evbuffer_free(b);
	return v;
}

/* ---- commands ------------------------------------------------------------------------------ */


void cmd_done(int status, const char *json, void *ud)
{
	struct cmd_res *r = ud;
	r->done = 1;
	r->status = status;
	snprintf(r->json, sizeof r->json, "%s", json ? json : "");
}

int send_cmd(const char *pile, const char *name, int gun, const char *args, struct cmd_res *r)
{
	memset(r, 0, sizeof *r);
	evcs_command_t c = {.size = sizeof c, .tenant_id = tenant_id, .pile = pile, .gun = gun,
			    .name = name, .args_json = args};
	return evcs_bus_command_send(core.bus, &c, 20000, cmd_done, r, "test");
}

int wait_cmd(struct cmd_res *r, int ms)
{
	long long end = ykc_pile_now_ms() + ms;
	while (!r->done && ykc_pile_now_ms() < end)
		pump(NULL);
	return r->done;
}

/* ---- set-up --------------------------------------------------------------------------------- */

const char *env(const char *k) { return getenv(k) && *getenv(k) ? getenv(k) : NULL; }

static int suite_init(void)
{
	const char *user = env("EVCS_DB_USER"), *name = env("EVCS_DB_NAME");
	const char *sock = env("EVCS_DB_SOCKET"), *port = env("EVCS_DB_PORT");
	if (!user || !name || (!sock && !port) || !env("EVCS_MARIADB_SH") || !env("EVCS_DB_DIR")) {
		fprintf(stderr,
			"\n*** test_ykc_e2e needs a private MariaDB: run it as tests/with-mariadb.sh "
			"tests/test_ykc_e2e (EVCS_DB_USER/NAME/SOCKET|PORT, EVCS_MARIADB_SH, EVCS_DB_DIR "
			"unset) ***\n");
		return -1;
	}
	cfg.host = env("EVCS_DB_HOST") ? env("EVCS_DB_HOST") : "127.0.0.1";
	cfg.port = port ? (unsigned)atoi(port) : 0;
	cfg.socket = sock;
	cfg.user = user;
	cfg.password = env("EVCS_DB_PASSWORD") ? env("EVCS_DB_PASSWORD") : "";
	cfg.name = name;
	cfg.connect_timeout_s = 2;
	if (db_reconnect() < 0)
		return -1;
	if (sql("DROP DATABASE IF EXISTS `%s`", name) < 0 ||
	    sql("CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci", name) < 0 ||
	    sql("USE `%s`", name) < 0)
		return -1;
	char err[512];
	port15 = test_free_port();
	port16 = test_free_port();
	snprintf(conf_path, sizeof conf_path, "/tmp/evcs-ykc-e2e-%d.conf", (int)getpid());
	FILE *f = fopen(conf_path, "w");
	if (!f)
		return -1;
	fprintf(f,
		"[core]\nlog_level = %s\nplugin_dir = %s\nschema_dir = %s/schema\nscript_dir = %s/scripts\n"
		"[http]\nlisten = 127.0.0.1:0\n"
		"[database]\n%s%s%s\nport = %u\nuser = %s\npassword = %s\nname = %s\npool = 2\n"
		"connect_timeout = 2\n"
		"[scripts]\namount_tolerance = 1000\n"
		"[plugin ykc]\nlisten = 127.0.0.1:%d/1.5, 127.0.0.1:%d/1.6\noffline_after_ms = 3000\n"
		"login_timeout_ms = 1500\nmax_failed_logins_per_min = 3\nmax_conns_per_addr = 4\n"
		"start_timeout_ms = 5000\ncommand_timeout_ms = 2000\nseen_interval_ms = 500\n"
		"time_sync_interval_ms = 3000\n",
		env("EVCS_TEST_LOG") ? env("EVCS_TEST_LOG") : "warning", EVCS_YKC_PLUGIN_DIR,
		EVCS_TOP_SRCDIR, EVCS_TOP_SRCDIR, sock ? "socket = " : "host = ", sock ? sock : cfg.host,
		"", cfg.port ? cfg.port : 3306, user, cfg.password, name, port15, port16);
	fclose(f);
	/* `evcsd --migrate` as an operator runs it: the core's schema, then the plugin's own
	 * (ykc_records, compiled into ykc.so); without it the core would not start the plugin */
	char q[1024];
	snprintf(q, sizeof q, "EVCS_SCHEMA_DIR=" EVCS_TOP_SRCDIR "/schema " TEST_EVCSD " --migrate -c %s >/dev/null",
		 conf_path);
	if (system(q) != 0) {
		fprintf(stderr, "%s failed\n", q);
		return -1;
	}
	if (qint("SELECT COUNT(*) FROM plugin_schema_version WHERE plugin = 'ykc' AND version = 1 AND "
		 "name = '001_records' AND status = 'applied'") != 1 ||
	    qint("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND "
		 "table_name = 'ykc_records'") != 1) {
		fprintf(stderr, "the ykc plugin's migration 001_records is not applied\n");
		return -1;
	}
	/* one tenant, one station, one tariff assigned to two piles, a card with 100 yuan */
	if (sql("INSERT INTO tenants (name) VALUES ('e2e')") < 0)
		return -1;
	tenant_id = qint("SELECT id FROM tenants WHERE name = 'e2e'");
	sql("INSERT INTO stations (tenant_id, name) VALUES (%lld, 'S1')", (long long)tenant_id);
	long long st = qint("SELECT id FROM stations WHERE tenant_id = %lld", (long long)tenant_id);
	/* 00:00-08:00 valley, 08:00-17:00 flat, 17:00-19:00 sharp, 19:00-24:00 peak */
	const char *slots = "333333333333333322222222222222222200001111111111";
	sql("INSERT INTO tariffs (tenant_id, name, model, sharp_elec_rate, sharp_service_rate, "
	    "peak_elec_rate, peak_service_rate, flat_elec_rate, flat_service_rate, valley_elec_rate, "
	    "valley_service_rate, slots, state) VALUES (%lld, 'std', '0001', 120000, 80000, 100000, "
	    "80000, 70000, 60000, 35000, 40000, '%s', 'active')",
	    (long long)tenant_id, slots);
	tariff_id = qint("SELECT id FROM tariffs WHERE tenant_id = %lld", (long long)tenant_id);
	sql("INSERT INTO piles (tenant_id, station_id, serial, gun_count, tariff_id) VALUES "
	    "(%lld, %lld, '" PILE_A "', 2, %lld), (%lld, %lld, '" PILE_B "', 1, %lld)",
	    (long long)tenant_id, st, (long long)tariff_id, (long long)tenant_id, st, (long long)tariff_id);
	pile_a_id = qint("SELECT id FROM piles WHERE serial = '" PILE_A "'");
	pile_b_id = qint("SELECT id FROM piles WHERE serial = '" PILE_B "'");
	sql("INSERT INTO piles (tenant_id, station_id, serial, gun_count, tariff_id) VALUES "
	    "(%lld, %lld, '" PILE_C "', 3, %lld)", (long long)tenant_id, st, (long long)tariff_id);
	pile_c_id = qint("SELECT id FROM piles WHERE serial = '" PILE_C "'");
	sql("INSERT INTO drivers (tenant_id, phone, name) VALUES (%lld, '13800000000', 'D')", (long long)tenant_id);
	long long drv = qint("SELECT id FROM drivers WHERE tenant_id = %lld", (long long)tenant_id);
	sql("INSERT INTO wallets (tenant_id, driver_id) VALUES (%lld, %lld)", (long long)tenant_id, drv);
	long long wal = qint("SELECT id FROM wallets WHERE driver_id = %lld", drv);
	sql("INSERT INTO wallet_ledger (tenant_id, wallet_id, amount, kind) VALUES (%lld, %lld, 10000000, 'topup')",
	    (long long)tenant_id, wal);
	sql("INSERT INTO rfid_cards (tenant_id, driver_id, logical_no, physical_no) VALUES "
	    "(%lld, %lld, '0000001000000573', '00000000D14B0A54')",
	    (long long)tenant_id, drv);
	if (tenant_id <= 0 || pile_a_id <= 0 || pile_b_id <= 0 || pile_c_id <= 0 || tariff_id <= 0 || wal <= 0)
		return -1;

	if (evcs_core_start(&core, conf_path, err, sizeof err) != 0) {
		fprintf(stderr, "core start: %s\n", err);
		return -1;
	}
	core_up = 1;
	evcs_bus_subscribe(core.bus, EVCS_EV_PILE_ONLINE, 0, on_bus, NULL, "test", NULL);
	evcs_bus_subscribe(core.bus, EVCS_EV_PILE_OFFLINE, 0, on_bus, NULL, "test", NULL);
	static const uint32_t c_types[] = {EVCS_EV_GUN_STATUS, EVCS_EV_PILE_FAULT, EVCS_EV_PILE_ONLINE,
					   EVCS_EV_PILE_OFFLINE};
	for (size_t i = 0; i < sizeof c_types / sizeof *c_types; i++)
		evcs_bus_subscribe(core.bus, c_types[i], 0, on_bus_c, NULL, "test", NULL);
	evcs_bus_subscribe(core.bus, EVCS_EV_TRANSACTION_CLOSED, 0, on_bus_closed, NULL, "test", NULL);
	evcs_bus_subscribe(core.bus, EVCS_EV_SESSION_STOPPED, 0, on_bus_closed, NULL, "test", NULL);
	return 0;
}

static int suite_clean(void)
{
	for (int i = 0; i < 4; i++)
		keepalive[i] = NULL;
	ykc_pile_close(&pa);
	ykc_pile_close(&pb);
	ykc_pile_close(&pa2);
	ykc_pile_close(&pc);
	if (core_up) {
		run_ms(100);
		evcs_core_free(&core);
	}
	if (my)
		mysql_close(my);
	unlink(conf_path);
	return 0;
}

/* ---- the scenario ------------------------------------------------------------------------- */

/* An installation upgraded from before ABI 2 has its 0x3B records in the core's old
 * transaction_records table; the plugin's migration 002 adopts them into ykc_records with the
 * digest the plugin computes (SHA-256 of the body). Simulated here: the database is taken back
 * to ykc schema 1, a pre-ABI-2 row is written the old way, and `evcsd --migrate` runs again. */
static void test_legacy_records_adopted(void)
{
	const char *trade = "32010600019236010101010000000001";
	const char *raw = "6832010600019236010101010000000001";
	CU_ASSERT_EQUAL_FATAL(sql("DELETE FROM plugin_schema_version WHERE plugin = 'ykc' AND version = 2"), 0);
	CU_ASSERT_EQUAL_FATAL(
	    sql("INSERT INTO transaction_records (tenant_id, pile_id, trade_no, gun_no, sharp_price, "
		"sharp_kwh, sharp_loss_kwh, sharp_amount, peak_price, peak_kwh, peak_loss_kwh, peak_amount, "
		"flat_price, flat_kwh, flat_loss_kwh, flat_amount, valley_price, valley_kwh, "
		"valley_loss_kwh, valley_amount, meter_start_kwh, meter_stop_kwh, total_kwh, "
		"total_loss_kwh, total_amount, trade_flag, stop_reason, raw_hex, peer) VALUES (%lld, %lld, "
		"'%s', 1, 200000, 0, 0, 0, 180000, 0, 0, 0, 130000, 100000, 100100, 1300000, 75000, 0, 0, 0, "
		"0, 100000, 100000, 100100, 1300000, 2, 64, '%s', '10.0.0.1:5')",
		(long long)tenant_id, (long long)pile_a_id, trade, raw),
	    0);
	char q[1024];
	snprintf(q, sizeof q, "EVCS_SCHEMA_DIR=" EVCS_TOP_SRCDIR "/schema " TEST_EVCSD " --migrate -c %s >/dev/null",
		 conf_path);
	CU_ASSERT_EQUAL_FATAL(system(q), 0);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM plugin_schema_version WHERE plugin = 'ykc' AND "
			     "version = 2 AND name = '002_legacy_records' AND status = 'applied'"), 1);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM ykc_records WHERE tenant_id = %lld AND pile_id = %lld "
			     "AND trade_no = '%s' AND raw_hex = '%s' AND digest = LOWER(SHA2(UNHEX('%s'), 256)) "
			     "AND flat_price = 130000 AND flat_loss_kwh = 100100 AND flat_pile_amount = 1300000 "
			     "AND trade_flag = 2 AND stop_reason = 64 AND peer = '10.0.0.1:5'",
			     (long long)tenant_id, (long long)pile_a_id, trade, raw, raw), 1);
	/* idempotent: running it again adopts nothing twice */
	CU_ASSERT_EQUAL(sql("DELETE FROM plugin_schema_version WHERE plugin = 'ykc' AND version = 2"), 0);
	CU_ASSERT_EQUAL_FATAL(system(q), 0);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM ykc_records WHERE trade_no = '%s'", trade), 1);
}

static void test_login_accepted(void)
{
	CU_ASSERT_FATAL(ykc_pile_connect(&pa, port15, PILE_A, EVCS_YKC_CRC_LE, pump, NULL) == 0);
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	ykc_msg_login(&pa, &m, 2, 15);
	const uint8_t seq[2] = {0x05, 0x00};
	CU_ASSERT_FATAL(ykc_pile_send(&pa, &m, seq) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pa, 0x02, 5000, &r, &rx) == 0);
	CU_ASSERT_EQUAL(r.u.pile_result.result, 0);
	CU_ASSERT_STRING_EQUAL(r.u.pile_result.pile, PILE_A);
	CU_ASSERT(rx.seq[0] == 0x05 && rx.seq[1] == 0x00);
	/* §1.2: time sync right after login */
	CU_ASSERT(ykc_pile_wait(&pa, 0x56, 3000, &r, NULL) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.time_sync.pile, PILE_A);
	CU_ASSERT_EQUAL(wait_count(1, 3000, "SELECT online FROM pile_presence WHERE pile_id = %lld",
				   (long long)pile_a_id), 1);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM connectors WHERE pile_id = %lld", (long long)pile_a_id), 2);
	char fw[64];
	qstr(fw, sizeof fw, "SELECT program_version FROM piles WHERE id = %lld", (long long)pile_a_id);
	CU_ASSERT_STRING_EQUAL(fw, "T\"1.0\\"); /* JSON-escaped on the way, exact in the row */
	CU_ASSERT_STRING_EQUAL(evcs_bus_pile_owner(core.bus, PILE_A, NULL), "ykc");
}

static void test_billing_model(void)
{
	struct evcs_ykc_msg m, r;
	memset(&m, 0, sizeof m);
	m.type = 0x05;
	memcpy(m.u.model.pile, PILE_A, 15);
	memcpy(m.u.model.model, "0000", 5);
	CU_ASSERT_FATAL(ykc_pile_send(&pa, &m, NULL) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pa, 0x06, 3000, &r, NULL) == 0);
	CU_ASSERT_EQUAL(r.u.model.result, 1);
	CU_ASSERT_STRING_EQUAL(r.u.model.model, "0000");
	memset(&m, 0, sizeof m);
	m.type = 0x09;
	memcpy(m.u.model.pile, PILE_A, 15);
	CU_ASSERT_FATAL(ykc_pile_send(&pa, &m, NULL) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pa, 0x0A, 3000, &r, NULL) == 0);
	const struct evcs_ykc_tariff *t = &r.u.tariff;
	CU_ASSERT_STRING_EQUAL(t->model, "0001");
	CU_ASSERT_EQUAL(t->sharp_elec_rate, 120000);
	CU_ASSERT_EQUAL(t->sharp_service_rate, 80000);
	CU_ASSERT_EQUAL(t->peak_elec_rate, 100000);
	CU_ASSERT_EQUAL(t->flat_service_rate, 60000);
	CU_ASSERT_EQUAL(t->valley_elec_rate, 35000);
	CU_ASSERT_EQUAL(t->valley_service_rate, 40000);
	CU_ASSERT_EQUAL(t->loss_ratio, 0);
	CU_ASSERT_EQUAL(t->slots[0], 3);
	CU_ASSERT_EQUAL(t->slots[16], 2);
	CU_ASSERT_EQUAL(t->slots[34], 0);
	CU_ASSERT_EQUAL(t->slots[47], 1);
	/* now the pile has it: same model */
	memset(&m, 0, sizeof m);
	m.type = 0x05;
	memcpy(m.u.model.pile, PILE_A, 15);
	memcpy(m.u.model.model, "0001", 5);
	CU_ASSERT_FATAL(ykc_pile_send(&pa, &m, NULL) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pa, 0x06, 3000, &r, NULL) == 0);
	CU_ASSERT_EQUAL(r.u.model.result, 0);
}

static void test_heartbeat_crc_orders(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	/* "le" pile, JCPP-style byte order in the sequence: echoed verbatim */
	ykc_pile_flush(&pa, 0x04);
	ykc_msg_heartbeat(&pa, &m, 2);
	const uint8_t seq[2] = {0xAD, 0x71};
	CU_ASSERT_FATAL(ykc_pile_send(&pa, &m, seq) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pa, 0x04, 3000, &r, &rx) == 0);
	CU_ASSERT(rx.seq[0] == 0xAD && rx.seq[1] == 0x71);
	CU_ASSERT_EQUAL(rx.crc, EVCS_YKC_CRC_LE);
	CU_ASSERT_STRING_EQUAL(r.u.heartbeat_reply.gun, "02");
	CU_ASSERT_STRING_EQUAL(r.u.heartbeat_reply.pile, PILE_A);
	/* "be" pile on the 1.6 listener: every answer comes back "be" */
	CU_ASSERT_FATAL(ykc_pile_connect(&pb, port16, PILE_B, EVCS_YKC_CRC_BE, pump, NULL) == 0);
	ykc_msg_login(&pb, &m, 1, 16);
	const uint8_t s2[2] = {0x00, 0x07};
	CU_ASSERT_FATAL(ykc_pile_send(&pb, &m, s2) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pb, 0x02, 5000, &r, &rx) == 0);
	CU_ASSERT_EQUAL(r.u.pile_result.result, 0);
	CU_ASSERT_EQUAL(rx.crc, EVCS_YKC_CRC_BE);
	CU_ASSERT(rx.seq[0] == 0x00 && rx.seq[1] == 0x07);
	ykc_msg_heartbeat(&pb, &m, 1);
	const uint8_t s3[2] = {0x07, 0x00};
	CU_ASSERT_FATAL(ykc_pile_send(&pb, &m, s3) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pb, 0x04, 3000, &r, &rx) == 0);
	CU_ASSERT_EQUAL(rx.crc, EVCS_YKC_CRC_BE);
	CU_ASSERT(rx.seq[0] == 0x07 && rx.seq[1] == 0x00);
	/* the platform-originated time sync after login also used the pile's order */
	CU_ASSERT_FATAL(ykc_pile_wait(&pb, 0x56, 3000, NULL, &rx) == 0);
	CU_ASSERT_EQUAL(rx.crc, EVCS_YKC_CRC_BE);
	CU_ASSERT_EQUAL(n_online_ev, 1);
	/* from now on both piles keep their links alive while the test waits */
	pa.hb_ms = pb.hb_ms = 800;
	keepalive[0] = &pa;
	keepalive[1] = &pb;
}

static void test_unknown_pile_refused(void)
{
	struct ykc_pile u;
	struct evcs_ykc_msg m, r;
	CU_ASSERT_FATAL(ykc_pile_connect(&u, port15, PILE_UNKNOWN, EVCS_YKC_CRC_LE, pump, NULL) == 0);
	/* §1.2: frames before the login are dropped without an answer */
	ykc_msg_heartbeat(&u, &m, 1);
	CU_ASSERT_FATAL(ykc_pile_send(&u, &m, NULL) > 0);
	CU_ASSERT(ykc_pile_wait(&u, 0x04, 400, NULL, NULL) < 0);
	ykc_msg_login(&u, &m, 1, 15);
	CU_ASSERT_FATAL(ykc_pile_send(&u, &m, NULL) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&u, 0x02, 5000, &r, NULL) == 0);
	CU_ASSERT_EQUAL(r.u.pile_result.result, 1);
	CU_ASSERT(ykc_pile_wait_closed(&u, 3000));
	ykc_pile_close(&u);
	CU_ASSERT_EQUAL(qint("SELECT attempts FROM unclaimed_piles WHERE serial = '" PILE_UNKNOWN "'"), 1);
	char login[512];
	qstr(login, sizeof login, "SELECT JSON_VALUE(login, '$.gun_count') FROM unclaimed_piles WHERE serial = '" PILE_UNKNOWN "'");
	CU_ASSERT_STRING_EQUAL(login, "1");
	CU_ASSERT_PTR_NULL(evcs_bus_pile_owner(core.bus, PILE_UNKNOWN, NULL));
}

static void test_login_timeout(void)
{
	struct ykc_pile u;
	CU_ASSERT_FATAL(ykc_pile_connect(&u, port15, PILE_UNKNOWN, EVCS_YKC_CRC_LE, pump, NULL) == 0);
	long long t0 = ykc_pile_now_ms();
	CU_ASSERT(ykc_pile_wait_closed(&u, 4000));
	CU_ASSERT(ykc_pile_now_ms() - t0 >= 1400);
	ykc_pile_close(&u);
}

static void test_garbage_and_split_frame(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	keepalive[0] = NULL;
	pa.hb_ms = 0;
	ykc_pile_flush(&pa, 0x04);
	/* noise, a false start (len < 4), then a heartbeat cut in two writes */
	const uint8_t noise[] = {0xFF, 0x00, 0x13, 0x68, 0x02, 0x99};
	CU_ASSERT_FATAL(ykc_pile_send_raw(&pa, noise, sizeof noise) == 0);
	ykc_msg_heartbeat(&pa, &m, 1);
	uint8_t fr[EVCS_YKC_MAX_FRAME];
	const uint8_t seq[2] = {0x42, 0x43};
	int n = ykc_pile_build(&pa, &m, seq, fr, sizeof fr);
	CU_ASSERT_FATAL(n > 8);
	CU_ASSERT_FATAL(ykc_pile_send_raw(&pa, fr, 5) == 0);
	run_ms(150);
	CU_ASSERT(ykc_pile_wait(&pa, 0x04, 100, NULL, NULL) < 0); /* not yet: half a frame */
	CU_ASSERT_FATAL(ykc_pile_send_raw(&pa, fr + 5, (size_t)n - 5) == 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pa, 0x04, 3000, &r, &rx) == 0);
	CU_ASSERT(rx.seq[0] == 0x42 && rx.seq[1] == 0x43);
	CU_ASSERT_STRING_EQUAL(r.u.heartbeat_reply.gun, "01");
	pa.hb_ms = 800;
	keepalive[0] = &pa;
}

static void test_card_start_authorised(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	memset(&m, 0, sizeof m);
	m.type = 0x31;
	memcpy(m.u.start_request.pile, PILE_A, 15);
	memcpy(m.u.start_request.gun, "02", 3);
	m.u.start_request.start_mode = 1;
	const uint8_t card[8] = {0, 0, 0, 0, 0xD1, 0x4B, 0x0A, 0x54};
	memcpy(m.u.start_request.card, card, 8);
	const uint8_t seq[2] = {0x31, 0x00};
	CU_ASSERT_FATAL(ykc_pile_send(&pa, &m, seq) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pa, 0x32, 5000, &r, &rx) == 0);
	CU_ASSERT(rx.seq[0] == 0x31 && rx.seq[1] == 0x00);
	CU_ASSERT_EQUAL(r.u.start_auth.auth_ok, 1);
	CU_ASSERT_EQUAL(r.u.start_auth.fail_reason, 0);
	CU_ASSERT_STRING_EQUAL(r.u.start_auth.logical_card, "0000001000000573");
	CU_ASSERT_EQUAL(r.u.start_auth.balance_yuan, 10000); /* 100.00 yuan */
	CU_ASSERT_NSTRING_EQUAL(r.u.start_auth.trade_no, PILE_A "02", 16);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM charging_sessions WHERE trade_no = '%s' AND start_mode = 'card' "
			     "AND card_id IS NOT NULL AND state = 'starting'", r.u.start_auth.trade_no), 1);
	/* an unknown card is refused with "account does not exist" */
	m.u.start_request.card[7] = 0x55;
	CU_ASSERT_FATAL(ykc_pile_send(&pa, &m, NULL) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pa, 0x32, 5000, &r, NULL) == 0);
	CU_ASSERT_EQUAL(r.u.start_auth.auth_ok, 0);
	CU_ASSERT_EQUAL(r.u.start_auth.fail_reason, 1);
}

/* One 0x31 on pile A gun 02; the 0x32 answer lands in *r. */
static void start_request(struct evcs_ykc_msg *r, int mode, const uint8_t card[8], int need_pw,
			  const uint8_t pw[16], const char *vin)
{
	struct evcs_ykc_msg m;
	memset(&m, 0, sizeof m);
	m.type = 0x31;
	memcpy(m.u.start_request.pile, PILE_A, 15);
	memcpy(m.u.start_request.gun, "02", 3);
	m.u.start_request.start_mode = (uint8_t)mode;
	m.u.start_request.need_password = (uint8_t)need_pw;
	if (card)
		memcpy(m.u.start_request.card, card, 8);
	if (pw)
		memcpy(m.u.start_request.password_md5, pw, 16);
	for (size_t i = 0; vin && i < 17; i++)
		m.u.start_request.vin[16 - i] = (uint8_t)vin[i]; /* reversed on the wire */
	memset(r, 0, sizeof *r);
	CU_ASSERT_FATAL(ykc_pile_send(&pa, &m, NULL) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pa, 0x32, 5000, r, NULL) == 0);
}

static void test_vin_start(void)
{
	/* a second driver with 50 yuan who owns one active and one blocked vehicle */
	sql("INSERT INTO drivers (tenant_id, phone, name) VALUES (%lld, '13800000001', 'V')", (long long)tenant_id);
	long long drv = qint("SELECT id FROM drivers WHERE tenant_id = %lld AND phone = '13800000001'",
			     (long long)tenant_id);
	sql("INSERT INTO wallets (tenant_id, driver_id) VALUES (%lld, %lld)", (long long)tenant_id, drv);
	long long wal = qint("SELECT id FROM wallets WHERE driver_id = %lld", drv);
	CU_ASSERT_FATAL(drv > 0 && wal > 0);
	sql("INSERT INTO wallet_ledger (tenant_id, wallet_id, amount, kind) VALUES (%lld, %lld, 5000000, 'topup')",
	    (long long)tenant_id, wal);
	CU_ASSERT_FATAL(sql("INSERT INTO vehicles (tenant_id, driver_id, vin, status) VALUES "
			    "(%lld, %lld, 'LSVAU2180N2183295', 'active'), (%lld, %lld, 'LSVAU2180N2183296', 'blocked')",
			    (long long)tenant_id, drv, (long long)tenant_id, drv) == 0);
	/* the registry refuses what cannot be a VIN (I, O, Q; length) */
	CU_ASSERT(sql("INSERT INTO vehicles (tenant_id, driver_id, vin) VALUES (%lld, %lld, 'LSVAU2180N218329O')",
		      (long long)tenant_id, drv) < 0);

	struct evcs_ykc_msg r;
	start_request(&r, 3, NULL, 0, NULL, "LSVAU2180N2183295");
	CU_ASSERT_EQUAL(r.u.start_auth.auth_ok, 1);
	CU_ASSERT_EQUAL(r.u.start_auth.fail_reason, 0);
	CU_ASSERT_EQUAL(r.u.start_auth.balance_yuan, 5000); /* 50.00 yuan */
	CU_ASSERT_STRING_EQUAL(r.u.start_auth.logical_card, "0000000000000000");
	CU_ASSERT_NSTRING_EQUAL(r.u.start_auth.trade_no, PILE_A "02", 16);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM charging_sessions WHERE trade_no = '%s' AND start_mode = 'vin' "
			     "AND vin = 'LSVAU2180N2183295' AND driver_id = %lld AND card_id IS NULL "
			     "AND state = 'starting'", r.u.start_auth.trade_no, drv), 1);

	start_request(&r, 3, NULL, 0, NULL, "LSVAU2180N2183297");
	CU_ASSERT_EQUAL(r.u.start_auth.auth_ok, 0);
	CU_ASSERT_EQUAL(r.u.start_auth.fail_reason, 9); /* VIN unknown */
	start_request(&r, 3, NULL, 0, NULL, "LSVAU2180N2183296");
	CU_ASSERT_EQUAL(r.u.start_auth.auth_ok, 0);
	CU_ASSERT_EQUAL(r.u.start_auth.fail_reason, 2); /* blocked */
	/* the VIN is matched in normal order: the reversed text is not the vehicle */
	start_request(&r, 3, NULL, 0, NULL, "5923812N0812UAVSL");
	CU_ASSERT_EQUAL(r.u.start_auth.auth_ok, 0);
	CU_ASSERT_EQUAL(r.u.start_auth.fail_reason, 9);
	/* the driver's wallet empties: the vehicle is refused for the balance */
	sql("INSERT INTO wallet_ledger (tenant_id, wallet_id, amount, kind) VALUES (%lld, %lld, -5000000, 'adjust')",
	    (long long)tenant_id, wal);
	start_request(&r, 3, NULL, 0, NULL, "LSVAU2180N2183295");
	CU_ASSERT_EQUAL(r.u.start_auth.auth_ok, 0);
	CU_ASSERT_EQUAL(r.u.start_auth.fail_reason, 3);
}

static void test_card_pin_start(void)
{
	/* PIN "123456": MD5 e10adc3949ba59abbe56e057f20f883e */
	static const uint8_t ascii_form[16] = "49ba59abbe56e057"; /* middle 16 hex characters */
	static const uint8_t raw_form[16] = {0xe1, 0x0a, 0xdc, 0x39, 0x49, 0xba, 0x59, 0xab,
					     0xbe, 0x56, 0xe0, 0x57, 0xf2, 0x0f, 0x88, 0x3e};
	static const uint8_t pin_card[8] = {0, 0, 0, 0, 0xD1, 0x4B, 0x0A, 0x60};
	static const uint8_t plain_card[8] = {0, 0, 0, 0, 0xD1, 0x4B, 0x0A, 0x54}; /* no PIN */
	long long drv = qint("SELECT id FROM drivers WHERE tenant_id = %lld AND phone = '13800000000'",
			     (long long)tenant_id);
	CU_ASSERT_FATAL(sql("INSERT INTO rfid_cards (tenant_id, driver_id, logical_no, physical_no, pin_md5) VALUES "
			    "(%lld, %lld, '0000001000000574', '00000000D14B0A60', 'e10adc3949ba59abbe56e057f20f883e')",
			    (long long)tenant_id, drv) == 0);
	/* only lower-case hex digests are stored */
	CU_ASSERT(sql("UPDATE rfid_cards SET pin_md5 = 'E10ADC3949BA59ABBE56E057F20F883E' WHERE physical_no = "
		      "'00000000D14B0A60'") < 0);

	struct evcs_ykc_msg r;
	start_request(&r, 1, pin_card, 1, ascii_form, NULL);
	CU_ASSERT_EQUAL(r.u.start_auth.auth_ok, 1);
	CU_ASSERT_EQUAL(r.u.start_auth.fail_reason, 0);
	CU_ASSERT_STRING_EQUAL(r.u.start_auth.logical_card, "0000001000000574");
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM charging_sessions s JOIN rfid_cards c ON c.id = s.card_id "
			     "WHERE s.trade_no = '%s' AND c.physical_no = '00000000D14B0A60'",
			     r.u.start_auth.trade_no), 1);
	start_request(&r, 1, pin_card, 1, raw_form, NULL);
	CU_ASSERT_EQUAL(r.u.start_auth.auth_ok, 1);
	CU_ASSERT_EQUAL(r.u.start_auth.fail_reason, 0);

	/* one byte off in either form, or nothing sent: wrong password */
	uint8_t bad[16];
	memcpy(bad, ascii_form, 16);
	bad[15] = '8';
	start_request(&r, 1, pin_card, 1, bad, NULL);
	CU_ASSERT_EQUAL(r.u.start_auth.auth_ok, 0);
	CU_ASSERT_EQUAL(r.u.start_auth.fail_reason, 7);
	memcpy(bad, raw_form, 16);
	bad[0] ^= 1;
	start_request(&r, 1, pin_card, 1, bad, NULL);
	CU_ASSERT_EQUAL(r.u.start_auth.auth_ok, 0);
	CU_ASSERT_EQUAL(r.u.start_auth.fail_reason, 7);
	start_request(&r, 1, pin_card, 1, NULL, NULL);
	CU_ASSERT_EQUAL(r.u.start_auth.auth_ok, 0);
	CU_ASSERT_EQUAL(r.u.start_auth.fail_reason, 7);
	/* the PIN card without a password request still starts (the pile decides to ask) */
	start_request(&r, 1, pin_card, 0, NULL, NULL);
	CU_ASSERT_EQUAL(r.u.start_auth.auth_ok, 1);
	/* a blocked card: the right PIN learns it is blocked (2), a wrong one learns nothing (7) */
	CU_ASSERT_FATAL(sql("UPDATE rfid_cards SET status = 'blocked' WHERE physical_no = '00000000D14B0A60'") == 0);
	start_request(&r, 1, pin_card, 1, raw_form, NULL);
	CU_ASSERT_EQUAL(r.u.start_auth.auth_ok, 0);
	CU_ASSERT_EQUAL(r.u.start_auth.fail_reason, 2);
	start_request(&r, 1, pin_card, 1, bad, NULL);
	CU_ASSERT_EQUAL(r.u.start_auth.auth_ok, 0);
	CU_ASSERT_EQUAL(r.u.start_auth.fail_reason, 7);
	CU_ASSERT_FATAL(sql("UPDATE rfid_cards SET status = 'active' WHERE physical_no = '00000000D14B0A60'") == 0);

	/* a card with no PIN on file cannot satisfy a password start, whatever is sent */
	start_request(&r, 1, plain_card, 1, ascii_form, NULL);
	CU_ASSERT_EQUAL(r.u.start_auth.auth_ok, 0);
	CU_ASSERT_EQUAL(r.u.start_auth.fail_reason, 7);
}

static void test_remote_start(void)
{
	struct cmd_res cr;
	CU_ASSERT_FATAL(send_cmd(PILE_A, "start", 1,
				 "{\"balance\":10000000,\"logical_card\":\"0000001000000573\",\"driver_id\":null}",
				 &cr) == EVCS_OK);
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	CU_ASSERT_FATAL(ykc_pile_wait(&pa, 0x34, 5000, &r, &rx) == 0);
	const struct evcs_ykc_remote_start *rs = &r.u.remote_start;
	CU_ASSERT_NSTRING_EQUAL(rs->trade_no, PILE_A "01", 16);
	CU_ASSERT_STRING_EQUAL(rs->gun, "01");
	CU_ASSERT_EQUAL(rs->balance_yuan, 10000);
	CU_ASSERT_STRING_EQUAL(rs->logical_card, "0000001000000573");
	memcpy(trade1, rs->trade_no, sizeof trade1);
	CU_ASSERT_FALSE(cr.done); /* answered only when the pile answers */
	memset(&m, 0, sizeof m);
	m.type = 0x33;
	memcpy(m.u.remote_start_reply.trade_no, trade1, 33);
	memcpy(m.u.remote_start_reply.pile, PILE_A, 15);
	memcpy(m.u.remote_start_reply.gun, "01", 3);
	m.u.remote_start_reply.result = 1;
	CU_ASSERT_FATAL(ykc_pile_send(&pa, &m, rx.seq) > 0);
	CU_ASSERT_FATAL(wait_cmd(&cr, 5000));
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_PTR_NOT_NULL(strstr(cr.json, trade1));
	CU_ASSERT_PTR_NOT_NULL(strstr(cr.json, "\"result\":1"));
	session1 = qint("SELECT id FROM charging_sessions WHERE trade_no = '%s'", trade1);
	CU_ASSERT(session1 > 0);
	char want[64];
	snprintf(want, sizeof want, "\"session_id\":%lld", (long long)session1);
	CU_ASSERT_PTR_NOT_NULL(strstr(cr.json, want));
	char state[32];
	long long end = ykc_pile_now_ms() + 3000;
	do {
		run_ms(50);
		qstr(state, sizeof state, "SELECT state FROM charging_sessions WHERE id = %lld", (long long)session1);
	} while (strcmp(state, "charging") != 0 && ykc_pile_now_ms() < end);
	CU_ASSERT_STRING_EQUAL(state, "charging");
	CU_ASSERT_EQUAL(qint("SELECT tariff_id FROM charging_sessions WHERE id = %lld", (long long)session1),
			tariff_id);
}

static void test_realtime_samples(void)
{
	struct evcs_ykc_msg m;
	ykc_msg_realtime(&pa, &m, 1, trade1, 3, 12000, 15600);
	CU_ASSERT_FATAL(ykc_pile_send(&pa, &m, NULL) > 0);
	run_ms(20);
	ykc_msg_realtime(&pa, &m, 1, trade1, 3, 15000, 19500);
	CU_ASSERT_FATAL(ykc_pile_send(&pa, &m, NULL) > 0);
	CU_ASSERT_EQUAL(wait_count(2, 4000, "SELECT COUNT(*) FROM meter_samples WHERE session_id = %lld",
				   (long long)session1), 2);
	CU_ASSERT_EQUAL(qint("SELECT MAX(kwh) FROM meter_samples WHERE session_id = %lld", (long long)session1), 15000);
	CU_ASSERT_EQUAL(qint("SELECT MAX(amount) FROM meter_samples WHERE session_id = %lld", (long long)session1), 195000);
	CU_ASSERT_EQUAL(wait_count(3, 3000, "SELECT status FROM connectors WHERE pile_id = %lld AND gun_no = 1",
				   (long long)pile_a_id), 3);
}

static void test_remote_stop(void)
{
	struct cmd_res cr;
	CU_ASSERT_FATAL(send_cmd(PILE_A, "stop", 1, NULL, &cr) == EVCS_OK);
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	CU_ASSERT_FATAL(ykc_pile_wait(&pa, 0x36, 5000, &r, &rx) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.pile_gun.gun, "01");
	memset(&m, 0, sizeof m);
	m.type = 0x35;
	memcpy(m.u.remote_stop_reply.pile, PILE_A, 15);
	memcpy(m.u.remote_stop_reply.gun, "01", 3);
	m.u.remote_stop_reply.result = 1;
	/* a pile with "random" sequence numbers: matched by type and gun instead (§1.3) */
	const uint8_t other[2] = {0xEE, 0xEE};
	CU_ASSERT_FATAL(ykc_pile_send(&pa, &m, other) > 0);
	CU_ASSERT_FATAL(wait_cmd(&cr, 5000));
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_PTR_NOT_NULL(strstr(cr.json, "\"frame\":\"0x35\""));
	char state[32];
	long long end = ykc_pile_now_ms() + 3000;
	do {
		run_ms(50);
		qstr(state, sizeof state, "SELECT state FROM charging_sessions WHERE id = %lld", (long long)session1);
	} while (strcmp(state, "stopping") != 0 && ykc_pile_now_ms() < end);
	CU_ASSERT_STRING_EQUAL(state, "stopping");
}

/* A 0x3B for gun 1: 1 kWh sharp + 2.5 kWh flat; the platform bill is 2.00 + 3.25 = 5.25 yuan. */
static void record_msg(struct evcs_ykc_msg *m, const char *trade, uint8_t flag, uint32_t pile_total4)
{
	memset(m, 0, sizeof *m);
	m->type = 0x3B;
	struct evcs_ykc_record *r = &m->u.record;
	memcpy(r->trade_no, trade, 33);
	memcpy(r->pile, PILE_A, 15);
	memcpy(r->gun, "01", 3);
	r->start = (struct evcs_ykc_cp56){.ms = 15000, .minute = 30, .hour = 17, .mday = 1, .month = 5, .year = 24};
	r->end = (struct evcs_ykc_cp56){.ms = 0, .minute = 40, .hour = 18, .mday = 1, .month = 5, .year = 24};
	r->trade_time = r->end;
	r->sharp_price = 200000;
	r->sharp_kwh = 10000;
	r->sharp_loss_kwh = 10000;
	r->sharp_amount = 20000;
	r->flat_price = 130000;
	r->flat_kwh = 25000;
	r->flat_loss_kwh = 25000;
	r->flat_amount = 32500;
	r->meter_start_kwh = 1000000;
	r->meter_stop_kwh = 1035000;
	r->total_kwh = 35000;
	r->total_loss_kwh = 35000;
	r->total_amount_yuan = pile_total4;
	r->trade_flag = flag;
	r->stop_reason = 0x40;
	memcpy(r->vin, "LSVAU2180N2183294", 17);
}

/* The body of m as the pile sends it, in upper-case hex (what ykc_records.raw_hex keeps). */
static void body_hex(const struct evcs_ykc_msg *m, char *out, size_t cap)
{
	uint8_t frame[EVCS_YKC_MAX_FRAME];
	const uint8_t seq[2] = {0, 0};
	out[0] = 0;
	int n = ykc_pile_build(&pa, m, seq, frame, sizeof frame);
	if (n < 8 || (size_t)(2 * (frame[1] - 4)) >= cap)
		return;
	for (size_t i = 0; i < (size_t)frame[1] - 4; i++)
		snprintf(out + 2 * i, 3, "%02X", frame[6 + i]);
}

/* Run the loop until the trade's TRANSACTION_CLOSED count reaches want (or timeout_ms). */
static int wait_closed(const char *trade, int want, int timeout_ms)
{
	long long end = ykc_pile_now_ms() + timeout_ms;
	while (n_closed(trade) < want && ykc_pile_now_ms() < end)
		pump(NULL);
	return n_closed(trade);
}

/* Evidence rows of one 0x3B body: raw bytes as sent, digest = SHA-256 of them, the YKC-only
 * fields decoded, linked to the session; billed = 1: the close the session was priced from (its
 * close_digest), 0: a differing resend kept as evidence only. */
static long long evidence_rows(const char *trade, const char *raw, int flag, long long session, int billed)
{
	return qint("SELECT COUNT(*) FROM ykc_records r JOIN charging_sessions s ON s.tenant_id = r.tenant_id "
		    "AND s.id = r.session_id AND s.pile_id = r.pile_id AND s.trade_no = r.trade_no "
		    "WHERE r.tenant_id = %lld AND r.pile_id = %lld AND r.trade_no = '%s' AND r.raw_hex = '%s' "
		    "AND r.digest = CONVERT(SHA2(UNHEX(r.raw_hex), 256) USING ascii) AND (s.close_digest = r.digest) = %d "
		    "AND r.gun_no = %d AND r.trade_flag = %d AND r.stop_reason = 64 "
		    "AND r.vin = 'LSVAU2180N2183294' AND r.sharp_price = 200000 AND r.sharp_loss_kwh = 10000 "
		    "AND r.sharp_pile_amount = 200000 AND r.flat_price = 130000 AND r.flat_pile_amount = 325000 "
		    "AND r.physical_card = '0000000000000000' AND r.trade_time_ms IS NOT NULL AND s.id = %lld",
		    (long long)tenant_id, (long long)pile_a_id, trade, raw, billed, trade[15] - '0', flag,
		    session);
}

static void test_record_stored_and_resend(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	record_msg(&m, trade1, 1, 52500);
	char raw[2 * EVCS_YKC_MAX_BODY + 1];
	body_hex(&m, raw, sizeof raw);
	CU_ASSERT_FATAL(strlen(raw) == 2 * 158);
	const uint8_t seq[2] = {0x3B, 0x01};
	CU_ASSERT_FATAL(ykc_pile_send(&pa, &m, seq) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pa, 0x40, 8000, &r, &rx) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.record_ack.trade_no, trade1);
	CU_ASSERT_EQUAL(r.u.record_ack.result, 0);
	CU_ASSERT(rx.seq[0] == 0x3B && rx.seq[1] == 0x01);
	/* the 0x40 came after COMMIT: the rows are there now, without waiting; the raw record is
	 * the plugin's own row (ykc_records), written in the core's close transaction */
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM ykc_records WHERE trade_no = '%s'", trade1), 1);
	CU_ASSERT_EQUAL(evidence_rows(trade1, raw, 1, session1, 1), 1);
	char state[32];
	qstr(state, sizeof state, "SELECT state FROM charging_sessions WHERE id = %lld", (long long)session1);
	CU_ASSERT_STRING_EQUAL(state, "finished");
	CU_ASSERT_EQUAL(qint("SELECT total_amount FROM charging_sessions WHERE id = %lld", (long long)session1), 525000);
	CU_ASSERT_EQUAL(qint("SELECT pile_amount FROM charging_sessions WHERE id = %lld", (long long)session1), 525000);
	CU_ASSERT_EQUAL(qint("SELECT sharp_amount FROM charging_sessions WHERE id = %lld", (long long)session1), 200000);
	CU_ASSERT_EQUAL(qint("SELECT flat_amount FROM charging_sessions WHERE id = %lld", (long long)session1), 325000);
	CU_ASSERT_EQUAL(qint("SELECT amount_mismatch FROM charging_sessions WHERE id = %lld", (long long)session1), 0);
	CU_ASSERT_EQUAL(qint("SELECT total_kwh FROM charging_sessions WHERE id = %lld", (long long)session1), 35000);
	/* the core, not the plugin, says the transaction closed: once */
	CU_ASSERT_EQUAL(wait_closed(trade1, 1, 3000), 1);
	/* the pile missed our 0x40 and resends: acknowledged again, still one session, one
	 * evidence row, no second event */
	const uint8_t seq2[2] = {0x3B, 0x02};
	CU_ASSERT_FATAL(ykc_pile_send(&pa, &m, seq2) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pa, 0x40, 8000, &r, &rx) == 0);
	CU_ASSERT_EQUAL(r.u.record_ack.result, 0);
	CU_ASSERT(rx.seq[0] == 0x3B && rx.seq[1] == 0x02);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM charging_sessions WHERE trade_no = '%s'", trade1), 1);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM ykc_records WHERE trade_no = '%s'", trade1), 1);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM record_conflicts"), 0);
	/* a resend with other figures: stored copy kept, conflict audited, alarm raised */
	record_msg(&m, trade1, 1, 99999);
	char raw2[2 * EVCS_YKC_MAX_BODY + 1];
	body_hex(&m, raw2, sizeof raw2);
	CU_ASSERT(strcmp(raw, raw2) != 0);
	CU_ASSERT_FATAL(ykc_pile_send(&pa, &m, NULL) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pa, 0x40, 8000, &r, NULL) == 0);
	CU_ASSERT_EQUAL(r.u.record_ack.result, 0);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM record_conflicts WHERE trade_no = '%s'", trade1), 1);
	CU_ASSERT_EQUAL(qint("SELECT pile_amount FROM charging_sessions WHERE id = %lld", (long long)session1), 525000);
	/* the first body stays the session's close; the differing one is kept beside it */
	CU_ASSERT_EQUAL(evidence_rows(trade1, raw, 1, session1, 1), 1);
	CU_ASSERT_EQUAL(evidence_rows(trade1, raw2, 1, session1, 0), 1);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM ykc_records WHERE trade_no = '%s'", trade1), 2);
	/* the core names its alarms after the session (the trade number is the protocol's) */
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM alarms WHERE code = 'record.conflict.%lld' AND session_id = %lld",
			     (long long)session1, (long long)session1), 1);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM charging_sessions WHERE trade_no = '%s'", trade1), 1);
	run_ms(200);
	CU_ASSERT_EQUAL(n_closed(trade1), 1);
	struct closed_count *cc = closed_of(trade1);
	CU_ASSERT_FATAL(cc != NULL);
	CU_ASSERT_EQUAL(cc->stopped, 1);
}

static void test_record_mismatch_alarm(void)
{
	/* an offline-card session the platform never saw; the pile bills 6.00 instead of 5.25 */
	char trade[33] = PILE_A "01" "240501184000" "0077";
	struct evcs_ykc_msg m, r;
	record_msg(&m, trade, 4, 60000);
	CU_ASSERT_FATAL(ykc_pile_send(&pa, &m, NULL) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pa, 0x40, 8000, &r, NULL) == 0);
	CU_ASSERT_EQUAL(r.u.record_ack.result, 0);
	CU_ASSERT_EQUAL(qint("SELECT amount_mismatch FROM charging_sessions WHERE trade_no = '%s'", trade), 1);
	CU_ASSERT_EQUAL(qint("SELECT total_amount FROM charging_sessions WHERE trade_no = '%s'", trade), 525000);
	CU_ASSERT_EQUAL(qint("SELECT pile_amount FROM charging_sessions WHERE trade_no = '%s'", trade), 600000);
	char mode[32];
	qstr(mode, sizeof mode, "SELECT start_mode FROM charging_sessions WHERE trade_no = '%s'", trade);
	CU_ASSERT_STRING_EQUAL(mode, "offline_card");
	long long sid = qint("SELECT id FROM charging_sessions WHERE trade_no = '%s'", trade);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM alarms WHERE code = 'bill.mismatch.%lld' AND session_id = %lld",
			     sid, sid), 1);
	/* a session the platform never saw open still gets its evidence row and one event */
	char raw[2 * EVCS_YKC_MAX_BODY + 1];
	body_hex(&m, raw, sizeof raw);
	CU_ASSERT_EQUAL(evidence_rows(trade, raw, 4, sid, 1), 1);
	CU_ASSERT_EQUAL(wait_closed(trade, 1, 3000), 1);
	run_ms(100);
	CU_ASSERT_EQUAL(n_closed(trade), 1);
}

static void test_duplicate_login_replaces(void)
{
	struct evcs_ykc_msg m, r;
	CU_ASSERT_FATAL(ykc_pile_connect(&pa2, port15, PILE_A, EVCS_YKC_CRC_LE, pump, NULL) == 0);
	ykc_msg_login(&pa2, &m, 2, 15);
	CU_ASSERT_FATAL(ykc_pile_send(&pa2, &m, NULL) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pa2, 0x02, 5000, &r, NULL) == 0);
	CU_ASSERT_EQUAL(r.u.pile_result.result, 0);
	/* the old connection is closed by the server */
	keepalive[0] = NULL;
	pa.hb_ms = 0;
	CU_ASSERT(ykc_pile_wait_closed(&pa, 3000));
	ykc_pile_close(&pa);
	pa2.hb_ms = 800;
	keepalive[0] = &pa2;
	/* the pile stays online and commands reach the new connection */
	run_ms(200);
	CU_ASSERT_EQUAL(qint("SELECT online FROM pile_presence WHERE pile_id = %lld", (long long)pile_a_id), 1);
	struct cmd_res cr;
	CU_ASSERT_FATAL(send_cmd(PILE_A, "read_realtime", 2, NULL, &cr) == EVCS_OK);
	struct ykc_rx rx;
	CU_ASSERT_FATAL(ykc_pile_wait(&pa2, 0x12, 5000, &r, &rx) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.pile_gun.gun, "02");
	ykc_msg_realtime(&pa2, &m, 2, "00000000000000000000000000000000", 2, 0, 0);
	CU_ASSERT_FATAL(ykc_pile_send(&pa2, &m, rx.seq) > 0);
	CU_ASSERT_FATAL(wait_cmd(&cr, 5000));
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_PTR_NOT_NULL(strstr(cr.json, "\"frame\":\"0x13\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(cr.json, "\"status\":2"));
}

static void test_tariff_change_pushed(void)
{
	/* a new tariff version (its own model code) assigned to pile A, then announced */
	const char *slots = "222222222222222222222222222222222222222222222222";
	CU_ASSERT_FATAL(sql("INSERT INTO tariffs (tenant_id, name, version, model, sharp_elec_rate, "
			    "sharp_service_rate, peak_elec_rate, peak_service_rate, flat_elec_rate, "
			    "flat_service_rate, valley_elec_rate, valley_service_rate, slots, state) VALUES "
			    "(%lld, 'std', 2, '0002', 1, 2, 3, 4, 55555, 6, 7, 8, '%s', 'active')",
			    (long long)tenant_id, slots) == 0);
	long long t2 = qint("SELECT id FROM tariffs WHERE model = '0002'");
	CU_ASSERT_FATAL(sql("UPDATE piles SET tariff_id = %lld WHERE id = %lld", t2, (long long)pile_a_id) == 0);
	evcs_field_t f[] = {EVCS_FI("tariff_id", t2), EVCS_FS("model", "0002")};
	evcs_event_t ev = {.size = sizeof ev, .type = EVCS_EV_TARIFF_CHANGED, .tenant_id = tenant_id,
			   .fields = f, .nfields = 2};
	CU_ASSERT_EQUAL(evcs_bus_publish(core.bus, &ev, "test"), EVCS_OK);
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	CU_ASSERT_FATAL(ykc_pile_wait(&pa2, 0x58, 5000, &r, &rx) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.tariff.model, "0002");
	CU_ASSERT_EQUAL(r.u.tariff.flat_elec_rate, 55555);
	CU_ASSERT_EQUAL(r.u.tariff.slots[0], 2);
	memset(&m, 0, sizeof m);
	m.type = 0x57;
	memcpy(m.u.pile_result.pile, PILE_A, 15);
	m.u.pile_result.result = 1;
	CU_ASSERT_FATAL(ykc_pile_send(&pa2, &m, rx.seq) > 0);
	/* the pile now reports the new code: same model */
	memset(&m, 0, sizeof m);
	m.type = 0x05;
	memcpy(m.u.model.pile, PILE_A, 15);
	memcpy(m.u.model.model, "0002", 5);
	CU_ASSERT_FATAL(ykc_pile_send(&pa2, &m, NULL) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pa2, 0x06, 3000, &r, NULL) == 0);
	CU_ASSERT_EQUAL(r.u.model.result, 0);
}

/* ---- device management on a 1.6 pile (pile C), through evcs_bus_command_send ------------- */



/* ---- parallel charging (1.6 only) --------------------------------------------------------- */

#define PARALLEL_NO "240501120000"
char par_trade[4][33];

static void parallel_request(struct evcs_ykc_msg *m, const char *gun, int role)
{
	static const uint8_t card[8] = {0, 0, 0, 0, 0xD1, 0x4B, 0x0A, 0x54};
	memset(m, 0, sizeof *m);
	m->type = 0xA1;
	struct evcs_ykc_start_request *q = &m->u.start_request;
	memcpy(q->pile, PILE_C, 15);
	memcpy(q->gun, gun, 3);
	q->start_mode = 1;
	memcpy(q->card, card, 8);
	q->parallel_role = (uint8_t)role;
	memcpy(q->parallel_no, PARALLEL_NO, 13);
}

static void test_parallel_pile_start(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	const uint8_t s1[2] = {0xA1, 0x01}, s2[2] = {0xA1, 0x02};
	parallel_request(&m, "01", 1);
	CU_ASSERT_FATAL(ykc_pile_send(&pc, &m, s1) > 0);
	parallel_request(&m, "02", 0);
	CU_ASSERT_FATAL(ykc_pile_send(&pc, &m, s2) > 0);
	int seen = 0;
	for (int i = 0; i < 2; i++) {
		CU_ASSERT_FATAL(ykc_pile_wait(&pc, 0xA2, 5000, &r, &rx) == 0);
		const struct evcs_ykc_start_auth *a = &r.u.start_auth;
		int g = gun_no_of(a->gun);
		CU_ASSERT_FATAL(g == 1 || g == 2);
		seen |= 1 << g;
		CU_ASSERT(rx.seq[0] == 0xA1 && rx.seq[1] == (g == 1 ? 0x01 : 0x02));
		CU_ASSERT_STRING_EQUAL(a->pile, PILE_C);
		CU_ASSERT_EQUAL(a->auth_ok, 1);
		CU_ASSERT_EQUAL(a->fail_reason, 0);
		CU_ASSERT_STRING_EQUAL(a->logical_card, "0000001000000573");
		CU_ASSERT(a->balance_yuan > 0);
		CU_ASSERT_STRING_EQUAL(a->parallel_no, PARALLEL_NO);
		CU_ASSERT_NSTRING_EQUAL(a->trade_no, g == 1 ? PILE_C "01" : PILE_C "02", 16);
		memcpy(par_trade[g], a->trade_no, 33);
	}
	CU_ASSERT_EQUAL(seen, 6);
	CU_ASSERT(strcmp(par_trade[1], par_trade[2]) != 0);
	for (int g = 1; g <= 2; g++)
		CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM charging_sessions WHERE trade_no = '%s' AND pile_id = %lld "
				     "AND gun_no = %d AND start_mode = 'card' AND state = 'starting'",
				     par_trade[g], (long long)pile_c_id, g), 1);
}

static void test_parallel_remote_start(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	struct cmd_res cr;
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "parallel_start", 3,
			       "{\"balance\":5000000,\"logical_card\":\"0000001000000573\",\"parallel_no\":\"" PARALLEL_NO "\"}",
			       0xA4, &r, &rx, &cr) == 0);
	const struct evcs_ykc_remote_start *rs = &r.u.remote_start;
	CU_ASSERT_NSTRING_EQUAL(rs->trade_no, PILE_C "03", 16);
	CU_ASSERT_STRING_EQUAL(rs->pile, PILE_C);
	CU_ASSERT_STRING_EQUAL(rs->gun, "03");
	CU_ASSERT_STRING_EQUAL(rs->logical_card, "0000001000000573");
	CU_ASSERT_EQUAL(rs->balance_yuan, 5000);
	CU_ASSERT_STRING_EQUAL(rs->parallel_no, PARALLEL_NO);
	memcpy(par_trade[3], rs->trade_no, 33);
	CU_ASSERT_FALSE(cr.done);
	memset(&m, 0, sizeof m);
	m.type = 0xA3;
	struct evcs_ykc_remote_start_reply *a = &m.u.remote_start_reply;
	memcpy(a->trade_no, par_trade[3], 33);
	memcpy(a->pile, PILE_C, 15);
	memcpy(a->gun, "03", 3);
	a->result = 1;
	a->parallel_role = 0;
	memcpy(a->parallel_no, PARALLEL_NO, 13);
	json_t *j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0xA3");
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "name")), "parallel_remote_start_reply");
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "trade_no")), par_trade[3]);
	CU_ASSERT_STRING_EQUAL(sv(jfield(j, "parallel_no")), PARALLEL_NO);
	long long sid = qint("SELECT id FROM charging_sessions WHERE trade_no = '%s'", par_trade[3]);
	CU_ASSERT(sid > 0);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "session_id")), sid);
	json_decref(j);
}

/* Send m (sequence bytes mseq, encryption flag enc) from p, then a heartbeat with hseq, and wait
 * for that heartbeat's answer: m has been handled by then (one connection, handled in order).
 * Returns how many 0x04 answers carrying mseq came before it, or -1 on failure. */
int send_then_barrier(struct ykc_pile *p, int slot, const struct evcs_ykc_msg *m, uint8_t enc,
		      const uint8_t mseq[2], const uint8_t hseq[2])
{
	struct ykc_pile *keep = keepalive[slot];
	unsigned hb = p->hb_ms;
	keepalive[slot] = NULL; /* the background tick would eat the answer we wait for */
	p->hb_ms = 0;
	ykc_pile_flush(p, 0x04);
	int rc = (enc ? ykc_pile_send_enc(p, m, mseq, enc) : ykc_pile_send(p, m, mseq)) > 0 ? 0 : -1;
	struct evcs_ykc_msg h;
	struct ykc_rx rx;
	ykc_msg_heartbeat(p, &h, 1);
	if (rc == 0 && ykc_pile_send(p, &h, hseq) > 0) {
		int early = 0;
		rc = -1;
		while (ykc_pile_wait(p, 0x04, 3000, NULL, &rx) == 0) {
			if (rx.seq[0] == hseq[0] && rx.seq[1] == hseq[1]) {
				rc = early;
				break;
			}
			if (rx.seq[0] == mseq[0] && rx.seq[1] == mseq[1])
				early++;
		}
	} else {
		rc = -1;
	}
	p->hb_ms = hb;
	keepalive[slot] = keep;
	return rc;
}

static void test_parallel_on_v15_not_served(void)
{
	const char *dropped = "evcs_ykc_frames_in_total{type=\"0xA1\",outcome=\"dropped\"}";
	long long before = metric(dropped);
	long long sessions = qint("SELECT COUNT(*) FROM charging_sessions WHERE pile_id = %lld", (long long)pile_a_id);
	struct evcs_ykc_msg m;
	parallel_request(&m, "01", 1);
	memcpy(m.u.start_request.pile, PILE_A, 15);
	const uint8_t mseq[2] = {0xA1, 0x05}, hseq[2] = {0xB1, 0x05};
	CU_ASSERT_FATAL(send_then_barrier(&pa2, 0, &m, 0, mseq, hseq) == 0);
	/* handled as an unknown type (counted and logged), never authorised */
	CU_ASSERT_EQUAL(metric(dropped), before + 1);
	CU_ASSERT(ykc_pile_wait(&pa2, 0xA2, 500, NULL, NULL) < 0);
	CU_ASSERT(ykc_pile_wait(&pa2, 0x32, 0, NULL, NULL) < 0);
	CU_ASSERT(ykc_pile_is_open(&pa2));
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM charging_sessions WHERE pile_id = %lld", (long long)pile_a_id),
			sessions);
}

/* ---- encrypted frames, BMS/fault frames, idle links ------------------------------------------ */



/* Run a shell command while the server's loop and the kept-alive piles go on (a blocking
 * system() would starve the piles' heartbeats past offline_after_ms, and the server would drop
 * them for silence). Returns the command's exit status, -1 when it could not run. */
static int run_pumping(const char *cmd)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	int st = 0;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (r < 0)
			return -1;
		pump(NULL);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_record_while_database_down(void)
{
	char cmd[1024];
	char trade[33] = PILE_A "02" "240501184000" "0099";
	snprintf(cmd, sizeof cmd, "'%s' stop '%s' >/dev/null 2>&1", env("EVCS_MARIADB_SH"), env("EVCS_DB_DIR"));
	CU_ASSERT_FATAL(run_pumping(cmd) == 0);
	struct evcs_ykc_msg m, r;
	record_msg(&m, trade, 4, 52500);
	memcpy(m.u.record.gun, "02", 3);
	CU_ASSERT_FATAL(ykc_pile_send(&pa2, &m, NULL) > 0);
	/* the data layer gives up after its unavailability window (10 s): no 0x40 meanwhile */
	CU_ASSERT(ykc_pile_wait(&pa2, 0x40, 13000, NULL, NULL) < 0);
	snprintf(cmd, sizeof cmd, "'%s' start '%s' >/dev/null 2>&1", env("EVCS_MARIADB_SH"), env("EVCS_DB_DIR"));
	CU_ASSERT_FATAL(run_pumping(cmd) == 0);
	/* the pile resends until acknowledged (§1.6) */
	int acked = 0;
	for (int i = 0; i < 8 && !acked; i++) {
		CU_ASSERT_FATAL(ykc_pile_send(&pa2, &m, NULL) > 0);
		if (ykc_pile_wait(&pa2, 0x40, 4000, &r, NULL) == 0)
			acked = 1;
	}
	CU_ASSERT_FATAL(acked);
	CU_ASSERT_EQUAL(r.u.record_ack.result, 0);
	CU_ASSERT_STRING_EQUAL(r.u.record_ack.trade_no, trade);
	/* any late duplicates are answered too, and stored once */
	run_ms(500);
	ykc_pile_flush(&pa2, 0x40);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM ykc_records WHERE trade_no = '%s'", trade), 1);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM charging_sessions WHERE trade_no = '%s'", trade), 1);
	/* nothing was published while the database was down; one close once it was stored */
	CU_ASSERT_EQUAL(wait_closed(trade, 1, 3000), 1);
	run_ms(100);
	CU_ASSERT_EQUAL(n_closed(trade), 1);
}

static void register_tests(void)
{
	CU_pSuite s = CU_add_suite("ykc_e2e", suite_init, suite_clean);
	EVCS_ADD(s, test_login_accepted);
	EVCS_ADD(s, test_billing_model);
	EVCS_ADD(s, test_heartbeat_crc_orders);
	EVCS_ADD(s, test_unknown_pile_refused);
	EVCS_ADD(s, test_login_timeout);
	EVCS_ADD(s, test_garbage_and_split_frame);
	EVCS_ADD(s, test_card_start_authorised);
	EVCS_ADD(s, test_vin_start);
	EVCS_ADD(s, test_card_pin_start);
	EVCS_ADD(s, test_remote_start);
	EVCS_ADD(s, test_realtime_samples);
	EVCS_ADD(s, test_remote_stop);
	EVCS_ADD(s, test_record_stored_and_resend);
	EVCS_ADD(s, test_record_mismatch_alarm);
	EVCS_ADD(s, test_duplicate_login_replaces);
	EVCS_ADD(s, test_tariff_change_pushed);
	EVCS_ADD(s, test_v16_pile_login_and_daily_sync);
	EVCS_ADD(s, test_cmd_set_tariff);
	EVCS_ADD(s, test_cmd_reboot);
	EVCS_ADD(s, test_cmd_time_sync);
	EVCS_ADD(s, test_cmd_read_realtime);
	EVCS_ADD(s, test_cmd_work_params);
	EVCS_ADD(s, test_cmd_upgrade);
	EVCS_ADD(s, test_cmd_card_lists);
	EVCS_ADD(s, test_cmd_ground_lock);
	EVCS_ADD(s, test_cmd_qr_prefix);
	EVCS_ADD(s, test_cmd_balance_update);
	EVCS_ADD(s, test_cmd_unanswered_times_out);
	EVCS_ADD(s, test_cmd_v16_only_on_v15);
	EVCS_ADD(s, test_parallel_pile_start);
	EVCS_ADD(s, test_parallel_remote_start);
	EVCS_ADD(s, test_parallel_on_v15_not_served);
	EVCS_ADD(s, test_legacy_records_adopted);
	EVCS_ADD(s, test_encrypted_frame_dropped);
	EVCS_ADD(s, test_fault_frames_stored);
	EVCS_ADD(s, test_half_open_pile_times_out);
	EVCS_ADD(s, test_per_address_cap);
	EVCS_ADD(s, test_failed_login_limit);
	EVCS_ADD(s, test_offline_after_silence);
	EVCS_ADD(s, test_record_while_database_down);
}

EVCS_TEST_MAIN(register_tests)
