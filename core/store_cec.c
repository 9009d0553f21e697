/*
 * store_cec.c: the storage operations of the CEC (T/CEC 102) interconnect plugin, registered
 * by evcs_store_register_cec(). Field lists are in plugins/cec/README.md ("Storage operations").
 *
 * Contract: every op is asynchronous (evcs_db_* on the loop thread, result through
 * evcs_store_finish). Tenant-owned rows are read and written only through tenant-scoped
 * statements (`tenant_id = ?` markers), so an op can never cross tenants; the three
 * installation-wide reads (partner list without a tenant, pending outbox rows) are named
 * *_platform and only return what a CEC sender needs. Bad arguments fail EVCS_EINVAL with
 * the field named; a duplicate StartChargeSeq fails EVCS_EEXIST; database errors pass
 * through with the data layer's status.
 * Secrets: partner secrets are returned to the plugin (it needs them to sign); the operator
 * API must not expose them back on reads (its concern, see README).
 */
#include "core.h"
#include "db.h"
#include "store.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ------------------------------------------------------------------------- */

/* One result row as an object; types[c] is 'i' (integer), 's' (text), 'j' (JSON text) per column. */
static json_t *row_obj(const evcs_db_result_t *r, size_t row, const char *types)
{
	json_t *o = json_object();
	for (unsigned c = 0; c < r->ncols && types[c]; c++) {
		const char *v = evcs_db_cell(r, row, c);
		json_t *jv;
		if (!v)
			jv = json_null();
		else if (types[c] == 'i') {
			int64_t n = 0;
			jv = evcs_db_cell_i64(r, row, c, &n) == 0 ? json_integer(n) : json_null();
		} else if (types[c] == 'j') {
			jv = json_loads(v, JSON_DECODE_ANY, NULL);
			if (!jv)
				jv = json_string(v);
		} else
			jv = json_string(v);
		json_object_set_new(o, r->colnames[c], jv);
	}
	return o;
}

static json_t *rows_arr(const evcs_db_result_t *r, const char *types)
{
	json_t *a = json_array();
	for (size_t i = 0; r && i < r->nrows; i++)
		json_array_append_new(a, row_obj(r, i, types));
	return a;
}

static int get_int(json_t *args, const char *k, int64_t *out, int required)
{
	json_t *v = json_object_get(args, k);
	if (!v)
		return required ? -1 : 0;
	if (!json_is_integer(v))
		return -1;
	*out = json_integer_value(v);
	return 0;
}

static const char *get_str(json_t *args, const char *k, const char *def)
{
	json_t *v = json_object_get(args, k);
	return json_is_string(v) ? json_string_value(v) : def;
}

/* Common shape: tenant_id > 0 required. */
static int need_tenant(evcs_store_call_t *call, json_t *args, int64_t *t)
{
	*t = 0;
	if (get_int(args, "tenant_id", t, 1) || *t <= 0) {
		evcs_store_fail(call, EVCS_EINVAL, "tenant_id", "a positive integer is required");
		return -1;
	}
	return 0;
}

static evcs_db_t *db_of(evcs_store_t *s) { return evcs_store_core(s)->db; }

static void fail_db(evcs_store_call_t *call, int status, const char *errmsg)
{
	evcs_store_fail(call, status, NULL, errmsg && *errmsg ? errmsg : "database error");
}

/* ---- partner profiles ------------------------------------------------------------------------ */

/* The keys of cec_profile_t (plugins/cec/cec_proto.h) the operator may set, with their kinds:
 * 'b' boolean, 'i' signed 32-bit, 'u' unsigned 32-bit, 'l' signed 64-bit. The core cannot link
 * the plugin's protocol library, so the list is kept here; tests/test_cec_ykc.c checks that it
 * and evcs_cec_profile_set() accept exactly the same keys. */
static const struct {
	const char *name;
	char kind;
} profile_keys[] = {
    {"sig_lower_out", 'b'},        {"sig_accept_any_case", 'b'},  {"accept_unsigned_errors", 'b'},
    {"accept_plain_data", 'b'},    {"token_ttl", 'l'},            {"tokens_per_partner", 'u'},
    {"utc_offset_sec", 'i'},       {"spell_service", 'b'},        {"elect_money_query", 'b'},
    {"elect_money_push", 'b'},     {"sub_period", 'b'},           {"lower_camel_ids", 'b'},
    {"status_push_array", 'b'},    {"status_push_live", 'b'},     {"station_extra", 'b'},
    {"policy_price_type", 'b'},    {"equip_auth_fail_msg", 'b'},  {"stats_star_time", 'b'},
    {"order_tou_summary", 'b'},    {"order_vin", 'b'},            {"order_account_date", 'b'},
    {"energy_decimals", 'i'},      {"seq_prefix_check", 'b'},     {"qr_url_connector", 'b'},
    {"unknown_connector_4004", 'b'}, {"page_size_default", 'u'},  {"page_size_max", 'u'},
    {"station_ids_max", 'u'},      {"stats_max_days", 'u'},
};
static const char *const profile_presets[] = {"cec2016", "orise", "xj", "cjv", "sh", NULL};

