/*
 * tests/test_sim_api.c: simulated piles through the operator API, end to end. The real core
 * runs in-process (its loop on a second thread) with the real ykc.so listening on loopback and
 * the real ykcsim.so dialling it; the test talks HTTP over loopback with blocking libcurl from
 * the main thread, against a private MariaDB (tests/with-mariadb.sh exports EVCS_DB_*).
 * The routes are the plugin's own (ABI 2 api_route in plugins/ykc/simplugin.c).
 * Suite "sim": the served OpenAPI document lists the plugin's operations, add a simulated pile,
 * wait until it logs in, start and stop a session through the normal command route, see the
 * finished session with its energy, tenant isolation, the simulator's max_piles (the refused
 * pile's row is taken back), removal, the tenant's pile quota.
 * Suite "nosim": a core without ykcsim has no such routes: 404 not_found like any unknown
 * resource (and the OpenAPI document does not list them), and nothing is written.
 * The simulator's clock runs x30 so a session takes seconds; every wait is a bounded loop on a
 * condition, nothing asserts timing.
 * Drops and re-creates EVCS_DB_NAME: run the test programs one at a time (make -j1 check).
 */
#include "core.h"
#include "db.h"
#include "testdb.h"
#include "testhttp.h"
#include "testproc.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dlfcn.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <mysql.h>
#include <netinet/in.h>
#include <pthread.h>
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

#define BOOT "test-bootstrap-token-0123456789"
#define MAX_SIM_PILES 2

static evcs_core_t core;
static pthread_t loop_thr;
static int core_up, http_port;
static evcs_db_config_t dbc;
static char conf_path[256];
static MYSQL *raw;
static long long tA, tB, stationA, stationB;
static char tokA[128], tokB[128], tokAro[128];
/* the first simulated pile, shared by the tests of the "sim" suite (they run in order) */
static char serial1[16];
static long long pile1;

/* ---- HTTP client ------------------------------------------------------------------------- */
/* Returns the HTTP status; *out (optional) gets the parsed JSON body (NULL when none).
 * body is stolen. */
static long call(const char *method, const char *path, const char *token, long long tenant,
		 json_t *body, json_t **out)
{
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	char *text = NULL;
	long status = test_http(http_port, method, path, token, tenant, s, NULL, 30L, out,
				out ? NULL : &text);
	if (!out && status >= 300 && text)
		fprintf(stderr, "%s %s -> %ld %s\n", method, path, status, text);
	free(text);
	free(s);
	return status;
}

