/*
 * charge.c: charging sessions a partner starts. query_start_charge records the partner's
 * StartChargeSeq, sends "start" to the pile's owner through the core and answers at once (§8.3);
 * query_stop_charge sends "stop"; query_equip_charge_status answers from memory while the session
 * is live and from the stored row afterwards. The start/stop results are pushed through the
 * outbox. Sessions live in cec_ctx_t.sessions until their charge order is pushed (notify.c).
 */
#include "cec_plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cec_sess_t *cec_sess_by_seq(cec_ctx_t *c, const cec_partner_rt_t *pt, const char *seq)
{
	for (cec_sess_t *s = c->sessions; s; s = s->next)
		if (s->partner == pt && strcmp(s->seq, seq) == 0)
			return s;
	return NULL;
}

cec_sess_t *cec_sess_by_trade(cec_ctx_t *c, const char *pile, const char *trade)
{
	for (cec_sess_t *s = c->sessions; s; s = s->next)
		if (strcmp(s->trade_no, trade) == 0 && (!pile || strcmp(s->serial, pile) == 0))
			return s;
	return NULL;
}

cec_sess_t *cec_sess_on_gun(cec_ctx_t *c, const char *serial, int gun)
{
	for (cec_sess_t *s = c->sessions; s; s = s->next)
		if (s->gun == gun && strcmp(s->serial, serial) == 0 && s->seq_stat < CEC_SEQ_FINISHED)
			return s;
	return NULL;
}

