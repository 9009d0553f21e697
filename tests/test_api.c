/*
 * tests/test_api.c: the operator REST API, end to end. The real core runs in-process (its
 * event loop on a second thread) against a private MariaDB (tests/with-mariadb.sh exports
 * EVCS_DB_*); the test talks HTTP over loopback with blocking libcurl from the main thread and
 * seeds what only piles produce (sessions, samples, alarms, presence) with plain SQL.
 * Work that must happen on the loop (claiming a pile on the bus, subscribing) is posted there
 * with event_base_once (the base is created with pthread locking).
 * The core loads tests/plugins/tp_routes.so, a plugin serving operator-API routes: its tests
 * are in tests/test_api_plugin.c (same program, harness shared through tests/api_test.h), and
 * the OpenAPI consistency check (tests/test_api_openapi.c) covers its routes like the core's.
 * Drops and re-creates EVCS_DB_NAME: run the test programs one at a time (make -j1 check).
 */
#include "api.h"
#include "api_test.h"
#include "core.h"
#include "db.h"
#include "testdb.h"
#include "testhttp.h"
#include "testutil.h"

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

evcs_core_t core;
static pthread_t loop_thr;
int port;
static int env_ok;
static evcs_db_config_t dbc;
static char conf_path[256];
MYSQL *raw;

/* ---- HTTP client ------------------------------------------------------------------------- */
long http(const char *method, const char *path, const char *token, long long tenant,
	  const char *body, const char *ctype, json_t **out)
{
	return test_http(port, method, path, token, tenant, body, ctype, 20L, out, NULL);
}

long call(const char *method, const char *path, const char *token, long long tenant,
	  json_t *body, json_t **out)
{
	return test_call(port, method, path, token, tenant, body, out);
}

#define CHECK TEST_CHECK

long long jint(json_t *o, const char *k) { return test_jint(o, k); }

long long create(const char *path, const char *token, long long tenant, json_t *body)
{
	return test_create(port, path, token, tenant, body);
}

void sql(const char *q)
{
	if (testdb_sql(raw, "%s", q) != 0)
		CU_FAIL("seed SQL failed");
}

/* ---- loop-thread helpers -------------------------------------------------------------------- */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int posted_done;
static int tariff_events;
static char last_tariff_pile[32];

void run_on_loop(event_callback_fn fn, void *arg)
{
	pthread_mutex_lock(&mu);
	posted_done = 0;
	pthread_mutex_unlock(&mu);
	struct timeval zero = {0, 0};
	event_base_once(core.base, -1, EV_TIMEOUT, fn, arg, &zero);
	for (int i = 0; i < 500; i++) {
		pthread_mutex_lock(&mu);
		int d = posted_done;
		pthread_mutex_unlock(&mu);
		if (d)
			return;
		usleep(10000);
	}
	CU_FAIL("loop did not run the posted work");
}

void mark_done(void)
{
	pthread_mutex_lock(&mu);
	posted_done = 1;
	pthread_mutex_unlock(&mu);
}

/* a fake protocol plugin: answers by command name */
static int fake_pile(evcs_cmd_t *cmd, const evcs_command_t *c, void *ud)
{
	if (!strcmp(c->name, "reboot")) {
		evcs_bus_command_reply(cmd, EVCS_OK, "{\"accepted\":true}");
		return EVCS_OK;
	}
	if (!strcmp(c->name, "stop")) {
		evcs_bus_command_reply(cmd, EVCS_EREFUSED, "{\"reason\":\"not charging\"}");
		return EVCS_OK;
	}
	if (!strcmp(c->name, "start"))
		return EVCS_OK; /* never answers: the bus times out */
	return EVCS_ENOTSUP;
}

struct claim_arg {
	long long tenant;
	const char *serial;
};

static void do_claim(evutil_socket_t fd, short ev, void *arg)
{
	struct claim_arg *a = arg;
	evcs_bus_pile_claim(core.bus, "fakeproto", a->tenant, a->serial, fake_pile, NULL);
	mark_done();
}

static int on_tariff(const evcs_event_t *ev, void *ud)
{
	pthread_mutex_lock(&mu);
	tariff_events++;
	snprintf(last_tariff_pile, sizeof last_tariff_pile, "%s", ev->pile ? ev->pile : "");
	pthread_mutex_unlock(&mu);
	return EVCS_OK;
}

static void do_subscribe(evutil_socket_t fd, short ev, void *arg)
{
	evcs_bus_subscribe(core.bus, EVCS_EV_TARIFF_CHANGED, 0, on_tariff, NULL, "test", NULL);
	mark_done();
}

static void *loop_main(void *arg)
{
	event_base_dispatch(core.base);
	return NULL;
}

/* ---- fixtures ----------------------------------------------------------------------------- */
long long tA, tB, tD, tW;
char tokA[128], tokAop[128], tokAro[128], tokB[128];
static long long tokA_id;

void make_token(long long tenant, const char *user, const char *role, char *out, long long *id)
{
	test_make_token(port, BOOT, tenant, user, role, out, id);
}

static long long make_tenant(const char *name, int max_piles)
{
	return create("/api/v1/tenants", BOOT, 0,
		      json_pack("{s:s, s:i}", "name", name, "max_piles", max_piles));
}

static int suite_init(void)
{
	if (testdb_env(&dbc, "test_api") != 0)
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
	snprintf(conf_path, sizeof conf_path, "/tmp/test_api.%d.conf", (int)getpid());
	FILE *f = fopen(conf_path, "w");
	if (!f)
		return 1;
	fprintf(f,
		"[core]\nlog_level = err\nschema_dir = %s/schema\n\n[http]\nlisten = 127.0.0.1:0\n"
		"max_body = 65536\n\n[database]\n",
		EVCS_TOP_SRCDIR);
	testdb_conf(f, &dbc, 4);
	fprintf(f, "\n[api]\nbootstrap_token = %s\ncommand_timeout = 300\n", BOOT);
	/* a plugin serving operator-API routes (tests/test_api_plugin.c) */
	fprintf(f, "\n[plugin tp_routes]\nfile = %s/tp_routes.so\n", TEST_PLUGIN_DIR);
	fclose(f);
	evthread_use_pthreads();
	if (evcs_core_start(&core, conf_path, err, sizeof err) != 0) {
		fprintf(stderr, "core start: %s\n", err);
		return 1;
	}
	port = evcs_http_port(core.http);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	pthread_create(&loop_thr, NULL, loop_main, NULL);
	env_ok = 1;
	tA = make_tenant("Tenant A", 0);
	tB = make_tenant("Tenant B", 0);
	tD = make_tenant("Tenant D", 0);
	tW = make_tenant("Tenant W", 0);
	make_token(tA, "a-admin", "tenant-admin", tokA, &tokA_id);
	make_token(tA, "a-op", "operator", tokAop, NULL);
	make_token(tA, "a-ro", "read-only", tokAro, NULL);
	make_token(tB, "b-admin", "tenant-admin", tokB, NULL);
	return (tA && tB && tD && tW) ? 0 : 1;
}

