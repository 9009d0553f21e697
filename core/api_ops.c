/*
 * api_ops.c: operator API handlers that are more than table CRUD: pile registration (with its
 * connectors, quota and the unclaimed list), commands to piles over the bus, versioned tariffs
 * and their publication (EVCS_EV_TARIFF_CHANGED per affected pile), session detail with the
 * meter curve, alarm acknowledgement, tenant scripts (compiled and self-tested by the script
 * engine before they are stored), tokens and the big-screen dashboard.
 * Every handler answers exactly once (api.h); all storage is asynchronous.
 */
#include "api.h"
#include "log.h"
#include "script.h"
#include "store.h"
#include "tz.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void evcs_api_token_hash(const char *token, char out[65]);

/* op for callbacks that answer with one row of a resource from the last result */
struct rowreply {
	const api_resource_t *r;
	int status;
};
static const struct rowreply pile_created = {&api_res_piles, 201};
static const struct rowreply tariff_created = {&api_res_tariffs, 201};
static const struct rowreply alarm_ok = {&api_res_alarms, 200};

static void row_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		   void *ud)
{
	api_ctx_t *c = ud;
	if (api_ctx_gone(c))
		return;
	const struct rowreply *rr = c->op;
	c->op = NULL;
	if (status == EVCS_ENOENT && rr == &pile_created) {
		api_error(c, 409, "quota_exceeded", NULL, "the tenant's pile quota is used up");
		return;
	}
	if (status != EVCS_OK) {
		api_db_error(c, status, errmsg, api_crud_fkmap(rr->r));
		return;
	}
	if (res[nres - 1].nrows != 1) {
		api_error(c, 404, "not_found", NULL, "no such object");
		return;
	}
	api_reply_json(c, rr->status, api_crud_row(rr->r, &res[nres - 1], 0));
}

/* A pile identity as the protocol writes it: 1..EVCS_ID_MAX bytes, no control characters. */
static int is_serial(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n < 1 || n > EVCS_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

void api_op_me(api_ctx_t *c)
{
	json_t *o = json_pack("{s:s, s:s}", "role", role_name(c->role), "actor", c->actor);
	json_object_set_new(o, "tenant_id", c->tenant ? json_integer(c->tenant) : json_null());
	json_object_set_new(o, "user_id", c->user_id ? json_integer(c->user_id) : json_null());
	api_reply_json(c, 200, o);
}

/* ---- piles ---------------------------------------------------------------------------------- */
static void pile_create_with(api_ctx_t *c, json_t *body)
{
	if (api_crud_validate(c, &api_res_piles, body, 1) < 0)
		return;
	evcs_db_param_t p[32];
	sb_t ins = {0}, sel = {0};
	int n = api_crud_insert_sql(c, &api_res_piles, body, &ins, p, 32);
	api_crud_select_by_id_sql(&api_res_piles, &sel);
	json_t *gc = json_object_get(body, "gun_count");
	int guns = gc ? (int)json_integer_value(gc) : 1;
	evcs_db_txn_t *t = evcs_db_txn_new(c->core->db);
	if (t) {
		/* quota, serialised on the tenant row; ENOENT from here means "quota used up" */
		evcs_db_txn_add(t, c->tenant,
				"SELECT te.id FROM tenants te WHERE te.id = ? AND (te.max_piles = 0 OR "
				"te.max_piles > (SELECT COUNT(*) FROM piles p WHERE p.tenant_id = ?)) "
				"FOR UPDATE",
				(evcs_db_param_t[]){EVCS_DB_INT(c->tenant)}, 1, EVCS_DB_REQUIRE_ROW);
		evcs_db_txn_add(t, c->tenant, ins.s, p, (size_t)n, 0);
		for (int g = 1; g <= guns; g++)
			evcs_db_txn_add(t, c->tenant,
					"INSERT INTO connectors SET tenant_id = ?, pile_id = ?, gun_no = ?",
					(evcs_db_param_t[]){EVCS_DB_REFID(1), EVCS_DB_INT(g)}, 2, 0);
		evcs_db_txn_add_platform(t, "DELETE FROM unclaimed_piles WHERE serial = ?",
					 (evcs_db_param_t[]){EVCS_DB_STR(json_string_value(
					     json_object_get(body, "serial")))},
					 1, 0);
		api_txn_audit(c, t, "pile.create", "pile", EVCS_DB_REFID(1), body);
		evcs_db_txn_add(t, c->tenant, sel.s, (evcs_db_param_t[]){EVCS_DB_REFID(1)}, 1, 0);
	}
	free(ins.s);
	free(sel.s);
	c->op = (void *)&pile_created;
	api_txn_submit(c, t, row_cb);
}

void api_op_pile_create(api_ctx_t *c) { pile_create_with(c, c->body); }

static void claim_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		     void *ud)
{
	api_ctx_t *c = ud;
	if (!api_db_begin(c, status, errmsg))
		return;
	if (res[0].nrows != 1) {
		api_error(c, 404, "not_found", NULL, "no unclaimed pile with that serial");
		return;
	}
	/* what the pile announced at its refused login fills what the operator left out */
	json_t *login = NULL;
	const char *lj = evcs_db_cell(&res[0], 0, 0);
	if (lj)
		login = json_loads(lj, 0, NULL);
	json_t *gc = login ? json_object_get(login, "gun_count") : NULL;
	if (!json_object_get(c->body, "gun_count") && json_is_integer(gc) &&
	    json_integer_value(gc) >= 1 && json_integer_value(gc) <= 99)
		json_object_set(c->body, "gun_count", gc);
	json_t *pt = login ? json_object_get(login, "pile_type") : NULL;
	if (!json_object_get(c->body, "current_type") && json_is_integer(pt))
		json_object_set_new(c->body, "current_type",
				    json_string(json_integer_value(pt) == 1 ? "ac" : "dc"));
	json_decref(login);
	pile_create_with(c, c->body);
}

