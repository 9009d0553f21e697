/*
 * test_ykc_e2e.c: the ykc plugin end to end: the real core (evcs_core_start) loading ykc.so,
 * real TCP from scripted piles (tests/ykc_pile.c), a real private MariaDB.
 *
 * Needs the EVCS_DB_* environment of tests/mariadb.sh (tests/with-mariadb.sh sets it) plus
 * EVCS_MARIADB_SH and EVCS_DB_DIR for the database-down test; without them the suite FAILS with
 * a message (never skipped). The database named by EVCS_DB_NAME is dropped and re-created.
 * Single-threaded: the piles use blocking sockets and run the core's loop while they wait.
 * The tests form one scenario and run in order (they share the piles and the database).
 */
#include "core.h"
#include "db.h"
#include "store.h"
#include "testutil.h"
#include "ykc_pile.h"

#include <arpa/inet.h>
#include <event2/event.h>
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
#ifndef EVCS_YKC_PLUGIN_DIR
#define EVCS_YKC_PLUGIN_DIR "plugins/ykc/.libs"
#endif


#define PILE_A "32010600019236"
#define PILE_B "32010600019237"
#define PILE_UNKNOWN "99999999999999"

static evcs_core_t core;
static int core_up;
static evcs_db_config_t cfg;
static MYSQL *my;
static char conf_path[256];
static int port15, port16;
static int64_t tenant_id, pile_a_id, pile_b_id, tariff_id;
static struct ykc_pile pa, pb, pa2;
static struct ykc_pile *keepalive[4];
static int n_online_ev, n_offline_ev;
static char trade1[33];
static int64_t session1;

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
	int from = 0, to = 0;
	if (evcs_db_migrate(&cfg, EVCS_TOP_SRCDIR "/schema", &from, &to, err, sizeof err) != 0) {
		fprintf(stderr, "migrate: %s\n", err);
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
	sql("INSERT INTO drivers (tenant_id, phone, name) VALUES (%lld, '13800000000', 'D')", (long long)tenant_id);
	long long drv = qint("SELECT id FROM drivers WHERE tenant_id = %lld", (long long)tenant_id);
	sql("INSERT INTO wallets (tenant_id, driver_id) VALUES (%lld, %lld)", (long long)tenant_id, drv);
	long long wal = qint("SELECT id FROM wallets WHERE driver_id = %lld", drv);
	sql("INSERT INTO wallet_ledger (tenant_id, wallet_id, amount, kind) VALUES (%lld, %lld, 10000000, 'topup')",
	    (long long)tenant_id, wal);
	sql("INSERT INTO rfid_cards (tenant_id, driver_id, logical_no, physical_no) VALUES "
	    "(%lld, %lld, '0000001000000573', '00000000D14B0A54')",
	    (long long)tenant_id, drv);
	if (tenant_id <= 0 || pile_a_id <= 0 || pile_b_id <= 0 || tariff_id <= 0 || wal <= 0)
		return -1;

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
		"login_timeout_ms = 1500\nmax_failed_logins_per_min = 1000\nstart_timeout_ms = 5000\n"
		"command_timeout_ms = 5000\nseen_interval_ms = 500\n",
		env("EVCS_TEST_LOG") ? env("EVCS_TEST_LOG") : "warning", EVCS_YKC_PLUGIN_DIR,
		EVCS_TOP_SRCDIR, EVCS_TOP_SRCDIR, sock ? "socket = " : "host = ", sock ? sock : cfg.host,
		"", cfg.port ? cfg.port : 3306, user, cfg.password, name, port15, port16);
	fclose(f);
	if (evcs_core_start(&core, conf_path, err, sizeof err) != 0) {
		fprintf(stderr, "core start: %s\n", err);
		return -1;
	}
	core_up = 1;
	evcs_bus_subscribe(core.bus, EVCS_EV_PILE_ONLINE, 0, on_bus, NULL, "test", NULL);
	evcs_bus_subscribe(core.bus, EVCS_EV_PILE_OFFLINE, 0, on_bus, NULL, "test", NULL);
	return 0;
}

