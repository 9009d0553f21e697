/*
 * session_close.c: the close of the protocol-neutral session model (api->session_close; the
 * contract is at the top of session.c and in <evcs/plugin.h>). Pricing under the session's
 * snapshot, then the write: a close ready while every write slot (one per database worker) is
 * busy waits and goes out with the others ready then; while any group is in flight, fewer than
 * GROUP_WINDOW_MIN ready closes also wait up to GROUP_WINDOW_US for company (the group-commit
 * window). A group is ONE transaction: a guarded multi-row
 * upsert of their session rows, their evidence (one multi-row INSERT when the plugin writes the
 * plain VALUES form), mismatch alarms, the connector release. Each close is answered after that
 * COMMIT, then TRANSACTION_CLOSED and SESSION_STOPPED are published. A group that fails is
 * retried close by close; a close whose row turns out finished is read back as a duplicate or
 * a conflict. Loop thread only.
 */
#include "session_internal.h"
#include "tz.h"

#include "log.h"

#include <jansson.h>
#include <stdio.h>
#include <strings.h>

/* ---- close --------------------------------------------------------------------------------- */

static void close_read(struct sop *o);
static void ready_push(struct sop *o);

static void publish_alarm(evcs_core_t *core, int64_t tenant, const char *pile, int gun,
			  const char *code, const char *severity, const char *message, int64_t id,
			  const char *source)
{
	if (!core->bus)
		return;
	evcs_field_t f[] = {EVCS_FS("code", code), EVCS_FI("alarm_id", id),
			    EVCS_FS("severity", severity), EVCS_FS("message", message)};
	evcs_event_t ev = {.size = sizeof ev, .type = EVCS_EV_ALARM_RAISED, .tenant_id = tenant,
			   .pile = pile, .gun = gun, .fields = f, .nfields = 4};
	evcs_bus_publish(core->bus, &ev, source);
}

static void close_result(struct sop *o, evcs_session_result_t *r)
{
	memset(r, 0, sizeof *r);
	r->size = sizeof *r;
	r->session_id = o->session_id;
	r->total_kwh = o->c.total_kwh;
	r->total_amount = o->priced.total;
	r->pile_amount = o->c.pile_amount;
	r->mismatch = o->mismatch;
	r->alarm_id = o->alarm_id;
}

/* After COMMIT: answer, then publish (the plugin may acknowledge the pile in its callback). */
static void close_committed(struct sop *o, const evcs_db_result_t *res)
{
	struct sess_state *st = o->st;
	evcs_core_t *core = st->core;
	if (o->mode == CM_INSERT)
		o->session_id = (int64_t)res[o->idx_session].insert_id;
	if (o->has_alarm && res[o->idx_alarm].affected > 0)
		o->alarm_id = (int64_t)res[o->idx_alarm].insert_id;
	void *e = evcs_strmap_del(st->open, o->key);
	free(e);
	evcs_session_result_t r;
	close_result(o, &r);
	sess_answer(o, EVCS_OK, &r);
	if (core->bus) {
		evcs_field_t f[] = {EVCS_FS("trade_no", o->trade), EVCS_FI("session_id", o->session_id),
				    EVCS_FI("total_kwh", o->c.total_kwh),
				    EVCS_FI("total_amount", o->priced.total),
				    EVCS_FI("pile_amount", o->c.pile_amount), EVCS_FB("duplicate", 0)};
		evcs_event_t ev = {.size = sizeof ev, .type = EVCS_EV_TRANSACTION_CLOSED,
				   .tenant_id = o->tenant, .pile = o->pile, .gun = o->gun,
				   .ts_ms = o->c.end_ms > 0 ? o->c.end_ms : 0, .fields = f, .nfields = 6};
		evcs_bus_publish(core->bus, &ev, o->source);
		evcs_field_t g[] = {EVCS_FS("trade_no", o->trade), EVCS_FI("stop_reason", o->c.stop_reason),
				    EVCS_FS("stop_reason_text", o->stop_text ? o->stop_text : "")};
		evcs_event_t sv = {.size = sizeof sv, .type = EVCS_EV_SESSION_STOPPED,
				   .tenant_id = o->tenant, .pile = o->pile, .gun = o->gun,
				   .ts_ms = ev.ts_ms, .fields = g, .nfields = 3};
		evcs_bus_publish(core->bus, &sv, o->source);
		if (o->alarm_id > 0) {
			char code[48], msg[160];
			snprintf(code, sizeof code, "bill.mismatch.%lld", (long long)o->session_id);
			snprintf(msg, sizeof msg,
				 "bill differs from the pile: platform %lld, pile %lld (0.00001 yuan)",
				 (long long)o->priced.total, (long long)o->c.pile_amount);
			publish_alarm(core, o->tenant, o->pile, o->gun, code, "warning", msg, o->alarm_id,
				      o->source);
		}
	}
	sess_op_free(o);
}

/* A group failed as a whole (or a solo close failed): decide per close. */
static void close_failed(struct sop *o, int st, const char *errmsg)
{
	if (!o->solo && st != EVCS_EUNAVAIL && st != EVCS_EBUSY) {
		/* its group failed: try it alone so a bad neighbour cannot take it down */
		o->solo = 1;
		o->evidence_merged = 0;
		ready_push(o);
		return;
	}
	o->evidence_merged = 0;
	if (st == EVCS_ERR && errmsg && strstr(errmsg, "Deadlock") && o->rereads < 3) {
		/* InnoDB chose it as the victim (the data layer already retried once): again, alone */
		o->rereads++;
		ready_push(o);
		return;
	}
	if ((st == EVCS_EEXIST || st == EVCS_ENOENT) && o->rereads < 2) {
		o->rereads++;
		/* another copy got there first (offline insert race / already finished): read again,
		 * which turns it into a duplicate or a conflict */
		o->solo = 0;
		free(o->priced.bill_text);
		memset(&o->priced, 0, sizeof o->priced);
		close_read(o);
		return;
	}
	sess_fail_answer(o, st, "close", errmsg);
}

