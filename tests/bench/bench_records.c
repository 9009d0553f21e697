/*
 * bench_records.c: transaction records persisted per second into MariaDB, against a baseline
 * measured in the same run (tests/bench/README.md; run through tests/bench/bench_records.sh).
 *
 *   bench_records [N [K]]     N records (default 5000), K in flight (default 64)
 *
 * Needs the EVCS_DB_* environment printed by tests/mariadb.sh, and the test protocol plugin
 * tests/plugins/.libs/tp_proto.so of the build (EVCS_BENCH_PLUGIN_DIR, else found next to this
 * program). The database named by EVCS_DB_NAME is DROPPED and re-created: private servers only.
 * Phases, all on the in-process core's loop with the same data layer (db pool 4); baseline and
 * close run in 5 alternating rounds (the machine is shared) and report the medians:
 *   baseline  N single-row INSERTs of a record-shaped row (a CHAR(32) key, 20 BIGINTs) into a
 *             scratch table through evcs_db_query_platform: the data layer's floor for a write;
 *   close     the real path: N session closes sent over TCP to the tp_proto plugin, which calls
 *             api->session_close; the core prices each through the tenant's tariff script,
 *             writes session + bill + the plugin's evidence row in one transaction (grouped
 *             with other closes ready at the same time), and the plugin answers the TCP line
 *             only after COMMIT. The N sessions are opened first (untimed), as a pile opens a
 *             session when charging starts, so the core holds their tariff snapshots;
 *   offline   N closes of sessions the core never saw open (each read back first).
 * (Before ABI 2 the record went through the JSON storage call txn.record, removed in 2.0: its
 * figures are in RESULTS.md.)
 * Every close must come back ok, not duplicate, no mismatch, and the row counts must equal N,
 * else exit status 1 (no RESULT line then).
 * Output: human-readable lines, then one "RESULT key=value ..." line the script parses.
 */
#include "core.h"
#include "db.h"
#include "store.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <jansson.h>
#include <mysql.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
/* under `valgrind --tool=callgrind --collect-atstart=no` only the timed close phases count */
#include <valgrind/callgrind.h>
#endif
#endif
#ifndef CALLGRIND_TOGGLE_COLLECT
#define CALLGRIND_TOGGLE_COLLECT
#endif

#ifndef EVCS_TOP_SRCDIR
#define EVCS_TOP_SRCDIR "."
#endif

#define PILE "32010600000001"
#define NPILE "CP-BENCH-0001" /* the neutral path's pile (tp_proto) */
#define BASE_COLS 20

static evcs_core_t core;
static evcs_db_config_t cfg;
static MYSQL *my;

static long n_total, k_max;
static long next_i, in_flight, n_done, n_failed;
static double *t_submit; /* per call, seconds (monotonic) */
static double lat_sum;
static int64_t tenant_id, pile_id;
static long long epoch_s;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *env(const char *k) { return getenv(k) && *getenv(k) ? getenv(k) : NULL; }

static int sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sql(const char *fmt, ...)
{
	char q[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q, sizeof q, fmt, ap);
	va_end(ap);
	if (mysql_query(my, q) != 0) {
		fprintf(stderr, "sql failed: %s\n  %s\n", mysql_error(my), q);
		return -1;
	}
	MYSQL_RES *r = mysql_store_result(my);
	if (r)
		mysql_free_result(r);
	return 0;
}

/* First column of the first row; -1 when no row, -2 on error. */
static long long qint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static long long qint(const char *fmt, ...)
{
	char q[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q, sizeof q, fmt, ap);
	va_end(ap);
	if (mysql_query(my, q) != 0) {
		fprintf(stderr, "query failed: %s\n  %s\n", mysql_error(my), q);
		return -2;
	}
	MYSQL_RES *r = mysql_store_result(my);
	MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
	long long v = row && row[0] ? atoll(row[0]) : -1;
	if (r)
		mysql_free_result(r);
	return v;
}

