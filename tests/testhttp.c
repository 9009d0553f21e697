/*
 * tests/testhttp.c: one blocking libcurl request to the operator API over loopback
 * (contract in tests/testhttp.h).
 */
#include "testhttp.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct body_buf {
	char *s;
	size_t n;
};

static size_t collect(char *p, size_t sz, size_t nm, void *ud)
{
	struct body_buf *b = ud;
	char *ns = realloc(b->s, b->n + sz * nm + 1);
	if (!ns)
		return 0;
	b->s = ns;
	memcpy(b->s + b->n, p, sz * nm);
	b->n += sz * nm;
	b->s[b->n] = 0;
	return sz * nm;
}

long test_http(int port, const char *method, const char *path, const char *token,
	       long long tenant, const char *body, const char *ctype, long timeout_s,
	       json_t **out, char **text)
{
	CURL *c = curl_easy_init();
	char url[1024], line[512];
	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
	struct curl_slist *h = NULL;
	if (token) {
		snprintf(line, sizeof line, "Authorization: Bearer %s", token);
		h = curl_slist_append(h, line);
	}
	if (tenant) {
		snprintf(line, sizeof line, "X-Tenant-ID: %lld", tenant);
		h = curl_slist_append(h, line);
	}
	snprintf(line, sizeof line, "Content-Type: %s", ctype ? ctype : "application/json");
	h = curl_slist_append(h, line);
	h = curl_slist_append(h, "Expect:");
	struct body_buf b = {0};
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	long status = -1;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (out)
		*out = b.n ? json_loads(b.s, JSON_DECODE_ANY, NULL) : NULL;
	if (text)
		*text = b.s;
	else
		free(b.s);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return status;
}

const char *test_err_code(json_t *o)
{
	return json_string_value(json_object_get(json_object_get(o, "error"), "code"));
}

const char *test_err_field(json_t *o)
{
	return json_string_value(json_object_get(json_object_get(o, "error"), "field"));
}

long test_call(int port, const char *method, const char *path, const char *token,
	       long long tenant, json_t *body, json_t **out)
{
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	long st = test_http(port, method, path, token, tenant, s, NULL, 20L, out, NULL);
	free(s);
	json_decref(body);
	return st;
}

long long test_jint(json_t *o, const char *k) { return json_integer_value(json_object_get(o, k)); }

long long test_create(int port, const char *path, const char *token, long long tenant,
		      json_t *body)
{
	json_t *o = NULL;
	long st = test_call(port, "POST", path, token, tenant, body, &o);
	TEST_CHECK(st == 201);
	if (st != 201) {
		char *d = o ? json_dumps(o, JSON_COMPACT) : NULL;
		fprintf(stderr, "POST %s -> %ld %s\n", path, st, d ? d : "(no body)");
		free(d);
	}
	long long id = test_jint(o, "id");
	json_decref(o);
	return id;
}

void test_make_token(int port, const char *boot, long long tenant, const char *user,
		     const char *role, char out[128], long long *id)
{
	json_t *o = NULL;
	long st = test_call(port, "POST", "/api/v1/tokens", boot, tenant,
			    json_pack("{s:s, s:s}", "username", user, "role", role), &o);
	TEST_CHECK(st == 201);
	const char *tk = json_string_value(json_object_get(o, "token"));
	snprintf(out, 128, "%s", tk ? tk : "none");
	if (id)
		*id = test_jint(o, "id");
	json_decref(o);
}
