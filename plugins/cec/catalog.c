/*
 * catalog.c: what the CEC plugin knows of partners and stations. A partner's stored row becomes
 * its runtime form (key sets for both directions, the protocol profile layered as cec2016 ->
 * stored profile -> partner_file, the stations it may see); a tenant's catalog (stations, piles,
 * connectors, tariffs as loaded by plugin.c) is searched here and mapped to the cec_station_t /
 * cec_pile_t / cec_gun_t of cec_model.h. Loop thread only; nothing here blocks or allocates
 * beyond the arena the caller frees.
 */
#include "cec_plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
		CEC_LOG(c, EVCS_LOG_WARNING, pt->tenant_id, "partner %s: unknown profile %s ignored", pt->operator_id, preset);
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
			CEC_LOG(c, EVCS_LOG_WARNING, pt->tenant_id, "partner %s: %s", pt->operator_id, err);
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

void cec_partner_update(cec_ctx_t *c, cec_partner_rt_t *pt, json_t *o)
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

bool cec_partner_sees(const cec_partner_rt_t *pt, int64_t station_id)
{
	for (size_t i = 0; i < pt->n_stations; i++)
		if (pt->stations[i] == station_id)
			return true;
	return false;
}

/* ---- catalog -------------------------------------------------------------------------------- */

cec_tenant_cat_t *cec_tenant_cat(cec_ctx_t *c, int64_t t, bool create)
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

json_t *cec_cat_find(json_t *cat, const char *arr, const char *key, int64_t v)
{
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(cat, arr), i, o) if (json_integer_value(json_object_get(o, key)) == v) return o;
	return NULL;
}

json_t *cec_cat_pile(json_t *cat, const char *serial)
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

json_t *cec_cat_gun(json_t *cat, int64_t pile_id, int gun)
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

cec_live_gun_t *cec_live_get(cec_ctx_t *c, const char *serial, int gun, bool create)
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

void cec_connector_id(char out[CEC_ID_MAX + 1], const char *serial, int gun)
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


/* Resolve a ConnectorID for a partner: 1 found and visible, 0 not. */
int cec_resolve_connector(cec_ctx_t *c, const cec_partner_rt_t *pt, const char *cid, gun_ref_t *r)
{
	memset(r, 0, sizeof *r);
	if (parse_connector_id(cid, r->serial, &r->gun_no))
		return 0;
	r->tc = cec_tenant_cat(c, pt->tenant_id, false);
	if (!r->tc || !r->tc->cat)
		return 0;
	r->pile = cec_cat_pile(r->tc->cat, r->serial);
	if (!r->pile)
		return 0;
	int64_t sid = json_integer_value(json_object_get(r->pile, "station_id"));
	if (!cec_partner_sees(pt, sid))
		return 0;
	r->station = cec_cat_find(r->tc->cat, "stations", "id", sid);
	r->gun = cec_cat_gun(r->tc->cat, json_integer_value(json_object_get(r->pile, "id")), r->gun_no);
	return r->gun && r->station ? 1 : 0;
}

void cec_gun_state(cec_ctx_t *c, const char *serial, int gun, json_t *row, int *status, bool *plugged)
{
	cec_live_gun_t *l = cec_live_get(c, serial, gun, false);
	if (l) {
		*status = l->status;
		*plugged = l->plugged;
	} else {
		*status = (int)json_integer_value(json_object_get(row, "status"));
		*plugged = json_integer_value(json_object_get(row, "plugged")) != 0;
	}
}


void *cec_arena_alloc(arena_t *a, size_t sz)
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

void cec_arena_free(arena_t *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->blocks[i]);
	free(a->blocks);
	memset(a, 0, sizeof *a);
}