static void group_done(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		       void *ud)
{
	(void)nres;
	struct sop *head = ud;
	struct sess_state *ss = head->st;
	ss->groups_in_flight--;
	for (struct sop *o = head, *next; o; o = next) {
		next = o->rnext;
		o->rnext = NULL;
		if (st == EVCS_OK)
			close_committed(o, res);
		else
			close_failed(o, st, errmsg);
	}
	if (ss->nready && !ss->closing)
		event_active(ss->flush_ev, EV_TIMEOUT, 0);
}

/* Parameters shared by the UPDATE and the INSERT of a close (CLOSE_SET, CLOSE_NPARAMS). */
#define CLOSE_SET                                                                                  \
	"end_ms = ?, stop_reason = ?, stop_reason_text = LEFT(?, 128), meter_start = ?, meter_stop = ?, " \
	"sharp_kwh = ?, sharp_amount = ?, peak_kwh = ?, peak_amount = ?, flat_kwh = ?, flat_amount = ?, " \
	"valley_kwh = ?, valley_amount = ?, total_kwh = ?, total_loss_kwh = ?, elec_amount = ?, "       \
	"service_amount = ?, total_amount = ?, pile_amount = ?, bill = ?, amount_mismatch = ?, "        \
	"close_digest = ?, close_source = LEFT(?, 32), closed_ms = ?, " SESSION_TARIFF_SET
#define CLOSE_NPARAMS (24 + SESSION_TARIFF_NPARAMS)

static size_t close_params(struct sop *o, const int64_t kwh[4], char slots[49], evcs_db_param_t *p)
{
	const evcs_session_close_t *c = &o->c;
	size_t n = 0;
	p[n++] = c->end_ms > 0 ? EVCS_DB_INT(c->end_ms) : EVCS_DB_INT(now_ms());
	p[n++] = EVCS_DB_INT(c->stop_reason);
	p[n++] = EVCS_DB_STR(o->stop_text ? o->stop_text : "");
	p[n++] = c->meter_start >= 0 ? EVCS_DB_INT(c->meter_start) : EVCS_DB_NULL;
	p[n++] = c->meter_stop >= 0 ? EVCS_DB_INT(c->meter_stop) : EVCS_DB_NULL;
	for (int q = 0; q < 4; q++) {
		p[n++] = EVCS_DB_INT(kwh[q]);
		p[n++] = EVCS_DB_INT(o->priced.amounts[q]);
	}
	p[n++] = EVCS_DB_INT(c->total_kwh);
	p[n++] = c->total_loss_kwh > 0 ? EVCS_DB_INT(c->total_loss_kwh) : EVCS_DB_NULL;
	p[n++] = EVCS_DB_INT(o->priced.elec);
	p[n++] = EVCS_DB_INT(o->priced.service);
	p[n++] = EVCS_DB_INT(o->priced.total);
	p[n++] = c->pile_amount >= 0 ? EVCS_DB_INT(c->pile_amount) : EVCS_DB_NULL;
	p[n++] = o->priced.bill_text ? EVCS_DB_STR(o->priced.bill_text) : EVCS_DB_NULL;
	p[n++] = EVCS_DB_INT(o->mismatch);
	p[n++] = EVCS_DB_STR(o->digest);
	p[n++] = EVCS_DB_STR(o->source);
	p[n++] = EVCS_DB_INT(now_ms());
	evcs_tariff_params(&o->tariff, slots, &p[n]);
	return n + SESSION_TARIFF_NPARAMS;
}

/* The energy per period the close is priced with: the pile's split, else the session's
 * readings (kept since open) spread over the tariff's half hours. */
static void close_period_kwh(struct sop *o, const struct open_sess *e, int64_t kwh[4])
{
	const evcs_session_close_t *c = &o->c;
	for (int q = 0; q < 4; q++)
		kwh[q] = c->has_periods ? c->period[q].kwh : 0;
	if (c->has_periods)
		return;
	if (!o->tariff.found || c->start_ms <= 0 || c->end_ms <= c->start_ms) {
		kwh[EVCS_FLAT] = c->total_kwh;
		return;
	}
	evcs_meter_sample_t s[READINGS_MAX + 2];
	size_t n = 0;
	s[n].ts = c->start_ms / 1000;
	s[n++].kwh = 0;
	for (size_t i = 0; e && i < e->nreadings; i++)
		if (e->readings[i].ts > s[n - 1].ts && e->readings[i].ts < c->end_ms / 1000 &&
		    e->readings[i].kwh >= s[n - 1].kwh && e->readings[i].kwh <= c->total_kwh)
			s[n++] = e->readings[i];
	s[n].ts = c->end_ms / 1000;
	s[n++].kwh = c->total_kwh;
	if (s[n - 1].ts <= s[n - 2].ts) {
		kwh[EVCS_FLAT] = c->total_kwh;
		return;
	}
	evcs_session_t sess = {.tenant_id = o->tenant, .start = s[0].ts, .stop = s[n - 1].ts,
			       .samples = s, .nsamples = n};
	sess.tz = evcs_core_tenant_tz(o->st->core, o->tenant); /* DST-correct per piece of energy */
	evcs_energy_piece_t *pieces = NULL;
	size_t np = 0;
	char *err = NULL;
	if (evcs_session_pieces(&sess, &o->tariff.m, &pieces, &np, kwh, &err) != EVCS_OK) {
		memset(kwh, 0, 4 * sizeof *kwh);
		kwh[EVCS_FLAT] = c->total_kwh;
	}
	free(pieces);
	free(err);
}

