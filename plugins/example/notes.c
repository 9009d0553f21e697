/*
 * notes.c: the example plugin's ABI 2 part: a table of its own, an authenticated operator-API
 * route that reads and writes it per tenant, a service it offers and a service it consumes.
 *
 *   GET  /api/v1/example/notes   (read-only)  the caller's tenant's notes, newest first, paged:
 *        {items:[{id, text, created_by, created_ms}], limit, offset, next_offset}
 *   POST /api/v1/example/notes   (operator)   {"text": 1..500 characters} -> 201
 *        {id, text, created_by, created_ms, messaging}; one transaction writes the row and an
 *        audit_log row (action "example.note_create", object "example_note" id).
 *
 * Storage: the table example_notes (schema/001_notes.sql, compiled into the descriptor by
 * evcs-embed-sql as example_migrations) is reached only through api->db_query / db_txn_*: every
 * statement carries `tenant_id = ?` and the core binds the request's tenant there, so one
 * tenant never reads or writes another's notes. The core authenticates, checks the role, binds
 * the tenant and answers 401/403/400 before a handler runs.
 *
 * Services: offers EXAMPLE_SERVICE_NAME version 1 (example_service.h: notes_created). Consumes
 * "messaging" version 1 when a provider is loaded, looked up for every note: the reply's
 * `messaging` says "not available" (no provider: logged once, the note is stored all the same)
 * or "available (version N)". This example does not call it: the messaging provider's header
 * defines that table.
 *
 * Threading: loop thread only. Ownership: requests waiting for the database are listed here and
 * freed by example_notes_free (the core drops an unloaded plugin's database callbacks and
 * discards its unanswered requests).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, strdup under -std=c11 */

#include "example.h"
#include "example_service.h"

#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NOTE_MAX_CHARS 500

struct example_notes {
	const evcs_api_t *api;
	evcs_plugin_t *self;
	uint64_t created; /* notes created since start (the offered service reports it) */
	int messaging_absent_logged;
	struct note_req *reqs; /* waiting for the database */
};

/* One request waiting for the database. */
struct note_req {
	struct note_req *next, *prev;
	struct example_notes *n;
	evcs_api_req_t *r;
	int64_t limit, offset;
	int64_t created_ms;
	char actor[65];
	char messaging[48];
	char *text;
};

static struct note_req *note_req_new(struct example_notes *n, evcs_api_req_t *r)
{
	struct note_req *q = calloc(1, sizeof *q);
	if (q == NULL) {
		n->api->req_error(r, 503, "unavailable", NULL, "out of memory");
		return NULL;
	}
	q->n = n;
	q->r = r;
	q->next = n->reqs;
	if (n->reqs != NULL)
		n->reqs->prev = q;
	n->reqs = q;
	return q;
}

static void note_req_free(struct note_req *q)
{
	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		q->n->reqs = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	free(q->text);
	free(q);
}