void api_test_stop_core(void)
{
	if (env_ok) {
		event_base_loopexit(core.base, NULL);
		pthread_join(loop_thr, NULL);
		evcs_core_free(&core);
		curl_global_cleanup();
		env_ok = 0;
	}
}

static int suite_clean(void)
{
	api_test_stop_core();
	if (raw)
		mysql_close(raw);
	unlink(conf_path);
	return 0;
}

/* ---- auth --------------------------------------------------------------------------------- */
static void test_auth_and_roles(void)
{
	json_t *o = NULL;
	CU_ASSERT_EQUAL(http("GET", "/api/v1/stations", NULL, 0, NULL, NULL, &o), 401);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "unauthorized");
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/stations", "evcs_nope", 0, NULL, NULL, NULL), 401);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/me", "", 0, NULL, NULL, NULL), 401);
	/* each role sees itself */
	CU_ASSERT_EQUAL(http("GET", "/api/v1/me", tokAro, 0, NULL, NULL, &o), 200);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "role")), "read-only");
	CU_ASSERT_EQUAL(jint(o, "tenant_id"), tA);
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/me", BOOT, 0, NULL, NULL, &o), 200);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "role")), "platform-admin");
	json_decref(o);
	/* 403 per role */
	CU_ASSERT_EQUAL(call("POST", "/api/v1/stations", tokAro, 0, json_pack("{s:s}", "name", "x"),
			     NULL),
			403);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/audit", tokAop, 0, NULL, NULL, NULL), 403);
	CU_ASSERT_EQUAL(http("PUT", "/api/v1/scripts/alarms", tokAop, 0, "x = 1", "text/plain", NULL),
			403);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tenants", tokA, 0, NULL, NULL, NULL), 403);
	CU_ASSERT_EQUAL(call("POST", "/api/v1/tenants", tokA, 0, json_pack("{s:s}", "name", "evil"),
			     NULL),
			403);
	CU_ASSERT_EQUAL(call("POST", "/api/v1/tokens", tokAop, 0,
			     json_pack("{s:s, s:s}", "username", "x1", "role", "read-only"), NULL),
			403);
	CU_ASSERT_EQUAL(call("POST", "/api/v1/tokens", tokA, 0,
			     json_pack("{s:s, s:s}", "username", "x2", "role", "platform-admin"),
			     &o),
			403);
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "role");
	json_decref(o);
	/* tenant binding */
	CU_ASSERT_EQUAL(http("GET", "/api/v1/stations", BOOT, 0, NULL, NULL, &o), 400);
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "X-Tenant-ID");
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/stations", BOOT, 999999, NULL, NULL, NULL), 404);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/stations", tokA, tB, NULL, NULL, NULL), 403);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/stations", tokA, tA, NULL, NULL, NULL), 200);
	/* a username of another tenant cannot be taken over */
	CU_ASSERT_EQUAL(call("POST", "/api/v1/tokens", BOOT, tB,
			     json_pack("{s:s, s:s}", "username", "a-op", "role", "operator"), &o),
			409);
	json_decref(o);
	/* revocation and suspension */
	char t2[128];
	long long t2id = 0;
	make_token(tA, "a-temp", "operator", t2, &t2id);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/me", t2, 0, NULL, NULL, NULL), 200);
	char path[128];
	snprintf(path, sizeof path, "/api/v1/tokens/%lld", t2id);
	CU_ASSERT_EQUAL(http("DELETE", path, tokA, 0, NULL, NULL, NULL), 204);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/me", t2, 0, NULL, NULL, NULL), 401);
	long long tS = make_tenant("Tenant S", 0);
	char tokS[128];
	make_token(tS, "s-admin", "tenant-admin", tokS, NULL);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/me", tokS, 0, NULL, NULL, NULL), 200);
	snprintf(path, sizeof path, "/api/v1/tenants/%lld", tS);
	CU_ASSERT_EQUAL(call("PATCH", path, BOOT, 0, json_pack("{s:s}", "status", "suspended"), &o),
			200);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "status")), "suspended");
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/me", tokS, 0, NULL, NULL, &o), 403);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "tenant_inactive");
	json_decref(o);
	/* tokens list shows no secrets */
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tokens", tokA, 0, NULL, NULL, &o), 200);
	CU_ASSERT(json_array_size(json_object_get(o, "items")) >= 3);
	char *s = json_dumps(o, 0);
	CU_ASSERT_PTR_NULL(strstr(s, tokA));
	CU_ASSERT_PTR_NULL(strstr(s, "\"token\""));
	free(s);
	json_decref(o);
}

static void test_routing_errors(void)
{
	json_t *o = NULL;
	CU_ASSERT_EQUAL(http("GET", "/api/v1/nothing-here", tokA, 0, NULL, NULL, &o), 404);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "not_found");
	json_decref(o);
	CU_ASSERT_EQUAL(http("DELETE", "/api/v1/dashboard", tokA, 0, NULL, NULL, NULL), 405);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/stations/abc", tokA, 0, NULL, NULL, NULL), 404);
	CU_ASSERT_EQUAL(http("POST", "/api/v1/stations", tokA, 0, "{\"name\": ", NULL, &o), 400);
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "body");
	json_decref(o);
	CU_ASSERT_EQUAL(http("POST", "/api/v1/stations", tokA, 0, "[1,2]", NULL, &o), 400);
	json_decref(o);
	/* 413 from evhttp: [http] max_body is 64 KiB here */
	size_t big = 70000;
	char *b = malloc(big + 1);
	memset(b, 'x', big);
	b[big] = 0;
	memcpy(b, "{\"name\":\"", 9);
	CU_ASSERT_EQUAL(http("POST", "/api/v1/stations", tokA, 0, b, NULL, NULL), 413);
	free(b);
	/* the server is still fine afterwards */
	CU_ASSERT_EQUAL(http("GET", "/api/v1/me", tokA, 0, NULL, NULL, NULL), 200);
}

