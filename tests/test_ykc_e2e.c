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
 */
#include "core.h"
#include "db.h"
#include "store.h"
#include "testutil.h"
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


#define PILE_A "32010600019236"
#define PILE_B "32010600019237"
#define PILE_C "32010600019238"  /* 1.6, three guns, connects from 127.0.0.2 */
#define PILE_UNKNOWN "99999999999999"
#define PILE_FLOOD "88888888888888"

static evcs_core_t core;
static int core_up;
static evcs_db_config_t cfg;
static MYSQL *my;
static char conf_path[256];
static int port15, port16;
static int64_t tenant_id, pile_a_id, pile_b_id, pile_c_id, tariff_id;
static struct ykc_pile pa, pb, pa2, pc;
static struct ykc_pile *keepalive[4];
static int n_online_ev, n_offline_ev;
static char trade1[33];
static int64_t session1;
/* events about pile C, counted by on_bus_c */
static int n_c_gun_status, n_c_fault, n_c_online, n_c_offline;
static char c_fault_frame[8];
static long long c_fault_code;
static int c_fault_gun;
/* TRANSACTION_CLOSED / SESSION_STOPPED per trade number (on_bus_closed) */
struct closed_count {
	char trade[33];
	int closed, stopped;
};
static struct closed_count closed_counts[16];

/* ---- loop, database helpers ---------------------------------------------------------------- */

static void pump(void *ud)
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

static void run_ms(int ms)
{
	long long end = ykc_pile_now_ms() + ms;
	while (ykc_pile_now_ms() < end)
		pump(NULL);
}

static int db_reconnect(void)
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

static int sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sql(const char *fmt, ...)
{
	char q[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q, sizeof q, fmt, ap);
	va_end(ap);
	if (db_reconnect() < 0)
		return -1;
	if (mysql_query(my, q) != 0) {
		fprintf(stderr, "sql failed: %s\n  %s\n", mysql_error(my), q);
		return -1;
	}
	MYSQL_RES *r = mysql_store_result(my);
	if (r)
		mysql_free_result(r);
	return 0;
}

/* First column of the first row as an integer; -1 when no row or NULL; -2 on error. */
static long long vqint(const char *fmt, va_list ap)
{
	char q[4096];
	vsnprintf(q, sizeof q, fmt, ap);
	if (db_reconnect() < 0)
		return -2;
	if (mysql_query(my, q) != 0) {
		fprintf(stderr, "query failed: %s\n  %s\n", mysql_error(my), q);
		return -2;
	}
	MYSQL_RES *r = mysql_store_result(my);
	long long v = -1;
	MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
	if (row && row[0])
		v = atoll(row[0]);
	if (r)
		mysql_free_result(r);
	return v;
}

static long long qint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static long long qint(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	long long v = vqint(fmt, ap);
	va_end(ap);
	return v;
}