void api_op_pile_claim(api_ctx_t *c)
{
	const char *serial = api_param(c, "serial");
	if (!is_serial(serial)) {
		api_error(c, 404, "not_found", NULL, "no unclaimed pile with that serial");
		return;
	}
	json_t *bs = json_object_get(c->body, "serial");
	if (bs && (!json_is_string(bs) || strcmp(json_string_value(bs), serial) != 0)) {
		api_error(c, 400, "invalid", "serial", "serial differs from the path");
		return;
	}
	json_object_set_new(c->body, "serial", json_string(serial));
	api_query(c, 1, "SELECT login FROM unclaimed_piles WHERE serial = ?",
		  (evcs_db_param_t[]){EVCS_DB_STR(serial)}, 1, claim_cb);
}

/* ---- commands ----------------------------------------------------------------------------- */
struct cmdop {
	char serial[EVCS_ID_MAX + 1];
	char name[40];
	int gun;
	char *args;
};

static void cmdop_free(void *p)
{
	struct cmdop *o = p;
	if (o)
		free(o->args);
	free(o);
}

static void cmd_done(int status, const char *result_json, void *ud)
{
	api_ctx_t *c = ud;
	c->waiting_cmd = 0;
	if (api_ctx_gone(c))
		return;
	struct cmdop *o = c->op;
	json_t *res = result_json ? json_loads(result_json, JSON_DECODE_ANY, NULL) : NULL;
	if (!res && result_json)
		res = json_string(result_json);
	if (status == EVCS_OK) {
		json_t *r = json_pack("{s:s, s:s, s:s, s:o}", "status", "ok", "pile", o->serial,
				      "command", o->name, "result", res ? res : json_null());
		api_reply_json(c, 200, r);
		return;
	}
	char *detail = res ? json_dumps(res, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	json_decref(res);
	const char *d = detail ? detail : "";
	switch (status) {
	case EVCS_ETIMEDOUT:
		api_error(c, 504, "timeout", NULL, "pile %s did not answer %s in time", o->serial,
			  o->name);
		break;
	case EVCS_EOFFLINE:
		api_error(c, 409, "offline", NULL, "pile %s is offline", o->serial);
		break;
	case EVCS_EREFUSED:
		api_error(c, 422, "refused", NULL, "pile %s refused %s %s", o->serial, o->name, d);
		break;
	case EVCS_ENOTSUP:
		api_error(c, 501, "not_supported", "command", "%s is not supported by this pile",
			  o->name);
		break;
	case EVCS_VETO:
		api_error(c, 403, "vetoed", NULL, "the command was vetoed %s", d);
		break;
	case EVCS_EINVAL:
		api_error(c, 400, "invalid", "args", "the pile's protocol rejected the arguments %s", d);
		break;
	case EVCS_EBUSY:
		api_error(c, 503, "busy", NULL, "pile %s is busy, try again %s", o->serial, d);
		break;
	default:
		api_error(c, 502, "pile_error", NULL, "command failed: %s %s",
			  evcs_status_str(status), d);
	}
	free(detail);
}

static void cmd_pile_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
			void *ud)
{
	api_ctx_t *c = ud;
	if (!api_db_begin(c, status, errmsg))
		return;
	struct cmdop *o = c->op;
	evcs_command_t cmd = {.size = sizeof cmd, .tenant_id = c->tenant, .pile = o->serial,
			      .gun = o->gun, .name = o->name, .args_json = o->args};
	/* an owner may answer inside the send call (done runs, the ctx is freed): mark first and
	 * touch c afterwards only when the send itself failed (done never runs then) */
	c->waiting_cmd = 1;
	int r = evcs_bus_command_send(c->core->bus, &cmd, c->api ? c->api->cmd_timeout_ms : 1000,
				      cmd_done, c, "api");
	if (r != EVCS_OK) {
		c->waiting_cmd = 0;
		api_error(c, 503, "unavailable", NULL, "cannot send the command");
	}
}

