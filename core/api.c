/*
 * api.c: the operator REST API under /api/v1/: route table, bearer-token authentication,
 * roles, tenant binding, JSON errors, replies, pagination and audit helpers.
 * Contract and lifecycle: api.h. Served OpenAPI document: core/openapi.json (embedded), plus
 * the operations of plugin routes (api_plugin.c), which the dispatch below serves like its own.
 *
 * Auth model: `Authorization: Bearer <token>`. Tokens are stored as the lower-case hex SHA-256
 * (api_tokens.token_sha256); a request costs one platform-level lookup joining the token, its
 * user and its tenant. The effective role is the narrower of the token's and the user's.
 * [api] bootstrap_token is a platform-admin token from the configuration (compared in constant
 * time; a warning is logged at start while it is set). A tenant-bound principal always acts on
 * its own tenant; a platform admin names the tenant with X-Tenant-ID or ?tenant_id=.
 * Objects of another tenant are answered 404 exactly like missing ones.
 */
#include "api.h"
#include "log.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- route table ---------------------------------------------------------------------- */
#define RO ROLE_READ_ONLY
#define OP ROLE_OPERATOR
#define TA ROLE_TENANT_ADMIN
#define PA ROLE_PLATFORM_ADMIN

static void openapi_get(api_ctx_t *c);

static const api_route_t routes[] = {
    {"GET", "/api/v1/openapi.json", 0, AR_PUBLIC, openapi_get, NULL},
    {"GET", "/api/v1/me", RO, AR_TENANT_OPT, api_op_me, NULL},
    {"GET", "/api/v1/tenants", PA, AR_PLATFORM, api_crud_list, &api_res_tenants},
    {"POST", "/api/v1/tenants", PA, AR_PLATFORM, api_op_tenant_create, &api_res_tenants},
    {"GET", "/api/v1/tenants/{tenant_id}", PA, AR_PLATFORM, api_crud_get, &api_res_tenants},
    {"PATCH", "/api/v1/tenants/{tenant_id}", PA, AR_PLATFORM, api_op_tenant_update,
     &api_res_tenants},
    {"GET", "/api/v1/tokens", TA, 0, api_crud_list, &api_res_tokens},
    {"POST", "/api/v1/tokens", TA, AR_TENANT_OPT, api_op_token_create, NULL},
    {"DELETE", "/api/v1/tokens/{token_id}", TA, 0, api_op_token_revoke, NULL},
    {"GET", "/api/v1/stations", RO, 0, api_crud_list, &api_res_stations},
    {"POST", "/api/v1/stations", OP, 0, api_crud_create, &api_res_stations},
    {"GET", "/api/v1/stations/{station_id}", RO, 0, api_crud_get, &api_res_stations},
    {"PATCH", "/api/v1/stations/{station_id}", OP, 0, api_crud_update, &api_res_stations},
    {"DELETE", "/api/v1/stations/{station_id}", OP, 0, api_crud_delete, &api_res_stations},
    {"GET", "/api/v1/piles", RO, 0, api_crud_list, &api_res_piles},
    {"POST", "/api/v1/piles", OP, 0, api_op_pile_create, NULL},
    {"GET", "/api/v1/piles/unclaimed", OP, AR_TENANT_OPT, api_crud_list, &api_res_unclaimed},
    {"POST", "/api/v1/piles/unclaimed/{serial}/claim", OP, 0, api_op_pile_claim, NULL},
    {"GET", "/api/v1/piles/{pile_id}", RO, 0, api_crud_get, &api_res_piles},
    {"PATCH", "/api/v1/piles/{pile_id}", OP, 0, api_crud_update, &api_res_piles},
    {"DELETE", "/api/v1/piles/{pile_id}", OP, 0, api_crud_delete, &api_res_piles},
    {"POST", "/api/v1/piles/{serial}/commands", OP, 0, api_op_pile_command, NULL},
    {"GET", "/api/v1/connectors", RO, 0, api_crud_list, &api_res_connectors},
    {"POST", "/api/v1/connectors", OP, 0, api_crud_create, &api_res_connectors},
    {"GET", "/api/v1/connectors/{connector_id}", RO, 0, api_crud_get, &api_res_connectors},
    {"PATCH", "/api/v1/connectors/{connector_id}", OP, 0, api_crud_update, &api_res_connectors},
    {"DELETE", "/api/v1/connectors/{connector_id}", OP, 0, api_crud_delete, &api_res_connectors},
    {"GET", "/api/v1/tariffs", RO, 0, api_crud_list, &api_res_tariffs},
    {"POST", "/api/v1/tariffs", OP, 0, api_op_tariff_create, NULL},
    {"GET", "/api/v1/tariffs/{tariff_id}", RO, 0, api_crud_get, &api_res_tariffs},
    {"PUT", "/api/v1/tariffs/{tariff_id}", OP, 0, api_op_tariff_version, NULL},
    {"POST", "/api/v1/tariffs/{tariff_id}/publish", OP, 0, api_op_tariff_publish, NULL},
    {"GET", "/api/v1/drivers", RO, 0, api_crud_list, &api_res_drivers},
    {"POST", "/api/v1/drivers", OP, 0, api_crud_create, &api_res_drivers},
    {"GET", "/api/v1/drivers/{driver_id}", RO, 0, api_crud_get, &api_res_drivers},
    {"PATCH", "/api/v1/drivers/{driver_id}", OP, 0, api_crud_update, &api_res_drivers},
    {"DELETE", "/api/v1/drivers/{driver_id}", OP, 0, api_crud_delete, &api_res_drivers},
    {"GET", "/api/v1/cards", RO, 0, api_crud_list, &api_res_cards},
    {"POST", "/api/v1/cards", OP, 0, api_crud_create, &api_res_cards},
    {"GET", "/api/v1/cards/{card_id}", RO, 0, api_crud_get, &api_res_cards},
    {"PATCH", "/api/v1/cards/{card_id}", OP, 0, api_crud_update, &api_res_cards},
    {"DELETE", "/api/v1/cards/{card_id}", OP, 0, api_crud_delete, &api_res_cards},
    {"GET", "/api/v1/sessions", RO, 0, api_crud_list, &api_res_sessions},
    {"GET", "/api/v1/sessions/{session_id}", RO, 0, api_op_session_get, NULL},
    {"GET", "/api/v1/alarms", RO, 0, api_crud_list, &api_res_alarms},
    {"GET", "/api/v1/alarms/{alarm_id}", RO, 0, api_crud_get, &api_res_alarms},
    {"POST", "/api/v1/alarms/{alarm_id}/ack", OP, 0, api_op_alarm_ack, NULL},
    {"GET", "/api/v1/audit", TA, 0, api_crud_list, &api_res_audit},
    {"GET", "/api/v1/scripts", RO, 0, api_op_script_list, NULL},
    {"GET", "/api/v1/scripts/{slot}", RO, 0, api_op_script_get, NULL},
    {"PUT", "/api/v1/scripts/{slot}", TA, AR_RAW_BODY, api_op_script_put, NULL},
    {"GET", "/api/v1/dashboard", RO, 0, api_op_dashboard, NULL},
};

