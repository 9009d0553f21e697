/*
 * store_sessions.c: the JSON storage operations about charging sessions (store_ops.h has the
 * shared contract): session.create, session.authorize, session.started, session.stop_requested,
 * session.stopped, meter.sample and txn.record (session + record + bill in one transaction,
 * answered only after COMMIT; idempotent on (pile, trade number)). Pricing is billing.c's, the
 * same as the typed session model's (session.c). These are the ABI 1 path; ABI 2 plugins use
 * api->session_* instead.
 */
#include "store_ops.h"

#include <openssl/crypto.h>

static int sample_add(evcs_core_t *core, json_t *a, int64_t session_id)
{
	evcs_db_param_t row[] = {EVCS_DB_INT(session_id),
				 EVCS_DB_INT(opt_int(a, "ts_ms", now_ms())),
				 EVCS_DB_INT(opt_int(a, "kwh", 0)),
				 EVCS_DB_INT(opt_int(a, "amount", 0)),
				 EVCS_DB_INT(opt_int(a, "voltage_dv", 0)),
				 EVCS_DB_INT(opt_int(a, "current_da", 0)),
				 EVCS_DB_INT(opt_int(a, "soc", 0)),
				 EVCS_DB_INT(opt_int(a, "gun_temp_c", 0)),
				 EVCS_DB_INT(opt_int(a, "batt_max_temp_c", 0)),
				 EVCS_DB_INT(opt_int(a, "remaining_min", 0))};
	int rc = evcs_db_batch_add(OPS(core)->samples, row);
	return rc == EVCS_EBUSY ? EVCS_OK : rc;
}

/* Live figures on the session row (what an app polls while charging). Fire and forget: the
 * time series row is the record; a lost live update is overwritten by the next sample. */
static void live_done(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	if (st != EVCS_OK && st != EVCS_EUNAVAIL)
		evcs_log(EVCS_LOG_WARNING, COMP, 0, NULL, "live session update: %s", errmsg);
}

static void sample_live(evcs_core_t *core, int64_t tenant, json_t *a, int64_t session_id)
{
	int64_t soc = opt_int(a, "soc", -1);
	evcs_db_param_t p[] = {EVCS_DB_INT(opt_int(a, "kwh", 0)), EVCS_DB_INT(opt_int(a, "amount", 0)),
			       soc >= 0 && soc <= 255 ? EVCS_DB_INT(soc) : EVCS_DB_NULL,
			       EVCS_DB_INT(opt_int(a, "ts_ms", now_ms())), EVCS_DB_INT(session_id)};
	evcs_db_query(core->db, tenant,
		      "UPDATE charging_sessions SET live_kwh = ?, live_amount = ?, live_soc = ?, live_ms = ? "
		      "WHERE tenant_id = ? AND id = ? AND state IN ('starting','charging','stopping')",
		      p, 5, EVCS_DB_IDEMPOTENT, live_done, NULL);
}

static void sample_lookup_done(int st, const evcs_db_result_t *res, size_t nres,
			       const char *errmsg, void *ud)
{
	struct op *o = ud;
	if (st != EVCS_OK) {
		fail_db(o->call, st, "meter.sample", errmsg);
	} else if (res[0].nrows == 0) {
		evcs_store_finish(o->call, EVCS_OK,
				  json_pack("{s:b, s:s}", "queued", 0, "reason", "no_session"));
	} else {
		int64_t sid = cell_i64(&res[0], 0, 0, 0);
		int rc = sample_add(o->core, o->args, sid);
		if (rc == EVCS_OK) {
			sample_live(o->core, o->tenant, o->args, sid);
			evcs_store_finish(o->call, EVCS_OK,
					  json_pack("{s:b, s:I}", "queued", 1, "session_id", (json_int_t)sid));
		} else {
			evcs_store_fail(o->call, map_db_status(rc), NULL, "cannot queue");
		}
	}
	op_free(o);
}

static void op_meter_sample(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant, pile_id;
	REQ_INT(args, "tenant_id", tenant);
	REQ_INT(args, "pile_id", pile_id);
	evcs_core_t *core = evcs_store_core(s);
	if (store_ensure_batches(core) < 0) {
		evcs_store_fail(call, EVCS_ENOMEM, NULL, "cannot create the batch");
		return;
	}
	int64_t sid = opt_int(args, "session_id", 0);
	if (sid > 0) {
		int rc = sample_add(core, args, sid);
		if (rc != EVCS_OK) {
			evcs_store_fail(call, map_db_status(rc), NULL, "cannot queue");
			return;
		}
		sample_live(core, tenant, args, sid);
		evcs_store_finish(call, EVCS_OK,
				  json_pack("{s:b, s:I}", "queued", 1, "session_id", (json_int_t)sid));
		return;
	}
	const char *trade;
	REQ_STR(args, "trade_no", trade);
	struct op *o = op_new(s, call, args, "meter.sample");
	if (!o)
		return;
	o->tenant = tenant;
	evcs_db_param_t p[] = {EVCS_DB_INT(pile_id), EVCS_DB_STR(trade)};
	int rc = evcs_db_query(core->db, tenant,
			       "SELECT id FROM charging_sessions WHERE tenant_id = ? AND pile_id = ? AND trade_no = ?",
			       p, 2, 0, sample_lookup_done, o);
	if (rc != EVCS_OK) {
		fail_submit(call, rc, "meter.sample");
		op_free(o);
	}
}

/* ---- sessions -------------------------------------------------------------------------- */

static int valid_trade(const char *t) { return valid_identity(t); }

static const char *const start_modes[] = {"app", "card", "offline_card", "vin", "operator",
					  "partner", NULL};

static int valid_start_mode(const char *m)
{
	for (int i = 0; m && start_modes[i]; i++)
		if (strcmp(m, start_modes[i]) == 0)
			return 1;
	return 0;
}

