/*
 * cec_model.c: T/CEC 102 parts 2 and 3 objects (contract in cec_model.h).
 * Output is strict (standard key names unless the profile says otherwise, fixed decimals);
 * input is tolerant (any key case, every known spelling, unknown keys ignored).
 */
#include "cec_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ interfaces */

static const char *const iface_names[CEC_IF__COUNT] = {
	[CEC_IF_QUERY_TOKEN] = "query_token",
	[CEC_IF_QUERY_STATIONS_INFO] = "query_stations_info",
	[CEC_IF_QUERY_STATION_STATUS] = "query_station_status",
	[CEC_IF_QUERY_STATION_STATS] = "query_station_stats",
	[CEC_IF_QUERY_EQUIP_AUTH] = "query_equip_auth",
	[CEC_IF_QUERY_EQUIP_BUSINESS_POLICY] = "query_equip_business_policy",
	[CEC_IF_QUERY_START_CHARGE] = "query_start_charge",
	[CEC_IF_QUERY_EQUIP_CHARGE_STATUS] = "query_equip_charge_status",
	[CEC_IF_QUERY_STOP_CHARGE] = "query_stop_charge",
	[CEC_IF_NOTIFY_STATION_STATUS] = "notification_stationStatus",
	[CEC_IF_NOTIFY_START_CHARGE_RESULT] = "notification_start_charge_result",
	[CEC_IF_NOTIFY_EQUIP_CHARGE_STATUS] = "notification_equip_charge_status",
	[CEC_IF_NOTIFY_STOP_CHARGE_RESULT] = "notification_stop_charge_result",
	[CEC_IF_NOTIFY_CHARGE_ORDER_INFO] = "notification_charge_order_info",
	[CEC_IF_CHECK_CHARGE_ORDERS] = "check_charge_orders",
};

const char *evcs_cec_iface_name(cec_iface_t i)
{
	return (unsigned)i < CEC_IF__COUNT ? iface_names[i] : NULL;
}

int evcs_cec_iface_from_name(const char *name)
{
	for (int i = 0; name && i < CEC_IF__COUNT; i++)
		if (!strcmp(iface_names[i], name))
			return i;
	return -1;
}

/* ---------------------------------------------------------- enumerations */

int evcs_cec_connector_status(cec_gun_state_t s, bool plugged, bool reserved)
{
	switch (s) {
	case CEC_GUN_OFFLINE: return CEC_CS_OFFLINE;
	case CEC_GUN_FAULT: return CEC_CS_FAULT;
	case CEC_GUN_CHARGING: return CEC_CS_CHARGING;
	case CEC_GUN_IDLE:
		if (plugged)
			return CEC_CS_PLUGGED;
		return reserved ? CEC_CS_RESERVED : CEC_CS_IDLE;
	}
	/* A state the core added later: do not advertise a gun we cannot classify as usable. */
	return CEC_CS_FAULT;
}

int evcs_cec_charge_connector_status(cec_gun_state_t s, bool plugged, bool reserved)
{
	int v = evcs_cec_connector_status(s, plugged, reserved);
	return v == CEC_CS_OFFLINE ? CEC_CS_FAULT : v;
}

/* --------------------------------------------------------- JSON building */

/* Accumulates members into one object; the first failure is kept in err and the
 * builder then returns NULL, so call sites stay linear. */
typedef struct bld {
	json_t *o;
	cec_status_t *err;
	bool bad;
} bld_t;

static bld_t bnew(cec_status_t *err)
{
	bld_t b = {json_object(), err, false};
	if (!b.o) {
		b.bad = true;
		evcs_cec_fail(err, CEC_RET_SYSTEM, "out of memory");
	}
	return b;
}

static json_t *bdone(bld_t *b)
{
	if (b->bad) {
		json_decref(b->o);
		return NULL;
	}
	return b->o;
}

static void bset(bld_t *b, const char *key, json_t *v)
{
	if (b->bad)
		goto drop;
	if (!v) {
		b->bad = true;
		evcs_cec_fail(b->err, CEC_RET_SYSTEM, "cannot encode %s", key);
		return;
	}
	if (json_object_set_new(b->o, key, v)) {
		b->bad = true;
		evcs_cec_fail(b->err, CEC_RET_SYSTEM, "out of memory at %s", key);
	}
	return;
drop:
	json_decref(v);
}

/* Text limited to maxc characters (S(n) counts characters, so cut at a UTF-8 boundary);
 * maxc 0 = no limit. Invalid UTF-8 fails the whole object naming the field. */
static json_t *text(const char *s, size_t maxc)
{
	if (!s)
		s = "";
	size_t len = strlen(s);
	if (maxc) {
		size_t chars = 0, i = 0;
		while (i < len && chars < maxc) {
			i++;
			while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
				i++;
			chars++;
		}
		len = i;
	}
	return json_stringn(s, len);
}

static void bstr(bld_t *b, const char *key, const char *s, size_t maxc)
{
	json_t *v = text(s, maxc);
	if (!v && !b->bad) {
		b->bad = true;
		evcs_cec_fail(b->err, CEC_RET_SYSTEM, "%s is not valid UTF-8", key);
		return;
	}
	bset(b, key, v);
}

static void bostr(bld_t *b, const char *key, const char *s, size_t maxc)
{
	if (s && *s)
		bstr(b, key, s, maxc);
}

static void bint(bld_t *b, const char *key, json_int_t v)
{
	bset(b, key, json_integer(v));
}

static void bdec(bld_t *b, const char *key, int64_t v, unsigned scale, unsigned dec)
{
	bset(b, key, evcs_cec_json_dec(v, scale, dec));
}

static void btime(bld_t *b, const cec_profile_t *p, const char *key, int64_t t, enum cec_time_fmt f)
{
	char buf[20];
	bset(b, key, json_string(evcs_cec_time_format(t, p->utc_offset_sec, f, buf)));
}

