/*
 * tests/test_api_openapi.c: the OpenAPI consistency check of tests/test_api (same program and
 * harness, tests/api_test.h). The served /api/v1/openapi.json must document every served
 * route, the core's and the plugins' (tp_routes is loaded), and serve every documented one;
 * then every documented operation is called once with its example (path parameters from the
 * spec's example or a fixture id, the body from the requestBody example) and must answer a
 * documented success status (or its x-evcs-test-status).
 */
#include "api.h"
#include "api_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- OpenAPI -------------------------------------------------------------------------------- */
static json_t *spec_op(json_t *spec, const char *pattern, const char *method)
{
	char m[16];
	size_t i;
	for (i = 0; method[i] && i < sizeof m - 1; i++)
		m[i] = (char)(method[i] | 0x20);
	m[i] = 0;
	return json_object_get(json_object_get(json_object_get(spec, "paths"), pattern), m);
}

struct idmap {
	const char *name;
	long long id;
};

static void walk_one(json_t *spec, const char *pattern, const char *method, json_t *opj,
		     const struct idmap *ids, size_t nids, int *checked)
{
	/* path parameters: the spec's example, else a fixture id */
	char path[512] = "";
	const char *p = pattern;
	while (*p) {
		if (*p == '{') {
			const char *e = strchr(p, '}');
			char name[32];
			snprintf(name, sizeof name, "%.*s", (int)(e - p - 1), p + 1);
			char val[64] = "";
			json_t *params = json_object_get(opj, "parameters");
			for (size_t i = 0; i < json_array_size(params); i++) {
				json_t *pr = json_array_get(params, i);
				if (json_string_value(json_object_get(pr, "name")) &&
				    !strcmp(json_string_value(json_object_get(pr, "name")), name) &&
				    json_object_get(pr, "example"))
					snprintf(val, sizeof val, "%s",
						 json_string_value(json_object_get(pr, "example")));
			}
			for (size_t i = 0; !*val && i < nids; i++)
				if (!strcmp(ids[i].name, name))
					snprintf(val, sizeof val, "%lld", ids[i].id);
			CU_ASSERT(*val != 0);
			strncat(path, val, sizeof path - strlen(path) - 1);
			p = e + 1;
		} else {
			size_t l = strlen(path);
			if (l < sizeof path - 1) {
				path[l] = *p;
				path[l + 1] = 0;
			}
			p++;
		}
	}
	json_t *content = json_object_get(json_object_get(opj, "requestBody"), "content");
	const char *ctype = NULL;
	char *body = NULL;
	if (content) {
		const char *k;
		json_t *v;
		json_object_foreach(content, k, v)
		{
			ctype = k;
			json_t *ex = json_object_get(v, "example");
			if (json_is_string(ex)) {
				body = strdup(json_string_value(ex));
			} else if (ex) {
				json_t *c = json_deep_copy(ex);
				for (size_t i = 0; i < nids; i++)
					if (json_is_integer(json_object_get(c, ids[i].name)) &&
					    jint(c, ids[i].name) == 0)
						json_object_set_new(c, ids[i].name,
								    json_integer(ids[i].id));
				body = json_dumps(c, JSON_COMPACT);
				json_decref(c);
			}
			break;
		}
	}
	int platform = 1;
	json_t *prs = json_object_get(opj, "parameters");
	for (size_t i = 0; i < json_array_size(prs); i++) {
		const char *r = json_string_value(json_object_get(json_array_get(prs, i), "$ref"));
		if (r && strstr(r, "TenantHeader"))
			platform = 0;
	}
	json_t *sec = json_object_get(opj, "security");
	const char *tok = json_is_array(sec) && json_array_size(sec) == 0 ? NULL : BOOT;
	long st = http(method, path, tok, platform || !tok ? 0 : tW, body, ctype, NULL);
	free(body);
	char code[8];
	snprintf(code, sizeof code, "%ld", st);
	int documented = json_object_get(json_object_get(opj, "responses"), code) != NULL;
	json_t *want = json_object_get(opj, "x-evcs-test-status");
	int ok = want ? st == json_integer_value(want) : (st >= 200 && st < 300);
	if (!documented || !ok)
		fprintf(stderr, "OpenAPI walk: %s %s -> %ld (documented %d)\n", method, path, st,
			documented);
	CU_ASSERT(documented);
	CU_ASSERT(ok);
	(*checked)++;
}

/* The served routes: the core's table and the plugins' (tp_routes is loaded), copied on the
 * loop thread, which owns the plugin route registry. */
static api_route_t *served;
static size_t nserved, nserved_core;

static void collect_routes(evutil_socket_t fd, short ev, void *arg)
{
	const api_route_t *rt = evcs_api_routes(&nserved_core);
	size_t np = 0;
	while (evcs_api_plugin_route(&core, np))
		np++;
	served = calloc(nserved_core + np, sizeof *served);
	for (size_t i = 0; served && i < nserved_core + np; i++) {
		const api_route_t *r = i < nserved_core ? &rt[i] : evcs_api_plugin_route(&core, i - nserved_core);
		served[i].method = strdup(r->method);
		served[i].pattern = strdup(r->pattern);
	}
	nserved = served ? nserved_core + np : 0;
	mark_done();
}