static void session_create_done(int st, const evcs_db_result_t *res, size_t nres,
				const char *errmsg, void *ud)
{
	struct op *o = ud;
	if (st != EVCS_OK) {
		fail_db(o->call, st, "session.create", errmsg);
	} else {
		evcs_store_finish(o->call, EVCS_OK,
				  json_pack("{s:I, s:b}", "session_id", (json_int_t)res[0].insert_id,
					    "created", res[0].affected == 1));
	}
	op_free(o);
}

static void op_session_create(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant, pile_id, gun;
	const char *trade, *mode;
	REQ_INT(args, "tenant_id", tenant);
	REQ_INT(args, "pile_id", pile_id);
	REQ_INT(args, "gun", gun);
	REQ_STR(args, "trade_no", trade);
	REQ_STR(args, "start_mode", mode);
	if (!valid_trade(trade)) {
		evcs_store_fail(call, EVCS_EINVAL, "trade_no", "1..64 bytes expected");
		return;
	}
	if (!valid_start_mode(mode)) {
		evcs_store_fail(call, EVCS_EINVAL, "start_mode",
				"app, card, offline_card, vin, operator or partner expected");
		return;
	}
	if (gun < 1 || gun > 99) {
		evcs_store_fail(call, EVCS_EINVAL, "gun", "1..99 expected");
		return;
	}
	evcs_tariff_pick_t tp = {0};
	json_t *tj = json_object_get(args, "tariff");
	if (tj && !json_is_null(tj) && evcs_tariff_parse(tj, &tp) < 0) {
		evcs_store_fail(call, EVCS_EINVAL, "tariff", "not a tariff model");
		return;
	}
	/* the snapshot travels in bill until the session is priced (the row itself is immutable
	 * once referenced, but a script-made model has no row) */
	char *bill = NULL;
	if (tp.found) {
		json_t *b = json_pack("{s:o}", "tariff_snapshot", evcs_tariff_json(&tp));
		bill = json_dumps(b, JSON_COMPACT);
		json_decref(b);
	}
	const char *pcard = opt_str(args, "physical_card"), *vin = opt_str(args, "vin");
	struct op *o = op_new(s, call, args, "session.create");
	if (!o) {
		free(bill);
		return;
	}
	evcs_db_param_t p[] = {EVCS_DB_INT(pile_id),
			       EVCS_DB_INT(pile_id),
			       EVCS_DB_INT(pile_id),
			       EVCS_DB_INT(gun),
			       EVCS_DB_INT(gun),
			       EVCS_DB_STR(trade),
			       EVCS_DB_STR(mode),
			       opt_id(args, "driver_id"),
			       opt_id(args, "card_id"),
			       pcard && is_hex_upper(pcard, 16) ? EVCS_DB_STR(pcard) : EVCS_DB_NULL,
			       vin && *vin ? EVCS_DB_STR(vin) : EVCS_DB_NULL,
			       opt_id(args, "operator_user_id"),
			       opt_id(args, "partner_id"),
			       opt_str(args, "partner_seq") ? EVCS_DB_STR(opt_str(args, "partner_seq"))
							    : EVCS_DB_NULL,
			       tp.id > 0 ? EVCS_DB_INT(tp.id) : EVCS_DB_NULL,
			       bill ? EVCS_DB_STR(bill) : EVCS_DB_NULL,
			       EVCS_DB_INT(opt_int(args, "requested_ms", now_ms()))};
	int rc = evcs_db_query(
	    o->core->db, tenant,
	    "INSERT INTO charging_sessions SET tenant_id = ?, "
	    "station_id = (SELECT p.station_id FROM piles p WHERE p.tenant_id = ? AND p.id = ?), "
	    "pile_id = ?, "
	    "connector_id = (SELECT c.id FROM connectors c WHERE c.tenant_id = ? AND c.pile_id = ? AND c.gun_no = ?), "
	    "gun_no = ?, trade_no = ?, state = 'starting', start_mode = ?, driver_id = ?, card_id = ?, "
	    "physical_card = ?, vin = LEFT(?, 17), operator_user_id = ?, partner_id = ?, partner_seq = ?, "
	    "tariff_id = ?, bill = ?, requested_ms = ? "
	    /* the row may exist already: a retry, or an order recorded 'pending' by its requester
	     * that the protocol plugin now sends; that one moves on to
	     * starting and takes the tariff it starts under */
	    "ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id), "
	    "state = IF(state = 'pending', 'starting', state), "
	    "tariff_id = COALESCE(tariff_id, VALUES(tariff_id)), bill = COALESCE(bill, VALUES(bill))",
	    p, 17, EVCS_DB_IDEMPOTENT, session_create_done, o);
	free(bill);
	if (rc != EVCS_OK) {
		fail_submit(call, rc, "session.create");
		op_free(o);
	}
}

/* 0x32 failure reasons (ykc.md §4 0x32); the operation is protocol-agnostic but these codes are
 * the most detailed vocabulary any supported protocol has, so they are the shared one. */
enum {
	AUTH_NO_ACCOUNT = 1,
	AUTH_FROZEN = 2,
	AUTH_LOW_BALANCE = 3,
	AUTH_PILE_DISABLED = 5,
	AUTH_BAD_PASSWORD = 7,
	AUTH_VIN_UNKNOWN = 9,
};

static void authorize_finish(struct op *o, int ok, int reason, const char *why,
			     const char *logical, int64_t balance, int64_t card_id, int64_t driver_id)
{
	json_t *r = json_pack("{s:b, s:i, s:s}", "authorised", ok, "fail_reason", ok ? 0 : reason,
			      "reason", ok ? "ok" : why);
	json_object_set_new(r, "logical_card", json_string(logical ? logical : "0000000000000000"));
	json_object_set_new(r, "balance", json_integer(balance));
	json_object_set_new(r, "card_id", card_id > 0 ? json_integer(card_id) : json_null());
	json_object_set_new(r, "driver_id", driver_id > 0 ? json_integer(driver_id) : json_null());
	evcs_store_finish(o->call, EVCS_OK, r);
	op_free(o);
}