/* Poll a number (running the loop) until it equals want or timeout_ms passes; returns it. */
static long long wait_count(long long want, int timeout_ms, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static long long wait_count(long long want, int timeout_ms, const char *fmt, ...)
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

static int qstr(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int qstr(char *out, size_t cap, const char *fmt, ...)
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

static int on_bus(const evcs_event_t *ev, void *ud)
{
	if (ev->pile && !strcmp(ev->pile, PILE_B)) {
		if (ev->type == EVCS_EV_PILE_ONLINE)
			n_online_ev++;
		if (ev->type == EVCS_EV_PILE_OFFLINE)
			n_offline_ev++;
	}
	return EVCS_OK;
}

static int on_bus_c(const evcs_event_t *ev, void *ud)
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

static struct closed_count *closed_of(const char *trade)
{
	for (size_t i = 0; i < sizeof closed_counts / sizeof *closed_counts; i++)
		if (!strcmp(closed_counts[i].trade, trade))
			return &closed_counts[i];
	return NULL;
}

/* Counts the session-end events per trade number. The core publishes them once per stored
 * close; a plugin that published them too would show up as a second one. */
static int on_bus_closed(const evcs_event_t *ev, void *ud)
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

static int n_closed(const char *trade)
{
	struct closed_count *c = closed_of(trade);
	return c ? c->closed : 0;
}

/* Run the loop until *counter reaches want or timeout_ms passes; returns the counter. */
static int wait_int(const int *counter, int want, int timeout_ms)
{
	long long end = ykc_pile_now_ms() + timeout_ms;
	while (*counter < want && ykc_pile_now_ms() < end)
		pump(NULL);
	return *counter;
}

/* Current value of a metric line ("name{labels}"), 0 when not registered yet. */
static long long metric(const char *name)
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

struct cmd_res {
	int done;
	int status;
	char json[2048];
};

static void cmd_done(int status, const char *json, void *ud)
{
	struct cmd_res *r = ud;
	r->done = 1;
	r->status = status;
	snprintf(r->json, sizeof r->json, "%s", json ? json : "");
}

static int send_cmd(const char *pile, const char *name, int gun, const char *args, struct cmd_res *r)
{
	memset(r, 0, sizeof *r);
	evcs_command_t c = {.size = sizeof c, .tenant_id = tenant_id, .pile = pile, .gun = gun,
			    .name = name, .args_json = args};
	return evcs_bus_command_send(core.bus, &c, 20000, cmd_done, r, "test");
}

static int wait_cmd(struct cmd_res *r, int ms)
{
	long long end = ykc_pile_now_ms() + ms;
	while (!r->done && ykc_pile_now_ms() < end)
		pump(NULL);
	return r->done;
}

/* ---- set-up --------------------------------------------------------------------------------- */

static const char *env(const char *k) { return getenv(k) && *getenv(k) ? getenv(k) : NULL; }

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
	port15 = free_port();
	port16 = free_port();
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

static int gun_no_of(const char *g) { return (g[0] - '0') * 10 + (g[1] - '0'); }

static const char *sv(json_t *v)
{
	const char *s = json_string_value(v);
	return s ? s : "(not a string)";
}

static json_t *jfield(json_t *root, const char *k) { return json_object_get(json_object_get(root, "fields"), k); }

/* Command to `pile`, then the frame of `type` it makes the server send to p. */
static int cmd_to(struct ykc_pile *p, const char *pile, const char *name, int gun, const char *args,
		  uint8_t type, struct evcs_ykc_msg *m, struct ykc_rx *rx, struct cmd_res *cr)
{
	if (send_cmd(pile, name, gun, args, cr) != EVCS_OK)
		return -1;
	return ykc_pile_wait(p, type, 5000, m, rx);
}

/* The pile answers (echoing seq); waits for the done callback and returns its parsed JSON
 * (NULL when it never came or is not JSON). */
static json_t *answer_and_wait(struct ykc_pile *p, const struct evcs_ykc_msg *a, const uint8_t seq[2],
			       struct cmd_res *cr)
{
	if (ykc_pile_send(p, a, seq) <= 0 || !wait_cmd(cr, 5000))
		return NULL;
	return json_loads(cr->json, 0, NULL);
}

/* Seconds between a CP56 time and the chargers' wall clock now (UTC+8, utc_offset_min). */
static long long cp56_skew_s(const struct evcs_ykc_cp56 *t)
{
	struct tm tm;
	unsigned ms;
	evcs_ykc_cp56_to_tm(t, &tm, &ms);
	long long d = (long long)timegm(&tm) - ((long long)time(NULL) + 480 * 60);
	return d < 0 ? -d : d;
}

static void pile_result_msg(struct evcs_ykc_msg *m, uint8_t type, const char *pile, int result)
{
	memset(m, 0, sizeof *m);
	m->type = type;
	memcpy(m->u.pile_result.pile, pile, 15);
	m->u.pile_result.result = (uint8_t)result;
}

static void test_v16_pile_login_and_daily_sync(void)
{
	struct evcs_ykc_msg m, r;
	CU_ASSERT_FATAL(ykc_pile_connect_from(&pc, "127.0.0.2", port16, PILE_C, EVCS_YKC_CRC_LE, pump, NULL) == 0);
	ykc_msg_login(&pc, &m, 3, 16);
	CU_ASSERT_FATAL(ykc_pile_send(&pc, &m, NULL) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pc, 0x02, 5000, &r, NULL) == 0);
	CU_ASSERT_EQUAL(r.u.pile_result.result, 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pc, 0x56, 3000, &r, NULL) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.time_sync.pile, PILE_C);
	CU_ASSERT(cp56_skew_s(&r.u.time_sync.time) <= 120);
	CU_ASSERT_EQUAL(n_c_online, 1);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM connectors WHERE pile_id = %lld", (long long)pile_c_id), 3);
	/* the periodic re-sync ("daily"; 3 s here) comes without being asked */
	pc.hb_ms = 800;
	CU_ASSERT_FATAL(ykc_pile_wait(&pc, 0x56, 8000, &r, NULL) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.time_sync.pile, PILE_C);
	CU_ASSERT(cp56_skew_s(&r.u.time_sync.time) <= 120);
	keepalive[2] = &pc;
}

static void test_cmd_set_tariff(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	struct cmd_res cr;
	char args[1024], slots[256] = "";
	for (int i = 0; i < 48; i++)
		snprintf(slots + strlen(slots), sizeof slots - strlen(slots), "%s%d", i ? "," : "", i % 4);
	snprintf(args, sizeof args,
		 "{\"tariff\":{\"model\":\"0007\",\"sharp_elec_rate\":111110,\"sharp_service_rate\":22220,"
		 "\"peak_elec_rate\":33330,\"peak_service_rate\":44440,\"flat_elec_rate\":55550,"
		 "\"flat_service_rate\":66660,\"valley_elec_rate\":77770,\"valley_service_rate\":88880,"
		 "\"slots\":[%s]}}",
		 slots);
	/* refused first: the pile answers 0x57 result 0 */
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "set_tariff", 0, args, 0x58, &r, &rx, &cr) == 0);
	const struct evcs_ykc_tariff *t = &r.u.tariff;
	CU_ASSERT_STRING_EQUAL(t->pile, PILE_C);
	CU_ASSERT_STRING_EQUAL(t->model, "0007");
	CU_ASSERT_EQUAL(t->sharp_elec_rate, 111110);
	CU_ASSERT_EQUAL(t->sharp_service_rate, 22220);
	CU_ASSERT_EQUAL(t->peak_elec_rate, 33330);
	CU_ASSERT_EQUAL(t->peak_service_rate, 44440);
	CU_ASSERT_EQUAL(t->flat_elec_rate, 55550);
	CU_ASSERT_EQUAL(t->flat_service_rate, 66660);
	CU_ASSERT_EQUAL(t->valley_elec_rate, 77770);
	CU_ASSERT_EQUAL(t->valley_service_rate, 88880);
	CU_ASSERT_EQUAL(t->loss_ratio, 0);
	int slots_ok = 1;
	for (int i = 0; i < 48; i++)
		slots_ok &= t->slots[i] == i % 4;
	CU_ASSERT(slots_ok);
	CU_ASSERT_FALSE(cr.done);
	pile_result_msg(&m, 0x57, PILE_C, 0);
	json_t *j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_EREFUSED);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0x57");
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "result")), 0);
	json_decref(j);
	/* again, without arguments (the model the pile now has on file), accepted */
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "set_tariff", 0, NULL, 0x58, &r, &rx, &cr) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.tariff.model, "0007");
	pile_result_msg(&m, 0x57, PILE_C, 1);
	j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0x57");
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "name")), "tariff_set_reply");
	CU_ASSERT_STRING_EQUAL(sv(jfield(j, "pile")), PILE_C);
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "result")), 1);
	json_decref(j);
	/* the pile holds 0007 now: its 0x05 is answered "same" */
	memset(&m, 0, sizeof m);
	m.type = 0x05;
	memcpy(m.u.model.pile, PILE_C, 15);
	memcpy(m.u.model.model, "0007", 5);
	CU_ASSERT_FATAL(ykc_pile_send(&pc, &m, NULL) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pc, 0x06, 3000, &r, NULL) == 0);
	CU_ASSERT_EQUAL(r.u.model.result, 0);
	/* and an idle report does not push the accepted model a second time: the heartbeat
	 * sent after it is answered with no 0x58 queued before its answer */
	keepalive[2] = NULL;
	pc.hb_ms = 0;
	ykc_pile_flush(&pc, 0);
	ykc_msg_realtime(&pc, &m, 1, "00000000000000000000000000000000", 2, 0, 0);
	CU_ASSERT_FATAL(ykc_pile_send(&pc, &m, NULL) > 0);
	ykc_msg_heartbeat(&pc, &m, 1);
	const uint8_t hseq[2] = {0x5A, 0x01};
	CU_ASSERT_FATAL(ykc_pile_send(&pc, &m, hseq) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pc, 0x04, 3000, NULL, &rx) == 0);
	CU_ASSERT(rx.seq[0] == 0x5A && rx.seq[1] == 0x01);
	CU_ASSERT(ykc_pile_wait(&pc, 0x58, 0, NULL, NULL) < 0);
	pc.hb_ms = 800;
	keepalive[2] = &pc;
}