/* Answer with a JSON value (stolen) and forget the request. */
static void note_reply(struct note_req *q, int status, json_t *o)
{
	char *txt = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (txt != NULL)
		q->n->api->req_reply(q->r, status, txt);
	else
		q->n->api->req_error(q->r, 503, "unavailable", NULL, "out of memory");
	free(txt);
	note_req_free(q);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* UTF-8 characters in s (jansson has checked the encoding). */
static size_t utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s != '\0'; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

/* ---- the consumed service: "messaging" ----------------------------------------------------- */
static void messaging_state(struct example_notes *n, char *out, size_t outlen)
{
	const void *table;
	void *ctx;
	uint32_t version;
	if (n->api->service_get(n->self, "messaging", 1, &table, &ctx, &version) != EVCS_OK) {
		/* "not available" is an answer, not an error: the note is stored all the same */
		if (!n->messaging_absent_logged)
			n->api->log(n->self, EVCS_LOG_NOTICE, 0, NULL,
				    "messaging service not available (no provider loaded): notes are "
				    "stored without a notification");
		n->messaging_absent_logged = 1;
		snprintf(out, outlen, "not available");
		return;
	}
	n->messaging_absent_logged = 0;
	snprintf(out, outlen, "available (version %u)", (unsigned)version);
}

/* ---- the offered service: EXAMPLE_SERVICE_NAME ---------------------------------------------- */
static uint64_t svc_notes_created(void *ctx)
{
	const struct example_notes *n = ctx;
	return n->created;
}

static const example_notes_service_t notes_service = {
    .size = sizeof(example_notes_service_t),
    .notes_created = svc_notes_created,
};

/* ---- POST /api/v1/example/notes ------------------------------------------------------------- */
static void created_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		       void *ud)
{
	struct note_req *q = ud;
	const evcs_api_t *api = q->n->api;
	if (status != EVCS_OK) {
		api->req_db_error(q->r, status, errmsg); /* 503 database down, 500 + log line, ... */
		note_req_free(q);
		return;
	}
	/* res[0] is the INSERT (the audit row is res[1]) */
	int64_t id = nres > 0 ? (int64_t)res[0].insert_id : 0;
	q->n->created++;
	note_reply(q, 201,
		   json_pack("{s:I, s:s, s:s, s:I, s:s}", "id", (json_int_t)id, "text", q->text,
			     "created_by", q->actor, "created_ms", (json_int_t)q->created_ms,
			     "messaging", q->messaging));
}

static void notes_post(evcs_api_req_t *r, void *ud)
{
	struct example_notes *n = ud;
	const evcs_api_t *api = n->api;
	size_t len = 0;
	const char *body = api->req_body(r, &len); /* a JSON object: the core checked it */
	json_t *b = json_loadb(body, len, 0, NULL);
	const char *k;
	json_t *v;
	json_object_foreach(b, k, v)
	{
		if (strcmp(k, "text") != 0) {
			char msg[96];
			snprintf(msg, sizeof msg, "unknown field %.60s", k);
			api->req_error(r, 400, "unknown_field", k, msg);
			json_decref(b);
			return;
		}
	}
	const char *text = json_string_value(json_object_get(b, "text"));
	size_t chars = text != NULL ? utf8_chars(text) : 0;
	if (text == NULL || chars == 0 || chars > NOTE_MAX_CHARS) {
		api->req_error(r, 400, "invalid", "text", "text must be a string of 1..500 characters");
		json_decref(b);
		return;
	}
	struct note_req *q = note_req_new(n, r);
	if (q == NULL || (q->text = strdup(text)) == NULL) {
		if (q != NULL) {
			api->req_error(r, 503, "unavailable", NULL, "out of memory");
			note_req_free(q);
		}
		json_decref(b);
		return;
	}
	json_decref(b);
	snprintf(q->actor, sizeof q->actor, "%s", api->req_actor(r));
	q->created_ms = now_ms();
	messaging_state(n, q->messaging, sizeof q->messaging);

	/* the row and its audit entry commit together, or neither does */
	evcs_db_txn_t *t = api->db_txn_new(n->self);
	if (t == NULL) {
		api->req_db_error(r, EVCS_EUNAVAIL, "no database configured");
		note_req_free(q);
		return;
	}
	const evcs_db_param_t params[] = {EVCS_DB_STR(q->text), EVCS_DB_STR(q->actor),
					  EVCS_DB_INT(q->created_ms)};
	api->db_txn_add(t, api->req_tenant(r),
			"INSERT INTO example_notes SET tenant_id = ?, body = ?, created_by = ?, "
			"created_ms = ?",
			params, 3, 0);
	char details[48];
	snprintf(details, sizeof details, "{\"chars\":%zu}", chars);
	api->req_audit(r, t, "example.note_create", "example_note", EVCS_DB_REFID(0), details);
	int rc = api->db_txn_submit(t, 0, created_cb, q); /* an add that failed fails this */
	if (rc != EVCS_OK) {
		api->req_db_error(r, rc, "");
		note_req_free(q);
	}
}

