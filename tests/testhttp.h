/*
 * tests/testhttp.h: the blocking HTTP client the test programs talk to the operator API with
 * (tests/testhttp.c, libcurl + jansson), over loopback from a thread that is not the core's loop.
 *   test_http() sends one request to http://127.0.0.1:port/path. token (NULL: none) goes as
 *   "Authorization: Bearer", tenant (0: none) as X-Tenant-ID, body (NULL: none) with
 *   Content-Type ctype (NULL: application/json); no "Expect: 100-continue". timeout_s bounds the
 *   whole exchange. Returns the HTTP status, or -1 when no answer came. *out (optional) gets the
 *   parsed JSON body (any JSON value; NULL when the body is empty or not JSON; the caller
 *   decrefs); *text (optional) the raw body (malloc'd, the caller frees; NULL when empty).
 *   Call curl_global_init once before the first request.
 *   test_err_code()/test_err_field(): "error"."code" / "error"."field" of an error body, or NULL.
 * Operator-API fixtures on top (20 s timeout), for the programs that set up tenants and tokens:
 *   test_call() sends body (stolen; NULL: none) as JSON; test_create() POSTs one that must answer
 *   201 and returns the new object's id; test_make_token() makes a token of role for user in
 *   tenant with the bootstrap token boot, copies it to out (128 bytes; "none" on failure) and
 *   its id to *id (optional). TEST_CHECK asserts inside a CUnit test and reports on stderr in a
 *   suite's set-up, where CUnit asserts do not count.
 */
#ifndef EVCS_TESTHTTP_H
#define EVCS_TESTHTTP_H

#include <jansson.h>

long test_http(int port, const char *method, const char *path, const char *token,
	       long long tenant, const char *body, const char *ctype, long timeout_s,
	       json_t **out, char **text);
const char *test_err_code(json_t *o);
const char *test_err_field(json_t *o);

long test_call(int port, const char *method, const char *path, const char *token,
	       long long tenant, json_t *body, json_t **out);
long long test_jint(json_t *o, const char *k);
long long test_create(int port, const char *path, const char *token, long long tenant,
		      json_t *body);
void test_make_token(int port, const char *boot, long long tenant, const char *user,
		     const char *role, char out[128], long long *id);

#include <CUnit/CUnit.h>
#include <stdio.h>
#define TEST_CHECK(x)                                                                    \
	do {                                                                             \
		if (CU_get_current_test()) {                                             \
			CU_ASSERT(x);                                                    \
		} else if (!(x)) {                                                       \
			fprintf(stderr, "set-up check failed: %s\n", #x);              \
		}                                                                        \
	} while (0)

#endif