void cec_sess_free(cec_ctx_t *c, cec_sess_t *s)
{
	for (cec_sess_t **pp = &c->sessions; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	free(s);
}


static void make_trade_no(cec_ctx_t *c, const char *serial, int gun, char out[33])
{
	char ts[20];
	evcs_cec_time_format(cec_now_ms() / 1000, 8 * 3600, CEC_TF_STAMP, ts);
	char tmp[64];
	snprintf(tmp, sizeof tmp, "%.14s%02u%.12s%04u", serial, (unsigned)gun % 100u, ts + 2, c->trade_counter++ % 10000u);
	memcpy(out, tmp, 32);
	out[32] = 0;
}

struct cmd_ctx {
	cec_ctx_t *c;
	int64_t partner_id;
	char seq[CEC_SEQ_LEN + 1];
	bool stop;
};

void cec_push_start_result(cec_ctx_t *c, cec_sess_t *s, int seq_stat, const char *ident)
{
	if (s->start_pushed)
		return;
	s->start_pushed = true;
	char key[128];
	snprintf(key, sizeof key, "%lld:%s", (long long)s->partner->id, s->seq);
	cec_outbox_push(c, s->partner, CEC_IF_NOTIFY_START_CHARGE_RESULT, s->connector_id, key,
			evcs_cec_notify_start_result(&s->partner->profile, s->seq, seq_stat, s->connector_id,
						     (s->start_ms ? s->start_ms : cec_now_ms()) / 1000, ident));
}

void cec_push_stop_result(cec_ctx_t *c, cec_sess_t *s, int fail_reason)
{
	if (s->stop_pushed)
		return;
	s->stop_pushed = true;
	char key[128];
	snprintf(key, sizeof key, "%lld:%s", (long long)s->partner->id, s->seq);
	cec_outbox_push(c, s->partner, CEC_IF_NOTIFY_STOP_CHARGE_RESULT, s->connector_id, key,
			evcs_cec_notify_stop_result(&s->partner->profile, s->seq,
						    fail_reason ? s->seq_stat : CEC_SEQ_FINISHED, s->connector_id,
						    fail_reason));
}

static void start_cmd_done(int status, const char *result, void *ud)
{
	struct cmd_ctx *cc = ud;
	cec_ctx_t *c = cc->c;
	cec_partner_rt_t *pt = cec_partner_by_id(c, cc->partner_id);
	cec_sess_t *s = pt ? cec_sess_by_seq(c, pt, cc->seq) : NULL;
	free(cc);
	if (!s)
		return;
	if (status == EVCS_OK) {
		/* The owner may have chosen its own transaction number. */
		json_t *j = json_loads(result ? result : "{}", 0, NULL);
		const char *t = json_string_value(json_object_get(j, "trade_no"));
		if (t && strlen(t) == 32)
			memcpy(s->trade_no, t, 33);
		json_decref(j);
		return; /* the outcome arrives as EVCS_EV_SESSION_STARTED */
	}
	CEC_LOG(c, EVCS_LOG_NOTICE, s->tenant_id, "start %s on %s refused: %s", s->seq, s->connector_id,
	    c->api->status_name(status));
	s->seq_stat = CEC_SEQ_FINISHED;
	char ident[32];
	snprintf(ident, sizeof ident, "%d", status == EVCS_EOFFLINE ? 2 : 99);
	cec_push_start_result(c, s, CEC_SEQ_UNKNOWN, ident);
	s->stop_pushed = s->order_pushed = true;
	cec_sess_free(c, s);
}

static void open_done(int status, const char *result, void *ud)
{
	rq_t *r = ud;
	cec_ctx_t *c = r->c;
	if (status == EVCS_EEXIST) {
		/* §8: a repeated StartChargeSeq is refused (ORISE FailReason 10, StartChargeSeqStat 5). */
		cec_rq_reply(r, 0, "", evcs_cec_start_charge_reply(&r->pt->profile, &r->biz, CEC_SEQ_UNKNOWN, 10));
		return;
	}
	if (status != EVCS_OK) {
		CEC_LOG(c, EVCS_LOG_WARNING, r->pt->tenant_id, "cannot record session %s: %s %s", r->biz.seq,
		    c->api->status_name(status), result ? result : "");
		cec_rq_reply(r, CEC_RET_BUSY, "cannot record the session, retry later", NULL);
		return;
	}
	cec_sess_t *s = calloc(1, sizeof *s);
	struct cmd_ctx *cc = calloc(1, sizeof *cc);
	if (!s || !cc) {
		free(s);
		free(cc);
		cec_rq_reply(r, CEC_RET_SYSTEM, "out of memory", NULL);
		return;
	}
	s->tenant_id = r->pt->tenant_id;
	s->partner = r->pt;
	snprintf(s->seq, sizeof s->seq, "%s", r->biz.seq);
	snprintf(s->connector_id, sizeof s->connector_id, "%s", r->biz.connector_id);
	snprintf(s->serial, sizeof s->serial, "%s", r->ref.serial);
	s->gun = r->ref.gun_no;
	memcpy(s->trade_no, r->trade_no, 33);
	s->seq_stat = CEC_SEQ_STARTING;
	s->live.soc = -1;
	s->live.phases = 1;
	s->next = c->sessions;
	c->sessions = s;
	/* Answer at once (§8.3: the reply only says the command was accepted). */
	cc->c = c;
	cc->partner_id = r->pt->id;
	snprintf(cc->seq, sizeof cc->seq, "%s", s->seq);
	/* The pile's owner opens the session with this partner_id and partner_seq: that is how the
	 * stored session is found again (cec.session.get, the charge order). */
	char args[256];
	snprintf(args, sizeof args,
		 "{\"trade_no\":\"%s\",\"mode\":\"partner\",\"start_mode\":\"partner\",\"partner_id\":%lld,"
		 "\"partner_seq\":\"%s\"}",
		 s->trade_no, (long long)s->partner->id, s->seq);
	evcs_command_t cmd = {.size = sizeof cmd, .tenant_id = s->tenant_id, .pile = s->serial, .gun = s->gun,
			      .name = "start", .args_json = args};
	cec_rq_reply(r, 0, "", evcs_cec_start_charge_reply(&s->partner->profile, &r->biz, CEC_SEQ_STARTING, 0));
	if (c->api->command_send(c->p, &cmd, (unsigned)c->command_timeout_ms, start_cmd_done, cc) != EVCS_OK)
		start_cmd_done(EVCS_EOFFLINE, NULL, cc);
}

typedef int (*charge_validate_fn)(const json_t *data, const char *caller_opid, const cec_profile_t *p,
				  cec_connector_fn lookup, void *ud, cec_biz_req_t *out, cec_status_t *st);
typedef json_t *(*charge_reply_fn)(const cec_profile_t *p, const cec_biz_req_t *req, int seq_stat, int fail_reason);

/* What query_start_charge and query_stop_charge share: the Data checks (answered with their Ret)
 * and an unknown or invisible ConnectorID (answered SuccStat 1, FailReason 1). 0 when r->biz is
 * a request for a connector this partner sees; -1 when r was answered (and freed). */
static int charge_prologue(rq_t *r, charge_validate_fn validate, charge_reply_fn reply)
{
	cec_status_t st;
	struct conn_lookup l = {r->c, r->pt};
	if (validate(r->in.data, r->in.req.operator_id, &r->pt->profile, cec_connector_known, &l, &r->biz, &st)) {
		cec_rq_reply(r, st.ret, st.msg, NULL);
		return -1;
	}
	if (!r->biz.connector_known) {
		cec_rq_reply(r, 0, "", reply(&r->pt->profile, &r->biz, CEC_SEQ_UNKNOWN, 1));
		return -1;
	}
	return 0;
}

void cec_serve_start_charge(rq_t *r)
{
	cec_ctx_t *c = r->c;
	if (charge_prologue(r, evcs_cec_validate_start_charge, evcs_cec_start_charge_reply))
		return;
	if (cec_sess_by_seq(c, r->pt, r->biz.seq)) {
		cec_rq_reply(r, 0, "", evcs_cec_start_charge_reply(&r->pt->profile, &r->biz, CEC_SEQ_UNKNOWN, 10));
		return;
	}
	cec_resolve_connector(c, r->pt, r->biz.connector_id, &r->ref);
	int status;
	bool plugged;
	cec_gun_state(c, r->ref.serial, r->ref.gun_no, r->ref.gun, &status, &plugged);
	int fr = 0;
	if (status == CEC_GUN_OFFLINE)
		fr = 2; /* device offline */
	else if (status != CEC_GUN_IDLE || cec_sess_on_gun(c, r->ref.serial, r->ref.gun_no))
		fr = 4; /* custom: connector busy or faulty */
	else if (!plugged)
		fr = 3; /* ORISE: not plugged in */
	if (fr) {
		cec_rq_reply(r, 0, "", evcs_cec_start_charge_reply(&r->pt->profile, &r->biz, CEC_SEQ_UNKNOWN, fr));
		return;
	}
	make_trade_no(c, r->ref.serial, r->ref.gun_no, r->trade_no);
	json_t *a = json_pack("{s:I, s:I, s:s, s:I, s:I, s:I, s:i, s:s}", "tenant_id", (json_int_t)r->pt->tenant_id,
			      "partner_id", (json_int_t)r->pt->id, "partner_seq", r->biz.seq, "pile_id",
			      (json_int_t)json_integer_value(json_object_get(r->ref.pile, "id")), "station_id",
			      (json_int_t)json_integer_value(json_object_get(r->ref.station, "id")), "connector_id",
			      (json_int_t)json_integer_value(json_object_get(r->ref.gun, "id")), "gun_no", r->ref.gun_no,
			      "trade_no", r->trade_no);
	char *s = a ? json_dumps(a, JSON_COMPACT) : NULL;
	json_decref(a);
	if (!s || cec_store(c, "cec.session.open", s, open_done, r) != EVCS_OK) {
		free(s);
		cec_rq_reply(r, CEC_RET_BUSY, "cannot record the session, retry later", NULL);
		return;
	}
	free(s);
}

void cec_sess_to_model(const cec_sess_t *s, cec_session_t *m, int conn_status)
{
	memset(m, 0, sizeof *m);
	m->start_charge_seq = s->seq;
	m->seq_stat = s->seq_stat;
	m->connector_id = s->connector_id;
	m->connector_status = conn_status;
	m->live = s->live;
	m->start_time = (s->start_ms ? s->start_ms : cec_now_ms()) / 1000;
	m->sample_time = (s->sample_ms ? s->sample_ms : cec_now_ms()) / 1000;
	m->end_time = (s->end_ms ? s->end_ms : cec_now_ms()) / 1000;
	m->energy = s->energy;
	m->total_money = s->money;
}

int cec_sess_conn_status(cec_ctx_t *c, const cec_sess_t *s)
{
	cec_live_gun_t *l = cec_live_get(c, s->serial, s->gun, false);
	int st = l ? l->status : (s->seq_stat == CEC_SEQ_CHARGING ? CEC_GUN_CHARGING : CEC_GUN_IDLE);
	return evcs_cec_charge_connector_status((cec_gun_state_t)st, l ? l->plugged : true, false);
}

/* Session as stored (after a restart, or a finished one) -> model, with per-period details. */
size_t cec_row_details(json_t *row, cec_charge_detail_t d[4], int64_t start, int64_t end)
{
	static const char *pk[4] = {"sharp", "peak", "flat", "valley"};
	size_t n = 0;
	for (int i = 0; i < 4; i++) {
		char k[32];
		snprintf(k, sizeof k, "%s_kwh", pk[i]);
		int64_t kwh = json_integer_value(json_object_get(row, k));
		snprintf(k, sizeof k, "%s_amount", pk[i]);
		int64_t amount = json_integer_value(json_object_get(row, k));
		if (!kwh && !amount)
			continue;
		snprintf(k, sizeof k, "%s_elec_rate", pk[i]);
		int64_t er = json_integer_value(json_object_get(row, k));
		snprintf(k, sizeof k, "%s_service_rate", pk[i]);
		int64_t sr = json_integer_value(json_object_get(row, k));
		/* Energy 1e-4 kWh x price 1e-5 yuan/kWh = 1e-9 yuan; /1e4 gives 1e-5 yuan, rounded half up. */
		int64_t elec = er ? (kwh * er + 5000) / 10000 : amount;
		if (elec > amount)
			elec = amount;
		d[n] = (cec_charge_detail_t){.start = start, .end = end, .elec_price = er, .service_price = sr,
					      .energy = kwh, .elec_money = elec, .service_money = amount - elec,
					      .type = (cec_price_type_t)i};
		n++;
	}
	return n;
}

int cec_stop_reason_code(json_t *row)
{
	const char *by = cec_js(row, "stop_requested_by");
	if (!strcmp(by, "partner"))
		return 1;
	if (!strcmp(by, "pile"))
		return 2;
	return 0;
}

static int row_seq_stat(const char *state)
{
	if (!strcmp(state, "pending") || !strcmp(state, "starting"))
		return CEC_SEQ_STARTING;
	if (!strcmp(state, "charging"))
		return CEC_SEQ_CHARGING;
	if (!strcmp(state, "stopping"))
		return CEC_SEQ_STOPPING;
	if (!strcmp(state, "finished"))
		return CEC_SEQ_FINISHED;
	return CEC_SEQ_UNKNOWN;
}

static void charge_status_done(int status, const char *result, void *ud)
{
	rq_t *r = ud;
	if (status == EVCS_ENOENT) {
		cec_rq_reply(r, CEC_RET_BIZ, "StartChargeSeq unknown", NULL);
		return;
	}
	if (status != EVCS_OK) {
		cec_rq_reply(r, CEC_RET_BUSY, "session store unavailable", NULL);
		return;
	}
	json_t *j = json_loads(result, 0, NULL);
	json_t *row = json_object_get(j, "session");
	cec_session_t m = {0};
	char cid[CEC_ID_MAX + 1];
	cec_connector_id(cid, cec_js(row, "serial"), (int)json_integer_value(json_object_get(row, "gun_no")));
	m.start_charge_seq = r->biz.seq;
	m.seq_stat = row_seq_stat(cec_js(row, "state"));
	m.connector_id = cid;
	m.connector_status = m.seq_stat == CEC_SEQ_CHARGING ? CEC_CS_CHARGING : CEC_CS_IDLE;
	m.live.soc = -1;
	m.live.phases = 1;
	int64_t st = json_integer_value(json_object_get(row, "start_ms"));
	int64_t en = json_integer_value(json_object_get(row, "end_ms"));
	m.start_time = (st ? st : json_integer_value(json_object_get(row, "requested_ms"))) / 1000;
	m.sample_time = m.end_time = (en ? en : cec_now_ms()) / 1000;
	bool fin = m.seq_stat == CEC_SEQ_FINISHED;
	m.energy = json_integer_value(json_object_get(row, fin ? "total_kwh" : "live_kwh"));
	m.total_money = json_integer_value(json_object_get(row, fin ? "total_amount" : "live_amount"));
	cec_charge_detail_t d[4];
	if (fin) {
		m.elec_money = json_integer_value(json_object_get(row, "elec_amount"));
		m.service_money = json_integer_value(json_object_get(row, "service_amount"));
		m.n_details = cec_row_details(row, d, m.start_time, m.end_time);
		m.details = d;
	}
	json_t *reply = evcs_cec_charge_status_reply(&r->pt->profile, &m);
	json_decref(j);
	cec_rq_reply(r, reply ? 0 : CEC_RET_SYSTEM, reply ? "" : "cannot build reply", reply);
}

void cec_serve_charge_status(rq_t *r)
{
	cec_ctx_t *c = r->c;
	cec_status_t st;
	if (evcs_cec_validate_charge_status(r->in.data, r->in.req.operator_id, &r->pt->profile, &r->biz, &st)) {
		cec_rq_reply(r, st.ret, st.msg, NULL);
		return;
	}
	cec_sess_t *s = cec_sess_by_seq(c, r->pt, r->biz.seq);
	if (s) {
		cec_session_t m;
		cec_sess_to_model(s, &m, cec_sess_conn_status(c, s));
		cec_rq_reply(r, 0, "", evcs_cec_charge_status_reply(&r->pt->profile, &m));
		return;
	}
	json_t *a = json_pack("{s:I, s:I, s:s}", "tenant_id", (json_int_t)r->pt->tenant_id, "partner_id",
			      (json_int_t)r->pt->id, "partner_seq", r->biz.seq);
	char *js_ = a ? json_dumps(a, JSON_COMPACT) : NULL;
	json_decref(a);
	if (!js_ || cec_store(c, "cec.session.get", js_, charge_status_done, r) != EVCS_OK)
		cec_rq_reply(r, CEC_RET_BUSY, "session store unavailable", NULL);
	free(js_);
}

static void stop_cmd_done(int status, const char *result, void *ud)
{
	struct cmd_ctx *cc = ud;
	cec_ctx_t *c = cc->c;
	cec_partner_rt_t *pt = cec_partner_by_id(c, cc->partner_id);
	cec_sess_t *s = pt ? cec_sess_by_seq(c, pt, cc->seq) : NULL;
	free(cc);
	if (!s || status == EVCS_OK)
		return; /* the outcome arrives as EVCS_EV_SESSION_STOPPED */
	CEC_LOG(c, EVCS_LOG_NOTICE, s->tenant_id, "stop %s on %s failed: %s", s->seq, s->connector_id,
	    c->api->status_name(status));
	s->stop_requested = false;
	if (s->seq_stat == CEC_SEQ_STOPPING)
		s->seq_stat = CEC_SEQ_CHARGING;
	cec_push_stop_result(c, s, status == EVCS_EOFFLINE ? 2 : 4);
	s->stop_pushed = false; /* a later real stop still gets its own result */
}

void cec_serve_stop_charge(rq_t *r)
{
	cec_ctx_t *c = r->c;
	if (charge_prologue(r, evcs_cec_validate_stop_charge, evcs_cec_stop_charge_reply))
		return;
	cec_sess_t *s = cec_sess_by_seq(c, r->pt, r->biz.seq);
	if (!s || strcmp(s->connector_id, r->biz.connector_id) != 0 || s->seq_stat >= CEC_SEQ_FINISHED) {
		/* Unknown here: finished (or never ours); 3 = already stopped (§8.7). */
		cec_rq_reply(r, 0, "", evcs_cec_stop_charge_reply(&r->pt->profile, &r->biz, CEC_SEQ_FINISHED, 3));
		return;
	}
	struct cmd_ctx *cc = calloc(1, sizeof *cc);
	if (!cc) {
		cec_rq_reply(r, CEC_RET_SYSTEM, "out of memory", NULL);
		return;
	}
	cc->c = c;
	cc->partner_id = r->pt->id;
	cc->stop = true;
	snprintf(cc->seq, sizeof cc->seq, "%s", s->seq);
	s->stop_requested = true;
	s->seq_stat = CEC_SEQ_STOPPING;
	char args[128];
	snprintf(args, sizeof args, "{\"trade_no\":\"%s\",\"by\":\"partner\"}", s->trade_no);
	evcs_command_t cmd = {.size = sizeof cmd, .tenant_id = s->tenant_id, .pile = s->serial, .gun = s->gun,
			      .name = "stop", .args_json = args};
	cec_rq_reply(r, 0, "", evcs_cec_stop_charge_reply(&r->pt->profile, &r->biz, CEC_SEQ_STOPPING, 0));
	if (c->api->command_send(c->p, &cmd, (unsigned)c->command_timeout_ms, stop_cmd_done, cc) != EVCS_OK)
		stop_cmd_done(EVCS_EOFFLINE, NULL, cc);
}