/* ---- CRUD ---------------------------------------------------------------------------------- */
static void test_stations_crud_pagination_filters_audit(void)
{
	json_t *o = NULL;
	long long id = create("/api/v1/stations", tokAop, 0,
			      json_pack("{s:s, s:s, s:i, s:[s]}", "name", "Alpha", "area_code",
					"310000", "lat_e6", 31000000, "facilities", "parking"));
	char path[128];
	snprintf(path, sizeof path, "/api/v1/stations/%lld", id);
	CU_ASSERT_EQUAL(http("GET", path, tokAro, 0, NULL, NULL, &o), 200);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "name")), "Alpha");
	CU_ASSERT_EQUAL(jint(o, "lat_e6"), 31000000);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "status")), "open");
	CU_ASSERT(json_is_array(json_object_get(o, "facilities")));
	json_decref(o);
	CU_ASSERT_EQUAL(call("PATCH", path, tokAop, 0,
			     json_pack("{s:s, s:n}", "status", "maintenance", "lat_e6"), &o),
			200);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "status")), "maintenance");
	CU_ASSERT(json_is_null(json_object_get(o, "lat_e6")));
	json_decref(o);
	/* validation names the field */
	struct {
		json_t *body;
		const char *field;
	} bad[] = {
	    {json_pack("{s:s}", "address", "no name"), "name"},
	    {json_pack("{s:s, s:i}", "name", "x", "lat_e6", 95000000), "lat_e6"},
	    {json_pack("{s:s, s:s}", "name", "x", "status", "exploded"), "status"},
	    {json_pack("{s:s, s:s}", "name", "x", "area_code", "31A000"), "area_code"},
	    {json_pack("{s:s, s:i}", "name", "x", "colour", 3), "colour"},
	    {json_pack("{s:i}", "name", 12), "name"},
	    {json_pack("{s:s, s:i}", "name", "x", "id", 5), "id"},
	    {json_pack("{s:s, s:s}", "name", "x", "facilities", "parking"), "facilities"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CU_ASSERT_EQUAL(call("POST", "/api/v1/stations", tokAop, 0, bad[i].body, &o), 400);
		CU_ASSERT_PTR_NOT_NULL(test_err_field(o));
		if (test_err_field(o))
			CU_ASSERT_STRING_EQUAL(test_err_field(o), bad[i].field);
		json_decref(o);
	}
	CU_ASSERT_EQUAL(call("PATCH", path, tokAop, 0, json_object(), &o), 400);
	json_decref(o);
	/* pagination and filters */
	for (int i = 0; i < 5; i++) {
		char n[32];
		snprintf(n, sizeof n, "Page %d", i);
		create("/api/v1/stations", tokAop, 0,
		       json_pack("{s:s, s:s}", "name", n, "status", i % 2 ? "closed" : "open"));
	}
	CU_ASSERT_EQUAL(http("GET", "/api/v1/stations?limit=2", tokAro, 0, NULL, NULL, &o), 200);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "items")), 2);
	CU_ASSERT_EQUAL(jint(o, "next_offset"), 2);
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/stations?limit=2&offset=4", tokAro, 0, NULL, NULL, &o),
			200);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "items")), 2); /* 6 in all */
	CU_ASSERT(json_is_null(json_object_get(o, "next_offset")));
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/stations?status=closed", tokAro, 0, NULL, NULL, &o), 200);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "items")), 2);
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/stations?name=Alpha", tokAro, 0, NULL, NULL, &o), 200);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "items")), 1);
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/stations?status=bogus", tokAro, 0, NULL, NULL, &o), 400);
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "status");
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/stations?limit=0", tokAro, 0, NULL, NULL, &o), 400);
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "limit");
	json_decref(o);
	/* delete, then it is gone */
	CU_ASSERT_EQUAL(http("DELETE", path, tokAop, 0, NULL, NULL, NULL), 204);
	CU_ASSERT_EQUAL(http("GET", path, tokAop, 0, NULL, NULL, NULL), 404);
	CU_ASSERT_EQUAL(http("DELETE", path, tokAop, 0, NULL, NULL, NULL), 404);
	/* every change left an audit row: who, what, from where */
	char q[256];
	snprintf(q, sizeof q, "/api/v1/audit?object_type=station&object_id=%lld", id);
	CU_ASSERT_EQUAL(http("GET", q, tokA, 0, NULL, NULL, &o), 200);
	json_t *items = json_object_get(o, "items");
	CU_ASSERT_EQUAL(json_array_size(items), 3);
	int seen = 0;
	for (size_t i = 0; i < json_array_size(items); i++) {
		json_t *e = json_array_get(items, i);
		const char *act = json_string_value(json_object_get(e, "action"));
		if (!strcmp(act, "station.create"))
			seen |= 1;
		if (!strcmp(act, "station.update"))
			seen |= 2;
		if (!strcmp(act, "station.delete"))
			seen |= 4;
		CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(e, "actor")), "user:a-op");
		CU_ASSERT_PTR_NOT_NULL(strstr(json_string_value(json_object_get(e, "peer")),
					      "127.0.0.1:"));
	}
	CU_ASSERT_EQUAL(seen, 7);
	json_decref(o);
}

