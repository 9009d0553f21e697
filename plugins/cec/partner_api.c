/*
 * partner_api.c: the operator-API routes of the CEC plugin, /api/v1/partners... (ABI 2
 * api->api_route: the core authenticates, checks the role, binds the tenant, checks the JSON body
 * and serves each route's OpenAPI operation from partner_api.json).
 *
 *   GET    /api/v1/partners                        list (?name, ?operator_id, ?status, paging)
 *   POST   /api/v1/partners                        create (201)
 *   GET    /api/v1/partners/{partner_id}           one partner
 *   PATCH  /api/v1/partners/{partner_id}           change fields
 *   DELETE /api/v1/partners/{partner_id}           remove (its permissions and outbox rows go too)
 *   PUT    /api/v1/partners/{partner_id}/stations  replace the stations it may see and charge at
 *
 * All tenant-admin, all tenant-scoped (cec_partners rows of the request's tenant only). Secrets
 * are write-only: reads answer "set" or "unset", and the audit rows (written in the same
 * transaction as the change) say the same. Secrets are ASCII because the standard uses them as
 * literal bytes (AES keys and IVs of exactly 16). The profile is checked against the plugin's own
 * profile keys (cec_proto.c). The plugin's running state picks changes up at its next refresh.
 * Bad input: 400 with error.field naming the field; a second partner with the same operator_id
 * in a tenant: 409. Loop thread only.
 */
#include "cec_plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char cec_partner_openapi_json[]; /* partner_api.json, compiled in by plugin.am */

/* ---- the resource --------------------------------------------------------------------------- */

enum { F_STR = 1, F_ENUM, F_OBJ, F_RO };
#define F_REQ 0x1u
#define F_SECRET 0x2u
#define F_FILTER 0x4u

typedef struct field {
	const char *name;
	int type;
	unsigned flags;
	size_t min, max;     /* F_STR: length range (characters) */
	const char *allowed; /* F_STR: allowed characters ("" = any); F_ENUM: "a|b" */
	const char *expr;    /* read expression; NULL = t.name */
} field_t;

#define ORGCODE "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define PRINTABLE                                                                                 \
	" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz" \
	"{|}~"
#define SECRET(n, lo, hi, req) {n, F_STR, F_SECRET | (req), lo, hi, PRINTABLE, "IF(t." n " = '', 'unset', 'set')"}

static const field_t fields[] = {
    {"id", F_RO, 0, 0, 0, NULL, NULL},
    {"name", F_STR, F_REQ | F_FILTER, 1, 64, "", NULL},
    {"operator_id", F_STR, F_REQ | F_FILTER, 9, 9, ORGCODE, NULL},
    {"our_operator_id", F_STR, F_REQ, 9, 9, ORGCODE, NULL},
    {"base_url", F_STR, 0, 0, 255, PRINTABLE, NULL},
    SECRET("operator_secret", 1, 64, F_REQ),
    SECRET("data_secret", 16, 16, F_REQ),
    SECRET("data_secret_iv", 16, 16, F_REQ),
    SECRET("sig_secret", 1, 64, F_REQ),
    SECRET("user_operator_secret", 0, 64, 0),
    SECRET("user_data_secret", 0, 16, 0),
    SECRET("user_data_secret_iv", 0, 16, 0),
    SECRET("user_sig_secret", 0, 64, 0),
    {"status", F_ENUM, F_FILTER, 0, 0, "active|disabled", NULL},
    {"profile", F_OBJ, 0, 0, 0, NULL, NULL},
    {"station_ids", F_RO, 0, 0, 0, NULL,
     "COALESCE((SELECT JSON_ARRAYAGG(ps.station_id ORDER BY ps.station_id) FROM cec_partner_stations ps "
     "WHERE ps.tenant_id = t.tenant_id AND ps.partner_id = t.id), '[]')"},
    {"created_ms", F_RO, 0, 0, 0, NULL, NULL},
};
#define NFIELDS (sizeof fields / sizeof fields[0])
/* read types per column, in fields[] order: i integer, s text, j JSON */
static const char read_types[] = "isssssssssssssjji";

#define STATIONS_MAX 2000

static const field_t *field_of(const char *name)
{
	for (size_t i = 0; i < NFIELDS; i++)
		if (!strcmp(fields[i].name, name))
			return &fields[i];
	return NULL;
}

