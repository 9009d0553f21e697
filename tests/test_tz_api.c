/*
 * tests/test_tz_api.c: tenants' time zones through the real daemon core and a private MariaDB
 * (tests/with-mariadb.sh): zones stored before start-up are loaded asynchronously; the
 * dashboard's "today" and "this month" start at the tenant's local midnight, DST-correct
 * (Europe/Berlin on the 25-hour day of 25 October 2026, checked with sessions on both sides of
 * that midnight); PATCH/POST /api/v1/tenants validate "timezone" (unknown or hostile names: 400
 * with field timezone) and the new zone applies to the very next request; a zone changed in
 * the database is picked up by a refresh; a stored zone that does not exist falls back to the
 * installation default ([core] timezone = America/New_York here), which SIGHUP may change
 * (an unknown one is refused). The core runs in-process with its loop on a second thread; the
 * test talks HTTP over loopback with libcurl.
 * Drops and re-creates EVCS_DB_NAME: run the test programs one at a time (make -j1 check).
 */
#include "core.h"
#include "db.h"
#include "testdb.h"
#include "testhttp.h"
#include "testloop.h"
#include "testutil.h"
#include "tz.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <mysql.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BOOT "test-bootstrap-token-tz-0123456789"
#define NOW_MS 1792929600000LL /* 2026-10-25 12:00 UTC = 13:00 CET, the day DST ended */

static evcs_core_t core;
static pthread_t loop_thr;
static int port, env_ok;
static evcs_db_config_t dbc;
static char conf_path[256];
static MYSQL *raw;
static long long t_berlin, t_plain, t_broken;
static char tok_berlin[128], tok_plain[128], tok_broken[128];

/* ---- HTTP ------------------------------------------------------------------------------------ */
/* body is stolen */
static long http(const char *method, const char *path, const char *token, long long tenant,
		 json_t *body, json_t **out)
{
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	long status = test_http(port, method, path, token, tenant, s, NULL, 20L, out, NULL);
	free(s);
	json_decref(body);
	return status;
}

static long long jint(json_t *o, const char *k) { return json_integer_value(json_object_get(o, k)); }

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "(none)";
}

static const char *err_field(json_t *o)
{
	const char *s = test_err_field(o);
	return s ? s : "(none)";
}

static void sql(const char *q)
{
	if (testdb_sql(raw, "%s", q) != 0)
		CU_FAIL("SQL failed");
}

/* GET /api/v1/dashboard at NOW_MS; the caller owns *o */
static long dashboard(const char *tok, json_t **o)
{
	char q[96];
	snprintf(q, sizeof q, "/api/v1/dashboard?at_ms=%lld", NOW_MS);
	return http("GET", q, tok, 0, NULL, o);
}

/* Polls the dashboard until it reports zone `want` (asynchronous loads); 1 when it did. */
static int wait_zone(const char *tok, const char *want)
{
	for (int i = 0; i < 250; i++) {
		json_t *o = NULL;
		long st = dashboard(tok, &o);
		int ok = st == 200 && !strcmp(jstr(o, "timezone"), want);
		json_decref(o);
		if (ok)
			return 1;
		usleep(20000);
	}
	return 0;
}

/* ---- loop-thread work --------------------------------------------------------------------- */
static int posted_rc;

static void do_refresh(void *arg)
{
	(void)arg;
	evcs_core_tz_refresh(&core);
}

static void do_reload(void *arg)
{
	(void)arg;
	posted_rc = evcs_core_reload(&core);
}

static void *loop_main(void *arg)
{
	(void)arg;
	event_base_dispatch(core.base);
	return NULL;
}

/* ---- fixtures ---------------------------------------------------------------------------- */
static void write_conf(const char *zone)
{
	FILE *f = fopen(conf_path, "w");
	if (!f)
		return;
	fprintf(f,
		"[core]\nlog_level = err\nschema_dir = %s/schema\ntimezone = %s\n\n[http]\n"
		"listen = 127.0.0.1:0\n\n[database]\n",
		EVCS_TOP_SRCDIR, zone);
	testdb_conf(f, &dbc, 2);
	fprintf(f, "\n[api]\nbootstrap_token = %s\n", BOOT);
	fclose(f);
}

