/*
 * store_sessions.c: the JSON storage operations about a session's state between open and close
 * (store_ops.h has the shared contract): session.started, session.stop_requested and
 * session.stopped (closed without a record). Opening, authorising, metering and closing a
 * session are the typed session model (session.c, session_close.c: api->session_*); ABI 2
 * removed the JSON session.create, session.authorize, meter.sample and txn.record, which
 * carried one protocol's record layout and PIN forms.
 */
#include "store_ops.h"



/* ---- sessions -------------------------------------------------------------------------- */

static int valid_trade(const char *t) { return valid_identity(t); }



static void op_session_started(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant, pile_id, result;
	const char *trade;
	REQ_INT(args, "tenant_id", tenant);
	REQ_INT(args, "pile_id", pile_id);
	REQ_STR(args, "trade_no", trade);
	REQ_INT(args, "result", result);
	int64_t reason = opt_int(args, "fail_reason", 0);
	/* a failure the pile may still follow with a success (the protocol plugin knows which of
	 * its codes those are) keeps the session starting */
	int64_t may_retry = result != 1 && opt_int(args, "may_still_start", 0) ? 1 : 0;
	int64_t ts = opt_int(args, "ts_ms", now_ms());
	struct simple_op *so = simple_new(s, call, args, "session.started", "updated");
	if (!so)
		return;
	evcs_db_txn_t *t = evcs_db_txn_new(so->o.core->db);
	evcs_db_param_t p[] = {EVCS_DB_INT(result), EVCS_DB_INT(may_retry), EVCS_DB_INT(result),
			       EVCS_DB_INT(ts),     EVCS_DB_INT(result), EVCS_DB_INT(reason),
			       EVCS_DB_INT(pile_id), EVCS_DB_STR(trade)};
	evcs_db_txn_add(t, tenant,
			"UPDATE charging_sessions SET state = CASE WHEN ? = 1 THEN 'charging' WHEN ? = 1 THEN "
			"state ELSE 'failed' END, start_ms = IF(? = 1, ?, start_ms), "
			"start_fail_reason = IF(? = 1, NULL, ?) "
			"WHERE tenant_id = ? AND pile_id = ? AND trade_no = ? AND state IN ('pending','starting')",
			p, 8, 0);
	int64_t gun = opt_int(args, "gun", 0);
	if (result == 1 && gun >= 1 && gun <= 99) {
		evcs_db_param_t c[] = {EVCS_DB_INT(pile_id), EVCS_DB_STR(trade), EVCS_DB_INT(pile_id),
				       EVCS_DB_INT(gun)};
		evcs_db_txn_add(t, tenant,
				"UPDATE connectors SET current_session_id = (SELECT s.id FROM charging_sessions s "
				"WHERE s.tenant_id = ? AND s.pile_id = ? AND s.trade_no = ?) "
				"WHERE tenant_id = ? AND pile_id = ? AND gun_no = ?",
				c, 4, 0);
	}
	simple_submit_rc(so, evcs_db_txn_submit(t, 0, simple_done, so));
}

static void op_session_stop_requested(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant, pile_id, gun;
	REQ_INT(args, "tenant_id", tenant);
	REQ_INT(args, "pile_id", pile_id);
	REQ_INT(args, "gun", gun);
	const char *trade = opt_str(args, "trade_no");
	const char *by = opt_str(args, "by");
	struct simple_op *so = simple_new(s, call, args, "session.stop_requested", "updated");
	if (!so)
		return;
	int rc;
	if (trade && valid_trade(trade)) {
		evcs_db_param_t p[] = {EVCS_DB_STR(by ? by : ""), EVCS_DB_INT(pile_id), EVCS_DB_STR(trade)};
		rc = evcs_db_query(so->o.core->db, tenant,
				   "UPDATE charging_sessions SET state = 'stopping', stop_requested_by = LEFT(?, 64) "
				   "WHERE tenant_id = ? AND pile_id = ? AND trade_no = ? "
				   "AND state IN ('starting','charging')",
				   p, 3, EVCS_DB_IDEMPOTENT, simple_done, so);
	} else {
		evcs_db_param_t p[] = {EVCS_DB_STR(by ? by : ""), EVCS_DB_INT(pile_id), EVCS_DB_INT(gun)};
		rc = evcs_db_query(so->o.core->db, tenant,
				   "UPDATE charging_sessions SET state = 'stopping', stop_requested_by = LEFT(?, 64) "
				   "WHERE tenant_id = ? AND pile_id = ? AND gun_no = ? "
				   "AND state IN ('starting','charging')",
				   p, 3, EVCS_DB_IDEMPOTENT, simple_done, so);
	}
	simple_submit_rc(so, rc);
}

