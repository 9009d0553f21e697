/*
 * tp_routes.c: a test plugin serving operator-API routes (ABI 2 api_route / req_*), loaded by
 * tests/test_api (see tests/test_api_plugin.c for what is asserted). It keeps notes in memory,
 * keyed by the request's tenant (no tables of its own):
 *   GET    /api/v1/tp/notes            read-only     list, paginated (req_page/req_reply_page)
 *   POST   /api/v1/tp/notes            operator      {"text"}; 201; writes an audit row through
 *                                                    db_txn_new + req_audit when the core has it
 *   GET    /api/v1/tp/notes/{note_id}  read-only     answered 30 ms later from a timer
 *   DELETE /api/v1/tp/notes/{note_id}  tenant-admin  204
 *   GET    /api/v1/tp/whoami           read-only     EVCS_ROUTE_TENANT_OPT: tenant, role, actor
 *   PUT    /api/v1/tp/echo             operator      EVCS_ROUTE_RAW_BODY: the body as sent
 *   GET    /api/v1/tp/registrations    platform-admin EVCS_ROUTE_PLATFORM: what api_route
 *                                                    answered to the refused registrations
 *   POST   /tp/callback/...            (http_route, unauthenticated) {"ok":true,"notes":N}
 * Another tenant's note is answered 404 exactly like a missing one.
 * It uses only <evcs/plugin.h> and jansson, like a third-party plugin.
 */
#include <evcs/plugin.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const evcs_api_t *A;
static evcs_plugin_t *P;

struct note {
	int64_t tenant, id;
	char *text;
	struct note *next;
};
static struct note *notes; /* ascending id */
static int64_t next_id = 1;

/* requests waiting for a timer (GET by id) or the database (POST with audit) */
struct pending {
	evcs_api_req_t *r;
	evcs_timer_t *timer;
	int64_t id;
	char *text;
	struct pending *next;
};
static struct pending *pend;

/* refused registrations and what api_route said */
static struct {
	const char *what;
	int status;
} refused[16];
static size_t nrefused;

static void pend_unlink(struct pending *x)
{
	for (struct pending **pp = &pend; *pp; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			break;
		}
	free(x->text);
	free(x);
}

static struct note *note_find(int64_t tenant, const char *id_text)
{
	char *end;
	long long id = id_text ? strtoll(id_text, &end, 10) : 0;
	if (!id_text || !*id_text || *end || id <= 0)
		return NULL;
	for (struct note *n = notes; n; n = n->next)
		if (n->id == id && n->tenant == tenant)
			return n;
	return NULL;
}

static json_t *note_json(const struct note *n)
{
	return json_pack("{s:I, s:s}", "id", (json_int_t)n->id, "text", n->text);
}

static void reply_json(evcs_api_req_t *r, int status, json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s) {
		A->req_error(r, 503, "unavailable", NULL, "out of memory");
		return;
	}
	A->req_reply(r, status, s);
	free(s);
}

/* id 0: the next free one. Kept in ascending id order. */
static struct note *note_add(int64_t tenant, const char *text, int64_t id)
{
	struct note *n = calloc(1, sizeof *n);
	if (!n || !(n->text = strdup(text))) {
		free(n);
		return NULL;
	}
	n->tenant = tenant;
	n->id = id ? id : next_id++;
	struct note **pp = &notes;
	while (*pp && (*pp)->id < n->id)
		pp = &(*pp)->next;
	n->next = *pp;
	*pp = n;
	return n;
}

/* ---- routes ---------------------------------------------------------------------------------- */
static void notes_list(evcs_api_req_t *r, void *ud)
{
	(void)ud;
	int64_t limit, offset;
	if (A->req_page(r, &limit, &offset) < 0)
		return; /* answered 400 */
	int64_t tenant = A->req_tenant(r), i = 0;
	json_t *items = json_array();
	for (struct note *n = notes; n; n = n->next) {
		if (n->tenant != tenant)
			continue;
		if (i >= offset && i <= offset + limit) /* one more than a page: "more" */
			json_array_append_new(items, note_json(n));
		i++;
	}
	int more = (int64_t)json_array_size(items) > limit;
	if (more)
		json_array_remove(items, json_array_size(items) - 1);
	char *s = json_dumps(items, JSON_COMPACT);
	json_decref(items);
	A->req_reply_page(r, s, limit, offset, more);
	free(s);
}

static void created(evcs_api_req_t *r, struct note *n, int audited)
{
	if (!n) {
		A->req_error(r, 503, "unavailable", NULL, "out of memory");
		return;
	}
	json_t *o = note_json(n);
	json_object_set_new(o, "audited", json_boolean(audited));
	reply_json(r, 201, o);
}