static long long jint(json_t *o, const char *k) { return json_integer_value(json_object_get(o, k)); }
static const char *jstr(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static const char *err_msg(json_t *o)
{
	return json_string_value(json_object_get(json_object_get(o, "error"), "message"));
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- core ------------------------------------------------------------------------------------ */
static void *loop_main(void *arg)
{
	event_base_dispatch(core.base);
	return NULL;
}

/* Start the core with ykc.so and, when with_sim, ykcsim.so dialling ykc's listeners. */
static int core_start(int with_sim)
{
	int p16 = test_free_port(), p15 = test_free_port();
	if (p16 < 0 || p15 < 0)
		return -1;
	snprintf(conf_path, sizeof conf_path, "/tmp/test_sim_api.%d.conf", (int)getpid());
	FILE *f = fopen(conf_path, "w");
	if (!f)
		return -1;
	fprintf(f,
		"[core]\nlog_level = %s\nplugin_dir = %s\nschema_dir = %s/schema\nscript_dir = %s/scripts\n\n"
		"[http]\nlisten = 127.0.0.1:0\n\n[database]\n",
		getenv("EVCS_TEST_LOG") ? getenv("EVCS_TEST_LOG") : "err", EVCS_YKC_PLUGIN_DIR,
		EVCS_TOP_SRCDIR, EVCS_TOP_SRCDIR);
	testdb_conf(f, &dbc, 4);
	fprintf(f, "\n[api]\nbootstrap_token = %s\ncommand_timeout = 20000\n\n"
		   "[plugin ykc]\nlisten = 127.0.0.1:%d/1.6, 127.0.0.1:%d/1.5\n",
		BOOT, p16, p15);
	if (with_sim)
		fprintf(f, "\n[plugin ykcsim]\ntarget = 127.0.0.1:%d/1.6, 127.0.0.1:%d/1.5\n"
			   "max_piles = %d\nspeed = 30\n",
			p16, p15, MAX_SIM_PILES);
	fclose(f);
	char err[512];
	if (evcs_core_start(&core, conf_path, err, sizeof err) != 0) {
		fprintf(stderr, "core start: %s\n", err);
		return -1;
	}
	http_port = evcs_http_port(core.http);
	pthread_create(&loop_thr, NULL, loop_main, NULL);
	core_up = 1;
	return 0;
}

static void core_stop(void)
{
	if (core_up) {
		event_base_loopexit(core.base, NULL);
		pthread_join(loop_thr, NULL);
		evcs_core_free(&core);
		core_up = 0;
	}
	unlink(conf_path);
}

static long long create(const char *path, const char *token, long long tenant, json_t *body)
{
	json_t *o = NULL;
	long st = call("POST", path, token, tenant, body, &o);
	if (st != 201)
		fprintf(stderr, "POST %s -> %ld\n", path, st);
	long long id = st == 201 ? jint(o, "id") : 0;
	json_decref(o);
	return id;
}

static void make_token(long long tenant, const char *user, const char *role, char *out)
{
	json_t *o = NULL;
	call("POST", "/api/v1/tokens", BOOT, tenant,
	     json_pack("{s:s, s:s}", "username", user, "role", role), &o);
	snprintf(out, 128, "%s", jstr(o, "token") ? jstr(o, "token") : "none");
	json_decref(o);
}

/* a fresh database with tenants A and B, a station each, tokens, and an active tariff for A */
static int seed(void)
{
	tA = create("/api/v1/tenants", BOOT, 0, json_pack("{s:s}", "name", "Sim A"));
	tB = create("/api/v1/tenants", BOOT, 0, json_pack("{s:s}", "name", "Sim B"));
	if (!tA || !tB)
		return -1;
	make_token(tA, "sa-admin", "tenant-admin", tokA);
	make_token(tA, "sa-ro", "read-only", tokAro);
	make_token(tB, "sb-admin", "tenant-admin", tokB);
	stationA = create("/api/v1/stations", tokA, 0, json_pack("{s:s}", "name", "Try-out A"));
	stationB = create("/api/v1/stations", tokB, 0, json_pack("{s:s}", "name", "Try-out B"));
	/* the simulated piles need a billing model to charge: the tenant's newest active tariff */
	if (testdb_sql(raw, "INSERT INTO tariffs (tenant_id, name, model, sharp_elec_rate, sharp_service_rate, "
		"peak_elec_rate, peak_service_rate, flat_elec_rate, flat_service_rate, "
		"valley_elec_rate, valley_service_rate, slots, state) VALUES (%lld, 'std', '0001', "
		"120000, 80000, 100000, 80000, 70000, 60000, 35000, 40000, "
		"'333333333333333322222222222222222200001111111111', 'active')",
		tA) < 0)
		return -1;
	return stationA && stationB ? 0 : -1;
}

static int reset_db(void)
{
	char err[512];
	raw = testdb_reset(&dbc);
	if (!raw)
		return -1;
	int from, to;
	if (evcs_db_migrate(&dbc, EVCS_TOP_SRCDIR "/schema", &from, &to, err, sizeof err) != 0) {
		fprintf(stderr, "migrate: %s\n", err);
		return -1;
	}
	/* the ykc plugin's own schema (ykc_records), compiled into ykc.so: the core starts a plugin
	 * only when its migrations are applied (what `evcsd --migrate` does) */
	char path[1024];
	const evcs_plugin_info_t *info = NULL;
	void *dl = NULL;
	if (evcs_plugin_probe(EVCS_YKC_PLUGIN_DIR, "ykc", NULL, path, sizeof path, &info, &dl, err, sizeof err) !=
	    EVCS_OK) {
		fprintf(stderr, "ykc.so: %s\n", err);
		return -1;
	}
	int rc = evcs_db_migrate_plugin(&dbc, info->name, info->migrations, &from, &to, err, sizeof err);
	dlclose(dl);
	if (rc != 0) {
		fprintf(stderr, "ykc migrations: %s\n", err);
		return -1;
	}
	return 0;
}

static int suite_init_common(int with_sim)
{
	if (testdb_env(&dbc, "test_sim_api") < 0 || reset_db() < 0)
		return 1;
	evthread_use_pthreads();
	if (core_start(with_sim) < 0)
		return 1;
	return seed() < 0 ? 1 : 0;
}

static int suite_sim_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return suite_init_common(1);
}

static int suite_nosim_init(void) { return suite_init_common(0); }

static int suite_clean(void)
{
	core_stop();
	if (raw)
		mysql_close(raw);
	raw = NULL;
	return 0;
}

static int suite_clean_last(void)
{
	suite_clean();
	curl_global_cleanup();
	return 0;
}

/* ---- helpers on the simulator list -------------------------------------------------------------- */
/* The entry for serial in the caller's simulated-pile list (new reference), or NULL. */
static json_t *sim_entry(const char *token, const char *serial, long *status)
{
	json_t *o = NULL;
	long st = call("GET", "/api/v1/simulated-piles", token, 0, NULL, &o);
	if (status)
		*status = st;
	json_t *found = NULL;
	json_t *piles = json_object_get(o, "piles");
	for (size_t i = 0; i < json_array_size(piles); i++)
		if (jstr(json_array_get(piles, i), "serial") &&
		    !strcmp(jstr(json_array_get(piles, i), "serial"), serial))
			found = json_incref(json_array_get(piles, i));
	json_decref(o);
	return found;
}

/* Wait (bounded) until the simulated pile is logged in and holds a billing model. */
static int wait_ready(const char *token, const char *serial, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;
	while (now_ms() < end) {
		json_t *e = sim_entry(token, serial, NULL);
		int ok = e && json_is_true(json_object_get(e, "logged_in")) &&
			 json_is_true(json_object_get(e, "ready"));
		json_decref(e);
		if (ok)
			return 1;
		usleep(100000);
	}
	return 0;
}

/* The session with this trade number (new reference) or NULL. */
static json_t *session_by_trade(const char *token, const char *trade)
{
	char path[128];
	snprintf(path, sizeof path, "/api/v1/sessions?trade_no=%s", trade);
	json_t *o = NULL;
	call("GET", path, token, 0, NULL, &o);
	json_t *items = json_object_get(o, "items");
	json_t *s = json_array_size(items) == 1 ? json_incref(json_array_get(items, 0)) : NULL;
	json_decref(o);
	return s;
}

/* ---- suite "sim" -------------------------------------------------------------------------------- */
static int sim_ops_documented(void);

/* The plugin's operations are part of the served document, and its routes authenticate. */
static void test_routes_documented_and_authenticated(void)
{
	CU_ASSERT_EQUAL(sim_ops_documented(), 3);
	json_t *o = NULL;
	CU_ASSERT_EQUAL(call("GET", "/api/v1/simulated-piles", "not-a-token", 0, NULL, &o), 401);
	json_decref(o);
}

static void test_add_pile_logs_in(void)
{
	char path[128];
	snprintf(path, sizeof path, "/api/v1/stations/%lld/simulated-piles", stationA);
	json_t *o = NULL;
	CU_ASSERT_EQUAL_FATAL(call("POST", path, tokA, 0,
				   json_pack("{s:i, s:s}", "guns", 2, "protocol", "1.6"), &o),
			      201);
	const char *serial = jstr(o, "serial");
	CU_ASSERT_PTR_NOT_NULL_FATAL(serial);
	CU_ASSERT_EQUAL(strlen(serial), 14);
	CU_ASSERT_EQUAL(strspn(serial, "0123456789"), 14);
	CU_ASSERT_EQUAL(strncmp(serial, "99", 2), 0);
	snprintf(serial1, sizeof serial1, "%s", serial);
	pile1 = jint(o, "pile_id");
	CU_ASSERT(pile1 > 0);
	CU_ASSERT_EQUAL(jint(o, "station_id"), stationA);
	json_t *simans = json_object_get(o, "simulator");
	CU_ASSERT_STRING_EQUAL(jstr(simans, "serial"), serial1);
	CU_ASSERT_PTR_NOT_NULL(jstr(simans, "state"));
	json_decref(o);

	/* the pile row belongs to the requesting tenant, on that station, with its connectors */
	snprintf(path, sizeof path, "/api/v1/piles/%lld", pile1);
	CU_ASSERT_EQUAL(call("GET", path, tokA, 0, NULL, &o), 200);
	CU_ASSERT_STRING_EQUAL(jstr(o, "serial"), serial1);
	CU_ASSERT_EQUAL(jint(o, "station_id"), stationA);
	CU_ASSERT_EQUAL(jint(o, "gun_count"), 2);
	json_decref(o);
	CU_ASSERT_EQUAL(testdb_qint(raw, "SELECT COUNT(*) FROM connectors WHERE tenant_id = %lld AND pile_id = %lld",
			     tA, pile1),
			2);
	CU_ASSERT_EQUAL(call("GET", path, tokB, 0, NULL, &o), 404);
	json_decref(o);

	/* it logs in to ykc.so like a charger: online in the pile row and in the simulator's list */
	CU_ASSERT_FATAL(wait_ready(tokA, serial1, 20000));
	long long end = now_ms() + 10000;
	int online = 0;
	while (!online && now_ms() < end) {
		call("GET", path, tokA, 0, NULL, &o);
		online = json_is_true(json_object_get(o, "online"));
		json_decref(o);
		if (!online)
			usleep(100000);
	}
	CU_ASSERT(online);
	json_t *e = sim_entry(tokA, serial1, NULL);
	CU_ASSERT_STRING_EQUAL(jstr(e, "state"), "online");
	CU_ASSERT_EQUAL(jint(e, "guns"), 2);
	CU_ASSERT_STRING_EQUAL(jstr(e, "protocol"), "1.6");
	json_decref(e);
	/* read-only may look */
	long st = 0;
	e = sim_entry(tokAro, serial1, &st);
	CU_ASSERT_EQUAL(st, 200);
	CU_ASSERT_PTR_NOT_NULL(e);
	json_decref(e);
	/* the audit names the action */
	CU_ASSERT_EQUAL(testdb_qint(raw, "SELECT COUNT(*) FROM audit_log WHERE tenant_id = %lld AND "
			     "action = 'pile.simulate'",
			     tA),
			1);
}

static void test_remote_start_stop_session(void)
{
	CU_ASSERT_FATAL(serial1[0] != 0);
	char path[128];
	snprintf(path, sizeof path, "/api/v1/piles/%s/commands", serial1);
	json_t *o = NULL;
	long st = call("POST", path, tokA, 0,
		       json_pack("{s:s, s:i, s:{s:I}}", "command", "start", "gun", 1, "args", "balance",
				 (json_int_t)10000000),
		       &o);
	CU_ASSERT_EQUAL_FATAL(st, 200);
	const char *tn = jstr(json_object_get(o, "result"), "trade_no");
	CU_ASSERT_PTR_NOT_NULL_FATAL(tn);
	CU_ASSERT_EQUAL(strlen(tn), 32);
	char trade[40];
	snprintf(trade, sizeof trade, "%s", tn);
	json_decref(o);

	/* charging: the real-time data moves the live energy above zero */
	long long end = now_ms() + 20000, live = 0;
	while (live <= 0 && now_ms() < end) {
		json_t *s = session_by_trade(tokA, trade);
		live = s ? jint(s, "live_kwh") : 0;
		json_decref(s);
		if (live <= 0)
			usleep(100000);
	}
	CU_ASSERT(live > 0);

	st = call("POST", path, tokA, 0, json_pack("{s:s, s:i}", "command", "stop", "gun", 1), &o);
	CU_ASSERT_EQUAL(st, 200);
	json_decref(o);

	/* the transaction record closes the session with its energy */
	end = now_ms() + 20000;
	json_t *s = NULL;
	while (now_ms() < end) {
		s = session_by_trade(tokA, trade);
		if (s && jstr(s, "state") && !strcmp(jstr(s, "state"), "finished"))
			break;
		json_decref(s);
		s = NULL;
		usleep(100000);
	}
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_STRING_EQUAL(jstr(s, "pile_serial"), serial1);
	CU_ASSERT_EQUAL(jint(s, "gun_no"), 1);
	CU_ASSERT(jint(s, "total_kwh") > 0);
	CU_ASSERT(jint(s, "total_amount") > 0);
	json_decref(s);
	/* tenant B sees nothing of it */
	s = session_by_trade(tokB, trade);
	CU_ASSERT_PTR_NULL(s);
	json_decref(s);
}

static void test_tenant_isolation(void)
{
	CU_ASSERT_FATAL(serial1[0] != 0);
	long st = 0;
	json_t *e = sim_entry(tokB, serial1, &st);
	CU_ASSERT_EQUAL(st, 200);
	CU_ASSERT_PTR_NULL(e);
	json_decref(e);
	char path[128];
	snprintf(path, sizeof path, "/api/v1/simulated-piles/%s", serial1);
	json_t *o = NULL;
	CU_ASSERT_EQUAL(call("DELETE", path, tokB, 0, NULL, &o), 404);
	json_decref(o);
	/* B cannot add to A's station, nor command A's pile */
	snprintf(path, sizeof path, "/api/v1/stations/%lld/simulated-piles", stationA);
	CU_ASSERT_EQUAL(call("POST", path, tokB, 0, json_pack("{s:i}", "guns", 1), &o), 404);
	json_decref(o);
	snprintf(path, sizeof path, "/api/v1/piles/%s/commands", serial1);
	CU_ASSERT_EQUAL(call("POST", path, tokB, 0, json_pack("{s:s, s:i}", "command", "stop", "gun", 1),
			     &o),
			404);
	json_decref(o);
	/* still running for A */
	e = sim_entry(tokA, serial1, NULL);
	CU_ASSERT_PTR_NOT_NULL(e);
	json_decref(e);
}

static void test_validation(void)
{
	char path[128];
	snprintf(path, sizeof path, "/api/v1/stations/%lld/simulated-piles", stationA);
	long long before = testdb_qint(raw, "SELECT COUNT(*) FROM piles");
	json_t *o = NULL;
	CU_ASSERT_EQUAL(call("POST", path, tokA, 0, json_pack("{s:i}", "guns", 5), &o), 400);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "invalid");
	json_decref(o);
	CU_ASSERT_EQUAL(call("POST", path, tokA, 0, json_pack("{s:s}", "protocol", "1.7"), &o), 400);
	json_decref(o);
	CU_ASSERT_EQUAL(call("POST", path, tokA, 0, json_pack("{s:s}", "serial", "99000000000001"), &o),
			400);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "unknown_field");
	json_decref(o);
	CU_ASSERT_EQUAL(call("POST", path, tokAro, 0, json_pack("{s:i}", "guns", 1), &o), 403);
	json_decref(o);
	CU_ASSERT_EQUAL(call("POST", "/api/v1/stations/999999/simulated-piles", tokA, 0,
			     json_pack("{s:i}", "guns", 1), &o),
			404);
	json_decref(o);
	CU_ASSERT_EQUAL(call("DELETE", "/api/v1/simulated-piles/abc", tokA, 0, NULL, &o), 404);
	json_decref(o);
	CU_ASSERT_EQUAL(testdb_qint(raw, "SELECT COUNT(*) FROM piles"), before);
}