const api_route_t *evcs_api_routes(size_t *n)
{
	*n = sizeof routes / sizeof routes[0];
	return routes;
}

/* ---- small helpers ---------------------------------------------------------------------- */
void sb_add(sb_t *b, const char *s) { sb_addf(b, "%s", s); }

void sb_addf(sb_t *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int need = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (need < 0)
		return;
	if (b->n + (size_t)need + 1 > b->cap) {
		size_t nc = (b->cap ? b->cap * 2 : 256);
		while (nc < b->n + (size_t)need + 1)
			nc *= 2;
		char *ns = realloc(b->s, nc);
		if (!ns)
			abort(); /* SQL text of a few KiB: running out here is not recoverable */
		b->s = ns;
		b->cap = nc;
	}
	va_start(ap, fmt);
	vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
	va_end(ap);
	b->n += (size_t)need;
}

int64_t api_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *const role_names[] = {"none", "read-only", "operator", "tenant-admin",
					 "platform-admin"};
static const char *const role_db[] = {"", "read_only", "operator", "tenant_admin",
				      "platform_admin"};

const char *role_name(int role) { return role >= 0 && role <= 4 ? role_names[role] : "none"; }

int role_parse(const char *s)
{
	if (!s)
		return ROLE_NONE;
	for (int i = 1; i <= 4; i++)
		if (!strcmp(s, role_names[i]) || !strcmp(s, role_db[i]))
			return i;
	return ROLE_NONE;
}