static void test_piles_connectors_unclaimed_quota(void)
{
	json_t *o = NULL;
	long long st = create("/api/v1/stations", tokAop, 0, json_pack("{s:s}", "name", "Pile site"));
	long long pid = create("/api/v1/piles", tokAop, 0,
			       json_pack("{s:s, s:I, s:i}", "serial", "32010200000001", "station_id",
					 (json_int_t)st, "gun_count", 2));
	char q[256];
	snprintf(q, sizeof q, "/api/v1/connectors?pile_id=%lld", pid);
	CU_ASSERT_EQUAL(http("GET", q, tokAro, 0, NULL, NULL, &o), 200);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "items")), 2);
	json_decref(o);
	/* duplicate serial, in the same or another tenant */
	CU_ASSERT_EQUAL(call("POST", "/api/v1/piles", tokAop, 0,
			     json_pack("{s:s}", "serial", "32010200000001"), &o),
			409);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "conflict");
	json_decref(o);
	CU_ASSERT_EQUAL(call("POST", "/api/v1/piles", tokB, 0,
			     json_pack("{s:s}", "serial", "32010200000001"), NULL),
			409);
	/* the identity is the protocol's text (any shape), but at most 64 bytes */
	CU_ASSERT_EQUAL(call("POST", "/api/v1/piles", tokAop, 0,
			     json_pack("{s:s}", "serial",
				       "CP-01234567890123456789012345678901234567890123456789012345678901"),
			     &o),
			400);
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "serial");
	json_decref(o);
	CU_ASSERT_EQUAL(call("POST", "/api/v1/piles", tokAop, 0,
			     json_pack("{s:s, s:i}", "serial", "32010200000002", "gun_count", 0), &o),
			400);
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "gun_count");
	json_decref(o);
	/* a station of another tenant is not a valid reference */
	long long stB = create("/api/v1/stations", tokB, 0, json_pack("{s:s}", "name", "B site"));
	CU_ASSERT_EQUAL(call("POST", "/api/v1/piles", tokAop, 0,
			     json_pack("{s:s, s:I}", "serial", "32010200000003", "station_id",
				       (json_int_t)stB),
			     &o),
			400);
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "station_id");
	json_decref(o);
	/* the station with a pile cannot be deleted */
	char path[128];
	snprintf(path, sizeof path, "/api/v1/stations/%lld", st);
	CU_ASSERT_EQUAL(http("DELETE", path, tokAop, 0, NULL, NULL, NULL), 409);
	/* pile update: serial is fixed */
	snprintf(path, sizeof path, "/api/v1/piles/%lld", pid);
	CU_ASSERT_EQUAL(call("PATCH", path, tokAop, 0, json_pack("{s:s}", "serial", "32010200000009"),
			     &o),
			400);
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "serial");
	json_decref(o);
	CU_ASSERT_EQUAL(call("PATCH", path, tokAop, 0, json_pack("{s:s}", "name", "North 1"), &o), 200);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "name")), "North 1");
	CU_ASSERT(json_is_false(json_object_get(o, "online")));
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/piles?serial=32010200000001", tokAro, 0, NULL, NULL, &o),
			200);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "items")), 1);
	json_decref(o);
	/* unclaimed: list, claim with one call (login fields fill the gaps), gone afterwards */
	sql("INSERT INTO unclaimed_piles (serial, first_seen_ms, last_seen_ms, peer, login) VALUES "
	    "('55000000000001', 1, 2, '10.0.0.9:4000', '{\"gun_count\": 3, \"pile_type\": 1}')");
	CU_ASSERT_EQUAL(http("GET", "/api/v1/piles/unclaimed", tokAop, 0, NULL, NULL, &o), 200);
	json_t *it = json_object_get(o, "items");
	int found = 0;
	for (size_t i = 0; i < json_array_size(it); i++)
		found |= !strcmp(json_string_value(json_object_get(json_array_get(it, i), "serial")),
				 "55000000000001");
	CU_ASSERT(found);
	json_decref(o);
	CU_ASSERT_EQUAL(call("POST", "/api/v1/piles/unclaimed/55000000000001/claim", tokAop, 0,
			     json_pack("{s:s}", "name", "Found"), &o),
			201);
	CU_ASSERT_EQUAL(jint(o, "gun_count"), 3);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "current_type")), "ac");
	json_decref(o);
	CU_ASSERT_EQUAL(call("POST", "/api/v1/piles/unclaimed/55000000000001/claim", tokAop, 0, NULL,
			     NULL),
			404);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/piles/unclaimed", tokAop, 0, NULL, NULL, &o), 200);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "items")), 0);
	json_decref(o);
	/* connectors: add, duplicate gun, delete */
	long long cid = create("/api/v1/connectors", tokAop, 0,
			       json_pack("{s:I, s:i}", "pile_id", (json_int_t)pid, "gun_no", 5));
	CU_ASSERT_EQUAL(call("POST", "/api/v1/connectors", tokAop, 0,
			     json_pack("{s:I, s:i}", "pile_id", (json_int_t)pid, "gun_no", 5), NULL),
			409);
	snprintf(path, sizeof path, "/api/v1/connectors/%lld", cid);
	CU_ASSERT_EQUAL(call("PATCH", path, tokAop, 0, json_pack("{s:i}", "status", 3), &o), 400);
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "status");
	json_decref(o);
	CU_ASSERT_EQUAL(http("DELETE", path, tokAop, 0, NULL, NULL, NULL), 204);
	/* quota */
	long long tQ = make_tenant("Tenant Q", 1);
	CU_ASSERT_EQUAL(call("POST", "/api/v1/piles", BOOT, tQ,
			     json_pack("{s:s}", "serial", "77000000000001"), NULL),
			201);
	CU_ASSERT_EQUAL(call("POST", "/api/v1/piles", BOOT, tQ,
			     json_pack("{s:s}", "serial", "77000000000002"), &o),
			409);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "quota_exceeded");
	json_decref(o);
}

json_t *tariff_body(const char *name, int flat)
{
	json_t *b = json_pack("{s:s, s:s}", "name", name, "slots",
			      "333333333333333322222222222222221111111111111111");
	const char *r[] = {"sharp_elec_rate", "sharp_service_rate", "peak_elec_rate",
			   "peak_service_rate", "flat_elec_rate", "flat_service_rate",
			   "valley_elec_rate", "valley_service_rate"};
	for (int i = 0; i < 8; i++)
		json_object_set_new(b, r[i], json_integer(i == 4 ? flat : 50000));
	return b;
}