const char *cec_js(json_t *o, const char *k)
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
void cec_fill_gun(cec_ctx_t *c, arena_t *a, const char *serial, bool dc, json_t *g, cec_gun_t *out)
{
	int gun = (int)json_integer_value(json_object_get(g, "gun_no"));
	char *cid = cec_arena_alloc(a, CEC_ID_MAX + 1);
	if (cid)
		cec_connector_id(cid, serial, gun);
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
	cec_gun_state(c, serial, gun, g, &st, &plugged);
	out->state = (cec_gun_state_t)st;
	out->plugged = plugged;
}

int cec_fill_station(cec_ctx_t *c, const cec_partner_rt_t *pt, json_t *cat, json_t *s, arena_t *a,
			cec_station_t *out)
{
	memset(out, 0, sizeof *out);
	int64_t sid = json_integer_value(json_object_get(s, "id"));
	char *id = cec_arena_alloc(a, 24);
	if (!id)
		return -1;
	snprintf(id, 24, "%lld", (long long)sid);
	out->tenant_id = pt->tenant_id;
	out->station_id = id;
	out->operator_id = pt->our_operator_id;
	out->equipment_owner_id = pt->our_operator_id;
	out->name = cec_js(s, "name");
	out->area_code = cec_js(s, "area_code");
	out->address = cec_js(s, "address");
	out->service_tel = cec_js(s, "service_tel");
	out->station_type = (int)json_integer_value(json_object_get(s, "station_type"));
	out->station_status = station_status_code(cec_js(s, "status"));
	out->lng_e6 = json_integer_value(json_object_get(s, "lng_e6"));
	out->lat_e6 = json_integer_value(json_object_get(s, "lat_e6"));
	out->construction = 255;
	out->busine_hours = *cec_js(s, "opening_hours") ? cec_js(s, "opening_hours") : NULL;
	out->remark = *cec_js(s, "remark") ? cec_js(s, "remark") : NULL;
	json_t *photos = json_object_get(s, "photos");
	if (json_array_size(photos)) {
		const char **pics = cec_arena_alloc(a, json_array_size(photos) * sizeof *pics);
		size_t i;
		json_t *ph;
		json_array_foreach(photos, i, ph) if (pics && json_is_string(ph)) pics[out->n_pictures++] = json_string_value(ph);
		out->pictures = pics;
	}
	size_t np = 0, i;
	json_t *p;
	json_array_foreach(json_object_get(cat, "piles"), i, p) if (json_integer_value(json_object_get(p, "station_id")) == sid) np++;
	cec_pile_t *piles = cec_arena_alloc(a, np * sizeof *piles);
	if (!piles)
		return -1;
	json_array_foreach(json_object_get(cat, "piles"), i, p)
	{
		if (json_integer_value(json_object_get(p, "station_id")) != sid)
			continue;
		cec_pile_t *pp = &piles[out->n_piles++];
		const char *serial = cec_js(p, "serial");
		bool dc = strcmp(cec_js(p, "current_type"), "ac") != 0;
		pp->equipment_id = serial;
		pp->model = *cec_js(p, "model") ? cec_js(p, "model") : NULL;
		pp->manufacturer_name = *cec_js(p, "vendor") ? cec_js(p, "vendor") : NULL;
		pp->name = *cec_js(p, "name") ? cec_js(p, "name") : NULL;
		pp->equipment_type = dc ? 1 : 2;
		pp->power_w = json_integer_value(json_object_get(p, "rated_power_w"));
		int64_t pid = json_integer_value(json_object_get(p, "id"));
		size_t ng = 0, j;
		json_t *g;
		json_array_foreach(json_object_get(cat, "connectors"), j, g) if (json_integer_value(json_object_get(g, "pile_id")) == pid) ng++;
		cec_gun_t *guns = cec_arena_alloc(a, ng * sizeof *guns);
		if (!guns)
			return -1;
		json_array_foreach(json_object_get(cat, "connectors"), j, g)
		{
			if (json_integer_value(json_object_get(g, "pile_id")) == pid)
				cec_fill_gun(c, a, serial, dc, g, &guns[pp->n_guns++]);
		}
		pp->guns = guns;
	}
	out->piles = piles;
	return 0;
}

