/*
 * session.c: the protocol-neutral session model of plugin ABI 2 (api->session_authorize,
 * session_open, session_meter, session_close; contract in <evcs/plugin.h>, "charging sessions").
 *
 * The typed structs go straight into SQL parameters and the pricing call: no JSON crosses the
 * boundary (the only JSON written is the stored bill document, in one pass; billing.c).
 *
 * Open: the core resolves the tariff snapshot itself (the pile's assigned tariff, else the
 * tenant's script model, else the newest active tariff: what tariff.for_pile computes), stores
 * it in typed columns of the session row and keeps it in memory with the open session (bounded
 * cache keyed by pile id and trade number), together with the meter readings reported for it.
 *
 * Close: priced through the tenant's tariff script (or plain rates), then session + bill + the
 * plugin's evidence statement (tenant-scoped, same transaction; an EVCS_DB_T_REFID parameter in
 * evidence_params binds the session's id) + mismatch alarm + connector release are written in
 * ONE transaction. The plugin is answered after COMMIT, then the core publishes
 * EVCS_EV_TRANSACTION_CLOSED and EVCS_EV_SESSION_STOPPED (source = the plugin's name).
 * Idempotency on (pile_id, trade_no): a finished session with the same digest is a duplicate
 * (nothing written, nothing published); another digest is a conflict (the first is kept, a
 * record_conflicts row and one alarm are written). A session the core never saw open is created
 * finished at close. Database down: EVCS_EUNAVAIL and nothing stored.
 *
 * Group commit: closes that are ready to write queue up while every write slot (one per db
 * worker) is busy and go out together as one transaction when a slot frees; each is answered
 * only after that COMMIT. When a group fails (other than the database being unreachable), its
 * closes are retried one by one, so one bad close never takes its neighbours down.
 *
 * Files: this one (state, authorisation, open, meter readings, module hooks) and
 * session_close.c (the close pipeline); session_internal.h between them.
 *
 * Threading and lifetime: loop thread only. A plugin's pending callbacks are dropped when it
 * unloads (evcs_session_drop_owner); evcs_session_free (before evcs_db_close) flushes the meter
 * batch, and the module state lives on until its last database callback has run.
 */
#include "session_internal.h"

#include "abi2.h"
#include "log.h"
#include "scripting.h"

#include <stdio.h>

static void open_free(void *v) { free(v); }
static void each_free(const char *key, void *val, void *ud)
{
	(void)key;
	(void)ud;
	open_free(val);
}

static void state_free(struct sess_state *st)
{
	if (!st)
		return;
	if (st->open) {
		evcs_strmap_each(st->open, each_free, NULL);
		evcs_strmap_free(st->open);
	}
	if (st->flush_ev)
		event_free(st->flush_ev);
	free(st);
}

static void batch_done(int status, size_t rows, void *ud)
{
	(void)ud;
	if (status != EVCS_OK)
		evcs_log(EVCS_LOG_WARNING, COMP, 0, NULL, "meter readings: %zu rows not written (%s)",
			 rows, evcs_status_str(status));
}

struct sess_state *sess_state_of(evcs_core_t *core)
{
	struct sess_state *st = core->session;
	if (st)
		return st->closing ? NULL : st;
	st = calloc(1, sizeof *st);
	if (!st)
		return NULL;
	st->core = core;
	st->open = evcs_strmap_new();
	st->flush_ev = event_new(core->base, -1, 0, sess_flush_cb, st);
	if (!st->open || !st->flush_ev) {
		state_free(st);
		return NULL;
	}
	core->session = st;
	return st;
}

struct sop *sess_op_new(struct sess_state *st, evcs_plugin_t *p, int kind)
{
	struct sop *o = calloc(1, sizeof *o);
	if (!o)
		return NULL;
	o->st = st;
	o->p = p;
	o->kind = kind;
	snprintf(o->source, sizeof o->source, "%s", p && p->name ? p->name : "core");
	o->next = st->ops;
	if (st->ops)
		st->ops->prev = o;
	st->ops = o;
	st->live++;
	return o;
}

