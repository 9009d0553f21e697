/*
 * serve.c: the CEC route the plugin serves (POST <prefix>[<OurOperatorID>/]<iface>). Finds the
 * partner, runs the §4 envelope checks (evcs_cec_accept), dispatches by interface, and answers
 * the interfaces that need no charging session: query_token, query_stations_info,
 * query_station_status, query_station_stats, query_equip_auth, query_equip_business_policy.
 * Every request gets exactly one envelope reply through cec_rq_reply (HTTP 200, Ret per §2.3).
 */
#include "cec_plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- inbound requests ----------------------------------------------------------------------- */


void cec_rq_reply(rq_t *r, int ret, const char *msg, json_t *data)
{
	cec_ctx_t *c = r->c;
	char *body = evcs_cec_inbound_reply(&r->in, ret, msg ? msg : (ret ? evcs_cec_ret_text(ret) : ""), data);
	if (ret)
		c->api->metric_add(c->m_err, 1);
	if (ret && ret != CEC_RET_BUSY)
		CEC_LOG(c, EVCS_LOG_INFO, r->pt ? r->pt->tenant_id : 0, "%s from %s: Ret %d %s", evcs_cec_iface_name(r->iface),
		    r->in.req.operator_id[0] ? r->in.req.operator_id : c->api->http_peer(r->req), ret, msg ? msg : "");
	if (body)
		c->api->http_reply(r->req, 200, "application/json;charset=utf-8", body, strlen(body));
	else
		c->api->http_reply(r->req, 500, "text/plain", "internal error\n", 15);
	free(body);
	json_decref(data);
	evcs_cec_inbound_clear(&r->in);
	free(r);
}

struct lookup_ud {
	cec_ctx_t *c;
	const char *our;
	cec_partner_rt_t *found;
	int matches;
};

static int lookup_partner(void *ud, const char *opid, cec_partner_t *out)
{
	struct lookup_ud *l = ud;
	l->found = NULL;
	l->matches = 0;
	for (cec_partner_rt_t *pt = l->c->partners; pt; pt = pt->next) {
		if (!pt->active || strcmp(pt->operator_id, opid) != 0)
			continue;
		if (l->our && strcmp(pt->our_operator_id, l->our) != 0)
			continue;
		l->found = pt;
		l->matches++;
	}
	/* One OperatorID partnered with several tenants needs the /<OurOperatorID>/ form. */
	if (l->matches != 1)
		return 0;
	out->profile = &l->found->profile;
	out->keys = &l->found->in_keys;
	out->operator_secret = l->found->operator_secret;
	out->user = l->found;
	return 1;
}


/* ---- part 2 ---- */

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static void serve_stations_info(rq_t *r)
{
	cec_ctx_t *c = r->c;
	cec_page_t pg;
	cec_status_t st;
	if (evcs_cec_validate_stations_info(r->in.data, &r->pt->profile, &pg, &st)) {
		cec_rq_reply(r, st.ret, st.msg, NULL);
		return;
	}
	cec_tenant_cat_t *tc = cec_tenant_cat(c, r->pt->tenant_id, false);
	json_t *cat = tc ? tc->cat : NULL;
	/* Visible stations, in id order, changed since LastQueryTime when given. */
	int64_t *ids = calloc(r->pt->n_stations + 1, sizeof *ids);
	size_t n = 0;
	for (size_t i = 0; ids && i < r->pt->n_stations; i++) {
		json_t *s = cec_cat_find(cat, "stations", "id", r->pt->stations[i]);
		if (!s)
			continue;
		if (pg.has_since) {
			int64_t since = pg.since * 1000, upd = json_integer_value(json_object_get(s, "updated_ms"));
			size_t k;
			json_t *p;
			json_array_foreach(json_object_get(cat, "piles"), k, p)
			{
				if (json_integer_value(json_object_get(p, "station_id")) == r->pt->stations[i] &&
				    json_integer_value(json_object_get(p, "updated_ms")) > upd)
					upd = json_integer_value(json_object_get(p, "updated_ms"));
			}
			if (upd < since)
				continue;
		}
		ids[n++] = r->pt->stations[i];
	}
	if (n)
		qsort(ids, n, sizeof *ids, cmp_i64);
	uint64_t off = evcs_cec_page_offset(&pg);
	size_t cnt = off < n ? (n - off < pg.page_size ? n - off : pg.page_size) : 0;
	arena_t a = {0};
	cec_station_t *sts = calloc(cnt + 1, sizeof *sts);
	json_t *reply = NULL;
	bool ok = ids && sts;
	for (size_t i = 0; ok && i < cnt; i++)
		ok = cec_fill_station(c, r->pt, cat, cec_cat_find(cat, "stations", "id", ids[off + i]), &a, &sts[i]) == 0;
	if (ok)
		reply = evcs_cec_stations_info_reply(&r->pt->profile, &pg, n, sts, cnt, &st);
	cec_arena_free(&a);
	free(sts);
	free(ids);
	if (!reply)
		cec_rq_reply(r, CEC_RET_SYSTEM, "cannot build StationInfos", NULL);
	else
		cec_rq_reply(r, 0, "", reply);
}