static void test_max_piles_and_1_5(void)
{
	char path[128];
	snprintf(path, sizeof path, "/api/v1/stations/%lld/simulated-piles", stationA);
	json_t *o = NULL;
	/* a 1.5 pile dials the 1.5 listener and logs in too */
	CU_ASSERT_EQUAL_FATAL(call("POST", path, tokA, 0,
				   json_pack("{s:i, s:s}", "guns", 1, "protocol", "1.5"), &o),
			      201);
	char serial2[16];
	snprintf(serial2, sizeof serial2, "%s", jstr(o, "serial") ? jstr(o, "serial") : "");
	CU_ASSERT(strcmp(serial2, serial1) != 0);
	json_decref(o);
	CU_ASSERT(wait_ready(tokA, serial2, 20000));
	json_t *e = sim_entry(tokA, serial2, NULL);
	CU_ASSERT_STRING_EQUAL(jstr(e, "protocol"), "1.5");
	json_decref(e);
	CU_ASSERT_EQUAL(testdb_qint(raw, "SELECT protocol_version FROM piles WHERE serial = '%s'", serial2), 15);

	/* the simulator is full (max_piles = 2): 409, and the row made for it is taken back */
	long long before = testdb_qint(raw, "SELECT COUNT(*) FROM piles WHERE tenant_id = %lld", tA);
	snprintf(path, sizeof path, "/api/v1/stations/%lld/simulated-piles", stationB);
	CU_ASSERT_EQUAL(call("POST", path, tokB, 0, json_pack("{s:i}", "guns", 1), &o), 409);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "simulator_full");
	json_decref(o);
	CU_ASSERT_EQUAL(testdb_qint(raw, "SELECT COUNT(*) FROM piles WHERE tenant_id = %lld", tB), 0);
	CU_ASSERT_EQUAL(testdb_qint(raw, "SELECT COUNT(*) FROM connectors WHERE tenant_id = %lld", tB), 0);
	CU_ASSERT_EQUAL(testdb_qint(raw, "SELECT COUNT(*) FROM piles WHERE tenant_id = %lld", tA), before);
	CU_ASSERT_EQUAL(testdb_qint(raw, "SELECT COUNT(*) FROM audit_log WHERE tenant_id = %lld AND "
			     "action = 'pile.simulate_failed'",
			     tB),
			1);

	/* removing the 1.5 pile frees a place: B can add one now */
	char dpath[128];
	snprintf(dpath, sizeof dpath, "/api/v1/simulated-piles/%s", serial2);
	CU_ASSERT_EQUAL(call("DELETE", dpath, tokA, 0, NULL, NULL), 204);
	CU_ASSERT_EQUAL(call("POST", path, tokB, 0, json_pack("{s:i}", "guns", 1), &o), 201);
	char serial3[16];
	snprintf(serial3, sizeof serial3, "%s", jstr(o, "serial") ? jstr(o, "serial") : "");
	json_decref(o);
	/* B lists only its own pile */
	snprintf(path, sizeof path, "/api/v1/simulated-piles");
	CU_ASSERT_EQUAL(call("GET", path, tokB, 0, NULL, &o), 200);
	json_t *piles = json_object_get(o, "piles");
	CU_ASSERT_EQUAL(json_array_size(piles), 1);
	CU_ASSERT_STRING_EQUAL(jstr(json_array_get(piles, 0), "serial"), serial3);
	CU_ASSERT_EQUAL(jint(o, "max_piles"), MAX_SIM_PILES);
	json_decref(o);
}