static void test_cmd_reboot(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	struct cmd_res cr;
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "reboot", 0, "{\"control\":2}", 0x92, &r, &rx, &cr) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.reboot.pile, PILE_C);
	CU_ASSERT_EQUAL(r.u.reboot.control, 2);
	pile_result_msg(&m, 0x91, PILE_C, 1);
	json_t *j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0x91");
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "name")), "reboot_reply");
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "result")), 1);
	json_decref(j);
	/* default control 1 (now); the pile refuses */
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "reboot", 0, NULL, 0x92, &r, &rx, &cr) == 0);
	CU_ASSERT_EQUAL(r.u.reboot.control, 1);
	pile_result_msg(&m, 0x91, PILE_C, 0);
	j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_EREFUSED);
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "result")), 0);
	json_decref(j);
}

static void test_cmd_time_sync(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	struct cmd_res cr;
	ykc_pile_flush(&pc, 0x56);
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "time_sync", 0, NULL, 0x56, &r, &rx, &cr) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.time_sync.pile, PILE_C);
	CU_ASSERT(cp56_skew_s(&r.u.time_sync.time) <= 120);
	memset(&m, 0, sizeof m);
	m.type = 0x55;
	memcpy(m.u.time_sync.pile, PILE_C, 15);
	m.u.time_sync.time = r.u.time_sync.time;
	char want[40];
	evcs_ykc_cp56_format(&r.u.time_sync.time, want, sizeof want);
	json_t *j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0x55");
	CU_ASSERT_STRING_EQUAL(sv(jfield(j, "pile")), PILE_C);
	CU_ASSERT_STRING_EQUAL(sv(jfield(j, "time")), want);
	json_decref(j);
}

static void test_cmd_read_realtime(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	struct cmd_res cr;
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "read_realtime", 3, NULL, 0x12, &r, &rx, &cr) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.pile_gun.pile, PILE_C);
	CU_ASSERT_STRING_EQUAL(r.u.pile_gun.gun, "03");
	ykc_msg_realtime(&pc, &m, 3, "00000000000000000000000000000000", 2, 0, 0);
	m.u.realtime.gun_temp_c = 41;
	json_t *j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0x13");
	CU_ASSERT_STRING_EQUAL(sv(jfield(j, "gun")), "03");
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "status")), 2);
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "gun_temp_c")), 41);
	json_decref(j);
	CU_ASSERT_EQUAL(wait_count(2, 3000, "SELECT status FROM connectors WHERE pile_id = %lld AND gun_no = 3",
				   (long long)pile_c_id), 2);
}

static void test_cmd_work_params(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	struct cmd_res cr;
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "work_params", 0, "{\"disabled\":true,\"max_power_pct\":60}", 0x52, &r,
			       &rx, &cr) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.work_params.pile, PILE_C);
	CU_ASSERT_EQUAL(r.u.work_params.disabled, 1);
	CU_ASSERT_EQUAL(r.u.work_params.max_power_pct, 60);
	pile_result_msg(&m, 0x51, PILE_C, 1);
	json_t *j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0x51");
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "result")), 1);
	json_decref(j);
	/* out of range: refused before anything is sent */
	CU_ASSERT_FATAL(send_cmd(PILE_C, "work_params", 0, "{\"max_power_pct\":150}", &cr) == EVCS_OK);
	CU_ASSERT_FATAL(wait_cmd(&cr, 3000));
	CU_ASSERT_EQUAL(cr.status, EVCS_EINVAL);
}