static int enum_has(const char *allowed, const char *v)
{
	size_t vl = strlen(v);
	for (const char *p = allowed; *p;) {
		const char *e = strchr(p, '|');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == vl && !strncmp(p, v, l))
			return 1;
		if (!e)
			break;
		p = e + 1;
	}
	return 0;
}

static size_t utf8_len(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			n++;
	return n;
}

/* One value against its field: 0, or -1 with msg set. */
static int check_value(const field_t *f, json_t *v, char *msg, size_t ml)
{
	switch (f->type) {
	case F_OBJ:
		if (!json_is_object(v)) {
			snprintf(msg, ml, "%s must be a JSON object", f->name);
			return -1;
		}
		return 0;
	case F_ENUM:
		if (!json_is_string(v) || !enum_has(f->allowed, json_string_value(v))) {
			snprintf(msg, ml, "%s must be one of %s", f->name, f->allowed);
			return -1;
		}
		return 0;
	case F_STR: {
		if (!json_is_string(v)) {
			snprintf(msg, ml, "%s must be a string", f->name);
			return -1;
		}
		const char *s = json_string_value(v);
		size_t l = utf8_len(s);
		if (strlen(s) != json_string_length(v) || l < f->min || l > f->max) {
			snprintf(msg, ml, "%s must be %zu..%zu characters", f->name, f->min, f->max);
			return -1;
		}
		if (*f->allowed && strspn(s, f->allowed) != strlen(s)) {
			snprintf(msg, ml, "%s may contain only [%s]", f->name, f->allowed);
			return -1;
		}
		for (const char *p = s; *p; p++)
			if ((unsigned char)*p < 0x20) {
				snprintf(msg, ml, "%s contains control characters", f->name);
				return -1;
			}
		return 0;
	}
	}
	return -1;
}

/* The profile object: {"preset"?: cec2016|orise|xj|cjv|sh, <cec_profile_t key>: value...}, each key
 * of the kind the protocol library gives it. 0, or -1 with field ("profile.<key>") and msg set. */
static int profile_check(const json_t *profile, char *field, size_t flen, char *msg, size_t mlen)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)profile, k, v)
	{
		snprintf(field, flen, "profile.%s", k);
		if (!strcmp(k, "preset")) {
			cec_profile_t scratch;
			evcs_cec_profile_default(&scratch);
			if (!json_is_string(v) || evcs_cec_profile_preset(&scratch, json_string_value(v))) {
				snprintf(msg, mlen, "preset must be one of cec2016, orise, xj, cjv, sh");
				return -1;
			}
			continue;
		}
		size_t i = 0;
		const char *name;
		while ((name = evcs_cec_profile_key_name(i)) && strcmp(name, k))
			i++;
		if (!name) {
			snprintf(msg, mlen, "unknown CEC profile key %s", k);
			return -1;
		}
		char kind = evcs_cec_profile_key_kind(i);
		if (kind == 'b') {
			if (!json_is_boolean(v)) {
				snprintf(msg, mlen, "%s must be true or false", k);
				return -1;
			}
			continue;
		}
		json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
		int ok = json_is_integer(v) &&
			 (kind == 'l'   ? 1
			  : kind == 'u' ? x >= 0 && x <= (json_int_t)UINT32_MAX
					: x >= INT32_MIN && x <= INT32_MAX);
		int decimals = !strcmp(k, "energy_decimals");
		if (decimals)
			ok = ok && (x == 2 || x == 3);
		if (!ok) {
			snprintf(msg, mlen, "%s must be %s", k,
				 decimals ? "2 or 3" : kind == 'u' ? "an integer 0..4294967295" : "an integer");
			return -1;
		}
	}
	return 0;
}