static void close_price(struct sop *o, const struct open_sess *e)
{
	evcs_core_t *core = o->st->core;
	int64_t kwh[4], prices[4];
	close_period_kwh(o, e, kwh);
	for (int q = 0; q < 4; q++)
		prices[q] = o->c.has_periods ? o->c.period[q].price : -1;
	evcs_price_in_t in = {.tenant_id = o->tenant, .pile = o->pile, .trade_no = o->trade,
			      .gun = o->gun, .start_ms = o->c.start_ms, .end_ms = o->c.end_ms,
			      .pile_prices = prices, .pile_amount = o->c.pile_amount,
			      .tariff = &o->tariff};
	memcpy(in.kwh, kwh, sizeof kwh);
	for (int q = 0; q < 4; q++)
		o->c.period[q].kwh = kwh[q]; /* what was priced; stored per period */
	evcs_billing_price(core, &in, &o->priced);
	o->mismatch = evcs_bill_mismatch(o->priced.total, o->c.pile_amount, evcs_billing_tolerance(core));
}

/* Append one close's statements to the group transaction; shared = its session row is
 * written by the group's shared statement (group_rows) instead. */
static void close_add(struct sop *o, evcs_db_txn_t *t, size_t *nstmt, int shared)
{
	int64_t kwh[4];
	for (int q = 0; q < 4; q++)
		kwh[q] = o->c.period[q].kwh;
	char slots[49];
	evcs_db_param_t p[16 + CLOSE_NPARAMS];
	o->base = *nstmt;
	if (shared) {
		o->idx_session = SIZE_MAX;
	} else if (o->mode == CM_UPDATE) {
		if (o->pending_state) {
			/* the trigger allows finished only from starting onwards */
			evcs_db_param_t sp[] = {EVCS_DB_INT(o->session_id)};
			evcs_db_txn_add(t, o->tenant,
					"UPDATE charging_sessions SET state = 'starting' WHERE tenant_id = ? "
					"AND id = ? AND state = 'pending'",
					sp, 1, 0);
			(*nstmt)++;
		}
		size_t n = 0;
		p[n++] = o->c.start_ms > 0 ? EVCS_DB_INT(o->c.start_ms) : EVCS_DB_NULL;
		p[n++] = o->tariff.found && o->tariff.id > 0 ? EVCS_DB_INT(o->tariff.id) : EVCS_DB_NULL;
		n += close_params(o, kwh, slots, &p[n]);
		p[n++] = EVCS_DB_INT(o->session_id);
		evcs_db_txn_add(t, o->tenant,
				"UPDATE charging_sessions SET state = 'finished', start_ms = COALESCE(start_ms, ?), "
				"tariff_id = COALESCE(tariff_id, ?), " CLOSE_SET
				" WHERE tenant_id = ? AND id = ? AND state <> 'finished'",
				p, n, EVCS_DB_REQUIRE_ROW);
	} else {
		int vin = strcmp(o->start_mode, "vin") == 0;
		size_t n = 0;
		p[n++] = o->station_id > 0 ? EVCS_DB_INT(o->station_id) : EVCS_DB_NULL;
		p[n++] = EVCS_DB_INT(o->pile_id);
		p[n++] = o->connector_id > 0 ? EVCS_DB_INT(o->connector_id) : EVCS_DB_NULL;
		p[n++] = EVCS_DB_INT(o->gun);
		p[n++] = EVCS_DB_STR(o->trade);
		p[n++] = EVCS_DB_STR(o->start_mode);
		p[n++] = o->id_token && !vin ? EVCS_DB_STR(o->id_token) : EVCS_DB_NULL;
		p[n++] = o->id_token && vin && strlen(o->id_token) == 17 ? EVCS_DB_STR(o->id_token)
									  : EVCS_DB_NULL;
		p[n++] = o->tariff.found && o->tariff.id > 0 ? EVCS_DB_INT(o->tariff.id) : EVCS_DB_NULL;
		p[n++] = EVCS_DB_INT(o->c.start_ms > 0 ? o->c.start_ms : now_ms());
		p[n++] = o->c.start_ms > 0 ? EVCS_DB_INT(o->c.start_ms) : EVCS_DB_NULL;
		n += close_params(o, kwh, slots, &p[n]);
		evcs_db_txn_add(t, o->tenant,
				"INSERT INTO charging_sessions SET tenant_id = ?, station_id = ?, pile_id = ?, "
				"connector_id = ?, gun_no = ?, trade_no = ?, state = 'finished', "
				"start_mode = ?, physical_card = ?, vin = ?, tariff_id = ?, requested_ms = ?, "
				"start_ms = ?, " CLOSE_SET,
				p, n, 0);
	}
	if (!shared)
		o->idx_session = (*nstmt)++;
	evcs_db_param_t sid = o->mode == CM_UPDATE ? EVCS_DB_INT(o->session_id)
						   : EVCS_DB_REFID(o->idx_session);
	if (o->evidence_sql && !o->evidence_merged) {
		evcs_db_param_t ev[64];
		for (size_t i = 0; i < o->nevidence; i++)
			ev[i] = o->evidence[i].type == EVCS_DB_T_REFID ? sid : o->evidence[i];
		evcs_db_txn_add(t, o->tenant, o->evidence_sql, ev, o->nevidence, 0);
		(*nstmt)++;
	}
	o->has_alarm = o->mismatch;
	if (o->mismatch) {
		char msg[160];
		snprintf(msg, sizeof msg, "bill differs from the pile: platform %lld, pile %lld (0.00001 yuan)",
			 (long long)o->priced.total, (long long)o->c.pile_amount);
		evcs_db_param_t ap[] = {EVCS_DB_INT(o->pile_id), EVCS_DB_INT(o->gun & 0xFF), sid, sid,
					EVCS_DB_STR(msg), EVCS_DB_STR(o->source)};
		evcs_db_txn_add(t, o->tenant,
				"INSERT IGNORE INTO alarms SET tenant_id = ?, pile_id = ?, gun_no = ?, session_id = ?, "
				"code = CONCAT('bill.mismatch.', ?), severity = 'warning', message = ?, "
				"source = LEFT(?, 32)",
				ap, 6, 0);
		o->idx_alarm = (*nstmt)++;
	}
	if (o->mode == CM_UPDATE && !shared) {
		/* the gun's live pointer to the session, found through ix_connectors_session (010) so
		 * that closes on the same gun do not queue behind each other's lock on the row */
		evcs_db_param_t cp[] = {EVCS_DB_INT(o->session_id)};
		evcs_db_txn_add(t, o->tenant,
				"UPDATE connectors SET current_session_id = NULL WHERE tenant_id = ? AND "
				"current_session_id = ?",
				cp, 1, 0);
		(*nstmt)++;
	}
}