const char *evcs_cec_profile_key_at(size_t i)
{
	return i < sizeof profile_keys / sizeof profile_keys[0] ? profile_keys[i].name : NULL;
}

int evcs_cec_profile_check(const json_t *profile, char *field, size_t flen, char *msg, size_t mlen)
{
	snprintf(field, flen, "profile");
	if (!json_is_object(profile)) {
		snprintf(msg, mlen, "profile must be a JSON object");
		return -1;
	}
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)profile, k, v)
	{
		snprintf(field, flen, "profile.%s", k);
		if (!strcmp(k, "preset")) {
			const char *name = json_string_value(v);
			size_t i = 0;
			while (name && profile_presets[i] && strcmp(profile_presets[i], name))
				i++;
			if (!name || !profile_presets[i]) {
				snprintf(msg, mlen, "preset must be one of cec2016, orise, xj, cjv, sh");
				return -1;
			}
			continue;
		}
		size_t i = 0, n = sizeof profile_keys / sizeof profile_keys[0];
		while (i < n && strcmp(profile_keys[i].name, k))
			i++;
		if (i == n) {
			snprintf(msg, mlen, "unknown CEC profile key %s", k);
			return -1;
		}
		char kind = profile_keys[i].kind;
		if (kind == 'b') {
			if (!json_is_boolean(v)) {
				snprintf(msg, mlen, "%s must be true or false", k);
				return -1;
			}
			continue;
		}
		json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
		int ok = json_is_integer(v) &&
			 (kind == 'l' ? 1
			  : kind == 'i' ? x >= INT32_MIN && x <= INT32_MAX
					: x >= 0 && x <= (json_int_t)UINT32_MAX);
		if (!strcmp(k, "energy_decimals"))
			ok = ok && (x == 2 || x == 3);
		if (!ok) {
			snprintf(msg, mlen, "%s must be %s", k,
				 !strcmp(k, "energy_decimals") ? "2 or 3"
				 : kind == 'u'		       ? "an integer 0..4294967295"
							       : "an integer");
			return -1;
		}
	}
	return 0;
}

/* ---- partners -------------------------------------------------------------------------------- */

#define PARTNER_COLS                                                                                    \
	"p.id, p.tenant_id, p.name, p.operator_id, p.our_operator_id, p.base_url, p.operator_secret, "  \
	"p.data_secret, p.data_secret_iv, p.sig_secret, p.user_operator_secret, p.user_data_secret, "   \
	"p.user_data_secret_iv, p.user_sig_secret, p.status, p.access_token, p.token_expires_ms, "      \
	"(SELECT GROUP_CONCAT(ps.station_id ORDER BY ps.station_id) FROM partner_stations ps "         \
	"WHERE ps.partner_id = p.id) AS stations, p.profile"
#define PARTNER_TYPES "iissssssssssssssisj"

/* "1,2,3" -> [1,2,3] */
static void fix_stations(json_t *o)
{
	json_t *a = json_array();
	const char *s = get_str(o, "stations", "");
	while (s && *s) {
		char *end;
		long long v = strtoll(s, &end, 10);
		if (end == s)
			break;
		json_array_append_new(a, json_integer(v));
		s = *end == ',' ? end + 1 : end;
	}
	json_object_set_new(o, "stations", a);
}

static void partner_rows_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
			    void *ud)
{
	evcs_store_call_t *call = ud;
	if (status != EVCS_OK) {
		fail_db(call, status, errmsg);
		return;
	}
	json_t *a = rows_arr(&res[0], PARTNER_TYPES);
	size_t i;
	json_t *o;
	json_array_foreach(a, i, o) fix_stations(o);
	evcs_store_finish(call, EVCS_OK, json_pack("{s:o}", "partners", a));
}

/* cec.partner.list {tenant_id?}: active partners (all tenants without tenant_id). */
static void op_partner_list(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t t = 0;
	if (get_int(args, "tenant_id", &t, 0) || t < 0) {
		evcs_store_fail(call, EVCS_EINVAL, "tenant_id", "must be a positive integer");
		return;
	}
	int r;
	if (t > 0)
		r = evcs_db_query(db_of(s), t,
				  "SELECT " PARTNER_COLS " FROM partners p WHERE p.tenant_id = ? ORDER BY p.id", NULL, 0,
				  0, partner_rows_cb, call);
	else
		r = evcs_db_query_platform(db_of(s),
					   "SELECT " PARTNER_COLS
					   " FROM partners p WHERE p.status = 'active' ORDER BY p.id",
					   NULL, 0, 0, partner_rows_cb, call);
	if (r)
		fail_db(call, r, "cannot submit");
}