static void test_cmd_upgrade(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	struct cmd_res cr;
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "upgrade", 0,
			       "{\"server\":\"10.0.0.9\",\"port\":2121,\"user\":\"ftpuser\",\"password\":\"s3cret\","
			       "\"path\":\"/fw/ykc-2.0.bin\",\"pile_model\":1,\"power_kw\":120,\"control\":2,"
			       "\"timeout_min\":15}",
			       0x94, &r, &rx, &cr) == 0);
	const struct evcs_ykc_upgrade *u = &r.u.upgrade;
	CU_ASSERT_STRING_EQUAL(u->pile, PILE_C);
	CU_ASSERT_STRING_EQUAL(u->server, "10.0.0.9");
	CU_ASSERT_EQUAL(u->port, 2121);
	CU_ASSERT_STRING_EQUAL(u->user, "ftpuser");
	CU_ASSERT_STRING_EQUAL(u->password, "s3cret");
	CU_ASSERT_STRING_EQUAL(u->path, "/fw/ykc-2.0.bin");
	CU_ASSERT_EQUAL(u->pile_model, 1);
	CU_ASSERT_EQUAL(u->power_kw, 120);
	CU_ASSERT_EQUAL(u->control, 2);
	CU_ASSERT_EQUAL(u->timeout_min, 15);
	memset(&m, 0, sizeof m);
	m.type = 0x93;
	memcpy(m.u.upgrade_reply.pile, PILE_C, 15);
	m.u.upgrade_reply.status = 0; /* success */
	json_t *j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0x93");
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "status")), 0);
	json_decref(j);
	/* status 2: the image does not match the pile model -> a failed answer */
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "upgrade", 0, "{\"server\":\"10.0.0.9\",\"path\":\"/x.bin\"}", 0x94, &r,
			       &rx, &cr) == 0);
	CU_ASSERT_EQUAL(r.u.upgrade.control, 1);
	CU_ASSERT_EQUAL(r.u.upgrade.timeout_min, 10);
	m.u.upgrade_reply.status = 2;
	j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_EREFUSED);
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "status")), 2);
	json_decref(j);
}

static void test_cmd_card_lists(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	struct cmd_res cr;
	static const uint8_t c54[8] = {0, 0, 0, 0, 0xD1, 0x4B, 0x0A, 0x54};
	static const uint8_t c55[8] = {0, 0, 0, 0, 0xD1, 0x4B, 0x0A, 0x55};
	/* 0x44 -> 0x43 */
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "card_sync", 0,
			       "{\"cards\":[[\"0000001000000573\",\"00000000D14B0A54\"],"
			       "[\"0000001000000574\",\"00000000d14b0a55\"]]}",
			       0x44, &r, &rx, &cr) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.card_sync.pile, PILE_C);
	CU_ASSERT_EQUAL(r.u.card_sync.count, 2);
	CU_ASSERT_EQUAL(r.u.card_sync.n, 2);
	CU_ASSERT_STRING_EQUAL(r.u.card_sync.cards[0].logical_card, "0000001000000573");
	CU_ASSERT(memcmp(r.u.card_sync.cards[0].physical_card, c54, 8) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.card_sync.cards[1].logical_card, "0000001000000574");
	CU_ASSERT(memcmp(r.u.card_sync.cards[1].physical_card, c55, 8) == 0);
	memset(&m, 0, sizeof m);
	m.type = 0x43;
	memcpy(m.u.card_sync_reply.pile, PILE_C, 15);
	m.u.card_sync_reply.result = 1; /* saved */
	json_t *j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0x43");
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "result")), 1);
	json_decref(j);
	/* "failed, no storage space" is a failed answer */
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "card_sync", 0, "{\"cards\":[[\"0000001000000573\",\"00000000D14B0A54\"]]}",
			       0x44, &r, &rx, &cr) == 0);
	CU_ASSERT_EQUAL(r.u.card_sync.n, 1);
	m.u.card_sync_reply.result = 0;
	m.u.card_sync_reply.fail_reason = 2;
	j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_EREFUSED);
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "fail_reason")), 2);
	json_decref(j);
	/* 0x46 -> 0x45 */
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "card_clear", 0, "{\"cards\":[\"00000000D14B0A54\"]}", 0x46, &r, &rx,
			       &cr) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.card_list.pile, PILE_C);
	CU_ASSERT_EQUAL(r.u.card_list.count, 1);
	CU_ASSERT(memcmp(r.u.card_list.cards[0], c54, 8) == 0);
	memset(&m, 0, sizeof m);
	m.type = 0x45;
	memcpy(m.u.card_clear_reply.pile, PILE_C, 15);
	m.u.card_clear_reply.n = 1;
	memcpy(m.u.card_clear_reply.cards[0].physical_card, c54, 8);
	m.u.card_clear_reply.cards[0].cleared = 1;
	j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0x45");
	json_t *cards = jfield(j, "cards");
	CU_ASSERT_EQUAL(json_array_size(cards), 1);
	CU_ASSERT(strcasecmp(sv(json_array_get(json_array_get(cards, 0), 0)), "00000000D14B0A54") == 0);
	CU_ASSERT_EQUAL(json_integer_value(json_array_get(json_array_get(cards, 0), 1)), 1);
	json_decref(j);
	/* 0x48 -> 0x47 */
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "card_query", 0, "{\"cards\":[\"00000000D14B0A54\",\"00000000D14B0A55\"]}",
			       0x48, &r, &rx, &cr) == 0);
	CU_ASSERT_EQUAL(r.u.card_list.count, 2);
	CU_ASSERT(memcmp(r.u.card_list.cards[0], c54, 8) == 0);
	CU_ASSERT(memcmp(r.u.card_list.cards[1], c55, 8) == 0);
	memset(&m, 0, sizeof m);
	m.type = 0x47;
	memcpy(m.u.card_query_reply.pile, PILE_C, 15);
	m.u.card_query_reply.n = 2;
	memcpy(m.u.card_query_reply.cards[0].physical_card, c54, 8);
	m.u.card_query_reply.cards[0].exists = 0;
	memcpy(m.u.card_query_reply.cards[1].physical_card, c55, 8);
	m.u.card_query_reply.cards[1].exists = 1;
	j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0x47");
	cards = jfield(j, "cards");
	CU_ASSERT_EQUAL(json_array_size(cards), 2);
	CU_ASSERT_EQUAL(json_integer_value(json_array_get(json_array_get(cards, 0), 1)), 0);
	CU_ASSERT(strcasecmp(sv(json_array_get(json_array_get(cards, 1), 0)), "00000000D14B0A55") == 0);
	CU_ASSERT_EQUAL(json_integer_value(json_array_get(json_array_get(cards, 1), 1)), 1);
	json_decref(j);
}