/* Columns of the shared statement, in close_params() order after the 8 leading ones. */
static const char *const close_cols[] = {
    "end_ms", "stop_reason", "stop_reason_text", "meter_start", "meter_stop", "sharp_kwh",
    "sharp_amount", "peak_kwh", "peak_amount", "flat_kwh", "flat_amount", "valley_kwh",
    "valley_amount", "total_kwh", "total_loss_kwh", "elec_amount", "service_amount",
    "total_amount", "pile_amount", "bill", "amount_mismatch", "close_digest", "close_source",
    "closed_ms", "tariff_model", "tariff_sharp_elec_rate", "tariff_sharp_service_rate",
    "tariff_peak_elec_rate", "tariff_peak_service_rate", "tariff_flat_elec_rate",
    "tariff_flat_service_rate", "tariff_valley_elec_rate", "tariff_valley_service_rate",
    "tariff_slots", "tariff_script"};
#define SHARED_LEAD 8 /* id, tenant_id, pile_id, gun_no, trade_no, start_mode, start_ms, tariff_id */
#define SHARED_NPARAMS (SHARED_LEAD + CLOSE_NPARAMS - SESSION_TARIFF_NPARAMS)

/* One statement that finishes the session rows of every close in the group that knows its
 * session id: a multi-row upsert on the primary key (installation-wide, with each row's own
 * tenant). Its first assignment is the guard: a row that is already finished, or belongs to
 * another tenant, gets total_kwh = -1, which ck_sessions_energy refuses, so the group fails and
 * its closes are retried one by one through the guarded single-row UPDATE (which then reads
 * the duplicate or conflict back). Then the connector pointers of those sessions are released.
 * Returns the number of statements added (0 or 2). */