static void partner_get_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	evcs_store_call_t *call = ud;
	if (status != EVCS_OK) {
		fail_db(call, status, errmsg);
		return;
	}
	if (res[0].nrows == 0) {
		evcs_store_fail(call, EVCS_ENOENT, NULL, "no such partner");
		return;
	}
	json_t *o = row_obj(&res[0], 0, PARTNER_TYPES);
	fix_stations(o);
	evcs_store_finish(call, EVCS_OK, json_pack("{s:o}", "partner", o));
}

/* cec.partner.get {tenant_id, id | operator_id} */
static void op_partner_get(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t t, id = 0;
	if (need_tenant(call, args, &t))
		return;
	const char *opid = get_str(args, "operator_id", NULL);
	if (get_int(args, "id", &id, 0) || (id <= 0 && !opid)) {
		evcs_store_fail(call, EVCS_EINVAL, "id", "id or operator_id is required");
		return;
	}
	int r;
	if (id > 0) {
		evcs_db_param_t p[] = {EVCS_DB_INT(id)};
		r = evcs_db_query(db_of(s), t, "SELECT " PARTNER_COLS " FROM partners p WHERE p.tenant_id = ? AND p.id = ?",
				  p, 1, 0, partner_get_cb, call);
	} else {
		evcs_db_param_t p[] = {EVCS_DB_STR(opid)};
		r = evcs_db_query(db_of(s), t,
				  "SELECT " PARTNER_COLS " FROM partners p WHERE p.tenant_id = ? AND p.operator_id = ?", p,
				  1, 0, partner_get_cb, call);
	}
	if (r)
		fail_db(call, r, "cannot submit");
}

static void partner_put_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	evcs_store_call_t *call = ud;
	if (status != EVCS_OK) {
		fail_db(call, status, errmsg);
		return;
	}
	evcs_store_finish(call, EVCS_OK, json_pack("{s:I}", "id", (json_int_t)res[0].insert_id));
}

static int ascii_len_ok(const char *v, size_t min, size_t max)
{
	size_t n = v ? strlen(v) : 0;
	return n >= min && n <= max;
}

/* cec.partner.put {tenant_id, operator_id, our_operator_id, name?, base_url?, operator_secret?,
 * data_secret?, data_secret_iv?, sig_secret?, user_*?, status?, stations?: [station ids]}:
 * insert or update by (tenant_id, operator_id); stations, when given, replaces the permissions. */
static void op_partner_put(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t t;
	if (need_tenant(call, args, &t))
		return;
	static const struct {
		const char *k;
		size_t min, max;
	} f[] = {{"operator_id", 9, 9},        {"our_operator_id", 9, 9},     {"name", 0, 64},
		 {"base_url", 0, 255},         {"operator_secret", 0, 64},    {"data_secret", 0, 16},
		 {"data_secret_iv", 0, 16},    {"sig_secret", 0, 64},         {"user_operator_secret", 0, 64},
		 {"user_data_secret", 0, 16},  {"user_data_secret_iv", 0, 16}, {"user_sig_secret", 0, 64},
		 {"status", 0, 16}};
	const char *v[13];
	for (size_t i = 0; i < 13; i++) {
		v[i] = get_str(args, f[i].k, "");
		if (!ascii_len_ok(v[i], f[i].min, f[i].max)) {
			evcs_store_fail(call, EVCS_EINVAL, f[i].k, "missing or wrong length");
			return;
		}
	}
	for (size_t i = 5; i < 12; i++)
		if ((i == 5 || i == 6 || i == 9 || i == 10) && *v[i] && strlen(v[i]) != 16) {
			evcs_store_fail(call, EVCS_EINVAL, f[i].k, "must be exactly 16 characters");
			return;
		}
	const char *status = *v[12] ? v[12] : "active";
	if (strcmp(status, "active") && strcmp(status, "disabled")) {
		evcs_store_fail(call, EVCS_EINVAL, "status", "active or disabled");
		return;
	}
	if (!*v[2])
		v[2] = v[0];
	json_t *st = json_object_get(args, "stations");
	if (st && !json_is_array(st)) {
		evcs_store_fail(call, EVCS_EINVAL, "stations", "an array of station ids");
		return;
	}
	evcs_db_txn_t *tx = evcs_db_txn_new(db_of(s));
	evcs_db_param_t p[] = {EVCS_DB_STR(v[2]),  EVCS_DB_STR(v[0]),  EVCS_DB_STR(v[1]),  EVCS_DB_STR(v[3]),
			       EVCS_DB_STR(v[4]),  EVCS_DB_STR(v[5]),  EVCS_DB_STR(v[6]),  EVCS_DB_STR(v[7]),
			       EVCS_DB_STR(v[8]),  EVCS_DB_STR(v[9]),  EVCS_DB_STR(v[10]), EVCS_DB_STR(v[11]),
			       EVCS_DB_STR(status)};
	/* LAST_INSERT_ID(id) makes the update path report the existing id too, so statement 0's
	 * insert id is the partner id either way. */
	evcs_db_txn_add(tx, t,
			"INSERT INTO partners SET tenant_id = ?, name = ?, operator_id = ?, our_operator_id = ?, "
			"base_url = ?, operator_secret = ?, data_secret = ?, data_secret_iv = ?, sig_secret = ?, "
			"user_operator_secret = ?, user_data_secret = ?, user_data_secret_iv = ?, user_sig_secret = ?, "
			"status = ? ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id), name = VALUES(name), "
			"our_operator_id = VALUES(our_operator_id), base_url = VALUES(base_url), "
			"operator_secret = VALUES(operator_secret), data_secret = VALUES(data_secret), "
			"data_secret_iv = VALUES(data_secret_iv), sig_secret = VALUES(sig_secret), "
			"user_operator_secret = VALUES(user_operator_secret), user_data_secret = VALUES(user_data_secret), "
			"user_data_secret_iv = VALUES(user_data_secret_iv), user_sig_secret = VALUES(user_sig_secret), "
			"status = VALUES(status)",
			p, 13, 0);
	if (st) {
		evcs_db_param_t d[] = {EVCS_DB_REFID(0)};
		evcs_db_txn_add(tx, t, "DELETE FROM partner_stations WHERE tenant_id = ? AND partner_id = ?", d, 1, 0);
		size_t i;
		json_t *e;
		json_array_foreach(st, i, e)
		{
			if (!json_is_integer(e)) {
				evcs_db_txn_free(tx);
				evcs_store_fail(call, EVCS_EINVAL, "stations", "an array of station ids");
				return;
			}
			evcs_db_param_t q[] = {EVCS_DB_REFID(0), EVCS_DB_INT(json_integer_value(e))};
			evcs_db_txn_add(tx, t,
					"INSERT INTO partner_stations SET tenant_id = ?, partner_id = ?, station_id = ?, "
					"can_charge = 1",
					q, 2, 0);
		}
	}
	int r = evcs_db_txn_submit(tx, 0, partner_put_cb, call);
	if (r)
		fail_db(call, r, "cannot submit");
}