/* The 16 password bytes a pile sends (password_md5, 32 hex) against the card's stored digest
 * (lower-case hex MD5), in both forms ykc.md §3.7 allows: the middle 16 hex characters as ASCII,
 * or the raw digest. Both are always compared, in constant time. No digest on file: no match. */
static int pin_matches(const char *pin_md5, const char *sent_hex)
{
	unsigned char sent[16], digest[16];
	size_t n = 0, m = 0;
	if (!pin_md5 || strlen(pin_md5) != 32 || !sent_hex || strlen(sent_hex) != 32 ||
	    !OPENSSL_hexstr2buf_ex(sent, sizeof sent, &n, sent_hex, '\0') || n != 16 ||
	    !OPENSSL_hexstr2buf_ex(digest, sizeof digest, &m, pin_md5, '\0') || m != 16)
		return 0;
	int ascii = CRYPTO_memcmp(sent, pin_md5 + 8, 16) == 0;
	int raw = CRYPTO_memcmp(sent, digest, 16) == 0;
	return ascii | raw;
}

/* ISO 3779 alphabet (no I, O, Q), as the vehicles CHECK: anything else cannot be registered */
static int valid_vin(const char *v)
{
	return v && strlen(v) == 17 && strspn(v, "0123456789ABCDEFGHJKLMNPRSTUVWXYZ") == 17;
}

static void authorize_done(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg,
			   void *ud)
{
	struct op *o = ud;
	if (st != EVCS_OK) {
		fail_db(o->call, st, "session.authorize", errmsg);
		op_free(o);
		return;
	}
	const evcs_db_result_t *r = &res[0];
	int vin = opt_int(o->args, "start_mode", 0) == 3;
	if (r->nrows == 0) {
		if (vin)
			authorize_finish(o, 0, AUTH_VIN_UNKNOWN, "vin_unknown", NULL, 0, 0, 0);
		else
			authorize_finish(o, 0, AUTH_NO_ACCOUNT, "unknown_card", NULL, 0, 0, 0);
		return;
	}
	/* c.id, c.logical_no, c.status, c.driver_id, d.status, w.id, w.balance, w.credit_limit,
	 * w.status, pile status, c.pin_md5; a VIN start has the vehicle in the card's columns
	 * (no logical number, no PIN) */
	int64_t card_id = vin ? 0 : cell_i64(r, 0, 0, 0), driver = cell_i64(r, 0, 3, 0);
	const char *logical = evcs_db_cell(r, 0, 1);
	const char *cstatus = evcs_db_cell(r, 0, 2), *dstatus = evcs_db_cell(r, 0, 4);
	const char *wstatus = evcs_db_cell(r, 0, 8), *pstatus = evcs_db_cell(r, 0, 9);
	int64_t wallet = cell_i64(r, 0, 5, 0), balance = cell_i64(r, 0, 6, 0),
		credit = cell_i64(r, 0, 7, 0);
	int64_t min_balance = opt_int(o->args, "min_balance", 1);
	if (!pstatus || strcmp(pstatus, "enabled") != 0)
		authorize_finish(o, 0, AUTH_PILE_DISABLED, "pile_disabled", logical, 0, card_id, driver);
	else if (!cstatus || strcmp(cstatus, "active") != 0 || (dstatus && strcmp(dstatus, "active") != 0))
		authorize_finish(o, 0, AUTH_FROZEN, vin ? "vehicle_blocked" : "card_blocked", logical,
				 balance, card_id, driver);
	/* before the wallet checks, so a wrong PIN learns nothing about the account; a VIN start
	 * has no password to check */
	else if (!vin && opt_int(o->args, "need_password", 0) &&
		 !pin_matches(evcs_db_cell(r, 0, 10), opt_str(o->args, "password_md5")))
		authorize_finish(o, 0, AUTH_BAD_PASSWORD,
				 evcs_db_cell(r, 0, 10) ? "wrong_password" : "no_pin_on_file", logical, balance,
				 card_id, driver);
	else if (wallet <= 0)
		authorize_finish(o, 0, AUTH_NO_ACCOUNT, "no_wallet", logical, 0, card_id, driver);
	else if (wstatus && strcmp(wstatus, "active") != 0)
		authorize_finish(o, 0, AUTH_FROZEN, "wallet_frozen", logical, balance, card_id, driver);
	else if (balance + credit < min_balance)
		authorize_finish(o, 0, AUTH_LOW_BALANCE, "balance_too_low", logical, balance, card_id,
				 driver);
	else
		authorize_finish(o, 1, 0, NULL, logical, balance, card_id, driver);
}