void api_op_pile_command(api_ctx_t *c)
{
	const char *serial = api_param(c, "serial");
	if (!is_serial(serial)) {
		api_error(c, 404, "not_found", NULL, "no such pile");
		return;
	}
	const char *k;
	json_t *v;
	json_object_foreach(c->body, k, v)
	{
		if (strcmp(k, "command") && strcmp(k, "gun") && strcmp(k, "args")) {
			api_error(c, 400, "unknown_field", k, "unknown field %s", k);
			return;
		}
	}
	json_t *name = json_object_get(c->body, "command");
	json_t *gun = json_object_get(c->body, "gun");
	json_t *args = json_object_get(c->body, "args");
	const char *ns = json_string_value(name);
	if (!ns || !*ns || strlen(ns) > 32 ||
	    strspn(ns, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(ns)) {
		api_error(c, 400, name ? "invalid" : "required", "command",
			  "command must be a name like \"start\", \"stop\", \"reboot\"");
		return;
	}
	if (gun && (!json_is_integer(gun) || json_integer_value(gun) < 0 ||
		    json_integer_value(gun) > 99)) {
		api_error(c, 400, "invalid", "gun", "gun must be an integer 0..99");
		return;
	}
	if (args && !json_is_object(args)) {
		api_error(c, 400, "invalid", "args", "args must be a JSON object");
		return;
	}
	struct cmdop *o = calloc(1, sizeof *o);
	if (!o) {
		api_error(c, 503, "unavailable", NULL, "out of memory");
		return;
	}
	snprintf(o->serial, sizeof o->serial, "%s", serial);
	snprintf(o->name, sizeof o->name, "%s", ns);
	o->gun = gun ? (int)json_integer_value(gun) : 0;
	o->args = args ? json_dumps(args, JSON_COMPACT) : NULL;
	c->op = o;
	c->op_free = cmdop_free;
	evcs_db_txn_t *t = evcs_db_txn_new(c->core->db);
	if (t) {
		evcs_db_txn_add(t, c->tenant, "SELECT id FROM piles WHERE tenant_id = ? AND serial = ?",
				(evcs_db_param_t[]){EVCS_DB_STR(serial)}, 1, EVCS_DB_REQUIRE_ROW);
		json_t *d = json_pack("{s:s, s:i, s:O?}", "command", ns, "gun", o->gun, "args", args);
		api_txn_audit(c, t, "pile.command", "pile", EVCS_DB_STR(serial), d);
		json_decref(d);
	}
	api_txn_submit(c, t, cmd_pile_cb);
}

/* ---- tariffs ------------------------------------------------------------------------------ */
static void tariff_insert(api_ctx_t *c, json_t *body, const char *action)
{
	if (api_crud_validate(c, &api_res_tariffs, body, 1) < 0)
		return;
	evcs_db_param_t p[32];
	sb_t ins = {0}, sel = {0};
	int n = api_crud_insert_sql(c, &api_res_tariffs, body, &ins, p, 30);
	sb_add(&ins, ", version = @evcs_tv, model = LPAD(@evcs_tm, 4, '0'), created_by = ?");
	p[n++] = c->user_id ? EVCS_DB_INT(c->user_id) : EVCS_DB_NULL;
	api_crud_select_by_id_sql(&api_res_tariffs, &sel);
	evcs_db_txn_t *t = evcs_db_txn_new(c->core->db);
	if (t) {
		/* the next free billing-model code of the tenant and the next version of the name;
		 * user variables carry them into the INSERT on the same connection */
		evcs_db_txn_add(t, c->tenant,
				"SELECT @evcs_tm := COALESCE(MAX(CAST(model AS UNSIGNED)), 0) + 1, "
				"@evcs_tv := COALESCE(MAX(IF(name = ?, version, 0)), 0) + 1 "
				"FROM tariffs WHERE tenant_id = ? FOR UPDATE",
				(evcs_db_param_t[]){EVCS_DB_STR(json_string_value(
				    json_object_get(body, "name")))},
				1, 0);
		evcs_db_txn_add(t, c->tenant, ins.s, p, (size_t)n, 0);
		api_txn_audit(c, t, action, "tariff", EVCS_DB_REFID(1), body);
		evcs_db_txn_add(t, c->tenant, sel.s, (evcs_db_param_t[]){EVCS_DB_REFID(1)}, 1, 0);
	}
	free(ins.s);
	free(sel.s);
	c->op = (void *)&tariff_created;
	api_txn_submit(c, t, row_cb);
}

void api_op_tariff_create(api_ctx_t *c) { tariff_insert(c, c->body, "tariff.create"); }

static void tariff_old_cb(int status, const evcs_db_result_t *res, size_t nres,
			  const char *errmsg, void *ud)
{
	api_ctx_t *c = ud;
	if (!api_db_begin(c, status, errmsg))
		return;
	if (res[0].nrows != 1) {
		api_error(c, 404, "not_found", NULL, "no such tariff");
		return;
	}
	json_object_set_new(c->body, "name", json_string(evcs_db_cell(&res[0], 0, 0)));
	tariff_insert(c, c->body, "tariff.version");
}

void api_op_tariff_version(api_ctx_t *c)
{
	int64_t id = api_param_id(c, "tariff_id");
	if (!id)
		return;
	if (json_object_get(c->body, "name")) {
		api_error(c, 400, "immutable", "name", "a new version keeps the tariff's name");
		return;
	}
	api_query(c, 0, "SELECT name FROM tariffs WHERE tenant_id = ? AND id = ?",
		  (evcs_db_param_t[]){EVCS_DB_INT(id)}, 1, tariff_old_cb);
}

static void publish_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		       void *ud)
{
	api_ctx_t *c = ud;
	if (!api_db_begin(c, status, errmsg))
		return;
	const evcs_db_result_t *row = &res[nres - 2], *piles = &res[nres - 1];
	json_t *o = api_crud_row(&api_res_tariffs, row, 0);
	int64_t id = json_integer_value(json_object_get(o, "id"));
	const char *model = json_string_value(json_object_get(o, "model"));
	/* one event per pile on this tariff: the protocol plugin pushes it (its tariff frame) to the
	 * piles it holds and ignores the others */
	for (size_t i = 0; i < piles->nrows; i++) {
		evcs_field_t f[] = {EVCS_FI("tariff_id", id), EVCS_FS("model", model)};
		evcs_event_t ev = {.size = sizeof ev, .type = EVCS_EV_TARIFF_CHANGED,
				   .tenant_id = c->tenant, .pile = evcs_db_cell(piles, i, 0),
				   .fields = f, .nfields = 2};
		evcs_bus_publish(c->core->bus, &ev, "api");
	}
	json_object_set_new(o, "piles_notified", json_integer((json_int_t)piles->nrows));
	api_reply_json(c, 200, o);
}

