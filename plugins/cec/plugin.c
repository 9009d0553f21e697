/*
 * plugin.c: cec.so, the T/CEC 102 interconnect plugin (evcsd as the infrastructure operator).
 *
 * Serves query_token and every query_* interface of parts 2 and 3 under a configurable prefix
 * (default /evcs/v1/; /evcs/v1/<OurOperatorID>/<iface> selects the tenant when one partner
 * OperatorID is configured for several tenants), maps the core's stations, piles and guns to
 * CEC objects, drives remote start/stop through the hook bus, and feeds the push outbox
 * (outbox.c) from bus events. Reference: /work/shared/docs/cec.md; README.md beside this file.
 *
 * Contract: uses only <evcs/plugin.h> (storage through the cec.* store ops of
 * core/store_cec.c). Loop thread only. Every request is answered with a CEC envelope and
 * HTTP 200, Ret per §2.3 in the §4 check order; bad input never yields 500. Partners and the
 * station catalog are cached in memory and refreshed every refresh_interval seconds; gun
 * status follows EVCS_EV_GUN_STATUS live.
 */
#include "cec_plugin.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define LOG(c, lvl, t, ...) (c)->api->log((c)->p, (lvl), (t), NULL, __VA_ARGS__)

int64_t cec_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void load_all(cec_ctx_t *c);

/* ---- partners ------------------------------------------------------------------------------- */

static void copy_str(char *dst, size_t n, json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	snprintf(dst, n, "%s", v ? v : "");
}

/* One profile layer: {"preset"|"profile": name, flags...} or a "profile_flags" object. */
static void profile_layer(cec_ctx_t *c, cec_partner_rt_t *pt, const char *preset, json_t *flags)
{
	if (preset && evcs_cec_profile_preset(&pt->profile, preset))
		LOG(c, EVCS_LOG_WARNING, pt->tenant_id, "partner %s: unknown profile %s ignored", pt->operator_id, preset);
	const char *k;
	json_t *v;
	json_object_foreach(flags, k, v)
	{
		char buf[32], err[128];
		if (!strcmp(k, "preset"))
			continue;
		if (json_is_string(v))
			snprintf(buf, sizeof buf, "%s", json_string_value(v));
		else if (json_is_boolean(v))
			snprintf(buf, sizeof buf, "%s", json_is_true(v) ? "yes" : "no");
		else if (json_is_integer(v))
			snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
		else
			continue;
		if (evcs_cec_profile_set(&pt->profile, k, buf, err, sizeof err))
			LOG(c, EVCS_LOG_WARNING, pt->tenant_id, "partner %s: %s", pt->operator_id, err);
	}
}

/* Profile for a partner: cec2016 default, then the stored profile (partners.profile, set through
 * the operator API: preset first, then flags), then the partner_file's preset and flags, which
 * as local configuration have the last word. */
static void apply_profile(cec_ctx_t *c, cec_partner_rt_t *pt, json_t *stored)
{
	evcs_cec_profile_default(&pt->profile);
	if (json_is_object(stored))
		profile_layer(c, pt, json_string_value(json_object_get(stored, "preset")), stored);
	char key[64];
	snprintf(key, sizeof key, "%lld:%s", (long long)pt->tenant_id, pt->operator_id);
	json_t *f = json_object_get(c->file_profiles, key);
	if (f)
		profile_layer(c, pt, json_string_value(json_object_get(f, "profile")), json_object_get(f, "profile_flags"));
}

static void partner_update(cec_ctx_t *c, cec_partner_rt_t *pt, json_t *o)
{
	pt->tenant_id = json_integer_value(json_object_get(o, "tenant_id"));
	const char *status = json_string_value(json_object_get(o, "status"));
	pt->active = !status || strcmp(status, "active") == 0;
	copy_str(pt->name, sizeof pt->name, o, "name");
	copy_str(pt->operator_id, sizeof pt->operator_id, o, "operator_id");
	copy_str(pt->our_operator_id, sizeof pt->our_operator_id, o, "our_operator_id");
	copy_str(pt->base_url, sizeof pt->base_url, o, "base_url");
	copy_str(pt->operator_secret, sizeof pt->operator_secret, o, "operator_secret");
	copy_str(pt->data_secret, sizeof pt->data_secret, o, "data_secret");
	copy_str(pt->data_iv, sizeof pt->data_iv, o, "data_secret_iv");
	copy_str(pt->sig_secret, sizeof pt->sig_secret, o, "sig_secret");
	copy_str(pt->user_operator_secret, sizeof pt->user_operator_secret, o, "user_operator_secret");
	copy_str(pt->user_data_secret, sizeof pt->user_data_secret, o, "user_data_secret");
	copy_str(pt->user_data_iv, sizeof pt->user_data_iv, o, "user_data_secret_iv");
	copy_str(pt->user_sig_secret, sizeof pt->user_sig_secret, o, "user_sig_secret");
	/* §1: many deployments use one key set for both directions; an empty user_* set means that. */
	pt->in_keys = (cec_keys_t){pt->data_secret, pt->data_iv, pt->sig_secret};
	if (!pt->user_data_secret[0]) {
		memcpy(pt->user_data_secret, pt->data_secret, sizeof pt->data_secret);
		memcpy(pt->user_data_iv, pt->data_iv, sizeof pt->data_iv);
		memcpy(pt->user_sig_secret, pt->sig_secret, sizeof pt->sig_secret);
	}
	if (!pt->user_operator_secret[0])
		memcpy(pt->user_operator_secret, pt->operator_secret, sizeof pt->operator_secret);
	pt->out_keys = (cec_keys_t){pt->user_data_secret, pt->user_data_iv, pt->user_sig_secret};
	json_t *st = json_object_get(o, "stations");
	free(pt->stations);
	pt->n_stations = 0;
	pt->stations = calloc(json_array_size(st) + 1, sizeof *pt->stations);
	size_t i;
	json_t *e;
	json_array_foreach(st, i, e) if (pt->stations) pt->stations[pt->n_stations++] = json_integer_value(e);
	if (!pt->token && json_is_string(json_object_get(o, "access_token")) &&
	    json_integer_value(json_object_get(o, "token_expires_ms")) > cec_now_ms()) {
		pt->token = strdup(json_string_value(json_object_get(o, "access_token")));
		pt->token_exp_ms = json_integer_value(json_object_get(o, "token_expires_ms"));
	}
	apply_profile(c, pt, json_object_get(o, "profile"));
}

static bool partner_sees(const cec_partner_rt_t *pt, int64_t station_id)
{
	for (size_t i = 0; i < pt->n_stations; i++)
		if (pt->stations[i] == station_id)
			return true;
	return false;
}

/* ---- catalog -------------------------------------------------------------------------------- */

static cec_tenant_cat_t *tenant_cat(cec_ctx_t *c, int64_t t, bool create)
{
	for (cec_tenant_cat_t *x = c->tenants; x; x = x->next)
		if (x->tenant_id == t)
			return x;
	if (!create)
		return NULL;
	cec_tenant_cat_t *x = calloc(1, sizeof *x);
	if (!x)
		return NULL;
	x->tenant_id = t;
	x->next = c->tenants;
	c->tenants = x;
	return x;
}

static json_t *cat_find(json_t *cat, const char *arr, const char *key, int64_t v)
{
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(cat, arr), i, o) if (json_integer_value(json_object_get(o, key)) == v) return o;
	return NULL;
}