void sess_op_free(struct sop *o)
{
	if (!o)
		return;
	struct sess_state *st = o->st;
	if (o->prev)
		o->prev->next = o->next;
	else if (st->ops == o)
		st->ops = o->next;
	if (o->next)
		o->next->prev = o->prev;
	free(o->id_token);
	free(o->partner_seq);
	free(o->stop_text);
	free(o->digest);
	free(o->evidence_sql);
	free(o->evidence); /* one allocation with the copied strings */
	free(o->priced.bill_text);
	free(o);
	st->live--;
	if (st->closing && st->live == 0)
		state_free(st);
}

void sess_key(char *buf, size_t cap, int64_t pile_id, const char *trade)
{
	snprintf(buf, cap, "%lld:%s", (long long)pile_id, trade);
}

/* ---- authorisation ------------------------------------------------------------------------ */

static void auth_answer(struct sop *o, int status, int result, const char *reason,
			const evcs_db_result_t *r)
{
	evcs_auth_result_info_t info = {.size = sizeof info, .result = result, .reason = reason};
	if (r && r->nrows > 0) {
		int vin = o->id_kind == EVCS_IDK_VIN, acct = o->id_kind == EVCS_IDK_ACCOUNT;
		info.card_id = vin || acct ? 0 : cell_i64(r, 0, 0, 0);
		info.driver_id = cell_i64(r, 0, 3, 0);
		info.balance = cell_i64(r, 0, 6, 0);
		info.logical_card = evcs_db_cell(r, 0, 1);
		info.pin_hash = evcs_db_cell(r, 0, 10);
	}
	if (o->p && o->auth_done)
		o->auth_done(status, &info, o->ud);
}

static void authorize_done(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg,
			   void *ud)
{
	(void)nres;
	struct sop *o = ud;
	if (st != EVCS_OK) {
		if (st != EVCS_EUNAVAIL)
			evcs_log(EVCS_LOG_ERR, COMP, o->tenant, NULL, "authorize: %s", errmsg);
		auth_answer(o, st == EVCS_EUNAVAIL ? EVCS_EUNAVAIL : EVCS_ERR, EVCS_AUTH_UNAVAILABLE,
			    "database unavailable", NULL);
		sess_op_free(o);
		return;
	}
	const evcs_db_result_t *r = &res[0];
	int vin = o->id_kind == EVCS_IDK_VIN;
	if (r->nrows == 0) {
		auth_answer(o, EVCS_OK, vin ? EVCS_AUTH_UNKNOWN_VEHICLE : EVCS_AUTH_UNKNOWN,
			    vin ? "vin_unknown" : o->id_kind == EVCS_IDK_ACCOUNT ? "unknown_account"
										  : "unknown_card",
			    NULL);
		sess_op_free(o);
		return;
	}
	/* id, logical_no, status, driver_id, driver status, wallet id, balance, credit, wallet
	 * status, pile status, pin hash */
	const char *cstatus = evcs_db_cell(r, 0, 2), *dstatus = evcs_db_cell(r, 0, 4);
	const char *wstatus = evcs_db_cell(r, 0, 8), *pstatus = evcs_db_cell(r, 0, 9);
	int64_t wallet = cell_i64(r, 0, 5, 0), balance = cell_i64(r, 0, 6, 0),
		credit = cell_i64(r, 0, 7, 0);
	if (!pstatus || strcmp(pstatus, "enabled") != 0)
		auth_answer(o, EVCS_OK, EVCS_AUTH_PILE_DISABLED, "pile_disabled", r);
	else if (!cstatus || strcmp(cstatus, "active") != 0 ||
		 (dstatus && strcmp(dstatus, "active") != 0))
		auth_answer(o, EVCS_OK, EVCS_AUTH_BLOCKED,
			    vin ? "vehicle_blocked" : o->id_kind == EVCS_IDK_ACCOUNT ? "driver_blocked"
										     : "card_blocked",
			    r);
	else if (wallet <= 0)
		auth_answer(o, EVCS_OK, EVCS_AUTH_UNKNOWN, "no_wallet", r);
	else if (wstatus && strcmp(wstatus, "active") != 0)
		auth_answer(o, EVCS_OK, EVCS_AUTH_BLOCKED, "wallet_frozen", r);
	else if (balance + credit < o->min_balance)
		auth_answer(o, EVCS_OK, EVCS_AUTH_NO_FUNDS, "balance_too_low", r);
	else
		auth_answer(o, EVCS_OK, EVCS_AUTH_ACCEPTED, "ok", r);
	sess_op_free(o);
}