static void op_session_authorize(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant, pile_id, mode;
	REQ_INT(args, "tenant_id", tenant);
	REQ_INT(args, "pile_id", pile_id);
	REQ_INT(args, "start_mode", mode);
	struct op *o = op_new(s, call, args, "session.authorize");
	if (!o)
		return;
	if (mode == 3) {
		/* the plugin passes the VIN in normal order (already un-reversed) */
		const char *vin = opt_str(args, "vin");
		if (!valid_vin(vin)) {
			authorize_finish(o, 0, AUTH_VIN_UNKNOWN, "bad_vin", NULL, 0, 0, 0);
			return;
		}
		evcs_db_param_t p[] = {EVCS_DB_INT(pile_id), EVCS_DB_STR(vin)};
		int rc = evcs_db_query(
		    o->core->db, tenant,
		    "SELECT v.id, NULL, v.status, v.driver_id, d.status, w.id, w.balance, w.credit_limit, "
		    "w.status, (SELECT p.status FROM piles p WHERE p.tenant_id = ? AND p.id = ?), NULL "
		    "FROM vehicles v JOIN drivers d ON d.tenant_id = v.tenant_id AND d.id = v.driver_id "
		    "LEFT JOIN wallets w ON w.tenant_id = v.tenant_id AND w.driver_id = v.driver_id "
		    "WHERE v.tenant_id = ? AND v.vin = ?",
		    p, 2, 0, authorize_done, o);
		if (rc != EVCS_OK) {
			fail_submit(call, rc, "session.authorize");
			op_free(o);
		}
		return;
	}
	const char *card = opt_str(args, "card");
	if (mode != 1 || !card || !is_hex_upper(card, 16)) {
		authorize_finish(o, 0, AUTH_NO_ACCOUNT, mode != 1 ? "unsupported_mode" : "bad_card",
				 NULL, 0, 0, 0);
		return;
	}
	evcs_db_param_t p[] = {EVCS_DB_INT(pile_id), EVCS_DB_STR(card)};
	int rc = evcs_db_query(
	    o->core->db, tenant,
	    "SELECT c.id, c.logical_no, c.status, c.driver_id, d.status, w.id, w.balance, w.credit_limit, "
	    "w.status, (SELECT p.status FROM piles p WHERE p.tenant_id = ? AND p.id = ?), c.pin_md5 "
	    "FROM rfid_cards c LEFT JOIN drivers d ON d.tenant_id = c.tenant_id AND d.id = c.driver_id "
	    "LEFT JOIN wallets w ON w.tenant_id = c.tenant_id AND w.driver_id = c.driver_id "
	    "WHERE c.tenant_id = ? AND c.physical_no = ?",
	    p, 2, 0, authorize_done, o);
	if (rc != EVCS_OK) {
		fail_submit(call, rc, "session.authorize");
		op_free(o);
	}
}

