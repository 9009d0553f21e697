/*
 * api.h: internals shared by the operator REST API modules (api.c: routing, auth, errors,
 * replies, audit; api_crud.c: the table-driven resources; api_ops.c: commands, tariffs
 * versions, scripts, tokens, dashboard) and by tests/test_api.c (the route table).
 *
 * Request lifecycle: http.c hands every /api/v1/ request to api.c, which matches a route,
 * authenticates the bearer token (one platform-level DB lookup, or the configured bootstrap
 * token), checks the role, binds the request to exactly one tenant, parses the JSON body and
 * calls the route's handler with an api_ctx_t. The handler answers exactly once through
 * api_reply_json / api_error / api_db_error (which free the ctx), now or from a DB/bus callback.
 * Nothing blocks: all storage goes through evcs_db_query/txn (tenant-scoped unless the route
 * is platform-level).
 *
 * Plugin routes (ABI 2, api_plugin.c) are api_route_t records too and take the same path; only
 * the last step differs: api_plugin_run hands the ctx to the plugin's handler (as its
 * evcs_api_req_t) and sets in_plugin. evcs_api_plugin_drop_owner answers 503 for the ctxs a
 * plugin still holds when it unloads and points those still being authenticated at a route
 * that answers 503.
 *
 * Shutdown: evcs_api_free() detaches every ctx still waiting. A detached ctx (c->req == NULL)
 * is freed by the first callback that reaches it (api_ctx_gone), or at once when it waits for
 * a pile command (the bus drops those without calling back).
 *
 * Threading: loop thread only.
 */
#ifndef EVCS_API_H
#define EVCS_API_H

#include "core.h"
#include "db.h"

#include <jansson.h>
#include <stdint.h>

/* roles, ordered by power */
enum api_role { ROLE_NONE = 0, ROLE_READ_ONLY = 1, ROLE_OPERATOR = 2, ROLE_TENANT_ADMIN = 3,
		ROLE_PLATFORM_ADMIN = 4 };

/* route flags */
#define AR_PUBLIC 0x1u       /* no token needed */
#define AR_PLATFORM 0x2u     /* installation-wide: no tenant binding */
#define AR_TENANT_OPT 0x4u   /* platform admin may act without a tenant */
#define AR_RAW_BODY 0x8u     /* body is not JSON (script source) */

typedef struct api_ctx api_ctx_t;
typedef void (*api_handler_fn)(api_ctx_t *c);

typedef struct api_route {
	const char *method;
	const char *pattern; /* "/api/v1/stations/{station_id}" */
	int min_role;
	unsigned flags;
	api_handler_fn fn;
	const void *ud; /* e.g. the resource descriptor */
} api_route_t;

/* The server's route table (for the OpenAPI consistency test). */
const api_route_t *evcs_api_routes(size_t *n);
/* The embedded OpenAPI document (core/openapi.json), NUL-terminated. */
extern const char evcs_api_openapi_json[];

#define API_MAX_PARAMS 4

struct api_state;

struct api_ctx {
	struct api_state *api;
	evcs_core_t *core;
	evcs_http_req_t *req; /* NULL once detached (server shutting down) */
	const api_route_t *route;
	char pnames[API_MAX_PARAMS][24];
	char pvals[API_MAX_PARAMS][96];
	int nparams;
	json_t *body; /* parsed JSON object ({} when empty); NULL for raw-body routes */
	/* principal */
	int role;
	int64_t user_id, token_id; /* 0 for the bootstrap token */
	int64_t tenant;            /* bound tenant, 0 = none (platform-level request) */
	char actor[80];            /* "user:NAME" or "bootstrap" */
	char peer[64];
	int waiting_cmd; /* waiting for the bus (command); see the shutdown note */
	int in_plugin;   /* handed to a plugin route's handler (api_plugin.c) */
	void *op;        /* handler state, freed with op_free */
	void (*op_free)(void *);
	char **scratch; /* strings kept alive until the ctx dies */
	size_t nscratch;
	api_ctx_t *next, *prev;
};

typedef struct api_state {
	evcs_core_t *core;
	char *bootstrap;
	unsigned cmd_timeout_ms;
	api_ctx_t *ctxs;
} api_state_t;

/* ---- api.c helpers ---- */
const char *api_param(api_ctx_t *c, const char *name);
/* path parameter as a positive id; replies 404 and returns 0 when it is not one */
int64_t api_param_id(api_ctx_t *c, const char *name);
/* Free a detached ctx; returns 1 when the caller must stop (ctx gone). */
int api_ctx_gone(api_ctx_t *c);
/* The usual start of a DB callback: 0 when the request is gone or the query failed (the
 * error is answered), 1 when the callback should go on with the result. */
int api_db_begin(api_ctx_t *c, int status, const char *errmsg);
/* Replies (each frees the ctx). api_reply_json steals o (NULL -> 204 no body). */
void api_reply_json(api_ctx_t *c, int status, json_t *o);
void api_error(api_ctx_t *c, int status, const char *code, const char *field, const char *fmt,
	       ...) __attribute__((format(printf, 5, 6)));