const char *api_param(api_ctx_t *c, const char *name)
{
	for (int i = 0; i < c->nparams; i++)
		if (!strcmp(c->pnames[i], name))
			return c->pvals[i];
	return NULL;
}

int64_t api_param_id(api_ctx_t *c, const char *name)
{
	const char *v = api_param(c, name);
	char *end;
	errno = 0;
	long long id = v ? strtoll(v, &end, 10) : 0;
	if (!v || !*v || *end || errno || id <= 0) {
		api_error(c, 404, "not_found", NULL, "no such %s", name);
		return 0;
	}
	return id;
}

const char *api_keep(api_ctx_t *c, char *s)
{
	char **n = realloc(c->scratch, (c->nscratch + 1) * sizeof *n);
	if (!n) {
		free(s);
		return NULL;
	}
	c->scratch = n;
	c->scratch[c->nscratch++] = s;
	return s;
}

static void ctx_free(api_ctx_t *c)
{
	if (c->api) {
		if (c->prev)
			c->prev->next = c->next;
		else if (c->api->ctxs == c)
			c->api->ctxs = c->next;
		if (c->next)
			c->next->prev = c->prev;
	}
	if (c->op_free)
		c->op_free(c->op);
	json_decref(c->body);
	for (size_t i = 0; i < c->nscratch; i++)
		free(c->scratch[i]);
	free(c->scratch);
	free(c);
}

int api_ctx_gone(api_ctx_t *c)
{
	if (c->req)
		return 0;
	ctx_free(c);
	return 1;
}

int api_db_begin(api_ctx_t *c, int status, const char *errmsg)
{
	if (api_ctx_gone(c))
		return 0;
	if (status != EVCS_OK) {
		api_db_error(c, status, errmsg, NULL);
		return 0;
	}
	return 1;
}

void api_reply_json(api_ctx_t *c, int status, json_t *o)
{
	if (c->req) {
		char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
		if (o && !s)
			evcs_http_reply_error(c->req, 503, "unavailable", NULL, "out of memory");
		else
			evcs_http_req_reply(c->req, status, s ? "application/json" : NULL, s,
					    s ? strlen(s) : 0);
		free(s);
	}
	json_decref(o);
	ctx_free(c);
}

void api_error(api_ctx_t *c, int status, const char *code, const char *field, const char *fmt,
	       ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (status >= 500)
		evcs_log(EVCS_LOG_WARNING, "api", c->tenant, NULL, "%s %s: %d %s",
			 c->req ? evcs_http_req_method(c->req) : "?",
			 c->req ? evcs_http_req_path(c->req) : "?", status, msg);
	if (c->req)
		evcs_http_reply_error(c->req, status, code, field, "%s", msg);
	ctx_free(c);
}

/* "a=b;c=d" lookup */
static int map_lookup(const char *map, const char *key, char *out, size_t outlen)
{
	size_t kl = strlen(key);
	for (const char *p = map; p && *p;) {
		const char *eq = strchr(p, '='), *end = strchr(p, ';');
		if (!end)
			end = p + strlen(p);
		if (eq && eq < end && (size_t)(eq - p) == kl && !strncmp(p, key, kl)) {
			snprintf(out, outlen, "%.*s", (int)(end - eq - 1), eq + 1);
			return 1;
		}
		p = *end ? end + 1 : end;
	}
	return 0;
}

/* name inside "CONSTRAINT `name`" of a server message */
static int constraint_name(const char *msg, char *out, size_t outlen)
{
	const char *p = strstr(msg, "CONSTRAINT `");
	if (!p)
		return 0;
	p += strlen("CONSTRAINT `");
	const char *e = strchr(p, '`');
	if (!e)
		return 0;
	snprintf(out, outlen, "%.*s", (int)(e - p), p);
	return 1;
}