static void op_session_started(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant, pile_id, result;
	const char *trade;
	REQ_INT(args, "tenant_id", tenant);
	REQ_INT(args, "pile_id", pile_id);
	REQ_STR(args, "trade_no", trade);
	REQ_INT(args, "result", result);
	int64_t reason = opt_int(args, "fail_reason", 0);
	int64_t ts = opt_int(args, "ts_ms", now_ms());
	struct simple_op *so = simple_new(s, call, args, "session.started", "updated");
	if (!so)
		return;
	evcs_db_txn_t *t = evcs_db_txn_new(so->o.core->db);
	/* reason 5 (not plugged) keeps the session starting: the pile may still send a success
	 * 0x33 within 60 s of the 0x34 (ykc.md §1.4) */
	evcs_db_param_t p[] = {EVCS_DB_INT(result), EVCS_DB_INT(reason), EVCS_DB_INT(result),
			       EVCS_DB_INT(ts),     EVCS_DB_INT(result), EVCS_DB_INT(reason),
			       EVCS_DB_INT(pile_id), EVCS_DB_STR(trade)};
	evcs_db_txn_add(t, tenant,
			"UPDATE charging_sessions SET state = CASE WHEN ? = 1 THEN 'charging' WHEN ? = 5 THEN "
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

/* ---- txn.record -------------------------------------------------------------------------- */

/* Fields of a record, in transaction_records column order (all integers). */
static const char *const rec_int_fields[] = {
    "sharp_price", "sharp_kwh", "sharp_loss_kwh", "sharp_amount", "peak_price",
    "peak_kwh", "peak_loss_kwh", "peak_amount", "flat_price", "flat_kwh",
    "flat_loss_kwh", "flat_amount", "valley_price", "valley_kwh", "valley_loss_kwh",
    "valley_amount", "meter_start_kwh", "meter_stop_kwh", "total_kwh", "total_loss_kwh",
    "total_amount", "trade_flag", "stop_reason", NULL};
#define REC_NINT 23

struct rec_op {
	struct op o;
	json_t *rec; /* borrowed from args */
	int64_t gun;
	const char *trade;
	int64_t session_id, record_id, alarm_id;
	int64_t total, pile_amount, total_kwh;
	int mismatch;
	int first; /* index of the session statement in the write transaction */
	char alarm_code[64];
};

static void rec_read(struct rec_op *r);

static const char *start_mode_of_flag(int64_t flag)
{
	switch (flag) {
	case 2: return "card";
	case 4: return "offline_card";
	case 5: return "vin";
	default: return "app";
	}
}

static void rec_write_done(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg,
			   void *ud)
{
	struct rec_op *r = ud;
	if (st == EVCS_EEXIST && r->o.attempt < 2) {
		/* a concurrent copy of the same record won the race: it is now a duplicate */
		rec_read(r);
		return;
	}
	if (st != EVCS_OK) {
		fail_db(r->o.call, st, "txn.record", errmsg);
		op_free(&r->o);
		return;
	}
	/* statement `first` is the session insert/update, then the record, then the alarm */
	const evcs_db_result_t *rs = res + r->first;
	if (r->session_id <= 0)
		r->session_id = (int64_t)rs[0].insert_id;
	r->record_id = (int64_t)rs[1].insert_id;
	if (r->mismatch && nres > (size_t)r->first + 2 && rs[2].affected > 0)
		r->alarm_id = (int64_t)rs[2].insert_id;
	json_t *o = json_pack("{s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:b}", "stored", 1, "duplicate", 0,
			      "session_id", (json_int_t)r->session_id, "record_id",
			      (json_int_t)r->record_id, "total_kwh", (json_int_t)r->total_kwh,
			      "total_amount", (json_int_t)r->total, "pile_amount",
			      (json_int_t)r->pile_amount, "mismatch", r->mismatch);
	if (r->alarm_id > 0) {
		json_object_set_new(o, "alarm_id", json_integer(r->alarm_id));
		char msg[160];
		snprintf(msg, sizeof msg, "bill differs from the pile: platform %lld, pile %lld (0.00001 yuan)",
			 (long long)r->total, (long long)r->pile_amount);
		store_publish_alarm(r->o.core, 1, r->o.tenant, opt_str(r->o.args, "pile"), (int)r->gun,
			      r->alarm_code, "warning", msg, r->alarm_id);
	}
	evcs_store_finish(r->o.call, EVCS_OK, o);
	op_free(&r->o);
}

static void rec_conflict_done(int st, const evcs_db_result_t *res, size_t nres,
			      const char *errmsg, void *ud)
{
	struct rec_op *r = ud;
	if (st != EVCS_OK) {
		fail_db(r->o.call, st, "txn.record", errmsg);
		op_free(&r->o);
		return;
	}
	int64_t alarm_id = res[0].affected > 0 ? (int64_t)res[0].insert_id : 0;
	evcs_log(EVCS_LOG_WARNING, COMP, r->o.tenant, opt_str(r->o.args, "pile"),
		 "record %s resent with different content: stored copy kept, conflict %llu", r->trade,
		 (unsigned long long)res[1].insert_id);
	if (alarm_id)
		store_publish_alarm(r->o.core, 1, r->o.tenant, opt_str(r->o.args, "pile"), (int)r->gun,
			      r->alarm_code, "major", "transaction record resent with different content",
			      alarm_id);
	json_t *o = json_pack("{s:b, s:b, s:b, s:I, s:I}", "stored", 1, "duplicate", 1, "conflict", 1,
			      "session_id", (json_int_t)r->session_id, "record_id",
			      (json_int_t)r->record_id);
	evcs_store_finish(r->o.call, EVCS_OK, o);
	op_free(&r->o);
}

static void rec_duplicate(struct rec_op *r, const evcs_db_result_t *R0)
{
	r->record_id = cell_i64(R0, 0, 0, 0);
	r->session_id = cell_i64(R0, 0, 1, 0);
	const char *stored_raw = evcs_db_cell(R0, 0, 2);
	const char *raw = opt_str(r->o.args, "raw_hex");
	if (!raw || !stored_raw || strcmp(raw, stored_raw) == 0) {
		json_t *o = json_pack("{s:b, s:b, s:I, s:I}", "stored", 1, "duplicate", 1, "session_id",
				      (json_int_t)r->session_id, "record_id", (json_int_t)r->record_id);
		evcs_store_finish(r->o.call, EVCS_OK, o);
		op_free(&r->o);
		return;
	}
	json_t *diff = json_object();
	for (int i = 0; rec_int_fields[i]; i++) {
		int64_t was = cell_i64(R0, 0, 3 + (unsigned)i, 0);
		int64_t now = opt_int(r->rec, rec_int_fields[i], 0);
		if (was != now)
			json_object_set_new(diff, rec_int_fields[i], json_pack("[I, I]", (json_int_t)was,
									     (json_int_t)now));
	}
	if (json_object_size(diff) == 0)
		json_object_set_new(diff, "raw_hex", json_pack("[s, s]", stored_raw, raw));
	char *dj = json_dumps(diff, JSON_COMPACT);
	json_decref(diff);
	snprintf(r->alarm_code, sizeof r->alarm_code, "record.conflict.%s", r->trade);
	evcs_db_txn_t *t = evcs_db_txn_new(r->o.core->db);
	const char *caller = evcs_store_caller(r->o.call);
	evcs_db_param_t a[] = {EVCS_DB_INT(r->o.pile_id), EVCS_DB_INT(r->gun & 0xFF),
			       r->session_id > 0 ? EVCS_DB_INT(r->session_id) : EVCS_DB_NULL,
			       EVCS_DB_STR(r->alarm_code), EVCS_DB_STR(dj), EVCS_DB_STR(caller)};
	evcs_db_txn_add(t, r->o.tenant,
			"INSERT IGNORE INTO alarms SET tenant_id = ?, pile_id = ?, gun_no = ?, session_id = ?, "
			"code = ?, severity = 'major', message = 'transaction record resent with different "
			"content; the stored copy is kept', details = ?, source = LEFT(?, 32)",
			a, 6, 0);
	const char *peer = opt_str(r->o.args, "peer");
	evcs_db_param_t c[] = {EVCS_DB_INT(r->record_id), EVCS_DB_INT(r->o.pile_id),
			       EVCS_DB_STR(r->trade),     EVCS_DB_STR(raw),
			       EVCS_DB_STR(dj),           EVCS_DB_REFID(0),
			       EVCS_DB_STR(peer ? peer : "")};
	evcs_db_txn_add(t, r->o.tenant,
			"INSERT INTO record_conflicts SET tenant_id = ?, record_id = ?, pile_id = ?, trade_no = ?, "
			"raw_hex = ?, diff = ?, alarm_id = NULLIF(?, 0), peer = LEFT(?, 64)",
			c, 7, 0);
	free(dj);
	int rc = evcs_db_txn_submit(t, 0, rec_conflict_done, r);
	if (rc != EVCS_OK) {
		fail_submit(r->o.call, rc, "txn.record");
		op_free(&r->o);
	}
}

static void rec_read_done(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg,
			  void *ud)
{
	struct rec_op *r = ud;
	evcs_core_t *core = r->o.core;
	if (st != EVCS_OK) {
		fail_db(r->o.call, st, "txn.record", errmsg);
		op_free(&r->o);
		return;
	}
	const evcs_db_result_t *R0 = &res[0], *R1 = &res[1], *R2 = &res[2];
	if (R2->nrows == 0) {
		evcs_store_fail(r->o.call, EVCS_EINVAL, "pile_id", "no such pile in this tenant");
		op_free(&r->o);
		return;
	}
	if (R0->nrows > 0) {
		rec_duplicate(r, R0);
		return;
	}
	json_t *rec = r->rec;
	int64_t tenant = r->o.tenant;
	/* the session (when the platform opened it) and the tariff it was started under */
	const char *state = NULL;
	evcs_tariff_pick_t tp = {0};
	r->session_id = 0;
	if (R1->nrows > 0) {
		r->session_id = cell_i64(R1, 0, 0, 0);
		state = evcs_db_cell(R1, 0, 1);
		if (evcs_tariff_from_row(R1, 0, 3, &tp) < 0) {
			const char *bill = evcs_db_cell(R1, 0, 2);
			json_t *b = bill ? json_loads(bill, 0, NULL) : NULL;
			if (b)
				evcs_tariff_parse(json_object_get(b, "tariff_snapshot"), &tp);
			json_decref(b);
		}
	}
	int64_t station = cell_i64(R2, 0, 0, 0);
	const char *serial = evcs_db_cell(R2, 0, 1);
	if (!tp.found) {
		/* an offline session (or one started elsewhere): price with what the pile has now */
		evcs_tariff_pick_t assigned = {0};
		evcs_tariff_from_row(R2, 0, 2, &assigned);
		evcs_tariff_resolve(core, tenant, serial, &assigned, NULL, &tp);
	}
	static const char *const kwh_keys[4] = {"sharp_kwh", "peak_kwh", "flat_kwh", "valley_kwh"};
	static const char *const price_keys[4] = {"sharp_price", "peak_price", "flat_price",
						  "valley_price"};
	evcs_price_in_t pin = {.tenant_id = tenant, .pile = serial, .trade_no = r->trade,
			       .gun = (int)r->gun, .tariff = &tp};
	int64_t pile_prices[4];
	for (int p = 0; p < 4; p++) {
		pin.kwh[p] = opt_int(rec, kwh_keys[p], 0);
		pile_prices[p] = opt_int(rec, price_keys[p], 0);
	}
	pin.pile_prices = pile_prices;
	int64_t start_ms = opt_int(rec, "start_ms", 0), end_ms = opt_int(rec, "end_ms", 0);
	pin.start_ms = start_ms;
	pin.end_ms = end_ms;
	r->pile_amount = opt_int(rec, "total_amount", 0);
	r->total_kwh = opt_int(rec, "total_kwh", 0);
	pin.pile_amount = r->pile_amount;
	/* priced through the tenant's tariff script whenever one is loaded (billing.c) */
	evcs_priced_t pr;
	evcs_billing_price(core, &pin, &pr);
	const int64_t *kwh = pin.kwh, *amounts = pr.amounts;
	int64_t elec = pr.elec, service = pr.service, total = pr.total;
	char *bill_text = pr.bill_text;
	r->total = total;
	r->mismatch = evcs_bill_mismatch(total, r->pile_amount, evcs_billing_tolerance(core));
	snprintf(r->alarm_code, sizeof r->alarm_code, "bill.mismatch.%s", r->trade);

	evcs_db_txn_t *t = evcs_db_txn_new(core->db);
	r->first = 0;
	const char *vin = opt_str(rec, "vin"), *pcard = opt_str(rec, "physical_card");
	const char *srt = opt_str(r->o.args, "stop_reason_text");
	int64_t stop_reason = opt_int(rec, "stop_reason", 0);
	evcs_db_param_t fig[] = {
	    EVCS_DB_INT(end_ms),        EVCS_DB_INT(stop_reason),
	    EVCS_DB_STR(srt ? srt : ""), EVCS_DB_INT(opt_int(rec, "meter_start_kwh", 0)),
	    EVCS_DB_INT(opt_int(rec, "meter_stop_kwh", 0)),
	    EVCS_DB_INT(kwh[0]), EVCS_DB_INT(amounts[0]), EVCS_DB_INT(kwh[1]), EVCS_DB_INT(amounts[1]),
	    EVCS_DB_INT(kwh[2]), EVCS_DB_INT(amounts[2]), EVCS_DB_INT(kwh[3]), EVCS_DB_INT(amounts[3]),
	    EVCS_DB_INT(r->total_kwh),  EVCS_DB_INT(elec), EVCS_DB_INT(service), EVCS_DB_INT(total),
	    EVCS_DB_INT(r->pile_amount), bill_text ? EVCS_DB_STR(bill_text) : EVCS_DB_NULL,
	    EVCS_DB_INT(r->mismatch)};
#define FIG_SQL                                                                                    \
	"end_ms = ?, stop_reason = ?, stop_reason_text = LEFT(?, 128), meter_start = ?, meter_stop = ?, " \
	"sharp_kwh = ?, sharp_amount = ?, peak_kwh = ?, peak_amount = ?, flat_kwh = ?, flat_amount = ?, " \
	"valley_kwh = ?, valley_amount = ?, total_kwh = ?, elec_amount = ?, service_amount = ?, "    \
	"total_amount = ?, pile_amount = ?, bill = ?, amount_mismatch = ?"
	if (r->session_id > 0) {
		if (state && strcmp(state, "pending") == 0) {
			/* the trigger allows finished only from starting onwards */
			evcs_db_param_t sp[] = {EVCS_DB_INT(r->session_id)};
			evcs_db_txn_add(t, tenant,
					"UPDATE charging_sessions SET state = 'starting' WHERE tenant_id = ? AND id = ?",
					sp, 1, 0);
			r->first = 1;
		}
		evcs_db_param_t p[22 + 3];
		p[0] = EVCS_DB_INT(start_ms);
		memcpy(&p[1], fig, sizeof fig);
		p[21] = vin && *vin ? EVCS_DB_STR(vin) : EVCS_DB_NULL;
		p[22] = pcard && is_hex_upper(pcard, 16) && strspn(pcard, "0") != 16 ? EVCS_DB_STR(pcard)
										    : EVCS_DB_NULL;
		p[23] = EVCS_DB_INT(r->session_id);
		evcs_db_txn_add(t, tenant,
				"UPDATE charging_sessions SET state = 'finished', start_ms = COALESCE(start_ms, ?), " FIG_SQL
				", vin = COALESCE(vin, LEFT(?, 17)), physical_card = COALESCE(physical_card, ?) "
				"WHERE tenant_id = ? AND id = ?",
				p, 24, EVCS_DB_REQUIRE_ROW);
	} else {
		evcs_db_param_t p[10 + 20 + 2];
		size_t n = 0;
		p[n++] = station > 0 ? EVCS_DB_INT(station) : EVCS_DB_NULL;
		p[n++] = EVCS_DB_INT(r->o.pile_id);
		p[n++] = EVCS_DB_INT(r->o.pile_id);
		p[n++] = EVCS_DB_INT(r->gun);
		p[n++] = EVCS_DB_INT(r->gun);
		p[n++] = EVCS_DB_STR(r->trade);
		p[n++] = EVCS_DB_STR(start_mode_of_flag(opt_int(rec, "trade_flag", 1)));
		p[n++] = pcard && is_hex_upper(pcard, 16) && strspn(pcard, "0") != 16 ? EVCS_DB_STR(pcard)
										      : EVCS_DB_NULL;
		p[n++] = vin && *vin ? EVCS_DB_STR(vin) : EVCS_DB_NULL;
		p[n++] = tp.id > 0 ? EVCS_DB_INT(tp.id) : EVCS_DB_NULL;
		p[n++] = EVCS_DB_INT(start_ms ? start_ms : now_ms());
		p[n++] = EVCS_DB_INT(start_ms);
		memcpy(&p[n], fig, sizeof fig);
		n += 20;
		evcs_db_txn_add(t, tenant,
				"INSERT INTO charging_sessions SET tenant_id = ?, station_id = ?, pile_id = ?, "
				"connector_id = (SELECT c.id FROM connectors c WHERE c.tenant_id = ? AND c.pile_id = ? "
				"AND c.gun_no = ?), gun_no = ?, trade_no = ?, state = 'finished', start_mode = ?, "
				"physical_card = ?, vin = LEFT(?, 17), tariff_id = ?, requested_ms = ?, start_ms = ?, " FIG_SQL,
				p, n, 0);
	}
	const char *raw = opt_str(r->o.args, "raw_hex");
	const char *peer = opt_str(r->o.args, "peer");
	evcs_db_param_t rp[4 + REC_NINT + 8];
	size_t n = 0;
	rp[n++] = EVCS_DB_INT(r->o.pile_id);
	rp[n++] = r->session_id > 0 ? EVCS_DB_INT(r->session_id) : EVCS_DB_REFID(0);
	rp[n++] = EVCS_DB_STR(r->trade);
	rp[n++] = EVCS_DB_INT(r->gun);
	rp[n++] = start_ms ? EVCS_DB_INT(start_ms) : EVCS_DB_NULL;
	rp[n++] = end_ms ? EVCS_DB_INT(end_ms) : EVCS_DB_NULL;
	for (int i = 0; i < 21; i++)
		rp[n++] = EVCS_DB_INT(opt_int(rec, rec_int_fields[i], 0));
	rp[n++] = EVCS_DB_STR(vin ? vin : "");
	rp[n++] = EVCS_DB_INT(opt_int(rec, "trade_flag", 0));
	int64_t tt = opt_int(rec, "trade_time_ms", 0);
	rp[n++] = tt ? EVCS_DB_INT(tt) : EVCS_DB_NULL;
	rp[n++] = EVCS_DB_INT(stop_reason);
	rp[n++] = EVCS_DB_STR(pcard && is_hex_upper(pcard, 16) ? pcard : "0000000000000000");
	rp[n++] = EVCS_DB_STR(raw ? raw : "");
	rp[n++] = EVCS_DB_STR(peer ? peer : "");
	/* when an earlier statement updated a pending session first, REFID(0) is never used */
	evcs_db_txn_add(t, tenant,
			"INSERT INTO transaction_records SET tenant_id = ?, pile_id = ?, session_id = ?, trade_no = ?, "
			"gun_no = ?, start_ms = ?, end_ms = ?, sharp_price = ?, sharp_kwh = ?, sharp_loss_kwh = ?, "
			"sharp_amount = ?, peak_price = ?, peak_kwh = ?, peak_loss_kwh = ?, peak_amount = ?, "
			"flat_price = ?, flat_kwh = ?, flat_loss_kwh = ?, flat_amount = ?, valley_price = ?, "
			"valley_kwh = ?, valley_loss_kwh = ?, valley_amount = ?, meter_start_kwh = ?, "
			"meter_stop_kwh = ?, total_kwh = ?, total_loss_kwh = ?, total_amount = ?, vin = LEFT(?, 17), "
			"trade_flag = ?, trade_time_ms = ?, stop_reason = ?, physical_card = ?, raw_hex = ?, "
			"peer = LEFT(?, 64)",
			rp, n, 0);
	if (r->mismatch) {
		char msg[160];
		snprintf(msg, sizeof msg, "bill differs from the pile: platform %lld, pile %lld (0.00001 yuan)",
			 (long long)total, (long long)r->pile_amount);
		evcs_db_param_t ap[] = {EVCS_DB_INT(r->o.pile_id), EVCS_DB_INT(r->gun & 0xFF),
					r->session_id > 0 ? EVCS_DB_INT(r->session_id) : EVCS_DB_REFID(0),
					EVCS_DB_STR(r->alarm_code), EVCS_DB_STR(msg),
					EVCS_DB_STR(evcs_store_caller(r->o.call))};
		evcs_db_txn_add(t, tenant,
				"INSERT IGNORE INTO alarms SET tenant_id = ?, pile_id = ?, gun_no = ?, session_id = ?, "
				"code = ?, severity = 'warning', message = ?, source = LEFT(?, 32)",
				ap, 6, 0);
	}
	evcs_db_param_t cp[] = {EVCS_DB_INT(r->o.pile_id), EVCS_DB_INT(r->gun),
				r->session_id > 0 ? EVCS_DB_INT(r->session_id) : EVCS_DB_REFID(0)};
	evcs_db_txn_add(t, tenant,
			"UPDATE connectors SET current_session_id = NULL WHERE tenant_id = ? AND pile_id = ? "
			"AND gun_no = ? AND current_session_id = ?",
			cp, 3, 0);
	free(bill_text);
	r->o.attempt++;
	int rc = evcs_db_txn_submit(t, 0, rec_write_done, r);
	if (rc != EVCS_OK) {
		fail_submit(r->o.call, rc, "txn.record");
		op_free(&r->o);
	}
}

static void rec_read(struct rec_op *r)
{
	evcs_db_txn_t *t = evcs_db_txn_new(r->o.core->db);
	evcs_db_param_t p[] = {EVCS_DB_INT(r->o.pile_id), EVCS_DB_STR(r->trade)};
	evcs_db_txn_add(t, r->o.tenant,
			"SELECT r.id, r.session_id, r.raw_hex, r.sharp_price, r.sharp_kwh, r.sharp_loss_kwh, "
			"r.sharp_amount, r.peak_price, r.peak_kwh, r.peak_loss_kwh, r.peak_amount, r.flat_price, "
			"r.flat_kwh, r.flat_loss_kwh, r.flat_amount, r.valley_price, r.valley_kwh, "
			"r.valley_loss_kwh, r.valley_amount, r.meter_start_kwh, r.meter_stop_kwh, r.total_kwh, "
			"r.total_loss_kwh, r.total_amount, r.trade_flag, r.stop_reason "
			"FROM transaction_records r WHERE r.tenant_id = ? AND r.pile_id = ? AND r.trade_no = ?",
			p, 2, 0);
	evcs_db_txn_add(t, r->o.tenant,
			"SELECT s.id, s.state, s.bill, " TARIFF_COLS " FROM charging_sessions s LEFT JOIN tariffs t "
			"ON t.tenant_id = s.tenant_id AND t.id = s.tariff_id "
			"WHERE s.tenant_id = ? AND s.pile_id = ? AND s.trade_no = ?",
			p, 2, 0);
	evcs_db_txn_add(t, r->o.tenant,
			"SELECT p.station_id, p.serial, " TARIFF_COLS " FROM piles p LEFT JOIN tariffs t "
			"ON t.tenant_id = p.tenant_id AND t.id = p.tariff_id WHERE p.tenant_id = ? AND p.id = ?",
			p, 1, 0);
	int rc = evcs_db_txn_submit(t, EVCS_DB_IDEMPOTENT, rec_read_done, r);
	if (rc != EVCS_OK) {
		fail_submit(r->o.call, rc, "txn.record");
		op_free(&r->o);
	}
}

static void op_txn_record(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t tenant, pile_id, gun;
	const char *trade;
	REQ_INT(args, "tenant_id", tenant);
	REQ_INT(args, "pile_id", pile_id);
	REQ_INT(args, "gun", gun);
	REQ_STR(args, "trade_no", trade);
	json_t *rec = json_object_get(args, "record");
	if (!json_is_object(rec)) {
		evcs_store_fail(call, EVCS_EINVAL, "record", "object expected");
		return;
	}
	if (!valid_trade(trade)) {
		evcs_store_fail(call, EVCS_EINVAL, "trade_no", "1..64 bytes expected");
		return;
	}
	if (gun < 1 || gun > 99) {
		evcs_store_fail(call, EVCS_EINVAL, "gun", "1..99 expected");
		return;
	}
	for (int i = 0; rec_int_fields[i]; i++) {
		int64_t v;
		if (get_int(rec, rec_int_fields[i], &v) < 0 || v < 0) {
			char f[48];
			snprintf(f, sizeof f, "record.%s", rec_int_fields[i]);
			evcs_store_fail(call, EVCS_EINVAL, f, "non-negative integer expected");
			return;
		}
	}
	const char *raw = opt_str(args, "raw_hex");
	if (raw && strlen(raw) > 1024) {
		evcs_store_fail(call, EVCS_EINVAL, "raw_hex", "at most 1024 characters");
		return;
	}
	struct rec_op *r = calloc(1, sizeof *r);
	if (!r) {
		evcs_store_fail(call, EVCS_ENOMEM, NULL, "out of memory");
		return;
	}
	r->o.call = call;
	r->o.core = evcs_store_core(s);
	r->o.args = json_incref(args);
	r->o.tenant = tenant;
	r->o.pile_id = pile_id;
	snprintf(r->o.name, sizeof r->o.name, "txn.record");
	r->rec = rec;
	r->gun = gun;
	r->trade = trade; /* borrowed from args, which r holds */
	rec_read(r);
}


void store_register_sessions(evcs_store_t *s)
{
	static const struct {
		const char *name;
		evcs_store_op_fn fn;
	} ops[] = {
	    {"session.create", op_session_create},
	    {"session.authorize", op_session_authorize},
	    {"session.started", op_session_started},
	    {"session.stop_requested", op_session_stop_requested},
	    {"session.stopped", op_session_stopped},
	    {"meter.sample", op_meter_sample},
	    {"txn.record", op_txn_record},
	};
	for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
		if (evcs_store_register(s, ops[i].name, ops[i].fn) != EVCS_OK)
			evcs_err(COMP, "cannot register storage operation %s", ops[i].name);
}
