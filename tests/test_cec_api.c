/*
 * tests/test_cec_api.c: the cec plugin's operator routes (/api/v1/partners..., ABI 2 api_route)
 * end to end: the real core in-process with cec.so loaded, its tables made by `evcsd --migrate`
 * (the plugin's own migrations), a private MariaDB (tests/with-mariadb.sh), HTTP over loopback
 * with blocking libcurl. Checks create/read/update/delete with write-only secrets and audit rows,
 * the profile and permission validation, tenant isolation, and that the served OpenAPI document
 * has the plugin's operations. (These were core routes; the harness is test_api.c's.)
 * Drops and re-creates EVCS_DB_NAME: run the test programs one at a time (make -j1 check).
 */
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

#define BOOT "test-bootstrap-token-0123456789"

static evcs_core_t core;
static pthread_t loop_thr;
static int port, env_ok;
static evcs_db_config_t dbc;
static char conf_path[256];
static MYSQL *raw;

/* ---- HTTP client ------------------------------------------------------------------------- */
static long http(const char *method, const char *path, const char *token, long long tenant,
		 const char *body, const char *ctype, json_t **out)
{
	return test_http(port, method, path, token, tenant, body, ctype, 20L, out, NULL);
}

static long call(const char *method, const char *path, const char *token, long long tenant,
		 json_t *body, json_t **out)
{
	return test_call(port, method, path, token, tenant, body, out);
}

#define CHECK TEST_CHECK
#define jint test_jint

static long long create(const char *path, const char *token, long long tenant, json_t *body)
{
	return test_create(port, path, token, tenant, body);
}

static void *loop_main(void *arg)
{
	event_base_dispatch(core.base);
	return NULL;
}

/* ---- fixtures ----------------------------------------------------------------------------- */
static long long tA, tB;
static char tokA[128], tokAop[128], tokAro[128], tokB[128];
static long long tokA_id;

static void make_token(long long tenant, const char *user, const char *role, char *out,
		       long long *id)
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
	if (testdb_env(&dbc, "test_cec_api") != 0)
		return 1;
	char err[512];
	raw = testdb_reset(&dbc);
	if (!raw)
		return 1;
	snprintf(conf_path, sizeof conf_path, "/tmp/test_cec_api.%d.conf", (int)getpid());
	FILE *f = fopen(conf_path, "w");
	if (!f)
		return 1;
	fprintf(f,
		"[core]\nlog_level = err\nschema_dir = %s/schema\nplugin_dir = " TEST_CEC_PLUGIN_DIR "\n\n[http]\nlisten = 127.0.0.1:0\n"
		"max_body = 65536\n\n[database]\n",
		EVCS_TOP_SRCDIR);
	testdb_conf(f, &dbc, 4);
	fprintf(f, "\n[api]\nbootstrap_token = %s\ncommand_timeout = 300\n", BOOT);
	/* the plugin; the partners' state is its refresh's business, not this test's */
	fprintf(f, "\n[plugin cec]\nrefresh_interval = 3600\ncheck_hour = -1\n");
	fclose(f);
	/* `evcsd --migrate`: the core's schema, then the plugin's own tables */
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "EVCS_SCHEMA_DIR=%s/schema " TEST_EVCSD " --migrate -c %s >/dev/null", EVCS_TOP_SRCDIR,
		 conf_path);
	if (system(cmd) != 0) {
		fprintf(stderr, "%s failed\n", cmd);
		return 1;
	}
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
	make_token(tA, "a-admin", "tenant-admin", tokA, &tokA_id);
	make_token(tA, "a-op", "operator", tokAop, NULL);
	make_token(tA, "a-ro", "read-only", tokAro, NULL);
	make_token(tB, "b-admin", "tenant-admin", tokB, NULL);
	return (tA && tB) ? 0 : 1;
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

/* ---- partners ----------------------------------------------------------------------------- */
#define P_OPSEC "op-secret-AAAA01"
#define P_DATA "DataSecret16byte"
#define P_IV "IVsecret16bytes!"
#define P_SIG "sig-secret-zzzz9"
#define P_USIG "user-sig-qqqq777"

