/*
 * store_alarms.c: the alarm storage operations (alarm.raise, alarm.clear; store_ops.h has the
 * shared contract) and the bus publication of raised/cleared alarms that the session paths use
 * too. Alarms are idempotent on the open alarm key (pile, gun, code) while not cleared.
 */
#include "store_ops.h"

/* ---- alarms ------------------------------------------------------------------------------ */

void store_publish_alarm(evcs_core_t *core, int raise, int64_t tenant, const char *pile, int gun,
			  const char *code, const char *severity, const char *message,
			  int64_t alarm_id)
{
	if (!core->bus)
		return;
	evcs_field_t f[] = {EVCS_FS("code", code), EVCS_FI("alarm_id", alarm_id),
			    EVCS_FS("severity", severity ? severity : ""),
			    EVCS_FS("message", message ? message : "")};
	evcs_event_t ev = {.size = sizeof ev,
			   .type = raise ? EVCS_EV_ALARM_RAISED : EVCS_EV_ALARM_CLEARED,
			   .tenant_id = tenant, .pile = pile, .gun = gun, .fields = f,
			   .nfields = raise ? 4 : 2};
	evcs_bus_publish(core->bus, &ev, COMP);
}

static const char *valid_severity(const char *s)
{
	static const char *const sev[] = {"info", "warning", "major", "critical", NULL};
	for (int i = 0; s && sev[i]; i++)
		if (strcmp(s, sev[i]) == 0)
			return sev[i];
	return NULL;
}

static void alarm_raise_done(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg,
			     void *ud)
{
	struct op *o = ud;
	if (st != EVCS_OK) {
		fail_db(o->call, st, "alarm.raise", errmsg);
		op_free(o);
		return;
	}
	int fresh = res[0].affected > 0;
	json_t *r = json_pack("{s:b}", "raised", fresh);
	if (fresh) {
		json_object_set_new(r, "alarm_id", json_integer((json_int_t)res[0].insert_id));
		store_publish_alarm(o->core, 1, o->tenant, opt_str(o->args, "pile"),
			      (int)opt_int(o->args, "gun", 0), opt_str(o->args, "code"),
			      opt_str(o->args, "severity") ? opt_str(o->args, "severity") : "warning",
			      opt_str(o->args, "message"), (int64_t)res[0].insert_id);
	}
	evcs_store_finish(o->call, EVCS_OK, r);
	op_free(o);
}

static void op_alarm_raise(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant;
	const char *code;
	REQ_INT(args, "tenant_id", tenant);
	REQ_STR(args, "code", code);
	const char *sev = opt_str(args, "severity");
	if (sev && !valid_severity(sev)) {
		evcs_store_fail(call, EVCS_EINVAL, "severity", "info, warning, major or critical");
		return;
	}
	json_t *det = json_object_get(args, "details");
	char *dj = det && !json_is_null(det) ? json_dumps(det, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	struct op *o = op_new(s, call, args, "alarm.raise");
	if (!o) {
		free(dj);
		return;
	}
	o->tenant = tenant;
	const char *msg = opt_str(args, "message");
	evcs_db_param_t p[] = {opt_id(args, "pile_id"),
			       EVCS_DB_INT(opt_int(args, "gun", 0) & 0xFF),
			       opt_id(args, "session_id"),
			       EVCS_DB_STR(code),
			       EVCS_DB_STR(sev ? sev : "warning"),
			       EVCS_DB_STR(msg ? msg : ""),
			       dj ? EVCS_DB_STR(dj) : EVCS_DB_NULL,
			       EVCS_DB_STR(evcs_store_caller(call))};
	int rc = evcs_db_query(o->core->db, tenant,
			       "INSERT IGNORE INTO alarms SET tenant_id = ?, pile_id = ?, gun_no = ?, session_id = ?, "
			       "code = LEFT(?, 64), severity = ?, message = LEFT(?, 512), details = ?, source = LEFT(?, 32)",
			       p, 8, 0, alarm_raise_done, o);
	free(dj);
	if (rc != EVCS_OK) {
		fail_submit(call, rc, "alarm.raise");
		op_free(o);
	}
}

static void alarm_clear_done(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg,
			     void *ud)
{
	struct op *o = ud;
	if (st != EVCS_OK) {
		fail_db(o->call, st, "alarm.clear", errmsg);
		op_free(o);
		return;
	}
	if (res[0].affected > 0)
		store_publish_alarm(o->core, 0, o->tenant, opt_str(o->args, "pile"),
			      (int)opt_int(o->args, "gun", 0), opt_str(o->args, "code"), NULL, NULL, 0);
	evcs_store_finish(o->call, EVCS_OK, json_pack("{s:I}", "cleared", (json_int_t)res[0].affected));
	op_free(o);
}

static void op_alarm_clear(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant;
	const char *code;
	REQ_INT(args, "tenant_id", tenant);
	REQ_STR(args, "code", code);
	struct op *o = op_new(s, call, args, "alarm.clear");
	if (!o)
		return;
	o->tenant = tenant;
	evcs_db_param_t p[] = {EVCS_DB_INT(now_ms()), EVCS_DB_INT(opt_int(args, "pile_id", 0)),
			       EVCS_DB_INT(opt_int(args, "gun", 0)), EVCS_DB_STR(code)};
	int rc = evcs_db_query(o->core->db, tenant,
			       "UPDATE alarms SET state = 'cleared', cleared_ms = ? WHERE tenant_id = ? "
			       "AND IFNULL(pile_id, 0) = ? AND gun_no = ? AND code = ? AND state <> 'cleared'",
			       p, 4, EVCS_DB_IDEMPOTENT, alarm_clear_done, o);
	if (rc != EVCS_OK) {
		fail_submit(call, rc, "alarm.clear");
		op_free(o);
	}
}


void store_register_alarms(evcs_store_t *s)
{
	static const struct {
		const char *name;
		evcs_store_op_fn fn;
	} ops[] = {
	    {"alarm.raise", op_alarm_raise},
	    {"alarm.clear", op_alarm_clear},
	};
	for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
		if (evcs_store_register(s, ops[i].name, ops[i].fn) != EVCS_OK)
			evcs_err(COMP, "cannot register storage operation %s", ops[i].name);
}