/* 32 digits: pile serial (14) + gun (2) + start second of the run (10) + counter (6). */
static void trade_no(char out[33], int gun, long i)
{
	char b[80];
	snprintf(b, sizeof b, "%s%02d%010lld%06ld", PILE, gun, epoch_s, i);
	memcpy(out, b, 32);
	out[32] = 0;
}

/* ---- baseline: plain single-row INSERTs through the data layer ----------------------------- */

static const char *base_sql;
static long base_offset; /* key offset of the round (keys stay unique over rounds) */

static void base_submit(void);

static void base_done(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		      void *ud)
{
	long i = (long)(intptr_t)ud;
	lat_sum += now_s() - t_submit[i];
	in_flight--;
	n_done++;
	if (st != EVCS_OK || nres != 1 || res[0].affected != 1) {
		if (n_failed++ < 5)
			fprintf(stderr, "baseline insert %ld: status %d %s\n", i, st, errmsg);
	}
	base_submit();
}

static void base_submit(void)
{
	while (in_flight < k_max && next_i < n_total) {
		long i = next_i++;
		char key[33];
		trade_no(key, (int)(i % 2) + 1, i + base_offset);
		evcs_db_param_t p[1 + BASE_COLS];
		p[0] = EVCS_DB_STR(key);
		for (int c = 0; c < BASE_COLS; c++)
			p[1 + c] = EVCS_DB_INT((int64_t)i * 1000 + c);
		t_submit[i] = now_s();
		int st = evcs_db_query_platform(core.db, base_sql, p, 1 + BASE_COLS, 0, base_done,
						(void *)(intptr_t)i);
		if (st != EVCS_OK) {
			fprintf(stderr, "baseline submit %ld: status %d\n", i, st);
			n_failed++;
			n_done++;
			continue;
		}
		in_flight++;
	}
}

/* Fixed per-record energy: 10 kWh flat + 5 kWh valley, the pile's bill equal to the tariff's
 * plain rates (flat 0.70+0.60, valley 0.35+0.40 yuan/kWh), so no mismatch alarm is written. */
#define FLAT_KWH 100000
#define VALLEY_KWH 50000
#define FLAT_AMOUNT 1300000
#define VALLEY_AMOUNT 375000

/* ---- measured: session closes through the tp_proto plugin (ABI 2) ------------------------- */

static int psock = -1, plugin_port;
static char inbuf[1 << 20];
static size_t inlen;
static char outbuf[1 << 20];
static size_t outlen, outoff;
static int want_open; /* phase: 1 open, 0 close */
static char close_prefix[16] = "n"; /* trade-number prefix of the phase */

static void flush_out(void)
{
	while (outoff < outlen) {
		ssize_t n = send(psock, outbuf + outoff, outlen - outoff, MSG_NOSIGNAL);
		if (n <= 0)
			return;
		outoff += (size_t)n;
	}
	outoff = outlen = 0;
}

static void queue_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void queue_line(const char *fmt, ...)
{
	if (outoff == outlen)
		outoff = outlen = 0;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(outbuf + outlen, sizeof outbuf - outlen, fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof outbuf - outlen)
		outlen += (size_t)n;
}

static void neutral_submit(void)
{
	while (in_flight < k_max && next_i < n_total) {
		long i = next_i++;
		int gun = (int)(i % 2) + 1;
		t_submit[i] = now_s();
		if (want_open) {
			queue_line("OPEN %ld %d %s-%ld app\n", i, gun, close_prefix, i);
		} else {
			long long end_ms = (epoch_s - 60) * 1000 + i, start_ms = end_ms - 3600 * 1000LL;
			queue_line("CLOSE %ld %d %s-%ld %lld %lld %d %d dg%ld 0,0,%d,%d ok\n", i, gun,
				   close_prefix, i, start_ms, end_ms, FLAT_KWH + VALLEY_KWH,
				   FLAT_AMOUNT + VALLEY_AMOUNT, i, FLAT_KWH, VALLEY_KWH);
		}
		in_flight++;
	}
	flush_out();
}