#define MONEY(b, key, v) bdec((b), (key), (v), 5, 2)
#define PRICE(b, key, v) bdec((b), (key), (v), 5, 4)
#define ENERGY(b, p, key, v) bdec((b), (key), (v), 4, (unsigned)((p)->energy_decimals == 2 ? 2 : 3))
#define KW(b, key, w) bdec((b), (key), (w), 3, 1)
#define COORD(b, key, v) bdec((b), (key), (v), 6, 6)

static const char *svc(const cec_profile_t *p, const char *standard, const char *xj)
{
	return p->spell_service ? xj : standard;
}

/* --------------------------------------------------------- StationInfo */

static json_t *connector_info(const cec_gun_t *g, cec_status_t *err)
{
	bld_t b = bnew(err);
	bstr(&b, "ConnectorID", g->connector_id, 0);
	bostr(&b, "ConnectorName", g->name, 30);
	bint(&b, "ConnectorType", g->connector_type);
	bint(&b, "VoltageUpperLimits", g->voltage_upper_v);
	bint(&b, "VoltageLowerLimits", g->voltage_lower_v);
	bint(&b, "Current", g->current_a);
	KW(&b, "Power", g->power_w);
	bostr(&b, "ParkNo", g->park_no, 10);
	if (g->national_standard)
		bint(&b, "NationalStandard", g->national_standard);
	return bdone(&b);
}

static json_t *equipment_info(const cec_profile_t *p, const cec_pile_t *e, cec_status_t *err)
{
	bld_t b = bnew(err);
	bstr(&b, "EquipmentID", e->equipment_id, 0);
	bostr(&b, "ManufacturerID", e->manufacturer_id, 9);
	bostr(&b, "ManufacturerName", e->manufacturer_name, 30);
	bostr(&b, "EquipmentModel", e->model, 20);
	if (e->production_date)
		btime(&b, p, "ProductionDate", e->production_date, CEC_TF_DATE);
	bint(&b, "EquipmentType", e->equipment_type);
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < e->n_guns; i++) {
		json_t *c = connector_info(&e->guns[i], err);
		if (!c || json_array_append_new(arr, c)) {
			json_decref(arr);
			arr = NULL;
		}
	}
	bset(&b, "ConnectorInfos", arr);
	if (e->has_gps) {
		COORD(&b, "EquipmentLng", e->lng_e6);
		COORD(&b, "EquipmentLat", e->lat_e6);
	}
	KW(&b, "Power", e->power_w);
	bostr(&b, "EquipmentName", e->name, 30);
	return bdone(&b);
}

json_t *evcs_cec_station_info(const cec_profile_t *p, const cec_station_t *s, cec_status_t *err)
{
	bld_t b = bnew(err);
	bstr(&b, "StationID", s->station_id, 0);
	bstr(&b, "OperatorID", s->operator_id, 9);
	bstr(&b, "EquipmentOwnerID", s->equipment_owner_id ? s->equipment_owner_id : s->operator_id, 9);
	bstr(&b, "StationName", s->name, 50);
	bstr(&b, "CountryCode", s->country_code ? s->country_code : "CN", 2);
	bstr(&b, "AreaCode", s->area_code, 20);
	bstr(&b, "Address", s->address, 50);
	bostr(&b, "StationTel", s->station_tel, 30);
	bstr(&b, "ServiceTel", s->service_tel, 30);
	bint(&b, "StationType", s->station_type);
	bint(&b, "StationStatus", s->station_status);
	bint(&b, "ParkNums", s->park_nums);
	COORD(&b, "StationLng", s->lng_e6);
	COORD(&b, "StationLat", s->lat_e6);
	bostr(&b, "SiteGuide", s->site_guide, 100);
	bint(&b, "Construction", s->construction);
	if (s->n_pictures) {
		json_t *pics = json_array();
		for (size_t i = 0; pics && i < s->n_pictures; i++) {
			json_t *u = text(s->pictures[i], 0);
			if (!u || json_array_append_new(pics, u)) {
				json_decref(pics);
				pics = NULL;
			}
		}
		bset(&b, "Pictures", pics);
	}
	bostr(&b, "MatchCars", s->match_cars, 100);
	bostr(&b, "ParkInfo", s->park_info, 100);
	bostr(&b, "BusineHours", s->busine_hours, 100); /* sic, the standard's spelling */
	bostr(&b, "ElectricityFee", s->electricity_fee, 256);
	bostr(&b, "ServiceFee", s->service_fee, 100);
	bostr(&b, "ParkFee", s->park_fee, 100);
	bostr(&b, "Payment", s->payment, 20);
	if (s->support_order)
		bint(&b, "SupportOrder", s->support_order);
	bostr(&b, "Remark", s->remark, 100);
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < s->n_piles; i++) {
		json_t *e = equipment_info(p, &s->piles[i], err);
		if (!e || json_array_append_new(arr, e)) {
			json_decref(arr);
			arr = NULL;
		}
	}
	bset(&b, "EquipmentInfos", arr);
	/* Extras never override the standard members built above. */
	if (p->station_extra && json_is_object(s->extra) && !b.bad) {
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)s->extra, k, v)
		{
			if (!json_object_get(b.o, k))
				bset(&b, k, json_deep_copy(v));
		}
	}
	return bdone(&b);
}

/* ---------------------------------------------------------------- paging */

static json_t *getf(const json_t *d, const char *key)
{
	json_t *v = evcs_cec_jget(d, key);
	return json_is_null(v) ? NULL : v;
}

/* Integer member that may also arrive as a digit string (loosely typed clients). */
static int get_uint(const json_t *d, const char *key, bool *present, unsigned *out, cec_status_t *st)
{
	json_t *v = getf(d, key);
	*present = v != NULL;
	if (!v)
		return 0;
	long long x;
	if (json_is_integer(v)) {
		x = json_integer_value(v);
	} else if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < 10 &&
		   strspn(json_string_value(v), "0123456789") == json_string_length(v)) {
		x = atoll(json_string_value(v));
	} else {
		return evcs_cec_fail(st, CEC_RET_BIZ, "%s must be an integer", key);
	}
	if (x < 0 || x > 1000000000)
		return evcs_cec_fail(st, CEC_RET_BIZ, "%s out of range", key);
	*out = (unsigned)x;
	return 0;
}

