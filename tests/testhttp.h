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
 */
#ifndef EVCS_TESTHTTP_H
#define EVCS_TESTHTTP_H

#include <jansson.h>

long test_http(int port, const char *method, const char *path, const char *token,
	       long long tenant, const char *body, const char *ctype, long timeout_s,
	       json_t **out, char **text);
const char *test_err_code(json_t *o);
const char *test_err_field(json_t *o);

#endif