static void test_cmd_ground_lock(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	struct cmd_res cr;
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "ground_lock", 2, "{\"action\":\"lower\"}", 0x62, &r, &rx, &cr) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.ground_lock_command.pile, PILE_C);
	CU_ASSERT_STRING_EQUAL(r.u.ground_lock_command.gun, "02");
	CU_ASSERT_EQUAL(r.u.ground_lock_command.action, 0xFF);
	memset(&m, 0, sizeof m);
	m.type = 0x63;
	memcpy(m.u.ground_lock_reply.pile, PILE_C, 15);
	memcpy(m.u.ground_lock_reply.gun, "02", 3);
	m.u.ground_lock_reply.result = 1;
	json_t *j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0x63");
	CU_ASSERT_STRING_EQUAL(sv(jfield(j, "gun")), "02");
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "result")), 1);
	json_decref(j);
	/* raise (gun from the args), the lock fails */
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "ground_lock", 0, "{\"gun\":1,\"action\":\"raise\"}", 0x62, &r, &rx, &cr) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.ground_lock_command.gun, "01");
	CU_ASSERT_EQUAL(r.u.ground_lock_command.action, 0x55);
	memcpy(m.u.ground_lock_reply.gun, "01", 3);
	m.u.ground_lock_reply.result = 0;
	j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_EREFUSED);
	json_decref(j);
}

static void test_cmd_qr_prefix(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	struct cmd_res cr;
	const char *prefix = "https://q.example.com/c?no=";
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "qr_prefix", 0, "{\"qr_format\":1,\"prefix\":\"https://q.example.com/c?no=\"}",
			       0xF0, &r, &rx, &cr) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.qr_prefix.pile, PILE_C);
	CU_ASSERT_EQUAL(r.u.qr_prefix.qr_format, 1);
	CU_ASSERT_EQUAL(r.u.qr_prefix.prefix_len, strlen(prefix));
	CU_ASSERT_STRING_EQUAL(r.u.qr_prefix.prefix, prefix);
	pile_result_msg(&m, 0xF1, PILE_C, 1);
	json_t *j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0xF1");
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "name")), "qr_prefix_reply");
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "result")), 1);
	json_decref(j);
}

static void test_cmd_balance_update(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	struct cmd_res cr;
	static const uint8_t c54[8] = {0, 0, 0, 0, 0xD1, 0x4B, 0x0A, 0x54};
	/* 123.45 yuan = 12345000 core units = 12345 on the wire (0.01 yuan) */
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "balance_update", 1,
			       "{\"balance\":12345000,\"physical_card\":\"00000000D14B0A54\"}", 0x42, &r, &rx, &cr) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.balance_update.pile, PILE_C);
	CU_ASSERT_STRING_EQUAL(r.u.balance_update.gun, "01");
	CU_ASSERT_EQUAL(r.u.balance_update.balance_yuan, 12345);
	CU_ASSERT(memcmp(r.u.balance_update.physical_card, c54, 8) == 0);
	memset(&m, 0, sizeof m);
	m.type = 0x41;
	memcpy(m.u.balance_reply.pile, PILE_C, 15);
	memcpy(m.u.balance_reply.physical_card, c54, 8);
	m.u.balance_reply.result = 0; /* updated */
	json_t *j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_OK);
	CU_ASSERT_STRING_EQUAL(sv(json_object_get(j, "frame")), "0x41");
	CU_ASSERT(strcasecmp(sv(jfield(j, "physical_card")), "00000000D14B0A54") == 0);
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "result")), 0);
	json_decref(j);
	/* "wrong card" is a failed answer */
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "balance_update", 2, "{\"balance\":1000}", 0x42, &r, &rx, &cr) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.balance_update.gun, "02");
	CU_ASSERT_EQUAL(r.u.balance_update.balance_yuan, 1);
	m.u.balance_reply.result = 2;
	j = answer_and_wait(&pc, &m, rx.seq, &cr);
	CU_ASSERT_EQUAL(cr.status, EVCS_EREFUSED);
	CU_ASSERT_EQUAL(json_integer_value(jfield(j, "result")), 2);
	json_decref(j);
}

static void test_cmd_unanswered_times_out(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	struct cmd_res cr;
	/* command_timeout_ms = 2000; the bus's own timeout (20 s) is not what ends it */
	CU_ASSERT_FATAL(cmd_to(&pc, PILE_C, "reboot", 0, NULL, 0x92, &r, &rx, &cr) == 0);
	CU_ASSERT_FATAL(wait_cmd(&cr, 10000));
	CU_ASSERT_EQUAL(cr.status, EVCS_ETIMEDOUT);
	json_t *j = json_loads(cr.json, 0, NULL);
	CU_ASSERT_PTR_NOT_NULL(json_object_get(j, "error"));
	json_decref(j);
	/* a late answer is ignored and the link stays up */
	pile_result_msg(&m, 0x91, PILE_C, 1);
	CU_ASSERT_FATAL(ykc_pile_send(&pc, &m, rx.seq) > 0);
	keepalive[2] = NULL;
	pc.hb_ms = 0;
	ykc_msg_heartbeat(&pc, &m, 3);
	CU_ASSERT_FATAL(ykc_pile_send(&pc, &m, NULL) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pc, 0x04, 3000, &r, NULL) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.heartbeat_reply.gun, "03");
	pc.hb_ms = 800;
	keepalive[2] = &pc;
}