static void audit_done(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		       void *ud)
{
	(void)res;
	(void)nres;
	struct pending *x = ud;
	evcs_api_req_t *r = x->r;
	if (status != EVCS_OK) {
		A->req_db_error(r, status, errmsg);
	} else {
		/* the id was reserved before the audit row named it */
		created(r, note_add(A->req_tenant(r), x->text, x->id), 1);
	}
	pend_unlink(x);
}

static void notes_create(evcs_api_req_t *r, void *ud)
{
	(void)ud;
	size_t len;
	const char *body = A->req_body(r, &len);
	json_t *o = json_loadb(body, len, 0, NULL); /* the core checked: a JSON object */
	const char *text = json_string_value(json_object_get(o, "text"));
	if (!text || !*text || strlen(text) > 200) {
		json_decref(o);
		A->req_error(r, 400, "invalid", "text", "text must be a string of 1..200 characters");
		return;
	}
	evcs_db_txn_t *t = EVCS_API_HAS(A, db_txn_new) ? A->db_txn_new(P) : NULL;
	if (!t) { /* a core without the data layer for plugins: no audit row */
		created(r, note_add(A->req_tenant(r), text, 0), 0);
		json_decref(o);
		return;
	}
	struct pending *x = calloc(1, sizeof *x);
	if (!x || !(x->text = strdup(text))) {
		free(x);
		A->db_txn_free(t);
		json_decref(o);
		A->req_error(r, 503, "unavailable", NULL, "out of memory");
		return;
	}
	x->r = r;
	x->id = next_id++;
	x->next = pend;
	pend = x;
	char oid[24], *details = NULL;
	snprintf(oid, sizeof oid, "%lld", (long long)x->id);
	details = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	int st = A->req_audit(r, t, "tp.note.create", "tp_note", EVCS_DB_STR(oid), details);
	free(details);
	if (st != EVCS_OK) {
		A->db_txn_free(t);
		A->req_db_error(r, st, NULL);
		pend_unlink(x);
		return;
	}
	st = A->db_txn_submit(t, 0, audit_done, x);
	if (st != EVCS_OK) {
		A->req_db_error(r, st, NULL);
		pend_unlink(x);
	}
}

static void get_fire(void *ud)
{
	struct pending *x = ud;
	x->timer = NULL; /* one-shot: freed by the core */
	char id[24];
	snprintf(id, sizeof id, "%lld", (long long)x->id);
	struct note *n = note_find(A->req_tenant(x->r), id);
	if (n)
		reply_json(x->r, 200, note_json(n));
	else
		A->req_error(x->r, 404, "not_found", NULL, "no such note");
	pend_unlink(x);
}

static void notes_get(evcs_api_req_t *r, void *ud)
{
	(void)ud;
	const char *idt = A->req_param(r, "note_id");
	char *end;
	long long id = idt ? strtoll(idt, &end, 10) : 0;
	if (!idt || !*idt || *end || id <= 0) {
		A->req_error(r, 404, "not_found", NULL, "no such note");
		return;
	}
	struct pending *x = calloc(1, sizeof *x);
	if (!x) {
		A->req_error(r, 503, "unavailable", NULL, "out of memory");
		return;
	}
	x->r = r;
	x->id = id;
	x->next = pend;
	pend = x;
	x->timer = A->timer_add(P, 30, 0, get_fire, x);
	if (!x->timer) {
		A->req_error(r, 503, "unavailable", NULL, "no timer");
		pend_unlink(x);
	}
}

static void notes_delete(evcs_api_req_t *r, void *ud)
{
	(void)ud;
	struct note *n = note_find(A->req_tenant(r), A->req_param(r, "note_id"));
	if (!n) {
		A->req_error(r, 404, "not_found", NULL, "no such note");
		return;
	}
	for (struct note **pp = &notes; *pp; pp = &(*pp)->next)
		if (*pp == n) {
			*pp = n->next;
			break;
		}
	free(n->text);
	free(n);
	A->req_reply(r, 204, NULL);
}

static void whoami(evcs_api_req_t *r, void *ud)
{
	(void)ud;
	reply_json(r, 200, json_pack("{s:I, s:i, s:s}", "tenant_id", (json_int_t)A->req_tenant(r),
				     "role", A->req_role(r), "actor", A->req_actor(r)));
}

static void echo(evcs_api_req_t *r, void *ud)
{
	(void)ud;
	size_t len;
	const char *body = A->req_body(r, &len);
	reply_json(r, 200, json_pack("{s:I, s:s%}", "bytes", (json_int_t)len, "text", body, len));
}