static void serve_station_status(rq_t *r)
{
	cec_ctx_t *c = r->c;
	cec_station_ids_t ids;
	cec_status_t st;
	if (evcs_cec_validate_station_status(r->in.data, &r->pt->profile, &ids, &st)) {
		cec_rq_reply(r, st.ret, st.msg, NULL);
		return;
	}
	cec_tenant_cat_t *tc = cec_tenant_cat(c, r->pt->tenant_id, false);
	json_t *cat = tc ? tc->cat : NULL;
	arena_t a = {0};
	cec_station_t *sts = calloc(ids.n + 1, sizeof *sts);
	size_t n = 0;
	bool ok = sts != NULL;
	for (size_t i = 0; ok && i < ids.n; i++) {
		char *end;
		long long sid = strtoll(ids.ids[i], &end, 10);
		if (*end || end == ids.ids[i] || !cec_partner_sees(r->pt, sid))
			continue; /* unknown ids are left out (§7.3) */
		json_t *s = cec_cat_find(cat, "stations", "id", sid);
		if (s)
			ok = cec_fill_station(c, r->pt, cat, s, &a, &sts[n++]) == 0;
	}
	json_t *reply = ok ? evcs_cec_station_status_reply(&r->pt->profile, sts, n) : NULL;
	cec_arena_free(&a);
	free(sts);
	evcs_cec_station_ids_clear(&ids);
	if (!reply)
		cec_rq_reply(r, CEC_RET_SYSTEM, "cannot build StationStatusInfos", NULL);
	else
		cec_rq_reply(r, 0, "", reply);
}

static void stats_done(int status, const char *result, void *ud)
{
	rq_t *r = ud;
	cec_ctx_t *c = r->c;
	if (status != EVCS_OK) {
		cec_rq_reply(r, CEC_RET_BUSY, "statistics unavailable, retry later", NULL);
		return;
	}
	json_t *res = json_loads(result, 0, NULL);
	json_t *rows = json_object_get(res, "connectors");
	cec_tenant_cat_t *tc = cec_tenant_cat(c, r->pt->tenant_id, false);
	json_t *cat = tc ? tc->cat : NULL;
	int64_t sid = strtoll(r->stats.station_id, NULL, 10);
	arena_t a = {0};
	size_t np = json_array_size(json_object_get(cat, "piles"));
	cec_equipment_stats_t *eq = cec_arena_alloc(&a, (np + 1) * sizeof *eq);
	size_t ne = 0, i;
	json_t *p;
	json_array_foreach(json_object_get(cat, "piles"), i, p)
	{
		if (!eq || json_integer_value(json_object_get(p, "station_id")) != sid)
			continue;
		const char *serial = cec_js(p, "serial");
		int64_t pid = json_integer_value(json_object_get(p, "id"));
		size_t ng = json_array_size(json_object_get(cat, "connectors"));
		cec_connector_stats_t *cs = cec_arena_alloc(&a, (ng + 1) * sizeof *cs);
		size_t n = 0, j, k;
		json_t *g, *row;
		json_array_foreach(json_object_get(cat, "connectors"), j, g)
		{
			if (!cs || json_integer_value(json_object_get(g, "pile_id")) != pid)
				continue;
			int gun = (int)json_integer_value(json_object_get(g, "gun_no"));
			char *cid = cec_arena_alloc(&a, CEC_ID_MAX + 1);
			if (!cid)
				continue;
			cec_connector_id(cid, serial, gun);
			cs[n].connector_id = cid;
			json_array_foreach(rows, k, row)
			{
				if (strcmp(cec_js(row, "serial"), serial) == 0 &&
				    json_integer_value(json_object_get(row, "gun_no")) == gun)
					cs[n].energy += json_integer_value(json_object_get(row, "kwh"));
			}
			n++;
		}
		eq[ne].equipment_id = serial;
		eq[ne].connectors = cs;
		eq[ne].n = n;
		ne++;
	}
	json_t *reply = evcs_cec_station_stats_reply(&r->pt->profile, &r->stats, eq, ne);
	cec_arena_free(&a);
	json_decref(res);
	if (!reply)
		cec_rq_reply(r, CEC_RET_SYSTEM, "cannot build StationStats", NULL);
	else
		cec_rq_reply(r, 0, "", reply);
}