static long long seed_tenant(const char *name, const char *zone)
{
	char q[256];
	if (zone)
		snprintf(q, sizeof q, "INSERT INTO tenants (name, timezone) VALUES ('%s', '%s')", name,
			 zone);
	else
		snprintf(q, sizeof q, "INSERT INTO tenants (name) VALUES ('%s')", name);
	if (mysql_query(raw, q) != 0) {
		fprintf(stderr, "seed: %s\n", mysql_error(raw));
		return 0;
	}
	return (long long)mysql_insert_id(raw);
}

static int make_token(long long tenant, const char *user, char *out)
{
	json_t *o = NULL;
	long st = http("POST", "/api/v1/tokens", BOOT, tenant,
		       json_pack("{s:s, s:s}", "username", user, "role", "tenant-admin"), &o);
	snprintf(out, 128, "%s", st == 201 ? jstr(o, "token") : "none");
	json_decref(o);
	return st == 201 ? 0 : -1;
}

static int suite_init(void)
{
	if (testdb_env(&dbc, "test_tz_api") != 0)
		return 1;
	char err[512];
	raw = testdb_reset(&dbc);
	if (!raw)
		return 1;
	int from, to;
	if (evcs_db_migrate(&dbc, EVCS_TOP_SRCDIR "/schema", &from, &to, err, sizeof err) != 0) {
		fprintf(stderr, "migrate: %s\n", err);
		return 1;
	}
	/* zones stored before the daemon starts: loaded asynchronously at start-up */
	t_berlin = seed_tenant("Berlin GmbH", "Europe/Berlin");
	t_plain = seed_tenant("Plain Ltd", NULL);
	t_broken = seed_tenant("Broken Inc", "Mars/Olympus_Mons");
	snprintf(conf_path, sizeof conf_path, "/tmp/test_tz_api.%d.conf", (int)getpid());
	write_conf("America/New_York");
	evthread_use_pthreads();
	if (evcs_core_start(&core, conf_path, err, sizeof err) != 0) {
		fprintf(stderr, "core start: %s\n", err);
		return 1;
	}
	port = evcs_http_port(core.http);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	pthread_create(&loop_thr, NULL, loop_main, NULL);
	env_ok = 1;
	if (!t_berlin || !t_plain || !t_broken || make_token(t_berlin, "berlin", tok_berlin) ||
	    make_token(t_plain, "plain", tok_plain) || make_token(t_broken, "broken", tok_broken))
		return 1;
	return 0;
}

static int suite_clean(void)
{
	if (env_ok) {
		event_base_loopexit(core.base, NULL);
		pthread_join(loop_thr, NULL);
		evcs_core_free(&core);
		curl_global_cleanup();
	}
	if (raw)
		mysql_close(raw);
	unlink(conf_path);
	return 0;
}

/* ---- tests --------------------------------------------------------------------------------- */
static void test_zones_loaded_at_start(void)
{
	CU_ASSERT_FATAL(wait_zone(tok_berlin, "Europe/Berlin"));
	json_t *o = NULL;
	/* a tenant without a zone, and one whose stored zone does not exist: the default */
	CU_ASSERT_EQUAL(dashboard(tok_plain, &o), 200);
	CU_ASSERT_STRING_EQUAL(jstr(o, "timezone"), "America/New_York");
	CU_ASSERT_EQUAL(jint(o, "day_start_ms"), 1792900800000LL); /* 00:00 EDT = 04:00 UTC */
	json_decref(o);
	CU_ASSERT_EQUAL(dashboard(tok_broken, &o), 200);
	CU_ASSERT_STRING_EQUAL(jstr(o, "timezone"), "America/New_York");
	json_decref(o);
}