/* The whole body of a create (creating) or an update: 0, or -1 after answering 400. */
static int validate(const evcs_api_t *api, evcs_api_req_t *r, json_t *body, int creating)
{
	const char *k;
	json_t *v;
	char msg[256], field[96];
	json_object_foreach(body, k, v)
	{
		const field_t *f = field_of(k);
		if (!f) {
			snprintf(msg, sizeof msg, "unknown field %s", k);
			api->req_error(r, 400, "unknown_field", k, msg);
			return -1;
		}
		if (f->type == F_RO) {
			snprintf(msg, sizeof msg, "%s is read-only", k);
			api->req_error(r, 400, "read_only", k, msg);
			return -1;
		}
		if (json_is_null(v)) {
			snprintf(msg, sizeof msg, "%s may not be null", k);
			api->req_error(r, 400, "invalid", k, msg);
			return -1;
		}
		if (check_value(f, v, msg, sizeof msg) < 0) {
			api->req_error(r, 400, "invalid", k, msg);
			return -1;
		}
	}
	if (creating)
		for (size_t i = 0; i < NFIELDS; i++)
			if ((fields[i].flags & F_REQ) && !json_object_get(body, fields[i].name)) {
				snprintf(msg, sizeof msg, "%s is required", fields[i].name);
				api->req_error(r, 400, "required", fields[i].name, msg);
				return -1;
			}
	if (!creating && json_object_size(body) == 0) {
		api->req_error(r, 400, "invalid", "body", "nothing to change");
		return -1;
	}
	json_t *prof = json_object_get(body, "profile");
	if (prof && profile_check(prof, field, sizeof field, msg, sizeof msg) < 0) {
		api->req_error(r, 400, "invalid", field, msg);
		return -1;
	}
	/* a user_* key pair is either empty (the plugin then signs with the incoming set, cec.md
	 * §1) or exactly 16 bytes */
	static const char *const pair[] = {"user_data_secret", "user_data_secret_iv"};
	for (int i = 0; i < 2; i++) {
		v = json_object_get(body, pair[i]);
		if (json_is_string(v) && json_string_length(v) != 0 && json_string_length(v) != 16) {
			snprintf(msg, sizeof msg, "%s must be empty or exactly 16 characters", pair[i]);
			api->req_error(r, 400, "invalid", pair[i], msg);
			return -1;
		}
	}
	return 0;
}

/* What the audit row keeps of a body: secrets only as "set"/"unset". Caller frees. */
static char *audit_details(json_t *body)
{
	json_t *d = json_copy(body);
	for (size_t i = 0; d && i < NFIELDS; i++) {
		json_t *v = json_object_get(d, fields[i].name);
		if (!(fields[i].flags & F_SECRET) || !v)
			continue;
		int set = json_is_string(v) && json_string_length(v) > 0;
		json_object_set_new(d, fields[i].name, json_string(set ? "set" : "unset"));
	}
	char *s = d ? json_dumps(d, JSON_COMPACT) : NULL;
	json_decref(d);
	return s;
}

/* SELECT <read expressions> FROM cec_partners t WHERE t.tenant_id = ? */
static void select_sql(char *out, size_t n)
{
	size_t used = (size_t)snprintf(out, n, "SELECT ");
	for (size_t i = 0; i < NFIELDS && used < n; i++) {
		if (fields[i].expr)
			used += (size_t)snprintf(out + used, n - used, "%s%s", i ? ", " : "", fields[i].expr);
		else
			used += (size_t)snprintf(out + used, n - used, "%st.%s", i ? ", " : "", fields[i].name);
	}
	if (used < n)
		snprintf(out + used, n - used, " FROM cec_partners t WHERE t.tenant_id = ?");
}

static json_t *row_json(const evcs_api_t *api, const evcs_db_result_t *res, size_t row)
{
	json_t *o = json_object();
	for (unsigned i = 0; i < NFIELDS && i < res->ncols; i++) {
		const char *v = api->db_cell(res, row, i);
		json_t *j;
		int64_t x = 0;
		if (!v)
			j = json_null();
		else if (read_types[i] == 'i')
			j = api->db_cell_int(res, row, i, &x) == 0 ? json_integer(x) : json_null();
		else if (read_types[i] == 'j') {
			j = json_loads(v, JSON_DECODE_ANY, NULL);
			if (!j)
				j = json_string(v);
		} else
			j = json_string(v);
		json_object_set_new(o, fields[i].name, j);
	}
	return o;
}

/* ---- requests ------------------------------------------------------------------------------- */

typedef struct preq {
	cec_ctx_t *c;
	evcs_api_req_t *r;
	int64_t id;
	int created;
	int64_t limit, offset;
} preq_t;

static preq_t *preq_new(cec_ctx_t *c, evcs_api_req_t *r)
{
	preq_t *q = calloc(1, sizeof *q);
	if (!q)
		c->api->req_error(r, 503, "unavailable", NULL, "out of memory");
	else {
		q->c = c;
		q->r = r;
	}
	return q;
}

static void reply_json(preq_t *q, int status, json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	q->c->api->req_reply(q->r, status, s);
	free(s);
	free(q);
}