static void auth_late(evutil_socket_t fd, short what, void *ud)
{
	(void)fd;
	(void)what;
	struct sop *o = ud;
	auth_answer(o, EVCS_OK, o->id_kind == EVCS_IDK_VIN ? EVCS_AUTH_UNKNOWN_VEHICLE : EVCS_AUTH_UNKNOWN,
		    "unsupported_identity", NULL);
	sess_op_free(o);
}

static int api_session_authorize(evcs_plugin_t *p, const evcs_auth_request_t *a,
				 evcs_auth_done done, void *ud)
{
	if (!p || !a || a->size < offsetof(evcs_auth_request_t, min_balance) + sizeof a->min_balance ||
	    !done || a->tenant_id <= 0 || a->pile_id <= 0)
		return EVCS_EINVAL;
	evcs_core_t *core = p->core;
	if (!core->db)
		return EVCS_EUNAVAIL;
	struct sess_state *st = sess_state_of(core);
	if (!st)
		return EVCS_ENOMEM;
	struct sop *o = sess_op_new(st, p, SOP_AUTH);
	if (!o)
		return EVCS_ENOMEM;
	o->auth_done = done;
	o->ud = ud;
	o->tenant = a->tenant_id;
	o->id_kind = a->id_kind;
	o->min_balance = a->min_balance > 0 ? a->min_balance : 1;
	const char *tok = a->id_token;
	int64_t driver = 0;
	if (a->id_kind == EVCS_IDK_ACCOUNT && tok) {
		char *end = NULL;
		long long v = strtoll(tok, &end, 10);
		driver = end && *end == 0 && v > 0 ? v : 0;
	}
	/* card numbers and VINs are stored as ASCII: a token with other bytes matches none */
	int ascii = 1;
	for (const char *c = tok; c && *c; c++)
		ascii &= (unsigned char)*c < 0x80;
	int known = valid_identity(tok) &&
		    (((a->id_kind == EVCS_IDK_CARD || a->id_kind == EVCS_IDK_VIN) && ascii) ||
		     (a->id_kind == EVCS_IDK_ACCOUNT && driver > 0));
	if (!known) {
		/* answered later on the loop, like every other answer */
		if (event_base_once(core->base, -1, EV_TIMEOUT, auth_late, o, NULL) != 0) {
			sess_op_free(o);
			return EVCS_ENOMEM;
		}
		return EVCS_OK;
	}
	evcs_db_param_t pr[] = {EVCS_DB_INT(a->pile_id), driver > 0 ? EVCS_DB_INT(driver) : EVCS_DB_STR(tok)};
	const char *sql;
	if (a->id_kind == EVCS_IDK_VIN)
		sql = "SELECT v.id, NULL, v.status, v.driver_id, d.status, w.id, w.balance, w.credit_limit, "
		      "w.status, (SELECT p.status FROM piles p WHERE p.tenant_id = ? AND p.id = ?), NULL "
		      "FROM vehicles v JOIN drivers d ON d.tenant_id = v.tenant_id AND d.id = v.driver_id "
		      "LEFT JOIN wallets w ON w.tenant_id = v.tenant_id AND w.driver_id = v.driver_id "
		      "WHERE v.tenant_id = ? AND v.vin = ?";
	else if (a->id_kind == EVCS_IDK_ACCOUNT)
		sql = "SELECT d.id, NULL, d.status, d.id, d.status, w.id, w.balance, w.credit_limit, "
		      "w.status, (SELECT p.status FROM piles p WHERE p.tenant_id = ? AND p.id = ?), NULL "
		      "FROM drivers d LEFT JOIN wallets w ON w.tenant_id = d.tenant_id AND w.driver_id = d.id "
		      "WHERE d.tenant_id = ? AND d.id = ?";
	else
		sql = "SELECT c.id, c.logical_no, c.status, c.driver_id, d.status, w.id, w.balance, "
		      "w.credit_limit, w.status, (SELECT p.status FROM piles p WHERE p.tenant_id = ? AND "
		      "p.id = ?), c.pin_md5 FROM rfid_cards c LEFT JOIN drivers d ON d.tenant_id = "
		      "c.tenant_id AND d.id = c.driver_id LEFT JOIN wallets w ON w.tenant_id = c.tenant_id "
		      "AND w.driver_id = c.driver_id WHERE c.tenant_id = ? AND c.physical_no = ?";
	int rc = evcs_db_query(core->db, a->tenant_id, sql, pr, 2, 0, authorize_done, o);
	if (rc != EVCS_OK) {
		o->p = NULL;
		sess_op_free(o);
	}
	return rc;
}