void api_op_tariff_publish(api_ctx_t *c)
{
	int64_t id = api_param_id(c, "tariff_id");
	if (!id)
		return;
	sb_t sel = {0};
	api_crud_select_by_id_sql(&api_res_tariffs, &sel);
	evcs_db_param_t idp[] = {EVCS_DB_INT(id)};
	char oid[24];
	snprintf(oid, sizeof oid, "%lld", (long long)id);
	evcs_db_txn_t *t = evcs_db_txn_new(c->core->db);
	if (t) {
		evcs_db_txn_add(t, c->tenant,
				"SELECT @evcs_tn := name FROM tariffs WHERE tenant_id = ? AND id = ? "
				"FOR UPDATE",
				idp, 1, EVCS_DB_REQUIRE_ROW);
		evcs_db_txn_add(t, c->tenant,
				"UPDATE tariffs SET state = 'retired' WHERE tenant_id = ? AND "
				"name = @evcs_tn AND state = 'active' AND id <> ?",
				idp, 1, 0);
		evcs_db_txn_add(t, c->tenant,
				"UPDATE tariffs SET state = 'active' WHERE tenant_id = ? AND id = ?", idp,
				1, 0);
		/* piles on any version of this tariff move to the published one */
		evcs_db_txn_add(t, c->tenant,
				"UPDATE piles SET tariff_id = ?, updated_ms = CAST(UNIX_TIMESTAMP(NOW(3)) "
				"* 1000 AS SIGNED) WHERE tenant_id = ? AND tariff_id IN (SELECT x.id "
				"FROM tariffs x WHERE x.tenant_id = ? AND x.name = @evcs_tn)",
				idp, 1, 0);
		api_txn_audit(c, t, "tariff.publish", "tariff", EVCS_DB_STR(oid), NULL);
		evcs_db_txn_add(t, c->tenant, sel.s, idp, 1, EVCS_DB_REQUIRE_ROW);
		evcs_db_txn_add(t, c->tenant,
				"SELECT serial FROM piles WHERE tenant_id = ? AND tariff_id = ? "
				"ORDER BY id LIMIT 100000",
				idp, 1, 0);
	}
	free(sel.s);
	api_txn_submit(c, t, publish_cb);
}

/* ---- sessions and alarms -------------------------------------------------------------------- */
static void session_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		       void *ud)
{
	api_ctx_t *c = ud;
	if (!api_db_begin(c, status, errmsg))
		return;
	if (res[0].nrows != 1) {
		api_error(c, 404, "not_found", NULL, "no such session");
		return;
	}
	json_t *o = api_crud_row(&api_res_sessions, &res[0], 0);
	json_t *curve = json_array();
	static const char *const cols[] = {"ts_ms", "kwh", "amount", "voltage_dv", "current_da",
					   "soc", "gun_temp_c", "batt_max_temp_c", "remaining_min"};
	for (size_t i = 0; i < res[1].nrows; i++) {
		json_t *pt = json_object();
		for (unsigned k = 0; k < 9; k++) {
			int64_t v = 0;
			evcs_db_cell_i64(&res[1], i, k, &v);
			json_object_set_new(pt, cols[k], json_integer(v));
		}
		json_array_append_new(curve, pt);
	}
	json_object_set_new(o, "curve", curve);
	api_reply_json(c, 200, o);
}

void api_op_session_get(api_ctx_t *c)
{
	int64_t id = api_param_id(c, "session_id");
	if (!id)
		return;
	sb_t sel = {0};
	api_crud_select_by_id_sql(&api_res_sessions, &sel);
	evcs_db_param_t idp[] = {EVCS_DB_INT(id)};
	evcs_db_txn_t *t = evcs_db_txn_new(c->core->db);
	if (t) {
		evcs_db_txn_add(t, c->tenant, sel.s, idp, 1, 0);
		/* meter_samples has no tenant column: the join through the session scopes it */
		evcs_db_txn_add(t, c->tenant,
				"SELECT m.ts_ms, m.kwh, m.amount, m.voltage_dv, m.current_da, m.soc, "
				"m.gun_temp_c, m.batt_max_temp_c, m.remaining_min FROM meter_samples m "
				"JOIN charging_sessions s ON s.id = m.session_id WHERE s.tenant_id = ? "
				"AND s.id = ? ORDER BY m.ts_ms LIMIT 20000",
				idp, 1, 0);
	}
	free(sel.s);
	api_txn_submit(c, t, session_cb);
}

void api_op_alarm_ack(api_ctx_t *c)
{
	int64_t id = api_param_id(c, "alarm_id");
	if (!id)
		return;
	if (json_object_size(c->body)) {
		api_error(c, 400, "unknown_field", json_object_iter_key(json_object_iter(c->body)),
			  "no body expected");
		return;
	}
	sb_t sel = {0};
	api_crud_select_by_id_sql(&api_res_alarms, &sel);
	char oid[24];
	snprintf(oid, sizeof oid, "%lld", (long long)id);
	evcs_db_txn_t *t = evcs_db_txn_new(c->core->db);
	if (t) {
		evcs_db_txn_add(t, c->tenant,
				"UPDATE alarms SET state = 'acknowledged', acked_ms = ?, acked_by = ? "
				"WHERE tenant_id = ? AND id = ? AND state = 'raised'",
				(evcs_db_param_t[]){EVCS_DB_INT(api_now_ms()),
						    c->user_id ? EVCS_DB_INT(c->user_id) : EVCS_DB_NULL,
						    EVCS_DB_INT(id)},
				3, 0);
		api_txn_audit(c, t, "alarm.ack", "alarm", EVCS_DB_STR(oid), NULL);
		evcs_db_txn_add(t, c->tenant, sel.s, (evcs_db_param_t[]){EVCS_DB_INT(id)}, 1,
				EVCS_DB_REQUIRE_ROW);
	}
	free(sel.s);
	c->op = (void *)&alarm_ok;
	api_txn_submit(c, t, row_cb);
}

/* ---- scripts ------------------------------------------------------------------------------ */
static int slot_ok(const char *s)
{
	size_t l = s ? strlen(s) : 0;
	return l >= 1 && l <= 32 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == l;
}

static const char *slot_kind(const char *slot) { return strcmp(slot, "tariff") ? "alarm" : "tariff"; }