/* {partner_id} as a positive integer; 0 after answering 404. */
static int64_t param_id(const evcs_api_t *api, evcs_api_req_t *r)
{
	const char *v = api->req_param(r, "partner_id");
	char *end;
	long long id = v && *v ? strtoll(v, &end, 10) : 0;
	if (!v || !*v || *end || id <= 0) {
		api->req_error(r, 404, "not_found", NULL, "no such partner");
		return 0;
	}
	return id;
}

/* A data-layer failure of a write: the duplicate operator_id and a station of another tenant get
 * their field; the rest maps as the core's routes do. */
static void db_error(preq_t *q, int status, const char *errmsg)
{
	const evcs_api_t *api = q->c->api;
	if (status == EVCS_EEXIST)
		api->req_error(q->r, 409, "conflict", "operator_id", "already exists");
	else if (status == EVCS_ENOENT)
		api->req_error(q->r, 404, "not_found", NULL, "no such partner");
	else if (errmsg && strstr(errmsg, "Cannot add or update a child row"))
		api->req_error(q->r, 400, "bad_reference", "station_ids",
			       "station_ids refers to an object that does not exist");
	else
		api->req_db_error(q->r, status, errmsg);
	free(q);
}

static void list_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	preq_t *q = ud;
	const evcs_api_t *api = q->c->api;
	(void)nres;
	if (status != EVCS_OK) {
		api->req_db_error(q->r, status, errmsg);
		free(q);
		return;
	}
	json_t *items = json_array();
	size_t n = res[0].nrows;
	int more = n > (size_t)q->limit;
	for (size_t i = 0; i < n && i < (size_t)q->limit; i++)
		json_array_append_new(items, row_json(api, &res[0], i));
	char *s = json_dumps(items, JSON_COMPACT);
	json_decref(items);
	api->req_reply_page(q->r, s ? s : "[]", q->limit, q->offset, more);
	free(s);
	free(q);
}

static void route_list(evcs_api_req_t *r, void *ud)
{
	cec_ctx_t *c = ud;
	const evcs_api_t *api = c->api;
	int64_t limit, offset;
	if (api->req_page(r, &limit, &offset) < 0)
		return;
	char sql[2048], msg[256];
	select_sql(sql, sizeof sql);
	evcs_db_param_t p[8];
	size_t n = 0;
	for (size_t i = 0; i < NFIELDS; i++) {
		if (!(fields[i].flags & F_FILTER))
			continue;
		const char *v = api->req_query(r, fields[i].name);
		if (!v)
			continue;
		json_t *jv = json_string(v);
		int bad = !jv || check_value(&fields[i], jv, msg, sizeof msg) < 0;
		json_decref(jv);
		if (bad) {
			api->req_error(r, 400, "invalid", fields[i].name, jv ? msg : "bad value");
			return;
		}
		size_t used = strlen(sql);
		snprintf(sql + used, sizeof sql - used, " AND t.%s = ?", fields[i].name);
		p[n++] = EVCS_DB_STR(v);
	}
	size_t used = strlen(sql);
	snprintf(sql + used, sizeof sql - used, " ORDER BY t.id DESC LIMIT ? OFFSET ?");
	p[n++] = EVCS_DB_INT(limit + 1);
	p[n++] = EVCS_DB_INT(offset);
	preq_t *q = preq_new(c, r);
	if (!q)
		return;
	q->limit = limit;
	q->offset = offset;
	int rc = api->db_query(c->p, api->req_tenant(r), sql, p, n, 0, list_cb, q);
	if (rc) {
		api->req_db_error(r, rc, NULL);
		free(q);
	}
}

/* The last statement's one row is the answer (a get, or the read-back of a change). */
static void one_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	preq_t *q = ud;
	if (status != EVCS_OK) {
		db_error(q, status, errmsg);
		return;
	}
	const evcs_db_result_t *last = &res[nres - 1];
	if (last->nrows != 1) {
		q->c->api->req_error(q->r, 404, "not_found", NULL, "no such partner");
		free(q);
		return;
	}
	reply_json(q, q->created ? 201 : 200, row_json(q->c->api, last, 0));
}