static void test_cmd_v16_only_on_v15(void)
{
	struct cmd_res cr;
	CU_ASSERT_FATAL(send_cmd(PILE_A, "qr_prefix", 0, "{\"qr_format\":0,\"prefix\":\"x\"}", &cr) == EVCS_OK);
	CU_ASSERT_FATAL(wait_cmd(&cr, 3000));
	CU_ASSERT_EQUAL(cr.status, EVCS_ENOTSUP);
	CU_ASSERT_PTR_NOT_NULL(strstr(cr.json, "not_supported"));
	CU_ASSERT_FATAL(send_cmd(PILE_A, "parallel_start", 1,
				 "{\"balance\":1000000,\"logical_card\":\"0000001000000573\"}", &cr) == EVCS_OK);
	CU_ASSERT_FATAL(wait_cmd(&cr, 3000));
	CU_ASSERT_EQUAL(cr.status, EVCS_ENOTSUP);
	/* nothing went to the pile, and no session was opened for it */
	CU_ASSERT(ykc_pile_wait(&pa2, 0xF0, 300, NULL, NULL) < 0);
	CU_ASSERT(ykc_pile_wait(&pa2, 0xA4, 0, NULL, NULL) < 0);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM charging_sessions WHERE pile_id = %lld AND state = 'starting' "
			     "AND gun_no = 1", (long long)pile_a_id), 0);
}

/* ---- parallel charging (1.6 only) --------------------------------------------------------- */

