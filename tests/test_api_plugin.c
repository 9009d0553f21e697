/*
 * tests/test_api_plugin.c: operator-API routes served by plugins (ABI 2 api_route, req_*),
 * linked into tests/test_api and run against its in-process core, real MariaDB and real HTTP
 * over loopback (harness: tests/api_test.h). The core loads tests/plugins/tp_routes.so (notes
 * kept in memory per tenant); a second, fake plugin ("tp_other", a struct evcs_plugin made
 * here) registers and unloads routes on the loop thread to check clashes between plugins and
 * what happens to requests in flight when their plugin goes.
 * Asserted: 401/403 exactly as for core routes, tenant isolation (404 for another tenant's
 * note, also from a platform admin bound to the wrong tenant), X-Tenant-ID for platform
 * admins, TENANT_OPT/PLATFORM/RAW_BODY routes, 400 for a body that is not a JSON object,
 * 404/405, pagination, the audit row written through db_txn_new + req_audit, refused
 * registrations (EEXIST/EINVAL), the merged openapi.json, http_route callbacks without a
 * token, 503 for requests whose plugin unloaded (held by it, or still being authenticated),
 * and a reply to a request detached by the shutdown being discarded.
 */
#include "abi2.h"
#include "api.h"
#include "api_test.h"
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* first column of the first row, malloc'd ("" when no row, NULL on error) */
static char *sql_one(const char *q)
{
	if (mysql_query(raw, q) != 0) {
		fprintf(stderr, "SQL failed: %s: %s\n", q, mysql_error(raw));
		return NULL;
	}
	MYSQL_RES *res = mysql_store_result(raw);
	MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
	char *v = strdup(row && row[0] ? row[0] : "");
	mysql_free_result(res);
	return v;
}

static long long note_new(const char *tok, long long tenant, const char *text, int *audited)
{
	json_t *o = NULL;
	long st = call("POST", "/api/v1/tp/notes", tok, tenant, json_pack("{s:s}", "text", text), &o);
	CU_ASSERT_EQUAL(st, 201);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "text")), text);
	if (audited)
		*audited = json_is_true(json_object_get(o, "audited"));
	long long id = jint(o, "id");
	json_decref(o);
	return id;
}

static int has_id(json_t *list, long long id)
{
	json_t *items = json_object_get(list, "items");
	for (size_t i = 0; i < json_array_size(items); i++)
		if (jint(json_array_get(items, i), "id") == id)
			return 1;
	return 0;
}

static void test_plugin_routes_auth_roles(void)
{
	json_t *o = NULL;
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/notes", NULL, 0, NULL, NULL, &o), 401);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "unauthorized");
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/notes", "evcs_wrong_token", 0, NULL, NULL, NULL), 401);
	/* a read-only token may list but not create (operator) */
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/notes", tokAro, 0, NULL, NULL, NULL), 200);
	CU_ASSERT_EQUAL(call("POST", "/api/v1/tp/notes", tokAro, 0, json_pack("{s:s}", "text", "x"),
			     &o),
			403);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "forbidden");
	json_decref(o);
	/* an operator may create but not delete (tenant-admin) */
	long long id = note_new(tokAop, 0, "by the operator", NULL);
	char path[96];
	snprintf(path, sizeof path, "/api/v1/tp/notes/%lld", id);
	CU_ASSERT_EQUAL(http("DELETE", path, tokAop, 0, NULL, NULL, &o), 403);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "forbidden");
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", path, tokAro, 0, NULL, NULL, NULL), 200);
	CU_ASSERT_EQUAL(http("DELETE", path, tokA, 0, NULL, NULL, &o), 204);
	CU_ASSERT_PTR_NULL(o);
	CU_ASSERT_EQUAL(http("GET", path, tokAro, 0, NULL, NULL, NULL), 404);
	/* a platform route: platform admins only */
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/registrations", tokA, 0, NULL, NULL, &o), 403);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "forbidden");
	json_decref(o);
	/* what the core tells the plugin about the caller */
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/whoami", tokAro, 0, NULL, NULL, &o), 200);
	CU_ASSERT_EQUAL(jint(o, "tenant_id"), tA);
	CU_ASSERT_EQUAL(jint(o, "role"), EVCS_ROLE_READ_ONLY);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "actor")), "user:a-ro");
	json_decref(o);
}