static void op_session_stopped(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant, pile_id;
	const char *trade;
	REQ_INT(args, "tenant_id", tenant);
	REQ_INT(args, "pile_id", pile_id);
	REQ_STR(args, "trade_no", trade);
	const char *state = opt_str(args, "state");
	if (!state)
		state = "abnormal";
	if (strcmp(state, "abnormal") != 0 && strcmp(state, "failed") != 0) {
		evcs_store_fail(call, EVCS_EINVAL, "state", "abnormal or failed expected");
		return;
	}
	int failed = strcmp(state, "failed") == 0;
	int64_t reason = opt_int(args, "stop_reason", -1);
	const char *text = opt_str(args, "stop_reason_text");
	struct simple_op *so = simple_new(s, call, args, "session.stopped", "updated");
	if (!so)
		return;
	evcs_db_txn_t *t = evcs_db_txn_new(so->o.core->db);
	evcs_db_param_t p[] = {EVCS_DB_STR(state),
			       reason >= 0 && reason <= 65535 ? EVCS_DB_INT(reason) : EVCS_DB_NULL,
			       EVCS_DB_STR(text ? text : ""),
			       EVCS_DB_INT(opt_int(args, "ts_ms", now_ms())),
			       EVCS_DB_INT(pile_id),
			       EVCS_DB_STR(trade)};
	evcs_db_txn_add(t, tenant,
			failed ? "UPDATE charging_sessions SET state = ?, stop_reason = ?, stop_reason_text = "
				 "LEFT(?, 128), end_ms = ? WHERE tenant_id = ? AND pile_id = ? AND trade_no = ? "
				 "AND state IN ('pending','starting')"
			       : "UPDATE charging_sessions SET state = ?, stop_reason = ?, stop_reason_text = "
				 "LEFT(?, 128), end_ms = ? WHERE tenant_id = ? AND pile_id = ? AND trade_no = ? "
				 "AND state IN ('pending','starting','charging','stopping')",
			p, 6, 0);
	evcs_db_param_t c[] = {EVCS_DB_INT(pile_id), EVCS_DB_INT(pile_id), EVCS_DB_STR(trade)};
	evcs_db_txn_add(t, tenant,
			"UPDATE connectors SET current_session_id = NULL WHERE tenant_id = ? AND pile_id = ? "
			"AND current_session_id = (SELECT s.id FROM charging_sessions s WHERE s.tenant_id = ? "
			"AND s.pile_id = ? AND s.trade_no = ?)",
			c, 3, 0);
	simple_submit_rc(so, evcs_db_txn_submit(t, 0, simple_done, so));
}



void store_register_sessions(evcs_store_t *s)
{
	static const struct {
		const char *name;
		evcs_store_op_fn fn;
	} ops[] = {
	    {"session.started", op_session_started},
	    {"session.stop_requested", op_session_stop_requested},
	    {"session.stopped", op_session_stopped},
	};
	for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
		if (evcs_store_register(s, ops[i].name, ops[i].fn) != EVCS_OK)
			evcs_err(COMP, "cannot register storage operation %s", ops[i].name);
}