static json_t *cat_pile_by_serial(json_t *cat, const char *serial)
{
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(cat, "piles"), i, o)
	{
		const char *s = json_string_value(json_object_get(o, "serial"));
		if (s && strcmp(s, serial) == 0)
			return o;
	}
	return NULL;
}

static json_t *cat_gun(json_t *cat, int64_t pile_id, int gun)
{
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(cat, "connectors"), i, o)
	{
		if (json_integer_value(json_object_get(o, "pile_id")) == pile_id &&
		    json_integer_value(json_object_get(o, "gun_no")) == gun)
			return o;
	}
	return NULL;
}

static cec_live_gun_t *live_get(cec_ctx_t *c, const char *serial, int gun, bool create)
{
	for (cec_live_gun_t *l = c->live; l; l = l->next)
		if (l->gun == gun && strcmp(l->serial, serial) == 0)
			return l;
	if (!create)
		return NULL;
	cec_live_gun_t *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	snprintf(l->serial, sizeof l->serial, "%s", serial);
	l->gun = gun;
	l->next = c->live;
	c->live = l;
	return l;
}

static void connector_id(char out[CEC_ID_MAX + 1], const char *serial, int gun)
{
	snprintf(out, CEC_ID_MAX + 1, "%s%02d", serial, gun);
}

/* "<14-character serial><2-digit gun>" */
static int parse_connector_id(const char *cid, char serial[15], int *gun)
{
	size_t n = strlen(cid);
	if (n != 16 || cid[14] < '0' || cid[14] > '9' || cid[15] < '0' || cid[15] > '9')
		return -1;
	memcpy(serial, cid, 14);
	serial[14] = 0;
	*gun = (cid[14] - '0') * 10 + (cid[15] - '0');
	return *gun > 0 ? 0 : -1;
}

typedef struct gun_ref {
	cec_tenant_cat_t *tc;
	json_t *station, *pile, *gun;
	char serial[15];
	int gun_no;
} gun_ref_t;

/* Resolve a ConnectorID for a partner: 1 found and visible, 0 not. */
static int resolve_connector(cec_ctx_t *c, const cec_partner_rt_t *pt, const char *cid, gun_ref_t *r)
{
	memset(r, 0, sizeof *r);
	if (parse_connector_id(cid, r->serial, &r->gun_no))
		return 0;
	r->tc = tenant_cat(c, pt->tenant_id, false);
	if (!r->tc || !r->tc->cat)
		return 0;
	r->pile = cat_pile_by_serial(r->tc->cat, r->serial);
	if (!r->pile)
		return 0;
	int64_t sid = json_integer_value(json_object_get(r->pile, "station_id"));
	if (!partner_sees(pt, sid))
		return 0;
	r->station = cat_find(r->tc->cat, "stations", "id", sid);
	r->gun = cat_gun(r->tc->cat, json_integer_value(json_object_get(r->pile, "id")), r->gun_no);
	return r->gun && r->station ? 1 : 0;
}

static void gun_state(cec_ctx_t *c, const char *serial, int gun, json_t *row, int *status, bool *plugged)
{
	cec_live_gun_t *l = live_get(c, serial, gun, false);
	if (l) {
		*status = l->status;
		*plugged = l->plugged;
	} else {
		*status = (int)json_integer_value(json_object_get(row, "status"));
		*plugged = json_integer_value(json_object_get(row, "plugged")) != 0;
	}
}

/* Everything borrowed by a cec_station_t lives in this arena until the reply is built. */
typedef struct arena {
	void **blocks;
	size_t n, cap;
} arena_t;

static void *arena_alloc(arena_t *a, size_t sz)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		void **b = realloc(a->blocks, cap * sizeof *b);
		if (!b)
			return NULL;
		a->blocks = b;
		a->cap = cap;
	}
	void *p = calloc(1, sz ? sz : 1);
	if (p)
		a->blocks[a->n++] = p;
	return p;
}

static void arena_free(arena_t *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->blocks[i]);
	free(a->blocks);
	memset(a, 0, sizeof *a);
}

static const char *js(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : "";
}

static int station_status_code(const char *s)
{
	if (!strcmp(s, "open"))
		return 50;
	if (!strcmp(s, "building"))
		return 1;
	if (!strcmp(s, "closed"))
		return 5;
	if (!strcmp(s, "maintenance"))
		return 6;
	return 0;
}

/* Fill a gun from its catalog row. */
static void fill_gun(cec_ctx_t *c, arena_t *a, const char *serial, bool dc, json_t *g, cec_gun_t *out)
{
	int gun = (int)json_integer_value(json_object_get(g, "gun_no"));
	char *cid = arena_alloc(a, CEC_ID_MAX + 1);
	if (cid)
		connector_id(cid, serial, gun);
	out->connector_id = cid ? cid : "";
	out->connector_type = (int)json_integer_value(json_object_get(g, "connector_type"));
	out->power_w = json_integer_value(json_object_get(g, "rated_power_w"));
	/* The schema has no voltage range per gun: GB/T 20234 nominal ranges for DC and AC. */
	out->voltage_upper_v = dc ? 750 : 250;
	out->voltage_lower_v = dc ? 200 : 220;
	out->current_a = (int)(out->power_w / (dc ? 750 : 220));
	out->national_standard = 2;
	int st;
	bool plugged;
	gun_state(c, serial, gun, g, &st, &plugged);
	out->state = (cec_gun_state_t)st;
	out->plugged = plugged;
}

static int fill_station(cec_ctx_t *c, const cec_partner_rt_t *pt, json_t *cat, json_t *s, arena_t *a,
			cec_station_t *out)
{
	memset(out, 0, sizeof *out);
	int64_t sid = json_integer_value(json_object_get(s, "id"));
	char *id = arena_alloc(a, 24);
	if (!id)
		return -1;
	snprintf(id, 24, "%lld", (long long)sid);
	out->tenant_id = pt->tenant_id;
	out->station_id = id;
	out->operator_id = pt->our_operator_id;
	out->equipment_owner_id = pt->our_operator_id;
	out->name = js(s, "name");
	out->area_code = js(s, "area_code");
	out->address = js(s, "address");
	out->service_tel = js(s, "service_tel");
	out->station_type = (int)json_integer_value(json_object_get(s, "station_type"));
	out->station_status = station_status_code(js(s, "status"));
	out->lng_e6 = json_integer_value(json_object_get(s, "lng_e6"));
	out->lat_e6 = json_integer_value(json_object_get(s, "lat_e6"));
	out->construction = 255;
	out->busine_hours = *js(s, "opening_hours") ? js(s, "opening_hours") : NULL;
	out->remark = *js(s, "remark") ? js(s, "remark") : NULL;
	json_t *photos = json_object_get(s, "photos");
	if (json_array_size(photos)) {
		const char **pics = arena_alloc(a, json_array_size(photos) * sizeof *pics);
		size_t i;
		json_t *ph;
		json_array_foreach(photos, i, ph) if (pics && json_is_string(ph)) pics[out->n_pictures++] = json_string_value(ph);
		out->pictures = pics;
	}
	size_t np = 0, i;
	json_t *p;
	json_array_foreach(json_object_get(cat, "piles"), i, p) if (json_integer_value(json_object_get(p, "station_id")) == sid) np++;
	cec_pile_t *piles = arena_alloc(a, np * sizeof *piles);
	if (!piles)
		return -1;
	json_array_foreach(json_object_get(cat, "piles"), i, p)
	{
		if (json_integer_value(json_object_get(p, "station_id")) != sid)
			continue;
		cec_pile_t *pp = &piles[out->n_piles++];
		const char *serial = js(p, "serial");
		bool dc = strcmp(js(p, "current_type"), "ac") != 0;
		pp->equipment_id = serial;
		pp->model = *js(p, "model") ? js(p, "model") : NULL;
		pp->manufacturer_name = *js(p, "vendor") ? js(p, "vendor") : NULL;
		pp->name = *js(p, "name") ? js(p, "name") : NULL;
		pp->equipment_type = dc ? 1 : 2;
		pp->power_w = json_integer_value(json_object_get(p, "rated_power_w"));
		int64_t pid = json_integer_value(json_object_get(p, "id"));
		size_t ng = 0, j;
		json_t *g;
		json_array_foreach(json_object_get(cat, "connectors"), j, g) if (json_integer_value(json_object_get(g, "pile_id")) == pid) ng++;
		cec_gun_t *guns = arena_alloc(a, ng * sizeof *guns);
		if (!guns)
			return -1;
		json_array_foreach(json_object_get(cat, "connectors"), j, g)
		{
			if (json_integer_value(json_object_get(g, "pile_id")) == pid)
				fill_gun(c, a, serial, dc, g, &guns[pp->n_guns++]);
		}
		pp->guns = guns;
	}
	out->piles = piles;
	return 0;
}