static void test_dashboard_berlin_dst_day(void)
{
	/* a station, a pile and finished sessions on both sides of Berlin's midnights */
	json_t *o = NULL;
	CU_ASSERT_EQUAL_FATAL(http("POST", "/api/v1/stations", tok_berlin, 0,
				   json_pack("{s:s}", "name", "Mitte"), &o),
			      201);
	long long st = jint(o, "id");
	json_decref(o);
	CU_ASSERT_EQUAL_FATAL(http("POST", "/api/v1/piles", tok_berlin, 0,
				   json_pack("{s:s, s:I, s:i}", "serial", "49000000000001",
					     "station_id", (json_int_t)st, "gun_count", 1),
				   &o),
			      201);
	long long pile = jint(o, "id");
	json_decref(o);
	static const long long ends[] = {
	    1792877400000LL, /* 2026-10-24 23:30 CEST: yesterday in Berlin (today at UTC+8) */
	    1792881000000LL, /* 2026-10-25 00:30 CEST: today */
	    1790803800000LL, /* 2026-09-30 23:30 CEST: last month */
	    1790807400000LL, /* 2026-10-01 00:30 CEST: this month */
	};
	for (int i = 0; i < 4; i++) {
		char q[640];
		snprintf(q, sizeof q,
			 "INSERT INTO charging_sessions (tenant_id, station_id, pile_id, gun_no, "
			 "trade_no, state, start_mode, requested_ms, start_ms, end_ms, total_kwh, "
			 "total_amount) VALUES (%lld, %lld, %lld, 1, '%032d', 'finished', 'app', %lld, "
			 "%lld, %lld, %d, %d)",
			 t_berlin, st, pile, 900 + i, ends[i] - 600000, ends[i] - 600000, ends[i],
			 10000 * (i + 1), 100000 * (i + 1));
		sql(q);
	}
	CU_ASSERT_EQUAL_FATAL(dashboard(tok_berlin, &o), 200);
	CU_ASSERT_STRING_EQUAL(jstr(o, "timezone"), "Europe/Berlin");
	/* local midnight of the 25th is still CEST: 22:00 UTC the day before (a fixed +01:00
	 * would say 23:00, a fixed +08:00 16:00) */
	CU_ASSERT_EQUAL(jint(o, "day_start_ms"), 1792879200000LL);
	CU_ASSERT_EQUAL(jint(o, "month_start_ms"), 1790805600000LL); /* 1 Oct 00:00 CEST */
	json_t *today = json_object_get(o, "today"), *month = json_object_get(o, "month");
	CU_ASSERT_EQUAL(jint(today, "sessions"), 1);
	CU_ASSERT_EQUAL(jint(today, "energy_kwh"), 20000);
	CU_ASSERT_EQUAL(jint(month, "sessions"), 3);
	CU_ASSERT_EQUAL(jint(month, "energy_kwh"), 10000 + 20000 + 40000);
	json_decref(o);
}