/* cec.partner.token {tenant_id, id, access_token, token_expires_ms}: cache the token the
 * partner issued to us, so a restart does not need a fresh query_token. */
static void simple_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	evcs_store_call_t *call = ud;
	if (status != EVCS_OK) {
		fail_db(call, status, errmsg);
		return;
	}
	evcs_store_finish(call, EVCS_OK,
			  json_pack("{s:I}", "affected", (json_int_t)(nres ? res[nres - 1].affected : 0)));
}

static void op_partner_token(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t t, id = 0, exp = 0;
	if (need_tenant(call, args, &t))
		return;
	const char *tok = get_str(args, "access_token", NULL);
	if (get_int(args, "id", &id, 1) || id <= 0 || !tok || strlen(tok) > 512 ||
	    get_int(args, "token_expires_ms", &exp, 1)) {
		evcs_store_fail(call, EVCS_EINVAL, NULL, "id, access_token and token_expires_ms are required");
		return;
	}
	evcs_db_param_t p[] = {EVCS_DB_STR(tok), EVCS_DB_INT(exp), EVCS_DB_INT(id)};
	int r = evcs_db_query(db_of(s), t,
			      "UPDATE partners SET access_token = ?, token_expires_ms = ? WHERE tenant_id = ? AND id = ?",
			      p, 3, 0, simple_cb, call);
	if (r)
		fail_db(call, r, "cannot submit");
}

/* ---- catalog: stations, piles, connectors of one tenant --------------------------------------- */

static void catalog_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	evcs_store_call_t *call = ud;
	if (status != EVCS_OK || nres < 3) {
		fail_db(call, status ? status : EVCS_ERR, errmsg);
		return;
	}
	json_t *o = json_pack("{s:o, s:o, s:o, s:o}", "stations", rows_arr(&res[0], "isssiisissjsssi"), "piles",
			      rows_arr(&res[1], "iisssssisiiii"), "connectors", rows_arr(&res[2], "iiiiiiiii"),
			      "tariffs", nres > 3 ? rows_arr(&res[3], "isiiiiiiiii") : json_array());
	evcs_store_finish(call, EVCS_OK, o);
}

/* cec.catalog {tenant_id}: stations, piles (with tariff_id), connectors and non-draft tariffs:
 * everything the CEC plugin maps to StationInfo/EquipmentInfo/ConnectorInfo. */
