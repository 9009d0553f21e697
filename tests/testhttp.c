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