int evcs_cec_validate_stations_info(const json_t *data, const cec_profile_t *p, cec_page_t *out, cec_status_t *st)
{
	memset(out, 0, sizeof *out);
	bool has = false;
	unsigned v = 0;
	if (get_uint(data, "PageNo", &has, &v, st))
		return CEC_RET_BIZ;
	if (has && v < 1)
		return evcs_cec_fail(st, CEC_RET_BIZ, "PageNo must be at least 1");
	out->page_no = has ? v : 1;
	if (get_uint(data, "PageSize", &has, &v, st))
		return CEC_RET_BIZ;
	if (has && v < 1)
		return evcs_cec_fail(st, CEC_RET_BIZ, "PageSize must be at least 1");
	out->page_size = has ? v : (p->page_size_default ? p->page_size_default : 10);
	if (p->page_size_max && out->page_size > p->page_size_max)
		out->page_size = p->page_size_max;
	json_t *lq = getf(data, "LastQueryTime");
	if (lq) {
		if (!json_is_string(lq))
			return evcs_cec_fail(st, CEC_RET_BIZ, "LastQueryTime must be a string");
		/* Empty means "everything" (§7.1). */
		if (json_string_length(lq)) {
			if (evcs_cec_time_parse(json_string_value(lq), CEC_TF_DATETIME, p->utc_offset_sec, &out->since))
				return evcs_cec_fail(st, CEC_RET_BIZ, "LastQueryTime must be yyyy-MM-dd HH:mm:ss");
			out->has_since = true;
		}
	}
	evcs_cec_fail(st, CEC_RET_OK, "%s", "");
	return CEC_RET_OK;
}

uint64_t evcs_cec_page_offset(const cec_page_t *pg)
{
	return (uint64_t)(pg->page_no - 1) * pg->page_size;
}

json_t *evcs_cec_stations_info_reply(const cec_profile_t *p, const cec_page_t *pg, uint64_t item_size,
				     const cec_station_t *stations, size_t n, cec_status_t *err)
{
	uint64_t size = pg->page_size ? pg->page_size : 10;
	bld_t b = bnew(err);
	bint(&b, "PageNo", pg->page_no);
	bint(&b, "PageCount", (json_int_t)((item_size + size - 1) / size));
	bint(&b, "ItemSize", (json_int_t)item_size);
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < n; i++) {
		json_t *s = evcs_cec_station_info(p, &stations[i], err);
		if (!s || json_array_append_new(arr, s)) {
			json_decref(arr);
			arr = NULL;
		}
	}
	bset(&b, "StationInfos", arr);
	return bdone(&b);
}

/* ------------------------------------------------------- station status */

static void connector_status_members(bld_t *b, const cec_profile_t *p, const cec_gun_t *g)
{
	bstr(b, p->lower_camel_ids ? "connectorID" : "ConnectorID", g->connector_id, 0);
	bint(b, "Status", evcs_cec_connector_status(g->state, g->plugged, g->reserved));
	if (g->park_status)
		bint(b, "ParkStatus", g->park_status);
	if (g->lock_status)
		bint(b, "LockStatus", g->lock_status);
}

json_t *evcs_cec_connector_status_info(const cec_profile_t *p, const cec_gun_t *g)
{
	bld_t b = bnew(NULL);
	connector_status_members(&b, p, g);
	return bdone(&b);
}

json_t *evcs_cec_station_status_reply(const cec_profile_t *p, const cec_station_t *stations, size_t n)
{
	bld_t b = bnew(NULL);
	bint(&b, "Total", (json_int_t)n);
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < n; i++) {
		bld_t s = bnew(NULL);
		bstr(&s, p->lower_camel_ids ? "stationID" : "StationID", stations[i].station_id, 0);
		json_t *cs = json_array();
		for (size_t e = 0; cs && e < stations[i].n_piles; e++) {
			const cec_pile_t *pile = &stations[i].piles[e];
			for (size_t g = 0; cs && g < pile->n_guns; g++) {
				json_t *c = evcs_cec_connector_status_info(p, &pile->guns[g]);
				if (!c || json_array_append_new(cs, c)) {
					json_decref(cs);
					cs = NULL;
				}
			}
		}
		bset(&s, "ConnectorStatusInfos", cs);
		json_t *so = bdone(&s);
		if (!so || json_array_append_new(arr, so)) {
			json_decref(arr);
			arr = NULL;
		}
	}
	bset(&b, "StationStatusInfos", arr);
	return bdone(&b);
}

/* ----------------------------------------------------------- validation */

/* Required string field copied into out[cap]: 4004 naming the field if missing, not a
 * string, empty or too long. */
static int req_str(const json_t *d, const char *key, char *out, size_t cap, cec_status_t *st)
{
	json_t *v = getf(d, key);
	if (!v)
		return evcs_cec_fail(st, CEC_RET_BIZ, "%s missing", key);
	if (!json_is_string(v))
		return evcs_cec_fail(st, CEC_RET_BIZ, "%s must be a string", key);
	size_t n = json_string_length(v);
	if (n == 0)
		return evcs_cec_fail(st, CEC_RET_BIZ, "%s empty", key);
	if (n >= cap || strlen(json_string_value(v)) != n)
		return evcs_cec_fail(st, CEC_RET_BIZ, "%s too long or contains NUL", key);
	memcpy(out, json_string_value(v), n + 1);
	return 0;
}

/* Optional string from any of the spellings; "" if absent. */
static int opt_str2(const json_t *d, const char *k1, const char *k2, char *out, size_t cap, cec_status_t *st)
{
	json_t *v = evcs_cec_jget_any(d, k1, k2, (const char *)NULL);
	out[0] = '\0';
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return evcs_cec_fail(st, CEC_RET_BIZ, "%s must be a string", k1);
	size_t n = json_string_length(v);
	if (n >= cap || strlen(json_string_value(v)) != n)
		return evcs_cec_fail(st, CEC_RET_BIZ, "%s too long", k1);
	memcpy(out, json_string_value(v), n + 1);
	return 0;
}