static json_t *script_row(const evcs_db_result_t *r, size_t i, int with_source)
{
	json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:I}", "slot", evcs_db_cell(r, i, 0), "kind",
			      evcs_db_cell(r, i, 1), "version",
			      (json_int_t)strtoll(evcs_db_cell(r, i, 2), NULL, 10), "sha256",
			      evcs_db_cell(r, i, 3), "created_ms",
			      (json_int_t)strtoll(evcs_db_cell(r, i, 4), NULL, 10));
	if (with_source)
		json_object_set_new(o, "source", json_string(evcs_db_cell(r, i, 5)));
	return o;
}

static void script_list_cb(int status, const evcs_db_result_t *res, size_t nres,
			   const char *errmsg, void *ud)
{
	api_ctx_t *c = ud;
	if (!api_db_begin(c, status, errmsg))
		return;
	json_t *items = json_array();
	for (size_t i = 0; i < res[0].nrows; i++) {
		json_t *o = script_row(&res[0], i, 0);
		const char *live = evcs_script_digest(c->core->scripts, c->tenant,
						      evcs_db_cell(&res[0], i, 0));
		json_object_set_new(o, "live", json_boolean(live && !strcmp(live, evcs_db_cell(
										      &res[0], i, 3))));
		json_array_append_new(items, o);
	}
	api_reply_json(c, 200, json_pack("{s:o}", "items", items));
}

void api_op_script_list(api_ctx_t *c)
{
	api_query(c, 0,
		  "SELECT name, kind, version, sha256, created_ms FROM tenant_scripts WHERE "
		  "tenant_id = ? AND active = 1 ORDER BY name LIMIT 1000",
		  NULL, 0, script_list_cb);
}

static void script_get_cb(int status, const evcs_db_result_t *res, size_t nres,
			  const char *errmsg, void *ud)
{
	api_ctx_t *c = ud;
	if (!api_db_begin(c, status, errmsg))
		return;
	if (res[nres - 1].nrows != 1) {
		api_error(c, 404, "not_found", NULL, "no script in slot %s", api_param(c, "slot"));
		return;
	}
	int put = c->op == (void *)1;
	c->op = NULL;
	api_reply_json(c, put ? 200 : 200, script_row(&res[nres - 1], 0, !put));
}

void api_op_script_get(api_ctx_t *c)
{
	const char *slot = api_param(c, "slot");
	if (!slot_ok(slot)) {
		api_error(c, 404, "not_found", NULL, "no such slot");
		return;
	}
	api_query(c, 0,
		  "SELECT name, kind, version, sha256, created_ms, source FROM tenant_scripts WHERE "
		  "tenant_id = ? AND name = ? AND active = 1",
		  (evcs_db_param_t[]){EVCS_DB_STR(slot)}, 1, script_get_cb);
}

void api_op_script_put(api_ctx_t *c)
{
	const char *slot = api_param(c, "slot");
	if (!slot_ok(slot)) {
		api_error(c, 400, "invalid", "slot", "slot names are [a-z0-9_]{1,32}");
		return;
	}
	if (!c->tenant) {
		api_error(c, 400, "tenant_required", "X-Tenant-ID", "scripts belong to a tenant");
		return;
	}
	size_t len = 0;
	const char *src = evcs_http_req_body(c->req, &len);
	const char *ct = evcs_http_req_header(c->req, "Content-Type");
	json_t *doc = NULL;
	if (ct && !strncmp(ct, "application/json", 16)) {
		doc = json_loadb(src, len, 0, NULL);
		json_t *s = doc ? json_object_get(doc, "source") : NULL;
		if (!json_is_string(s)) {
			json_decref(doc);
			api_error(c, 400, "invalid", "source",
				  "expected {\"source\": \"...\"} or a text/plain body");
			return;
		}
		c->body = doc;
		src = json_string_value(s);
		len = json_string_length(s);
	}
	if (!len) {
		api_error(c, 400, "required", "source", "empty script");
		return;
	}
	char chunk[64], *err = NULL;
	snprintf(chunk, sizeof chunk, "=tenant %lld %s", (long long)c->tenant, slot);
	if (evcs_script_load(c->core->scripts, c->tenant, slot, src, len, chunk, &err) != EVCS_OK) {
		api_error(c, 400, "script_rejected", "source", "%s", err ? err : "script rejected");
		free(err);
		return;
	}
	free(err);
	char sha[65] = "";
	const char *d = evcs_script_digest(c->core->scripts, c->tenant, slot);
	snprintf(sha, sizeof sha, "%s", d ? d : "");
	const char *kind = slot_kind(slot);
	evcs_db_param_t kn[] = {EVCS_DB_STR(kind), EVCS_DB_STR(slot)};
	evcs_db_txn_t *t = evcs_db_txn_new(c->core->db);
	if (t) {
		evcs_db_txn_add(t, c->tenant,
				"SELECT @evcs_sv := COALESCE(MAX(version), 0) + 1 FROM tenant_scripts "
				"WHERE tenant_id = ? AND kind = ? AND name = ? FOR UPDATE",
				kn, 2, 0);
		evcs_db_txn_add(t, c->tenant,
				"UPDATE tenant_scripts SET active = 0 WHERE tenant_id = ? AND kind = ? "
				"AND name = ? AND active = 1",
				kn, 2, 0);
		evcs_db_txn_add(t, c->tenant,
				"INSERT INTO tenant_scripts SET tenant_id = ?, kind = ?, name = ?, "
				"version = @evcs_sv, source = ?, sha256 = ?, active = 1, created_by = ?",
				(evcs_db_param_t[]){EVCS_DB_STR(kind), EVCS_DB_STR(slot),
						    EVCS_DB_BYTES(src, len), EVCS_DB_STR(sha),
						    c->user_id ? EVCS_DB_INT(c->user_id) : EVCS_DB_NULL},
				5, 0);
		json_t *det = json_pack("{s:s, s:s}", "slot", slot, "sha256", sha);
		api_txn_audit(c, t, "script.upload", "script", EVCS_DB_STR(slot), det);
		json_decref(det);
		evcs_db_txn_add(t, c->tenant,
				"SELECT name, kind, version, sha256, created_ms FROM tenant_scripts "
				"WHERE tenant_id = ? AND id = ?",
				(evcs_db_param_t[]){EVCS_DB_REFID(2)}, 1, 0);
	}
	c->op = (void *)1;
	api_txn_submit(c, t, script_get_cb);
}