static void route_get(evcs_api_req_t *r, void *ud)
{
	cec_ctx_t *c = ud;
	const evcs_api_t *api = c->api;
	int64_t id = param_id(api, r);
	if (!id)
		return;
	char sql[2048];
	select_sql(sql, sizeof sql);
	size_t used = strlen(sql);
	snprintf(sql + used, sizeof sql - used, " AND t.id = ?");
	preq_t *q = preq_new(c, r);
	if (!q)
		return;
	evcs_db_param_t p[] = {EVCS_DB_INT(id)};
	int rc = api->db_query(c->p, api->req_tenant(r), sql, p, 1, 0, one_cb, q);
	if (rc) {
		api->req_db_error(r, rc, NULL);
		free(q);
	}
}

static json_t *body_of(const evcs_api_t *api, evcs_api_req_t *r)
{
	size_t len = 0;
	const char *b = api->req_body(r, &len);
	json_t *o = json_loadb(b ? b : "{}", b ? len : 2, 0, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		api->req_error(r, 400, "invalid", "body", "a JSON object is expected");
		return NULL;
	}
	return o;
}

/* Submit t with the audit row and the read-back; answers on every path. */
static void submit_change(preq_t *q, evcs_db_txn_t *t, const char *action, evcs_db_param_t oid, json_t *body,
			  evcs_db_param_t read_id)
{
	const evcs_api_t *api = q->c->api;
	char *details = body ? audit_details(body) : NULL;
	char sql[2048];
	select_sql(sql, sizeof sql);
	size_t used = strlen(sql);
	snprintf(sql + used, sizeof sql - used, " AND t.id = ?");
	int64_t tenant = api->req_tenant(q->r);
	api->req_audit(q->r, t, action, "partner", oid, details);
	free(details);
	api->db_txn_add(t, tenant, sql, &read_id, 1, EVCS_DB_REQUIRE_ROW);
	int rc = api->db_txn_submit(t, 0, one_cb, q);
	if (rc) {
		api->req_db_error(q->r, rc, NULL);
		free(q);
	}
}

static evcs_db_param_t value_param(json_t *v, char **keep)
{
	if (json_is_object(v)) {
		*keep = json_dumps(v, JSON_COMPACT);
		return EVCS_DB_STR(*keep);
	}
	return EVCS_DB_STR(json_string_value(v));
}

static void route_create(evcs_api_req_t *r, void *ud)
{
	cec_ctx_t *c = ud;
	const evcs_api_t *api = c->api;
	json_t *body = body_of(api, r);
	if (!body || validate(api, r, body, 1) < 0) {
		json_decref(body);
		return;
	}
	char sql[1024] = "INSERT INTO cec_partners SET tenant_id = ?";
	evcs_db_param_t p[NFIELDS];
	char *keep = NULL;
	size_t n = 0;
	for (size_t i = 0; i < NFIELDS; i++) {
		json_t *v = json_object_get(body, fields[i].name);
		if (!v || fields[i].type == F_RO)
			continue;
		size_t used = strlen(sql);
		snprintf(sql + used, sizeof sql - used, ", %s = ?", fields[i].name);
		p[n++] = value_param(v, &keep);
	}
	preq_t *q = preq_new(c, r);
	evcs_db_txn_t *t = q ? api->db_txn_new(c->p) : NULL;
	if (q && !t) {
		api->req_error(r, 503, "unavailable", NULL, "database unavailable, try again");
		free(q);
		q = NULL;
	}
	if (q) {
		q->created = 1;
		api->db_txn_add(t, api->req_tenant(r), sql, p, n, 0);
		submit_change(q, t, "partner.create", EVCS_DB_REFID(0), body, EVCS_DB_REFID(0));
	}
	free(keep);
	json_decref(body);
}

static void route_update(evcs_api_req_t *r, void *ud)
{
	cec_ctx_t *c = ud;
	const evcs_api_t *api = c->api;
	int64_t id = param_id(api, r);
	if (!id)
		return;
	json_t *body = body_of(api, r);
	if (!body || validate(api, r, body, 0) < 0) {
		json_decref(body);
		return;
	}
	char sql[1024] = "UPDATE cec_partners SET ";
	evcs_db_param_t p[NFIELDS + 1];
	char *keep = NULL;
	size_t n = 0;
	for (size_t i = 0; i < NFIELDS; i++) {
		json_t *v = json_object_get(body, fields[i].name);
		if (!v)
			continue;
		size_t used = strlen(sql);
		snprintf(sql + used, sizeof sql - used, "%s%s = ?", n ? ", " : "", fields[i].name);
		p[n++] = value_param(v, &keep);
	}
	size_t used = strlen(sql);
	snprintf(sql + used, sizeof sql - used, " WHERE tenant_id = ? AND id = ?");
	p[n++] = EVCS_DB_INT(id);
	char oid[24];
	snprintf(oid, sizeof oid, "%lld", (long long)id);
	preq_t *q = preq_new(c, r);
	evcs_db_txn_t *t = q ? api->db_txn_new(c->p) : NULL;
	if (q && !t) {
		api->req_error(r, 503, "unavailable", NULL, "database unavailable, try again");
		free(q);
		q = NULL;
	}
	if (q) {
		api->db_txn_add(t, api->req_tenant(r), sql, p, n, 0);
		submit_change(q, t, "partner.update", EVCS_DB_STR(oid), body, EVCS_DB_INT(id));
	}
	free(keep);
	json_decref(body);
}