static void test_plugin_routes_tenants(void)
{
	long long a1 = note_new(tokA, 0, "A one", NULL);
	long long b1 = note_new(tokB, 0, "B one", NULL);
	json_t *o = NULL;
	/* each tenant sees its own notes only */
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/notes", tokA, 0, NULL, NULL, &o), 200);
	CU_ASSERT(has_id(o, a1));
	CU_ASSERT(!has_id(o, b1));
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/notes", tokB, 0, NULL, NULL, &o), 200);
	CU_ASSERT(has_id(o, b1));
	CU_ASSERT(!has_id(o, a1));
	json_decref(o);
	/* another tenant's note is 404, like a missing one, for reading and deleting */
	char pb[96];
	snprintf(pb, sizeof pb, "/api/v1/tp/notes/%lld", b1);
	CU_ASSERT_EQUAL(http("GET", pb, tokA, 0, NULL, NULL, &o), 404);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "not_found");
	json_decref(o);
	CU_ASSERT_EQUAL(http("DELETE", pb, tokA, 0, NULL, NULL, NULL), 404);
	CU_ASSERT_EQUAL(http("GET", pb, tokB, 0, NULL, NULL, &o), 200); /* still there */
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "text")), "B one");
	json_decref(o);
	/* a tenant token cannot name another tenant */
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/notes", tokA, tB, NULL, NULL, &o), 403);
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "X-Tenant-ID");
	json_decref(o);
	/* a platform admin names the tenant: X-Tenant-ID or ?tenant_id= */
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/notes", BOOT, tB, NULL, NULL, &o), 200);
	CU_ASSERT(has_id(o, b1));
	CU_ASSERT(!has_id(o, a1));
	json_decref(o);
	char q[96];
	snprintf(q, sizeof q, "/api/v1/tp/notes?tenant_id=%lld", tA);
	CU_ASSERT_EQUAL(http("GET", q, BOOT, 0, NULL, NULL, &o), 200);
	CU_ASSERT(has_id(o, a1));
	CU_ASSERT(!has_id(o, b1));
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", pb, BOOT, tB, NULL, NULL, NULL), 200);
	CU_ASSERT_EQUAL(http("GET", pb, BOOT, tA, NULL, NULL, NULL), 404);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/notes", BOOT, 0, NULL, NULL, &o), 400);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "tenant_required");
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "X-Tenant-ID");
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/notes", BOOT, 999999, NULL, NULL, NULL), 404);
	/* the platform admin deletes B's note acting as B */
	CU_ASSERT_EQUAL(http("DELETE", pb, BOOT, tB, NULL, NULL, NULL), 204);
	CU_ASSERT_EQUAL(http("GET", pb, tokB, 0, NULL, NULL, NULL), 404);
	/* TENANT_OPT: a platform admin may go without a tenant (0), or name one */
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/whoami", BOOT, 0, NULL, NULL, &o), 200);
	CU_ASSERT_EQUAL(jint(o, "tenant_id"), 0);
	CU_ASSERT_EQUAL(jint(o, "role"), EVCS_ROLE_PLATFORM_ADMIN);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "actor")), "bootstrap");
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/whoami", BOOT, tB, NULL, NULL, &o), 200);
	CU_ASSERT_EQUAL(jint(o, "tenant_id"), tB);
	json_decref(o);
}