void api_db_error(api_ctx_t *c, int status, const char *errmsg, const char *fkmap)
{
	char cname[80], field[64];
	const char *f = NULL;
	if (errmsg && constraint_name(errmsg, cname, sizeof cname) &&
	    map_lookup(fkmap, cname, field, sizeof field))
		f = field;
	switch (status) {
	case EVCS_EEXIST:
		api_error(c, 409, "conflict", f, "already exists");
		return;
	case EVCS_ENOENT:
		api_error(c, 404, "not_found", NULL, "no such object");
		return;
	case EVCS_EUNAVAIL:
	case EVCS_EBUSY:
		api_error(c, 503, "unavailable", NULL, "database unavailable, try again");
		return;
	default:
		break;
	}
	if (errmsg && strstr(errmsg, "Cannot add or update a child row")) {
		api_error(c, 400, "bad_reference", f, "%s refers to an object that does not exist",
			  f ? f : "a field");
		return;
	}
	if (errmsg && strstr(errmsg, "Cannot delete or update a parent row")) {
		api_error(c, 409, "in_use", NULL, "still referenced by other objects");
		return;
	}
	if (errmsg && (strstr(errmsg, "` failed for `") || strstr(errmsg, "Data too long") ||
		       strstr(errmsg, "Out of range") || strstr(errmsg, "Incorrect "))) {
		api_error(c, 400, "invalid", f, "value rejected by the database");
		return;
	}
	api_error(c, 500, "internal", NULL, "database error");
	evcs_log(EVCS_LOG_ERR, "api", c->tenant, NULL, "database error %d: %s", status,
		 errmsg ? errmsg : "");
}

int api_query(api_ctx_t *c, int platform, const char *sql, const evcs_db_param_t *p, size_t n,
	      evcs_db_cb cb)
{
	int r = platform ? evcs_db_query_platform(c->core->db, sql, p, n, 0, cb, c)
			 : evcs_db_query(c->core->db, c->tenant, sql, p, n, 0, cb, c);
	if (r != EVCS_OK) {
		api_db_error(c, r, NULL, NULL);
		return -1;
	}
	return 0;
}

int api_txn_submit(api_ctx_t *c, evcs_db_txn_t *t, evcs_db_cb cb)
{
	int r = t ? evcs_db_txn_submit(t, 0, cb, c) : EVCS_ENOMEM;
	if (r != EVCS_OK) {
		api_db_error(c, r, NULL, NULL);
		return -1;
	}
	return 0;
}

int api_txn_audit(api_ctx_t *c, evcs_db_txn_t *t, const char *action, const char *object_type,
		  evcs_db_param_t object_id, json_t *details)
{
	int r;
	char *d = details ? json_dumps(details, JSON_COMPACT) : NULL;
	evcs_db_param_t p[] = {c->user_id ? EVCS_DB_INT(c->user_id) : EVCS_DB_NULL,
			       c->token_id ? EVCS_DB_INT(c->token_id) : EVCS_DB_NULL,
			       EVCS_DB_STR(c->actor),
			       EVCS_DB_STR(action),
			       EVCS_DB_STR(object_type),
			       object_id,
			       EVCS_DB_STR(c->peer),
			       EVCS_DB_STR(d)};
	if (c->tenant)
		r = evcs_db_txn_add(t, c->tenant,
				    "INSERT INTO audit_log SET tenant_id = ?, user_id = ?, token_id = ?, "
				    "actor = ?, action = ?, object_type = ?, object_id = ?, peer = ?, "
				    "details = ?",
				    p, 8, 0);
	else
		r = evcs_db_txn_add_platform(t,
					     "INSERT INTO audit_log SET tenant_id = NULL, user_id = ?, "
					     "token_id = ?, actor = ?, action = ?, object_type = ?, "
					     "object_id = ?, peer = ?, details = ?",
					     p, 8, 0);
	free(d);
	return r;
}

static int parse_i64(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = s && *s ? strtoll(s, &end, 10) : 0;
	if (!s || !*s || *end || errno)
		return -1;
	*out = v;
	return 0;
}

int api_page(api_ctx_t *c, int64_t *limit, int64_t *offset)
{
	const char *l = evcs_http_req_query(c->req, "limit");
	const char *o = evcs_http_req_query(c->req, "offset");
	*limit = 50;
	*offset = 0;
	if (l && (parse_i64(l, limit) < 0 || *limit < 1 || *limit > 500)) {
		api_error(c, 400, "invalid", "limit", "limit must be an integer 1..500");
		return -1;
	}
	if (o && (parse_i64(o, offset) < 0 || *offset < 0 || *offset > 100000000)) {
		api_error(c, 400, "invalid", "offset", "offset must be an integer >= 0");
		return -1;
	}
	return 0;
}

