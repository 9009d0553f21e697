/*
 * notify.c: bus events -> pushes. Gun status and pile offline become notification_stationStatus,
 * meter samples notification_equip_charge_status, session start/stop their result pushes, a
 * closed transaction of a partner's session its notification_charge_order_info; once a day
 * check_charge_orders reconciles yesterday's orders with each partner. Subscribers run last
 * (EVCS_PRIO_LAST), after the pile's owner stored the change. Loop thread only.
 */
#include "cec_plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- bus events -> pushes ------------------------------------------------------------------- */

static void push_gun_status(cec_ctx_t *c, int64_t tenant, const char *serial, int gun, int64_t ts_ms)
{
	cec_tenant_cat_t *tc = cec_tenant_cat(c, tenant, false);
	json_t *pile = tc && tc->cat ? cec_cat_pile(tc->cat, serial) : NULL;
	if (!pile)
		return;
	json_t *g = cec_cat_gun(tc->cat, json_integer_value(json_object_get(pile, "id")), gun);
	if (!g)
		return;
	int64_t sid = json_integer_value(json_object_get(pile, "station_id"));
	bool dc = strcmp(cec_js(pile, "current_type"), "ac") != 0;
	for (cec_partner_rt_t *pt = c->partners; pt; pt = pt->next) {
		if (!pt->active || pt->tenant_id != tenant || !pt->base_url[0] || !cec_partner_sees(pt, sid))
			continue;
		arena_t a = {0};
		cec_gun_t cg = {0};
		cec_fill_gun(c, &a, serial, dc, g, &cg);
		cec_sess_t *s = cec_sess_on_gun(c, serial, gun);
		if (s && pt->profile.status_push_live)
			cg.live = &s->live;
		char key[128];
		snprintf(key, sizeof key, "%lld:%s:%lld:%d:%d", (long long)pt->id, cg.connector_id, (long long)ts_ms,
			 (int)cg.state, cg.plugged);
		cec_outbox_push(c, pt, CEC_IF_NOTIFY_STATION_STATUS, cg.connector_id, key,
				evcs_cec_notify_station_status(&pt->profile, &cg));
		cec_arena_free(&a);
	}
}

static int on_gun_status(const evcs_event_t *ev, void *ud)
{
	cec_ctx_t *c = ud;
	if (!ev->pile || ev->gun <= 0)
		return EVCS_DEFER;
	cec_live_gun_t *l = cec_live_get(c, ev->pile, ev->gun, true);
	if (!l)
		return EVCS_DEFER;
	int st = (int)c->api->event_int(ev, "status", l->status);
	bool plugged = c->api->event_int(ev, "plugged", l->plugged) != 0;
	/* Every reported change is pushed, in order (no coalescing): partners see each state. */
	l->status = st;
	l->plugged = plugged;
	push_gun_status(c, ev->tenant_id, ev->pile, ev->gun, ev->ts_ms);
	return EVCS_OK;
}

static int on_pile_offline(const evcs_event_t *ev, void *ud)
{
	cec_ctx_t *c = ud;
	if (!ev->pile)
		return EVCS_DEFER;
	cec_tenant_cat_t *tc = cec_tenant_cat(c, ev->tenant_id, false);
	json_t *pile = tc && tc->cat ? cec_cat_pile(tc->cat, ev->pile) : NULL;
	if (!pile)
		return EVCS_DEFER;
	int64_t pid = json_integer_value(json_object_get(pile, "id"));
	size_t i;
	json_t *g;
	json_array_foreach(json_object_get(tc->cat, "connectors"), i, g)
	{
		if (json_integer_value(json_object_get(g, "pile_id")) != pid)
			continue;
		int gun = (int)json_integer_value(json_object_get(g, "gun_no"));
		cec_live_gun_t *l = cec_live_get(c, ev->pile, gun, true);
		if (!l || l->status == CEC_GUN_OFFLINE)
			continue;
		l->status = CEC_GUN_OFFLINE;
		push_gun_status(c, ev->tenant_id, ev->pile, gun, ev->ts_ms);
	}
	return EVCS_OK;
}