#define PARALLEL_NO "240501120000"
static char par_trade[4][33];

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
static int send_then_barrier(struct ykc_pile *p, int slot, const struct evcs_ykc_msg *m, uint8_t enc,
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

static void test_encrypted_frame_dropped(void)
{
	const char *d13 = "evcs_ykc_frames_in_total{type=\"0x13\",outcome=\"dropped\"}";
	const char *d03 = "evcs_ykc_frames_in_total{type=\"0x03\",outcome=\"dropped\"}";
	long long b13 = metric(d13), b03 = metric(d03);
	int gs = n_c_gun_status;
	struct evcs_ykc_msg m;
	/* gun 1 is idle (2); an encrypted "fault" report must change nothing */
	ykc_msg_realtime(&pc, &m, 1, "00000000000000000000000000000000", 1, 0, 0);
	m.u.realtime.hw_fault = 0x0400;
	const uint8_t m1[2] = {0xE1, 0x01}, h1[2] = {0xE1, 0x02};
	CU_ASSERT_EQUAL(send_then_barrier(&pc, 2, &m, 0x01, m1, h1), 0);
	/* an encrypted heartbeat gets no answer (the same frame in clear does, as the barrier) */
	ykc_msg_heartbeat(&pc, &m, 2);
	const uint8_t m2[2] = {0xE2, 0x01}, h2[2] = {0xE2, 0x02};
	CU_ASSERT_EQUAL(send_then_barrier(&pc, 2, &m, 0x01, m2, h2), 0);
	CU_ASSERT_EQUAL(metric(d13), b13 + 1);
	CU_ASSERT_EQUAL(metric(d03), b03 + 1);
	CU_ASSERT_EQUAL(n_c_gun_status, gs);
	CU_ASSERT(ykc_pile_is_open(&pc));
	CU_ASSERT_STRING_EQUAL(evcs_bus_pile_owner(core.bus, PILE_C, NULL), "ykc");
	CU_ASSERT_EQUAL(qint("SELECT status FROM connectors WHERE pile_id = %lld AND gun_no = 1", (long long)pile_c_id),
			2);
}

static void abort_msg(struct evcs_ykc_msg *m, uint8_t type, const char *trade, const char *gun, int reason,
		      int fault, int error)
{
	memset(m, 0, sizeof *m);
	m->type = type;
	memcpy(m->u.abort_.trade_no, trade, 33);
	memcpy(m->u.abort_.pile, PILE_C, 15);
	memcpy(m->u.abort_.gun, gun, 3);
	m->u.abort_.reason = (uint8_t)reason;
	m->u.abort_.fault = (uint16_t)fault;
	m->u.abort_.error = (uint8_t)error;
}

static void test_fault_frames_stored(void)
{
	struct evcs_ykc_msg m;
	const char *zeros = "00000000000000000000000000000000";
	int f0 = n_c_fault;
	/* 0x61 ground-lock status: stored, not a fault */
	memset(&m, 0, sizeof m);
	m.type = 0x61;
	memcpy(m.u.ground_lock_status.pile, PILE_C, 15);
	memcpy(m.u.ground_lock_status.gun, "02", 3);
	m.u.ground_lock_status.lock_state = 0x55;
	m.u.ground_lock_status.space_state = 0xFF;
	m.u.ground_lock_status.battery_pct = 80;
	CU_ASSERT_FATAL(ykc_pile_send(&pc, &m, NULL) > 0);
	/* 0x21 charger abort during the parallel order on gun 2 */
	abort_msg(&m, 0x21, par_trade[2], "02", 1, 0x0102, 3);
	CU_ASSERT_FATAL(ykc_pile_send(&pc, &m, NULL) > 0);
	CU_ASSERT_EQUAL(wait_int(&n_c_fault, f0 + 1, 3000), f0 + 1);
	CU_ASSERT_STRING_EQUAL(c_fault_frame, "0x21");
	CU_ASSERT_EQUAL(c_fault_code, 0x0102);
	CU_ASSERT_EQUAL(c_fault_gun, 2);
	/* 0x1D BMS abort outside an order (trade number zeros) */
	abort_msg(&m, 0x1D, zeros, "01", 2, 0x0201, 1);
	CU_ASSERT_FATAL(ykc_pile_send(&pc, &m, NULL) > 0);
	CU_ASSERT_EQUAL(wait_int(&n_c_fault, f0 + 2, 3000), f0 + 2);
	CU_ASSERT_STRING_EQUAL(c_fault_frame, "0x1D");
	CU_ASSERT_EQUAL(c_fault_code, 0x0201);
	CU_ASSERT_EQUAL(c_fault_gun, 1);
	/* 0x1B BMS error on gun 1's order */
	memset(&m, 0, sizeof m);
	m.type = 0x1B;
	memcpy(m.u.bms_error.trade_no, par_trade[1], 33);
	memcpy(m.u.bms_error.pile, PILE_C, 15);
	memcpy(m.u.bms_error.gun, "01", 3);
	m.u.bms_error.error_bits[0] = 0x05;
	CU_ASSERT_FATAL(ykc_pile_send(&pc, &m, NULL) > 0);
	CU_ASSERT_EQUAL(wait_int(&n_c_fault, f0 + 3, 3000), f0 + 3);
	CU_ASSERT_STRING_EQUAL(c_fault_frame, "0x1B");
	/* exactly three faults: the 0x61 before them published none */
	CU_ASSERT_EQUAL(n_c_fault, f0 + 3);
	/* every frame is in audit_log (batched: within about a second) */
	CU_ASSERT_EQUAL(wait_count(1, 5000,
				   "SELECT COUNT(*) FROM audit_log WHERE action = 'pile_event.ground_lock_status' "
				   "AND object_type = 'pile' AND object_id = '" PILE_C "' AND actor = 'plugin:ykc'"),
			1);
	CU_ASSERT_EQUAL(qint("SELECT JSON_VALUE(details, '$.fields.lock_state') FROM audit_log WHERE "
			     "action = 'pile_event.ground_lock_status' AND object_id = '" PILE_C "'"), 0x55);
	CU_ASSERT_EQUAL(qint("SELECT JSON_VALUE(details, '$.fields.battery_pct') FROM audit_log WHERE "
			     "action = 'pile_event.ground_lock_status' AND object_id = '" PILE_C "'"), 80);
	CU_ASSERT_EQUAL(wait_count(1, 5000,
				   "SELECT COUNT(*) FROM audit_log WHERE action = 'pile_event.charger_abort' "
				   "AND object_type = 'session' AND object_id = '%s'", par_trade[2]),
			1);
	CU_ASSERT_EQUAL(qint("SELECT JSON_VALUE(details, '$.fields.fault') FROM audit_log WHERE "
			     "action = 'pile_event.charger_abort' AND object_id = '%s'", par_trade[2]), 0x0102);
	CU_ASSERT_EQUAL(qint("SELECT JSON_VALUE(details, '$.gun') FROM audit_log WHERE "
			     "action = 'pile_event.charger_abort' AND object_id = '%s'", par_trade[2]), 2);
	CU_ASSERT_EQUAL(wait_count(1, 5000,
				   "SELECT COUNT(*) FROM audit_log WHERE action = 'pile_event.bms_abort' "
				   "AND object_type = 'pile' AND object_id = '" PILE_C "'"),
			1);
	CU_ASSERT_EQUAL(wait_count(1, 5000,
				   "SELECT COUNT(*) FROM audit_log WHERE action = 'pile_event.bms_error' "
				   "AND object_type = 'session' AND object_id = '%s'", par_trade[1]),
			1);
	char frame[16];
	qstr(frame, sizeof frame, "SELECT JSON_VALUE(details, '$.frame') FROM audit_log WHERE "
	     "action = 'pile_event.bms_error' AND object_id = '%s'", par_trade[1]);
	CU_ASSERT_STRING_EQUAL(frame, "0x1B");
}

static void test_half_open_pile_times_out(void)
{
	/* pile C sends half a frame and goes silent (a dead mobile link): offline_after_ms (3 s)
	 * closes the server side, the pile is reported offline and its claim released */
	keepalive[2] = NULL;
	pc.hb_ms = 0;
	struct evcs_ykc_msg m;
	uint8_t fr[EVCS_YKC_MAX_FRAME];
	ykc_msg_heartbeat(&pc, &m, 1);
	int n = ykc_pile_build(&pc, &m, NULL, fr, sizeof fr);
	CU_ASSERT_FATAL(n > 8);
	CU_ASSERT_FATAL(ykc_pile_send_raw(&pc, fr, 6) == 0);
	CU_ASSERT(ykc_pile_wait_closed(&pc, 10000));
	ykc_pile_close(&pc);
	CU_ASSERT_EQUAL(wait_int(&n_c_offline, 1, 2000), 1);
	CU_ASSERT_PTR_NULL(evcs_bus_pile_owner(core.bus, PILE_C, NULL));
	CU_ASSERT_EQUAL(wait_count(0, 3000, "SELECT online FROM pile_presence WHERE pile_id = %lld",
				   (long long)pile_c_id), 0);
}

/* ---- connection limits ------------------------------------------------------------------------ */

static void test_per_address_cap(void)
{
	/* max_conns_per_addr = 4: the fifth concurrent connection from 127.0.0.3 is closed at once */
	struct ykc_pile f[5], other;
	struct evcs_ykc_msg m, r;
	long long refused = metric("evcs_connections_refused_total");
	for (int i = 0; i < 4; i++)
		CU_ASSERT_FATAL(ykc_pile_connect_from(&f[i], "127.0.0.3", port15, PILE_FLOOD, EVCS_YKC_CRC_LE, pump,
						      NULL) == 0);
	CU_ASSERT_FATAL(ykc_pile_connect_from(&f[4], "127.0.0.3", port15, PILE_FLOOD, EVCS_YKC_CRC_LE, pump,
					      NULL) == 0);
	CU_ASSERT(ykc_pile_wait_closed(&f[4], 1000));
	/* the four accepted before it are still open: it was not the login timeout that closed it */
	for (int i = 0; i < 4; i++)
		CU_ASSERT(ykc_pile_is_open(&f[i]));
	CU_ASSERT_EQUAL(metric("evcs_connections_refused_total"), refused + 1);
	ykc_pile_close(&f[4]);
	/* another address is not affected */
	CU_ASSERT_FATAL(ykc_pile_connect_from(&other, "127.0.0.7", port15, PILE_FLOOD, EVCS_YKC_CRC_LE, pump,
					      NULL) == 0);
	ykc_msg_login(&other, &m, 1, 15);
	CU_ASSERT_FATAL(ykc_pile_send(&other, &m, NULL) > 0);
	CU_ASSERT(ykc_pile_wait(&other, 0x02, 3000, &r, NULL) == 0);
	CU_ASSERT_EQUAL(r.u.pile_result.result, 1);
	ykc_pile_close(&other);
	/* once the four are gone (login timeout), the address may connect again */
	for (int i = 0; i < 4; i++) {
		CU_ASSERT(ykc_pile_wait_closed(&f[i], 5000));
		ykc_pile_close(&f[i]);
	}
	CU_ASSERT_FATAL(ykc_pile_connect_from(&f[0], "127.0.0.3", port15, PILE_FLOOD, EVCS_YKC_CRC_LE, pump,
					      NULL) == 0);
	ykc_msg_login(&f[0], &m, 1, 15);
	CU_ASSERT_FATAL(ykc_pile_send(&f[0], &m, NULL) > 0);
	CU_ASSERT(ykc_pile_wait(&f[0], 0x02, 3000, &r, NULL) == 0);
	CU_ASSERT_EQUAL(r.u.pile_result.result, 1);
	ykc_pile_close(&f[0]);
	CU_ASSERT_EQUAL(metric("evcs_connections_refused_total"), refused + 1);
}

static void test_failed_login_limit(void)
{
	/* max_failed_logins_per_min = 3, counted per calendar minute: start early in a minute so
	 * the three refusals and the blocked connection fall into the same one */
	while (59 - time(NULL) % 60 < 15)
		run_ms(200);
	struct ykc_pile u;
	struct evcs_ykc_msg m, r;
	long long attempts = qint("SELECT attempts FROM unclaimed_piles WHERE serial = '" PILE_FLOOD "'");
	if (attempts < 0)
		attempts = 0;
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_FATAL(ykc_pile_connect_from(&u, "127.0.0.4", port15, PILE_FLOOD, EVCS_YKC_CRC_LE, pump,
						      NULL) == 0);
		ykc_msg_login(&u, &m, 1, 15);
		CU_ASSERT_FATAL(ykc_pile_send(&u, &m, NULL) > 0);
		CU_ASSERT_FATAL(ykc_pile_wait(&u, 0x02, 3000, &r, NULL) == 0);
		CU_ASSERT_EQUAL(r.u.pile_result.result, 1);
		CU_ASSERT(ykc_pile_wait_closed(&u, 3000));
		ykc_pile_close(&u);
	}
	CU_ASSERT_EQUAL(wait_count(attempts + 3, 3000,
				   "SELECT attempts FROM unclaimed_piles WHERE serial = '" PILE_FLOOD "'"),
			attempts + 3);
	/* the fourth connection is refused before its login is read: no answer, no lookup */
	CU_ASSERT_FATAL(ykc_pile_connect_from(&u, "127.0.0.4", port15, PILE_FLOOD, EVCS_YKC_CRC_LE, pump, NULL) == 0);
	ykc_msg_login(&u, &m, 1, 15);
	(void)ykc_pile_send(&u, &m, NULL); /* may already fail: the server closed it */
	CU_ASSERT(ykc_pile_wait_closed(&u, 3000));
	CU_ASSERT(ykc_pile_wait(&u, 0x02, 0, NULL, NULL) < 0);
	ykc_pile_close(&u);
	/* also on the other listener */
	CU_ASSERT_FATAL(ykc_pile_connect_from(&u, "127.0.0.4", port16, PILE_FLOOD, EVCS_YKC_CRC_LE, pump, NULL) == 0);
	CU_ASSERT(ykc_pile_wait_closed(&u, 3000));
	ykc_pile_close(&u);
	run_ms(200);
	CU_ASSERT_EQUAL(qint("SELECT attempts FROM unclaimed_piles WHERE serial = '" PILE_FLOOD "'"), attempts + 3);
	/* another address still gets its (refused) login answered */
	CU_ASSERT_FATAL(ykc_pile_connect_from(&u, "127.0.0.5", port15, PILE_FLOOD, EVCS_YKC_CRC_LE, pump, NULL) == 0);
	ykc_msg_login(&u, &m, 1, 15);
	CU_ASSERT_FATAL(ykc_pile_send(&u, &m, NULL) > 0);
	CU_ASSERT(ykc_pile_wait(&u, 0x02, 3000, &r, NULL) == 0);
	CU_ASSERT_EQUAL(r.u.pile_result.result, 1);
	ykc_pile_close(&u);
}