/* Map a data-layer failure: EEXIST 409, ENOENT 404, EUNAVAIL/EBUSY 503, FK/CHECK errors 400/409
 * (field from fkmap: "constraint=field;..."), otherwise 500. */
void api_db_error(api_ctx_t *c, int status, const char *errmsg, const char *fkmap);
/* Keep s (malloc'd) until the ctx dies; returns s. */
const char *api_keep(api_ctx_t *c, char *s);
const char *role_name(int role);
int role_parse(const char *s);
int64_t api_now_ms(void);

/* Submit with the ctx's tenant (or platform when c->tenant == 0 and platform != 0). On a
 * submit failure the error is answered and -1 returned. */
int api_query(api_ctx_t *c, int platform, const char *sql, const evcs_db_param_t *p, size_t n,
	      evcs_db_cb cb);
int api_txn_submit(api_ctx_t *c, evcs_db_txn_t *t, evcs_db_cb cb);
/* Append an audit_log row to t (tenant row when c->tenant, else platform). object_id either
 * a string or a REFID param. details: borrowed, may be NULL. */
int api_txn_audit(api_ctx_t *c, evcs_db_txn_t *t, const char *action, const char *object_type,
		  evcs_db_param_t object_id, json_t *details); /* the add's status */
/* Pagination: limit (1..500, default 50) and offset (>= 0). -1 after replying 400. */
int api_page(api_ctx_t *c, int64_t *limit, int64_t *offset);
/* {"items": items, "limit", "offset", "next_offset"} from rows fetched with limit+1 */
json_t *api_page_wrap(json_t *items, int64_t limit, int64_t offset);

/* tiny string builder */
typedef struct sb {
	char *s;
	size_t n, cap;
} sb_t;
void sb_add(sb_t *b, const char *s);
void sb_addf(sb_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- api_crud.c ---- */
typedef struct api_field api_field_t;
typedef struct api_resource api_resource_t;
extern const api_resource_t api_res_stations, api_res_piles, api_res_connectors, api_res_tariffs,
    api_res_drivers, api_res_cards, api_res_sessions, api_res_alarms, api_res_audit,
    api_res_tenants, api_res_tokens, api_res_unclaimed;
void api_crud_list(api_ctx_t *c);
void api_crud_get(api_ctx_t *c);
void api_crud_create(api_ctx_t *c);
void api_crud_update(api_ctx_t *c);
void api_crud_delete(api_ctx_t *c);
/* Validate c->body against a resource for create (creating=1) or update; 400 on failure. */
int api_crud_validate(api_ctx_t *c, const api_resource_t *r, json_t *body, int creating);
/* "INSERT INTO table SET [tenant_id = ?, ]col = ?..." for the body's fields; values appended
 * to p (capacity cap). Returns the number of values or -1. */
int api_crud_insert_sql(api_ctx_t *c, const api_resource_t *r, json_t *body, sb_t *sql,
			evcs_db_param_t *p, size_t cap);
/* "SELECT cols FROM from WHERE alias.tenant_id = ? AND alias.id = ?" */
void api_crud_select_by_id_sql(const api_resource_t *r, sb_t *sql);
json_t *api_crud_row(const api_resource_t *r, const evcs_db_result_t *res, size_t row);
const char *api_crud_fkmap(const api_resource_t *r);

/* ---- api_ops.c ---- */
void api_op_me(api_ctx_t *c);
void api_op_pile_create(api_ctx_t *c);
void api_op_pile_claim(api_ctx_t *c);
void api_op_pile_command(api_ctx_t *c);
void api_op_tariff_create(api_ctx_t *c);
void api_op_tariff_version(api_ctx_t *c);
void api_op_tariff_publish(api_ctx_t *c);
void api_op_session_get(api_ctx_t *c);
void api_op_alarm_ack(api_ctx_t *c);
void api_op_script_list(api_ctx_t *c);
void api_op_script_get(api_ctx_t *c);
void api_op_script_put(api_ctx_t *c);
void api_op_token_create(api_ctx_t *c);
void api_op_token_revoke(api_ctx_t *c);
void api_op_dashboard(api_ctx_t *c);
/* api_tenant.c: tenants create/update = the generic handlers after checking "timezone" */
void api_op_tenant_create(api_ctx_t *c);
void api_op_tenant_update(api_ctx_t *c);

/* ---- api_plugin.c (routes added by plugins, ABI 2) ---- */
/* Plugin route number i (NULL past the last), in registration order; for dispatch and for the
 * OpenAPI consistency test. */
const api_route_t *evcs_api_plugin_route(evcs_core_t *core, size_t i);
/* The served OpenAPI document: the embedded one, or (with plugin routes) the merged one,
 * cached until the routes change. NULL when it cannot be built (out of memory). */
const char *api_plugin_openapi(evcs_core_t *core, size_t *len);
/* Free the plugin route registry (evcs_api_free). */
void api_plugin_free(evcs_core_t *core);

#endif