static void test_plugin_routes_body_and_errors(void)
{
	json_t *o = NULL;
	/* the core refuses a body that is not a JSON object before the plugin sees it */
	CU_ASSERT_EQUAL(http("POST", "/api/v1/tp/notes", tokA, 0, "[1,2]", NULL, &o), 400);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "bad_json");
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "body");
	json_decref(o);
	CU_ASSERT_EQUAL(http("POST", "/api/v1/tp/notes", tokA, 0, "{\"text\": ", NULL, &o), 400);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "bad_json");
	json_decref(o);
	CU_ASSERT_EQUAL(http("POST", "/api/v1/tp/notes", tokA, 0, "\"text\"", NULL, NULL), 400);
	/* the plugin's own check, answered through req_error in the core's format */
	CU_ASSERT_EQUAL(call("POST", "/api/v1/tp/notes", tokA, 0, json_pack("{s:i}", "text", 5), &o),
			400);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "invalid");
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "text");
	CU_ASSERT_PTR_NOT_NULL(
	    json_string_value(json_object_get(json_object_get(o, "error"), "message")));
	json_decref(o);
	/* an empty body is "{}" for the plugin */
	CU_ASSERT_EQUAL(http("POST", "/api/v1/tp/notes", tokA, 0, NULL, NULL, &o), 400);
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "text");
	json_decref(o);
	/* a raw-body route gets the bytes as sent */
	CU_ASSERT_EQUAL(http("PUT", "/api/v1/tp/echo", tokAop, 0, "x = { not json", "text/plain", &o),
			200);
	CU_ASSERT_EQUAL(jint(o, "bytes"), 14);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "text")), "x = { not json");
	json_decref(o);
	/* 404 and 405 as for core routes */
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/nothing", tokA, 0, NULL, NULL, &o), 404);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "not_found");
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/notes/1/more", tokA, 0, NULL, NULL, NULL), 404);
	CU_ASSERT_EQUAL(http("PATCH", "/api/v1/tp/notes", tokA, 0, "{}", NULL, &o), 405);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "method_not_allowed");
	json_decref(o);
	CU_ASSERT_EQUAL(http("PUT", "/api/v1/tp/notes/1", tokA, 0, "{}", NULL, NULL), 405);
	/* 405 is decided before authentication, as for core routes */
	CU_ASSERT_EQUAL(http("PATCH", "/api/v1/tp/notes", NULL, 0, "{}", NULL, NULL), 405);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/notes/abc", tokA, 0, NULL, NULL, NULL), 404);
}

static void test_plugin_routes_pagination(void)
{
	long long ids[5];
	for (int i = 0; i < 5; i++) {
		char t[16];
		snprintf(t, sizeof t, "D%d", i);
		ids[i] = note_new(BOOT, tD, t, NULL);
	}
	json_t *o = NULL;
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/notes?limit=2", BOOT, tD, NULL, NULL, &o), 200);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "items")), 2);
	CU_ASSERT_EQUAL(jint(json_array_get(json_object_get(o, "items"), 0), "id"), ids[0]);
	CU_ASSERT_EQUAL(jint(o, "limit"), 2);
	CU_ASSERT_EQUAL(jint(o, "offset"), 0);
	CU_ASSERT_EQUAL(jint(o, "next_offset"), 2);
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/notes?limit=2&offset=2", BOOT, tD, NULL, NULL, &o),
			200);
	CU_ASSERT_EQUAL(jint(json_array_get(json_object_get(o, "items"), 0), "id"), ids[2]);
	CU_ASSERT_EQUAL(jint(o, "next_offset"), 4);
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/notes?limit=2&offset=4", BOOT, tD, NULL, NULL, &o),
			200);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "items")), 1);
	CU_ASSERT_EQUAL(jint(json_array_get(json_object_get(o, "items"), 0), "id"), ids[4]);
	CU_ASSERT(json_is_null(json_object_get(o, "next_offset")));
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/notes", BOOT, tD, NULL, NULL, &o), 200);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "items")), 5);
	CU_ASSERT_EQUAL(jint(o, "limit"), 50);
	CU_ASSERT(json_is_null(json_object_get(o, "next_offset")));
	json_decref(o);
	/* the same rules as the core's lists */
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/notes?limit=0", BOOT, tD, NULL, NULL, &o), 400);
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "limit");
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/notes?limit=501", BOOT, tD, NULL, NULL, NULL), 400);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/notes?offset=-1", BOOT, tD, NULL, NULL, &o), 400);
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "offset");
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/notes?limit=x", BOOT, tD, NULL, NULL, NULL), 400);
}