int evcs_cec_check_seq(const char *field, const char *seq, const char *caller_opid, const cec_profile_t *p,
		       cec_status_t *st)
{
	size_t n = strlen(seq);
	if (n != CEC_SEQ_LEN)
		return evcs_cec_fail(st, CEC_RET_BIZ, "%s must be %d characters", field, CEC_SEQ_LEN);
	for (size_t i = 0; i < n; i++) {
		char c = seq[i];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
			return evcs_cec_fail(st, CEC_RET_BIZ, "%s must be letters and digits", field);
	}
	/* The first 9 characters are the caller's OperatorID (§8), which also keeps two partners'
	 * sequence numbers from colliding on our side. */
	if (p->seq_prefix_check && caller_opid && strncmp(seq, caller_opid, CEC_OPID_LEN))
		return evcs_cec_fail(st, CEC_RET_BIZ, "%s must start with the caller's OperatorID", field);
	return 0;
}

/* ORISE lets a scanned QR-code URL stand for the ConnectorID (§8.1) and extracts 16 digits.
 * ? Which 16 is not documented; we take the last run of at least 16 digits and its last 16. */
static void qr_extract(char *id)
{
	if (!strstr(id, "://") && !strchr(id, '?') && !strchr(id, '/') && !strchr(id, '='))
		return;
	size_t n = strlen(id), best_end = 0, run = 0, best_run = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && id[i] >= '0' && id[i] <= '9') {
			run++;
			continue;
		}
		if (run >= 16) {
			best_end = i;
			best_run = run;
		}
		run = 0;
	}
	if (best_run >= 16)
		memmove(id, id + best_end - 16, 16), id[16] = '\0';
}

static int connector_field(const json_t *d, const cec_profile_t *p, cec_connector_fn lookup, void *ud,
			   bool business_reply, cec_biz_req_t *out, cec_status_t *st)
{
	/* Room for a QR URL before extraction. */
	char buf[512];
	if (req_str(d, "ConnectorID", buf, sizeof buf, st))
		return CEC_RET_BIZ;
	if (p->qr_url_connector)
		qr_extract(buf);
	size_t n = strlen(buf);
	if (n > CEC_ID_MAX)
		return evcs_cec_fail(st, CEC_RET_BIZ, "ConnectorID too long");
	memcpy(out->connector_id, buf, n + 1);
	if (!lookup)
		return evcs_cec_fail(st, CEC_RET_SYSTEM, "no connector lookup");
	int r = lookup(ud, out->connector_id);
	if (r < 0)
		return evcs_cec_fail(st, CEC_RET_SYSTEM, "connector lookup failed");
	out->connector_known = r > 0;
	/* query_start_charge / query_stop_charge have FailReason 1 "no such device" (§8.3, §8.7),
	 * so an unknown connector is a business answer there unless the profile wants 4004. */
	if (!out->connector_known && (!business_reply || p->unknown_connector_4004))
		return evcs_cec_fail(st, CEC_RET_BIZ, "ConnectorID unknown: %s", out->connector_id);
	return 0;
}

static int ok_st(cec_status_t *st)
{
	return evcs_cec_fail(st, CEC_RET_OK, "%s", "");
}

static int validate_seq_conn(const json_t *data, const char *seq_key, const char *caller_opid,
			     const cec_profile_t *p, cec_connector_fn lookup, void *ud, bool business_reply,
			     cec_biz_req_t *out, cec_status_t *st)
{
	memset(out, 0, sizeof *out);
	if (!json_is_object(data))
		return evcs_cec_fail(st, CEC_RET_BIZ, "Data must be a JSON object");
	char seq[64];
	if (req_str(data, seq_key, seq, sizeof seq, st) || evcs_cec_check_seq(seq_key, seq, caller_opid, p, st))
		return CEC_RET_BIZ;
	memcpy(out->seq, seq, CEC_SEQ_LEN + 1);
	int r = connector_field(data, p, lookup, ud, business_reply, out, st);
	return r ? r : ok_st(st);
}

int evcs_cec_validate_equip_auth(const json_t *data, const char *caller_opid, const cec_profile_t *p,
				 cec_connector_fn lookup, void *ud, cec_biz_req_t *out, cec_status_t *st)
{
	return validate_seq_conn(data, "EquipAuthSeq", caller_opid, p, lookup, ud, false, out, st);
}

int evcs_cec_validate_business_policy(const json_t *data, const char *caller_opid, const cec_profile_t *p,
				      cec_connector_fn lookup, void *ud, cec_biz_req_t *out, cec_status_t *st)
{
	return validate_seq_conn(data, "EquipBizSeq", caller_opid, p, lookup, ud, false, out, st);
}

int evcs_cec_validate_start_charge(const json_t *data, const char *caller_opid, const cec_profile_t *p,
				   cec_connector_fn lookup, void *ud, cec_biz_req_t *out, cec_status_t *st)
{
	int r = validate_seq_conn(data, "StartChargeSeq", caller_opid, p, lookup, ud, true, out, st);
	if (r)
		return r;
	/* QRCode is the standard key, QrCode ORISE's (§8.3); jget is case-insensitive anyway. */
	if (opt_str2(data, "QRCode", "QrCode", out->qr_code, sizeof out->qr_code, st) ||
	    opt_str2(data, "PhoneNum", NULL, out->phone, sizeof out->phone, st) ||
	    opt_str2(data, "PlateNum", NULL, out->plate, sizeof out->plate, st))
		return CEC_RET_BIZ;
	json_t *bal = getf(data, "Balance");
	if (bal) {
		if (evcs_cec_json_get_dec(bal, 5, &out->balance))
			return evcs_cec_fail(st, CEC_RET_BIZ, "Balance must be a decimal amount");
		out->has_balance = true;
	}
	return ok_st(st);
}

