/*
 * api_plugin.c: routes that plugins add to the operator API (ABI 2: api_route and the req_*
 * entries of the API table).
 *
 * A plugin route is an api_route_t like the core's, so it goes through the same dispatch in
 * api.c: 404/405, JSON body (an object, unless EVCS_ROUTE_RAW_BODY), Bearer authentication,
 * role, tenant binding; only then does api_plugin_run hand the request to the plugin's handler.
 * evcs_api_req_t is the core's api_ctx_t: req_reply / req_reply_page / req_error /
 * req_db_error answer it (and free it) exactly like api_reply_json / api_error do.
 *
 * Registration (api_route) refuses: a pattern outside /api/v1/ or with a parameter as first
 * segment, a bad {name} segment, an unknown method, a role outside 1..4, unknown flags, OpenAPI
 * text that is not a JSON object (EVCS_EINVAL); a method and pattern shape that the core or
 * another plugin already serves, parameter names not counting (EVCS_EEXIST); a path shape
 * served under other parameter names (EVCS_EINVAL: the document may hold one name per path).
 *
 * The served /api/v1/openapi.json is the embedded core document plus each plugin route's
 * Operation Object under paths[pattern][method], completed with what the core itself does for
 * the route: its path parameters (when the fragment lacks them), the TenantHeader parameter
 * (tenant-bound routes), the error responses the core answers (400, 401, 403, 404, 503) and
 * x-evcs-plugin / x-evcs-min-role. Built on first request after a change, then cached.
 *
 * Unload (evcs_api_plugin_drop_owner): the plugin's routes and fragments go; a request the
 * plugin still holds is answered 503 at once; one still being authenticated is redirected to
 * a route that answers 503, so nothing calls into the unloaded plugin.
 * Threading: loop thread only.
 */
#include "abi2.h"
#include "api.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* the public flags and roles are the core's own values */
_Static_assert(EVCS_ROUTE_PLATFORM == AR_PLATFORM && EVCS_ROUTE_TENANT_OPT == AR_TENANT_OPT &&
		   EVCS_ROUTE_RAW_BODY == AR_RAW_BODY,
	       "route flags");
_Static_assert((int)EVCS_ROLE_READ_ONLY == (int)ROLE_READ_ONLY &&
		   (int)EVCS_ROLE_OPERATOR == (int)ROLE_OPERATOR &&
		   (int)EVCS_ROLE_TENANT_ADMIN == (int)ROLE_TENANT_ADMIN &&
		   (int)EVCS_ROLE_PLATFORM_ADMIN == (int)ROLE_PLATFORM_ADMIN,
	       "roles");

#define PATTERN_MAX 200
#define PARAM_NAME_MAX 23 /* sizeof(api_ctx_t.pnames[0]) - 1 */

struct api_plugin_route {
	api_route_t rt; /* first: a ctx's route points here */
	struct evcs_plugin *owner;
	char *method, *pattern, *shape;
	evcs_api_handler handler;
	void *ud;
	json_t *op; /* the plugin's Operation Object */
};

struct api_plugins {
	struct api_plugin_route **r;
	size_t n, cap;
	char *doc; /* merged OpenAPI document (cache), NULL when stale */
	size_t doclen;
};

static void api_plugin_run(api_ctx_t *c);

static struct api_plugins *registry(evcs_core_t *core, int create)
{
	struct api_plugins *ps = core->api_plugin;
	if (!ps && create) {
		ps = calloc(1, sizeof *ps);
		core->api_plugin = ps;
	}
	return ps;
}

static int is_plugin_route(const api_route_t *rt) { return rt && rt->fn == api_plugin_run; }

const api_route_t *evcs_api_plugin_route(evcs_core_t *core, size_t i)
{
	struct api_plugins *ps = registry(core, 0);
	return ps && i < ps->n ? &ps->r[i]->rt : NULL;
}

/* ---- handing requests to plugins ----------------------------------------------------------- */
static void api_plugin_run(api_ctx_t *c)
{
	struct api_plugin_route *pr = (struct api_plugin_route *)c->route;
	c->in_plugin = 1;
	pr->handler((evcs_api_req_t *)c, pr->ud);
}