/* ---- open ---------------------------------------------------------------------------------- */
/* The snapshot at open (or for a close the core never saw open): what tariff.for_pile gives. */
void sess_pick_for_pile(evcs_core_t *core, int64_t tenant, const evcs_db_result_t *pile_row,
			  const evcs_db_result_t *active_row, evcs_tariff_pick_t *out)
{
	evcs_tariff_pick_t assigned = {0}, active = {0};
	evcs_tariff_from_row(pile_row, 0, 2, &assigned);
	if (active_row && active_row->nrows)
		evcs_tariff_from_row(active_row, 0, 0, &active);
	evcs_tariff_resolve(core, tenant, evcs_db_cell(pile_row, 0, 1), &assigned, &active, out);
}

void sess_answer(struct sop *o, int status, const evcs_session_result_t *r)
{
	if (o->p && o->done)
		o->done(status, r, o->ud);
}

void sess_fail_answer(struct sop *o, int st, const char *what, const char *errmsg)
{
	int out = st == EVCS_EUNAVAIL || st == EVCS_EINVAL || st == EVCS_EBUSY ? st : EVCS_ERR;
	if (st != EVCS_EUNAVAIL)
		evcs_log(EVCS_LOG_ERR, COMP, o->tenant, o->pile, "%s %s: %s (%s)", what, o->trade,
			 evcs_status_str(st), errmsg ? errmsg : "");
	sess_answer(o, out, NULL);
	sess_op_free(o);
}

static void open_write_done(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg,
			    void *ud)
{
	(void)nres;
	struct sop *o = ud;
	if (st != EVCS_OK) {
		sess_fail_answer(o, st, "open", errmsg);
		return;
	}
	evcs_session_result_t r = {.size = sizeof r};
	r.session_id = (int64_t)res[0].insert_id;
	r.created = res[0].affected == 1;
	struct sess_state *ss = o->st;
	/* a fresh row carries exactly the snapshot taken here; a repeat keeps the row's own, which
	 * the close reads back */
	if (!ss->closing && evcs_strmap_count(ss->open) < OPEN_CACHE_MAX) {
		struct open_sess *e = calloc(1, sizeof *e);
		if (e) {
			e->session_id = r.session_id;
			e->has_tariff = r.created && o->tariff.found;
			e->tariff = o->tariff;
			int err = 0;
			void *old = evcs_strmap_put(ss->open, o->key, e, &err);
			if (err)
				free(e);
			else
				free(old);
		}
	}
	sess_answer(o, EVCS_OK, &r);
	sess_op_free(o);
}