static void delete_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	preq_t *q = ud;
	(void)res;
	(void)nres;
	if (status != EVCS_OK)
		db_error(q, status, errmsg);
	else
		reply_json(q, 204, NULL);
}

static void route_delete(evcs_api_req_t *r, void *ud)
{
	cec_ctx_t *c = ud;
	const evcs_api_t *api = c->api;
	int64_t id = param_id(api, r);
	if (!id)
		return;
	preq_t *q = preq_new(c, r);
	if (!q)
		return;
	evcs_db_txn_t *t = api->db_txn_new(c->p);
	if (!t) {
		api->req_error(r, 503, "unavailable", NULL, "database unavailable, try again");
		free(q);
		return;
	}
	char oid[24];
	snprintf(oid, sizeof oid, "%lld", (long long)id);
	evcs_db_param_t p[] = {EVCS_DB_INT(id)};
	int64_t tenant = api->req_tenant(r);
	api->db_txn_add(t, tenant, "DELETE FROM cec_partners WHERE tenant_id = ? AND id = ?", p, 1, EVCS_DB_REQUIRE_ROW);
	api->req_audit(r, t, "partner.delete", "partner", EVCS_DB_STR(oid), NULL);
	int rc = api->db_txn_submit(t, 0, delete_cb, q);
	if (rc) {
		api->req_db_error(r, rc, NULL);
		free(q);
	}
}

static void stations_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	preq_t *q = ud;
	const evcs_api_t *api = q->c->api;
	if (status != EVCS_OK) {
		/* the first statement (the partner's row) is the only one that can miss */
		db_error(q, status, errmsg);
		return;
	}
	const evcs_db_result_t *last = &res[nres - 1];
	json_t *ids = json_array();
	for (size_t i = 0; i < last->nrows; i++) {
		int64_t v = 0;
		api->db_cell_int(last, i, 0, &v);
		json_array_append_new(ids, json_integer(v));
	}
	reply_json(q, 200, json_pack("{s:I, s:o}", "partner_id", (json_int_t)q->id, "station_ids", ids));
}

/* PUT /partners/{id}/stations {"station_ids": [...]}: replaces the stations the partner may see
 * and charge at, in one transaction (a station of another tenant fails its foreign key: 400). */