/* Where a request still being authenticated goes when its plugin unloads. */
static void gone_fn(api_ctx_t *c)
{
	api_error(c, 503, "unavailable", NULL, "the plugin serving this route was unloaded");
}
static const api_route_t gone_route = {"*", "", 0, AR_TENANT_OPT, gone_fn, NULL};

/* ---- validation ------------------------------------------------------------------------------ */
static int literal_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '-' || ch == '_' || ch == '.' || ch == '~';
}

/* Check the pattern; on success *shape is a malloc'd copy with every {name} turned into {}. */
static int pattern_check(const char *pat, char **shape, char *why, size_t whylen)
{
	static const char root[] = "/api/v1/";
	if (!pat || strncmp(pat, root, sizeof root - 1) != 0 || strlen(pat) > PATTERN_MAX) {
		snprintf(why, whylen, "pattern must start with /api/v1/ (at most %d characters)",
			 PATTERN_MAX);
		return 0;
	}
	char names[API_MAX_PARAMS][PARAM_NAME_MAX + 1];
	int np = 0;
	sb_t sb = {0};
	sb_add(&sb, "/api/v1");
	const char *s = pat + sizeof root - 1;
	for (int seg = 0;; seg++) {
		const char *e = strchr(s, '/');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		if (len == 0) {
			snprintf(why, whylen, "empty path segment");
			goto bad;
		}
		if (*s == '{') {
			size_t nl = len - 2;
			if (len < 3 || s[len - 1] != '}' || nl > PARAM_NAME_MAX ||
			    !((s[1] >= 'a' && s[1] <= 'z') || s[1] == '_')) {
				snprintf(why, whylen, "bad parameter segment '%.*s' (use {name}, name "
						      "[a-z_][a-z0-9_]*, at most %d characters)",
					 (int)len, s, PARAM_NAME_MAX);
				goto bad;
			}
			for (size_t i = 1; i < len - 1; i++)
				if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
				      s[i] == '_')) {
					snprintf(why, whylen, "bad parameter name in '%.*s'", (int)len,
						 s);
					goto bad;
				}
			if (seg == 0) {
				snprintf(why, whylen,
					 "the first segment after /api/v1/ must be literal");
				goto bad;
			}
			if (np == API_MAX_PARAMS) {
				snprintf(why, whylen, "at most %d path parameters", API_MAX_PARAMS);
				goto bad;
			}
			memcpy(names[np], s + 1, nl);
			names[np][nl] = 0;
			for (int i = 0; i < np; i++)
				if (!strcmp(names[i], names[np])) {
					snprintf(why, whylen, "parameter {%s} appears twice", names[np]);
					goto bad;
				}
			np++;
			sb_add(&sb, "/{}");
		} else {
			for (size_t i = 0; i < len; i++)
				if (!literal_char(s[i])) {
					snprintf(why, whylen,
						 "bad character in segment '%.*s' (literal segments: "
						 "[A-Za-z0-9._~-])",
						 (int)len, s);
					goto bad;
				}
			sb_addf(&sb, "/%.*s", (int)len, s);
		}
		if (!e)
			break;
		s = e + 1;
	}
	*shape = sb.s;
	return 1;
bad:
	free(sb.s);
	return 0;
}

/* The pattern with each {name} turned into {} (for comparing shapes); caller frees. */
static char *shape_of(const char *pat)
{
	sb_t sb = {0};
	for (const char *p = pat; *p;) {
		if (*p == '{') {
			const char *e = strchr(p, '}');
			if (!e)
				break;
			sb_add(&sb, "{}");
			p = e + 1;
		} else {
			sb_addf(&sb, "%c", *p);
			p++;
		}
	}
	return sb.s;
}

static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};

static int method_known(const char *m)
{
	for (size_t i = 0; m && i < sizeof methods / sizeof *methods; i++)
		if (!strcmp(m, methods[i]))
			return 1;
	return 0;
}