static void test_plugin_routes_audit(void)
{
	/* the plugin writes the row through db_txn_new (the data layer of ABI 2) + req_audit */
	CU_ASSERT_PTR_NOT_NULL_FATAL(core.api.db_txn_new);
	int audited = -1;
	long long id = note_new(tokAop, 0, "audited note", &audited);
	CU_ASSERT_EQUAL(audited, 1);
	char q[512];
	snprintf(q, sizeof q,
		 "SELECT CONCAT_WS('|', tenant_id, actor, object_type, JSON_VALUE(details, '$.text'), "
		 "user_id IS NOT NULL, token_id IS NOT NULL, peer LIKE '127.0.0.1:%%') FROM audit_log "
		 "WHERE action = 'tp.note.create' AND object_id = '%lld'",
		 id);
	char *row = sql_one(q), want[256];
	snprintf(want, sizeof want, "%lld|user:a-op|tp_note|audited note|1|1|1", tA);
	CU_ASSERT_PTR_NOT_NULL_FATAL(row);
	if (strcmp(row, want) != 0)
		fprintf(stderr, "audit row: '%s', want '%s'\n", row, want);
	CU_ASSERT_STRING_EQUAL(row, want);
	free(row);
	/* the tenant's audit list shows it (the core's own route over the same table) */
	json_t *o = NULL;
	CU_ASSERT_EQUAL(http("GET", "/api/v1/audit?action=tp.note.create", tokA, 0, NULL, NULL, &o),
			200);
	int found = 0;
	json_t *items = json_object_get(o, "items");
	for (size_t i = 0; i < json_array_size(items); i++) {
		const char *oid = json_string_value(json_object_get(json_array_get(items, i), "object_id"));
		char ids[24];
		snprintf(ids, sizeof ids, "%lld", id);
		found |= oid && !strcmp(oid, ids);
	}
	CU_ASSERT(found);
	json_decref(o);
	/* a platform admin's note is audited in the tenant it acted on */
	long long id2 = note_new(BOOT, tB, "audited by the platform", NULL);
	snprintf(q, sizeof q,
		 "SELECT CONCAT_WS('|', tenant_id, actor) FROM audit_log WHERE action = "
		 "'tp.note.create' AND object_id = '%lld'",
		 id2);
	row = sql_one(q);
	snprintf(want, sizeof want, "%lld|bootstrap", tB);
	CU_ASSERT_PTR_NOT_NULL_FATAL(row);
	CU_ASSERT_STRING_EQUAL(row, want);
	free(row);
}

/* ---- a second plugin, made here and driven on the loop thread ------------------------------- */
static struct evcs_plugin other;
static pthread_mutex_t omu = PTHREAD_MUTEX_INITIALIZER;
static evcs_api_req_t *held;
static int pings, in_flight, reg_st[6];

static void ping_handler(evcs_api_req_t *r, void *ud)
{
	pthread_mutex_lock(&omu);
	pings++;
	pthread_mutex_unlock(&omu);
	core.api.req_reply(r, 200, "{\"pong\":true}");
}

static void hold_handler(evcs_api_req_t *r, void *ud)
{
	pthread_mutex_lock(&omu);
	held = r; /* never answered by this plugin */
	pthread_mutex_unlock(&omu);
}

static int other_route(const char *method, const char *pattern, evcs_api_handler h)
{
	evcs_api_route_t rt = {.size = sizeof rt,
			       .method = method,
			       .pattern = pattern,
			       .min_role = EVCS_ROLE_READ_ONLY,
			       .handler = h,
			       .openapi = "{\"summary\":\"fake plugin\",\"responses\":{\"200\":"
					  "{\"description\":\"OK\"}}}"};
	return core.api.api_route(&other, &rt);
}

static void do_register_other(evutil_socket_t fd, short ev, void *arg)
{
	other.core = &core;
	other.name = "tp_other";
	/* tp_routes serves these (the first under another parameter name) */
	reg_st[0] = other_route("GET", "/api/v1/tp/notes/{id}", ping_handler);
	reg_st[1] = other_route("POST", "/api/v1/tp/notes", ping_handler);
	reg_st[2] = other_route("GET", "/api/v1/tp2/ping", ping_handler);
	reg_st[3] = other_route("GET", "/api/v1/tp2/hold/{n}", hold_handler);
	reg_st[4] = other_route("GET", "/api/v1/tp2/ping", ping_handler); /* twice */
	reg_st[5] = other_route("POST", "/api/v1/tp/notes/{id}", ping_handler);
	mark_done();
}

static void do_drop_other(evutil_socket_t fd, short ev, void *arg)
{
	evcs_api_plugin_drop_owner(&core, &other);
	mark_done();
}

static void do_count_in_flight(evutil_socket_t fd, short ev, void *arg)
{
	const char *pattern = arg;
	int n = 0;
	for (api_ctx_t *c = ((api_state_t *)core.api_state)->ctxs; c; c = c->next)
		n += c->route && !strcmp(c->route->pattern, pattern);
	in_flight = n;
	mark_done();
}

struct bg {
	pthread_t th;
	const char *path;
	long status;
	char code[32];
};