static void open_read_done(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg,
			   void *ud)
{
	(void)nres;
	struct sop *o = ud;
	evcs_core_t *core = o->st->core;
	if (st != EVCS_OK) {
		sess_fail_answer(o, st, "open", errmsg);
		return;
	}
	if (res[0].nrows == 0) {
		sess_answer(o, EVCS_EINVAL, NULL);
		sess_op_free(o);
		return;
	}
	sess_pick_for_pile(core, o->tenant, &res[0], &res[1], &o->tariff);
	int64_t station = cell_i64(&res[0], 0, 0, 0);
	int64_t connector = cell_i64(&res[0], 0, PILE_CONNECTOR_COL, 0);
	const evcs_session_open_t *so = &o->o;
	int vin = strcmp(o->start_mode, "vin") == 0;
	char slots[49];
	evcs_db_param_t p[16 + SESSION_TARIFF_NPARAMS];
	size_t n = 0;
	p[n++] = station > 0 ? EVCS_DB_INT(station) : EVCS_DB_NULL;
	p[n++] = EVCS_DB_INT(o->pile_id);
	p[n++] = connector > 0 ? EVCS_DB_INT(connector) : EVCS_DB_NULL;
	p[n++] = EVCS_DB_INT(o->gun);
	p[n++] = EVCS_DB_STR(o->trade);
	p[n++] = EVCS_DB_STR(o->start_mode);
	p[n++] = so->driver_id > 0 ? EVCS_DB_INT(so->driver_id) : EVCS_DB_NULL;
	p[n++] = so->card_id > 0 ? EVCS_DB_INT(so->card_id) : EVCS_DB_NULL;
	p[n++] = o->id_token && !vin ? EVCS_DB_STR(o->id_token) : EVCS_DB_NULL;
	p[n++] = o->id_token && vin && strlen(o->id_token) == 17 ? EVCS_DB_STR(o->id_token) : EVCS_DB_NULL;
	p[n++] = so->operator_user_id > 0 ? EVCS_DB_INT(so->operator_user_id) : EVCS_DB_NULL;
	p[n++] = so->partner_id > 0 ? EVCS_DB_INT(so->partner_id) : EVCS_DB_NULL;
	p[n++] = o->partner_seq ? EVCS_DB_STR(o->partner_seq) : EVCS_DB_NULL;
	p[n++] = o->tariff.found && o->tariff.id > 0 ? EVCS_DB_INT(o->tariff.id) : EVCS_DB_NULL;
	p[n++] = EVCS_DB_INT(so->requested_ms > 0 ? so->requested_ms : now_ms());
	evcs_tariff_params(&o->tariff, slots, &p[n]);
	n += SESSION_TARIFF_NPARAMS;
	int rc = evcs_db_query(
	    core->db, o->tenant,
	    "INSERT INTO charging_sessions SET tenant_id = ?, station_id = ?, pile_id = ?, "
	    "connector_id = ?, gun_no = ?, trade_no = ?, state = 'starting', start_mode = ?, driver_id = ?, "
	    "card_id = ?, physical_card = ?, vin = ?, operator_user_id = ?, partner_id = ?, "
	    "partner_seq = LEFT(?, 32), tariff_id = ?, requested_ms = ?, " SESSION_TARIFF_SET
	    /* a repeat, or an order its requester recorded 'pending' (a partner's start) that the
	     * protocol plugin now opens: that one moves on to starting and takes this snapshot */
	    " ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id), "
	    "state = IF(state = 'pending', 'starting', state), "
	    "tariff_id = IF(tariff_model IS NULL, VALUES(tariff_id), tariff_id), "
	    "tariff_sharp_elec_rate = IF(tariff_model IS NULL, VALUES(tariff_sharp_elec_rate), tariff_sharp_elec_rate), "
	    "tariff_sharp_service_rate = IF(tariff_model IS NULL, VALUES(tariff_sharp_service_rate), tariff_sharp_service_rate), "
	    "tariff_peak_elec_rate = IF(tariff_model IS NULL, VALUES(tariff_peak_elec_rate), tariff_peak_elec_rate), "
	    "tariff_peak_service_rate = IF(tariff_model IS NULL, VALUES(tariff_peak_service_rate), tariff_peak_service_rate), "
	    "tariff_flat_elec_rate = IF(tariff_model IS NULL, VALUES(tariff_flat_elec_rate), tariff_flat_elec_rate), "
	    "tariff_flat_service_rate = IF(tariff_model IS NULL, VALUES(tariff_flat_service_rate), tariff_flat_service_rate), "
	    "tariff_valley_elec_rate = IF(tariff_model IS NULL, VALUES(tariff_valley_elec_rate), tariff_valley_elec_rate), "
	    "tariff_valley_service_rate = IF(tariff_model IS NULL, VALUES(tariff_valley_service_rate), tariff_valley_service_rate), "
	    "tariff_slots = IF(tariff_model IS NULL, VALUES(tariff_slots), tariff_slots), "
	    "tariff_script = IF(tariff_model IS NULL, VALUES(tariff_script), tariff_script), "
	    "tariff_model = COALESCE(tariff_model, VALUES(tariff_model))",
	    p, n, EVCS_DB_IDEMPOTENT, open_write_done, o);
	if (rc != EVCS_OK)
		sess_fail_answer(o, rc, "open", "cannot submit");
}