/* ---- tokens --------------------------------------------------------------------------------- */
struct tokop {
	char secret[80];
	int role;
	char username[72];
	int64_t expires;
};

static void token_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		     void *ud)
{
	api_ctx_t *c = ud;
	if (api_ctx_gone(c))
		return;
	if (status == EVCS_ENOENT) {
		api_error(c, 409, "conflict", "username", "username belongs to another tenant");
		return;
	}
	if (status != EVCS_OK) {
		api_db_error(c, status, errmsg, NULL);
		return;
	}
	struct tokop *o = c->op;
	json_t *r = json_pack("{s:I, s:s, s:s, s:s}", "id", (json_int_t)res[2].insert_id, "token",
			      o->secret, "username", o->username, "role", role_name(o->role));
	json_object_set_new(r, "tenant_id", c->tenant ? json_integer(c->tenant) : json_null());
	json_object_set_new(r, "expires_ms", o->expires ? json_integer(o->expires) : json_null());
	api_reply_json(c, 201, r);
}

void api_op_token_create(api_ctx_t *c)
{
	const char *k;
	json_t *v;
	json_object_foreach(c->body, k, v)
	{
		if (strcmp(k, "username") && strcmp(k, "role") && strcmp(k, "name") &&
		    strcmp(k, "expires_ms") && strcmp(k, "display_name")) {
			api_error(c, 400, "unknown_field", k, "unknown field %s", k);
			return;
		}
	}
	const char *user = json_string_value(json_object_get(c->body, "username"));
	const char *rs = json_string_value(json_object_get(c->body, "role"));
	json_t *nm = json_object_get(c->body, "name"), *ex = json_object_get(c->body, "expires_ms");
	json_t *dn = json_object_get(c->body, "display_name");
	if (!user || !*user || strlen(user) > 64 ||
	    strspn(user, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.@-") !=
		strlen(user)) {
		api_error(c, 400, user ? "invalid" : "required", "username",
			  "username: 1..64 of [A-Za-z0-9_.@-]");
		return;
	}
	int role = role_parse(rs);
	if (!role) {
		api_error(c, 400, rs ? "invalid" : "required", "role",
			  "role must be platform-admin, tenant-admin, operator or read-only");
		return;
	}
	if (role > c->role) {
		api_error(c, 403, "forbidden", "role", "cannot grant a role above your own");
		return;
	}
	if ((role == ROLE_PLATFORM_ADMIN) != (c->tenant == 0)) {
		api_error(c, 400, role == ROLE_PLATFORM_ADMIN ? "invalid" : "tenant_required",
			  role == ROLE_PLATFORM_ADMIN ? "role" : "X-Tenant-ID",
			  role == ROLE_PLATFORM_ADMIN
			      ? "a platform-admin token belongs to no tenant (omit X-Tenant-ID)"
			      : "name the tenant with X-Tenant-ID");
		return;
	}
	if ((nm && (!json_is_string(nm) || json_string_length(nm) > 64)) ||
	    (dn && (!json_is_string(dn) || json_string_length(dn) > 128))) {
		api_error(c, 400, "invalid", nm && !(json_is_string(nm) &&
						       json_string_length(nm) <= 64)
						  ? "name"
						  : "display_name",
			  "must be a short string");
		return;
	}
	int64_t now = api_now_ms();
	if (ex && (!json_is_integer(ex) || json_integer_value(ex) <= now)) {
		api_error(c, 400, "invalid", "expires_ms", "expires_ms must be a future unix time in ms");
		return;
	}
	struct tokop *o = calloc(1, sizeof *o);
	if (!o) {
		api_error(c, 503, "unavailable", NULL, "out of memory");
		return;
	}
	c->op = o;
	c->op_free = free;
	o->role = role;
	o->expires = ex ? json_integer_value(ex) : 0;
	snprintf(o->username, sizeof o->username, "%s", user);
	unsigned char rnd[32];
	if (RAND_bytes(rnd, sizeof rnd) != 1) {
		api_error(c, 503, "unavailable", NULL, "no randomness");
		return;
	}
	strcpy(o->secret, "evcs_");
	for (int i = 0; i < 32; i++)
		snprintf(o->secret + 5 + 2 * i, 3, "%02x", rnd[i]);
	char hex[65];
	evcs_api_token_hash(o->secret, hex);
	static const char *const dbrole[] = {"", "read_only", "operator", "tenant_admin",
					     "platform_admin"};
	evcs_db_param_t up[] = {EVCS_DB_STR(user), EVCS_DB_STR(dbrole[role]),
				EVCS_DB_STR(dn ? json_string_value(dn) : "")};
	evcs_db_param_t tp[] = {EVCS_DB_REFID(0), EVCS_DB_STR(hex),
				EVCS_DB_STR(nm ? json_string_value(nm) : ""),
				EVCS_DB_STR(dbrole[role]),
				ex ? EVCS_DB_INT(json_integer_value(ex)) : EVCS_DB_NULL};
	evcs_db_txn_t *t = evcs_db_txn_new(c->core->db);
	if (t && c->tenant) {
		/* an existing user of this name is reused; one of another tenant fails the
		 * read-back (ENOENT -> 409) */
		evcs_db_txn_add(t, c->tenant,
				"INSERT INTO api_users SET tenant_id = ?, username = ?, role = ?, "
				"display_name = ? ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id)",
				up, 3, 0);
		evcs_db_txn_add(t, c->tenant, "SELECT id FROM api_users WHERE tenant_id = ? AND id = ?",
				(evcs_db_param_t[]){EVCS_DB_REFID(0)}, 1, EVCS_DB_REQUIRE_ROW);
		evcs_db_txn_add(t, c->tenant,
				"INSERT INTO api_tokens SET tenant_id = ?, user_id = ?, token_sha256 = ?, "
				"name = ?, role = ?, expires_ms = ?",
				tp, 5, 0);
	} else if (t) {
		evcs_db_txn_add_platform(t,
					 "INSERT INTO api_users SET tenant_id = NULL, username = ?, "
					 "role = ?, display_name = ? ON DUPLICATE KEY UPDATE id = "
					 "LAST_INSERT_ID(id)",
					 up, 3, 0);
		evcs_db_txn_add_platform(t, "SELECT id FROM api_users WHERE tenant_id IS NULL AND id = ?",
					 (evcs_db_param_t[]){EVCS_DB_REFID(0)}, 1,
					 EVCS_DB_REQUIRE_ROW);
		evcs_db_txn_add_platform(t,
					 "INSERT INTO api_tokens SET tenant_id = NULL, user_id = ?, "
					 "token_sha256 = ?, name = ?, role = ?, expires_ms = ?",
					 tp, 5, 0);
	}
	if (t) {
		json_t *d = json_pack("{s:s, s:s}", "username", user, "role", role_name(role));
		api_txn_audit(c, t, "token.create", "token", EVCS_DB_REFID(2), d);
		json_decref(d);
	}
	api_txn_submit(c, t, token_cb);
}

static void revoke_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		      void *ud)
{
	api_ctx_t *c = ud;
	if (!api_db_begin(c, status, errmsg))
		return;
	api_reply_json(c, 204, NULL);
}