static void *bg_main(void *arg)
{
	struct bg *b = arg;
	json_t *o = NULL;
	b->status = http("GET", b->path, tokA, 0, NULL, NULL, &o);
	snprintf(b->code, sizeof b->code, "%s", test_err_code(o) ? test_err_code(o) : "");
	json_decref(o);
	return NULL;
}

static evcs_api_req_t *wait_held(void)
{
	for (int i = 0; i < 500; i++) {
		pthread_mutex_lock(&omu);
		evcs_api_req_t *h = held;
		pthread_mutex_unlock(&omu);
		if (h)
			return h;
		usleep(10000);
	}
	return NULL;
}

static void test_plugin_routes_registration(void)
{
	/* what api_route answered tp_routes at init */
	json_t *o = NULL;
	CU_ASSERT_EQUAL_FATAL(http("GET", "/api/v1/tp/registrations", BOOT, 0, NULL, NULL, &o), 200);
	static const struct {
		const char *what, *status;
	} want[] = {
	    {"core_path", "exists"},	     {"core_path_renamed", "exists"},
	    {"own_path_renamed", "exists"},  {"other_param_names", "invalid"},
	    {"outside_api", "invalid"},	     {"param_first", "invalid"},
	    {"bad_segment", "invalid"},	     {"bad_method", "invalid"},
	    {"role_0", "invalid"},	     {"role_5", "invalid"},
	    {"openapi_array", "invalid"},    {"openapi_broken", "invalid"},
	    {"openapi_missing", "invalid"},  {"http_route_in_api", "invalid"},
	};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
		const char *got = json_string_value(json_object_get(o, want[i].what));
		if (!got || strcmp(got, want[i].status) != 0)
			fprintf(stderr, "registration %s: %s, want %s\n", want[i].what,
				got ? got : "(none)", want[i].status);
		CU_ASSERT(got && !strcmp(got, want[i].status));
	}
	CU_ASSERT_EQUAL(json_object_size(o), sizeof want / sizeof *want);
	json_decref(o);
	/* none of the refused ones is served; the core's route still answers as before */
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/fetch", tokA, 0, NULL, NULL, NULL), 404);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp/array", tokA, 0, NULL, NULL, NULL), 404);
	CU_ASSERT_EQUAL(http("POST", "/api/v1/tp/open/x", NULL, 0, "{}", NULL, NULL), 404);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/stations", tokA, 0, NULL, NULL, &o), 200);
	CU_ASSERT_PTR_NOT_NULL(json_object_get(o, "items"));
	json_decref(o);

	/* another plugin clashes with tp_routes' routes; its own are served */
	run_on_loop(do_register_other, NULL);
	CU_ASSERT_EQUAL(reg_st[0], EVCS_EEXIST);
	CU_ASSERT_EQUAL(reg_st[1], EVCS_EEXIST);
	CU_ASSERT_EQUAL(reg_st[2], EVCS_OK);
	CU_ASSERT_EQUAL(reg_st[3], EVCS_OK);
	CU_ASSERT_EQUAL(reg_st[4], EVCS_EEXIST);
	CU_ASSERT_EQUAL(reg_st[5], EVCS_EINVAL);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp2/ping", tokAro, 0, NULL, NULL, &o), 200);
	CU_ASSERT(json_is_true(json_object_get(o, "pong")));
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp2/ping", NULL, 0, NULL, NULL, NULL), 401);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/openapi.json", NULL, 0, NULL, NULL, &o), 200);
	CU_ASSERT_PTR_NOT_NULL(json_object_get(json_object_get(o, "paths"), "/api/v1/tp2/ping"));
	json_decref(o);

	/* unload while the plugin holds a request: answered 503 at once */
	held = NULL;
	struct bg b1 = {.path = "/api/v1/tp2/hold/1"};
	pthread_create(&b1.th, NULL, bg_main, &b1);
	CU_ASSERT_PTR_NOT_NULL(wait_held());
	run_on_loop(do_drop_other, NULL);
	pthread_join(b1.th, NULL);
	CU_ASSERT_EQUAL(b1.status, 503);
	CU_ASSERT_STRING_EQUAL(b1.code, "unavailable");
	/* its routes and operations are gone; tp_routes' stay */
	CU_ASSERT_EQUAL(http("GET", "/api/v1/tp2/ping", tokA, 0, NULL, NULL, &o), 404);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "not_found");
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/openapi.json", NULL, 0, NULL, NULL, &o), 200);
	CU_ASSERT_PTR_NULL(json_object_get(json_object_get(o, "paths"), "/api/v1/tp2/ping"));
	CU_ASSERT_PTR_NULL(json_object_get(json_object_get(o, "paths"), "/api/v1/tp2/hold/{n}"));
	CU_ASSERT_PTR_NOT_NULL(json_object_get(json_object_get(o, "paths"), "/api/v1/tp/notes"));
	json_decref(o);

	/* unload while a request is still being authenticated (its token lookup waits on a
	 * table lock): the plugin is not called; the request is answered 503 */
	run_on_loop(do_register_other, NULL);
	CU_ASSERT_EQUAL(reg_st[2], EVCS_OK); /* the paths are free again */
	pthread_mutex_lock(&omu);
	pings = 0;
	pthread_mutex_unlock(&omu);
	sql("LOCK TABLES api_tokens WRITE");
	struct bg b2 = {.path = "/api/v1/tp2/ping"};
	pthread_create(&b2.th, NULL, bg_main, &b2);
	in_flight = 0;
	for (int i = 0; i < 500 && !in_flight; i++) {
		usleep(10000);
		run_on_loop(do_count_in_flight, "/api/v1/tp2/ping");
	}
	CU_ASSERT_EQUAL(in_flight, 1);
	run_on_loop(do_drop_other, NULL);
	sql("UNLOCK TABLES");
	pthread_join(b2.th, NULL);
	CU_ASSERT_EQUAL(b2.status, 503);
	CU_ASSERT_STRING_EQUAL(b2.code, "unavailable");
	pthread_mutex_lock(&omu);
	CU_ASSERT_EQUAL(pings, 0);
	pthread_mutex_unlock(&omu);
}