static int api_session_open(evcs_plugin_t *p, const evcs_session_open_t *so, evcs_session_done done,
			    void *ud)
{
	if (!p || !so || so->size < offsetof(evcs_session_open_t, requested_ms) + sizeof so->requested_ms ||
	    !done || so->tenant_id <= 0 || so->pile_id <= 0 || so->gun < 1 || so->gun > 99 ||
	    !valid_identity(so->trade_no) || !valid_start_mode(so->start_mode) ||
	    (so->id_token && !valid_identity(so->id_token)) ||
	    (so->partner_seq && !valid_identity(so->partner_seq)))
		return EVCS_EINVAL;
	evcs_core_t *core = p->core;
	if (!core->db)
		return EVCS_EUNAVAIL;
	struct sess_state *st = sess_state_of(core);
	if (!st)
		return EVCS_ENOMEM;
	struct sop *o = sess_op_new(st, p, SOP_OPEN);
	if (!o)
		return EVCS_ENOMEM;
	o->done = done;
	o->ud = ud;
	o->o = *so;
	o->o.size = sizeof o->o;
	o->tenant = so->tenant_id;
	o->pile_id = so->pile_id;
	o->gun = so->gun;
	snprintf(o->pile, sizeof o->pile, "%s", so->pile ? so->pile : "");
	snprintf(o->trade, sizeof o->trade, "%s", so->trade_no);
	snprintf(o->start_mode, sizeof o->start_mode, "%s", so->start_mode);
	sess_key(o->key, sizeof o->key, o->pile_id, o->trade);
	o->id_token = so->id_token ? strdup(so->id_token) : NULL;
	o->partner_seq = so->partner_seq ? strdup(so->partner_seq) : NULL;
	o->o.pile = o->o.trade_no = o->o.start_mode = o->o.id_token = o->o.partner_seq = NULL;
	/* the tenant's scripts start loading now, so they are there to price the close */
	if (core->scripts)
		evcs_scripting_touch(core, o->tenant);
	evcs_db_txn_t *t = evcs_db_txn_new(core->db);
	evcs_db_param_t pp[] = {EVCS_DB_INT(so->gun), EVCS_DB_INT(so->pile_id)};
	evcs_db_txn_add(t, o->tenant, PILE_TARIFF_READ, pp, 2, 0);
	evcs_db_txn_add(t, o->tenant, ACTIVE_TARIFF_READ, NULL, 0, 0);
	int rc = evcs_db_txn_submit(t, EVCS_DB_IDEMPOTENT, open_read_done, o);
	if (rc != EVCS_OK) {
		o->p = NULL;
		sess_op_free(o);
	}
	return rc;
}