static void route_stations(evcs_api_req_t *r, void *ud)
{
	cec_ctx_t *c = ud;
	const evcs_api_t *api = c->api;
	int64_t id = param_id(api, r);
	if (!id)
		return;
	json_t *body = body_of(api, r);
	if (!body)
		return;
	const char *k;
	json_t *v;
	char msg[160];
	json_object_foreach(body, k, v)
	{
		if (strcmp(k, "station_ids") != 0) {
			snprintf(msg, sizeof msg, "unknown field %s", k);
			api->req_error(r, 400, "unknown_field", k, msg);
			json_decref(body);
			return;
		}
	}
	json_t *ids = json_object_get(body, "station_ids");
	if (!json_is_array(ids) || json_array_size(ids) > STATIONS_MAX) {
		snprintf(msg, sizeof msg, "station_ids must be an array of at most %d station ids", STATIONS_MAX);
		api->req_error(r, 400, ids ? "invalid" : "required", "station_ids", msg);
		json_decref(body);
		return;
	}
	size_t n = json_array_size(ids);
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(ids, i);
		if (!json_is_integer(e) || json_integer_value(e) < 1) {
			api->req_error(r, 400, "invalid", "station_ids", "station_ids must hold positive integers");
			json_decref(body);
			return;
		}
		for (size_t j = 0; j < i; j++)
			if (json_integer_value(json_array_get(ids, j)) == json_integer_value(e)) {
				snprintf(msg, sizeof msg, "station %lld is listed twice", (long long)json_integer_value(e));
				api->req_error(r, 400, "invalid", "station_ids", msg);
				json_decref(body);
				return;
			}
	}
	preq_t *q = preq_new(c, r);
	evcs_db_txn_t *t = q ? api->db_txn_new(c->p) : NULL;
	if (!t) {
		if (q)
			api->req_error(r, 503, "unavailable", NULL, "database unavailable, try again");
		free(q);
		json_decref(body);
		return;
	}
	q->id = id;
	int64_t tenant = api->req_tenant(r);
	char oid[24];
	snprintf(oid, sizeof oid, "%lld", (long long)id);
	evcs_db_param_t ip[] = {EVCS_DB_INT(id)};
	/* locks the partner row, and is the 404 when it is not this tenant's */
	api->db_txn_add(t, tenant, "UPDATE cec_partners SET id = id WHERE tenant_id = ? AND id = ?", ip, 1,
			EVCS_DB_REQUIRE_ROW);
	api->db_txn_add(t, tenant, "DELETE FROM cec_partner_stations WHERE tenant_id = ? AND partner_id = ?", ip, 1, 0);
	for (size_t i = 0; i < n; i++) {
		evcs_db_param_t sp[] = {EVCS_DB_INT(id), EVCS_DB_INT(json_integer_value(json_array_get(ids, i)))};
		api->db_txn_add(t, tenant,
				"INSERT INTO cec_partner_stations SET tenant_id = ?, partner_id = ?, station_id = ?, "
				"can_charge = 1",
				sp, 2, 0);
	}
	char *details = json_dumps(body, JSON_COMPACT);
	api->req_audit(r, t, "partner.stations", "partner", EVCS_DB_STR(oid), details);
	free(details);
	api->db_txn_add(t, tenant,
			"SELECT station_id FROM cec_partner_stations WHERE tenant_id = ? AND partner_id = ? ORDER BY station_id",
			ip, 1, 0);
	int rc = api->db_txn_submit(t, 0, stations_cb, q);
	if (rc) {
		api->req_db_error(r, rc, NULL);
		free(q);
	}
	json_decref(body);
}

/* ---- registration --------------------------------------------------------------------------- */

int cec_partner_api_init(cec_ctx_t *c)
{
	static const struct {
		const char *method, *pattern;
		evcs_api_handler h;
	} routes[] = {
	    {"GET", "/api/v1/partners", route_list},
	    {"POST", "/api/v1/partners", route_create},
	    {"GET", "/api/v1/partners/{partner_id}", route_get},
	    {"PATCH", "/api/v1/partners/{partner_id}", route_update},
	    {"DELETE", "/api/v1/partners/{partner_id}", route_delete},
	    {"PUT", "/api/v1/partners/{partner_id}/stations", route_stations},
	};
	json_error_t je;
	json_t *doc = json_loads(cec_partner_openapi_json, 0, &je);
	if (!doc) {
		CEC_LOG(c, EVCS_LOG_ERR, 0, "partner_api.json: %s (line %d)", je.text, je.line);
		return EVCS_EINVAL;
	}
	int rc = EVCS_OK;
	for (size_t i = 0; i < sizeof routes / sizeof routes[0] && rc == EVCS_OK; i++) {
		char method[8];
		size_t j = 0;
		for (; routes[i].method[j] && j + 1 < sizeof method; j++)
			method[j] = (char)(routes[i].method[j] - 'A' + 'a');
		method[j] = 0;
		json_t *op = json_object_get(json_object_get(json_object_get(doc, "paths"), routes[i].pattern), method);
		char *text = op ? json_dumps(op, JSON_COMPACT) : NULL;
		evcs_api_route_t rt = {.size = sizeof rt,
				       .method = routes[i].method,
				       .pattern = routes[i].pattern,
				       .min_role = EVCS_ROLE_TENANT_ADMIN,
				       .handler = routes[i].h,
				       .ud = c,
				       .openapi = text};
		rc = text ? c->api->api_route(c->p, &rt) : EVCS_EINVAL;
		if (rc != EVCS_OK)
			CEC_LOG(c, EVCS_LOG_ERR, 0, "cannot add route %s %s: %s", routes[i].method, routes[i].pattern,
				text ? c->api->status_name(rc) : "no OpenAPI operation in partner_api.json");
		free(text);
	}
	json_decref(doc);
	return rc;
}