json_t *api_page_wrap(json_t *items, int64_t limit, int64_t offset)
{
	int more = (int64_t)json_array_size(items) > limit;
	if (more)
		json_array_remove(items, json_array_size(items) - 1);
	return json_pack("{s:o, s:I, s:I, s:o}", "items", items, "limit", (json_int_t)limit,
			 "offset", (json_int_t)offset, "next_offset",
			 more ? json_integer((json_int_t)(offset + limit)) : json_null());
}

/* The core's document plus the plugin routes' operations (api_plugin.c). */
static void openapi_get(api_ctx_t *c)
{
	size_t len = 0;
	const char *doc = api_plugin_openapi(c->core, &len);
	if (!doc) {
		api_error(c, 503, "unavailable", NULL, "out of memory");
		return;
	}
	if (c->req)
		evcs_http_req_reply(c->req, 200, "application/json", doc, len);
	c->req = NULL;
	ctx_free(c);
}

/* ---- dispatch ----------------------------------------------------------------------------- */
/* Match path against pattern segment by segment, capturing {name} segments. */
static int pattern_match(const char *pattern, const char *path, api_ctx_t *c)
{
	int np = 0;
	const char *p = pattern, *s = path;
	while (*p && *s) {
		if (*p == '{') {
			const char *pe = strchr(p, '}');
			const char *se = strchr(s, '/');
			size_t sl = se ? (size_t)(se - s) : strlen(s);
			size_t nl = (size_t)(pe - p - 1);
			if (!sl || np >= API_MAX_PARAMS || sl >= sizeof c->pvals[0] ||
			    nl >= sizeof c->pnames[0])
				return 0;
			if (c) {
				memcpy(c->pnames[np], p + 1, nl);
				c->pnames[np][nl] = 0;
				memcpy(c->pvals[np], s, sl);
				c->pvals[np][sl] = 0;
			}
			np++;
			p = pe + 1;
			s += sl;
			continue;
		}
		if (*p != *s)
			return 0;
		p++;
		s++;
	}
	if (*p || *s)
		return 0;
	if (c)
		c->nparams = np;
	return 1;
}

static int literal_count(const char *pattern)
{
	int n = 0;
	for (const char *p = pattern; *p; p++)
		if (*p == '/' && p[1] && p[1] != '{')
			n++;
	return n;
}

static void bind_and_run(api_ctx_t *c);

/* token lookup result: id, user_id, tenant_id, token role, user role, username, user status,
 * expires, revoked, tenant status, tenant expiry */
static void auth_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		    void *ud)
{
	api_ctx_t *c = ud;
	if (!api_db_begin(c, status, errmsg))
		return;
	if (res[0].nrows != 1) {
		api_error(c, 401, "unauthorized", NULL, "invalid token");
		return;
	}
	int64_t now = api_now_ms(), exp = 0, rev = 0, texp = 0, tenant = 0;
	evcs_db_cell_i64(&res[0], 0, 0, &c->token_id);
	evcs_db_cell_i64(&res[0], 0, 1, &c->user_id);
	evcs_db_cell_i64(&res[0], 0, 2, &tenant);
	int trole = role_parse(evcs_db_cell(&res[0], 0, 3));
	int urole = role_parse(evcs_db_cell(&res[0], 0, 4));
	const char *uname = evcs_db_cell(&res[0], 0, 5);
	const char *ustatus = evcs_db_cell(&res[0], 0, 6);
	const char *tstatus = evcs_db_cell(&res[0], 0, 9);
	if ((evcs_db_cell_i64(&res[0], 0, 7, &exp) == 0 && exp <= now) ||
	    (evcs_db_cell_i64(&res[0], 0, 8, &rev) == 0 && rev > 0) ||
	    !ustatus || strcmp(ustatus, "active") != 0) {
		api_error(c, 401, "unauthorized", NULL, "token expired, revoked or disabled");
		return;
	}
	c->role = trole && trole < urole ? trole : urole;
	snprintf(c->actor, sizeof c->actor, "user:%s", uname ? uname : "?");
	if (c->role != ROLE_PLATFORM_ADMIN) {
		if (tenant <= 0 || !tstatus || strcmp(tstatus, "active") != 0 ||
		    (evcs_db_cell_i64(&res[0], 0, 10, &texp) == 0 && texp <= now)) {
			api_error(c, 403, "tenant_inactive", NULL,
				  "the tenant is suspended, expired or deleted");
			return;
		}
		c->tenant = tenant;
	}
	bind_and_run(c);
}