static json_t *param_named(json_t *op, const char *name, const char *in)
{
	json_t *ps = json_object_get(op, "parameters");
	for (size_t i = 0; i < json_array_size(ps); i++) {
		json_t *p = json_array_get(ps, i);
		const char *n = json_string_value(json_object_get(p, "name"));
		const char *w = json_string_value(json_object_get(p, "in"));
		const char *ref = json_string_value(json_object_get(p, "$ref"));
		if (!name && ref && strstr(ref, "TenantHeader"))
			return p;
		if (name && n && w && !strcmp(n, name) && !strcmp(w, in))
			return p;
	}
	return NULL;
}

static void test_plugin_routes_openapi(void)
{
	json_t *spec = NULL;
	CU_ASSERT_EQUAL_FATAL(http("GET", "/api/v1/openapi.json", NULL, 0, NULL, NULL, &spec), 200);
	json_t *paths = json_object_get(spec, "paths");
	/* the core's document is all there */
	json_error_t je;
	json_t *embedded = json_loads(evcs_api_openapi_json, 0, &je);
	CU_ASSERT_PTR_NOT_NULL_FATAL(embedded);
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(embedded, "paths"), k, v)
	    CU_ASSERT(json_equal(v, json_object_get(paths, k)));
	CU_ASSERT(json_equal(json_object_get(embedded, "components"),
			     json_object_get(spec, "components")));
	json_decref(embedded);
	/* the plugin's operation, with what the core adds */
	json_t *del = json_object_get(json_object_get(paths, "/api/v1/tp/notes/{note_id}"), "delete");
	CU_ASSERT_PTR_NOT_NULL_FATAL(del);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(del, "summary")),
			       "Delete a note (test plugin)");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(del, "x-evcs-plugin")), "tp_routes");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(del, "x-evcs-min-role")),
			       "tenant-admin");
	json_t *pp = param_named(del, "note_id", "path");
	CU_ASSERT_PTR_NOT_NULL(pp); /* declared by the core: the fragment has none */
	CU_ASSERT(json_is_true(json_object_get(pp, "required")));
	CU_ASSERT_PTR_NOT_NULL(param_named(del, NULL, NULL));
	json_t *resp = json_object_get(del, "responses");
	CU_ASSERT_PTR_NOT_NULL(json_object_get(resp, "204"));
	CU_ASSERT_PTR_NOT_NULL(json_object_get(resp, "401"));
	CU_ASSERT_PTR_NOT_NULL(json_object_get(resp, "403"));
	CU_ASSERT_PTR_NOT_NULL(json_object_get(resp, "404"));
	/* a path parameter the fragment declares is kept as it is, not doubled */
	json_t *get = json_object_get(json_object_get(paths, "/api/v1/tp/notes/{note_id}"), "get");
	json_t *gp = param_named(get, "note_id", "path");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_object_get(gp, "schema"), "type")),
			       "integer");
	size_t np = 0;
	json_t *gps = json_object_get(get, "parameters");
	for (size_t i = 0; i < json_array_size(gps); i++)
	{
		const char *nm = json_string_value(json_object_get(json_array_get(gps, i), "name"));
		np += nm && !strcmp(nm, "note_id");
	}
	CU_ASSERT_EQUAL(np, 1);
	/* a platform route has no tenant header; raw bodies keep their media type */
	json_t *regs = json_object_get(json_object_get(paths, "/api/v1/tp/registrations"), "get");
	CU_ASSERT_PTR_NOT_NULL_FATAL(regs);
	CU_ASSERT_PTR_NULL(param_named(regs, NULL, NULL));
	json_t *echo = json_object_get(json_object_get(paths, "/api/v1/tp/echo"), "put");
	CU_ASSERT_PTR_NOT_NULL(
	    json_object_get(json_object_get(json_object_get(echo, "requestBody"), "content"),
			    "text/plain"));
	json_t *list = json_object_get(json_object_get(paths, "/api/v1/tp/notes"), "get");
	CU_ASSERT_PTR_NOT_NULL(list);
	CU_ASSERT_PTR_NOT_NULL(json_object_get(json_object_get(paths, "/api/v1/tp/notes"), "post"));
	/* none of the refused registrations is documented */
	CU_ASSERT_PTR_NULL(json_object_get(paths, "/api/v1/tp/array"));
	CU_ASSERT_PTR_NULL(json_object_get(paths, "/api/v1/stations/{id}"));
	CU_ASSERT_PTR_NULL(json_object_get(json_object_get(paths, "/api/v1/stations"), "x-evcs-plugin"));
	json_decref(spec);
}