static size_t group_rows(struct sop **v, size_t n, evcs_db_txn_t *t)
{
	if (n == 0)
		return 0;
	/* the rows hold their snapshot already: only the close's own columns */
	size_t ncols = sizeof close_cols / sizeof *close_cols - SESSION_TARIFF_NPARAMS;
	size_t cap = 1024 + ncols * 120 + n * (SHARED_NPARAMS * 3 + 40);
	char *sql = malloc(cap);
	evcs_db_param_t *p = calloc(n * SHARED_NPARAMS, sizeof *p);
	char(*slots)[49] = calloc(n, sizeof *slots);
	char *ids = malloc(n * 3 + 96);
	evcs_db_param_t *idp = calloc(n, sizeof *idp);
	if (!sql || !p || !slots || !ids || !idp) {
		free(sql);
		free(p);
		free(slots);
		free(ids);
		free(idp);
		return (size_t)-1;
	}
	size_t L = (size_t)snprintf(sql, cap, "INSERT INTO charging_sessions (id, tenant_id, pile_id, "
					      "gun_no, trade_no, start_mode, start_ms, tariff_id");
	for (size_t c = 0; c < ncols; c++)
		L += (size_t)snprintf(sql + L, cap - L, ", %s", close_cols[c]);
	L += (size_t)snprintf(sql + L, cap - L, ") VALUES ");
	/* one row's placeholders, written once and copied for every row */
	char tuple[512];
	size_t tl = (size_t)snprintf(tuple, sizeof tuple, ", (?, ?, ?, ?, ?, ?, ?, ?");
	for (size_t c = 0; c < ncols; c++)
		tl += (size_t)snprintf(tuple + tl, sizeof tuple - tl, ", %s",
				       !strcmp(close_cols[c], "stop_reason_text") ? "LEFT(?, 128)"
				       : !strcmp(close_cols[c], "close_source")   ? "LEFT(?, 32)"
										  : "?");
	tl += (size_t)snprintf(tuple + tl, sizeof tuple - tl, ")");
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		struct sop *o = v[i];
		if (L + tl >= cap)
			break; /* cannot happen: cap allows SHARED_NPARAMS * 3 + 40 bytes a row */
		memcpy(sql + L, i ? tuple : tuple + 2, i ? tl : tl - 2);
		L += i ? tl : tl - 2;
		sql[L] = 0;
		int64_t kwh[4];
		for (int q = 0; q < 4; q++)
			kwh[q] = o->c.period[q].kwh;
		p[k++] = EVCS_DB_INT(o->session_id);
		p[k++] = EVCS_DB_INT(o->tenant);
		p[k++] = EVCS_DB_INT(o->pile_id);
		p[k++] = EVCS_DB_INT(o->gun);
		p[k++] = EVCS_DB_STR(o->trade);
		p[k++] = EVCS_DB_STR(o->start_mode);
		p[k++] = o->c.start_ms > 0 ? EVCS_DB_INT(o->c.start_ms) : EVCS_DB_NULL;
		p[k++] = o->tariff.found && o->tariff.id > 0 ? EVCS_DB_INT(o->tariff.id) : EVCS_DB_NULL;
		evcs_db_param_t all[CLOSE_NPARAMS];
		close_params(o, kwh, slots[i], all);
		memcpy(&p[k], all, ncols * sizeof *all);
		k += ncols;
	}
	L += (size_t)snprintf(sql + L, cap - L,
			      " ON DUPLICATE KEY UPDATE total_kwh = IF(state = 'finished' OR tenant_id <> "
			      "VALUES(tenant_id), -1, VALUES(total_kwh)), state = 'finished', "
			      "start_ms = COALESCE(start_ms, VALUES(start_ms)), "
			      "tariff_id = COALESCE(tariff_id, VALUES(tariff_id))");
	for (size_t c = 0; c < ncols; c++) {
		const char *col = close_cols[c];
		if (!strcmp(col, "total_kwh"))
			continue;
		L += (size_t)snprintf(sql + L, cap - L, ", %s = VALUES(%s)", col, col);
	}
	evcs_db_txn_add_platform(t, sql, p, k, 0);
	size_t l2 = (size_t)snprintf(ids, n * 3 + 96,
				     "UPDATE connectors SET current_session_id = NULL WHERE "
				     "current_session_id IN (");
	for (size_t i = 0; i < n; i++) {
		l2 += (size_t)snprintf(ids + l2, n * 3 + 96 - l2, "%s?", i ? "," : "");
		idp[i] = EVCS_DB_INT(v[i]->session_id);
	}
	snprintf(ids + l2, n * 3 + 96 - l2, ")");
	evcs_db_txn_add_platform(t, ids, idp, n, 0);
	free(sql);
	free(p);
	free(slots);
	free(ids);
	free(idp);
	return 2;
}

/* Evidence in the plain form `INSERT INTO name (tenant_id, c1, ...) VALUES (?, ?, ...)` (only
 * placeholders in VALUES, nothing after it) can be written for several closes as one multi-row
 * INSERT, as a driver rewrites a batch. Returns the length of the part before " VALUES", or 0. */
static size_t evidence_batchable(const char *sql)
{
	if (!sql || strncasecmp(sql, "INSERT INTO ", 12) != 0)
		return 0;
	const char *open = strchr(sql, '(');
	const char *v = open ? strstr(open, ") VALUES (") : NULL;
	if (!open || !v || strchr(open + 1, '(') < v)
		return 0;
	const char *c = open + 1;
	while (*c == ' ')
		c++;
	if (strncasecmp(c, "tenant_id", 9) != 0 || (c[9] != ',' && c[9] != ' '))
		return 0;
	const char *vals = v + strlen(") VALUES (");
	size_t n = strspn(vals, "?, ");
	if (strcmp(vals + n, ")") != 0)
		return 0;
	return (size_t)(v + 1 - sql);
}

/* One statement for the evidence of the group's closes whose statement text is the same
 * batchable INSERT (the first such text wins; others write their own). The core binds each
 * row's tenant itself, as the data layer does at a marker. Returns statements added. */
static size_t group_evidence(struct sop **v, size_t n, evcs_db_txn_t *t)
{
	const char *text = NULL;
	size_t head = 0, rows = 0, per = 0;
	for (size_t i = 0; i < n; i++) {
		struct sop *o = v[i];
		size_t h = evidence_batchable(o->evidence_sql);
		if (!h)
			continue;
		if (!text) {
			text = o->evidence_sql;
			head = h;
			per = o->nevidence;
		}
		if (strcmp(o->evidence_sql, text) == 0 && o->nevidence == per)
			rows++;
	}
	if (rows < 2)
		return 0;
	const char *tuple = text + head + strlen(" VALUES ");
	size_t cap = head + 16 + rows * (strlen(tuple) + 2);
	char *sql = malloc(cap);
	evcs_db_param_t *p = calloc(rows * (per + 1), sizeof *p);
	if (!sql || !p) {
		free(sql);
		free(p);
		return 0;
	}
	size_t L = (size_t)snprintf(sql, cap, "%.*s VALUES ", (int)head, text), k = 0, r = 0;
	for (size_t i = 0; i < n; i++) {
		struct sop *o = v[i];
		if (!o->evidence_sql || strcmp(o->evidence_sql, text) != 0 || o->nevidence != per)
			continue;
		L += (size_t)snprintf(sql + L, cap - L, "%s%s", r++ ? ", " : "", tuple);
		p[k++] = EVCS_DB_INT(o->tenant);
		for (size_t j = 0; j < per; j++)
			p[k++] = o->evidence[j].type == EVCS_DB_T_REFID ? EVCS_DB_INT(o->session_id)
									 : o->evidence[j];
		o->evidence_merged = 1;
	}
	int rc = evcs_db_txn_add_platform(t, sql, p, k, 0);
	free(sql);
	free(p);
	return rc == EVCS_OK ? 1 : 0;
}