static void tenant_check_cb(int status, const evcs_db_result_t *res, size_t nres,
			    const char *errmsg, void *ud)
{
	api_ctx_t *c = ud;
	if (!api_db_begin(c, status, errmsg))
		return;
	if (res[0].nrows != 1) {
		api_error(c, 404, "not_found", "X-Tenant-ID", "no such tenant");
		return;
	}
	c->route->fn(c);
}

static void run_handler(api_ctx_t *c)
{
	if (c->role < c->route->min_role) {
		api_error(c, 403, "forbidden", NULL, "role %s may not do this (needs %s)",
			  role_name(c->role), role_name(c->route->min_role));
		return;
	}
	c->route->fn(c);
}

/* Decide the tenant the request acts on, then run the handler. */
static void bind_and_run(api_ctx_t *c)
{
	const api_route_t *rt = c->route;
	if (c->role < rt->min_role) {
		api_error(c, 403, "forbidden", NULL, "role %s may not do this (needs %s)",
			  role_name(c->role), role_name(rt->min_role));
		return;
	}
	const char *h = evcs_http_req_header(c->req, "X-Tenant-ID");
	if (!h)
		h = evcs_http_req_query(c->req, "tenant_id");
	int64_t want = 0;
	if (h && (parse_i64(h, &want) < 0 || want <= 0)) {
		api_error(c, 400, "invalid", "X-Tenant-ID", "X-Tenant-ID must be a positive integer");
		return;
	}
	if (c->role != ROLE_PLATFORM_ADMIN) {
		if (rt->flags & AR_PLATFORM) {
			api_error(c, 403, "forbidden", NULL, "platform-level operation");
			return;
		}
		if (want && want != c->tenant) {
			api_error(c, 403, "forbidden", "X-Tenant-ID", "token is bound to another tenant");
			return;
		}
		run_handler(c);
		return;
	}
	if (rt->flags & AR_PLATFORM) {
		c->tenant = 0;
		run_handler(c);
		return;
	}
	if (!want) {
		if (rt->flags & AR_TENANT_OPT) {
			run_handler(c);
			return;
		}
		api_error(c, 400, "tenant_required", "X-Tenant-ID",
			  "a platform admin must name the tenant (X-Tenant-ID or ?tenant_id=)");
		return;
	}
	c->tenant = want;
	evcs_db_param_t p[] = {EVCS_DB_INT(want)};
	api_query(c, 1, "SELECT id FROM tenants WHERE id = ? AND status <> 'deleted'", p, 1,
		  tenant_check_cb);
}