static void push_charge_status(cec_ctx_t *c, cec_sess_t *s)
{
	cec_session_t m;
	cec_sess_to_model(s, &m, cec_sess_conn_status(c, s));
	char key[128];
	snprintf(key, sizeof key, "%lld:%s:%lld", (long long)s->partner->id, s->seq, (long long)s->sample_ms);
	s->last_push_ms = s->sample_ms;
	cec_outbox_push(c, s->partner, CEC_IF_NOTIFY_EQUIP_CHARGE_STATUS, s->connector_id, key,
			evcs_cec_notify_charge_status(&s->partner->profile, &m));
}

static int on_session_started(const evcs_event_t *ev, void *ud)
{
	cec_ctx_t *c = ud;
	const char *trade = c->api->event_str(ev, "trade_no");
	cec_sess_t *s = trade ? cec_sess_by_trade(c, ev->pile, trade) : NULL;
	if (!s)
		return EVCS_DEFER;
	/* YKC 0x33 convention: result 1 started, 0 failed (reason in `reason`). */
	if (c->api->event_int(ev, "result", 0) == 1) {
		s->seq_stat = CEC_SEQ_CHARGING;
		s->start_ms = ev->ts_ms;
		cec_push_start_result(c, s, CEC_SEQ_CHARGING, NULL);
	} else {
		char ident[24];
		snprintf(ident, sizeof ident, "%lld", (long long)c->api->event_int(ev, "reason", 99));
		s->seq_stat = CEC_SEQ_FINISHED;
		cec_push_start_result(c, s, CEC_SEQ_UNKNOWN, ident);
		/* A failed start still owes a transaction record; the order (if any) follows it. */
	}
	return EVCS_OK;
}

static int on_meter_sample(const evcs_event_t *ev, void *ud)
{
	cec_ctx_t *c = ud;
	const char *trade = c->api->event_str(ev, "trade_no");
	cec_sess_t *s = trade ? cec_sess_by_trade(c, ev->pile, trade) : NULL;
	if (!s || s->seq_stat >= CEC_SEQ_FINISHED)
		return EVCS_DEFER;
	if (s->seq_stat == CEC_SEQ_STARTING) {
		/* Samples only flow once charging: the start result was missed or is late. */
		s->seq_stat = CEC_SEQ_CHARGING;
		s->start_ms = ev->ts_ms;
		cec_push_start_result(c, s, CEC_SEQ_CHARGING, NULL);
	}
	s->sample_ms = ev->ts_ms;
	s->energy = c->api->event_int(ev, "kwh", s->energy);
	s->money = c->api->event_int(ev, "amount", s->money);
	s->live.voltage_dv[0] = (int32_t)c->api->event_int(ev, "voltage_dv", 0);
	s->live.current_da[0] = (int32_t)c->api->event_int(ev, "current_da", 0);
	s->live.soc = (int)c->api->event_int(ev, "soc", -1);
	if (!s->last_push_ms || s->sample_ms - s->last_push_ms >= c->status_interval_ms)
		push_charge_status(c, s);
	return EVCS_OK;
}

static int on_session_stopped(const evcs_event_t *ev, void *ud)
{
	cec_ctx_t *c = ud;
	const char *trade = c->api->event_str(ev, "trade_no");
	cec_sess_t *s = trade ? cec_sess_by_trade(c, ev->pile, trade) : NULL;
	if (!s)
		return EVCS_DEFER;
	if (s->seq_stat == CEC_SEQ_STARTING)
		cec_push_start_result(c, s, CEC_SEQ_CHARGING, NULL);
	s->seq_stat = CEC_SEQ_FINISHED;
	s->end_ms = ev->ts_ms;
	cec_push_stop_result(c, s, 0);
	return EVCS_OK;
}

struct order_ctx {
	cec_ctx_t *c;
	int64_t tenant_id;
	char pile[15], trade[33];
};