/* Compare (method, shape) against one served route. 1 = same method and shape (EEXIST),
 * 2 = same shape with other parameter names (EINVAL), 0 = no conflict. */
static int conflict(const char *method, const char *pattern, const char *shape,
		    const api_route_t *other, const char *other_shape)
{
	if (strcmp(shape, other_shape) != 0)
		return 0;
	if (!strcmp(method, other->method))
		return 1;
	return strcmp(pattern, other->pattern) != 0 ? 2 : 0;
}

/* EVCS_EEXIST for the same method on the same shape anywhere (core first), else EVCS_EINVAL
 * for the same shape under other parameter names, else EVCS_OK; the refusal is logged. */
static int check_clash(evcs_core_t *core, struct evcs_plugin *p, const char *method,
		       const char *pattern, const char *shape)
{
	size_t n;
	const api_route_t *core_rt = evcs_api_routes(&n);
	struct api_plugins *ps = registry(core, 0);
	size_t total = n + (ps ? ps->n : 0);
	const api_route_t *renamed = NULL;
	const char *renamed_by = NULL;
	for (size_t i = 0; i < total; i++) {
		const api_route_t *o = i < n ? &core_rt[i] : &ps->r[i - n]->rt;
		const char *by = i < n ? NULL : ps->r[i - n]->owner->name;
		char *os = i < n ? shape_of(o->pattern) : NULL;
		int k = conflict(method, pattern, shape, o, i < n ? (os ? os : "") : ps->r[i - n]->shape);
		free(os);
		if (k == 1) {
			evcs_err(p->name, "api_route %s %s: %s%s already serves %s %s", method, pattern,
				 by ? "plugin " : "the core", by ? by : "", o->method, o->pattern);
			return EVCS_EEXIST;
		}
		if (k == 2 && !renamed) {
			renamed = o;
			renamed_by = by;
		}
	}
	if (renamed) {
		evcs_err(p->name, "api_route %s %s: %s%s serves this path as %s; use its parameter names",
			 method, pattern, renamed_by ? "plugin " : "the core", renamed_by ? renamed_by : "",
			 renamed->pattern);
		return EVCS_EINVAL;
	}
	return EVCS_OK;
}

static void route_free(struct api_plugin_route *r)
{
	if (!r)
		return;
	free(r->method);
	free(r->pattern);
	free(r->shape);
	json_decref(r->op);
	free(r);
}

static void doc_invalidate(struct api_plugins *ps)
{
	free(ps->doc);
	ps->doc = NULL;
	ps->doclen = 0;
}