static int write_slots(struct sess_state *st)
{
	evcs_db_stats_t s;
	evcs_db_stats(st->core->db, &s);
	return s.workers > 0 ? s.workers : 1;
}

void sess_flush_cb(evutil_socket_t fd, short what, void *ud)
{
	(void)fd;
	(void)what;
	struct sess_state *st = ud;
	while (st->nready && st->groups_in_flight < write_slots(st)) {
		if (st->groups_in_flight > 0 && st->nready < GROUP_WINDOW_MIN && !st->window_over &&
		    !st->closing && !st->ready_head->solo) {
			/* another group is writing: give a few more closes the chance to join these
			 * (bounded by GROUP_WINDOW_US, or that group's COMMIT, which flushes again) */
			if (!evtimer_pending(st->window_ev, NULL)) {
				struct timeval tv = {0, GROUP_WINDOW_US};
				evtimer_add(st->window_ev, &tv);
			}
			break;
		}
		evcs_db_txn_t *t = evcs_db_txn_new(st->core->db);
		if (!t)
			break;
		struct sop *head = NULL, *tail = NULL, *shared[GROUP_MAX];
		size_t nstmt = 0, taken = 0, nshared = 0;
		/* a close retried alone goes in a group of its own */
		while (st->ready_head && taken < GROUP_MAX) {
			struct sop *o = st->ready_head;
			if (o->solo && taken > 0)
				break;
			st->ready_head = o->rnext;
			if (!st->ready_head)
				st->ready_tail = NULL;
			st->nready--;
			o->rnext = NULL;
			if (tail)
				tail->rnext = o;
			else
				head = o;
			tail = o;
			taken++;
			if (!o->solo && o->mode == CM_UPDATE && !o->pending_state && o->row_snapshot)
				shared[nshared++] = o;
			if (o->solo)
				break;
		}
		/* the shared session statement first, then each close's own statements */
		size_t added = group_rows(shared, nshared, t);
		if (added == (size_t)-1) {
			added = 0;
			nshared = 0; /* out of memory: every close writes its own row */
		}
		nstmt += added;
		if (nshared)
			nstmt += group_evidence(shared, nshared, t);
		for (struct sop *o = head; o; o = o->rnext) {
			int in_shared = 0;
			for (size_t i = 0; i < nshared && !in_shared; i++)
				in_shared = shared[i] == o;
			close_add(o, t, &nstmt, in_shared);
		}
		int rc = evcs_db_txn_submit(t, 0, group_done, head);
		if (rc != EVCS_OK) {
			for (struct sop *o = head, *next; o; o = next) {
				next = o->rnext;
				o->rnext = NULL;
				o->solo = 1; /* a submit failure is the queue's, not a neighbour's */
				sess_fail_answer(o, rc, "close", "cannot submit");
			}
			continue;
		}
		st->groups_in_flight++;
	}
}

void sess_window_cb(evutil_socket_t fd, short what, void *ud)
{
	struct sess_state *st = ud;
	st->window_over = 1;
	sess_flush_cb(fd, what, st);
	st->window_over = 0;
}

static void ready_push(struct sop *o)
{
	struct sess_state *st = o->st;
	if (st->closing) {
		sess_fail_answer(o, EVCS_EUNAVAIL, "close", "shutting down");
		return;
	}
	o->attempt++;
	o->rnext = NULL;
	if (o->solo) {
		/* retries first, so they are not starved behind new closes */
		o->rnext = st->ready_head;
		st->ready_head = o;
		if (!st->ready_tail)
			st->ready_tail = o;
	} else {
		if (st->ready_tail)
			st->ready_tail->rnext = o;
		else
			st->ready_head = o;
		st->ready_tail = o;
	}
	st->nready++;
	/* deferred to the end of this loop pass: closes arriving together share a transaction */
	event_active(st->flush_ev, EV_TIMEOUT, 0);
}

static void conflict_done(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg,
			  void *ud)
{
	(void)nres;
	struct sop *o = ud;
	if (st != EVCS_OK) {
		sess_fail_answer(o, st, "close conflict", errmsg);
		return;
	}
	int64_t alarm = res[0].affected > 0 ? (int64_t)res[0].insert_id : 0;
	evcs_log(EVCS_LOG_WARNING, COMP, o->tenant, o->pile,
		 "close of %s resent with another digest: the stored close is kept (conflict %llu)",
		 o->trade, (unsigned long long)res[1].insert_id);
	evcs_session_result_t r = {.size = sizeof r, .session_id = o->session_id, .conflict = 1,
				   .duplicate = 0, .alarm_id = alarm};
	r.total_kwh = o->c.total_kwh;
	r.pile_amount = o->c.pile_amount;
	sess_answer(o, EVCS_OK, &r);
	if (alarm) {
		char code[48];
		snprintf(code, sizeof code, "record.conflict.%lld", (long long)o->session_id);
		publish_alarm(o->st->core, o->tenant, o->pile, o->gun, code, "major",
			      "session close resent with different content; the stored close is kept",
			      alarm, o->source);
	}
	sess_op_free(o);
}