static void test_tariffs_versions_publish(void)
{
	json_t *o = NULL;
	run_on_loop(do_subscribe, NULL);
	CU_ASSERT_EQUAL(call("POST", "/api/v1/tariffs", tokAop, 0, tariff_body("Std", 100000), &o),
			201);
	long long v1 = jint(o, "id");
	CU_ASSERT_EQUAL(jint(o, "version"), 1);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "state")), "draft");
	const char *m1 = json_string_value(json_object_get(o, "model"));
	CU_ASSERT(m1 && strlen(m1) == 4 && strcmp(m1, "0000") != 0);
	char model1[8];
	snprintf(model1, sizeof model1, "%s", m1 ? m1 : "");
	json_decref(o);
	long long pid = create("/api/v1/piles", tokAop, 0,
			       json_pack("{s:s, s:I}", "serial", "32010200000010", "tariff_id",
					 (json_int_t)v1));
	/* validation */
	json_t *b = tariff_body("Bad", 1);
	json_object_set_new(b, "slots", json_string("0123"));
	CU_ASSERT_EQUAL(call("POST", "/api/v1/tariffs", tokAop, 0, b, &o), 400);
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "slots");
	json_decref(o);
	b = tariff_body("Bad", 1);
	json_object_del(b, "peak_elec_rate");
	CU_ASSERT_EQUAL(call("POST", "/api/v1/tariffs", tokAop, 0, b, &o), 400);
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "peak_elec_rate");
	json_decref(o);
	/* PUT makes version 2 with its own model code */
	char path[128];
	snprintf(path, sizeof path, "/api/v1/tariffs/%lld", v1);
	b = tariff_body("x", 120000);
	json_object_del(b, "name");
	CU_ASSERT_EQUAL(call("PUT", path, tokAop, 0, b, &o), 201);
	long long v2 = jint(o, "id");
	CU_ASSERT_NOT_EQUAL(v2, v1);
	CU_ASSERT_EQUAL(jint(o, "version"), 2);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "name")), "Std");
	CU_ASSERT_STRING_NOT_EQUAL(json_string_value(json_object_get(o, "model")), model1);
	CU_ASSERT_EQUAL(jint(o, "flat_elec_rate"), 120000);
	json_decref(o);
	/* the old version is unchanged */
	CU_ASSERT_EQUAL(http("GET", path, tokAro, 0, NULL, NULL, &o), 200);
	CU_ASSERT_EQUAL(jint(o, "flat_elec_rate"), 100000);
	json_decref(o);
	/* publishing v2 moves the pile and tells the protocol plugins */
	snprintf(path, sizeof path, "/api/v1/tariffs/%lld/publish", v2);
	pthread_mutex_lock(&mu);
	tariff_events = 0;
	pthread_mutex_unlock(&mu);
	CU_ASSERT_EQUAL(http("POST", path, tokAop, 0, NULL, NULL, &o), 200);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "state")), "active");
	CU_ASSERT_EQUAL(jint(o, "piles_notified"), 1);
	json_decref(o);
	pthread_mutex_lock(&mu);
	CU_ASSERT_EQUAL(tariff_events, 1);
	CU_ASSERT_STRING_EQUAL(last_tariff_pile, "32010200000010");
	pthread_mutex_unlock(&mu);
	snprintf(path, sizeof path, "/api/v1/piles/%lld", pid);
	CU_ASSERT_EQUAL(http("GET", path, tokAro, 0, NULL, NULL, &o), 200);
	CU_ASSERT_EQUAL(jint(o, "tariff_id"), v2);
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tariffs?name=Std&state=active", tokAro, 0, NULL, NULL,
			     &o),
			200);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "items")), 1);
	json_decref(o);
}

static void test_drivers_cards(void)
{
	json_t *o = NULL;
	long long d = create("/api/v1/drivers", tokAop, 0,
			     json_pack("{s:s, s:s}", "phone", "13800000001", "name", "Li"));
	CU_ASSERT_EQUAL(call("POST", "/api/v1/drivers", tokAop, 0,
			     json_pack("{s:s}", "phone", "13800000001"), &o),
			409);
	json_decref(o);
	CU_ASSERT_EQUAL(call("POST", "/api/v1/drivers", tokAop, 0, json_pack("{s:s}", "phone", "13x"),
			     &o),
			400);
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "phone");
	json_decref(o);
	long long card = create("/api/v1/cards", tokAop, 0,
				json_pack("{s:I, s:s, s:s, s:b}", "driver_id", (json_int_t)d,
					  "logical_no", "1000000000000001", "physical_no",
					  "00000000DEADBEEF", "offline", 1));
	CU_ASSERT_EQUAL(call("POST", "/api/v1/cards", tokAop, 0,
			     json_pack("{s:s, s:s}", "logical_no", "1000000000000002", "physical_no",
				       "00000000deadbeef"),
			     &o),
			400);
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "physical_no");
	json_decref(o);
	char q[128];
	snprintf(q, sizeof q, "/api/v1/cards?driver_id=%lld&offline=true", d);
	CU_ASSERT_EQUAL(http("GET", q, tokAro, 0, NULL, NULL, &o), 200);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "items")), 1);
	CU_ASSERT_EQUAL(jint(json_array_get(json_object_get(o, "items"), 0), "id"), card);
	json_decref(o);
	snprintf(q, sizeof q, "/api/v1/cards/%lld", card);
	CU_ASSERT_EQUAL(call("PATCH", q, tokAop, 0, json_pack("{s:s}", "status", "lost"), &o), 200);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "status")), "lost");
	json_decref(o);
	/* a driver with a card cannot be deleted; after the card goes, it can */
	char dp[128];
	snprintf(dp, sizeof dp, "/api/v1/drivers/%lld", d);
	CU_ASSERT_EQUAL(http("DELETE", dp, tokAop, 0, NULL, NULL, NULL), 409);
	CU_ASSERT_EQUAL(http("DELETE", q, tokAop, 0, NULL, NULL, NULL), 204);
	CU_ASSERT_EQUAL(http("DELETE", dp, tokAop, 0, NULL, NULL, NULL), 204);
}

/* ---- sessions and dashboard ------------------------------------------------------------------ */
#define AT 1773547200000LL /* 2026-03-15 12:00 +08:00 */
static long long dash_session;