static void op_catalog(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t t;
	if (need_tenant(call, args, &t))
		return;
	evcs_db_txn_t *tx = evcs_db_txn_new(db_of(s));
	evcs_db_txn_add(tx, t,
			"SELECT id, name, address, area_code, lat_e6, lng_e6, coord_system, station_type, status, "
			"opening_hours, photos, service_tel, remark, CAST(created_ms AS CHAR) AS created, updated_ms "
			"FROM stations WHERE tenant_id = ? ORDER BY id",
			NULL, 0, 0);
	evcs_db_txn_add(tx, t,
			"SELECT p.id, p.station_id, p.serial, p.name, p.vendor, p.model, p.current_type, "
			"p.rated_power_w, p.status, p.gun_count, p.updated_ms, IFNULL(pp.online, 0) AS online, p.tariff_id "
			"FROM piles p LEFT JOIN pile_presence pp ON pp.pile_id = p.id WHERE p.tenant_id = ? ORDER BY p.id",
			NULL, 0, 0);
	evcs_db_txn_add(tx, t,
			"SELECT id, pile_id, gun_no, connector_type, rated_power_w, status, plugged, status_ms, "
			"current_session_id FROM connectors WHERE tenant_id = ? ORDER BY pile_id, gun_no",
			NULL, 0, 0);
	evcs_db_txn_add(tx, t,
			"SELECT id, slots, sharp_elec_rate, sharp_service_rate, peak_elec_rate, peak_service_rate, "
			"flat_elec_rate, flat_service_rate, valley_elec_rate, valley_service_rate, "
			"(state = 'active') AS active FROM tariffs WHERE tenant_id = ? AND state <> 'draft' ORDER BY id",
			NULL, 0, 0);
	int r = evcs_db_txn_submit(tx, 0, catalog_cb, call);
	if (r)
		fail_db(call, r, "cannot submit");
}

/* ---- sessions ----------------------------------------------------------------------------------- */

struct open_ctx {
	evcs_store_t *s;
	evcs_store_call_t *call;
	int64_t t, partner, pile, station, connector, gun;
	char seq[40], trade[40];
};

static void open_ins_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	struct open_ctx *c = ud;
	if (status == EVCS_OK)
		evcs_store_finish(c->call, EVCS_OK, json_pack("{s:I}", "id", (json_int_t)res[0].insert_id));
	else if (status == EVCS_EEXIST)
		evcs_store_fail(c->call, EVCS_EEXIST, "trade_no", "trade_no already used on this pile");
	else
		fail_db(c->call, status, errmsg);
	free(c);
}

static void open_check_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	struct open_ctx *c = ud;
	if (status != EVCS_OK) {
		fail_db(c->call, status, errmsg);
		free(c);
		return;
	}
	if (res[0].nrows > 0) {
		evcs_store_fail(c->call, EVCS_EEXIST, "partner_seq", "StartChargeSeq already used");
		free(c);
		return;
	}
	evcs_db_param_t p[] = {c->station > 0 ? EVCS_DB_INT(c->station) : EVCS_DB_NULL,
			       EVCS_DB_INT(c->pile),
			       c->connector > 0 ? EVCS_DB_INT(c->connector) : EVCS_DB_NULL,
			       EVCS_DB_INT(c->gun),
			       EVCS_DB_STR(c->trade),
			       EVCS_DB_INT(c->partner),
			       EVCS_DB_STR(c->seq)};
	int r = evcs_db_query(db_of(c->s), c->t,
			      "INSERT INTO charging_sessions SET tenant_id = ?, station_id = ?, pile_id = ?, "
			      "connector_id = ?, gun_no = ?, trade_no = ?, state = 'pending', start_mode = 'partner', "
			      "partner_id = ?, partner_seq = ?",
			      p, 7, 0, open_ins_cb, c);
	if (r) {
		fail_db(c->call, r, "cannot submit");
		free(c);
	}
}

/* cec.session.open {tenant_id, partner_id, partner_seq, pile_id, gun_no, trade_no, station_id?,
 * connector_id?}: the pending session a partner's query_start_charge creates. EVCS_EEXIST when
 * the partner already used that StartChargeSeq (§8: a repeated seq is refused). */
static void op_session_open(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	struct open_ctx *c = calloc(1, sizeof *c);
	if (!c) {
		evcs_store_fail(call, EVCS_ENOMEM, NULL, "out of memory");
		return;
	}
	c->s = s;
	c->call = call;
	const char *seq = get_str(args, "partner_seq", NULL), *trade = get_str(args, "trade_no", NULL);
	if (need_tenant(call, args, &c->t)) {
		free(c);
		return;
	}
	if (get_int(args, "partner_id", &c->partner, 1) || get_int(args, "pile_id", &c->pile, 1) ||
	    get_int(args, "gun_no", &c->gun, 1) || get_int(args, "station_id", &c->station, 0) ||
	    get_int(args, "connector_id", &c->connector, 0) || !seq || strlen(seq) > 32 || !trade ||
	    strlen(trade) != 32) {
		evcs_store_fail(call, EVCS_EINVAL, NULL,
				"partner_id, partner_seq, pile_id, gun_no and a 32-character trade_no are required");
		free(c);
		return;
	}
	snprintf(c->seq, sizeof c->seq, "%s", seq);
	snprintf(c->trade, sizeof c->trade, "%s", trade);
	evcs_db_param_t p[] = {EVCS_DB_INT(c->partner), EVCS_DB_STR(c->seq)};
	int r = evcs_db_query(db_of(s), c->t,
			      "SELECT id FROM charging_sessions WHERE tenant_id = ? AND partner_id = ? AND partner_seq = ?",
			      p, 2, 0, open_check_cb, c);
	if (r) {
		fail_db(call, r, "cannot submit");
		free(c);
	}
}