/* Read the answers that arrived ("TAG STATUS ..."), count them, submit more. */
static void neutral_read(void)
{
	for (;;) {
		ssize_t n = recv(psock, inbuf + inlen, sizeof inbuf - 1 - inlen, 0);
		if (n <= 0)
			break;
		inlen += (size_t)n;
	}
	char *p = inbuf, *end = inbuf + inlen;
	for (char *nl; p < end && (nl = memchr(p, '\n', (size_t)(end - p))); p = nl + 1) {
		*nl = 0;
		long i = strtol(p, NULL, 10);
		const char *a = strchr(p, ' ');
		int ok;
		if (want_open) {
			ok = a && !strncmp(a, " ok ", 4);
		} else {
			long long sid = 0, total = 0, alarm = 0;
			int dup = -1, conf = -1, mis = -1;
			ok = a && sscanf(a, " ok %lld %d %d %d %lld %lld", &sid, &dup, &conf, &mis, &total,
					 &alarm) == 6 && sid > 0 && !dup && !conf && !mis &&
			     total == FLAT_AMOUNT + VALLEY_AMOUNT;
		}
		if (i >= 0 && i < n_total)
			lat_sum += now_s() - t_submit[i];
		if (!ok && n_failed++ < 5)
			fprintf(stderr, "%s %ld: %s\n", want_open ? "open" : "close", i, a ? a : p);
		in_flight--;
		n_done++;
	}
	memmove(inbuf, p, (size_t)(end - p));
	inlen = (size_t)(end - p);
	neutral_submit();
}

static void sock_cb(evutil_socket_t fd, short what, void *ud)
{
	(void)fd;
	(void)ud;
	if (what & EV_READ)
		neutral_read();
	if (what & EV_WRITE)
		flush_out();
}

static int plugin_connect(void)
{
	psock = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)plugin_port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (psock < 0 || connect(psock, (struct sockaddr *)&sa, sizeof sa) < 0) {
		perror("connect to tp_proto");
		return -1;
	}
	fcntl(psock, F_SETFL, fcntl(psock, F_GETFL) | O_NONBLOCK);
	const char *hello = "HELLO h " NPILE "\n";
	if (send(psock, hello, strlen(hello), MSG_NOSIGNAL) != (ssize_t)strlen(hello))
		return -1;
	for (int spins = 0; spins < 5000; spins++) {
		event_base_loop(core.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		ssize_t n = recv(psock, inbuf + inlen, sizeof inbuf - 1 - inlen, 0);
		if (n > 0)
			inlen += (size_t)n;
		inbuf[inlen] = 0;
		if (strchr(inbuf, '\n')) {
			int ok = !strncmp(inbuf, "h ok ", 5);
			if (!ok)
				fprintf(stderr, "HELLO answered %s", inbuf);
			inlen = 0;
			return ok ? 0 : -1;
		}
		usleep(1000);
	}
	fprintf(stderr, "no answer to HELLO\n");
	return -1;
}