static void close_conflict(struct sop *o, const evcs_db_result_t *S0)
{
	json_t *diff = json_object();
	json_object_set_new(diff, "digest", json_pack("[s?, s]", evcs_db_cell(S0, 0, 2), o->digest));
	int64_t was_kwh = cell_i64(S0, 0, 3, 0), was_amount = cell_i64(S0, 0, 5, -1);
	if (was_kwh != o->c.total_kwh)
		json_object_set_new(diff, "total_kwh", json_pack("[I, I]", (json_int_t)was_kwh,
								 (json_int_t)o->c.total_kwh));
	if (was_amount != o->c.pile_amount)
		json_object_set_new(diff, "pile_amount", json_pack("[I, I]", (json_int_t)was_amount,
								   (json_int_t)o->c.pile_amount));
	char *dj = json_dumps(diff, JSON_COMPACT);
	json_decref(diff);
	evcs_db_txn_t *t = evcs_db_txn_new(o->st->core->db);
	evcs_db_param_t a[] = {EVCS_DB_INT(o->pile_id), EVCS_DB_INT(o->gun & 0xFF),
			       EVCS_DB_INT(o->session_id), EVCS_DB_INT(o->session_id),
			       dj ? EVCS_DB_STR(dj) : EVCS_DB_NULL, EVCS_DB_STR(o->source)};
	evcs_db_txn_add(t, o->tenant,
			"INSERT IGNORE INTO alarms SET tenant_id = ?, pile_id = ?, gun_no = ?, session_id = ?, "
			"code = CONCAT('record.conflict.', ?), severity = 'major', message = 'session close "
			"resent with different content; the stored close is kept', details = ?, "
			"source = LEFT(?, 32)",
			a, 6, 0);
	evcs_db_param_t c[] = {EVCS_DB_INT(o->session_id), EVCS_DB_INT(o->pile_id),
			       EVCS_DB_STR(o->trade), EVCS_DB_STR(o->digest),
			       dj ? EVCS_DB_STR(dj) : EVCS_DB_STR("{}"), EVCS_DB_REFID(0)};
	evcs_db_txn_add(t, o->tenant,
			"INSERT INTO record_conflicts SET tenant_id = ?, session_id = ?, pile_id = ?, "
			"trade_no = ?, digest = ?, diff = ?, alarm_id = NULLIF(?, 0)",
			c, 6, 0);
	free(dj);
	int rc = evcs_db_txn_submit(t, 0, conflict_done, o);
	if (rc != EVCS_OK)
		sess_fail_answer(o, rc, "close conflict", "cannot submit");
}

static void close_read_done(int st, const evcs_db_result_t *res, size_t nres, const char *errmsg,
			    void *ud)
{
	(void)nres;
	struct sop *o = ud;
	evcs_core_t *core = o->st->core;
	if (st != EVCS_OK) {
		sess_fail_answer(o, st, "close", errmsg);
		return;
	}
	const evcs_db_result_t *S0 = &res[0], *S1 = &res[1], *S2 = &res[2];
	if (S1->nrows == 0) {
		evcs_log(EVCS_LOG_WARNING, COMP, o->tenant, o->pile, "close of %s: no such pile", o->trade);
		sess_answer(o, EVCS_EINVAL, NULL);
		sess_op_free(o);
		return;
	}
	o->station_id = cell_i64(S1, 0, 0, 0);
	o->connector_id = cell_i64(S1, 0, PILE_CONNECTOR_COL, 0);
	memset(&o->tariff, 0, sizeof o->tariff);
	o->mode = CM_INSERT;
	o->pending_state = 0;
	if (S0->nrows > 0) {
		o->session_id = cell_i64(S0, 0, 0, 0);
		const char *state = evcs_db_cell(S0, 0, 1);
		if (state && strcmp(state, "finished") == 0) {
			const char *stored = evcs_db_cell(S0, 0, 2);
			void *e = evcs_strmap_del(o->st->open, o->key);
			free(e);
			if (!stored || strcmp(stored, o->digest) == 0) {
				evcs_session_result_t r = {.size = sizeof r, .session_id = o->session_id,
							   .duplicate = 1};
				r.total_kwh = cell_i64(S0, 0, 3, 0);
				r.total_amount = cell_i64(S0, 0, 4, 0);
				r.pile_amount = cell_i64(S0, 0, 5, -1);
				sess_answer(o, EVCS_OK, &r);
				sess_op_free(o);
			} else {
				close_conflict(o, S0);
			}
			return;
		}
		o->mode = CM_UPDATE;
		o->pending_state = state && strcmp(state, "pending") == 0;
		o->row_snapshot = evcs_tariff_from_row(S0, 0, 7, &o->tariff) == 0;
	}
	if (!o->tariff.found)
		/* no snapshot (a session the core never saw open): what the pile would get now */
		sess_pick_for_pile(core, o->tenant, S1, S2, &o->tariff);
	close_price(o, evcs_strmap_get(o->st->open, o->key));
	ready_push(o);
}

static void close_read(struct sop *o)
{
	evcs_db_txn_t *t = evcs_db_txn_new(o->st->core->db);
	evcs_db_param_t p[] = {EVCS_DB_INT(o->pile_id), EVCS_DB_STR(o->trade)};
	o->attempt++;
	evcs_db_txn_add(t, o->tenant,
			"SELECT s.id, s.state, s.close_digest, s.total_kwh, s.total_amount, s.pile_amount, "
			"s.station_id, " SESSION_TARIFF_COLS " FROM charging_sessions s "
			"WHERE s.tenant_id = ? AND s.pile_id = ? AND s.trade_no = ?",
			p, 2, 0);
	evcs_db_param_t pp[] = {EVCS_DB_INT(o->gun), EVCS_DB_INT(o->pile_id)};
	evcs_db_txn_add(t, o->tenant, PILE_TARIFF_READ, pp, 2, 0);
	evcs_db_txn_add(t, o->tenant, ACTIVE_TARIFF_READ, NULL, 0, 0);
	int rc = evcs_db_txn_submit(t, EVCS_DB_IDEMPOTENT, close_read_done, o);
	if (rc != EVCS_OK)
		sess_fail_answer(o, rc, "close", "cannot submit");
}