static void registrations(evcs_api_req_t *r, void *ud)
{
	(void)ud;
	json_t *o = json_object();
	for (size_t i = 0; i < nrefused; i++)
		json_object_set_new(o, refused[i].what, json_string(A->status_name(refused[i].status)));
	reply_json(r, 200, o);
}

static void callback(evcs_http_req_t *r, void *ud)
{
	(void)ud;
	int n = 0;
	for (struct note *x = notes; x; x = x->next)
		n++;
	char body[64];
	snprintf(body, sizeof body, "{\"ok\":true,\"notes\":%d}", n);
	A->http_reply(r, 200, "application/json", body, strlen(body));
}

/* ---- OpenAPI operations ---------------------------------------------------------------------- */
#define NOTE_SCHEMA                                                                             \
	"{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\",\"format\":\"int64\"},"   \
	"\"text\":{\"type\":\"string\"}}}"
#define PAGE_PARAMS                                                                             \
	"{\"name\":\"limit\",\"in\":\"query\",\"required\":false,\"schema\":{\"type\":\"integer\"}," \
	"\"description\":\"1..500, default 50\"},"                                              \
	"{\"name\":\"offset\",\"in\":\"query\",\"required\":false,\"schema\":{\"type\":\"integer\"}}"

static const char op_list[] =
    "{\"summary\":\"List notes (test plugin)\",\"tags\":[\"tp_routes\"],\"parameters\":[" PAGE_PARAMS
    "],\"responses\":{\"200\":{\"description\":\"a page of notes\",\"content\":{\"application/"
    "json\":{\"schema\":{\"type\":\"object\",\"properties\":{\"items\":{\"type\":\"array\","
    "\"items\":" NOTE_SCHEMA "},\"limit\":{\"type\":\"integer\"},\"offset\":{\"type\":\"integer\"},"
    "\"next_offset\":{\"type\":\"integer\",\"nullable\":true}}}}}}}}";
static const char op_create[] =
    "{\"summary\":\"Create a note (test plugin)\",\"tags\":[\"tp_routes\"],\"requestBody\":{"
    "\"required\":true,\"content\":{\"application/json\":{\"schema\":" NOTE_SCHEMA
    ",\"example\":{\"text\":\"from the OpenAPI walk\"}}}},\"responses\":{\"201\":{\"description\":"
    "\"created\",\"content\":{\"application/json\":{\"schema\":" NOTE_SCHEMA "}}}}}";
/* declares its path parameter; the DELETE below leaves it to the core */
static const char op_get[] =
    "{\"summary\":\"Get a note, answered from a timer (test plugin)\",\"tags\":[\"tp_routes\"],"
    "\"parameters\":[{\"name\":\"note_id\",\"in\":\"path\",\"required\":true,\"schema\":{"
    "\"type\":\"integer\",\"format\":\"int64\"}}],\"responses\":{\"200\":{\"description\":\"OK\","
    "\"content\":{\"application/json\":{\"schema\":" NOTE_SCHEMA "}}}}}";
static const char op_delete[] = "{\"summary\":\"Delete a note (test plugin)\",\"tags\":"
				"[\"tp_routes\"],\"responses\":{\"204\":{\"description\":"
				"\"deleted\"}}}";
static const char op_whoami[] =
    "{\"summary\":\"Who the core says the caller is (test plugin)\",\"tags\":[\"tp_routes\"],"
    "\"responses\":{\"200\":{\"description\":\"OK\"}}}";
static const char op_echo[] =
    "{\"summary\":\"Echo a raw body (test plugin)\",\"tags\":[\"tp_routes\"],\"requestBody\":{"
    "\"content\":{\"text/plain\":{\"schema\":{\"type\":\"string\"},\"example\":\"not { json\"}}},"
    "\"responses\":{\"200\":{\"description\":\"OK\"}}}";
static const char op_regs[] =
    "{\"summary\":\"What api_route answered to bad registrations (test plugin)\",\"tags\":"
    "[\"tp_routes\"],\"responses\":{\"200\":{\"description\":\"OK\"}}}";
static const char op_min[] = "{\"responses\":{\"200\":{\"description\":\"OK\"}}}";

static int add(const char *method, const char *pattern, int role, unsigned flags,
	       evcs_api_handler h, const char *op)
{
	evcs_api_route_t rt = {.size = sizeof rt,
			       .method = method,
			       .pattern = pattern,
			       .min_role = role,
			       .flags = flags,
			       .handler = h,
			       .openapi = op};
	return A->api_route(P, &rt);
}