/* ---- meter readings -------------------------------------------------------------------------- */

static int ensure_samples(struct sess_state *st)
{
	if (st->samples)
		return 0;
	st->samples = evcs_db_batch_new(
	    st->core->db, "session_meter",
	    "INSERT INTO meter_samples (session_id, ts_ms, kwh, amount, voltage_dv, current_da, soc, "
	    "gun_temp_c, batt_max_temp_c, remaining_min)",
	    10, "ON DUPLICATE KEY UPDATE kwh = VALUES(kwh), amount = VALUES(amount)", 500, 1000,
	    batch_done, NULL);
	return st->samples ? 0 : -1;
}

static void live_done(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	(void)res;
	(void)nres;
	(void)ud;
	if (st != EVCS_OK && st != EVCS_EUNAVAIL)
		evcs_log(EVCS_LOG_WARNING, COMP, 0, NULL, "live session update: %s", errmsg);
}

static void keep_reading(struct open_sess *e, int64_t ts_ms, int64_t kwh)
{
	int64_t ts = ts_ms / 1000;
	if (e->nreadings && (ts <= e->readings[e->nreadings - 1].ts || kwh < e->readings[e->nreadings - 1].kwh))
		return; /* out of order or going backwards: the stored row keeps it, pricing does not */
	if (e->nreadings == READINGS_MAX) {
		/* keep every other one: the curve stays spread over the whole session */
		size_t k = 0;
		for (size_t i = 0; i < e->nreadings; i += 2)
			e->readings[k++] = e->readings[i];
		e->nreadings = k;
	}
	e->readings[e->nreadings].ts = ts;
	e->readings[e->nreadings].kwh = kwh;
	e->nreadings++;
}

static int meter_queue(struct sess_state *st, const evcs_meter_reading_t *m, int64_t sid)
{
	int64_t ts = m->ts_ms > 0 ? m->ts_ms : now_ms();
	evcs_db_param_t row[] = {EVCS_DB_INT(sid),
				 EVCS_DB_INT(ts),
				 EVCS_DB_INT(m->kwh > 0 ? m->kwh : 0),
				 EVCS_DB_INT(m->amount > 0 ? m->amount : 0),
				 EVCS_DB_INT(m->voltage_dv > 0 ? m->voltage_dv : 0),
				 EVCS_DB_INT(m->current_da > 0 ? m->current_da : 0),
				 EVCS_DB_INT(m->soc >= 0 && m->soc <= 255 ? m->soc : 0),
				 EVCS_DB_INT(m->gun_temp_c > -1000 ? m->gun_temp_c : 0),
				 EVCS_DB_INT(m->batt_max_temp_c > -1000 ? m->batt_max_temp_c : 0),
				 EVCS_DB_INT(m->remaining_min >= 0 ? m->remaining_min : 0)};
	int rc = evcs_db_batch_add(st->samples, row);
	if (rc != EVCS_OK && rc != EVCS_EBUSY)
		return rc;
	/* live figures on the session row (what an app polls); a lost one is overwritten by the next */
	evcs_db_param_t p[] = {EVCS_DB_INT(m->kwh > 0 ? m->kwh : 0),
			       EVCS_DB_INT(m->amount > 0 ? m->amount : 0),
			       m->soc >= 0 && m->soc <= 255 ? EVCS_DB_INT(m->soc) : EVCS_DB_NULL,
			       EVCS_DB_INT(ts), EVCS_DB_INT(sid)};
	evcs_db_query(st->core->db, m->tenant_id,
		      "UPDATE charging_sessions SET live_kwh = ?, live_amount = ?, live_soc = ?, live_ms = ? "
		      "WHERE tenant_id = ? AND id = ? AND state IN ('starting','charging','stopping')",
		      p, 5, EVCS_DB_IDEMPOTENT, live_done, NULL);
	return EVCS_OK;
}