static json_t *partner_body(const char *opid)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:b}}", "name", "Partner",
			 "operator_id", opid, "our_operator_id", "MA1EVCS01", "base_url",
			 "https://p.example/evcs/v1/", "operator_secret", P_OPSEC, "data_secret", P_DATA,
			 "data_secret_iv", P_IV, "sig_secret", P_SIG, "user_sig_secret", P_USIG, "profile",
			 "preset", "orise", "sig_lower_out", 1);
}

/* No secret text anywhere in a reply. */
static int has_secret(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	int bad = s && (strstr(s, P_OPSEC) || strstr(s, P_DATA) || strstr(s, P_IV) || strstr(s, P_SIG) ||
			strstr(s, P_USIG) || strstr(s, "NewSigSecret"));
	free(s);
	return bad;
}

static const char *jstr(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static void test_partners_crud_secrets_profile(void)
{
	json_t *o = NULL;
	/* tenant-admin only */
	CU_ASSERT_EQUAL(http("GET", "/api/v1/partners", tokAop, 0, NULL, NULL, NULL), 403);
	CU_ASSERT_EQUAL(call("POST", "/api/v1/partners", tokAop, 0, partner_body("PARTNER01"), NULL), 403);
	CU_ASSERT_EQUAL(call("POST", "/api/v1/partners", tokA, 0, partner_body("PARTNER01"), &o), 201);
	long long id = jint(o, "id");
	CU_ASSERT(id > 0);
	CU_ASSERT_FALSE(has_secret(o));
	CU_ASSERT_STRING_EQUAL(jstr(o, "operator_secret"), "set");
	CU_ASSERT_STRING_EQUAL(jstr(o, "data_secret"), "set");
	CU_ASSERT_STRING_EQUAL(jstr(o, "user_sig_secret"), "set");
	CU_ASSERT_STRING_EQUAL(jstr(o, "user_data_secret"), "unset");
	CU_ASSERT_STRING_EQUAL(jstr(o, "user_operator_secret"), "unset");
	CU_ASSERT_STRING_EQUAL(jstr(o, "status"), "active");
	CU_ASSERT_STRING_EQUAL(jstr(json_object_get(o, "profile"), "preset"), "orise");
	CU_ASSERT(json_is_true(json_object_get(json_object_get(o, "profile"), "sig_lower_out")));
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "station_ids")), 0);
	json_decref(o);
	/* the secrets are stored as given (the plugin signs with them) */
	char q[512];
	snprintf(q, sizeof q, "SELECT data_secret, sig_secret, JSON_VALUE(profile, '$.preset') FROM cec_partners WHERE id = %lld", id);
	CU_ASSERT_FATAL(mysql_query(raw, q) == 0);
	MYSQL_RES *rs = mysql_store_result(raw);
	MYSQL_ROW row = rs ? mysql_fetch_row(rs) : NULL;
	CU_ASSERT(row && row[0] && !strcmp(row[0], P_DATA) && !strcmp(row[1], P_SIG) && !strcmp(row[2], "orise"));
	if (rs)
		mysql_free_result(rs);

	char path[160];
	snprintf(path, sizeof path, "/api/v1/partners/%lld", id);
	CU_ASSERT_EQUAL(http("GET", path, tokA, 0, NULL, NULL, &o), 200);
	CU_ASSERT_FALSE(has_secret(o));
	CU_ASSERT_STRING_EQUAL(jstr(o, "operator_id"), "PARTNER01");
	CU_ASSERT_STRING_EQUAL(jstr(o, "sig_secret"), "set");
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", "/api/v1/partners?operator_id=PARTNER01", tokA, 0, NULL, NULL, &o), 200);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "items")), 1);
	CU_ASSERT_FALSE(has_secret(o));
	json_decref(o);

	/* change a secret and the profile: never echoed, "set" either way */
	CU_ASSERT_EQUAL(call("PATCH", path, tokA, 0,
			     json_pack("{s:s, s:s, s:{s:s}}", "sig_secret", "NewSigSecret", "user_data_secret", "",
				       "profile", "preset", "xj"),
			     &o),
			200);
	CU_ASSERT_FALSE(has_secret(o));
	CU_ASSERT_STRING_EQUAL(jstr(o, "sig_secret"), "set");
	CU_ASSERT_STRING_EQUAL(jstr(json_object_get(o, "profile"), "preset"), "xj");
	CU_ASSERT_PTR_NULL(json_object_get(json_object_get(o, "profile"), "sig_lower_out"));
	json_decref(o);
	/* the audit rows say a secret was set, not what it is */
	snprintf(q, sizeof q, "/api/v1/audit?object_type=partner&object_id=%lld", id);
	CU_ASSERT_EQUAL(http("GET", q, tokA, 0, NULL, NULL, &o), 200);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "items")), 2);
	CU_ASSERT_FALSE(has_secret(o));
	json_t *upd = json_object_get(json_array_get(json_object_get(o, "items"), 0), "details");
	CU_ASSERT_STRING_EQUAL(jstr(upd, "sig_secret"), "set");
	CU_ASSERT_STRING_EQUAL(jstr(upd, "user_data_secret"), "unset");
	json_decref(o);

	/* profile validation: the field names the key */
	struct {
		json_t *body;
		const char *field;
	} bad[] = {
	    {json_pack("{s:{s:b}}", "profile", "sig_lower_outt", 1), "profile.sig_lower_outt"},
	    {json_pack("{s:{s:s}}", "profile", "preset", "nope"), "profile.preset"},
	    {json_pack("{s:{s:s}}", "profile", "sig_lower_out", "yes"), "profile.sig_lower_out"},
	    {json_pack("{s:{s:i}}", "profile", "energy_decimals", 4), "profile.energy_decimals"},
	    {json_pack("{s:{s:i}}", "profile", "page_size_max", -1), "profile.page_size_max"},
	    {json_pack("{s:s}", "profile", "orise"), "profile"},
	    {json_pack("{s:s}", "data_secret", "short"), "data_secret"},
	    {json_pack("{s:s}", "user_data_secret_iv", "12345"), "user_data_secret_iv"},
	    {json_pack("{s:s}", "operator_id", "lower0001"), "operator_id"},
	    {json_pack("{s:s}", "status", "paused"), "status"},
	    {json_pack("{s:s}", "access_token", "x"), "access_token"},
	    {json_pack("{s:[i]}", "station_ids", 1), "station_ids"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		o = NULL;
		json_incref(bad[i].body);
		CU_ASSERT_EQUAL(call("PATCH", path, tokA, 0, bad[i].body, &o), 400);
		if (!test_err_field(o) || strcmp(test_err_field(o), bad[i].field))
			fprintf(stderr, "partner PATCH %zu: field %s, want %s\n", i, test_err_field(o) ? test_err_field(o) : "(none)",
				bad[i].field);
		CU_ASSERT(test_err_field(o) && !strcmp(test_err_field(o), bad[i].field));
		json_decref(o);
		/* and on create */
		json_t *b = partner_body("PARTNER09");
		json_object_update(b, bad[i].body);
		CU_ASSERT_EQUAL(call("POST", "/api/v1/partners", tokA, 0, b, &o), 400);
		CU_ASSERT(test_err_field(o) && !strcmp(test_err_field(o), bad[i].field));
		json_decref(o);
		json_decref(bad[i].body);
	}
	/* every flag the plugin knows is accepted with its type */
	CU_ASSERT_EQUAL(call("PATCH", path, tokA, 0,
			     json_pack("{s:{s:s, s:i, s:i, s:b, s:i}}", "profile", "preset", "sh", "token_ttl", 86400,
				       "utc_offset_sec", -3600, "unknown_connector_4004", 1, "energy_decimals", 2),
			     NULL),
			200);
	/* required fields and duplicates */
	json_t *b = partner_body("PARTNER02");
	json_object_del(b, "data_secret");
	CU_ASSERT_EQUAL(call("POST", "/api/v1/partners", tokA, 0, b, &o), 400);
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "data_secret");
	json_decref(o);
	CU_ASSERT_EQUAL(call("POST", "/api/v1/partners", tokA, 0, partner_body("PARTNER01"), &o), 409);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "conflict");
	json_decref(o);

	/* station permissions */
	long long s1 = create("/api/v1/stations", tokA, 0, json_pack("{s:s}", "name", "P1"));
	long long s2 = create("/api/v1/stations", tokA, 0, json_pack("{s:s}", "name", "P2"));
	long long sb = create("/api/v1/stations", tokB, 0, json_pack("{s:s}", "name", "B's"));
	char sp[200];
	snprintf(sp, sizeof sp, "%s/stations", path);
	CU_ASSERT_EQUAL(call("PUT", sp, tokA, 0, json_pack("{s:[I,I]}", "station_ids", (json_int_t)s2, (json_int_t)s1), &o),
			200);
	CU_ASSERT_EQUAL(jint(o, "partner_id"), id);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "station_ids")), 2);
	CU_ASSERT_EQUAL(json_integer_value(json_array_get(json_object_get(o, "station_ids"), 0)), s1 < s2 ? s1 : s2);
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", path, tokA, 0, NULL, NULL, &o), 200);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "station_ids")), 2);
	json_decref(o);
	/* another tenant's station is not a station here; nothing changes */
	CU_ASSERT_EQUAL(call("PUT", sp, tokA, 0, json_pack("{s:[I,I]}", "station_ids", (json_int_t)s1, (json_int_t)sb), &o),
			400);
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "station_ids");
	json_decref(o);
	CU_ASSERT_EQUAL(call("PUT", sp, tokA, 0, json_pack("{s:[I,I]}", "station_ids", (json_int_t)s1, (json_int_t)s1), &o),
			400);
	json_decref(o);
	CU_ASSERT_EQUAL(call("PUT", sp, tokA, 0, json_pack("{s:[s]}", "station_ids", "1"), NULL), 400);
	CU_ASSERT_EQUAL(call("PUT", sp, tokA, 0, json_pack("{s:[]}", "stations"), NULL), 400);
	CU_ASSERT_EQUAL(call("PUT", sp, tokAop, 0, json_pack("{s:[]}", "station_ids"), NULL), 403);
	CU_ASSERT_EQUAL(http("GET", path, tokA, 0, NULL, NULL, &o), 200);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "station_ids")), 2);
	json_decref(o);
	CU_ASSERT_EQUAL(call("PUT", sp, tokA, 0, json_pack("{s:[I]}", "station_ids", (json_int_t)s2), &o), 200);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "station_ids")), 1);
	json_decref(o);
	snprintf(q, sizeof q, "/api/v1/audit?object_type=partner&action=partner.stations&object_id=%lld", id);
	CU_ASSERT_EQUAL(http("GET", q, tokA, 0, NULL, NULL, &o), 200);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "items")), 2);
	json_decref(o);
	/* deleting a station drops the permission with it */
	snprintf(q, sizeof q, "/api/v1/stations/%lld", s2);
	CU_ASSERT_EQUAL(http("DELETE", q, tokA, 0, NULL, NULL, NULL), 204);
	CU_ASSERT_EQUAL(http("GET", path, tokA, 0, NULL, NULL, &o), 200);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "station_ids")), 0);
	json_decref(o);

	/* delete */
	long long id2 = create("/api/v1/partners", tokA, 0, partner_body("PARTNER03"));
	snprintf(q, sizeof q, "/api/v1/partners/%lld", id2);
	CU_ASSERT_EQUAL(http("DELETE", q, tokA, 0, NULL, NULL, NULL), 204);
	CU_ASSERT_EQUAL(http("GET", q, tokA, 0, NULL, NULL, NULL), 404);
	CU_ASSERT_EQUAL(http("DELETE", q, tokA, 0, NULL, NULL, NULL), 404);
	snprintf(q, sizeof q, "/api/v1/partners/%lld/stations", id2);
	CU_ASSERT_EQUAL(call("PUT", q, tokA, 0, json_pack("{s:[]}", "station_ids"), NULL), 404);
}