void test_openapi_consistency(void)
{
	json_t *spec = NULL;
	CU_ASSERT_EQUAL_FATAL(http("GET", "/api/v1/openapi.json", NULL, 0, NULL, NULL, &spec), 200);
	CU_ASSERT_PTR_NOT_NULL_FATAL(spec);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(spec, "openapi")), "3.0.3");
	/* every served route (the core's and the plugins') is documented, and every documented
	 * one served */
	run_on_loop(collect_routes, NULL);
	size_t n = nserved;
	const api_route_t *rt = served;
	CU_ASSERT(n > nserved_core); /* the plugin's routes are part of it */
	for (size_t i = 0; i < n; i++) {
		if (!spec_op(spec, rt[i].pattern, rt[i].method))
			fprintf(stderr, "undocumented route %s %s\n", rt[i].method, rt[i].pattern);
		CU_ASSERT_PTR_NOT_NULL(spec_op(spec, rt[i].pattern, rt[i].method));
	}
	size_t documented = 0;
	const char *pk;
	json_t *pv;
	json_object_foreach(json_object_get(spec, "paths"), pk, pv)
	{
		const char *mk;
		json_t *mv;
		json_object_foreach(pv, mk, mv)
		{
			documented++;
			int found = 0;
			for (size_t i = 0; i < n; i++)
				found |= !strcmp(rt[i].pattern, pk) && !strcasecmp(rt[i].method, mk);
			if (!found)
				fprintf(stderr, "documented but not served: %s %s\n", mk, pk);
			CU_ASSERT(found);
		}
	}
	CU_ASSERT_EQUAL(documented, n);

	/* walk: a valid request to every operation answers a documented (success) status */
	char tokW[128];
	long long tokW_id = 0;
	make_token(tW, "w-spare", "read-only", tokW, &tokW_id);
	long long st = create("/api/v1/stations", BOOT, tW, json_pack("{s:s}", "name", "W"));
	long long pile = create("/api/v1/piles", BOOT, tW,
				json_pack("{s:s, s:i}", "serial", "32010200000066", "gun_count", 1));
	long long pile2 = create("/api/v1/piles", BOOT, tW, json_pack("{s:s}", "serial", "32010200000067"));
	long long conn = create("/api/v1/connectors", BOOT, tW,
				json_pack("{s:I, s:i}", "pile_id", (json_int_t)pile2, "gun_no", 7));
	long long tariff = create("/api/v1/tariffs", BOOT, tW, tariff_body("W", 1));
	long long drv = create("/api/v1/drivers", BOOT, tW, json_pack("{s:s}", "name", "W"));
	long long card = create("/api/v1/cards", BOOT, tW,
				json_pack("{s:s, s:s}", "logical_no", "1000000000000066",
					  "physical_no", "0000000000000066"));
	char q[512];
	snprintf(q, sizeof q,
		 "INSERT INTO charging_sessions (tenant_id, pile_id, gun_no, trade_no, state, "
		 "start_mode) VALUES (%lld, %lld, 1, '%032d', 'finished', 'app')",
		 tW, pile2, 66);
	sql(q);
	long long sess = (long long)mysql_insert_id(raw);
	snprintf(q, sizeof q, "INSERT INTO alarms (tenant_id, code) VALUES (%lld, 'w.test')", tW);
	sql(q);
	long long alarm = (long long)mysql_insert_id(raw);
	sql("INSERT INTO unclaimed_piles (serial, first_seen_ms, last_seen_ms) VALUES "
	    "('99000000000001', 1, 1)");
	CU_ASSERT_EQUAL(http("PUT", "/api/v1/scripts/alarms", BOOT, tW,
			     "tests = { t = function() end }\n", "text/plain", NULL),
			200);
	long long note = create("/api/v1/tp/notes", BOOT, tW, json_pack("{s:s}", "text", "W"));
	const struct idmap ids[] = {
	    {"tenant_id", tW},	   {"token_id", tokW_id}, {"station_id", st},
	    {"pile_id", pile},	   {"connector_id", conn}, {"tariff_id", tariff},
	    {"driver_id", drv},	   {"card_id", card},	  {"session_id", sess},
	    {"alarm_id", alarm},   {"note_id", note},
	};
	int checked = 0;
	/* deletions last, so the other operations find their objects */
	for (int pass = 0; pass < 2; pass++)
		json_object_foreach(json_object_get(spec, "paths"), pk, pv)
		{
			const char *mk;
			json_t *mv;
			json_object_foreach(pv, mk, mv)
			{
				if ((strcmp(mk, "delete") == 0) != pass)
					continue;
				char M[16];
				size_t i;
				for (i = 0; mk[i] && i < sizeof M - 1; i++)
					M[i] = (char)(mk[i] & ~0x20);
				M[i] = 0;
				walk_one(spec, pk, M, mv, ids, sizeof ids / sizeof ids[0], &checked);
			}
		}
	CU_ASSERT_EQUAL((size_t)checked, n);
	json_decref(spec);
	for (size_t i = 0; i < nserved; i++) {
		free((char *)served[i].method);
		free((char *)served[i].pattern);
	}
	free(served);
	served = NULL;
}