static int api_route(evcs_plugin_t *p, const evcs_api_route_t *rt)
{
	if (!p)
		return EVCS_EINVAL;
	evcs_core_t *core = p->core;
	if (!rt || rt->size < offsetof(evcs_api_route_t, reserved)) {
		evcs_err(p->name, "api_route: missing route or route.size too small");
		return EVCS_EINVAL;
	}
	const char *pat = rt->pattern ? rt->pattern : "(null)";
	if (!core->api_state) {
		evcs_err(p->name, "api_route %s: the operator API is not running (no [database])",
			 pat);
		return EVCS_EUNAVAIL;
	}
	if (!method_known(rt->method)) {
		evcs_err(p->name, "api_route %s: method must be GET, POST, PUT, PATCH or DELETE", pat);
		return EVCS_EINVAL;
	}
	if (rt->min_role < EVCS_ROLE_READ_ONLY || rt->min_role > EVCS_ROLE_PLATFORM_ADMIN) {
		evcs_err(p->name, "api_route %s %s: min_role %d is not a role (1..4)", rt->method, pat,
			 rt->min_role);
		return EVCS_EINVAL;
	}
	if (rt->flags & ~(unsigned)(EVCS_ROUTE_PLATFORM | EVCS_ROUTE_TENANT_OPT |
				     EVCS_ROUTE_RAW_BODY)) {
		evcs_err(p->name, "api_route %s %s: unknown flags 0x%x", rt->method, pat, rt->flags);
		return EVCS_EINVAL;
	}
	if (!rt->handler) {
		evcs_err(p->name, "api_route %s %s: no handler", rt->method, pat);
		return EVCS_EINVAL;
	}
	char why[160];
	char *shape = NULL;
	if (!pattern_check(rt->pattern, &shape, why, sizeof why)) {
		evcs_err(p->name, "api_route %s %s: %s", rt->method, pat, why);
		return EVCS_EINVAL;
	}
	json_error_t je;
	json_t *op = rt->openapi ? json_loads(rt->openapi, JSON_REJECT_DUPLICATES, &je) : NULL;
	const char *bad = !rt->openapi	       ? "no OpenAPI operation (route.openapi)"
			  : !op		       ? je.text
			  : !json_is_object(op) ? "not a JSON object"
			  : (json_object_get(op, "parameters") &&
			     !json_is_array(json_object_get(op, "parameters")))
			      ? "\"parameters\" is not an array"
			  : (json_object_get(op, "responses") &&
			     !json_is_object(json_object_get(op, "responses")))
			      ? "\"responses\" is not an object"
			      : NULL;
	if (bad) {
		evcs_err(p->name, "api_route %s %s: OpenAPI operation: %s", rt->method, pat, bad);
		json_decref(op);
		free(shape);
		return EVCS_EINVAL;
	}
	int r = check_clash(core, p, rt->method, rt->pattern, shape);
	if (r != EVCS_OK) {
		json_decref(op);
		free(shape);
		return r;
	}
	struct api_plugins *ps = registry(core, 1);
	struct api_plugin_route *pr = calloc(1, sizeof *pr);
	if (!ps || !pr)
		goto oom;
	pr->shape = shape;
	shape = NULL;
	pr->op = op;
	op = NULL;
	pr->owner = p;
	pr->handler = rt->handler;
	pr->ud = rt->ud;
	pr->method = strdup(rt->method);
	pr->pattern = strdup(rt->pattern);
	if (!pr->method || !pr->pattern)
		goto oom;
	if (ps->n == ps->cap) {
		size_t nc = ps->cap ? ps->cap * 2 : 8;
		struct api_plugin_route **nr = realloc(ps->r, nc * sizeof *nr);
		if (!nr)
			goto oom;
		ps->r = nr;
		ps->cap = nc;
	}
	pr->rt.method = pr->method;
	pr->rt.pattern = pr->pattern;
	pr->rt.min_role = rt->min_role;
	pr->rt.flags = rt->flags; /* EVCS_ROUTE_* have the values of AR_* */
	pr->rt.fn = api_plugin_run;
	pr->rt.ud = pr;
	ps->r[ps->n++] = pr;
	doc_invalidate(ps);
	evcs_info(p->name, "serves %s %s (min role %s)", pr->method, pr->pattern,
		  role_name(pr->rt.min_role));
	return EVCS_OK;
oom:
	route_free(pr);
	json_decref(op);
	free(shape);
	evcs_err(p->name, "api_route %s %s: out of memory", rt->method, pat);
	return EVCS_ENOMEM;
}

/* ---- the request ----------------------------------------------------------------------------- */
#define CTX(r) ((api_ctx_t *)(r))

static int64_t req_tenant(evcs_api_req_t *r) { return r ? CTX(r)->tenant : 0; }
static int req_role(evcs_api_req_t *r) { return r ? CTX(r)->role : 0; }
static const char *req_actor(evcs_api_req_t *r) { return r ? CTX(r)->actor : ""; }

static const char *req_param(evcs_api_req_t *r, const char *name)
{
	return r && name ? api_param(CTX(r), name) : NULL;
}

static const char *req_query(evcs_api_req_t *r, const char *key)
{
	return r && key && CTX(r)->req ? evcs_http_req_query(CTX(r)->req, key) : NULL;
}