static void test_sessions_and_dashboard(void)
{
	char tok[128];
	make_token(tD, "d-admin", "tenant-admin", tok, NULL);
	long long st = create("/api/v1/stations", tok, 0, json_pack("{s:s}", "name", "Big screen"));
	long long p1 = create("/api/v1/piles", tok, 0,
			      json_pack("{s:s, s:I, s:i}", "serial", "44000000000001", "station_id",
					(json_int_t)st, "gun_count", 1));
	long long p2 = create("/api/v1/piles", tok, 0,
			      json_pack("{s:s, s:I, s:i}", "serial", "44000000000002", "station_id",
					(json_int_t)st, "gun_count", 1));
	char q[1024];
	snprintf(q, sizeof q,
		 "INSERT INTO pile_presence (pile_id, tenant_id, online, last_seen_ms) VALUES "
		 "(%lld, %lld, 1, %lld)",
		 p1, tD, AT);
	sql(q);
	snprintf(q, sizeof q, "UPDATE connectors SET status = 3 WHERE pile_id = %lld", p1);
	sql(q);
	snprintf(q, sizeof q, "UPDATE connectors SET status = 1 WHERE pile_id = %lld", p2);
	sql(q);
	struct {
		long long start, end;
		const char *state;
		long long kwh, amount;
	} s[] = {
	    {1773532800000LL, 1773536400000LL, "finished", 300000, 4500000},
	    {1773540000000LL, 1773541800000LL, "finished", 100000, 1500000},
	    {1773104400000LL, 1773108000000LL, "finished", 50000, 700000},
	    {1771549200000LL, 1771552800000LL, "finished", 70000, 900000},
	    {1773543600000LL, 0, "charging", 0, 0},
	};
	for (int i = 0; i < 5; i++) {
		char end[32];
		if (s[i].end)
			snprintf(end, sizeof end, "%lld", s[i].end);
		else
			snprintf(end, sizeof end, "NULL");
		snprintf(q, sizeof q,
			 "INSERT INTO charging_sessions (tenant_id, station_id, pile_id, gun_no, "
			 "trade_no, state, start_mode, requested_ms, start_ms, end_ms, total_kwh, "
			 "total_amount) VALUES (%lld, %lld, %lld, 1, '%032d', '%s', 'app', %lld, %lld, "
			 "%s, %lld, %lld)",
			 tD, st, p1, i + 1, s[i].state, s[i].start, s[i].start, end, s[i].kwh,
			 s[i].amount);
		sql(q);
		if (i == 0)
			dash_session = (long long)mysql_insert_id(raw);
	}
	for (int k = 0; k < 4; k++) {
		snprintf(q, sizeof q,
			 "INSERT INTO meter_samples VALUES (%lld, %lld, %d, %d, 3800, 1000, %d, 30, "
			 "25, %d)",
			 dash_session, 1773532800000LL + k * 60000, k * 1000, k * 15000, 20 + k,
			 60 - k);
		sql(q);
	}
	json_t *o = NULL;
	CU_ASSERT_EQUAL(http("GET", "/api/v1/sessions?state=finished", tok, 0, NULL, NULL, &o), 200);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "items")), 4);
	json_decref(o);
	snprintf(q, sizeof q, "/api/v1/sessions?since_ms=%lld&until_ms=%lld", 1773504000000LL, AT);
	CU_ASSERT_EQUAL(http("GET", q, tok, 0, NULL, NULL, &o), 200);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "items")), 3);
	json_decref(o);
	snprintf(q, sizeof q, "/api/v1/sessions/%lld", dash_session);
	CU_ASSERT_EQUAL(http("GET", q, tok, 0, NULL, NULL, &o), 200);
	CU_ASSERT_EQUAL(jint(o, "total_kwh"), 300000);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "pile_serial")),
			       "44000000000001");
	json_t *curve = json_object_get(o, "curve");
	CU_ASSERT_EQUAL(json_array_size(curve), 4);
	CU_ASSERT_EQUAL(jint(json_array_get(curve, 3), "kwh"), 3000);
	CU_ASSERT(jint(json_array_get(curve, 0), "ts_ms") < jint(json_array_get(curve, 1), "ts_ms"));
	json_decref(o);

	snprintf(q, sizeof q, "/api/v1/dashboard?at_ms=%lld", AT);
	CU_ASSERT_EQUAL(http("GET", q, tok, 0, NULL, NULL, &o), 200);
	json_t *piles = json_object_get(o, "piles"), *today = json_object_get(o, "today"),
	       *month = json_object_get(o, "month");
	CU_ASSERT_EQUAL(jint(o, "day_start_ms"), 1773504000000LL);
	CU_ASSERT_EQUAL(jint(o, "month_start_ms"), 1772294400000LL);
	CU_ASSERT_EQUAL(jint(piles, "total"), 2);
	CU_ASSERT_EQUAL(jint(piles, "online"), 1);
	CU_ASSERT_EQUAL(jint(piles, "offline"), 1);
	CU_ASSERT_EQUAL(jint(piles, "charging"), 1);
	CU_ASSERT_EQUAL(jint(piles, "faulted"), 1);
	CU_ASSERT_EQUAL(jint(today, "sessions"), 2);
	CU_ASSERT_EQUAL(jint(today, "energy_kwh"), 400000);
	CU_ASSERT_EQUAL(jint(today, "revenue"), 6000000);
	CU_ASSERT_EQUAL(jint(month, "sessions"), 3);
	CU_ASSERT_EQUAL(jint(month, "energy_kwh"), 450000);
	CU_ASSERT_EQUAL(jint(month, "revenue"), 6700000);
	CU_ASSERT_EQUAL(jint(o, "active_sessions"), 1);
	json_t *s0 = json_array_get(json_object_get(o, "stations"), 0);
	CU_ASSERT_EQUAL(jint(s0, "station_id"), st);
	CU_ASSERT_EQUAL(jint(s0, "connectors"), 2);
	/* 1 h + 30 min + 1 h (still charging) of 2 guns x 12 h */
	CU_ASSERT_EQUAL(jint(s0, "charging_ms_today"), 9000000);
	CU_ASSERT_EQUAL(jint(s0, "utilisation_bp"), 1041);
	CU_ASSERT_EQUAL(jint(s0, "energy_kwh_today"), 400000);
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/dashboard?at_ms=soon", tok, 0, NULL, NULL, &o), 400);
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "at_ms");
	json_decref(o);
}

static long long alarm_a;

static void test_alarms(void)
{
	char q[512];
	snprintf(q, sizeof q,
		 "INSERT INTO alarms (tenant_id, code, severity, message, source) VALUES (%lld, "
		 "'ykc.hw_fault.0x0001', 'major', 'emergency stop', 'ykc')",
		 tA);
	sql(q);
	alarm_a = (long long)mysql_insert_id(raw);
	json_t *o = NULL;
	CU_ASSERT_EQUAL(http("GET", "/api/v1/alarms?state=raised&severity=major", tokAro, 0, NULL,
			     NULL, &o),
			200);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "items")), 1);
	json_decref(o);
	snprintf(q, sizeof q, "/api/v1/alarms/%lld/ack", alarm_a);
	CU_ASSERT_EQUAL(http("POST", q, tokAro, 0, NULL, NULL, NULL), 403);
	CU_ASSERT_EQUAL(http("POST", q, tokAop, 0, NULL, NULL, &o), 200);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "state")), "acknowledged");
	CU_ASSERT(jint(o, "acked_by") > 0);
	json_decref(o);
	CU_ASSERT_EQUAL(http("POST", q, tokAop, 0, NULL, NULL, &o), 200); /* idempotent */
	json_decref(o);
}