static void test_plugin_http_route_callback(void)
{
	/* an unauthenticated endpoint through http_route, next to the operator-API routes */
	json_t *o = NULL;
	CU_ASSERT_EQUAL(http("POST", "/tp/callback/pay", NULL, 0, "{\"paid\":1}", NULL, &o), 200);
	CU_ASSERT(json_is_true(json_object_get(o, "ok")));
	CU_ASSERT(jint(o, "notes") >= 1);
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/tp/callback/pay", NULL, 0, NULL, NULL, NULL), 405);
}

/* Runs last: stops the core while a plugin holds a request. The shutdown detaches it; the
 * plugin's later reply is discarded and frees it (ASan checks there is no use after free or
 * leak), and the client is not left hanging. */
static void test_plugin_request_detached_at_shutdown(void)
{
	run_on_loop(do_register_other, NULL);
	CU_ASSERT_EQUAL_FATAL(reg_st[3], EVCS_OK);
	held = NULL;
	struct bg b = {.path = "/api/v1/tp2/hold/2"};
	pthread_create(&b.th, NULL, bg_main, &b);
	evcs_api_req_t *r = wait_held();
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	evcs_api_t api = core.api; /* the core's struct is cleared when it is freed */
	api_test_stop_core();
	CU_ASSERT_EQUAL(api.req_tenant(r), tA); /* the handle is still valid */
	CU_ASSERT_PTR_NULL(api.req_query(r, "x"));
	api.req_reply(r, 200, "{\"late\":true}");
	pthread_join(b.th, NULL);
	CU_ASSERT_NOT_EQUAL(b.status, 200);
}

void api_plugin_tests_register(CU_pSuite s)
{
	EVCS_ADD(s, test_plugin_routes_auth_roles);
	EVCS_ADD(s, test_plugin_routes_tenants);
	EVCS_ADD(s, test_plugin_routes_body_and_errors);
	EVCS_ADD(s, test_plugin_routes_pagination);
	EVCS_ADD(s, test_plugin_routes_audit);
	EVCS_ADD(s, test_plugin_routes_registration);
	EVCS_ADD(s, test_plugin_routes_openapi);
	EVCS_ADD(s, test_plugin_http_route_callback);
}

void api_plugin_tests_register_last(CU_pSuite s)
{
	EVCS_ADD(s, test_plugin_request_detached_at_shutdown);
}
