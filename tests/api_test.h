/*
 * tests/api_test.h: the harness of tests/test_api (defined in tests/test_api.c), shared with
 * the modules linked into the same program (tests/test_api_openapi.c, tests/test_api_plugin.c):
 * the in-process core with its loop on a second thread, a blocking HTTP client over loopback,
 * the raw MariaDB connection for seeding and checking, and the tenants and tokens made at
 * suite set-up.
 */
#ifndef EVCS_API_TEST_H
#define EVCS_API_TEST_H

#include "core.h"

#include "testhttp.h"

#include <CUnit/CUnit.h>
#include <event2/event.h>
#include <jansson.h>
#include <mysql.h>

#define BOOT "test-bootstrap-token-0123456789"

extern evcs_core_t core;
extern MYSQL *raw;
extern int port;
/* tenants A, B, D, W; tokens of tenant A (tenant-admin, operator, read-only) and B (admin) */
extern long long tA, tB, tD, tW;
extern char tokA[128], tokAop[128], tokAro[128], tokB[128];

/* HTTP over loopback: the status; *out (optional) the parsed JSON body (NULL when none).
 * tenant != 0 sends X-Tenant-ID. call() sends body (stolen) as JSON. */
long http(const char *method, const char *path, const char *token, long long tenant,
	  const char *body, const char *ctype, json_t **out);
long call(const char *method, const char *path, const char *token, long long tenant,
	  json_t *body, json_t **out);
long long jint(json_t *o, const char *k);
/* POST that must answer 201; the new object's id */
long long create(const char *path, const char *token, long long tenant, json_t *body);
void sql(const char *q);
/* a token of the given role in tenant (made by the bootstrap token); *id (optional) its id */
void make_token(long long tenant, const char *user, const char *role, char *out, long long *id);
json_t *tariff_body(const char *name, int flat); /* a valid tariff with this flat rate */
/* Run fn on the loop thread and wait until it called mark_done(). */
void run_on_loop(event_callback_fn fn, void *arg);
void mark_done(void);

/* tests/test_api_openapi.c: every served route documented, every documented one served and
 * answering its example */
void test_openapi_consistency(void);

/* tests/test_api_plugin.c */
void api_plugin_tests_register(CU_pSuite s);   /* before the OpenAPI consistency test */
void api_plugin_tests_register_last(CU_pSuite s); /* stops the core: runs last */
/* test_api.c: stop the core (loop thread joined, core freed) unless already stopped */
void api_test_stop_core(void);

#endif