/* ---- commands ----------------------------------------------------------------------------- */
static void test_commands(void)
{
	json_t *o = NULL;
	create("/api/v1/piles", tokAop, 0, json_pack("{s:s}", "serial", "32010200000020"));
	const char *path = "/api/v1/piles/32010200000020/commands";
	CU_ASSERT_EQUAL(call("POST", path, tokAop, 0, json_pack("{s:s}", "command", "reboot"), &o),
			409);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "offline");
	json_decref(o);
	CU_ASSERT_EQUAL(call("POST", path, tokAro, 0, json_pack("{s:s}", "command", "reboot"), NULL),
			403);
	CU_ASSERT_EQUAL(call("POST", path, tokAop, 0, json_pack("{s:i}", "gun", 1), &o), 400);
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "command");
	json_decref(o);
	CU_ASSERT_EQUAL(call("POST", path, tokAop, 0,
			     json_pack("{s:s, s:i}", "command", "stop", "gun", 300), &o),
			400);
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "gun");
	json_decref(o);
	CU_ASSERT_EQUAL(call("POST", "/api/v1/piles/32010200009999/commands", tokAop, 0,
			     json_pack("{s:s}", "command", "reboot"), NULL),
			404);
	/* now the pile is online (claimed by a fake protocol plugin for tenant A) */
	struct claim_arg a = {tA, "32010200000020"};
	run_on_loop(do_claim, &a);
	CU_ASSERT_EQUAL(call("POST", path, tokAop, 0,
			     json_pack("{s:s, s:i, s:{}}", "command", "reboot", "gun", 0, "args"), &o),
			200);
	CU_ASSERT(json_is_true(json_object_get(json_object_get(o, "result"), "accepted")));
	json_decref(o);
	CU_ASSERT_EQUAL(call("POST", path, tokAop, 0, json_pack("{s:s, s:i}", "command", "stop", "gun", 1),
			     &o),
			422);
	CU_ASSERT_PTR_NOT_NULL(strstr(json_string_value(json_object_get(json_object_get(o, "error"),
									 "message")),
				      "not charging"));
	json_decref(o);
	CU_ASSERT_EQUAL(call("POST", path, tokAop, 0, json_pack("{s:s}", "command", "frobnicate"), NULL),
			501);
	CU_ASSERT_EQUAL(call("POST", path, tokAop, 0, json_pack("{s:s, s:i}", "command", "start", "gun", 1),
			     &o),
			504);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "timeout");
	json_decref(o);
	/* tenant B cannot command A's pile even though it is online */
	CU_ASSERT_EQUAL(call("POST", path, tokB, 0, json_pack("{s:s}", "command", "reboot"), NULL),
			404);
}

/* ---- scripts -------------------------------------------------------------------------------- */
static void test_scripts(void)
{
	json_t *o = NULL;
	const char *failing = "evcs.on('tick', function(ev) end)\n"
			      "tests = { sum = function() evcs.expect_eq(1 + 1, 3, 'sum') end }\n";
	CU_ASSERT_EQUAL(http("PUT", "/api/v1/scripts/alarms", tokA, 0, failing, "text/plain", &o), 400);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "script_rejected");
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "source");
	const char *msg = json_string_value(json_object_get(json_object_get(o, "error"), "message"));
	CU_ASSERT_PTR_NOT_NULL(msg && strstr(msg, "sum"));
	json_decref(o);
	CU_ASSERT_EQUAL(http("PUT", "/api/v1/scripts/alarms", tokA, 0, "function (", "text/plain", &o),
			400);
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/scripts/alarms", tokA, 0, NULL, NULL, NULL), 404);
	const char *good = "evcs.on('tick', function(ev) end)\n"
			   "tests = { sum = function() evcs.expect_eq(1 + 1, 2, 'sum') end }\n";
	CU_ASSERT_EQUAL(http("PUT", "/api/v1/scripts/alarms", tokA, 0, good, "text/plain", &o), 200);
	CU_ASSERT_EQUAL(jint(o, "version"), 1);
	CU_ASSERT_EQUAL(strlen(json_string_value(json_object_get(o, "sha256"))), 64);
	json_decref(o);
	json_t *doc = json_pack("{s:s}", "source", good);
	CU_ASSERT_EQUAL(call("PUT", "/api/v1/scripts/alarms", tokA, 0, doc, &o), 200);
	CU_ASSERT_EQUAL(jint(o, "version"), 2);
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/scripts/alarms", tokAro, 0, NULL, NULL, &o), 200);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "source")), good);
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/scripts", tokAro, 0, NULL, NULL, &o), 200);
	json_t *it = json_object_get(o, "items");
	CU_ASSERT_EQUAL(json_array_size(it), 1);
	CU_ASSERT(json_is_true(json_object_get(json_array_get(it, 0), "live")));
	json_decref(o);
	CU_ASSERT_EQUAL(http("PUT", "/api/v1/scripts/Bad-Slot", tokA, 0, good, "text/plain", &o), 400);
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "slot");
	json_decref(o);
}

/* ---- isolation: tenant B against every resource of tenant A ------------------------------- */
static int list_has_id(const char *path, const char *tok, long long id)
{
	json_t *o = NULL;
	long st = http("GET", path, tok, 0, NULL, NULL, &o);
	CU_ASSERT_EQUAL(st, 200);
	json_t *it = json_object_get(o, "items");
	int found = 0;
	for (size_t i = 0; i < json_array_size(it); i++)
		found |= jint(json_array_get(it, i), "id") == id;
	json_decref(o);
	return found;
}