int evcs_cec_validate_charge_status(const json_t *data, const char *caller_opid, const cec_profile_t *p,
				    cec_biz_req_t *out, cec_status_t *st)
{
	memset(out, 0, sizeof *out);
	if (!json_is_object(data))
		return evcs_cec_fail(st, CEC_RET_BIZ, "Data must be a JSON object");
	char seq[64];
	if (req_str(data, "StartChargeSeq", seq, sizeof seq, st) ||
	    evcs_cec_check_seq("StartChargeSeq", seq, caller_opid, p, st))
		return CEC_RET_BIZ;
	memcpy(out->seq, seq, CEC_SEQ_LEN + 1);
	return ok_st(st);
}

int evcs_cec_validate_stop_charge(const json_t *data, const char *caller_opid, const cec_profile_t *p,
				  cec_connector_fn lookup, void *ud, cec_biz_req_t *out, cec_status_t *st)
{
	return validate_seq_conn(data, "StartChargeSeq", caller_opid, p, lookup, ud, true, out, st);
}

int evcs_cec_validate_token(const json_t *data, cec_status_t *st)
{
	char buf[256];
	if (!json_is_object(data))
		return evcs_cec_fail(st, CEC_RET_BIZ, "Data must be a JSON object");
	if (req_str(data, "OperatorID", buf, sizeof buf, st) || req_str(data, "OperatorSecret", buf, sizeof buf, st))
		return CEC_RET_BIZ;
	return ok_st(st);
}

int evcs_cec_validate_station_status(const json_t *data, const cec_profile_t *p, cec_station_ids_t *out,
				     cec_status_t *st)
{
	memset(out, 0, sizeof *out);
	json_t *ids = getf(data, "StationIDs");
	if (!ids)
		return evcs_cec_fail(st, CEC_RET_BIZ, "StationIDs missing");
	if (!json_is_array(ids))
		return evcs_cec_fail(st, CEC_RET_BIZ, "StationIDs must be an array");
	size_t n = json_array_size(ids);
	unsigned max = p->station_ids_max ? p->station_ids_max : 50;
	if (n > max)
		return evcs_cec_fail(st, CEC_RET_BIZ, "StationIDs has %zu entries, at most %u allowed", n, max);
	out->ids = calloc(n ? n : 1, sizeof *out->ids);
	if (!out->ids)
		return evcs_cec_fail(st, CEC_RET_SYSTEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_array_get(ids, i);
		if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) > CEC_ID_MAX ||
		    strlen(json_string_value(v)) != json_string_length(v)) {
			evcs_cec_station_ids_clear(out);
			return evcs_cec_fail(st, CEC_RET_BIZ, "StationIDs[%zu] must be a non-empty string of at most %d",
					     i, CEC_ID_MAX);
		}
		out->ids[i] = strdup(json_string_value(v));
		if (!out->ids[i]) {
			evcs_cec_station_ids_clear(out);
			return evcs_cec_fail(st, CEC_RET_SYSTEM, "out of memory");
		}
		out->n = i + 1;
	}
	return ok_st(st);
}

void evcs_cec_station_ids_clear(cec_station_ids_t *ids)
{
	for (size_t i = 0; ids->ids && i < ids->n; i++)
		free(ids->ids[i]);
	free(ids->ids);
	ids->ids = NULL;
	ids->n = 0;
}

int evcs_cec_validate_station_stats(const json_t *data, const cec_profile_t *p, cec_stats_req_t *out,
				    cec_status_t *st)
{
	memset(out, 0, sizeof *out);
	if (!json_is_object(data))
		return evcs_cec_fail(st, CEC_RET_BIZ, "Data must be a JSON object");
	if (req_str(data, "StationID", out->station_id, sizeof out->station_id, st) ||
	    req_str(data, "StartTime", out->start, sizeof out->start, st) ||
	    req_str(data, "EndTime", out->end, sizeof out->end, st))
		return CEC_RET_BIZ;
	if (evcs_cec_time_parse(out->start, CEC_TF_DATE, p->utc_offset_sec, &out->start_epoch))
		return evcs_cec_fail(st, CEC_RET_BIZ, "StartTime must be yyyy-MM-dd");
	int64_t e;
	if (evcs_cec_time_parse(out->end, CEC_TF_DATE, p->utc_offset_sec, &e))
		return evcs_cec_fail(st, CEC_RET_BIZ, "EndTime must be yyyy-MM-dd");
	if (e < out->start_epoch)
		return evcs_cec_fail(st, CEC_RET_BIZ, "EndTime before StartTime");
	out->end_epoch = e + 86400;
	int64_t days = (out->end_epoch - out->start_epoch) / 86400;
	if (p->stats_max_days && days > p->stats_max_days)
		return evcs_cec_fail(st, CEC_RET_BIZ, "StartTime..EndTime spans %lld days, at most %u allowed",
				     (long long)days, p->stats_max_days);
	return ok_st(st);
}

json_t *evcs_cec_station_stats_reply(const cec_profile_t *p, const cec_stats_req_t *req,
				     const cec_equipment_stats_t *equipments, size_t n)
{
	bld_t s = bnew(NULL);
	int64_t station_total = 0;
	json_t *earr = json_array();
	for (size_t i = 0; earr && i < n; i++) {
		const cec_equipment_stats_t *eq = &equipments[i];
		int64_t eq_total = 0;
		json_t *carr = json_array();
		for (size_t c = 0; carr && c < eq->n; c++) {
			bld_t cb = bnew(NULL);
			bstr(&cb, "ConnectorID", eq->connectors[c].connector_id, 0);
			bdec(&cb, "ConnectorElectricity", eq->connectors[c].energy, 4, 1);
			eq_total += eq->connectors[c].energy;
			json_t *co = bdone(&cb);
			if (!co || json_array_append_new(carr, co)) {
				json_decref(carr);
				carr = NULL;
			}
		}
		station_total += eq_total;
		bld_t eb = bnew(NULL);
		bstr(&eb, "EquipmentID", eq->equipment_id, 0);
		bdec(&eb, "EquipmentElectricity", eq_total, 4, 1);
		bset(&eb, "ConnectorStatsInfos", carr);
		json_t *eo = bdone(&eb);
		if (!eo || json_array_append_new(earr, eo)) {
			json_decref(earr);
			earr = NULL;
		}
	}
	bstr(&s, "StationID", req->station_id, 0);
	bstr(&s, p->stats_star_time ? "StarTime" : "StartTime", req->start, 0);
	bstr(&s, "EndTime", req->end, 0);
	bdec(&s, "StationElectricity", station_total, 4, 1);
	bset(&s, "EquipmentStatsInfos", earr);
	json_t *stats = bdone(&s);
	bld_t b = bnew(NULL);
	bset(&b, "StationStats", stats);
	return bdone(&b);
}