#define SESSION_COLS                                                                                      \
	"s.id, s.station_id, s.pile_id, p.serial, s.connector_id, s.gun_no, s.trade_no, s.state, "       \
	"s.partner_id, s.partner_seq, s.requested_ms, s.start_ms, s.end_ms, s.stop_reason, "               \
	"s.stop_requested_by, s.sharp_kwh, s.sharp_amount, s.peak_kwh, s.peak_amount, s.flat_kwh, "       \
	"s.flat_amount, s.valley_kwh, s.valley_amount, s.total_kwh, s.elec_amount, s.service_amount, "    \
	"s.total_amount, s.vin, s.live_kwh, s.live_amount, s.live_soc, s.live_ms, "                        \
	"t.sharp_elec_rate, t.sharp_service_rate, t.peak_elec_rate, t.peak_service_rate, "               \
	"t.flat_elec_rate, t.flat_service_rate, t.valley_elec_rate, t.valley_service_rate"
#define SESSION_TYPES "iiisiissisiiiisiiiiiiiiiiiisiiiiiiiiiiii"

static void session_get_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	evcs_store_call_t *call = ud;
	if (status != EVCS_OK) {
		fail_db(call, status, errmsg);
		return;
	}
	if (res[0].nrows == 0) {
		evcs_store_fail(call, EVCS_ENOENT, NULL, "no such session");
		return;
	}
	evcs_store_finish(call, EVCS_OK, json_pack("{s:o}", "session", row_obj(&res[0], 0, SESSION_TYPES)));
}

/* cec.session.get {tenant_id, id | trade_no (+ pile serial) | partner_id + partner_seq} */
static void op_session_get(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t t, id = 0, partner = 0;
	if (need_tenant(call, args, &t))
		return;
	const char *trade = get_str(args, "trade_no", NULL), *seq = get_str(args, "partner_seq", NULL);
	const char *pile = get_str(args, "pile", NULL);
	get_int(args, "id", &id, 0);
	get_int(args, "partner_id", &partner, 0);
	const char *from = "SELECT " SESSION_COLS " FROM charging_sessions s JOIN piles p ON p.id = s.pile_id "
			   "LEFT JOIN tariffs t ON t.id = s.tariff_id WHERE s.tenant_id = ? AND ";
	char sql[2048];
	evcs_db_param_t p[2];
	size_t n;
	if (id > 0) {
		snprintf(sql, sizeof sql, "%ss.id = ?", from);
		p[0] = EVCS_DB_INT(id);
		n = 1;
	} else if (trade && pile) {
		snprintf(sql, sizeof sql, "%ss.trade_no = ? AND p.serial = ?", from);
		p[0] = EVCS_DB_STR(trade);
		p[1] = EVCS_DB_STR(pile);
		n = 2;
	} else if (trade) {
		snprintf(sql, sizeof sql, "%ss.trade_no = ? ORDER BY s.id DESC LIMIT 1", from);
		p[0] = EVCS_DB_STR(trade);
		n = 1;
	} else if (partner > 0 && seq) {
		snprintf(sql, sizeof sql, "%ss.partner_id = ? AND s.partner_seq = ? ORDER BY s.id DESC LIMIT 1", from);
		p[0] = EVCS_DB_INT(partner);
		p[1] = EVCS_DB_STR(seq);
		n = 2;
	} else {
		evcs_store_fail(call, EVCS_EINVAL, NULL, "id, trade_no or partner_id + partner_seq is required");
		return;
	}
	int r = evcs_db_query(db_of(s), t, sql, p, n, 0, session_get_cb, call);
	if (r)
		fail_db(call, r, "cannot submit");
}

/* ---- statistics and reconciliation ----------------------------------------------------------- */

static void list_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud,
		    const char *key, const char *types)
{
	evcs_store_call_t *call = ud;
	if (status != EVCS_OK) {
		fail_db(call, status, errmsg);
		return;
	}
	evcs_store_finish(call, EVCS_OK, json_pack("{s:o}", key, rows_arr(&res[0], types)));
}

static void stats_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	list_cb(status, res, nres, errmsg, ud, "connectors", "sii");
}

/* cec.stats {tenant_id, station_id, start_ms, end_ms}: energy of finished sessions per gun, by
 * session end time in [start_ms, end_ms). */