static const char *req_body(evcs_api_req_t *r, size_t *len)
{
	api_ctx_t *c = CTX(r);
	size_t n = 0;
	const char *s = "";
	if (c && c->req)
		s = evcs_http_req_body(c->req, &n);
	if (c && c->body && n == 0) { /* a JSON route: "{}" when empty, or detached */
		s = "{}";
		if (!c->req && json_object_size(c->body)) {
			char *d = json_dumps(c->body, JSON_COMPACT);
			s = d ? api_keep(c, d) : NULL;
			if (!s)
				s = "{}";
		}
		n = strlen(s);
	}
	if (len)
		*len = n;
	return s;
}

static int req_page(evcs_api_req_t *r, int64_t *limit, int64_t *offset)
{
	api_ctx_t *c = CTX(r);
	int64_t l, o;
	if (!c || api_ctx_gone(c)) /* detached: the answer would be discarded */
		return -1;
	if (api_page(c, &l, &o) < 0)
		return -1;
	if (limit)
		*limit = l;
	if (offset)
		*offset = o;
	return 0;
}

static const char *owner_name(api_ctx_t *c)
{
	return is_plugin_route(c->route) ? ((struct api_plugin_route *)c->route)->owner->name
					 : "plugin";
}

static void req_reply(evcs_api_req_t *r, int status, const char *json)
{
	api_ctx_t *c = CTX(r);
	if (!c || api_ctx_gone(c))
		return;
	if (status < 200 || status > 599) {
		evcs_err(owner_name(c), "answered %s %s with status %d", evcs_http_req_method(c->req),
			 evcs_http_req_path(c->req), status);
		api_error(c, 500, "internal", NULL, "the plugin gave an invalid answer");
		return;
	}
	if (json) {
		json_error_t je;
		json_t *chk = json_loads(json, JSON_DECODE_ANY, &je);
		if (!chk) {
			evcs_err(owner_name(c), "answered %s %s with invalid JSON: %s",
				 evcs_http_req_method(c->req), evcs_http_req_path(c->req), je.text);
			api_error(c, 500, "internal", NULL, "the plugin gave an invalid answer");
			return;
		}
		json_decref(chk);
	}
	evcs_http_req_reply(c->req, status, json ? "application/json" : NULL, json,
			    json ? strlen(json) : 0);
	c->req = NULL;
	api_ctx_gone(c);
}

static void req_reply_page(evcs_api_req_t *r, const char *items_json, int64_t limit,
			   int64_t offset, int more)
{
	api_ctx_t *c = CTX(r);
	if (!c || api_ctx_gone(c))
		return;
	json_t *items = items_json ? json_loads(items_json, 0, NULL) : NULL;
	if (!json_is_array(items) || limit < 1 || offset < 0) {
		evcs_err(owner_name(c), "req_reply_page %s %s: items must be a JSON array, limit >= 1, "
					"offset >= 0",
			 evcs_http_req_method(c->req), evcs_http_req_path(c->req));
		json_decref(items);
		api_error(c, 500, "internal", NULL, "the plugin gave an invalid answer");
		return;
	}
	while ((int64_t)json_array_size(items) > limit) { /* more than a page: the rest is "more" */
		json_array_remove(items, json_array_size(items) - 1);
		more = 1;
	}
	json_t *o = json_pack("{s:o, s:I, s:I, s:o}", "items", items, "limit", (json_int_t)limit,
			      "offset", (json_int_t)offset, "next_offset",
			      more ? json_integer((json_int_t)(offset + limit)) : json_null());
	if (!o) {
		api_error(c, 503, "unavailable", NULL, "out of memory");
		return;
	}
	api_reply_json(c, 200, o);
}

static void req_error(evcs_api_req_t *r, int status, const char *code, const char *field,
		      const char *message)
{
	api_ctx_t *c = CTX(r);
	if (!c)
		return;
	if (status < 400 || status > 599) {
		if (c->req)
			evcs_err(owner_name(c), "req_error %s %s with status %d (not 4xx/5xx)",
				 evcs_http_req_method(c->req), evcs_http_req_path(c->req), status);
		status = 500;
	}
	api_error(c, status, code && *code ? code : "error", field, "%s", message ? message : "");
}