static void serve_station_stats(rq_t *r)
{
	cec_ctx_t *c = r->c;
	cec_status_t st;
	if (evcs_cec_validate_station_stats(r->in.data, &r->pt->profile, &r->stats, &st)) {
		cec_rq_reply(r, st.ret, st.msg, NULL);
		return;
	}
	char *end;
	long long sid = strtoll(r->stats.station_id, &end, 10);
	cec_tenant_cat_t *tc = cec_tenant_cat(c, r->pt->tenant_id, false);
	if (*end || end == r->stats.station_id || !cec_partner_sees(r->pt, sid) || !tc ||
	    !cec_cat_find(tc->cat, "stations", "id", sid)) {
		cec_rq_reply(r, CEC_RET_BIZ, "StationID unknown", NULL);
		return;
	}
	char a[160];
	snprintf(a, sizeof a, "{\"tenant_id\":%lld,\"station_id\":%lld,\"start_ms\":%lld,\"end_ms\":%lld}",
		 (long long)r->pt->tenant_id, sid, (long long)r->stats.start_epoch * 1000,
		 (long long)r->stats.end_epoch * 1000);
	if (cec_store(c, "cec.stats", a, stats_done, r) != EVCS_OK)
		cec_rq_reply(r, CEC_RET_BUSY, "statistics unavailable", NULL);
}


/* ---- part 3 ---- */


int cec_connector_known(void *ud, const char *cid)
{
	struct conn_lookup *l = ud;
	gun_ref_t ref;
	return cec_resolve_connector(l->c, l->pt, cid, &ref);
}

static void serve_equip_auth(rq_t *r)
{
	cec_ctx_t *c = r->c;
	cec_status_t st;
	struct conn_lookup l = {c, r->pt};
	if (evcs_cec_validate_equip_auth(r->in.data, r->in.req.operator_id, &r->pt->profile, cec_connector_known, &l,
					 &r->biz, &st)) {
		cec_rq_reply(r, st.ret, st.msg, NULL);
		return;
	}
	cec_resolve_connector(c, r->pt, r->biz.connector_id, &r->ref);
	int status;
	bool plugged;
	cec_gun_state(c, r->ref.serial, r->ref.gun_no, r->ref.gun, &status, &plugged);
	int fr = 0;
	const char *msg = NULL;
	if (status != CEC_GUN_IDLE || cec_sess_on_gun(c, r->ref.serial, r->ref.gun_no)) {
		fr = 2;
		msg = status == CEC_GUN_OFFLINE ? "equipment offline" : "equipment not available";
	} else if (!plugged) {
		fr = 1;
		msg = "gun not plugged in";
	}
	cec_rq_reply(r, 0, "", evcs_cec_equip_auth_reply(&r->pt->profile, &r->biz, fr, msg));
}

/* A tariff's 48 half-hour slots as periods (consecutive equal classes merged). */
static size_t tariff_periods(json_t *t, cec_policy_period_t out[48])
{
	const char *slots = cec_js(t, "slots");
	static const char *ek[4] = {"sharp_elec_rate", "peak_elec_rate", "flat_elec_rate", "valley_elec_rate"};
	static const char *sk[4] = {"sharp_service_rate", "peak_service_rate", "flat_service_rate", "valley_service_rate"};
	size_t n = 0;
	for (int i = 0; i < 48 && slots[i]; i++) {
		int k = slots[i] - '0';
		if (k < 0 || k > 3)
			return 0;
		if (n && (int)out[n - 1].type == k)
			continue;
		out[n].start_sec = i * 1800;
		out[n].type = (cec_price_type_t)k;
		out[n].elec_price = json_integer_value(json_object_get(t, ek[k]));
		out[n].service_price = json_integer_value(json_object_get(t, sk[k]));
		n++;
	}
	return n;
}

static json_t *pile_tariff(json_t *cat, json_t *pile)
{
	json_t *tid = json_object_get(pile, "tariff_id");
	if (json_is_integer(tid))
		return cec_cat_find(cat, "tariffs", "id", json_integer_value(tid));
	/* No tariff on the pile: the tenant's newest active one (the core's default rule). */
	json_t *best = NULL, *t;
	size_t i;
	json_array_foreach(json_object_get(cat, "tariffs"), i, t) if (json_integer_value(json_object_get(t, "active"))) best = t;
	return best;
}

static void serve_business_policy(rq_t *r)
{
	cec_ctx_t *c = r->c;
	cec_status_t st;
	struct conn_lookup l = {c, r->pt};
	if (evcs_cec_validate_business_policy(r->in.data, r->in.req.operator_id, &r->pt->profile, cec_connector_known, &l,
					      &r->biz, &st)) {
		cec_rq_reply(r, st.ret, st.msg, NULL);
		return;
	}
	cec_resolve_connector(c, r->pt, r->biz.connector_id, &r->ref);
	json_t *t = pile_tariff(r->ref.tc->cat, r->ref.pile);
	cec_policy_period_t per[48];
	size_t n = t ? tariff_periods(t, per) : 0;
	cec_rq_reply(r, 0, "", evcs_cec_business_policy_reply(&r->pt->profile, &r->biz, per, n, n ? 0 : 1));
}