/* ---- GET /api/v1/example/notes -------------------------------------------------------------- */
static void listed_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		      void *ud)
{
	struct note_req *q = ud;
	const evcs_api_t *api = q->n->api;
	if (status != EVCS_OK || nres < 1) {
		api->req_db_error(q->r, status != EVCS_OK ? status : EVCS_ERR, errmsg);
		note_req_free(q);
		return;
	}
	json_t *items = json_array();
	for (size_t i = 0; i < res[0].nrows && (int64_t)i < q->limit; i++) {
		int64_t id = 0, ms = 0;
		api->db_cell_int(&res[0], i, 0, &id);
		api->db_cell_int(&res[0], i, 3, &ms);
		const char *text = api->db_cell(&res[0], i, 1), *by = api->db_cell(&res[0], i, 2);
		json_array_append_new(items, json_pack("{s:I, s:s, s:s, s:I}", "id", (json_int_t)id,
						       "text", text ? text : "", "created_by",
						       by ? by : "", "created_ms", (json_int_t)ms));
	}
	char *txt = json_dumps(items, JSON_COMPACT);
	json_decref(items);
	if (txt != NULL)
		api->req_reply_page(q->r, txt, q->limit, q->offset, (int64_t)res[0].nrows > q->limit);
	else
		api->req_error(q->r, 503, "unavailable", NULL, "out of memory");
	free(txt);
	note_req_free(q);
}

static void notes_get(evcs_api_req_t *r, void *ud)
{
	struct example_notes *n = ud;
	const evcs_api_t *api = n->api;
	int64_t limit, offset;
	if (api->req_page(r, &limit, &offset) != 0)
		return; /* answered 400 */
	struct note_req *q = note_req_new(n, r);
	if (q == NULL)
		return;
	q->limit = limit;
	q->offset = offset;
	/* one row more than asked tells whether there is a next page */
	const evcs_db_param_t params[] = {EVCS_DB_INT(limit + 1), EVCS_DB_INT(offset)};
	int rc = api->db_query(n->self, api->req_tenant(r),
			       "SELECT id, body, created_by, created_ms FROM example_notes "
			       "WHERE tenant_id = ? ORDER BY id DESC LIMIT ? OFFSET ?",
			       params, 2, EVCS_DB_IDEMPOTENT, listed_cb, q);
	if (rc != EVCS_OK) {
		api->req_db_error(r, rc, "");
		note_req_free(q);
	}
}

/* ---- registration --------------------------------------------------------------------------- */
#define ERR_RESPONSE(code, text)                                                                   \
	"\"" code "\":{\"description\":\"" text "\",\"content\":{\"application/json\":"             \
	"{\"schema\":{\"$ref\":\"#/components/schemas/Error\"}}}}"
#define NOTE_SCHEMA                                                                                \
	"{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\",\"format\":\"int64\"},"    \
	"\"text\":{\"type\":\"string\"},\"created_by\":{\"type\":\"string\"},\"created_ms\":"         \
	"{\"type\":\"integer\",\"format\":\"int64\"}}}"

/* OpenAPI 3 operation objects: the core serves them inside /api/v1/openapi.json. */
static const char openapi_get[] =
    "{\"summary\":\"The caller's tenant's notes, newest first (example plugin)\","
    "\"description\":\"Minimum role: read-only.\","
    "\"parameters\":[{\"name\":\"limit\",\"in\":\"query\",\"required\":false,\"schema\":"
    "{\"type\":\"integer\",\"format\":\"int64\"},\"description\":\"1..500, default 50\"},"
    "{\"name\":\"offset\",\"in\":\"query\",\"required\":false,\"schema\":{\"type\":\"integer\","
    "\"format\":\"int64\"},\"description\":\"default 0\"},"
    "{\"$ref\":\"#/components/parameters/TenantHeader\"}],"
    "\"responses\":{\"200\":{\"description\":\"OK\",\"content\":{\"application/json\":{\"schema\":"
    "{\"type\":\"object\",\"properties\":{\"items\":{\"type\":\"array\",\"items\":" NOTE_SCHEMA "},"
    "\"limit\":{\"type\":\"integer\"},\"offset\":{\"type\":\"integer\"},\"next_offset\":"
    "{\"type\":\"integer\",\"nullable\":true}}}}}},"
    ERR_RESPONSE("400", "bad limit or offset") "," ERR_RESPONSE("401", "missing or bad token") ","
    ERR_RESPONSE("403", "role not allowed, or tenant inactive") ","
    ERR_RESPONSE("503", "database unavailable or busy") "}}";