static void sha256_hex(const char *s, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_Digest(s, len, md, &mdlen, EVP_sha256(), NULL);
	for (unsigned i = 0; i < mdlen && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = 0;
}

void evcs_api_token_hash(const char *token, char out[65]);
void evcs_api_token_hash(const char *token, char out[65]) { sha256_hex(token, strlen(token), out); }

static void api_dispatch(evcs_http_req_t *req, void *ud)
{
	api_state_t *a = ud;
	const char *path = evcs_http_req_path(req), *method = evcs_http_req_method(req);
	api_ctx_t *c = calloc(1, sizeof *c);
	if (!c) {
		evcs_http_reply_error(req, 503, "unavailable", NULL, "out of memory");
		return;
	}
	c->api = a;
	c->core = a->core;
	c->req = req;
	snprintf(c->peer, sizeof c->peer, "%s", evcs_http_req_peer(req));
	c->next = a->ctxs;
	if (a->ctxs)
		a->ctxs->prev = c;
	a->ctxs = c;

	const api_route_t *best = NULL;
	int path_seen = 0, best_lit = -1;
	/* the core's table, then the plugins' routes; on equal literal counts the first wins */
	size_t ncore = sizeof routes / sizeof routes[0];
	for (size_t i = 0;; i++) {
		const api_route_t *rt =
		    i < ncore ? &routes[i] : evcs_api_plugin_route(a->core, i - ncore);
		if (!rt)
			break;
		if (!pattern_match(rt->pattern, path, NULL))
			continue;
		path_seen = 1;
		if (strcmp(rt->method, method) != 0)
			continue;
		int lit = literal_count(rt->pattern);
		if (lit > best_lit) {
			best = rt;
			best_lit = lit;
		}
	}
	if (!best) {
		if (path_seen)
			api_error(c, 405, "method_not_allowed", NULL, "%s is not allowed on %s", method,
				  path);
		else
			api_error(c, 404, "not_found", NULL, "no such resource: %s", path);
		return;
	}
	c->route = best;
	pattern_match(best->pattern, path, c);

	if (!(best->flags & AR_RAW_BODY)) {
		size_t blen = 0;
		const char *body = evcs_http_req_body(req, &blen);
		if (blen) {
			json_error_t je;
			c->body = json_loadb(body, blen, JSON_REJECT_DUPLICATES, &je);
			if (!c->body || !json_is_object(c->body)) {
				api_error(c, 400, "bad_json", "body",
					  "request body must be a JSON object%s%s", c->body ? "" : ": ",
					  c->body ? "" : je.text);
				return;
			}
		} else {
			c->body = json_object();
		}
	}
	if (best->flags & AR_PUBLIC) {
		best->fn(c);
		return;
	}
	const char *auth = evcs_http_req_header(req, "Authorization");
	if (!auth || strncasecmp(auth, "Bearer ", 7) != 0 || !auth[7]) {
		api_error(c, 401, "unauthorized", NULL, "missing bearer token");
		return;
	}
	const char *tok = auth + 7;
	while (*tok == ' ')
		tok++;
	size_t tl = strlen(tok);
	if (tl == 0 || tl > 256) {
		api_error(c, 401, "unauthorized", NULL, "invalid token");
		return;
	}
	if (a->bootstrap && strlen(a->bootstrap) == tl && CRYPTO_memcmp(a->bootstrap, tok, tl) == 0) {
		c->role = ROLE_PLATFORM_ADMIN;
		snprintf(c->actor, sizeof c->actor, "bootstrap");
		bind_and_run(c);
		return;
	}
	char hex[65];
	sha256_hex(tok, tl, hex);
	evcs_db_param_t p[] = {EVCS_DB_STR(hex)};
	api_query(c, 1,
		  "SELECT t.id, t.user_id, t.tenant_id, t.role, u.role, u.username, u.status, "
		  "t.expires_ms, t.revoked_ms, te.status, te.expires_ms FROM api_tokens t "
		  "JOIN api_users u ON u.id = t.user_id LEFT JOIN tenants te ON te.id = t.tenant_id "
		  "WHERE t.token_sha256 = ?",
		  p, 1, auth_cb);
}

int evcs_api_init(evcs_core_t *core)
{
	api_state_t *a = calloc(1, sizeof *a);
	if (!a)
		return -1;
	a->core = core;
	char err[256];
	long long to;
	if (evcs_conf_int(core->conf, "api", "command_timeout", 90000, 100, 3600000, &to, err,
			  sizeof err) < 0) {
		evcs_err("api", "%s", err);
		free(a);
		return -1;
	}
	a->cmd_timeout_ms = (unsigned)to;
	const char *bt = evcs_conf_get(core->conf, "api", "bootstrap_token", NULL);
	if (bt && *bt) {
		if (strlen(bt) < 16) {
			evcs_err("api", "[api] bootstrap_token must be at least 16 characters");
			free(a);
			return -1;
		}
		a->bootstrap = strdup(bt);
		evcs_warn("api", "[api] bootstrap_token is set: it is a platform-admin token; create "
				 "real tokens with POST /api/v1/tokens and remove it");
	}
	if (evcs_http_route(core->http, "api", NULL, "/api/v1/", api_dispatch, a) != EVCS_OK) {
		evcs_err("api", "cannot register /api/v1/");
		free(a->bootstrap);
		free(a);
		return -1;
	}
	core->api_state = a;
	return 0;
}

void evcs_api_free(evcs_core_t *core)
{
	api_state_t *a = core->api_state;
	if (!a)
		return;
	if (core->http)
		evcs_http_drop_owner(core->http, "api");
	while (a->ctxs) {
		api_ctx_t *c = a->ctxs;
		a->ctxs = c->next;
		c->api = NULL;
		c->prev = c->next = NULL;
		/* the http server answers the request itself (503) when it is freed */
		c->req = NULL;
		if (c->in_plugin)
			c->route = NULL; /* the plugin route's record goes below */
		if (c->waiting_cmd)
			ctx_free(c);
	}
	api_plugin_free(core);
	free(a->bootstrap);
	free(a);
	core->api_state = NULL;
}