static void meter_lookup_done(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg,
			      void *ud)
{
	(void)nres;
	struct sop *o = ud;
	if (st != EVCS_OK)
		evcs_log(EVCS_LOG_WARNING, COMP, o->tenant, o->pile, "meter reading for %s dropped: %s",
			 o->trade, errmsg);
	else if (res[0].nrows == 0)
		evcs_log(EVCS_LOG_INFO, COMP, o->tenant, o->pile,
			 "meter reading for %s dropped: no such session", o->trade);
	else if (!o->st->closing && ensure_samples(o->st) == 0)
		meter_queue(o->st, &o->m, cell_i64(&res[0], 0, 0, 0));
	sess_op_free(o);
}

static int api_session_meter(evcs_plugin_t *p, const evcs_meter_reading_t *m)
{
	if (!p || !m || m->size < offsetof(evcs_meter_reading_t, remaining_min) + sizeof m->remaining_min ||
	    m->tenant_id <= 0 || m->pile_id <= 0 || !valid_identity(m->trade_no))
		return EVCS_EINVAL;
	evcs_core_t *core = p->core;
	if (!core->db)
		return EVCS_EUNAVAIL;
	struct sess_state *st = sess_state_of(core);
	if (!st || ensure_samples(st) < 0)
		return EVCS_ENOMEM;
	char key[EVCS_ID_MAX + 24];
	sess_key(key, sizeof key, m->pile_id, m->trade_no);
	struct open_sess *e = evcs_strmap_get(st->open, key);
	if (e) {
		keep_reading(e, m->ts_ms > 0 ? m->ts_ms : now_ms(), m->kwh);
		return meter_queue(st, m, e->session_id);
	}
	struct sop *o = sess_op_new(st, p, SOP_METER);
	if (!o)
		return EVCS_ENOMEM;
	o->m = *m;
	o->m.pile = o->m.trade_no = NULL;
	o->tenant = m->tenant_id;
	snprintf(o->pile, sizeof o->pile, "%s", m->pile ? m->pile : "");
	snprintf(o->trade, sizeof o->trade, "%s", m->trade_no);
	if (!o->m.ts_ms)
		o->m.ts_ms = now_ms();
	evcs_db_param_t q[] = {EVCS_DB_INT(m->pile_id), EVCS_DB_STR(m->trade_no)};
	int rc = evcs_db_query(core->db, m->tenant_id,
			       "SELECT id FROM charging_sessions WHERE tenant_id = ? AND pile_id = ? AND trade_no = ?",
			       q, 2, 0, meter_lookup_done, o);
	if (rc != EVCS_OK)
		sess_op_free(o);
	return rc;
}

/* ---- module hooks -------------------------------------------------------------------------- */

void evcs_session_fill(evcs_api_t *a)
{
	a->session_authorize = api_session_authorize;
	a->session_open = api_session_open;
	a->session_close = sess_api_close;
	a->session_meter = api_session_meter;
}

void evcs_session_drop_owner(struct evcs_core *core, struct evcs_plugin *p)
{
	struct sess_state *st = core ? core->session : NULL;
	for (struct sop *o = st ? st->ops : NULL; o; o = o->next)
		if (o->p == p)
			o->p = NULL; /* its writes still complete; nobody is answered */
}

void evcs_session_free(struct evcs_core *core)
{
	struct sess_state *st = core ? core->session : NULL;
	if (!st)
		return;
	core->session = NULL;
	st->closing = 1;
	/* closes still waiting for a write slot are not lost: they go out now, and their
	 * callbacks run inside evcs_db_close */
	while (st->nready) {
		size_t before = st->nready;
		st->groups_in_flight = 0;
		sess_flush_cb(-1, 0, st);
		if (st->nready == before)
			break;
	}
	evcs_db_batch_free(st->samples);
	st->samples = NULL;
	if (st->live == 0)
		state_free(st);
}