static const char openapi_post[] =
    "{\"summary\":\"Add a note for the caller's tenant (example plugin)\","
    "\"description\":\"Minimum role: operator. Writes the note and an audit row "
    "(example.note_create) in one transaction. messaging tells whether a messaging service is "
    "loaded (\\\"not available\\\" otherwise).\","
    "\"parameters\":[{\"$ref\":\"#/components/parameters/TenantHeader\"}],"
    "\"requestBody\":{\"required\":true,\"content\":{\"application/json\":{\"schema\":"
    "{\"type\":\"object\",\"required\":[\"text\"],\"properties\":{\"text\":{\"type\":\"string\","
    "\"minLength\":1,\"maxLength\":500}}},\"example\":{\"text\":\"gun 2 cable worn\"}}}},"
    "\"responses\":{\"201\":{\"description\":\"created\",\"content\":{\"application/json\":"
    "{\"schema\":{\"allOf\":[" NOTE_SCHEMA ",{\"type\":\"object\",\"properties\":{\"messaging\":"
    "{\"type\":\"string\"}}}]}}}},"
    ERR_RESPONSE("400", "bad input (error.field names it)") ","
    ERR_RESPONSE("401", "missing or bad token") ","
    ERR_RESPONSE("403", "role not allowed, or tenant inactive") ","
    ERR_RESPONSE("503", "database unavailable or busy") "}}";

int example_notes_setup(const evcs_api_t *api, evcs_plugin_t *p, struct example_notes **out)
{
	*out = NULL;
	/* the descriptor says ABI 2, so the core has these; checked anyway, as a newer plugin would */
	if (!EVCS_API_HAS(api, api_route) || !EVCS_API_HAS(api, db_txn_submit) ||
	    !EVCS_API_HAS(api, service_get)) {
		api->log(p, EVCS_LOG_ERR, 0, NULL, "this core lacks the ABI 2 routes, data layer or services");
		return EVCS_ENOTSUP;
	}
	struct example_notes *n = calloc(1, sizeof *n);
	if (n == NULL)
		return EVCS_ENOMEM;
	n->api = api;
	n->self = p;
	const evcs_api_route_t routes[] = {
	    {.size = sizeof(evcs_api_route_t), .method = "GET", .pattern = "/api/v1/example/notes",
	     .min_role = EVCS_ROLE_READ_ONLY, .handler = notes_get, .ud = n, .openapi = openapi_get},
	    {.size = sizeof(evcs_api_route_t), .method = "POST", .pattern = "/api/v1/example/notes",
	     .min_role = EVCS_ROLE_OPERATOR, .handler = notes_post, .ud = n, .openapi = openapi_post},
	};
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		int rc = api->api_route(p, &routes[i]);
		if (rc != EVCS_OK) {
			api->log(p, EVCS_LOG_ERR, 0, NULL, "cannot add %s %s: %s", routes[i].method,
				 routes[i].pattern, api->status_name(rc));
			free(n); /* the core drops the routes already added when init fails */
			return rc;
		}
	}
	int rc = api->service_offer(p, EXAMPLE_SERVICE_NAME, EXAMPLE_SERVICE_VERSION, &notes_service, n);
	if (rc != EVCS_OK) {
		free(n);
		return rc;
	}
	*out = n;
	return EVCS_OK;
}

void example_notes_free(struct example_notes *n)
{
	if (n == NULL)
		return;
	while (n->reqs != NULL)
		note_req_free(n->reqs);
	free(n);
}