static void order_done(int status, const char *result, void *ud)
{
	struct order_ctx *oc = ud;
	cec_ctx_t *c = oc->c;
	if (status != EVCS_OK) {
		if (status != EVCS_ENOENT)
			CEC_LOG(c, EVCS_LOG_ERR, oc->tenant_id, "cannot read session %s for its CEC order: %s", oc->trade,
			    c->api->status_name(status));
		free(oc);
		return;
	}
	json_t *j = json_loads(result, 0, NULL);
	json_t *row = json_object_get(j, "session");
	cec_partner_rt_t *pt = cec_partner_by_id(c, json_integer_value(json_object_get(row, "partner_id")));
	const char *seq = cec_js(row, "partner_seq");
	cec_sess_t *s = pt ? cec_sess_by_seq(c, pt, seq) : NULL;
	if (pt && *seq && (!s || !s->order_pushed)) {
		if (s && !s->stop_pushed) {
			s->seq_stat = CEC_SEQ_FINISHED;
			cec_push_stop_result(c, s, 0);
		}
		char cid[CEC_ID_MAX + 1];
		cec_connector_id(cid, cec_js(row, "serial"), (int)json_integer_value(json_object_get(row, "gun_no")));
		cec_session_t m = {0};
		m.start_charge_seq = seq;
		m.seq_stat = CEC_SEQ_FINISHED;
		m.connector_id = cid;
		m.connector_status = CEC_CS_IDLE;
		m.live.soc = -1;
		int64_t st = json_integer_value(json_object_get(row, "start_ms"));
		int64_t en = json_integer_value(json_object_get(row, "end_ms"));
		m.start_time = (st ? st : json_integer_value(json_object_get(row, "requested_ms"))) / 1000;
		m.end_time = m.sample_time = (en ? en : cec_now_ms()) / 1000;
		m.energy = json_integer_value(json_object_get(row, "total_kwh"));
		m.elec_money = json_integer_value(json_object_get(row, "elec_amount"));
		m.service_money = json_integer_value(json_object_get(row, "service_amount"));
		m.total_money = json_integer_value(json_object_get(row, "total_amount"));
		cec_charge_detail_t d[4];
		m.n_details = cec_row_details(row, d, m.start_time, m.end_time);
		m.details = d;
		m.stop_reason = cec_stop_reason_code(row);
		m.vin = *cec_js(row, "vin") ? cec_js(row, "vin") : NULL;
		char key[128];
		snprintf(key, sizeof key, "%lld:%s", (long long)pt->id, seq);
		cec_outbox_push(c, pt, CEC_IF_NOTIFY_CHARGE_ORDER_INFO, cid, key, evcs_cec_notify_order_info(&pt->profile, &m));
		if (s)
			cec_sess_free(c, s);
	}
	json_decref(j);
	free(oc);
}

static int on_transaction_closed(const evcs_event_t *ev, void *ud)
{
	cec_ctx_t *c = ud;
	const char *trade = c->api->event_str(ev, "trade_no");
	int64_t sid = c->api->event_int(ev, "session_id", 0);
	if (!trade && sid <= 0)
		return EVCS_DEFER;
	if (c->api->event_int(ev, "duplicate", 0))
		return EVCS_DEFER;
	/* Sessions started before a restart are not in memory: the stored row says whether a
	 * partner owns it. */
	struct order_ctx *oc = calloc(1, sizeof *oc);
	if (!oc)
		return EVCS_DEFER;
	oc->c = c;
	oc->tenant_id = ev->tenant_id;
	snprintf(oc->pile, sizeof oc->pile, "%s", ev->pile ? ev->pile : "");
	snprintf(oc->trade, sizeof oc->trade, "%s", trade ? trade : "");
	json_t *a = json_pack("{s:I}", "tenant_id", (json_int_t)ev->tenant_id);
	if (sid > 0)
		json_object_set_new(a, "id", json_integer(sid));
	else {
		json_object_set_new(a, "trade_no", json_string(trade));
		if (ev->pile)
			json_object_set_new(a, "pile", json_string(ev->pile));
	}
	char *s = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	if (!s || cec_store(c, "cec.session.get", s, order_done, oc) != EVCS_OK)
		free(oc);
	free(s);
	return EVCS_OK;
}

/* ---- daily reconciliation (check_charge_orders, §8.10) ---- */

struct check_ctx {
	cec_ctx_t *c;
	int64_t partner_id, start_s, end_s;
};