static void req_db_error(evcs_api_req_t *r, int status, const char *errmsg)
{
	if (r)
		api_db_error(CTX(r), status, errmsg, NULL);
}

static int req_audit(evcs_api_req_t *r, evcs_db_txn_t *t, const char *action,
		     const char *object_type, evcs_db_param_t object_id, const char *details_json)
{
	api_ctx_t *c = CTX(r);
	if (!c || !t || !action || !*action || !object_type)
		return EVCS_EINVAL;
	if (object_id.type == EVCS_DB_T_NULL)
		object_id = EVCS_DB_STR("");
	else if (object_id.type == EVCS_DB_T_STR && !object_id.s)
		object_id = EVCS_DB_STR("");
	else if (object_id.type != EVCS_DB_T_STR && object_id.type != EVCS_DB_T_INT &&
		 object_id.type != EVCS_DB_T_REFID)
		return EVCS_EINVAL;
	json_t *d = NULL;
	if (details_json) {
		d = json_loads(details_json, JSON_DECODE_ANY, NULL);
		if (!d) {
			evcs_err(owner_name(c), "req_audit %s: details are not JSON", action);
			return EVCS_EINVAL;
		}
	}
	int st = api_txn_audit(c, t, action, object_type, object_id, d);
	json_decref(d);
	return st;
}

void evcs_api_plugin_fill(evcs_api_t *a)
{
	a->api_route = api_route;
	a->req_tenant = req_tenant;
	a->req_role = req_role;
	a->req_actor = req_actor;
	a->req_param = req_param;
	a->req_query = req_query;
	a->req_body = req_body;
	a->req_page = req_page;
	a->req_reply = req_reply;
	a->req_reply_page = req_reply_page;
	a->req_error = req_error;
	a->req_db_error = req_db_error;
	a->req_audit = req_audit;
}

/* ---- the served OpenAPI document ---------------------------------------------------------- */
static json_t *error_response(const char *description)
{
	return json_pack("{s:s, s:{s:{s:{s:s}}}}", "description", description, "content",
			 "application/json", "schema", "$ref", "#/components/schemas/Error");
}

/* Complete a copy of the plugin's operation with what the core does for the route. */
static void decorate(json_t *op, const struct api_plugin_route *pr)
{
	json_t *params = json_object_get(op, "parameters");
	if (!params) {
		params = json_array();
		json_object_set_new(op, "parameters", params);
	}
	int has_tenant = 0;
	for (size_t i = 0; i < json_array_size(params); i++) {
		json_t *pm = json_array_get(params, i);
		const char *ref = json_string_value(json_object_get(pm, "$ref"));
		const char *nm = json_string_value(json_object_get(pm, "name"));
		if ((ref && strstr(ref, "TenantHeader")) || (nm && !strcasecmp(nm, "X-Tenant-ID")))
			has_tenant = 1;
	}
	for (const char *s = strchr(pr->pattern, '{'); s; s = strchr(s + 1, '{')) {
		const char *e = strchr(s, '}');
		char name[PARAM_NAME_MAX + 1];
		snprintf(name, sizeof name, "%.*s", (int)(e - s - 1), s + 1);
		int found = 0;
		for (size_t i = 0; i < json_array_size(params); i++) {
			json_t *pm = json_array_get(params, i);
			const char *nm = json_string_value(json_object_get(pm, "name"));
			const char *in = json_string_value(json_object_get(pm, "in"));
			found |= nm && in && !strcmp(nm, name) && !strcmp(in, "path");
		}
		if (!found)
			json_array_append_new(params, json_pack("{s:s, s:s, s:b, s:{s:s}}", "name",
								name, "in", "path", "required", 1,
								"schema", "type", "string"));
	}
	if (!(pr->rt.flags & AR_PLATFORM) && !has_tenant)
		json_array_append_new(params,
				      json_pack("{s:s}", "$ref", "#/components/parameters/TenantHeader"));
	json_t *resp = json_object_get(op, "responses");
	if (!resp) {
		resp = json_object();
		json_object_set_new(op, "responses", resp);
	}
	static const struct {
		const char *code, *text;
		int tenant_only;
	} errs[] = {
	    {"400", "bad input (error.field names it)", 0},
	    {"401", "missing or bad token", 0},
	    {"403", "role not allowed, or tenant inactive", 0},
	    {"404", "no such object (also for other tenants' objects)", 1},
	    {"503", "database unavailable or busy", 0},
	};
	for (size_t i = 0; i < sizeof errs / sizeof *errs; i++)
		if (!json_object_get(resp, errs[i].code) &&
		    !(errs[i].tenant_only && (pr->rt.flags & AR_PLATFORM)))
			json_object_set_new(resp, errs[i].code, error_response(errs[i].text));
	json_object_del(op, "security"); /* the core always asks for the bearer token */
	json_object_set_new(op, "x-evcs-plugin", json_string(pr->owner->name));
	json_object_set_new(op, "x-evcs-min-role", json_string(role_name(pr->rt.min_role)));
}