static void neutral_phase_submit(void) { neutral_submit(); }

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds of the database server (EVCS_BENCH_SERVER_PID, set by bench_records.sh), or -1 */
static double server_cpu_s(void)
{
	const char *pid = env("EVCS_BENCH_SERVER_PID");
	char path[64], buf[1024];
	if (!pid)
		return -1;
	snprintf(path, sizeof path, "/proc/%s/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *c = strrchr(buf, ')'); /* fields after the command name */
	unsigned long long ut = 0, stt = 0;
	if (!c || sscanf(c + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stt) != 2)
		return -1;
	return (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(const double *v, size_t n)
{
	double t[16];
	memcpy(t, v, n * sizeof *t);
	qsort(t, n, sizeof *t, cmp_double);
	return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

/* Run one phase to completion; returns the wall time in seconds. */
static double run_phase(void (*submit)(void))
{
	next_i = in_flight = n_done = n_failed = 0;
	lat_sum = 0;
	double t0 = now_s();
	submit();
	while (n_done < n_total)
		event_base_loop(core.base, EVLOOP_ONCE);
	return now_s() - t0;
}

/* The pool connects in the background: one round trip first, so neither phase pays for it. */
static int warm_done;
static void warm_cb(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	warm_done = st == EVCS_OK ? 1 : -1;
}

/* ---- set-up -------------------------------------------------------------------------------- */

static char plugin_dir[1024];

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

static int setup(char *conf_path, size_t cap)
{
	plugin_port = free_port();
	const char *user = env("EVCS_DB_USER"), *name = env("EVCS_DB_NAME");
	const char *sock = env("EVCS_DB_SOCKET"), *port = env("EVCS_DB_PORT");
	if (!user || !name || (!sock && !port)) {
		fprintf(stderr, "bench_records needs EVCS_DB_USER/NAME/SOCKET|PORT (eval \"$(tests/"
				"mariadb.sh start DIR)\", or run tests/bench/bench_records.sh)\n");
		return -1;
	}
	cfg.host = env("EVCS_DB_HOST") ? env("EVCS_DB_HOST") : "127.0.0.1";
	cfg.port = port ? (unsigned)atoi(port) : 0;
	cfg.socket = sock;
	cfg.user = user;
	cfg.password = env("EVCS_DB_PASSWORD") ? env("EVCS_DB_PASSWORD") : "";
	cfg.name = name;
	cfg.connect_timeout_s = 5;
	char err[512];
	my = evcs_db_connect_raw(&cfg, 0, err, sizeof err);
	if (!my) {
		fprintf(stderr, "db: %s\n", err);
		return -1;
	}
	if (sql("DROP DATABASE IF EXISTS `%s`", name) < 0 ||
	    sql("CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci", name) < 0 ||
	    sql("USE `%s`", name) < 0)
		return -1;
	int from = 0, to = 0;
	if (evcs_db_migrate(&cfg, EVCS_TOP_SRCDIR "/schema", &from, &to, err, sizeof err) != 0) {
		fprintf(stderr, "migrate: %s\n", err);
		return -1;
	}
	if (sql("INSERT INTO tenants (name) VALUES ('bench')") < 0)
		return -1;
	tenant_id = qint("SELECT id FROM tenants WHERE name = 'bench'");
	sql("INSERT INTO stations (tenant_id, name) VALUES (%lld, 'S1')", (long long)tenant_id);
	long long st = qint("SELECT id FROM stations WHERE tenant_id = %lld", (long long)tenant_id);
	/* 00:00-08:00 valley, 08:00-17:00 flat, 17:00-19:00 sharp, 19:00-24:00 peak */
	const char *slots = "333333333333333322222222222222222200001111111111";
	sql("INSERT INTO tariffs (tenant_id, name, model, sharp_elec_rate, sharp_service_rate, "
	    "peak_elec_rate, peak_service_rate, flat_elec_rate, flat_service_rate, valley_elec_rate, "
	    "valley_service_rate, slots, state) VALUES (%lld, 'std', '0001', 120000, 80000, 100000, "
	    "80000, 70000, 60000, 35000, 40000, '%s', 'active')",
	    (long long)tenant_id, slots);
	long long tariff = qint("SELECT id FROM tariffs WHERE tenant_id = %lld", (long long)tenant_id);
	sql("INSERT INTO piles (tenant_id, station_id, serial, gun_count, tariff_id) VALUES "
	    "(%lld, %lld, '" PILE "', 2, %lld)", (long long)tenant_id, st, tariff);
	pile_id = qint("SELECT id FROM piles WHERE serial = '" PILE "'");
	sql("INSERT INTO piles (tenant_id, station_id, serial, protocol, gun_count, tariff_id) VALUES "
	    "(%lld, %lld, '" NPILE "', 'tp', 2, %lld)", (long long)tenant_id, st, tariff);
	if (tenant_id <= 0 || st <= 0 || tariff <= 0 || pile_id <= 0 ||
	    qint("SELECT COUNT(*) FROM piles WHERE serial = '" NPILE "'") != 1)
		return -1;
	/* the plugin's evidence table: its own migration, from its descriptor */
	char so[1200];
	snprintf(so, sizeof so, "%s/tp_proto.so", plugin_dir);
	void *dl = dlopen(so, RTLD_NOW | RTLD_LOCAL);
	evcs_plugin_entry_fn entry = dl ? (evcs_plugin_entry_fn)dlsym(dl, EVCS_PLUGIN_ENTRY_SYMBOL) : NULL;
	const evcs_plugin_info_t *info = entry ? entry(EVCS_ABI_MAJOR, EVCS_ABI_MINOR) : NULL;
	int pf = 0, pt = 0;
	int prc = info && info->migrations ? evcs_db_migrate_plugin(&cfg, info->name, info->migrations,
								    &pf, &pt, err, sizeof err)
					   : -1;
	if (prc != 0)
		fprintf(stderr, "tp_proto migrations (%s): %s\n", so, dl ? err : dlerror());
	if (dl)
		dlclose(dl);
	if (prc != 0)
		return -1;
	/* the baseline's scratch table: a record-sized row with one unique key, like the records'
	 * trade number, so both paths maintain a comparable index */
	char cols[BASE_COLS * 24] = "";
	for (int c = 0; c < BASE_COLS; c++) {
		size_t l = strlen(cols);
		snprintf(cols + l, sizeof cols - l, ", v%02d BIGINT NOT NULL", c);
	}
	if (sql("CREATE TABLE bench_rows (id BIGINT AUTO_INCREMENT PRIMARY KEY, k CHAR(32) NOT NULL"
		"%s, UNIQUE KEY (k)) ENGINE=InnoDB", cols) < 0)
		return -1;

	snprintf(conf_path, cap, "/tmp/evcs-bench-records-%d.conf", (int)getpid());
	FILE *f = fopen(conf_path, "w");
	if (!f)
		return -1;
	fprintf(f,
		"[core]\nlog_level = warning\nplugin_dir = %s\nschema_dir = %s/schema\nscript_dir = %s/scripts\n"
		"[http]\nlisten = 127.0.0.1:0\n"
		"[database]\n%s%s\nport = %u\nuser = %s\npassword = %s\nname = %s\npool = 4\n"
		"connect_timeout = 5\n[plugin tp_proto]\nport = %d\n",
		plugin_dir, EVCS_TOP_SRCDIR, EVCS_TOP_SRCDIR, sock ? "socket = " : "host = ",
		sock ? sock : cfg.host, cfg.port ? cfg.port : 3306, user, cfg.password, name, plugin_port);
	fclose(f);
	if (evcs_core_start(&core, conf_path, err, sizeof err) != 0) {
		fprintf(stderr, "core start: %s\n", err);
		return -1;
	}
	if (!core.db || !core.store) {
		fprintf(stderr, "core started without database/store\n");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	n_total = argc > 1 ? atol(argv[1]) : 5000;
	k_max = argc > 2 ? atol(argv[2]) : 64;
	if (n_total <= 0 || n_total > 199999 || k_max <= 0) {
		fprintf(stderr, "usage: %s [N (1..199999)] [K (>0)]\n", argv[0]);
		return 2;
	}
	if (env("EVCS_BENCH_PLUGIN_DIR")) {
		snprintf(plugin_dir, sizeof plugin_dir, "%s", env("EVCS_BENCH_PLUGIN_DIR"));
	} else {
		/* BUILD/tests/bench/bench_records -> BUILD/tests/plugins/.libs */
		char self[900];
		snprintf(self, sizeof self, "%s", argv[0]);
		char *slash = strrchr(self, '/');
		if (slash)
			*slash = 0;
		snprintf(plugin_dir, sizeof plugin_dir, "%s/../plugins/.libs", slash ? self : ".");
	}
	epoch_s = (long long)time(NULL);
	t_submit = calloc((size_t)n_total, sizeof *t_submit);
	char conf_path[256] = "";
	int rc = 1, core_up = 0;
	struct event *sev = NULL;
	if (!t_submit)
		goto out;
	if (setup(conf_path, sizeof conf_path) < 0)
		goto out;
	core_up = 1;

	if (evcs_db_query_platform(core.db, "SELECT 1", NULL, 0, 0, warm_cb, NULL) != EVCS_OK)
		goto out;
	while (!warm_done)
		event_base_loop(core.base, EVLOOP_ONCE);
	if (warm_done < 0) {
		fprintf(stderr, "database not reachable through the core's pool\n");
		goto out;
	}
	if (plugin_connect() < 0)
		goto out;
	sev = event_new(core.base, psock, EV_READ | EV_PERSIST, sock_cb, NULL);
	if (!sev || event_add(sev, NULL) != 0)
		goto out;

	static char ins[1024];
	size_t l = (size_t)snprintf(ins, sizeof ins, "INSERT INTO bench_rows (k");
	for (int c = 0; c < BASE_COLS; c++)
		l += (size_t)snprintf(ins + l, sizeof ins - l, ", v%02d", c);
	l += (size_t)snprintf(ins + l, sizeof ins - l, ") VALUES (?");
	for (int c = 0; c < BASE_COLS; c++)
		l += (size_t)snprintf(ins + l, sizeof ins - l, ", ?");
	snprintf(ins + l, sizeof ins - l, ")");
	base_sql = ins;

	/* The machine is shared and noisy: ROUNDS alternating rounds of the baseline and the
	 * close path, each figure the median of its rounds. */
	enum { ROUNDS = 5 };
	double base_rates[ROUNDS], close_rates[ROUNDS], ratios[ROUNDS];
	double base_lat = 0, close_lat = 0, t_open = 0, close_cpu_us = 0;
	double base_srv_us = 0, close_srv_us = 0; /* database server CPU per row / per close */
	long base_failed = 0, open_failed = 0, close_failed = 0;
	for (int r = 0; r < ROUNDS; r++) {
		base_offset = (long)r * n_total;
		double s0 = server_cpu_s();
		double tb = run_phase(base_submit);
		double s1 = server_cpu_s();
		base_srv_us += (s1 - s0) * 1e6 / (double)n_total / ROUNDS;
		base_failed += n_failed;
		base_lat += lat_sum / (double)n_total / ROUNDS;
		/* the sessions of the close phase are opened first, as piles open them when
		 * charging starts (not timed) */
		snprintf(close_prefix, sizeof close_prefix, "n%d", r);
		want_open = 1;
		t_open += run_phase(neutral_phase_submit);
		open_failed += n_failed;
		want_open = 0;
		double c0 = cpu_s(), s2 = server_cpu_s();
		CALLGRIND_TOGGLE_COLLECT;
		double tc = run_phase(neutral_phase_submit);
		CALLGRIND_TOGGLE_COLLECT;
		close_cpu_us += (cpu_s() - c0) * 1e6 / (double)n_total / ROUNDS;
		close_srv_us += (server_cpu_s() - s2) * 1e6 / (double)n_total / ROUNDS;
		close_failed += n_failed;
		close_lat += lat_sum / (double)n_total / ROUNDS;
		base_rates[r] = (double)n_total / tb;
		close_rates[r] = (double)n_total / tc;
		ratios[r] = close_rates[r] / base_rates[r];
		printf("round %d: baseline %.0f rows/s, session_close %.0f records/s, ratio %.3f\n", r + 1,
		       base_rates[r], close_rates[r], ratios[r]);
	}

	snprintf(close_prefix, sizeof close_prefix, "off");
	double t_off = run_phase(neutral_phase_submit);
	long off_failed = n_failed;
	double off_lat = lat_sum / (double)n_total;

	long long n_base = qint("SELECT COUNT(*) FROM bench_rows");
	long long n_closed = qint("SELECT COUNT(*) FROM charging_sessions s JOIN piles p ON p.id = s.pile_id "
				  "WHERE p.serial = '" NPILE "' AND s.state = 'finished' AND s.trade_no LIKE 'n_-%%' "
				  "AND s.bill LIKE '%%\"pricing\":\"script\"%%'");
	long long n_off = qint("SELECT COUNT(*) FROM charging_sessions s JOIN piles p ON p.id = s.pile_id "
			       "WHERE p.serial = '" NPILE "' AND s.state = 'finished' AND s.trade_no LIKE 'off-%%'");
	long long n_evid = qint("SELECT COUNT(*) FROM tp_proto_evidence");
	double base_rate = median(base_rates, ROUNDS), close_rate = median(close_rates, ROUNDS);
	double ratio = median(ratios, ROUNDS), rmin = ratios[0], rmax = ratios[0];
	for (int r = 1; r < ROUNDS; r++) {
		rmin = ratios[r] < rmin ? ratios[r] : rmin;
		rmax = ratios[r] > rmax ? ratios[r] : rmax;
	}
	double off_rate = (double)n_total / t_off;
	printf("N %ld, K %ld, db pool 4\n", n_total, k_max);
	printf("baseline (median of %d): %.0f rows/s (mean latency %.3f ms, rows %lld, failed %ld)\n",
	       ROUNDS, base_rate, base_lat * 1e3, n_base, base_failed);
	printf("open (untimed set-up): %.0f opens/s (failed %ld)\n",
	       (double)n_total * ROUNDS / t_open, open_failed);
	printf("session_close via tp_proto (median of %d): %.0f records/s (mean latency %.3f ms, "
	       "finished %lld, failed %ld)\n",
	       ROUNDS, close_rate, close_lat * 1e3, n_closed, close_failed);
	printf("core + plugin + client CPU per close (this process): %.1f us\n", close_cpu_us);
	if (server_cpu_s() >= 0)
		printf("database server CPU: %.1f us per baseline row, %.1f us per close\n", base_srv_us,
		       close_srv_us);
	printf("session_close, never opened: %.0f records/s (%.3f s, mean latency %.3f ms, finished "
	       "%lld, failed %ld)\n",
	       off_rate, t_off, off_lat * 1e3, n_off, off_failed);
	printf("ratio close/baseline (median of the rounds' ratios): %.3f, never opened/baseline %.3f\n",
	       ratio, off_rate / base_rate);
	if (base_failed || open_failed || close_failed || off_failed || n_base != ROUNDS * n_total ||
	    n_closed != ROUNDS * n_total || n_off != n_total || n_evid != (ROUNDS + 1) * n_total) {
		fprintf(stderr, "bench_records: FAILED (failures or row counts differ from N)\n");
		goto out;
	}
	printf("RESULT server=%s n=%ld k=%ld pool=4 baseline_rows_per_s=%.0f records_per_s=%.0f "
	       "ratio=%.3f offline_per_s=%.0f offline_ratio=%.3f baseline_latency_ms=%.3f "
	       "record_latency_ms=%.3f offline_latency_ms=%.3f client_cpu_us=%.1f server_cpu_us_base=%.1f "
	       "server_cpu_us_close=%.1f ratio_min=%.3f ratio_max=%.3f\n",
	       mysql_get_server_info(my), n_total, k_max, base_rate, close_rate, ratio,
	       off_rate, off_rate / base_rate, base_lat * 1e3, close_lat * 1e3, off_lat * 1e3,
	       close_cpu_us, base_srv_us, close_srv_us, rmin, rmax);
	rc = 0;
out:
	if (sev)
		event_free(sev);
	if (psock >= 0)
		close(psock);
	if (core_up)
		evcs_core_free(&core);
	if (my)
		mysql_close(my);
	if (conf_path[0])
		unlink(conf_path);
	free(t_submit);
	return rc;
}