static void test_tenant_isolation(void)
{
	long long st = create("/api/v1/stations", tokAop, 0, json_pack("{s:s}", "name", "A only"));
	long long pile = create("/api/v1/piles", tokAop, 0,
				json_pack("{s:s, s:I}", "serial", "32010200000030", "station_id",
					  (json_int_t)st));
	json_t *o = NULL;
	char q[512];
	snprintf(q, sizeof q, "/api/v1/connectors?pile_id=%lld", pile);
	http("GET", q, tokAro, 0, NULL, NULL, &o);
	long long conn = jint(json_array_get(json_object_get(o, "items"), 0), "id");
	json_decref(o);
	CU_ASSERT(conn > 0);
	json_t *tb = tariff_body("Iso", 1000);
	long long tariff = create("/api/v1/tariffs", tokAop, 0, tb);
	long long drv = create("/api/v1/drivers", tokAop, 0, json_pack("{s:s}", "name", "A driver"));
	long long card = create("/api/v1/cards", tokAop, 0,
				json_pack("{s:s, s:s}", "logical_no", "1000000000000030",
					  "physical_no", "0000000000000030"));
	snprintf(q, sizeof q,
		 "INSERT INTO charging_sessions (tenant_id, pile_id, gun_no, trade_no, state, "
		 "start_mode) VALUES (%lld, %lld, 1, '%032d', 'finished', 'app')",
		 tA, pile, 99);
	sql(q);
	long long sess = (long long)mysql_insert_id(raw);
	struct {
		const char *coll;
		long long id;
		json_t *patch;
	} r[] = {
	    {"stations", st, json_pack("{s:s}", "name", "pwned")},
	    {"piles", pile, json_pack("{s:s}", "name", "pwned")},
	    {"connectors", conn, json_pack("{s:i}", "rated_power_w", 1)},
	    {"tariffs", tariff, NULL},
	    {"drivers", drv, json_pack("{s:s}", "name", "pwned")},
	    {"cards", card, json_pack("{s:s}", "status", "blocked")},
	    {"sessions", sess, NULL},
	    {"alarms", alarm_a, NULL},
	};
	for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
		char p[160], lp[160];
		snprintf(p, sizeof p, "/api/v1/%s/%lld", r[i].coll, r[i].id);
		snprintf(lp, sizeof lp, "/api/v1/%s?limit=500", r[i].coll);
		CU_ASSERT(list_has_id(lp, tokAro, r[i].id));
		CU_ASSERT(!list_has_id(lp, tokB, r[i].id));
		/* the platform admin acting on B sees B's world only */
		o = NULL;
		CU_ASSERT_EQUAL(http("GET", p, BOOT, tB, NULL, NULL, &o), 404);
		json_decref(o);
		CU_ASSERT_EQUAL(http("GET", p, tokB, 0, NULL, NULL, &o), 404);
		CU_ASSERT_STRING_EQUAL(test_err_code(o), "not_found");
		json_decref(o);
		if (r[i].patch) {
			json_incref(r[i].patch);
			CU_ASSERT_EQUAL(call("PATCH", p, tokB, 0, r[i].patch, NULL), 404);
			CU_ASSERT_EQUAL(http("DELETE", p, tokB, 0, NULL, NULL, NULL), 404);
			/* still there, unchanged, for A */
			CU_ASSERT_EQUAL(http("GET", p, tokAro, 0, NULL, NULL, &o), 200);
			const char *nm = json_string_value(json_object_get(o, "name"));
			CU_ASSERT(!nm || strcmp(nm, "pwned") != 0);
			json_decref(o);
			json_decref(r[i].patch);
		} else {
			CU_ASSERT_EQUAL(http("GET", p, tokAro, 0, NULL, NULL, NULL), 200);
		}
	}
	/* tariffs: new version, publish */
	char p[160];
	snprintf(p, sizeof p, "/api/v1/tariffs/%lld", tariff);
	json_t *b = tariff_body("x", 1);
	json_object_del(b, "name");
	CU_ASSERT_EQUAL(call("PUT", p, tokB, 0, b, NULL), 404);
	snprintf(p, sizeof p, "/api/v1/tariffs/%lld/publish", tariff);
	CU_ASSERT_EQUAL(http("POST", p, tokB, 0, NULL, NULL, NULL), 404);
	/* alarms: ack */
	snprintf(p, sizeof p, "/api/v1/alarms/%lld/ack", alarm_a);
	CU_ASSERT_EQUAL(http("POST", p, tokB, 0, NULL, NULL, NULL), 404);
	/* commands, tokens, scripts, claim */
	CU_ASSERT_EQUAL(call("POST", "/api/v1/piles/32010200000030/commands", tokB, 0,
			     json_pack("{s:s}", "command", "reboot"), NULL),
			404);
	snprintf(p, sizeof p, "/api/v1/tokens/%lld", tokA_id);
	CU_ASSERT_EQUAL(http("DELETE", p, tokB, 0, NULL, NULL, NULL), 404);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/me", tokA, 0, NULL, NULL, NULL), 200);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/scripts/alarms", tokB, 0, NULL, NULL, NULL), 404);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/scripts", tokB, 0, NULL, NULL, &o), 200);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "items")), 0);
	json_decref(o);
	CU_ASSERT_EQUAL(call("POST", "/api/v1/piles/unclaimed/32010200000030/claim", tokB, 0, NULL,
			     NULL),
			404);
	/* audit: B's log holds none of A's actions */
	CU_ASSERT_EQUAL(http("GET", "/api/v1/audit?limit=500", tokB, 0, NULL, NULL, &o), 200);
	json_t *it = json_object_get(o, "items");
	CU_ASSERT(json_array_size(it) > 0);
	for (size_t i = 0; i < json_array_size(it); i++)
		CU_ASSERT_PTR_NULL(strstr(json_string_value(json_object_get(json_array_get(it, i),
									      "actor")),
					  "user:a-"));
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/dashboard", tokB, 0, NULL, NULL, &o), 200);
	CU_ASSERT_EQUAL(jint(json_object_get(o, "piles"), "total"), 0);
	json_decref(o);
}

/* ---- no plugin, no partner routes --------------------------------------------------------- */
/* The CEC partner routes are the cec plugin's (tests/test_cec_api.c): a core without it has
 * neither the routes nor their documentation. */
static void test_no_plugin_routes_without_plugin(void)
{
	json_t *o = NULL;
	CU_ASSERT_EQUAL(http("GET", "/api/v1/partners", tokA, 0, NULL, NULL, &o), 404);
	json_decref(o);
	CU_ASSERT_EQUAL(call("POST", "/api/v1/partners", tokA, 0, json_pack("{s:s}", "name", "x"), NULL), 404);
	json_t *spec = NULL;
	CU_ASSERT_EQUAL_FATAL(http("GET", "/api/v1/openapi.json", NULL, 0, NULL, NULL, &spec), 200);
	const char *pk;
	json_t *pv;
	json_object_foreach(json_object_get(spec, "paths"), pk, pv) CU_ASSERT(strstr(pk, "partner") == NULL);
	CU_ASSERT_PTR_NULL(json_object_get(json_object_get(json_object_get(spec, "components"), "schemas"), "Partner"));
	json_decref(spec);
}

static void register_tests(void)
{
	CU_pSuite s = CU_add_suite("api", suite_init, suite_clean);
	EVCS_ADD(s, test_auth_and_roles);
	EVCS_ADD(s, test_routing_errors);
	EVCS_ADD(s, test_stations_crud_pagination_filters_audit);
	EVCS_ADD(s, test_piles_connectors_unclaimed_quota);
	EVCS_ADD(s, test_tariffs_versions_publish);
	EVCS_ADD(s, test_drivers_cards);
	EVCS_ADD(s, test_sessions_and_dashboard);
	EVCS_ADD(s, test_alarms);
	EVCS_ADD(s, test_commands);
	EVCS_ADD(s, test_scripts);
	EVCS_ADD(s, test_tenant_isolation);
	EVCS_ADD(s, test_no_plugin_routes_without_plugin);
	api_plugin_tests_register(s);
	EVCS_ADD(s, test_openapi_consistency);
	api_plugin_tests_register_last(s);
}

EVCS_TEST_MAIN(register_tests)