static void test_patch_timezone(void)
{
	char path[96];
	snprintf(path, sizeof path, "/api/v1/tenants/%lld", t_plain);
	json_t *o = NULL;
	static const char *const bad[] = {"Mars/Olympus_Mons", "../../../etc/passwd", "/etc/localtime",
					  "Europe", "Europe/Berlin\n"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CU_ASSERT_EQUAL(http("PATCH", path, BOOT, 0, json_pack("{s:s}", "timezone", bad[i]), &o),
				400);
		CU_ASSERT_STRING_EQUAL(err_field(o), "timezone");
		json_decref(o);
	}
	CU_ASSERT_EQUAL(http("PATCH", path, BOOT, 0, json_pack("{s:i}", "timezone", 8), &o), 400);
	CU_ASSERT_STRING_EQUAL(err_field(o), "timezone");
	json_decref(o);
	/* nothing changed */
	CU_ASSERT_EQUAL(http("GET", path, BOOT, 0, NULL, &o), 200);
	CU_ASSERT_TRUE(json_is_null(json_object_get(o, "timezone")));
	json_decref(o);
	/* a zone nobody loaded yet (checked off the loop), then used by the very next request */
	CU_ASSERT_PTR_NULL(evcs_tz_cached("Asia/Tokyo"));
	CU_ASSERT_EQUAL(http("PATCH", path, BOOT, 0, json_pack("{s:s}", "timezone", "Asia/Tokyo"), &o),
			200);
	CU_ASSERT_STRING_EQUAL(jstr(o, "timezone"), "Asia/Tokyo");
	json_decref(o);
	CU_ASSERT_EQUAL(dashboard(tok_plain, &o), 200);
	CU_ASSERT_STRING_EQUAL(jstr(o, "timezone"), "Asia/Tokyo");
	CU_ASSERT_EQUAL(jint(o, "day_start_ms"), 1792854000000LL);   /* 00:00 JST */
	CU_ASSERT_EQUAL(jint(o, "month_start_ms"), 1790780400000LL); /* 1 Oct 00:00 JST */
	json_decref(o);
	/* the other tenants are untouched */
	CU_ASSERT_EQUAL(dashboard(tok_berlin, &o), 200);
	CU_ASSERT_STRING_EQUAL(jstr(o, "timezone"), "Europe/Berlin");
	json_decref(o);
	/* null: back to the installation default */
	CU_ASSERT_EQUAL(http("PATCH", path, BOOT, 0, json_pack("{s:n}", "timezone"), &o), 200);
	CU_ASSERT_TRUE(json_is_null(json_object_get(o, "timezone")));
	json_decref(o);
	CU_ASSERT_EQUAL(dashboard(tok_plain, &o), 200);
	CU_ASSERT_STRING_EQUAL(jstr(o, "timezone"), "America/New_York");
	json_decref(o);
	/* creating a tenant checks it too */
	CU_ASSERT_EQUAL(http("POST", "/api/v1/tenants", BOOT, 0,
			     json_pack("{s:s, s:s}", "name", "Nowhere", "timezone", "Nowhere/Land"), &o),
			400);
	CU_ASSERT_STRING_EQUAL(err_field(o), "timezone");
	json_decref(o);
	CU_ASSERT_EQUAL(http("POST", "/api/v1/tenants", BOOT, 0,
			     json_pack("{s:s, s:s}", "name", "Kolkata", "timezone", "Asia/Kolkata"),
			     &o),
			201);
	CU_ASSERT_STRING_EQUAL(jstr(o, "timezone"), "Asia/Kolkata");
	long long tk = jint(o, "id");
	json_decref(o);
	char tok[128];
	CU_ASSERT_EQUAL_FATAL(make_token(tk, "kolkata", tok), 0);
	CU_ASSERT_EQUAL(dashboard(tok, &o), 200);
	CU_ASSERT_EQUAL(jint(o, "day_start_ms"), 1792866600000LL); /* 00:00 IST (+05:30) */
	json_decref(o);
}

static void test_refresh_and_reload(void)
{
	/* changed behind the API's back: a refresh picks it up */
	char q[160];
	snprintf(q, sizeof q, "UPDATE tenants SET timezone = 'Australia/Sydney' WHERE id = %lld",
		 t_plain);
	sql(q);
	test_run_on_loop(core.base, do_refresh, NULL);
	CU_ASSERT_FATAL(wait_zone(tok_plain, "Australia/Sydney"));
	json_t *o = NULL;
	CU_ASSERT_EQUAL(dashboard(tok_plain, &o), 200);
	CU_ASSERT_EQUAL(jint(o, "day_start_ms"), 1792846800000LL); /* 00:00 AEDT */
	json_decref(o);
	/* SIGHUP with an unknown [core] timezone is refused; a valid one becomes the default */
	write_conf("Atlantis/Capital");
	test_run_on_loop(core.base, do_reload, NULL);
	CU_ASSERT_EQUAL(posted_rc, -1);
	CU_ASSERT_EQUAL(dashboard(tok_broken, &o), 200);
	CU_ASSERT_STRING_EQUAL(jstr(o, "timezone"), "America/New_York");
	json_decref(o);
	write_conf("Europe/Berlin");
	test_run_on_loop(core.base, do_reload, NULL);
	CU_ASSERT_EQUAL(posted_rc, 0);
	CU_ASSERT_EQUAL(dashboard(tok_broken, &o), 200);
	CU_ASSERT_STRING_EQUAL(jstr(o, "timezone"), "Europe/Berlin");
	CU_ASSERT_EQUAL(jint(o, "day_start_ms"), 1792879200000LL);
	json_decref(o);
	/* the tenant's own zone still wins over the default */
	CU_ASSERT_TRUE(wait_zone(tok_plain, "Australia/Sydney"));
}

static void register_tests(void)
{
	CU_pSuite s = CU_add_suite("tz_api", suite_init, suite_clean);
	EVCS_ADD(s, test_zones_loaded_at_start);
	EVCS_ADD(s, test_dashboard_berlin_dst_day);
	EVCS_ADD(s, test_patch_timezone);
	EVCS_ADD(s, test_refresh_and_reload);
}

EVCS_TEST_MAIN(register_tests)