static void test_remove_pile(void)
{
	CU_ASSERT_FATAL(serial1[0] != 0);
	char path[128];
	snprintf(path, sizeof path, "/api/v1/simulated-piles/%s", serial1);
	json_t *o = NULL;
	CU_ASSERT_EQUAL(call("DELETE", path, tokAro, 0, NULL, &o), 403);
	json_decref(o);
	CU_ASSERT_EQUAL(call("DELETE", path, tokA, 0, NULL, NULL), 204);
	json_t *e = sim_entry(tokA, serial1, NULL);
	CU_ASSERT_PTR_NULL(e);
	json_decref(e);
	CU_ASSERT_EQUAL(call("DELETE", path, tokA, 0, NULL, &o), 404);
	json_decref(o);
	/* the charger is gone: ykc.so reports the pile offline; the row and its history stay */
	char ppath[128];
	snprintf(ppath, sizeof ppath, "/api/v1/piles/%lld", pile1);
	long long end = now_ms() + 20000;
	int online = 1;
	while (online && now_ms() < end) {
		CU_ASSERT_EQUAL(call("GET", ppath, tokA, 0, NULL, &o), 200);
		online = json_is_true(json_object_get(o, "online"));
		json_decref(o);
		if (online)
			usleep(100000);
	}
	CU_ASSERT(!online);
	CU_ASSERT_EQUAL(testdb_qint(raw, "SELECT COUNT(*) FROM audit_log WHERE tenant_id = %lld AND "
			     "action = 'pile.simulate_stop' AND object_id = '%s'",
			     tA, serial1),
			1);
}