static void op_stats(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t t, st = 0, a = 0, b = 0;
	if (need_tenant(call, args, &t))
		return;
	if (get_int(args, "station_id", &st, 1) || get_int(args, "start_ms", &a, 1) || get_int(args, "end_ms", &b, 1)) {
		evcs_store_fail(call, EVCS_EINVAL, NULL, "station_id, start_ms and end_ms are required");
		return;
	}
	evcs_db_param_t p[] = {EVCS_DB_INT(st), EVCS_DB_INT(a), EVCS_DB_INT(b)};
	int r = evcs_db_query(db_of(s), t,
			      "SELECT p.serial, s.gun_no, CAST(SUM(s.total_kwh) AS SIGNED) AS kwh FROM charging_sessions s "
			      "JOIN piles p ON p.id = s.pile_id WHERE s.tenant_id = ? AND p.station_id = ? "
			      "AND s.state = 'finished' AND s.end_ms >= ? AND s.end_ms < ? GROUP BY p.serial, s.gun_no",
			      p, 3, 0, stats_cb, call);
	if (r)
		fail_db(call, r, "cannot submit");
}

static void orders_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	list_cb(status, res, nres, errmsg, ud, "orders", "sii");
}

/* cec.orders {tenant_id, partner_id, start_ms, end_ms}: the partner's finished sessions ending in
 * [start_ms, end_ms), for check_charge_orders. */
static void op_orders(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t t, pid = 0, a = 0, b = 0;
	if (need_tenant(call, args, &t))
		return;
	if (get_int(args, "partner_id", &pid, 1) || get_int(args, "start_ms", &a, 1) || get_int(args, "end_ms", &b, 1)) {
		evcs_store_fail(call, EVCS_EINVAL, NULL, "partner_id, start_ms and end_ms are required");
		return;
	}
	evcs_db_param_t p[] = {EVCS_DB_INT(pid), EVCS_DB_INT(a), EVCS_DB_INT(b)};
	int r = evcs_db_query(db_of(s), t,
			      "SELECT partner_seq, total_kwh, total_amount FROM charging_sessions WHERE tenant_id = ? "
			      "AND partner_id = ? AND state = 'finished' AND end_ms >= ? AND end_ms < ? ORDER BY id",
			      p, 3, 0, orders_cb, call);
	if (r)
		fail_db(call, r, "cannot submit");
}

/* ---- outbox --------------------------------------------------------------------------------- */

struct put_ctx {
	evcs_store_t *s;
	evcs_store_call_t *call;
	int64_t t;
	char kind[49], key[129];
};

static void put_dup_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	struct put_ctx *c = ud;
	if (status != EVCS_OK || res[0].nrows == 0)
		fail_db(c->call, status ? status : EVCS_ERR, errmsg);
	else {
		json_t *o = row_obj(&res[0], 0, "is");
		json_object_set_new(o, "duplicate", json_true());
		evcs_store_finish(c->call, EVCS_OK, o);
	}
	free(c);
}

static void put_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	struct put_ctx *c = ud;
	if (status == EVCS_OK) {
		evcs_store_finish(c->call, EVCS_OK,
				  json_pack("{s:I, s:s, s:b}", "id", (json_int_t)res[0].insert_id, "state", "pending",
					    "duplicate", 0));
		free(c);
		return;
	}
	if (status != EVCS_EEXIST) {
		fail_db(c->call, status, errmsg);
		free(c);
		return;
	}
	/* Idempotent re-announcement: report the existing row instead of failing. */
	evcs_db_param_t p[] = {EVCS_DB_STR(c->kind), EVCS_DB_STR(c->key)};
	int r = evcs_db_query(db_of(c->s), c->t,
			      "SELECT id, state FROM outbox WHERE tenant_id = ? AND kind = ? AND idem_key = ?", p, 2, 0,
			      put_dup_cb, c);
	if (r) {
		fail_db(c->call, r, "cannot submit");
		free(c);
	}
}

/* cec.outbox.put {tenant_id, partner_id, kind, idem_key, payload (object), next_attempt_ms?}:
 * durable before the first send attempt. A duplicate (tenant_id, kind, idem_key) is not an error:
 * the existing row's {id, state, duplicate: true} comes back. */
static void op_outbox_put(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t t, pid = 0, due = 0;
	if (need_tenant(call, args, &t))
		return;
	const char *kind = get_str(args, "kind", NULL), *key = get_str(args, "idem_key", NULL);
	json_t *payload = json_object_get(args, "payload");
	if (get_int(args, "partner_id", &pid, 1) || pid <= 0 || !ascii_len_ok(kind, 1, 48) ||
	    !ascii_len_ok(key, 1, 128) || !json_is_object(payload) || get_int(args, "next_attempt_ms", &due, 0)) {
		evcs_store_fail(call, EVCS_EINVAL, NULL,
				"partner_id, kind (<=48), idem_key (<=128) and an object payload are required");
		return;
	}
	char *text = json_dumps(payload, JSON_COMPACT);
	struct put_ctx *c = calloc(1, sizeof *c);
	if (!text || !c) {
		free(text);
		free(c);
		evcs_store_fail(call, EVCS_ENOMEM, NULL, "out of memory");
		return;
	}
	c->s = s;
	c->call = call;
	c->t = t;
	snprintf(c->kind, sizeof c->kind, "%s", kind);
	snprintf(c->key, sizeof c->key, "%s", key);
	evcs_db_param_t p[] = {EVCS_DB_INT(pid), EVCS_DB_STR(kind), EVCS_DB_STR(text), EVCS_DB_INT(due),
			       EVCS_DB_STR(key)};
	int r = evcs_db_query(db_of(s), t,
			      "INSERT INTO outbox SET tenant_id = ?, partner_id = ?, kind = ?, payload = ?, "
			      "next_attempt_ms = ?, idem_key = ?",
			      p, 5, 0, put_cb, c);
	free(text);
	if (r) {
		fail_db(call, r, "cannot submit");
		free(c);
	}
}