/* ------------------------------------------------------- part 3 replies */

json_t *evcs_cec_equip_auth_reply(const cec_profile_t *p, const cec_biz_req_t *req, int fail_reason,
				  const char *fail_msg)
{
	bld_t b = bnew(NULL);
	bstr(&b, "EquipAuthSeq", req->seq, 0);
	bstr(&b, "ConnectorID", req->connector_id, 0);
	bint(&b, "SuccStat", fail_reason ? 1 : 0);
	bint(&b, "FailReason", fail_reason);
	if (p->equip_auth_fail_msg)
		bstr(&b, "FailReasonMsg", fail_msg ? fail_msg : "", 0);
	return bdone(&b);
}

json_t *evcs_cec_business_policy_reply(const cec_profile_t *p, const cec_biz_req_t *req,
				       const cec_policy_period_t *periods, size_t n, int fail_reason)
{
	if (fail_reason)
		n = 0;
	if (n > 32)
		return NULL;
	bld_t b = bnew(NULL);
	bstr(&b, "EquipBizSeq", req->seq, 0);
	bstr(&b, "ConnectorID", req->connector_id, 0);
	bint(&b, "SuccStat", fail_reason ? 1 : 0);
	bint(&b, "FailReason", fail_reason);
	bint(&b, "SumPeriod", (json_int_t)n);
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < n; i++) {
		bld_t pb = bnew(NULL);
		char hms[20];
		bset(&pb, "StartTime", json_string(evcs_cec_time_format(periods[i].start_sec, 0, CEC_TF_HMS, hms)));
		PRICE(&pb, "ElecPrice", periods[i].elec_price);
		PRICE(&pb, svc(p, "SevicePrice", "ServicePrice"), periods[i].service_price);
		if (p->policy_price_type)
			bint(&pb, "PriceType", periods[i].type);
		json_t *po = bdone(&pb);
		if (!po || json_array_append_new(arr, po)) {
			json_decref(arr);
			arr = NULL;
		}
	}
	bset(&b, "PolicyInfos", arr);
	return bdone(&b);
}

json_t *evcs_cec_start_charge_reply(const cec_profile_t *p, const cec_biz_req_t *req, int seq_stat,
				    int fail_reason)
{
	(void)p;
	bld_t b = bnew(NULL);
	bstr(&b, "StartChargeSeq", req->seq, 0);
	bint(&b, "StartChargeSeqStat", seq_stat);
	bstr(&b, "ConnectorID", req->connector_id, 0);
	bint(&b, "SuccStat", fail_reason ? 1 : 0);
	bint(&b, "FailReason", fail_reason);
	return bdone(&b);
}

json_t *evcs_cec_stop_charge_reply(const cec_profile_t *p, const cec_biz_req_t *req, int seq_stat,
				   int fail_reason)
{
	(void)p;
	bld_t b = bnew(NULL);
	bstr(&b, "StartChargeSeq", req->seq, 0);
	bint(&b, "StartChargeSeqStat", seq_stat);
	bint(&b, "SuccStat", fail_reason ? 1 : 0);
	bint(&b, "FailReason", fail_reason);
	return bdone(&b);
}

static json_t *details_array(const cec_profile_t *p, const cec_charge_detail_t *d, size_t n)
{
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < n; i++) {
		bld_t b = bnew(NULL);
		btime(&b, p, "DetailStartTime", d[i].start, CEC_TF_DATETIME);
		btime(&b, p, "DetailEndTime", d[i].end, CEC_TF_DATETIME);
		PRICE(&b, "ElecPrice", d[i].elec_price);
		PRICE(&b, svc(p, "SevicePrice", "ServicePrice"), d[i].service_price);
		ENERGY(&b, p, "DetailPower", d[i].energy);
		MONEY(&b, "DetailElecMoney", d[i].elec_money);
		MONEY(&b, svc(p, "DetailSeviceMoney", "DetailServiceMoney"), d[i].service_money);
		json_t *o = bdone(&b);
		if (!o || json_array_append_new(arr, o)) {
			json_decref(arr);
			arr = NULL;
		}
	}
	return arr;
}

static json_t *charge_status(const cec_profile_t *p, const cec_session_t *s, bool query)
{
	if (s->n_details > 32)
		return NULL;
	bld_t b = bnew(NULL);
	bstr(&b, "StartChargeSeq", s->start_charge_seq, 0);
	bint(&b, "StartChargeSeqStat", s->seq_stat);
	bstr(&b, "ConnectorID", s->connector_id, 0);
	bint(&b, "ConnectorStatus", s->connector_status);
	static const char *const cur[] = {"CurrentA", "CurrentB", "CurrentC"};
	static const char *const vol[] = {"VoltageA", "VoltageB", "VoltageC"};
	unsigned ph = s->live.phases == 3 ? 3 : 1;
	for (unsigned i = 0; i < ph; i++) {
		bdec(&b, cur[i], s->live.current_da[i], 1, 1);
		bdec(&b, vol[i], s->live.voltage_dv[i], 1, 1);
	}
	if (s->live.soc >= 0)
		bint(&b, "Soc", s->live.soc);
	btime(&b, p, "StartTime", s->start_time, CEC_TF_DATETIME);
	btime(&b, p, "EndTime", s->sample_time, CEC_TF_DATETIME);
	ENERGY(&b, p, "TotalPower", s->energy);
	/* XJ spells it ElectMoney in the query reply only, SH in its pushes (§9). */
	bool elect = query ? p->elect_money_query : p->elect_money_push;
	MONEY(&b, elect ? "ElectMoney" : "ElecMoney", s->elec_money);
	MONEY(&b, svc(p, "SeviceMoney", "ServiceMoney"), s->service_money);
	MONEY(&b, "TotalMoney", s->total_money);
	bint(&b, "SumPeriod", (json_int_t)s->n_details);
	bset(&b, "ChargeDetails", details_array(p, s->details, s->n_details));
	return bdone(&b);
}