static void test_partners_tenant_isolation(void)
{
	long long id = create("/api/v1/partners", tokA, 0, partner_body("ISOLATE01"));
	long long sa = create("/api/v1/stations", tokA, 0, json_pack("{s:s}", "name", "iso"));
	char path[160], sp[200];
	snprintf(path, sizeof path, "/api/v1/partners/%lld", id);
	snprintf(sp, sizeof sp, "%s/stations", path);
	CU_ASSERT_EQUAL(call("PUT", sp, tokA, 0, json_pack("{s:[I]}", "station_ids", (json_int_t)sa), NULL), 200);
	json_t *o = NULL;
	CU_ASSERT(list_has_id("/api/v1/partners?limit=500", tokA, id));
	CU_ASSERT(!list_has_id("/api/v1/partners?limit=500", tokB, id));
	CU_ASSERT_EQUAL(http("GET", path, tokB, 0, NULL, NULL, &o), 404);
	CU_ASSERT_STRING_EQUAL(test_err_code(o), "not_found");
	json_decref(o);
	CU_ASSERT_EQUAL(http("GET", path, BOOT, tB, NULL, NULL, NULL), 404);
	CU_ASSERT_EQUAL(call("PATCH", path, tokB, 0, json_pack("{s:s, s:s}", "name", "pwned", "sig_secret", "pwned"), NULL),
			404);
	CU_ASSERT_EQUAL(call("PUT", sp, tokB, 0, json_pack("{s:[]}", "station_ids"), NULL), 404);
	CU_ASSERT_EQUAL(http("DELETE", path, tokB, 0, NULL, NULL, NULL), 404);
	/* the same OperatorID may be a partner of tenant B too: a separate row */
	long long idb = create("/api/v1/partners", tokB, 0, partner_body("ISOLATE01"));
	CU_ASSERT(idb > 0 && idb != id);
	/* B cannot grant its partner A's station */
	char spb[200];
	snprintf(spb, sizeof spb, "/api/v1/partners/%lld/stations", idb);
	CU_ASSERT_EQUAL(call("PUT", spb, tokB, 0, json_pack("{s:[I]}", "station_ids", (json_int_t)sa), &o), 400);
	CU_ASSERT_STRING_EQUAL(test_err_field(o), "station_ids");
	json_decref(o);
	/* A's partner is untouched */
	CU_ASSERT_EQUAL(http("GET", path, tokA, 0, NULL, NULL, &o), 200);
	CU_ASSERT_STRING_EQUAL(jstr(o, "name"), "Partner");
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "station_ids")), 1);
	CU_ASSERT_EQUAL(json_integer_value(json_array_get(json_object_get(o, "station_ids"), 0)), sa);
	json_decref(o);
	char q[256];
	snprintf(q, sizeof q, "SELECT COUNT(*) FROM cec_partners WHERE id = %lld AND sig_secret = '" P_SIG "'", id);
	CU_ASSERT_FATAL(mysql_query(raw, q) == 0);
	MYSQL_RES *rs = mysql_store_result(raw);
	MYSQL_ROW row = rs ? mysql_fetch_row(rs) : NULL;
	CU_ASSERT(row && row[0] && !strcmp(row[0], "1"));
	if (rs)
		mysql_free_result(rs);
}