static void try_refused(const char *what, const char *method, const char *pattern, int role,
			const char *op)
{
	if (nrefused < sizeof refused / sizeof *refused) {
		refused[nrefused].what = what;
		refused[nrefused].status = add(method, pattern, role, 0, whoami, op);
		nrefused++;
	}
}

static int init(evcs_plugin_t *p, const evcs_api_t *api)
{
	A = api;
	P = p;
	if (!EVCS_API_HAS(api, api_route)) {
		api->log(p, EVCS_LOG_ERR, 0, NULL, "this core has no operator-API routes (ABI < 2)");
		return EVCS_ENOTSUP;
	}
	int r = EVCS_OK;
	r |= add("GET", "/api/v1/tp/notes", EVCS_ROLE_READ_ONLY, 0, notes_list, op_list);
	r |= add("POST", "/api/v1/tp/notes", EVCS_ROLE_OPERATOR, 0, notes_create, op_create);
	r |= add("GET", "/api/v1/tp/notes/{note_id}", EVCS_ROLE_READ_ONLY, 0, notes_get, op_get);
	r |= add("DELETE", "/api/v1/tp/notes/{note_id}", EVCS_ROLE_TENANT_ADMIN, 0, notes_delete,
		 op_delete);
	r |= add("GET", "/api/v1/tp/whoami", EVCS_ROLE_READ_ONLY, EVCS_ROUTE_TENANT_OPT, whoami,
		 op_whoami);
	r |= add("PUT", "/api/v1/tp/echo", EVCS_ROLE_OPERATOR, EVCS_ROUTE_RAW_BODY, echo, op_echo);
	r |= add("GET", "/api/v1/tp/registrations", EVCS_ROLE_PLATFORM_ADMIN, EVCS_ROUTE_PLATFORM,
		 registrations, op_regs);
	if (r != EVCS_OK)
		return EVCS_ERR;
	/* each of these must be refused; GET /api/v1/tp/registrations shows the answers */
	try_refused("core_path", "GET", "/api/v1/stations", EVCS_ROLE_READ_ONLY, op_min);
	try_refused("core_path_renamed", "GET", "/api/v1/stations/{id}", EVCS_ROLE_READ_ONLY, op_min);
	try_refused("own_path_renamed", "DELETE", "/api/v1/tp/notes/{nid}", EVCS_ROLE_READ_ONLY,
		    op_min);
	try_refused("other_param_names", "PUT", "/api/v1/tp/notes/{nid}", EVCS_ROLE_READ_ONLY,
		    op_min);
	try_refused("outside_api", "GET", "/tp/notes", EVCS_ROLE_READ_ONLY, op_min);
	try_refused("param_first", "GET", "/api/v1/{x}/notes", EVCS_ROLE_READ_ONLY, op_min);
	try_refused("bad_segment", "GET", "/api/v1/tp//notes", EVCS_ROLE_READ_ONLY, op_min);
	try_refused("bad_method", "FETCH", "/api/v1/tp/fetch", EVCS_ROLE_READ_ONLY, op_min);
	try_refused("role_0", "GET", "/api/v1/tp/role0", 0, op_min);
	try_refused("role_5", "GET", "/api/v1/tp/role5", 5, op_min);
	try_refused("openapi_array", "GET", "/api/v1/tp/array", EVCS_ROLE_READ_ONLY, "[]");
	try_refused("openapi_broken", "GET", "/api/v1/tp/broken", EVCS_ROLE_READ_ONLY, "{\"a\":");
	try_refused("openapi_missing", "GET", "/api/v1/tp/missing", EVCS_ROLE_READ_ONLY, NULL);
	/* a raw route inside the operator API would bypass its authentication */
	refused[nrefused].what = "http_route_in_api";
	refused[nrefused++].status = A->http_route(P, "POST", "/api/v1/tp/open/", callback, NULL);
	/* unauthenticated endpoints stay on http_route, outside /api/v1/ */
	return A->http_route(P, "POST", "/tp/callback/", callback, NULL);
}

static void cleanup(evcs_plugin_t *p)
{
	(void)p;
	/* unanswered requests are answered by the core (503) after this */
	while (pend) {
		if (pend->timer)
			A->timer_del(pend->timer);
		pend_unlink(pend);
	}
	while (notes) {
		struct note *n = notes;
		notes = n->next;
		free(n->text);
		free(n);
	}
}

static const evcs_plugin_info_t info = {
    .size = sizeof info,
    .abi_major = EVCS_ABI_MAJOR,
    .abi_minor = EVCS_ABI_MINOR,
    .name = "tp_routes",
    .version = "1.0",
    .description = "test plugin: operator-API routes",
    .init = init,
    .cleanup = cleanup,
};

EVCS_PLUGIN_DECLARE(info)