const char *api_plugin_openapi(evcs_core_t *core, size_t *len)
{
	struct api_plugins *ps = registry(core, 0);
	if (!ps || ps->n == 0) {
		*len = strlen(evcs_api_openapi_json);
		return evcs_api_openapi_json;
	}
	if (ps->doc) {
		*len = ps->doclen;
		return ps->doc;
	}
	json_t *doc = json_loads(evcs_api_openapi_json, 0, NULL);
	json_t *paths = json_object_get(doc, "paths");
	if (!json_is_object(paths)) {
		json_decref(doc);
		return NULL;
	}
	for (size_t i = 0; i < ps->n; i++) {
		const struct api_plugin_route *pr = ps->r[i];
		json_t *item = json_object_get(paths, pr->pattern);
		if (!item) {
			item = json_object();
			json_object_set_new(paths, pr->pattern, item);
		}
		char m[8];
		size_t k;
		for (k = 0; pr->method[k] && k < sizeof m - 1; k++)
			m[k] = (char)(pr->method[k] | 0x20);
		m[k] = 0;
		json_t *op = json_deep_copy(pr->op);
		if (!op)
			continue;
		decorate(op, pr);
		json_object_set_new(item, m, op);
	}
	ps->doc = json_dumps(doc, JSON_INDENT(1));
	json_decref(doc);
	if (!ps->doc)
		return NULL;
	ps->doclen = strlen(ps->doc);
	*len = ps->doclen;
	return ps->doc;
}

/* ---- unloading -------------------------------------------------------------------------------- */
void evcs_api_plugin_drop_owner(struct evcs_core *core, struct evcs_plugin *p)
{
	struct api_plugins *ps = registry(core, 0);
	if (!ps)
		return;
	api_state_t *a = core->api_state;
	for (api_ctx_t *c = a ? a->ctxs : NULL, *next; c; c = next) {
		next = c->next;
		if (!is_plugin_route(c->route) ||
		    ((struct api_plugin_route *)c->route)->owner != p)
			continue;
		if (c->in_plugin) {
			evcs_warn(p->name, "unloaded with %s %s unanswered (answered 503)",
				  c->req ? evcs_http_req_method(c->req) : "?",
				  c->req ? evcs_http_req_path(c->req) : "?");
			api_error(c, 503, "unavailable", NULL,
				  "the plugin serving this route was unloaded");
		} else {
			c->route = &gone_route;
		}
	}
	size_t w = 0;
	for (size_t i = 0; i < ps->n; i++) {
		if (ps->r[i]->owner == p)
			route_free(ps->r[i]);
		else
			ps->r[w++] = ps->r[i];
	}
	if (w != ps->n) {
		ps->n = w;
		doc_invalidate(ps);
	}
}

void api_plugin_free(evcs_core_t *core)
{
	struct api_plugins *ps = registry(core, 0);
	if (!ps)
		return;
	for (size_t i = 0; i < ps->n; i++)
		route_free(ps->r[i]);
	free(ps->r);
	doc_invalidate(ps);
	free(ps);
	core->api_plugin = NULL;
}