/* ---- the routes are the plugin's, documented in the served OpenAPI document ------------------ */
static void test_partner_routes_documented(void)
{
	json_t *spec = NULL;
	CU_ASSERT_EQUAL_FATAL(http("GET", "/api/v1/openapi.json", NULL, 0, NULL, NULL, &spec), 200);
	json_t *paths = json_object_get(spec, "paths");
	static const struct {
		const char *path, *method;
	} ops[] = {{"/api/v1/partners", "get"},
		   {"/api/v1/partners", "post"},
		   {"/api/v1/partners/{partner_id}", "get"},
		   {"/api/v1/partners/{partner_id}", "patch"},
		   {"/api/v1/partners/{partner_id}", "delete"},
		   {"/api/v1/partners/{partner_id}/stations", "put"}};
	for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
		json_t *op = json_object_get(json_object_get(paths, ops[i].path), ops[i].method);
		if (!op)
			fprintf(stderr, "not documented: %s %s\n", ops[i].method, ops[i].path);
		CU_ASSERT_PTR_NOT_NULL(op);
		CU_ASSERT(json_is_object(json_object_get(op, "responses")));
	}
	/* the write-only rule is part of the contract */
	const char *d = json_string_value(
	    json_object_get(json_object_get(json_object_get(paths, "/api/v1/partners"), "post"), "description"));
	CU_ASSERT(d && strstr(d, "write-only"));
	json_decref(spec);
}

static void register_tests(void)
{
	CU_pSuite s = CU_add_suite("cec_api", suite_init, suite_clean);
	EVCS_ADD(s, test_partners_crud_secrets_profile);
	EVCS_ADD(s, test_partners_tenant_isolation);
	EVCS_ADD(s, test_partner_routes_documented);
}

EVCS_TEST_MAIN(register_tests)