/* 32 hex digits like the YKC serial rule: pile (14) + gun (2) + yyMMddHHmmss (12) + counter (4). */
static void serve_token(rq_t *r)
{
	cec_ctx_t *c = r->c;
	cec_status_t st;
	if (evcs_cec_validate_token(r->in.data, &st)) {
		cec_rq_reply(r, st.ret, st.msg, NULL);
		return;
	}
	json_t *reply = evcs_cec_token_serve(&r->in, r->pt->tokens, cec_now_ms() / 1000, &st);
	if (!reply)
		cec_rq_reply(r, st.ret, st.msg, NULL);
	else
		cec_rq_reply(r, 0, "", reply);
	(void)c;
}

void cec_http_handler(evcs_http_req_t *req, void *ud)
{
	cec_ctx_t *c = ud;
	c->api->metric_add(c->m_req, 1);
	rq_t *r = calloc(1, sizeof *r);
	if (!r) {
		c->api->http_reply(req, 503, "text/plain", "busy\n", 5);
		return;
	}
	r->c = c;
	r->req = req;
	/* Path: <prefix><iface> or <prefix><OurOperatorID>/<iface>. */
	const char *path = c->api->http_path(req) + strlen(c->prefix);
	char our[16] = "";
	const char *slash = strchr(path, '/');
	if (slash && slash - path == 9) {
		memcpy(our, path, 9);
		our[9] = 0;
		path = slash + 1;
	}
	int iface = evcs_cec_iface_from_name(path);
	if (iface < 0 || iface > CEC_IF_QUERY_STOP_CHARGE) {
		free(r);
		c->api->http_reply(req, 404, "text/plain", "no such CEC interface\n", 22);
		return;
	}
	r->iface = (cec_iface_t)iface;
	size_t len = 0;
	const char *body = c->api->http_body(req, &len);
	if (!c->ready) {
		cec_rq_reply(r, CEC_RET_BUSY, "starting, retry later", NULL);
		return;
	}
	/* Tokens are per partner (one OperatorID may partner several tenants): find the partner
	 * first, then let the library run the §4 checks with that partner's token store. */
	struct lookup_ud l = {c, our[0] ? our : NULL, NULL, 0};
	cec_request_t pre;
	cec_status_t st;
	cec_token_store_t *tokens = NULL;
	if (evcs_cec_request_parse(body ? body : "", len, &pre, &st) == 0) {
		cec_partner_t tmp;
		if (lookup_partner(&l, pre.operator_id, &tmp) == 1)
			tokens = l.found->tokens;
		evcs_cec_request_clear(&pre);
	}
	int ret = evcs_cec_accept(body ? body : "", len, c->api->http_header(req, "Authorization"),
				  iface == CEC_IF_QUERY_TOKEN, lookup_partner, &l, tokens, cec_now_ms() / 1000, &r->in);
	if (ret == CEC_RET_BIZ && !r->in.have_partner && l.matches > 1) {
		/* a cut message is acceptable here; using the result keeps
		 * -Wformat-truncation quiet at every optimisation level */
		int n = snprintf(r->in.st.msg, sizeof r->in.st.msg,
				 "OperatorID %s is configured for several operators: use %s<OurOperatorID>/%s",
				 r->in.req.operator_id, c->prefix, path);
		if (n < 0)
			r->in.st.msg[0] = 0;
	}
	if (ret) {
		r->pt = l.found;
		cec_rq_reply(r, ret, r->in.st.msg, NULL);
		return;
	}
	r->pt = r->in.partner.user;
	switch (r->iface) {
	case CEC_IF_QUERY_TOKEN: serve_token(r); break;
	case CEC_IF_QUERY_STATIONS_INFO: serve_stations_info(r); break;
	case CEC_IF_QUERY_STATION_STATUS: serve_station_status(r); break;
	case CEC_IF_QUERY_STATION_STATS: serve_station_stats(r); break;
	case CEC_IF_QUERY_EQUIP_AUTH: serve_equip_auth(r); break;
	case CEC_IF_QUERY_EQUIP_BUSINESS_POLICY: serve_business_policy(r); break;
	case CEC_IF_QUERY_START_CHARGE: cec_serve_start_charge(r); break;
	case CEC_IF_QUERY_EQUIP_CHARGE_STATUS: cec_serve_charge_status(r); break;
	case CEC_IF_QUERY_STOP_CHARGE: cec_serve_stop_charge(r); break;
	default: cec_rq_reply(r, CEC_RET_BIZ, "not an interface served here", NULL); break;
	}
}