json_t *evcs_cec_charge_status_reply(const cec_profile_t *p, const cec_session_t *s)
{
	return charge_status(p, s, true);
}

/* ----------------------------------------------------------------- pushes */

json_t *evcs_cec_notify_station_status(const cec_profile_t *p, const cec_gun_t *g)
{
	bld_t c = bnew(NULL);
	connector_status_members(&c, p, g);
	if (p->status_push_live && g->live) {
		/* SH extends the pushed ConnectorStatusInfo with three-phase values and SOC (§10). */
		static const char *const cur[] = {"CurrentA", "CurrentB", "CurrentC"};
		static const char *const vol[] = {"VoltageA", "VoltageB", "VoltageC"};
		for (int i = 0; i < 3; i++) {
			bool on = i == 0 || g->live->phases == 3;
			bdec(&c, cur[i], on ? g->live->current_da[i] : 0, 1, 1);
			bdec(&c, vol[i], on ? g->live->voltage_dv[i] : 0, 1, 1);
		}
		bint(&c, "SOC", g->live->soc >= 0 ? g->live->soc : 0);
	}
	json_t *info = bdone(&c);
	bld_t b = bnew(NULL);
	if (p->status_push_array) {
		json_t *arr = json_array();
		if (arr && info && json_array_append_new(arr, info) == 0)
			bset(&b, "ConnectorStatusInfos", arr);
		else {
			json_decref(arr);
			bset(&b, "ConnectorStatusInfos", NULL);
		}
	} else {
		bset(&b, "ConnectorStatusInfo", info);
	}
	return bdone(&b);
}

json_t *evcs_cec_notify_start_result(const cec_profile_t *p, const char *start_charge_seq, int seq_stat,
				     const char *connector_id, int64_t start_time, const char *ident_code)
{
	bld_t b = bnew(NULL);
	bstr(&b, "StartChargeSeq", start_charge_seq, 0);
	bint(&b, "StartChargeSeqStat", seq_stat);
	bstr(&b, "ConnectorID", connector_id, 0);
	btime(&b, p, "StartTime", start_time, CEC_TF_DATETIME);
	bostr(&b, "IdentCode", ident_code, 0);
	return bdone(&b);
}

json_t *evcs_cec_notify_charge_status(const cec_profile_t *p, const cec_session_t *s)
{
	return charge_status(p, s, false);
}

json_t *evcs_cec_notify_stop_result(const cec_profile_t *p, const char *start_charge_seq, int seq_stat,
				    const char *connector_id, int fail_reason)
{
	(void)p;
	bld_t b = bnew(NULL);
	bstr(&b, "StartChargeSeq", start_charge_seq, 0);
	bint(&b, "StartChargeSeqStat", seq_stat);
	bstr(&b, "ConnectorID", connector_id, 0);
	bint(&b, "SuccStat", fail_reason ? 1 : 0);
	bint(&b, "FailReason", fail_reason);
	return bdone(&b);
}

json_t *evcs_cec_notify_order_info(const cec_profile_t *p, const cec_session_t *s)
{
	if (s->n_details > 32)
		return NULL;
	bld_t b = bnew(NULL);
	bstr(&b, "StartChargeSeq", s->start_charge_seq, 0);
	bstr(&b, "ConnectorID", s->connector_id, 0);
	btime(&b, p, "StartTime", s->start_time, CEC_TF_DATETIME);
	btime(&b, p, "EndTime", s->end_time, CEC_TF_DATETIME);
	ENERGY(&b, p, "TotalPower", s->energy);
	MONEY(&b, "TotalElecMoney", s->elec_money);
	MONEY(&b, svc(p, "TotalSeviceMoney", "TotalServiceMoney"), s->service_money);
	MONEY(&b, "TotalMoney", s->total_money);
	bint(&b, "StopReason", s->stop_reason);
	bint(&b, p->sub_period ? "SubPeriod" : "SumPeriod", (json_int_t)s->n_details);
	bset(&b, "ChargeDetails", details_array(p, s->details, s->n_details));
	if (p->order_vin)
		bostr(&b, "Vin", s->vin, 17);
	if (p->order_account_date)
		btime(&b, p, "AccountDate", s->end_time, CEC_TF_DATE);
	if (p->order_tou_summary) {
		/* SH OrderInfo breaks the bill down by tariff class (§10): energy, the class's
		 * prices (from its first period; a class has one price per tariff) and money
		 * (electricity + service). ? SH's decimals are not documented; ours are used. */
		static const char *const cls[] = {"Cusp", "Peak", "Flat", "Valley"};
		for (int c = 0; c < 4; c++) {
			int64_t e = 0, m = 0, ep = 0, sp = 0;
			bool seen = false;
			for (size_t i = 0; i < s->n_details; i++) {
				const cec_charge_detail_t *d = &s->details[i];
				if ((int)d->type != c)
					continue;
				if (!seen) {
					ep = d->elec_price;
					sp = d->service_price;
					seen = true;
				}
				e += d->energy;
				m += d->elec_money + d->service_money;
			}
			char k[32];
			snprintf(k, sizeof k, "%sElect", cls[c]);
			ENERGY(&b, p, k, e);
			snprintf(k, sizeof k, "%sElectPrice", cls[c]);
			PRICE(&b, k, ep);
			snprintf(k, sizeof k, "%sServicePrice", cls[c]);
			PRICE(&b, k, sp);
			snprintf(k, sizeof k, "%sMoney", cls[c]);
			MONEY(&b, k, m);
		}
	}
	return bdone(&b);
}

/* Round v (units 10^-scale) to `dec` places and return it in the same units, so totals can
 * be summed from exactly what was sent. */