/* The tenant's pile quota (tenants.max_piles) holds for simulated piles too: refused with 409
 * before anything is written or simulated; with room again the same request succeeds. */
static void test_tenant_quota(void)
{
	char path[128];
	snprintf(path, sizeof path, "/api/v1/stations/%lld/simulated-piles", stationB);
	long long rows = testdb_qint(raw, "SELECT COUNT(*) FROM piles WHERE tenant_id = %lld", tB);
	long long audits = testdb_qint(raw, "SELECT COUNT(*) FROM audit_log WHERE tenant_id = %lld AND "
				"action = 'pile.simulate'",
				tB);
	CU_ASSERT_FATAL(rows >= 1);
	CU_ASSERT_EQUAL_FATAL(testdb_sql(raw, "UPDATE tenants SET max_piles = %lld WHERE id = %lld", rows, tB), 0);
	json_t *o = NULL;
	CU_ASSERT_EQUAL(call("POST", path, tokB, 0, json_pack("{s:i}", "guns", 1), &o), 409);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "quota_exceeded");
	json_decref(o);
	CU_ASSERT_EQUAL(testdb_qint(raw, "SELECT COUNT(*) FROM piles WHERE tenant_id = %lld", tB), rows);
	CU_ASSERT_EQUAL(testdb_qint(raw, "SELECT COUNT(*) FROM audit_log WHERE tenant_id = %lld AND "
			     "action = 'pile.simulate'",
			     tB),
			audits);
	CU_ASSERT_EQUAL(call("GET", "/api/v1/simulated-piles", tokB, 0, NULL, &o), 200);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "piles")), (size_t)rows);
	json_decref(o);
	/* one more allowed: the simulator has room (serial1 was removed), so it starts */
	CU_ASSERT_EQUAL_FATAL(testdb_sql(raw, "UPDATE tenants SET max_piles = %lld WHERE id = %lld", rows + 1, tB), 0);
	CU_ASSERT_EQUAL(call("POST", path, tokB, 0, json_pack("{s:i}", "guns", 1), &o), 201);
	char dpath[128];
	const char *serial = jstr(o, "serial");
	snprintf(dpath, sizeof dpath, "/api/v1/simulated-piles/%s", serial ? serial : "none");
	json_decref(o);
	CU_ASSERT_EQUAL(testdb_qint(raw, "SELECT COUNT(*) FROM piles WHERE tenant_id = %lld", tB), rows + 1);
	CU_ASSERT_EQUAL(call("DELETE", dpath, tokB, 0, NULL, NULL), 204);
}