void api_op_token_revoke(api_ctx_t *c)
{
	int64_t id = api_param_id(c, "token_id");
	if (!id)
		return;
	char oid[24];
	snprintf(oid, sizeof oid, "%lld", (long long)id);
	evcs_db_txn_t *t = evcs_db_txn_new(c->core->db);
	if (t) {
		evcs_db_txn_add(t, c->tenant,
				"UPDATE api_tokens SET revoked_ms = COALESCE(revoked_ms, ?) WHERE "
				"tenant_id = ? AND id = ?",
				(evcs_db_param_t[]){EVCS_DB_INT(api_now_ms()), EVCS_DB_INT(id)}, 2, 0);
		evcs_db_txn_add(t, c->tenant, "SELECT id FROM api_tokens WHERE tenant_id = ? AND id = ?",
				(evcs_db_param_t[]){EVCS_DB_INT(id)}, 1, EVCS_DB_REQUIRE_ROW);
		api_txn_audit(c, t, "token.revoke", "token", EVCS_DB_STR(oid), NULL);
	}
	api_txn_submit(c, t, revoke_cb);
}

/* ---- dashboard ---------------------------------------------------------------------------- */
struct dash {
	int64_t now, day0, month0;
	char tz[EVCS_TZ_NAME_MAX + 8];
};

static int64_t cell(const evcs_db_result_t *r, size_t row, unsigned col)
{
	int64_t v = 0;
	evcs_db_cell_i64(r, row, col, &v);
	return v;
}

static void dash_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		    void *ud)
{
	api_ctx_t *c = ud;
	if (!api_db_begin(c, status, errmsg))
		return;
	struct dash *d = c->op;
	json_t *o = json_object();
	json_object_set_new(o, "at_ms", json_integer(d->now));
	json_object_set_new(o, "timezone", json_string(d->tz));
	json_object_set_new(o, "day_start_ms", json_integer(d->day0));
	json_object_set_new(o, "month_start_ms", json_integer(d->month0));
	int64_t total = cell(&res[0], 0, 0), online = cell(&res[0], 0, 1);
	json_object_set_new(o, "piles",
			    json_pack("{s:I, s:I, s:I, s:I, s:I}", "total", (json_int_t)total,
				      "online", (json_int_t)online, "offline",
				      (json_int_t)(total - online), "charging",
				      (json_int_t)cell(&res[1], 0, 0), "faulted",
				      (json_int_t)cell(&res[1], 0, 1)));
	for (int k = 0; k < 2; k++)
		json_object_set_new(o, k ? "month" : "today",
				    json_pack("{s:I, s:I, s:I}", "sessions",
					      (json_int_t)cell(&res[2 + k], 0, 0), "energy_kwh",
					      (json_int_t)cell(&res[2 + k], 0, 1), "revenue",
					      (json_int_t)cell(&res[2 + k], 0, 2)));
	json_object_set_new(o, "active_sessions", json_integer(cell(&res[4], 0, 0)));
	json_t *st = json_array();
	int64_t span = d->now - d->day0 > 0 ? d->now - d->day0 : 1;
	for (size_t i = 0; i < res[5].nrows; i++) {
		int64_t guns = cell(&res[5], i, 2), busy = cell(&res[5], i, 3);
		/* basis points of gun-time spent charging since local midnight */
		int64_t bp = guns ? (busy * 10000) / (guns * span) : 0;
		if (bp > 10000)
			bp = 10000;
		json_t *s = json_pack("{s:I, s:s, s:I, s:I, s:I, s:I, s:I}", "station_id",
				      (json_int_t)cell(&res[5], i, 0), "name",
				      evcs_db_cell(&res[5], i, 1), "connectors", (json_int_t)guns,
				      "charging_ms_today", (json_int_t)busy, "utilisation_bp",
				      (json_int_t)bp, "energy_kwh_today",
				      (json_int_t)cell(&res[5], i, 4), "revenue_today",
				      (json_int_t)cell(&res[5], i, 5));
		json_array_append_new(st, s);
	}
	json_object_set_new(o, "stations", st);
	api_reply_json(c, 200, o);
}