static void test_offline_after_silence(void)
{
	/* pile B stops talking: offline after offline_after_ms (3 s) */
	keepalive[1] = NULL;
	pb.hb_ms = 0;
	long long t0 = ykc_pile_now_ms();
	CU_ASSERT(ykc_pile_wait_closed(&pb, 8000));
	CU_ASSERT(ykc_pile_now_ms() - t0 >= 2000);
	ykc_pile_close(&pb);
	CU_ASSERT_EQUAL(n_offline_ev, 1);
	CU_ASSERT_PTR_NULL(evcs_bus_pile_owner(core.bus, PILE_B, NULL));
	CU_ASSERT_EQUAL(wait_count(0, 3000, "SELECT online FROM pile_presence WHERE pile_id = %lld",
				   (long long)pile_b_id), 0);
	/* and a command to it fails "offline" */
	struct cmd_res cr;
	CU_ASSERT_FATAL(send_cmd(PILE_B, "reboot", 0, NULL, &cr) == EVCS_OK);
	CU_ASSERT_FATAL(wait_cmd(&cr, 3000));
	CU_ASSERT_EQUAL(cr.status, EVCS_EOFFLINE);
}

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
	EVCS_ADD(s, test_encrypted_frame_dropped);
	EVCS_ADD(s, test_fault_frames_stored);
	EVCS_ADD(s, test_half_open_pile_times_out);
	EVCS_ADD(s, test_per_address_cap);
	EVCS_ADD(s, test_failed_login_limit);
	EVCS_ADD(s, test_offline_after_silence);
	EVCS_ADD(s, test_record_while_database_down);
}

EVCS_TEST_MAIN(register_tests)