/* Copy the plugin's evidence parameters (borrowed for the call) into one allocation. */
static int copy_evidence(struct sop *o, const evcs_db_param_t *ps, size_t n)
{
	size_t bytes = n * sizeof *ps;
	for (size_t i = 0; i < n; i++)
		if (ps[i].type == EVCS_DB_T_STR && ps[i].s)
			bytes += (ps[i].len == SIZE_MAX ? strlen(ps[i].s) : ps[i].len) + 1;
	char *mem = malloc(bytes ? bytes : 1);
	if (!mem)
		return -1;
	evcs_db_param_t *out = (evcs_db_param_t *)(void *)mem;
	char *sp = mem + n * sizeof *ps;
	for (size_t i = 0; i < n; i++) {
		out[i] = ps[i];
		if (ps[i].type == EVCS_DB_T_STR && ps[i].s) {
			size_t l = ps[i].len == SIZE_MAX ? strlen(ps[i].s) : ps[i].len;
			memcpy(sp, ps[i].s, l);
			sp[l] = 0;
			out[i].s = sp;
			out[i].len = l;
			sp += l + 1;
		}
	}
	o->evidence = out;
	o->nevidence = n;
	return 0;
}

int sess_api_close(evcs_plugin_t *p, const evcs_session_close_t *c, evcs_session_done done,
			     void *ud)
{
	if (!p || !c || c->size < offsetof(evcs_session_close_t, evidence_nparams) + sizeof c->evidence_nparams ||
	    !done || c->tenant_id <= 0 || c->pile_id <= 0 || c->gun < 1 || c->gun > 99 ||
	    !valid_identity(c->trade_no) || !c->digest || !*c->digest || strlen(c->digest) > 128 ||
	    c->total_kwh < 0 || (c->start_mode && !valid_start_mode(c->start_mode)) ||
	    (c->id_token && !valid_identity(c->id_token)) || c->evidence_nparams > 64 ||
	    (c->evidence_nparams && !c->evidence_params))
		return EVCS_EINVAL;
	for (int q = 0; c->has_periods && q < 4; q++)
		if (c->period[q].kwh < 0)
			return EVCS_EINVAL;
	evcs_core_t *core = p->core;
	if (!core->db)
		return EVCS_EUNAVAIL;
	if (c->evidence_sql) {
		/* the tenant rule and the placeholder count, checked now: a statement that could never
		 * be queued must not poison the group it would join */
		evcs_db_param_t ev[64];
		for (size_t i = 0; i < c->evidence_nparams; i++)
			ev[i] = c->evidence_params[i].type == EVCS_DB_T_REFID ? EVCS_DB_INT(0)
									     : c->evidence_params[i];
		evcs_db_txn_t *t = evcs_db_txn_new(core->db);
		if (!t)
			return EVCS_ENOMEM;
		int rc = evcs_db_txn_add(t, c->tenant_id, c->evidence_sql, ev, c->evidence_nparams, 0);
		evcs_db_txn_free(t);
		if (rc != EVCS_OK)
			return rc;
	}
	struct sess_state *st = sess_state_of(core);
	if (!st)
		return EVCS_ENOMEM;
	struct sop *o = sess_op_new(st, p, SOP_CLOSE);
	if (!o)
		return EVCS_ENOMEM;
	o->done = done;
	o->ud = ud;
	o->c = *c;
	o->c.size = sizeof o->c;
	o->tenant = c->tenant_id;
	o->pile_id = c->pile_id;
	o->gun = c->gun;
	snprintf(o->pile, sizeof o->pile, "%s", c->pile ? c->pile : "");
	snprintf(o->trade, sizeof o->trade, "%s", c->trade_no);
	snprintf(o->start_mode, sizeof o->start_mode, "%s", c->start_mode ? c->start_mode : "app");
	sess_key(o->key, sizeof o->key, o->pile_id, o->trade);
	o->id_token = c->id_token ? strdup(c->id_token) : NULL;
	o->stop_text = c->stop_reason_text ? strdup(c->stop_reason_text) : NULL;
	o->digest = strdup(c->digest);
	o->evidence_sql = c->evidence_sql ? strdup(c->evidence_sql) : NULL;
	if (!o->digest || (c->evidence_sql && !o->evidence_sql) ||
	    copy_evidence(o, c->evidence_params, c->evidence_nparams) < 0) {
		o->p = NULL;
		sess_op_free(o);
		return EVCS_ENOMEM;
	}
	o->c.pile = o->c.trade_no = o->c.start_mode = o->c.id_token = NULL;
	o->c.stop_reason_text = o->c.digest = o->c.evidence_sql = NULL;
	o->c.evidence_params = NULL;
	struct open_sess *e = evcs_strmap_get(st->open, o->key);
	if (e && e->has_tariff) {
		/* opened here: the snapshot is at hand, write at once (a resend of a finished
		 * session fails the guarded UPDATE and is read back as a duplicate or conflict) */
		o->mode = CM_UPDATE;
		o->session_id = e->session_id;
		o->tariff = e->tariff;
		o->row_snapshot = 1;
		close_price(o, e);
		ready_push(o);
		return EVCS_OK;
	}
	close_read(o);
	return EVCS_OK;
}