static int suite_clean(void)
{
	for (int i = 0; i < 4; i++)
		keepalive[i] = NULL;
	ykc_pile_close(&pa);
	ykc_pile_close(&pb);
	ykc_pile_close(&pa2);
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

static void test_record_stored_and_resend(void)
{
	struct evcs_ykc_msg m, r;
	struct ykc_rx rx;
	record_msg(&m, trade1, 1, 52500);
	const uint8_t seq[2] = {0x3B, 0x01};
	CU_ASSERT_FATAL(ykc_pile_send(&pa, &m, seq) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pa, 0x40, 8000, &r, &rx) == 0);
	CU_ASSERT_STRING_EQUAL(r.u.record_ack.trade_no, trade1);
	CU_ASSERT_EQUAL(r.u.record_ack.result, 0);
	CU_ASSERT(rx.seq[0] == 0x3B && rx.seq[1] == 0x01);
	/* the 0x40 came after COMMIT: the rows are there now, without waiting */
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM transaction_records WHERE trade_no = '%s'", trade1), 1);
	char state[32];
	qstr(state, sizeof state, "SELECT state FROM charging_sessions WHERE id = %lld", (long long)session1);
	CU_ASSERT_STRING_EQUAL(state, "finished");
	CU_ASSERT_EQUAL(qint("SELECT total_amount FROM charging_sessions WHERE id = %lld", (long long)session1), 525000);
	CU_ASSERT_EQUAL(qint("SELECT pile_amount FROM charging_sessions WHERE id = %lld", (long long)session1), 525000);
	CU_ASSERT_EQUAL(qint("SELECT sharp_amount FROM charging_sessions WHERE id = %lld", (long long)session1), 200000);
	CU_ASSERT_EQUAL(qint("SELECT flat_amount FROM charging_sessions WHERE id = %lld", (long long)session1), 325000);
	CU_ASSERT_EQUAL(qint("SELECT amount_mismatch FROM charging_sessions WHERE id = %lld", (long long)session1), 0);
	CU_ASSERT_EQUAL(qint("SELECT total_kwh FROM charging_sessions WHERE id = %lld", (long long)session1), 35000);
	CU_ASSERT_EQUAL(qint("SELECT session_id FROM transaction_records WHERE trade_no = '%s'", trade1), session1);
	/* the pile missed our 0x40 and resends: acknowledged again, still one session */
	const uint8_t seq2[2] = {0x3B, 0x02};
	CU_ASSERT_FATAL(ykc_pile_send(&pa, &m, seq2) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pa, 0x40, 8000, &r, &rx) == 0);
	CU_ASSERT_EQUAL(r.u.record_ack.result, 0);
	CU_ASSERT(rx.seq[0] == 0x3B && rx.seq[1] == 0x02);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM charging_sessions WHERE trade_no = '%s'", trade1), 1);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM transaction_records WHERE trade_no = '%s'", trade1), 1);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM record_conflicts"), 0);
	/* a resend with other figures: stored copy kept, conflict audited, alarm raised */
	record_msg(&m, trade1, 1, 99999);
	CU_ASSERT_FATAL(ykc_pile_send(&pa, &m, NULL) > 0);
	CU_ASSERT_FATAL(ykc_pile_wait(&pa, 0x40, 8000, &r, NULL) == 0);
	CU_ASSERT_EQUAL(r.u.record_ack.result, 0);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM record_conflicts WHERE trade_no = '%s'", trade1), 1);
	CU_ASSERT_EQUAL(qint("SELECT total_amount FROM transaction_records WHERE trade_no = '%s'", trade1), 525000);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM alarms WHERE code = 'record.conflict.%s'", trade1), 1);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM charging_sessions WHERE trade_no = '%s'", trade1), 1);
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
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM alarms WHERE code = 'bill.mismatch.%s'", trade), 1);
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

static void test_record_while_database_down(void)
{
	char cmd[1024];
	char trade[33] = PILE_A "02" "240501184000" "0099";
	snprintf(cmd, sizeof cmd, "'%s' stop '%s' >/dev/null 2>&1", env("EVCS_MARIADB_SH"), env("EVCS_DB_DIR"));
	CU_ASSERT_FATAL(system(cmd) == 0);
	struct evcs_ykc_msg m, r;
	record_msg(&m, trade, 4, 52500);
	memcpy(m.u.record.gun, "02", 3);
	CU_ASSERT_FATAL(ykc_pile_send(&pa2, &m, NULL) > 0);
	/* the data layer gives up after its unavailability window (10 s): no 0x40 meanwhile */
	CU_ASSERT(ykc_pile_wait(&pa2, 0x40, 13000, NULL, NULL) < 0);
	snprintf(cmd, sizeof cmd, "'%s' start '%s' >/dev/null 2>&1", env("EVCS_MARIADB_SH"), env("EVCS_DB_DIR"));
	CU_ASSERT_FATAL(system(cmd) == 0);
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
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM transaction_records WHERE trade_no = '%s'", trade), 1);
	CU_ASSERT_EQUAL(qint("SELECT COUNT(*) FROM charging_sessions WHERE trade_no = '%s'", trade), 1);
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
	EVCS_ADD(s, test_remote_start);
	EVCS_ADD(s, test_realtime_samples);
	EVCS_ADD(s, test_remote_stop);
	EVCS_ADD(s, test_record_stored_and_resend);
	EVCS_ADD(s, test_record_mismatch_alarm);
	EVCS_ADD(s, test_duplicate_login_replaces);
	EVCS_ADD(s, test_tariff_change_pushed);
	EVCS_ADD(s, test_offline_after_silence);
	EVCS_ADD(s, test_record_while_database_down);
}

EVCS_TEST_MAIN(register_tests)