static int64_t rounded(int64_t v, unsigned scale, unsigned dec)
{
	int64_t div = 1;
	for (unsigned i = dec; i < scale; i++)
		div *= 10;
	int64_t q = v / div, r = v % div;
	if (r < 0)
		r = -r;
	if (r * 2 >= div)
		q += v < 0 ? -1 : 1;
	return q * div;
}

json_t *evcs_cec_check_charge_orders(const cec_profile_t *p, const char *check_seq, int64_t start, int64_t end,
				     const cec_order_sum_t *orders, size_t n)
{
	unsigned edec = p->energy_decimals == 2 ? 2 : 3;
	int64_t te = 0, tm = 0;
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < n; i++) {
		int64_t e = rounded(orders[i].energy, 4, edec), m = rounded(orders[i].total_money, 5, 2);
		te += e;
		tm += m;
		bld_t o = bnew(NULL);
		bstr(&o, "StartChargeSeq", orders[i].start_charge_seq, 0);
		bdec(&o, "TotalPower", e, 4, edec);
		bdec(&o, "TotalMoney", m, 5, 2);
		json_t *oo = bdone(&o);
		if (!oo || json_array_append_new(arr, oo)) {
			json_decref(arr);
			arr = NULL;
		}
	}
	bld_t b = bnew(NULL);
	bstr(&b, "CheckOrderSeq", check_seq, 0);
	btime(&b, p, "StartTime", start, CEC_TF_DATETIME);
	btime(&b, p, "EndTime", end, CEC_TF_DATETIME);
	bint(&b, "OrderCount", (json_int_t)n);
	bdec(&b, "TotalOrderPower", te, 4, edec);
	bdec(&b, "TotalOrderMoney", tm, 5, 2);
	bset(&b, "ChargeOrders", arr);
	return bdone(&b);
}

/* ------------------------------------------------------ replies to pushes */

static int get_int(const json_t *d, const char *key, int *out)
{
	json_t *v = getf(d, key);
	if (json_is_integer(v)) {
		*out = (int)json_integer_value(v);
		return 0;
	}
	if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < 10 &&
	    strspn(json_string_value(v), "0123456789") == json_string_length(v)) {
		*out = atoi(json_string_value(v));
		return 0;
	}
	return -1;
}

int evcs_cec_parse_push_reply(cec_iface_t iface, const json_t *data, cec_push_result_t *out, cec_status_t *st)
{
	memset(out, 0, sizeof *out);
	if (!json_is_object(data))
		return evcs_cec_fail(st, CEC_RET_BIZ, "reply Data missing");
	const char *key;
	switch (iface) {
	case CEC_IF_NOTIFY_STATION_STATUS: key = "Status"; break;
	case CEC_IF_NOTIFY_START_CHARGE_RESULT:
	case CEC_IF_NOTIFY_EQUIP_CHARGE_STATUS:
	case CEC_IF_NOTIFY_STOP_CHARGE_RESULT: key = "SuccStat"; break;
	case CEC_IF_NOTIFY_CHARGE_ORDER_INFO: key = "ConfirmResult"; break;
	case CEC_IF_CHECK_CHARGE_ORDERS:
		out->done = true;
		return ok_st(st);
	default: return evcs_cec_fail(st, CEC_RET_BIZ, "not a push interface");
	}
	if (get_int(data, key, &out->code))
		return evcs_cec_fail(st, CEC_RET_BIZ, "reply %s missing", key);
	get_int(data, "FailReason", &out->fail_reason);
	if (iface == CEC_IF_NOTIFY_STATION_STATUS)
		out->done = out->code == 0 || out->code == 1;
	else
		out->done = out->code == 0;
	return ok_st(st);
}

void evcs_cec_check_reply_clear(cec_check_reply_t *r)
{
	free(r->disputes);
	memset(r, 0, sizeof *r);
}

int evcs_cec_parse_check_reply(const json_t *data, cec_check_reply_t *out, cec_status_t *st)
{
	memset(out, 0, sizeof *out);
	if (!json_is_object(data))
		return evcs_cec_fail(st, CEC_RET_BIZ, "reply Data missing");
	if (req_str(data, "CheckOrderSeq", out->check_seq, sizeof out->check_seq, st))
		return CEC_RET_BIZ;
	if (get_int(data, "TotalDisputeOrder", &out->total_disputes))
		out->total_disputes = 0;
	json_t *v;
	if ((v = getf(data, "TotalDisputePower")) && evcs_cec_json_get_dec(v, 4, &out->dispute_energy))
		return evcs_cec_fail(st, CEC_RET_BIZ, "TotalDisputePower must be a decimal");
	if ((v = getf(data, "TotalDisputeMoney")) && evcs_cec_json_get_dec(v, 5, &out->dispute_money))
		return evcs_cec_fail(st, CEC_RET_BIZ, "TotalDisputeMoney must be a decimal");
	json_t *arr = getf(data, "DisputeOrders");
	if (!arr)
		return ok_st(st);
	if (!json_is_array(arr))
		return evcs_cec_fail(st, CEC_RET_BIZ, "DisputeOrders must be an array");
	size_t n = json_array_size(arr);
	out->disputes = calloc(n ? n : 1, sizeof *out->disputes);
	if (!out->disputes)
		return evcs_cec_fail(st, CEC_RET_SYSTEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_array_get(arr, i);
		cec_dispute_t *d = &out->disputes[i];
		json_t *tp = getf(o, "TotalPower"), *tmv = getf(o, "TotalMoney");
		if (!json_is_object(o) ||
		    req_str(o, "StartChargeSeq", d->start_charge_seq, sizeof d->start_charge_seq, st) ||
		    (tp && evcs_cec_json_get_dec(tp, 4, &d->energy)) ||
		    (tmv && evcs_cec_json_get_dec(tmv, 5, &d->total_money)) ||
		    get_int(o, "DisputeReason", &d->reason)) {
			evcs_cec_check_reply_clear(out);
			return evcs_cec_fail(st, CEC_RET_BIZ, "DisputeOrders[%zu] malformed", i);
		}
		out->n = i + 1;
	}
	return ok_st(st);
}