/* ---- suite "nosim" ----------------------------------------------------------------------- */
/* The operations the plugin contributes to the served OpenAPI document (how many of the three). */
static int sim_ops_documented(void)
{
	json_t *spec = NULL;
	if (call("GET", "/api/v1/openapi.json", "", 0, NULL, &spec) != 200)
		return -1;
	json_t *paths = json_object_get(spec, "paths");
	int n = !!json_object_get(json_object_get(paths, "/api/v1/stations/{station_id}/simulated-piles"),
				  "post") +
		!!json_object_get(json_object_get(paths, "/api/v1/simulated-piles"), "get") +
		!!json_object_get(json_object_get(paths, "/api/v1/simulated-piles/{serial}"), "delete");
	json_decref(spec);
	return n;
}

/* Without the plugin the routes do not exist: 404 like any unknown resource (the core cannot
 * know which plugin would have served it), nothing written, nothing documented. */
static void test_without_simulator(void)
{
	char path[128];
	snprintf(path, sizeof path, "/api/v1/stations/%lld/simulated-piles", stationA);
	json_t *o = NULL;
	CU_ASSERT_EQUAL(call("POST", path, tokA, 0, json_pack("{s:i}", "guns", 1), &o), 404);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "not_found");
	CU_ASSERT_PTR_NOT_NULL(err_msg(o) ? strstr(err_msg(o), "simulated-piles") : NULL);
	json_decref(o);
	CU_ASSERT_EQUAL(testdb_qint(raw, "SELECT COUNT(*) FROM piles"), 0);
	CU_ASSERT_EQUAL(testdb_qint(raw, "SELECT COUNT(*) FROM audit_log WHERE action LIKE 'pile.simulate%%'"), 0);
	CU_ASSERT_EQUAL(call("GET", "/api/v1/simulated-piles", tokA, 0, NULL, &o), 404);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "not_found");
	json_decref(o);
	CU_ASSERT_EQUAL(call("DELETE", "/api/v1/simulated-piles/99000000000001", tokA, 0, NULL, &o), 404);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "not_found");
	json_decref(o);
	CU_ASSERT_EQUAL(sim_ops_documented(), 0);
}

static void register_tests(void)
{
	CU_pSuite s = CU_add_suite("sim", suite_sim_init, suite_clean);
	EVCS_ADD(s, test_routes_documented_and_authenticated);
	EVCS_ADD(s, test_add_pile_logs_in);
	EVCS_ADD(s, test_remote_start_stop_session);
	EVCS_ADD(s, test_tenant_isolation);
	EVCS_ADD(s, test_validation);
	EVCS_ADD(s, test_max_piles_and_1_5);
	EVCS_ADD(s, test_remove_pile);
	EVCS_ADD(s, test_tenant_quota);
	CU_pSuite n = CU_add_suite("nosim", suite_nosim_init, suite_clean_last);
	EVCS_ADD(n, test_without_simulator);
}

EVCS_TEST_MAIN(register_tests)