/* ---- inbound requests ----------------------------------------------------------------------- */

typedef struct rq {
	cec_ctx_t *c;
	evcs_http_req_t *req;
	cec_inbound_t in;
	cec_partner_rt_t *pt;
	cec_iface_t iface;
	cec_biz_req_t biz;
	cec_stats_req_t stats;
	gun_ref_t ref;
	char trade_no[33];
} rq_t;

static void rq_reply(rq_t *r, int ret, const char *msg, json_t *data)
{
	cec_ctx_t *c = r->c;
	char *body = evcs_cec_inbound_reply(&r->in, ret, msg ? msg : (ret ? evcs_cec_ret_text(ret) : ""), data);
	if (ret)
		c->api->metric_add(c->m_err, 1);
	if (ret && ret != CEC_RET_BUSY)
		LOG(c, EVCS_LOG_INFO, r->pt ? r->pt->tenant_id : 0, "%s from %s: Ret %d %s", evcs_cec_iface_name(r->iface),
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

static cec_sess_t *sess_by_seq(cec_ctx_t *c, const cec_partner_rt_t *pt, const char *seq)
{
	for (cec_sess_t *s = c->sessions; s; s = s->next)
		if (s->partner == pt && strcmp(s->seq, seq) == 0)
			return s;
	return NULL;
}

static cec_sess_t *sess_by_trade(cec_ctx_t *c, const char *pile, const char *trade)
{
	for (cec_sess_t *s = c->sessions; s; s = s->next)
		if (strcmp(s->trade_no, trade) == 0 && (!pile || strcmp(s->serial, pile) == 0))
			return s;
	return NULL;
}

static cec_sess_t *sess_on_gun(cec_ctx_t *c, const char *serial, int gun)
{
	for (cec_sess_t *s = c->sessions; s; s = s->next)
		if (s->gun == gun && strcmp(s->serial, serial) == 0 && s->seq_stat < CEC_SEQ_FINISHED)
			return s;
	return NULL;
}

static void sess_free(cec_ctx_t *c, cec_sess_t *s)
{
	for (cec_sess_t **pp = &c->sessions; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	free(s);
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
		rq_reply(r, st.ret, st.msg, NULL);
		return;
	}
	cec_tenant_cat_t *tc = tenant_cat(c, r->pt->tenant_id, false);
	json_t *cat = tc ? tc->cat : NULL;
	/* Visible stations, in id order, changed since LastQueryTime when given. */
	int64_t *ids = calloc(r->pt->n_stations + 1, sizeof *ids);
	size_t n = 0;
	for (size_t i = 0; ids && i < r->pt->n_stations; i++) {
		json_t *s = cat_find(cat, "stations", "id", r->pt->stations[i]);
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
		ok = fill_station(c, r->pt, cat, cat_find(cat, "stations", "id", ids[off + i]), &a, &sts[i]) == 0;
	if (ok)
		reply = evcs_cec_stations_info_reply(&r->pt->profile, &pg, n, sts, cnt, &st);
	arena_free(&a);
	free(sts);
	free(ids);
	if (!reply)
		rq_reply(r, CEC_RET_SYSTEM, "cannot build StationInfos", NULL);
	else
		rq_reply(r, 0, "", reply);
}

static void serve_station_status(rq_t *r)
{
	cec_ctx_t *c = r->c;
	cec_station_ids_t ids;
	cec_status_t st;
	if (evcs_cec_validate_station_status(r->in.data, &r->pt->profile, &ids, &st)) {
		rq_reply(r, st.ret, st.msg, NULL);
		return;
	}
	cec_tenant_cat_t *tc = tenant_cat(c, r->pt->tenant_id, false);
	json_t *cat = tc ? tc->cat : NULL;
	arena_t a = {0};
	cec_station_t *sts = calloc(ids.n + 1, sizeof *sts);
	size_t n = 0;
	bool ok = sts != NULL;
	for (size_t i = 0; ok && i < ids.n; i++) {
		char *end;
		long long sid = strtoll(ids.ids[i], &end, 10);
		if (*end || end == ids.ids[i] || !partner_sees(r->pt, sid))
			continue; /* unknown ids are left out (§7.3) */
		json_t *s = cat_find(cat, "stations", "id", sid);
		if (s)
			ok = fill_station(c, r->pt, cat, s, &a, &sts[n++]) == 0;
	}
	json_t *reply = ok ? evcs_cec_station_status_reply(&r->pt->profile, sts, n) : NULL;
	arena_free(&a);
	free(sts);
	evcs_cec_station_ids_clear(&ids);
	if (!reply)
		rq_reply(r, CEC_RET_SYSTEM, "cannot build StationStatusInfos", NULL);
	else
		rq_reply(r, 0, "", reply);
}

static void stats_done(int status, const char *result, void *ud)
{
	rq_t *r = ud;
	cec_ctx_t *c = r->c;
	if (status != EVCS_OK) {
		rq_reply(r, CEC_RET_BUSY, "statistics unavailable, retry later", NULL);
		return;
	}
	json_t *res = json_loads(result, 0, NULL);
	json_t *rows = json_object_get(res, "connectors");
	cec_tenant_cat_t *tc = tenant_cat(c, r->pt->tenant_id, false);
	json_t *cat = tc ? tc->cat : NULL;
	int64_t sid = strtoll(r->stats.station_id, NULL, 10);
	arena_t a = {0};
	size_t np = json_array_size(json_object_get(cat, "piles"));
	cec_equipment_stats_t *eq = arena_alloc(&a, (np + 1) * sizeof *eq);
	size_t ne = 0, i;
	json_t *p;
	json_array_foreach(json_object_get(cat, "piles"), i, p)
	{
		if (!eq || json_integer_value(json_object_get(p, "station_id")) != sid)
			continue;
		const char *serial = js(p, "serial");
		int64_t pid = json_integer_value(json_object_get(p, "id"));
		size_t ng = json_array_size(json_object_get(cat, "connectors"));
		cec_connector_stats_t *cs = arena_alloc(&a, (ng + 1) * sizeof *cs);
		size_t n = 0, j, k;
		json_t *g, *row;
		json_array_foreach(json_object_get(cat, "connectors"), j, g)
		{
			if (!cs || json_integer_value(json_object_get(g, "pile_id")) != pid)
				continue;
			int gun = (int)json_integer_value(json_object_get(g, "gun_no"));
			char *cid = arena_alloc(&a, CEC_ID_MAX + 1);
			if (!cid)
				continue;
			connector_id(cid, serial, gun);
			cs[n].connector_id = cid;
			json_array_foreach(rows, k, row)
			{
				if (strcmp(js(row, "serial"), serial) == 0 &&
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
	arena_free(&a);
	json_decref(res);
	if (!reply)
		rq_reply(r, CEC_RET_SYSTEM, "cannot build StationStats", NULL);
	else
		rq_reply(r, 0, "", reply);
}

static void serve_station_stats(rq_t *r)
{
	cec_ctx_t *c = r->c;
	cec_status_t st;
	if (evcs_cec_validate_station_stats(r->in.data, &r->pt->profile, &r->stats, &st)) {
		rq_reply(r, st.ret, st.msg, NULL);
		return;
	}
	char *end;
	long long sid = strtoll(r->stats.station_id, &end, 10);
	cec_tenant_cat_t *tc = tenant_cat(c, r->pt->tenant_id, false);
	if (*end || end == r->stats.station_id || !partner_sees(r->pt, sid) || !tc ||
	    !cat_find(tc->cat, "stations", "id", sid)) {
		rq_reply(r, CEC_RET_BIZ, "StationID unknown", NULL);
		return;
	}
	char a[160];
	snprintf(a, sizeof a, "{\"tenant_id\":%lld,\"station_id\":%lld,\"start_ms\":%lld,\"end_ms\":%lld}",
		 (long long)r->pt->tenant_id, sid, (long long)r->stats.start_epoch * 1000,
		 (long long)r->stats.end_epoch * 1000);
	if (c->api->store(c->p, "cec.stats", a, stats_done, r) != EVCS_OK)
		rq_reply(r, CEC_RET_BUSY, "statistics unavailable", NULL);
}

/* ---- part 3 ---- */

struct conn_lookup {
	cec_ctx_t *c;
	cec_partner_rt_t *pt;
};

static int connector_known(void *ud, const char *cid)
{
	struct conn_lookup *l = ud;
	gun_ref_t ref;
	return resolve_connector(l->c, l->pt, cid, &ref);
}

static void serve_equip_auth(rq_t *r)
{
	cec_ctx_t *c = r->c;
	cec_status_t st;
	struct conn_lookup l = {c, r->pt};
	if (evcs_cec_validate_equip_auth(r->in.data, r->in.req.operator_id, &r->pt->profile, connector_known, &l,
					 &r->biz, &st)) {
		rq_reply(r, st.ret, st.msg, NULL);
		return;
	}
	resolve_connector(c, r->pt, r->biz.connector_id, &r->ref);
	int status;
	bool plugged;
	gun_state(c, r->ref.serial, r->ref.gun_no, r->ref.gun, &status, &plugged);
	int fr = 0;
	const char *msg = NULL;
	if (status != CEC_GUN_IDLE || sess_on_gun(c, r->ref.serial, r->ref.gun_no)) {
		fr = 2;
		msg = status == CEC_GUN_OFFLINE ? "equipment offline" : "equipment not available";
	} else if (!plugged) {
		fr = 1;
		msg = "gun not plugged in";
	}
	rq_reply(r, 0, "", evcs_cec_equip_auth_reply(&r->pt->profile, &r->biz, fr, msg));
}

/* A tariff's 48 half-hour slots as periods (consecutive equal classes merged). */
static size_t tariff_periods(json_t *t, cec_policy_period_t out[48])
{
	const char *slots = js(t, "slots");
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
		return cat_find(cat, "tariffs", "id", json_integer_value(tid));
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
	if (evcs_cec_validate_business_policy(r->in.data, r->in.req.operator_id, &r->pt->profile, connector_known, &l,
					      &r->biz, &st)) {
		rq_reply(r, st.ret, st.msg, NULL);
		return;
	}
	resolve_connector(c, r->pt, r->biz.connector_id, &r->ref);
	json_t *t = pile_tariff(r->ref.tc->cat, r->ref.pile);
	cec_policy_period_t per[48];
	size_t n = t ? tariff_periods(t, per) : 0;
	rq_reply(r, 0, "", evcs_cec_business_policy_reply(&r->pt->profile, &r->biz, per, n, n ? 0 : 1));
}

/* 32 hex digits like the YKC serial rule: pile (14) + gun (2) + yyMMddHHmmss (12) + counter (4). */
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

static void push_start_result(cec_ctx_t *c, cec_sess_t *s, int seq_stat, const char *ident)
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

static void push_stop_result(cec_ctx_t *c, cec_sess_t *s, int fail_reason)
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
	cec_sess_t *s = pt ? sess_by_seq(c, pt, cc->seq) : NULL;
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
	LOG(c, EVCS_LOG_NOTICE, s->tenant_id, "start %s on %s refused: %s", s->seq, s->connector_id,
	    c->api->status_name(status));
	s->seq_stat = CEC_SEQ_FINISHED;
	char ident[32];
	snprintf(ident, sizeof ident, "%d", status == EVCS_EOFFLINE ? 2 : 99);
	push_start_result(c, s, CEC_SEQ_UNKNOWN, ident);
	s->stop_pushed = s->order_pushed = true;
	sess_free(c, s);
}

static void open_done(int status, const char *result, void *ud)
{
	rq_t *r = ud;
	cec_ctx_t *c = r->c;
	if (status == EVCS_EEXIST) {
		/* §8: a repeated StartChargeSeq is refused (ORISE FailReason 10, StartChargeSeqStat 5). */
		rq_reply(r, 0, "", evcs_cec_start_charge_reply(&r->pt->profile, &r->biz, CEC_SEQ_UNKNOWN, 10));
		return;
	}
	if (status != EVCS_OK) {
		LOG(c, EVCS_LOG_WARNING, r->pt->tenant_id, "cannot record session %s: %s %s", r->biz.seq,
		    c->api->status_name(status), result ? result : "");
		rq_reply(r, CEC_RET_BUSY, "cannot record the session, retry later", NULL);
		return;
	}
	json_t *j = json_loads(result, 0, NULL);
	int64_t sid = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	cec_sess_t *s = calloc(1, sizeof *s);
	struct cmd_ctx *cc = calloc(1, sizeof *cc);
	if (!s || !cc) {
		free(s);
		free(cc);
		rq_reply(r, CEC_RET_SYSTEM, "out of memory", NULL);
		return;
	}
	s->tenant_id = r->pt->tenant_id;
	s->session_id = sid;
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
	char args[256];
	snprintf(args, sizeof args,
		 "{\"trade_no\":\"%s\",\"mode\":\"partner\",\"session_id\":%lld,\"partner_seq\":\"%s\"}", s->trade_no,
		 (long long)sid, s->seq);
	evcs_command_t cmd = {.size = sizeof cmd, .tenant_id = s->tenant_id, .pile = s->serial, .gun = s->gun,
			      .name = "start", .args_json = args};
	rq_reply(r, 0, "", evcs_cec_start_charge_reply(&s->partner->profile, &r->biz, CEC_SEQ_STARTING, 0));
	if (c->api->command_send(c->p, &cmd, (unsigned)c->command_timeout_ms, start_cmd_done, cc) != EVCS_OK)
		start_cmd_done(EVCS_EOFFLINE, NULL, cc);
}

static void serve_start_charge(rq_t *r)
{
	cec_ctx_t *c = r->c;
	cec_status_t st;
	struct conn_lookup l = {c, r->pt};
	if (evcs_cec_validate_start_charge(r->in.data, r->in.req.operator_id, &r->pt->profile, connector_known, &l,
					   &r->biz, &st)) {
		rq_reply(r, st.ret, st.msg, NULL);
		return;
	}
	if (!r->biz.connector_known) {
		rq_reply(r, 0, "", evcs_cec_start_charge_reply(&r->pt->profile, &r->biz, CEC_SEQ_UNKNOWN, 1));
		return;
	}
	if (sess_by_seq(c, r->pt, r->biz.seq)) {
		rq_reply(r, 0, "", evcs_cec_start_charge_reply(&r->pt->profile, &r->biz, CEC_SEQ_UNKNOWN, 10));
		return;
	}
	resolve_connector(c, r->pt, r->biz.connector_id, &r->ref);
	int status;
	bool plugged;
	gun_state(c, r->ref.serial, r->ref.gun_no, r->ref.gun, &status, &plugged);
	int fr = 0;
	if (status == CEC_GUN_OFFLINE)
		fr = 2; /* device offline */
	else if (status != CEC_GUN_IDLE || sess_on_gun(c, r->ref.serial, r->ref.gun_no))
		fr = 4; /* custom: connector busy or faulty */
	else if (!plugged)
		fr = 3; /* ORISE: not plugged in */
	if (fr) {
		rq_reply(r, 0, "", evcs_cec_start_charge_reply(&r->pt->profile, &r->biz, CEC_SEQ_UNKNOWN, fr));
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
	if (!s || c->api->store(c->p, "cec.session.open", s, open_done, r) != EVCS_OK) {
		free(s);
		rq_reply(r, CEC_RET_BUSY, "cannot record the session, retry later", NULL);
		return;
	}
	free(s);
}

static void sess_to_model(const cec_sess_t *s, cec_session_t *m, int conn_status)
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

static int sess_conn_status(cec_ctx_t *c, const cec_sess_t *s)
{
	cec_live_gun_t *l = live_get(c, s->serial, s->gun, false);
	int st = l ? l->status : (s->seq_stat == CEC_SEQ_CHARGING ? CEC_GUN_CHARGING : CEC_GUN_IDLE);
	return evcs_cec_charge_connector_status((cec_gun_state_t)st, l ? l->plugged : true, false);
}

/* Session as stored (after a restart, or a finished one) -> model, with per-period details. */
static size_t row_details(json_t *row, cec_charge_detail_t d[4], int64_t start, int64_t end)
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

static int stop_reason_code(json_t *row)
{
	const char *by = js(row, "stop_requested_by");
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
		rq_reply(r, CEC_RET_BIZ, "StartChargeSeq unknown", NULL);
		return;
	}
	if (status != EVCS_OK) {
		rq_reply(r, CEC_RET_BUSY, "session store unavailable", NULL);
		return;
	}
	json_t *j = json_loads(result, 0, NULL);
	json_t *row = json_object_get(j, "session");
	cec_session_t m = {0};
	char cid[CEC_ID_MAX + 1];
	connector_id(cid, js(row, "serial"), (int)json_integer_value(json_object_get(row, "gun_no")));
	m.start_charge_seq = r->biz.seq;
	m.seq_stat = row_seq_stat(js(row, "state"));
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
		m.n_details = row_details(row, d, m.start_time, m.end_time);
		m.details = d;
	}
	json_t *reply = evcs_cec_charge_status_reply(&r->pt->profile, &m);
	json_decref(j);
	rq_reply(r, reply ? 0 : CEC_RET_SYSTEM, reply ? "" : "cannot build reply", reply);
}

static void serve_charge_status(rq_t *r)
{
	cec_ctx_t *c = r->c;
	cec_status_t st;
	if (evcs_cec_validate_charge_status(r->in.data, r->in.req.operator_id, &r->pt->profile, &r->biz, &st)) {
		rq_reply(r, st.ret, st.msg, NULL);
		return;
	}
	cec_sess_t *s = sess_by_seq(c, r->pt, r->biz.seq);
	if (s) {
		cec_session_t m;
		sess_to_model(s, &m, sess_conn_status(c, s));
		rq_reply(r, 0, "", evcs_cec_charge_status_reply(&r->pt->profile, &m));
		return;
	}
	json_t *a = json_pack("{s:I, s:I, s:s}", "tenant_id", (json_int_t)r->pt->tenant_id, "partner_id",
			      (json_int_t)r->pt->id, "partner_seq", r->biz.seq);
	char *js_ = a ? json_dumps(a, JSON_COMPACT) : NULL;
	json_decref(a);
	if (!js_ || c->api->store(c->p, "cec.session.get", js_, charge_status_done, r) != EVCS_OK)
		rq_reply(r, CEC_RET_BUSY, "session store unavailable", NULL);
	free(js_);
}

static void stop_cmd_done(int status, const char *result, void *ud)
{
	struct cmd_ctx *cc = ud;
	cec_ctx_t *c = cc->c;
	cec_partner_rt_t *pt = cec_partner_by_id(c, cc->partner_id);
	cec_sess_t *s = pt ? sess_by_seq(c, pt, cc->seq) : NULL;
	free(cc);
	if (!s || status == EVCS_OK)
		return; /* the outcome arrives as EVCS_EV_SESSION_STOPPED */
	LOG(c, EVCS_LOG_NOTICE, s->tenant_id, "stop %s on %s failed: %s", s->seq, s->connector_id,
	    c->api->status_name(status));
	s->stop_requested = false;
	if (s->seq_stat == CEC_SEQ_STOPPING)
		s->seq_stat = CEC_SEQ_CHARGING;
	push_stop_result(c, s, status == EVCS_EOFFLINE ? 2 : 4);
	s->stop_pushed = false; /* a later real stop still gets its own result */
}

static void serve_stop_charge(rq_t *r)
{
	cec_ctx_t *c = r->c;
	cec_status_t st;
	struct conn_lookup l = {c, r->pt};
	if (evcs_cec_validate_stop_charge(r->in.data, r->in.req.operator_id, &r->pt->profile, connector_known, &l,
					  &r->biz, &st)) {
		rq_reply(r, st.ret, st.msg, NULL);
		return;
	}
	if (!r->biz.connector_known) {
		rq_reply(r, 0, "", evcs_cec_stop_charge_reply(&r->pt->profile, &r->biz, CEC_SEQ_UNKNOWN, 1));
		return;
	}
	cec_sess_t *s = sess_by_seq(c, r->pt, r->biz.seq);
	if (!s || strcmp(s->connector_id, r->biz.connector_id) != 0 || s->seq_stat >= CEC_SEQ_FINISHED) {
		/* Unknown here: finished (or never ours); 3 = already stopped (§8.7). */
		rq_reply(r, 0, "", evcs_cec_stop_charge_reply(&r->pt->profile, &r->biz, CEC_SEQ_FINISHED, 3));
		return;
	}
	struct cmd_ctx *cc = calloc(1, sizeof *cc);
	if (!cc) {
		rq_reply(r, CEC_RET_SYSTEM, "out of memory", NULL);
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
	rq_reply(r, 0, "", evcs_cec_stop_charge_reply(&r->pt->profile, &r->biz, CEC_SEQ_STOPPING, 0));
	if (c->api->command_send(c->p, &cmd, (unsigned)c->command_timeout_ms, stop_cmd_done, cc) != EVCS_OK)
		stop_cmd_done(EVCS_EOFFLINE, NULL, cc);
}

static void serve_token(rq_t *r)
{
	cec_ctx_t *c = r->c;
	cec_status_t st;
	if (evcs_cec_validate_token(r->in.data, &st)) {
		rq_reply(r, st.ret, st.msg, NULL);
		return;
	}
	json_t *reply = evcs_cec_token_serve(&r->in, r->pt->tokens, cec_now_ms() / 1000, &st);
	if (!reply)
		rq_reply(r, st.ret, st.msg, NULL);
	else
		rq_reply(r, 0, "", reply);
	(void)c;
}

static void http_handler(evcs_http_req_t *req, void *ud)
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
		rq_reply(r, CEC_RET_BUSY, "starting, retry later", NULL);
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
		rq_reply(r, ret, r->in.st.msg, NULL);
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
	case CEC_IF_QUERY_START_CHARGE: serve_start_charge(r); break;
	case CEC_IF_QUERY_EQUIP_CHARGE_STATUS: serve_charge_status(r); break;
	case CEC_IF_QUERY_STOP_CHARGE: serve_stop_charge(r); break;
	default: rq_reply(r, CEC_RET_BIZ, "not an interface served here", NULL); break;
	}
}

/* ---- bus events -> pushes ------------------------------------------------------------------- */

static void push_gun_status(cec_ctx_t *c, int64_t tenant, const char *serial, int gun, int64_t ts_ms)
{
	cec_tenant_cat_t *tc = tenant_cat(c, tenant, false);
	json_t *pile = tc && tc->cat ? cat_pile_by_serial(tc->cat, serial) : NULL;
	if (!pile)
		return;
	json_t *g = cat_gun(tc->cat, json_integer_value(json_object_get(pile, "id")), gun);
	if (!g)
		return;
	int64_t sid = json_integer_value(json_object_get(pile, "station_id"));
	bool dc = strcmp(js(pile, "current_type"), "ac") != 0;
	for (cec_partner_rt_t *pt = c->partners; pt; pt = pt->next) {
		if (!pt->active || pt->tenant_id != tenant || !pt->base_url[0] || !partner_sees(pt, sid))
			continue;
		arena_t a = {0};
		cec_gun_t cg = {0};
		fill_gun(c, &a, serial, dc, g, &cg);
		cec_sess_t *s = sess_on_gun(c, serial, gun);
		if (s && pt->profile.status_push_live)
			cg.live = &s->live;
		char key[128];
		snprintf(key, sizeof key, "%lld:%s:%lld:%d:%d", (long long)pt->id, cg.connector_id, (long long)ts_ms,
			 (int)cg.state, cg.plugged);
		cec_outbox_push(c, pt, CEC_IF_NOTIFY_STATION_STATUS, cg.connector_id, key,
				evcs_cec_notify_station_status(&pt->profile, &cg));
		arena_free(&a);
	}
}

static int on_gun_status(const evcs_event_t *ev, void *ud)
{
	cec_ctx_t *c = ud;
	if (!ev->pile || ev->gun <= 0)
		return EVCS_DEFER;
	cec_live_gun_t *l = live_get(c, ev->pile, ev->gun, true);
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
	cec_tenant_cat_t *tc = tenant_cat(c, ev->tenant_id, false);
	json_t *pile = tc && tc->cat ? cat_pile_by_serial(tc->cat, ev->pile) : NULL;
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
		cec_live_gun_t *l = live_get(c, ev->pile, gun, true);
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
	sess_to_model(s, &m, sess_conn_status(c, s));
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
	cec_sess_t *s = trade ? sess_by_trade(c, ev->pile, trade) : NULL;
	if (!s)
		return EVCS_DEFER;
	/* YKC 0x33 convention: result 1 started, 0 failed (reason in `reason`). */
	if (c->api->event_int(ev, "result", 0) == 1) {
		s->seq_stat = CEC_SEQ_CHARGING;
		s->start_ms = ev->ts_ms;
		push_start_result(c, s, CEC_SEQ_CHARGING, NULL);
	} else {
		char ident[24];
		snprintf(ident, sizeof ident, "%lld", (long long)c->api->event_int(ev, "reason", 99));
		s->seq_stat = CEC_SEQ_FINISHED;
		push_start_result(c, s, CEC_SEQ_UNKNOWN, ident);
		/* A failed start still owes a transaction record; the order (if any) follows it. */
	}
	return EVCS_OK;
}

static int on_meter_sample(const evcs_event_t *ev, void *ud)
{
	cec_ctx_t *c = ud;
	const char *trade = c->api->event_str(ev, "trade_no");
	cec_sess_t *s = trade ? sess_by_trade(c, ev->pile, trade) : NULL;
	if (!s || s->seq_stat >= CEC_SEQ_FINISHED)
		return EVCS_DEFER;
	if (s->seq_stat == CEC_SEQ_STARTING) {
		/* Samples only flow once charging: the start result was missed or is late. */
		s->seq_stat = CEC_SEQ_CHARGING;
		s->start_ms = ev->ts_ms;
		push_start_result(c, s, CEC_SEQ_CHARGING, NULL);
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
	cec_sess_t *s = trade ? sess_by_trade(c, ev->pile, trade) : NULL;
	if (!s)
		return EVCS_DEFER;
	if (s->seq_stat == CEC_SEQ_STARTING)
		push_start_result(c, s, CEC_SEQ_CHARGING, NULL);
	s->seq_stat = CEC_SEQ_FINISHED;
	s->end_ms = ev->ts_ms;
	push_stop_result(c, s, 0);
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
			LOG(c, EVCS_LOG_ERR, oc->tenant_id, "cannot read session %s for its CEC order: %s", oc->trade,
			    c->api->status_name(status));
		free(oc);
		return;
	}
	json_t *j = json_loads(result, 0, NULL);
	json_t *row = json_object_get(j, "session");
	cec_partner_rt_t *pt = cec_partner_by_id(c, json_integer_value(json_object_get(row, "partner_id")));
	const char *seq = js(row, "partner_seq");
	cec_sess_t *s = pt ? sess_by_seq(c, pt, seq) : NULL;
	if (pt && *seq && (!s || !s->order_pushed)) {
		if (s && !s->stop_pushed) {
			s->seq_stat = CEC_SEQ_FINISHED;
			push_stop_result(c, s, 0);
		}
		char cid[CEC_ID_MAX + 1];
		connector_id(cid, js(row, "serial"), (int)json_integer_value(json_object_get(row, "gun_no")));
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
		m.n_details = row_details(row, d, m.start_time, m.end_time);
		m.details = d;
		m.stop_reason = stop_reason_code(row);
		m.vin = *js(row, "vin") ? js(row, "vin") : NULL;
		char key[128];
		snprintf(key, sizeof key, "%lld:%s", (long long)pt->id, seq);
		cec_outbox_push(c, pt, CEC_IF_NOTIFY_CHARGE_ORDER_INFO, cid, key, evcs_cec_notify_order_info(&pt->profile, &m));
		if (s)
			sess_free(c, s);
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
	if (!s || c->api->store(c->p, "cec.session.get", s, order_done, oc) != EVCS_OK)
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
			LOG(c, EVCS_LOG_WARNING, pt->tenant_id, "check_charge_orders for %s skipped: %s", pt->operator_id,
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
		o[i].start_charge_seq = js(row, "partner_seq");
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

static void check_tick(void *ud)
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
		if (c->api->store(c->p, "cec.orders", a, orders_done, k) != EVCS_OK)
			free(k);
	}
}

/* ---- loading: partner_file -> partners -> catalogs -> outbox ---------------------------------- */

static void catalog_done(int status, const char *result, void *ud);

struct cat_ctx {
	cec_ctx_t *c;
	int64_t tenant_id;
};

static void maybe_ready(cec_ctx_t *c)
{
	for (cec_tenant_cat_t *t = c->tenants; t; t = t->next)
		if (t->loading)
			return;
	if (!c->ready) {
		c->ready = true;
		LOG(c, EVCS_LOG_NOTICE, 0, "ready: serving %s", c->prefix);
		cec_outbox_load(c);
	}
	cec_outbox_kick(c);
}

static void catalog_done(int status, const char *result, void *ud)
{
	struct cat_ctx *k = ud;
	cec_ctx_t *c = k->c;
	cec_tenant_cat_t *t = tenant_cat(c, k->tenant_id, false);
	free(k);
	if (!t)
		return;
	t->loading = false;
	if (status != EVCS_OK)
		LOG(c, EVCS_LOG_ERR, t->tenant_id, "cannot load stations for CEC: %s", c->api->status_name(status));
	else {
		json_t *j = json_loads(result, 0, NULL);
		if (j) {
			json_decref(t->cat);
			t->cat = j;
		}
	}
	maybe_ready(c);
}

static void partners_done(int status, const char *result, void *ud)
{
	cec_ctx_t *c = ud;
	if (status != EVCS_OK) {
		LOG(c, EVCS_LOG_ERR, 0, "cannot load CEC partners: %s %s", c->api->status_name(status), result ? result : "");
		return; /* the refresh timer tries again */
	}
	json_t *j = json_loads(result, 0, NULL);
	size_t i;
	json_t *o;
	for (cec_partner_rt_t *pt = c->partners; pt; pt = pt->next)
		pt->active = false; /* gone from the list = disabled; kept for queued entries */
	json_array_foreach(json_object_get(j, "partners"), i, o)
	{
		int64_t id = json_integer_value(json_object_get(o, "id"));
		cec_partner_rt_t *pt = cec_partner_by_id(c, id);
		if (!pt) {
			pt = calloc(1, sizeof *pt);
			if (!pt || !(pt->tokens = evcs_cec_tokens_new())) {
				free(pt);
				continue;
			}
			pt->id = id;
			pt->next = c->partners;
			c->partners = pt;
		}
		partner_update(c, pt, o);
	}
	json_decref(j);
	for (cec_partner_rt_t *pt = c->partners; pt; pt = pt->next) {
		cec_tenant_cat_t *t = tenant_cat(c, pt->tenant_id, true);
		if (!t || t->loading)
			continue;
		struct cat_ctx *k = malloc(sizeof *k);
		if (!k)
			continue;
		*k = (struct cat_ctx){c, t->tenant_id};
		char a[64];
		snprintf(a, sizeof a, "{\"tenant_id\":%lld}", (long long)t->tenant_id);
		t->loading = true;
		if (c->api->store(c->p, "cec.catalog", a, catalog_done, k) != EVCS_OK) {
			t->loading = false;
			free(k);
		}
	}
	maybe_ready(c);
}

static void load_partners(cec_ctx_t *c) { c->api->store(c->p, "cec.partner.list", "{}", partners_done, c); }

struct file_ctx {
	cec_ctx_t *c;
	size_t left;
	int failed;
};

static void file_put_done(int status, const char *result, void *ud)
{
	struct file_ctx *f = ud;
	if (status != EVCS_OK) {
		LOG(f->c, EVCS_LOG_ERR, 0, "partner_file entry refused: %s %s", f->c->api->status_name(status),
		    result ? result : "");
		f->failed++;
	}
	if (--f->left == 0) {
		/* A refused entry (database not reachable yet, say) is retried at the next refresh. */
		f->c->file_pending = f->failed > 0;
		load_partners(f->c);
		free(f);
	}
}

/* partner_file: {"partners":[{tenant_id, operator_id, our_operator_id, ..., stations:[ids],
 * profile?: "orise", profile_flags?: {...}}]}. Entries are upserted with cec.partner.put (the
 * outbox needs their database ids); profile settings are kept here in memory. */
static int load_partner_file(cec_ctx_t *c, const char *path)
{
	json_error_t je;
	json_t *j = json_load_file(path, 0, &je);
	json_t *arr = json_object_get(j, "partners");
	if (!j || !json_is_array(arr)) {
		LOG(c, EVCS_LOG_ERR, 0, "partner_file %s: %s (line %d)", path, j ? "no \"partners\" array" : je.text,
		    je.line);
		json_decref(j);
		return -1;
	}
	struct file_ctx *f = calloc(1, sizeof *f);
	if (!f) {
		json_decref(j);
		return -1;
	}
	f->c = c;
	f->left = 1; /* guard until every put is submitted */
	size_t i;
	json_t *o;
	json_array_foreach(arr, i, o)
	{
		char key[64];
		snprintf(key, sizeof key, "%lld:%s", (long long)json_integer_value(json_object_get(o, "tenant_id")),
			 js(o, "operator_id"));
		json_t *prof = json_object();
		if (json_object_get(o, "profile"))
			json_object_set(prof, "profile", json_object_get(o, "profile"));
		if (json_object_get(o, "profile_flags"))
			json_object_set(prof, "profile_flags", json_object_get(o, "profile_flags"));
		json_object_set_new(c->file_profiles, key, prof);
		json_t *args = json_deep_copy(o);
		json_object_del(args, "profile");
		json_object_del(args, "profile_flags");
		char *s = json_dumps(args, JSON_COMPACT);
		json_decref(args);
		f->left++;
		if (!s || c->api->store(c->p, "cec.partner.put", s, file_put_done, f) != EVCS_OK) {
			f->left--;
			LOG(c, EVCS_LOG_ERR, 0, "partner_file %s: entry %zu not stored", path, i);
		}
		free(s);
	}
	json_decref(j);
	file_put_done(EVCS_OK, NULL, f);
	return 0;
}

static void load_all(cec_ctx_t *c)
{
	const char *pf = c->api->config_get(c->p, "partner_file");
	if (pf && *pf) {
		if (load_partner_file(c, pf) == 0)
			return;
	}
	load_partners(c);
}

static void refresh_tick(void *ud)
{
	cec_ctx_t *c = ud;
	if (c->file_pending)
		load_all(c);
	else
		load_partners(c);
}

static void prune_tick(void *ud)
{
	cec_ctx_t *c = ud;
	int64_t now = cec_now_ms() / 1000;
	for (cec_partner_rt_t *pt = c->partners; pt; pt = pt->next)
		evcs_cec_tokens_prune(pt->tokens, now);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static int read_config(cec_ctx_t *c)
{
	const char *pre = c->api->config_get(c->p, "prefix");
	if (!pre || !*pre)
		pre = "/evcs/v1/";
	if (pre[0] != '/' || strlen(pre) + 2 > sizeof c->prefix) {
		LOG(c, EVCS_LOG_ERR, 0, "prefix must start with '/': %s", pre);
		return -1;
	}
	snprintf(c->prefix, sizeof c->prefix, "%s%s", pre, pre[strlen(pre) - 1] == '/' ? "" : "/");
	long long v;
	struct {
		const char *k;
		long long def, min, max;
		long long *out;
		long long mul;
	} keys[] = {
	    {"charge_status_interval", 60, 0, 3600, &c->status_interval_ms, 1000},
	    {"retry_base_ms", 1000, 10, 600000, &c->retry_base_ms, 1},
	    {"retry_max_ms", 300000, 10, 86400000, &c->retry_max_ms, 1},
	    {"refresh_interval", 60, 1, 86400, &c->refresh_ms, 1000},
	    {"command_timeout_ms", 15000, 100, 600000, &c->command_timeout_ms, 1},
	    {"http_timeout_ms", 10000, 100, 600000, &c->http_timeout_ms, 1},
	    {"max_inflight", 4, 1, 256, &c->max_inflight, 1},
	    {"check_hour", 1, -1, 23, &c->check_hour, 1},
	};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		if (c->api->config_int(c->p, keys[i].k, keys[i].def, keys[i].min, keys[i].max, &v) != EVCS_OK)
			return -1;
		*keys[i].out = v * keys[i].mul;
	}
	return 0;
}

static void first_check(void *ud)
{
	cec_ctx_t *c = ud;
	c->first_check = NULL; /* one-shot timers free themselves */
	check_tick(c);
}

static void ctx_free(cec_ctx_t *c);
static const evcs_api_t *cec_api;
static int cec_start(cec_ctx_t *c);

static int cec_init(evcs_plugin_t *p, const evcs_api_t *api)
{
	if (!EVCS_API_HAS(api, status_name))
		return EVCS_ENOTSUP;
	cec_ctx_t *c = calloc(1, sizeof *c);
	if (!c)
		return EVCS_ENOMEM;
	c->p = p;
	c->api = api;
	cec_api = api;
	api->set_userdata(p, c);
	int r = cec_start(c);
	if (r != EVCS_OK) {
		api->set_userdata(p, NULL);
		ctx_free(c); /* cleanup() is not called after a failed init */
	}
	return r;
}

static int cec_start(cec_ctx_t *c)
{
	evcs_plugin_t *p = c->p;
	const evcs_api_t *api = c->api;
	if (read_config(c) < 0)
		return EVCS_EINVAL;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	c->file_profiles = json_object();
	c->http = cec_http_new(api->event_base(p), (long)c->http_timeout_ms);
	if (!c->http)
		return EVCS_ENOMEM;
	int r;
	c->m_req = api->metric_new(p, "evcs_cec_requests_total", "CEC requests served", EVCS_METRIC_COUNTER);
	c->m_err = api->metric_new(p, "evcs_cec_request_errors_total", "CEC requests answered with Ret != 0",
				   EVCS_METRIC_COUNTER);
	c->m_push_ok = api->metric_new(p, "evcs_cec_pushes_total", "CEC pushes acknowledged", EVCS_METRIC_COUNTER);
	c->m_push_fail = api->metric_new(p, "evcs_cec_push_failures_total", "CEC push attempts that failed",
					 EVCS_METRIC_COUNTER);
	c->m_outbox = api->metric_new(p, "evcs_cec_outbox_queued", "CEC pushes not yet acknowledged", EVCS_METRIC_GAUGE);
	r = api->http_route(p, "POST", c->prefix, http_handler, c);
	if (r != EVCS_OK) {
		LOG(c, EVCS_LOG_ERR, 0, "cannot route %s: %s", c->prefix, api->status_name(r));
		return r;
	}
	static const struct {
		uint32_t type;
		evcs_bus_cb cb;
	} subs[] = {{EVCS_EV_GUN_STATUS, on_gun_status},          {EVCS_EV_PILE_OFFLINE, on_pile_offline},
		    {EVCS_EV_SESSION_STARTED, on_session_started}, {EVCS_EV_METER_SAMPLE, on_meter_sample},
		    {EVCS_EV_SESSION_STOPPED, on_session_stopped}, {EVCS_EV_TRANSACTION_CLOSED, on_transaction_closed}};
	for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
		/* Run after the owning plugin (which stores the change first). */
		if (api->bus_subscribe(p, subs[i].type, EVCS_PRIO_LAST, subs[i].cb, c, &c->subs[c->nsubs++]) != EVCS_OK)
			return EVCS_ERR;
	c->refresh_timer = api->timer_add(p, (unsigned)c->refresh_ms, 1, refresh_tick, c);
	c->check_timer = api->timer_add(p, 60000, 1, check_tick, c);
	c->prune_timer = api->timer_add(p, 600000, 1, prune_tick, c);
	/* First reconciliation check shortly after start-up, then every minute. */
	c->first_check = api->timer_add(p, 2000, 0, first_check, c);
	load_all(c);
	return EVCS_OK;
}

static void ctx_free(cec_ctx_t *c)
{
	if (!c)
		return;
	c->stopping = true;
	const evcs_api_t *api = c->api;
	evcs_timer_t *timers[] = {c->refresh_timer, c->check_timer, c->prune_timer, c->first_check};
	for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++)
		if (timers[i])
			api->timer_del(timers[i]);
	cec_outbox_free(c);
	cec_http_free(c->http);
	while (c->partners) {
		cec_partner_rt_t *pt = c->partners;
		c->partners = pt->next;
		evcs_cec_tokens_free(pt->tokens);
		free(pt->stations);
		free(pt->token);
		free(pt);
	}
	while (c->tenants) {
		cec_tenant_cat_t *t = c->tenants;
		c->tenants = t->next;
		json_decref(t->cat);
		free(t);
	}
	while (c->live) {
		cec_live_gun_t *l = c->live;
		c->live = l->next;
		free(l);
	}
	while (c->sessions) {
		cec_sess_t *s = c->sessions;
		c->sessions = s->next;
		free(s);
	}
	json_decref(c->file_profiles);
	free(c);
}

/* The table is handed to init() only; cleanup() needs it to find its state (set once, never
 * changed: the one static of this plugin). */

static void cec_cleanup(evcs_plugin_t *p)
{
	/* The core drops our routes, subscriptions and pending store callbacks after this;
	 * timers and transfers are ours to stop. */
	if (cec_api)
		ctx_free(cec_api->get_userdata(p));
}

static void cec_reload(evcs_plugin_t *p) { (void)p; }

const evcs_plugin_info_t cec_info = {
    .size = sizeof(evcs_plugin_info_t),
    .abi_major = EVCS_ABI_MAJOR,
    .abi_minor = EVCS_ABI_MINOR,
    .name = "cec",
    .version = "1.0.0",
    .description = "T/CEC 102 interconnect: serve partner platforms and push notifications to them",
    .init = cec_init,
    .cleanup = cec_cleanup,
    .reload = cec_reload,
};

EVCS_PLUGIN_DECLARE(cec_info)