static void pending_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	list_cb(status, res, nres, errmsg, ud, "rows", "iiisjiis");
}

/* cec.outbox.pending {after_id?, limit?}: undelivered rows of every tenant, oldest first (the
 * sender's restart recovery). Rows left 'inflight' by a crash count as pending. */
static void op_outbox_pending(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t after = 0, limit = 1000;
	if (get_int(args, "after_id", &after, 0) || get_int(args, "limit", &limit, 0) || limit <= 0 || limit > 10000) {
		evcs_store_fail(call, EVCS_EINVAL, NULL, "after_id and limit (1..10000) must be integers");
		return;
	}
	evcs_db_param_t p[] = {EVCS_DB_INT(after), EVCS_DB_INT(limit)};
	int r = evcs_db_query_platform(db_of(s),
				       "SELECT id, tenant_id, partner_id, kind, payload, attempts, next_attempt_ms, "
				       "idem_key FROM outbox WHERE state IN ('pending','inflight') AND partner_id IS NOT "
				       "NULL AND id > ? ORDER BY id LIMIT ?",
				       p, 2, 0, pending_cb, call);
	if (r)
		fail_db(call, r, "cannot submit");
}

/* cec.outbox.done {tenant_id, id}: acknowledged by the partner. */
static void op_outbox_done(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t t, id = 0;
	if (need_tenant(call, args, &t))
		return;
	if (get_int(args, "id", &id, 1)) {
		evcs_store_fail(call, EVCS_EINVAL, "id", "required");
		return;
	}
	evcs_db_param_t p[] = {EVCS_DB_INT(id)};
	int r = evcs_db_query(db_of(s), t,
			      "UPDATE outbox SET state = 'done', attempts = attempts + 1, last_error = '', "
			      "done_ms = CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) WHERE tenant_id = ? AND id = ?",
			      p, 1, EVCS_DB_IDEMPOTENT, simple_cb, call);
	if (r)
		fail_db(call, r, "cannot submit");
}

/* cec.outbox.retry {tenant_id, id, attempts, next_attempt_ms, last_error, dead?}: a failed
 * attempt; dead=true gives up on the row (kept for the operator). */
static void op_outbox_retry(evcs_store_t *s, evcs_store_call_t *call, json_t *args)
{
	int64_t t, id = 0, att = 0, due = 0;
	if (need_tenant(call, args, &t))
		return;
	if (get_int(args, "id", &id, 1) || get_int(args, "attempts", &att, 1) || get_int(args, "next_attempt_ms", &due, 1)) {
		evcs_store_fail(call, EVCS_EINVAL, NULL, "id, attempts and next_attempt_ms are required");
		return;
	}
	char err[513];
	snprintf(err, sizeof err, "%s", get_str(args, "last_error", ""));
	int dead = json_is_true(json_object_get(args, "dead"));
	evcs_db_param_t p[] = {EVCS_DB_STR(dead ? "dead" : "pending"), EVCS_DB_INT(att), EVCS_DB_INT(due),
			       EVCS_DB_STR(err), EVCS_DB_INT(id)};
	int r = evcs_db_query(db_of(s), t,
			      "UPDATE outbox SET state = ?, attempts = ?, next_attempt_ms = ?, last_error = ? "
			      "WHERE tenant_id = ? AND id = ? AND state <> 'done'",
			      p, 5, EVCS_DB_IDEMPOTENT, simple_cb, call);
	if (r)
		fail_db(call, r, "cannot submit");
}

void evcs_store_register_cec(evcs_store_t *s)
{
	evcs_store_register(s, "cec.partner.list", op_partner_list);
	evcs_store_register(s, "cec.partner.get", op_partner_get);
	evcs_store_register(s, "cec.partner.put", op_partner_put);
	evcs_store_register(s, "cec.partner.token", op_partner_token);
	evcs_store_register(s, "cec.catalog", op_catalog);
	evcs_store_register(s, "cec.session.open", op_session_open);
	evcs_store_register(s, "cec.session.get", op_session_get);
	evcs_store_register(s, "cec.stats", op_stats);
	evcs_store_register(s, "cec.orders", op_orders);
	evcs_store_register(s, "cec.outbox.put", op_outbox_put);
	evcs_store_register(s, "cec.outbox.pending", op_outbox_pending);
	evcs_store_register(s, "cec.outbox.done", op_outbox_done);
	evcs_store_register(s, "cec.outbox.retry", op_outbox_retry);
}