static void orders_done(int status, const char *result, void *ud)
{
	struct check_ctx *k = ud;
	cec_ctx_t *c = k->c;
	cec_partner_rt_t *pt = cec_partner_by_id(c, k->partner_id);
	if (status != EVCS_OK || !pt) {
		if (pt)
			CEC_LOG(c, EVCS_LOG_WARNING, pt->tenant_id, "check_charge_orders for %s skipped: %s", pt->operator_id,
			    c->api->status_name(status));
		free(k);
		return;
	}
	json_t *j = json_loads(result, 0, NULL);
	json_t *rows = json_object_get(j, "orders");
	size_t n = json_array_size(rows), i;
	cec_order_sum_t *o = calloc(n + 1, sizeof *o);
	json_t *row;
	json_array_foreach(rows, i, row) if (o)
	{
		o[i].start_charge_seq = cec_js(row, "partner_seq");
		o[i].energy = json_integer_value(json_object_get(row, "total_kwh"));
		o[i].total_money = json_integer_value(json_object_get(row, "total_amount"));
	}
	char day[20], seq[CEC_SEQ_LEN + 1], key[64];
	evcs_cec_time_format(k->start_s, pt->profile.utc_offset_sec, CEC_TF_STAMP, day);
	char tmp[64];
	snprintf(tmp, sizeof tmp, "%.9sCHK%.8s%07lld", pt->our_operator_id, day, (long long)(pt->id % 10000000));
	snprintf(seq, sizeof seq, "%.27s", tmp);
	snprintf(key, sizeof key, "%lld:check:%.8s", (long long)pt->id, day);
	if (o)
		cec_outbox_push(c, pt, CEC_IF_CHECK_CHARGE_ORDERS, "check", key,
				evcs_cec_check_charge_orders(&pt->profile, seq, k->start_s, k->end_s - 1, o, n));
	free(o);
	json_decref(j);
	free(k);
}

void cec_check_tick(void *ud)
{
	cec_ctx_t *c = ud;
	if (!c->ready || c->check_hour < 0)
		return;
	const int64_t off = 8 * 3600; /* partners' local time (§2.1); per-partner offsets share the day */
	int64_t now = cec_now_ms() / 1000;
	int64_t day = (now + off) / 86400;
	int hour = (int)(((now + off) % 86400) / 3600);
	if (day == c->last_check_day || hour < c->check_hour)
		return;
	c->last_check_day = day;
	int64_t start = (day - 1) * 86400 - off, end = day * 86400 - off;
	for (cec_partner_rt_t *pt = c->partners; pt; pt = pt->next) {
		if (!pt->active || !pt->base_url[0])
			continue;
		struct check_ctx *k = calloc(1, sizeof *k);
		if (!k)
			continue;
		*k = (struct check_ctx){c, pt->id, start, end};
		char a[160];
		snprintf(a, sizeof a, "{\"tenant_id\":%lld,\"partner_id\":%lld,\"start_ms\":%lld,\"end_ms\":%lld}",
			 (long long)pt->tenant_id, (long long)pt->id, (long long)start * 1000, (long long)end * 1000);
		if (cec_store(c, "cec.orders", a, orders_done, k) != EVCS_OK)
			free(k);
	}
}


int cec_notify_subscribe(cec_ctx_t *c)
{
	static const struct {
		uint32_t type;
		evcs_bus_cb cb;
	} subs[] = {{EVCS_EV_GUN_STATUS, on_gun_status},          {EVCS_EV_PILE_OFFLINE, on_pile_offline},
		    {EVCS_EV_SESSION_STARTED, on_session_started}, {EVCS_EV_METER_SAMPLE, on_meter_sample},
		    {EVCS_EV_SESSION_STOPPED, on_session_stopped}, {EVCS_EV_TRANSACTION_CLOSED, on_transaction_closed}};
	for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
		/* Run after the owning plugin (which stores the change first). */
		if (c->api->bus_subscribe(c->p, subs[i].type, EVCS_PRIO_LAST, subs[i].cb, c, &c->subs[c->nsubs++]) !=
		    EVCS_OK)
			return EVCS_ERR;
	return EVCS_OK;
}