/* days since 1970-01-01 of a civil date (Howard Hinnant's algorithm) */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void api_op_dashboard(api_ctx_t *c)
{
	struct dash *d = calloc(1, sizeof *d);
	if (!d) {
		api_error(c, 503, "unavailable", NULL, "out of memory");
		return;
	}
	c->op = d;
	c->op_free = free;
	const char *at = evcs_http_req_query(c->req, "at_ms");
	d->now = api_now_ms();
	if (at) {
		char *end;
		long long v = strtoll(at, &end, 10);
		if (!*at || *end || v <= 0 || v > 32503680000000LL) {
			api_error(c, 400, "invalid", "at_ms", "at_ms must be unix milliseconds");
			return;
		}
		d->now = v;
	}
	/* today and this month start at the tenant's local midnight (its IANA zone, so a
	 * 23- or 25-hour DST day starts where its wall clock says) */
	const evcs_tz_t *z = evcs_core_tenant_tz(c->core, c->tenant);
	snprintf(d->tz, sizeof d->tz, "%s", evcs_tz_name(z));
	int64_t now_s = d->now / 1000;
	int64_t local = now_s + evcs_tz_offset_at(z, now_s);
	int64_t lday = local >= 0 ? local / 86400 : (local - 86399) / 86400;
	d->day0 = evcs_tz_local_to_utc(z, lday * 86400) * 1000;
	time_t ts = (time_t)(lday * 86400);
	struct tm tm;
	gmtime_r(&ts, &tm);
	d->month0 = evcs_tz_local_to_utc(z, days_from_civil(tm.tm_year + 1900, tm.tm_mon + 1, 1) *
						 86400) * 1000;
	evcs_db_txn_t *t = evcs_db_txn_new(c->core->db);
	if (t) {
		evcs_db_txn_add(t, c->tenant,
				"SELECT COUNT(*), COALESCE(SUM(pp.online = 1), 0) FROM piles p LEFT JOIN "
				"pile_presence pp ON pp.pile_id = p.id WHERE p.tenant_id = ?",
				NULL, 0, 0);
		evcs_db_txn_add(t, c->tenant,
				"SELECT COUNT(DISTINCT IF(c.status = 3, c.pile_id, NULL)), "
				"COUNT(DISTINCT IF(c.status = 1, c.pile_id, NULL)) FROM connectors c "
				"WHERE c.tenant_id = ?",
				NULL, 0, 0);
		for (int k = 0; k < 2; k++)
			evcs_db_txn_add(t, c->tenant,
					"SELECT COUNT(*), COALESCE(SUM(total_kwh), 0), "
					"COALESCE(SUM(total_amount), 0) FROM charging_sessions WHERE "
					"tenant_id = ? AND state = 'finished' AND end_ms >= ? AND "
					"end_ms < ?",
					(evcs_db_param_t[]){EVCS_DB_INT(k ? d->month0 : d->day0),
							    EVCS_DB_INT(d->now)},
					2, 0);
		evcs_db_txn_add(t, c->tenant,
				"SELECT COUNT(*) FROM charging_sessions WHERE tenant_id = ? AND state "
				"IN ('starting', 'charging', 'stopping')",
				NULL, 0, 0);
		evcs_db_txn_add(
		    t, c->tenant,
		    "SELECT s.id, s.name, (SELECT COUNT(*) FROM connectors c JOIN piles p ON p.id = "
		    "c.pile_id WHERE c.tenant_id = s.tenant_id AND p.station_id = s.id), "
		    "(SELECT COALESCE(SUM(LEAST(COALESCE(cs.end_ms, ?), ?) - GREATEST(cs.start_ms, "
		    "?)), 0) FROM charging_sessions cs WHERE cs.tenant_id = s.tenant_id AND "
		    "cs.station_id = s.id AND cs.start_ms IS NOT NULL AND cs.start_ms < ? AND "
		    "(cs.end_ms IS NULL OR cs.end_ms > ?)), "
		    "(SELECT COALESCE(SUM(cs.total_kwh), 0) FROM charging_sessions cs WHERE "
		    "cs.tenant_id = s.tenant_id AND cs.station_id = s.id AND cs.state = 'finished' "
		    "AND cs.end_ms >= ? AND cs.end_ms < ?), "
		    "(SELECT COALESCE(SUM(cs.total_amount), 0) FROM charging_sessions cs WHERE "
		    "cs.tenant_id = s.tenant_id AND cs.station_id = s.id AND cs.state = 'finished' "
		    "AND cs.end_ms >= ? AND cs.end_ms < ?) "
		    "FROM stations s WHERE s.tenant_id = ? ORDER BY s.id LIMIT 500",
		    (evcs_db_param_t[]){EVCS_DB_INT(d->now), EVCS_DB_INT(d->now), EVCS_DB_INT(d->day0),
					EVCS_DB_INT(d->now), EVCS_DB_INT(d->day0), EVCS_DB_INT(d->day0),
					EVCS_DB_INT(d->now), EVCS_DB_INT(d->day0), EVCS_DB_INT(d->now)},
		    9, 0);
	}
	api_txn_submit(c, t, dash_cb);
}
