/*
 * storage.c: the CEC plugin's storage operations, on the core's data layer (api->db_*, ABI 2).
 * They were the core's "cec.*" store operations (core/store_cec.c) until the plugin owned its
 * tables (schema/001_partners_outbox.sql beside this file: cec_partners, cec_partner_stations,
 * cec_outbox, cec_starts). The rest of the plugin calls them by name through cec_store() with
 * JSON arguments and gets a JSON result, as before; field lists are in README.md.
 *
 * Contract: loop thread only; cec_store() never calls `done` inside itself: a bad argument is
 * answered from a zero-delay timer like a database answer, so callers keep one path. Every
 * tenant-owned row is read and written through tenant-scoped statements (api->db_query /
 * db_txn_add bind the tenant at each `tenant_id = ?`), so an operation cannot cross tenants. Two
 * reads are installation-wide (api->db_query_platform, allowed by EVCS_PLUGIN_F_PLATFORM_DB in
 * the descriptor): the active partners of every tenant at start-up, and the undelivered outbox
 * rows of every tenant for restart recovery. The core's tables (stations, piles, connectors,
 * tariffs, charging_sessions) are only read. Bad arguments fail EVCS_EINVAL with the field
 * named; a repeated StartChargeSeq fails EVCS_EEXIST; database errors pass through with the data
 * layer's status. Secrets are returned to the plugin (it signs with them); the operator routes
 * (partner_api.c) never show them.
 */
#include "cec_plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cec_call {
	cec_ctx_t *c;
	evcs_store_done done;
	void *ud;
	int status;
	char *result;      /* a failure answered from the timer */
	evcs_timer_t *timer;
	struct cec_call *prev, *next;
} call_t;

typedef int (*op_fn)(call_t *k, json_t *args);

/* ---- calls -------------------------------------------------------------------------------- */

static void call_unlink_free(call_t *k)
{
	cec_ctx_t *c = k->c;
	if (k->prev)
		k->prev->next = k->next;
	else
		c->calls = k->next;
	if (k->next)
		k->next->prev = k->prev;
	free(k->result);
	free(k);
}

static void finish(call_t *k, int status, json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (k->done)
		k->done(status, s ? s : "{}", k->ud);
	free(s);
	call_unlink_free(k);
}

static void fail_now(void *ud)
{
	call_t *k = ud;
	k->timer = NULL; /* one-shot timers free themselves */
	if (k->done)
		k->done(k->status, k->result, k->ud);
	call_unlink_free(k);
}

/* A failure found before anything was submitted: answered from the next loop turn. */
static int fail(call_t *k, int status, const char *field, const char *msg)
{
	json_t *o = json_pack("{s:s, s:s}", "error", k->c->api->status_name(status), "message", msg ? msg : "");
	if (field)
		json_object_set_new(o, "field", json_string(field));
	k->status = status;
	k->result = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (status == EVCS_EINVAL)
		CEC_LOG(k->c, EVCS_LOG_WARNING, 0, "storage: %s%s%s", field ? field : "", field ? ": " : "",
			msg ? msg : "");
	k->timer = k->c->api->timer_add(k->c->p, 0, 0, fail_now, k);
	return k->timer ? EVCS_OK : EVCS_ENOMEM;
}

/* A database failure, from a callback. */
static void fail_db(call_t *k, int status, const char *errmsg)
{
	json_t *o = json_pack("{s:s, s:s}", "error", k->c->api->status_name(status), "message",
			      errmsg && *errmsg ? errmsg : "database error");
	finish(k, status, o);
}

/* A submit the data layer refused (nothing queued). */
static int submit_failed(call_t *k, int r) { return fail(k, r, NULL, "cannot submit"); }

/* ---- small helpers ------------------------------------------------------------------------- */

/* One result row as an object; types[c] is 'i' (integer), 's' (text), 'j' (JSON text) per column. */
static json_t *row_obj(const evcs_api_t *api, const evcs_db_result_t *r, size_t row, const char *types)
{
	json_t *o = json_object();
	for (unsigned c = 0; c < r->ncols && types[c]; c++) {
		const char *v = api->db_cell(r, row, c);
		json_t *jv;
		int64_t n = 0;
		if (!v)
			jv = json_null();
		else if (types[c] == 'i')
			jv = api->db_cell_int(r, row, c, &n) == 0 ? json_integer(n) : json_null();
		else if (types[c] == 'j') {
			jv = json_loads(v, JSON_DECODE_ANY, NULL);
			if (!jv)
				jv = json_string(v);
		} else
			jv = json_string(v);
		json_object_set_new(o, r->colnames[c], jv);
	}
	return o;
}

static json_t *rows_arr(const evcs_api_t *api, const evcs_db_result_t *r, const char *types)
{
	json_t *a = json_array();
	for (size_t i = 0; r && i < r->nrows; i++)
		json_array_append_new(a, row_obj(api, r, i, types));
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

/* tenant_id > 0 required: 0, or -1 after failing the call. */
static int need_tenant(call_t *k, json_t *args, int64_t *t)
{
	*t = 0;
	if (get_int(args, "tenant_id", t, 1) || *t <= 0)
		return -1;
	return 0;
}
#define NEED_TENANT(k, args, t)                                                          \
	do {                                                                             \
		if (need_tenant((k), (args), (t)))                                       \
			return fail((k), EVCS_EINVAL, "tenant_id", "a positive integer is required"); \
	} while (0)

static int ascii_len_ok(const char *v, size_t min, size_t max)
{
	size_t n = v ? strlen(v) : 0;
	return n >= min && n <= max;
}

#define API(k) ((k)->c->api)
#define P(k) ((k)->c->p)

/* ---- partners -------------------------------------------------------------------------------- */

#define PARTNER_COLS                                                                                    \
	"p.id, p.tenant_id, p.name, p.operator_id, p.our_operator_id, p.base_url, p.operator_secret, "  \
	"p.data_secret, p.data_secret_iv, p.sig_secret, p.user_operator_secret, p.user_data_secret, "   \
	"p.user_data_secret_iv, p.user_sig_secret, p.status, p.access_token, p.token_expires_ms, "      \
	"(SELECT GROUP_CONCAT(ps.station_id ORDER BY ps.station_id) FROM cec_partner_stations ps "     \
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

static void partner_rows_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	call_t *k = ud;
	(void)nres;
	if (status != EVCS_OK) {
		fail_db(k, status, errmsg);
		return;
	}
	json_t *a = rows_arr(API(k), &res[0], PARTNER_TYPES);
	size_t i;
	json_t *o;
	json_array_foreach(a, i, o) fix_stations(o);
	finish(k, EVCS_OK, json_pack("{s:o}", "partners", a));
}

/* cec.partner.list {tenant_id?}: a tenant's partners, or the active partners of every tenant. */
static int op_partner_list(call_t *k, json_t *args)
{
	int64_t t = 0;
	if (get_int(args, "tenant_id", &t, 0) || t < 0)
		return fail(k, EVCS_EINVAL, "tenant_id", "must be a positive integer");
	int r;
	if (t > 0)
		r = API(k)->db_query(P(k), t, "SELECT " PARTNER_COLS " FROM cec_partners p WHERE p.tenant_id = ? ORDER BY p.id",
				     NULL, 0, 0, partner_rows_cb, k);
	else
		r = API(k)->db_query_platform(P(k),
					      "SELECT " PARTNER_COLS " FROM cec_partners p WHERE p.status = 'active' ORDER BY p.id",
					      NULL, 0, 0, partner_rows_cb, k);
	return r ? submit_failed(k, r) : EVCS_OK;
}

static void partner_put_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	call_t *k = ud;
	(void)nres;
	if (status != EVCS_OK)
		fail_db(k, status, errmsg);
	else
		finish(k, EVCS_OK, json_pack("{s:I}", "id", (json_int_t)res[0].insert_id));
}

/* cec.partner.put {tenant_id, operator_id, our_operator_id, name?, base_url?, operator_secret?,
 * data_secret?, data_secret_iv?, sig_secret?, user_*?, status?, stations?: [station ids]}:
 * insert or update by (tenant_id, operator_id); stations, when given, replaces the permissions.
 * The partner_file's way in. */
static int op_partner_put(call_t *k, json_t *args)
{
	int64_t t;
	NEED_TENANT(k, args, &t);
	static const struct {
		const char *k;
		size_t min, max;
	} f[] = {{"operator_id", 9, 9},        {"our_operator_id", 9, 9},      {"name", 0, 64},
		 {"base_url", 0, 255},         {"operator_secret", 0, 64},     {"data_secret", 0, 16},
		 {"data_secret_iv", 0, 16},    {"sig_secret", 0, 64},          {"user_operator_secret", 0, 64},
		 {"user_data_secret", 0, 16},  {"user_data_secret_iv", 0, 16}, {"user_sig_secret", 0, 64},
		 {"status", 0, 16}};
	const char *v[13];
	for (size_t i = 0; i < 13; i++) {
		v[i] = get_str(args, f[i].k, "");
		if (!ascii_len_ok(v[i], f[i].min, f[i].max))
			return fail(k, EVCS_EINVAL, f[i].k, "missing or wrong length");
	}
	for (size_t i = 5; i < 12; i++)
		if ((i == 5 || i == 6 || i == 9 || i == 10) && *v[i] && strlen(v[i]) != 16)
			return fail(k, EVCS_EINVAL, f[i].k, "must be exactly 16 characters");
	const char *status = *v[12] ? v[12] : "active";
	if (strcmp(status, "active") && strcmp(status, "disabled"))
		return fail(k, EVCS_EINVAL, "status", "active or disabled");
	if (!*v[2])
		v[2] = v[0];
	json_t *st = json_object_get(args, "stations");
	size_t i;
	json_t *e;
	if (st && !json_is_array(st))
		return fail(k, EVCS_EINVAL, "stations", "an array of station ids");
	json_array_foreach(st, i, e) if (!json_is_integer(e)) return fail(k, EVCS_EINVAL, "stations", "an array of station ids");
	evcs_db_txn_t *tx = API(k)->db_txn_new(P(k));
	if (!tx)
		return fail(k, EVCS_EUNAVAIL, NULL, "no database");
	evcs_db_param_t p[] = {EVCS_DB_STR(v[2]),  EVCS_DB_STR(v[0]),  EVCS_DB_STR(v[1]),  EVCS_DB_STR(v[3]),
			       EVCS_DB_STR(v[4]),  EVCS_DB_STR(v[5]),  EVCS_DB_STR(v[6]),  EVCS_DB_STR(v[7]),
			       EVCS_DB_STR(v[8]),  EVCS_DB_STR(v[9]),  EVCS_DB_STR(v[10]), EVCS_DB_STR(v[11]),
			       EVCS_DB_STR(status)};
	/* LAST_INSERT_ID(id) makes the update path report the existing id too, so statement 0's
	 * insert id is the partner id either way. */
	API(k)->db_txn_add(tx, t,
			   "INSERT INTO cec_partners SET tenant_id = ?, name = ?, operator_id = ?, our_operator_id = ?, "
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
		API(k)->db_txn_add(tx, t, "DELETE FROM cec_partner_stations WHERE tenant_id = ? AND partner_id = ?", d, 1, 0);
		json_array_foreach(st, i, e)
		{
			evcs_db_param_t q[] = {EVCS_DB_REFID(0), EVCS_DB_INT(json_integer_value(e))};
			API(k)->db_txn_add(tx, t,
					   "INSERT INTO cec_partner_stations SET tenant_id = ?, partner_id = ?, station_id = ?, "
					   "can_charge = 1",
					   q, 2, 0);
		}
	}
	int r = API(k)->db_txn_submit(tx, 0, partner_put_cb, k);
	return r ? submit_failed(k, r) : EVCS_OK;
}

static void simple_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	call_t *k = ud;
	if (status != EVCS_OK)
		fail_db(k, status, errmsg);
	else
		finish(k, EVCS_OK, json_pack("{s:I}", "affected", (json_int_t)(nres ? res[nres - 1].affected : 0)));
}

/* cec.partner.token {tenant_id, id, access_token, token_expires_ms}: cache the token the
 * partner issued to us, so a restart does not need a fresh query_token. */
static int op_partner_token(call_t *k, json_t *args)
{
	int64_t t, id = 0, exp = 0;
	NEED_TENANT(k, args, &t);
	const char *tok = get_str(args, "access_token", NULL);
	if (get_int(args, "id", &id, 1) || id <= 0 || !tok || strlen(tok) > 512 ||
	    get_int(args, "token_expires_ms", &exp, 1))
		return fail(k, EVCS_EINVAL, NULL, "id, access_token and token_expires_ms are required");
	evcs_db_param_t p[] = {EVCS_DB_STR(tok), EVCS_DB_INT(exp), EVCS_DB_INT(id)};
	int r = API(k)->db_query(P(k), t,
				 "UPDATE cec_partners SET access_token = ?, token_expires_ms = ? WHERE tenant_id = ? AND id = ?",
				 p, 3, 0, simple_cb, k);
	return r ? submit_failed(k, r) : EVCS_OK;
}

/* ---- catalog: stations, piles, connectors of one tenant (the core's tables, read only) -------- */

static void catalog_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	call_t *k = ud;
	if (status != EVCS_OK || nres < 4) {
		fail_db(k, status ? status : EVCS_ERR, errmsg);
		return;
	}
	const evcs_api_t *api = API(k);
	json_t *o = json_pack("{s:o, s:o, s:o, s:o}", "stations", rows_arr(api, &res[0], "isssiisissjsssi"), "piles",
			      rows_arr(api, &res[1], "iisssssisiiii"), "connectors", rows_arr(api, &res[2], "iiiiiiiii"),
			      "tariffs", rows_arr(api, &res[3], "isiiiiiiiii"));
	finish(k, EVCS_OK, o);
}

/* cec.catalog {tenant_id}: stations, piles (with tariff_id), connectors and non-draft tariffs:
 * everything the plugin maps to StationInfo/EquipmentInfo/ConnectorInfo. */
static int op_catalog(call_t *k, json_t *args)
{
	int64_t t;
	NEED_TENANT(k, args, &t);
	const evcs_api_t *api = API(k);
	evcs_db_txn_t *tx = api->db_txn_new(P(k));
	if (!tx)
		return fail(k, EVCS_EUNAVAIL, NULL, "no database");
	api->db_txn_add(tx, t,
			"SELECT id, name, address, area_code, lat_e6, lng_e6, coord_system, station_type, status, "
			"opening_hours, photos, service_tel, remark, CAST(created_ms AS CHAR) AS created, updated_ms "
			"FROM stations WHERE tenant_id = ? ORDER BY id",
			NULL, 0, 0);
	api->db_txn_add(tx, t,
			"SELECT p.id, p.station_id, p.serial, p.name, p.vendor, p.model, p.current_type, "
			"p.rated_power_w, p.status, p.gun_count, p.updated_ms, IFNULL(pp.online, 0) AS online, p.tariff_id "
			"FROM piles p LEFT JOIN pile_presence pp ON pp.pile_id = p.id WHERE p.tenant_id = ? ORDER BY p.id",
			NULL, 0, 0);
	api->db_txn_add(tx, t,
			"SELECT id, pile_id, gun_no, connector_type, rated_power_w, status, plugged, status_ms, "
			"current_session_id FROM connectors WHERE tenant_id = ? ORDER BY pile_id, gun_no",
			NULL, 0, 0);
	api->db_txn_add(tx, t,
			"SELECT id, slots, sharp_elec_rate, sharp_service_rate, peak_elec_rate, peak_service_rate, "
			"flat_elec_rate, flat_service_rate, valley_elec_rate, valley_service_rate, "
			"(state = 'active') AS active FROM tariffs WHERE tenant_id = ? AND state <> 'draft' ORDER BY id",
			NULL, 0, 0);
	int r = api->db_txn_submit(tx, 0, catalog_cb, k);
	return r ? submit_failed(k, r) : EVCS_OK;
}

/* ---- sessions ------------------------------------------------------------------------------- */

static void start_ins_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	call_t *k = ud;
	(void)nres;
	if (status == EVCS_OK)
		finish(k, EVCS_OK, json_pack("{s:I}", "id", (json_int_t)res[0].insert_id));
	else if (status == EVCS_EEXIST)
		finish(k, EVCS_EEXIST, json_pack("{s:s, s:s, s:s}", "error", "exists", "field", "partner_seq", "message",
						"StartChargeSeq already used"));
	else
		fail_db(k, status, errmsg);
}

/* cec.session.open {tenant_id, partner_id, partner_seq, pile_id, gun_no, trade_no, station_id?,
 * connector_id?}: records a partner's query_start_charge in cec_starts before "start" is sent.
 * EVCS_EEXIST when the partner already used that StartChargeSeq (§8: a repeat is refused). The
 * session row itself is opened by the pile's protocol plugin, with this partner_id and seq. */
static int op_session_open(call_t *k, json_t *args)
{
	int64_t t, partner = 0, pile = 0, gun = 0, station = 0, connector = 0;
	NEED_TENANT(k, args, &t);
	const char *seq = get_str(args, "partner_seq", NULL), *trade = get_str(args, "trade_no", NULL);
	if (get_int(args, "partner_id", &partner, 1) || get_int(args, "pile_id", &pile, 1) ||
	    get_int(args, "gun_no", &gun, 1) || get_int(args, "station_id", &station, 0) ||
	    get_int(args, "connector_id", &connector, 0) || !seq || !*seq || strlen(seq) > 32 || !trade || !*trade ||
	    strlen(trade) > 64)
		return fail(k, EVCS_EINVAL, NULL, "partner_id, partner_seq, pile_id, gun_no and trade_no are required");
	evcs_db_param_t p[] = {EVCS_DB_INT(partner),
			       EVCS_DB_STR(seq),
			       station > 0 ? EVCS_DB_INT(station) : EVCS_DB_NULL,
			       EVCS_DB_INT(pile),
			       connector > 0 ? EVCS_DB_INT(connector) : EVCS_DB_NULL,
			       EVCS_DB_INT(gun),
			       EVCS_DB_STR(trade)};
	int r = API(k)->db_query(P(k), t,
				 "INSERT INTO cec_starts SET tenant_id = ?, partner_id = ?, partner_seq = ?, station_id = ?, "
				 "pile_id = ?, connector_id = ?, gun_no = ?, trade_no = ?",
				 p, 7, 0, start_ins_cb, k);
	return r ? submit_failed(k, r) : EVCS_OK;
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

/* A start the protocol plugin has not opened (yet): the cec_starts row as a 'pending' session. */
#define START_COLS                                                                                        \
	"s.id, COALESCE(s.station_id, o.station_id) AS station_id, o.pile_id, p.serial, "                 \
	"COALESCE(s.connector_id, o.connector_id) AS connector_id, o.gun_no, COALESCE(s.trade_no, o.trade_no) " \
	"AS trade_no, COALESCE(s.state, 'pending') AS state, o.partner_id, o.partner_seq, "              \
	"COALESCE(s.requested_ms, o.requested_ms) AS requested_ms, s.start_ms, s.end_ms, s.stop_reason, "   \
	"s.stop_requested_by, s.sharp_kwh, s.sharp_amount, s.peak_kwh, s.peak_amount, s.flat_kwh, "       \
	"s.flat_amount, s.valley_kwh, s.valley_amount, s.total_kwh, s.elec_amount, s.service_amount, "    \
	"s.total_amount, s.vin, s.live_kwh, s.live_amount, s.live_soc, s.live_ms, "                        \
	"t.sharp_elec_rate, t.sharp_service_rate, t.peak_elec_rate, t.peak_service_rate, "               \
	"t.flat_elec_rate, t.flat_service_rate, t.valley_elec_rate, t.valley_service_rate"

static void session_get_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	call_t *k = ud;
	(void)nres;
	if (status != EVCS_OK) {
		fail_db(k, status, errmsg);
		return;
	}
	if (res[0].nrows == 0) {
		finish(k, EVCS_ENOENT, json_pack("{s:s, s:s}", "error", "not_found", "message", "no such session"));
		return;
	}
	finish(k, EVCS_OK, json_pack("{s:o}", "session", row_obj(API(k), &res[0], 0, SESSION_TYPES)));
}

/* cec.session.get {tenant_id, id | trade_no (+ pile serial) | partner_id + partner_seq}: the
 * session as stored. By partner_seq it is the partner's start joined with the session the
 * protocol plugin opened for it (state 'pending' while there is none). */
static int op_session_get(call_t *k, json_t *args)
{
	int64_t t, id = 0, partner = 0;
	NEED_TENANT(k, args, &t);
	const char *trade = get_str(args, "trade_no", NULL), *seq = get_str(args, "partner_seq", NULL);
	const char *pile = get_str(args, "pile", NULL);
	get_int(args, "id", &id, 0);
	get_int(args, "partner_id", &partner, 0);
	const char *from = "SELECT " SESSION_COLS " FROM charging_sessions s JOIN piles p ON p.id = s.pile_id "
			   "LEFT JOIN tariffs t ON t.id = s.tariff_id WHERE s.tenant_id = ? AND ";
	char sql[3072];
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
		snprintf(sql, sizeof sql,
			 "SELECT " START_COLS " FROM cec_starts o JOIN piles p ON p.id = o.pile_id "
			 "LEFT JOIN charging_sessions s ON s.tenant_id = o.tenant_id AND s.partner_id = o.partner_id "
			 "AND s.partner_seq = o.partner_seq LEFT JOIN tariffs t ON t.id = s.tariff_id "
			 "WHERE o.tenant_id = ? AND o.partner_id = ? AND o.partner_seq = ? ORDER BY s.id DESC LIMIT 1");
		p[0] = EVCS_DB_INT(partner);
		p[1] = EVCS_DB_STR(seq);
		n = 2;
	} else
		return fail(k, EVCS_EINVAL, NULL, "id, trade_no or partner_id + partner_seq is required");
	int r = API(k)->db_query(P(k), t, sql, p, n, 0, session_get_cb, k);
	return r ? submit_failed(k, r) : EVCS_OK;
}

/* ---- statistics and reconciliation ----------------------------------------------------------- */

static void list_cb(call_t *k, int status, const evcs_db_result_t *res, const char *errmsg, const char *key,
		    const char *types)
{
	if (status != EVCS_OK)
		fail_db(k, status, errmsg);
	else
		finish(k, EVCS_OK, json_pack("{s:o}", key, rows_arr(API(k), &res[0], types)));
}

static void stats_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	(void)nres;
	list_cb(ud, status, res, errmsg, "connectors", "sii");
}

/* cec.stats {tenant_id, station_id, start_ms, end_ms}: energy of finished sessions per gun, by
 * session end time in [start_ms, end_ms). */
static int op_stats(call_t *k, json_t *args)
{
	int64_t t, st = 0, a = 0, b = 0;
	NEED_TENANT(k, args, &t);
	if (get_int(args, "station_id", &st, 1) || get_int(args, "start_ms", &a, 1) || get_int(args, "end_ms", &b, 1))
		return fail(k, EVCS_EINVAL, NULL, "station_id, start_ms and end_ms are required");
	evcs_db_param_t p[] = {EVCS_DB_INT(st), EVCS_DB_INT(a), EVCS_DB_INT(b)};
	int r = API(k)->db_query(P(k), t,
				 "SELECT p.serial, s.gun_no, CAST(SUM(s.total_kwh) AS SIGNED) AS kwh FROM charging_sessions s "
				 "JOIN piles p ON p.id = s.pile_id WHERE s.tenant_id = ? AND p.station_id = ? "
				 "AND s.state = 'finished' AND s.end_ms >= ? AND s.end_ms < ? GROUP BY p.serial, s.gun_no",
				 p, 3, 0, stats_cb, k);
	return r ? submit_failed(k, r) : EVCS_OK;
}

static void orders_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	(void)nres;
	list_cb(ud, status, res, errmsg, "orders", "sii");
}

/* cec.orders {tenant_id, partner_id, start_ms, end_ms}: the partner's finished sessions ending in
 * [start_ms, end_ms), for check_charge_orders. */
static int op_orders(call_t *k, json_t *args)
{
	int64_t t, pid = 0, a = 0, b = 0;
	NEED_TENANT(k, args, &t);
	if (get_int(args, "partner_id", &pid, 1) || get_int(args, "start_ms", &a, 1) || get_int(args, "end_ms", &b, 1))
		return fail(k, EVCS_EINVAL, NULL, "partner_id, start_ms and end_ms are required");
	evcs_db_param_t p[] = {EVCS_DB_INT(pid), EVCS_DB_INT(a), EVCS_DB_INT(b)};
	int r = API(k)->db_query(P(k), t,
				 "SELECT partner_seq, total_kwh, total_amount FROM charging_sessions WHERE tenant_id = ? "
				 "AND partner_id = ? AND state = 'finished' AND end_ms >= ? AND end_ms < ? ORDER BY id",
				 p, 3, 0, orders_cb, k);
	return r ? submit_failed(k, r) : EVCS_OK;
}

/* ---- outbox --------------------------------------------------------------------------------- */

struct put_ctx {
	call_t *k;
	int64_t t;
	char kind[49], key[129];
};

static void put_dup_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	struct put_ctx *x = ud;
	(void)nres;
	if (status != EVCS_OK || res[0].nrows == 0)
		fail_db(x->k, status ? status : EVCS_ERR, errmsg);
	else {
		json_t *o = row_obj(API(x->k), &res[0], 0, "is");
		json_object_set_new(o, "duplicate", json_true());
		finish(x->k, EVCS_OK, o);
	}
	free(x);
}

static void put_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	struct put_ctx *x = ud;
	(void)nres;
	if (status == EVCS_OK) {
		finish(x->k, EVCS_OK,
		       json_pack("{s:I, s:s, s:b}", "id", (json_int_t)res[0].insert_id, "state", "pending", "duplicate", 0));
		free(x);
		return;
	}
	if (status != EVCS_EEXIST) {
		fail_db(x->k, status, errmsg);
		free(x);
		return;
	}
	/* Idempotent re-announcement: report the existing row instead of failing. */
	evcs_db_param_t p[] = {EVCS_DB_STR(x->kind), EVCS_DB_STR(x->key)};
	int r = API(x->k)->db_query(P(x->k), x->t,
				    "SELECT id, state FROM cec_outbox WHERE tenant_id = ? AND kind = ? AND idem_key = ?", p,
				    2, 0, put_dup_cb, x);
	if (r) {
		fail_db(x->k, r, "cannot submit");
		free(x);
	}
}

/* cec.outbox.put {tenant_id, partner_id, kind, idem_key, payload (object), next_attempt_ms?}:
 * durable before the first send attempt. A duplicate (tenant_id, kind, idem_key) is not an error:
 * the existing row's {id, state, duplicate: true} comes back. */
static int op_outbox_put(call_t *k, json_t *args)
{
	int64_t t, pid = 0, due = 0;
	NEED_TENANT(k, args, &t);
	const char *kind = get_str(args, "kind", NULL), *key = get_str(args, "idem_key", NULL);
	json_t *payload = json_object_get(args, "payload");
	if (get_int(args, "partner_id", &pid, 1) || pid <= 0 || !ascii_len_ok(kind, 1, 48) ||
	    !ascii_len_ok(key, 1, 128) || !json_is_object(payload) || get_int(args, "next_attempt_ms", &due, 0))
		return fail(k, EVCS_EINVAL, NULL,
			    "partner_id, kind (<=48), idem_key (<=128) and an object payload are required");
	char *text = json_dumps(payload, JSON_COMPACT);
	struct put_ctx *x = calloc(1, sizeof *x);
	if (!text || !x) {
		free(text);
		free(x);
		return fail(k, EVCS_ENOMEM, NULL, "out of memory");
	}
	x->k = k;
	x->t = t;
	snprintf(x->kind, sizeof x->kind, "%s", kind);
	snprintf(x->key, sizeof x->key, "%s", key);
	evcs_db_param_t p[] = {EVCS_DB_INT(pid), EVCS_DB_STR(kind), EVCS_DB_STR(text), EVCS_DB_INT(due), EVCS_DB_STR(key)};
	int r = API(k)->db_query(P(k), t,
				 "INSERT INTO cec_outbox SET tenant_id = ?, partner_id = ?, kind = ?, payload = ?, "
				 "next_attempt_ms = ?, idem_key = ?",
				 p, 5, 0, put_cb, x);
	free(text);
	if (r) {
		free(x);
		return submit_failed(k, r);
	}
	return EVCS_OK;
}

static void pending_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg, void *ud)
{
	(void)nres;
	list_cb(ud, status, res, errmsg, "rows", "iiisjiis");
}

/* cec.outbox.pending {after_id?, limit?}: undelivered rows of every tenant, oldest first (the
 * sender's restart recovery). Rows left 'inflight' by a crash count as pending. */
static int op_outbox_pending(call_t *k, json_t *args)
{
	int64_t after = 0, limit = 1000;
	if (get_int(args, "after_id", &after, 0) || get_int(args, "limit", &limit, 0) || limit <= 0 || limit > 10000)
		return fail(k, EVCS_EINVAL, NULL, "after_id and limit (1..10000) must be integers");
	evcs_db_param_t p[] = {EVCS_DB_INT(after), EVCS_DB_INT(limit)};
	int r = API(k)->db_query_platform(P(k),
					  "SELECT id, tenant_id, partner_id, kind, payload, attempts, next_attempt_ms, "
					  "idem_key FROM cec_outbox WHERE state IN ('pending','inflight') AND partner_id IS NOT "
					  "NULL AND id > ? ORDER BY id LIMIT ?",
					  p, 2, 0, pending_cb, k);
	return r ? submit_failed(k, r) : EVCS_OK;
}

/* cec.outbox.done {tenant_id, id}: acknowledged by the partner. */
static int op_outbox_done(call_t *k, json_t *args)
{
	int64_t t, id = 0;
	NEED_TENANT(k, args, &t);
	if (get_int(args, "id", &id, 1))
		return fail(k, EVCS_EINVAL, "id", "required");
	evcs_db_param_t p[] = {EVCS_DB_INT(id)};
	int r = API(k)->db_query(P(k), t,
				 "UPDATE cec_outbox SET state = 'done', attempts = attempts + 1, last_error = '', "
				 "done_ms = CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) WHERE tenant_id = ? AND id = ?",
				 p, 1, EVCS_DB_IDEMPOTENT, simple_cb, k);
	return r ? submit_failed(k, r) : EVCS_OK;
}

/* cec.outbox.retry {tenant_id, id, attempts, next_attempt_ms, last_error, dead?}: a failed
 * attempt; dead=true gives up on the row (kept for the operator). */
static int op_outbox_retry(call_t *k, json_t *args)
{
	int64_t t, id = 0, att = 0, due = 0;
	NEED_TENANT(k, args, &t);
	if (get_int(args, "id", &id, 1) || get_int(args, "attempts", &att, 1) || get_int(args, "next_attempt_ms", &due, 1))
		return fail(k, EVCS_EINVAL, NULL, "id, attempts and next_attempt_ms are required");
	char err[513];
	snprintf(err, sizeof err, "%s", get_str(args, "last_error", ""));
	int dead = json_is_true(json_object_get(args, "dead"));
	evcs_db_param_t p[] = {EVCS_DB_STR(dead ? "dead" : "pending"), EVCS_DB_INT(att), EVCS_DB_INT(due),
			       EVCS_DB_STR(err), EVCS_DB_INT(id)};
	int r = API(k)->db_query(P(k), t,
				 "UPDATE cec_outbox SET state = ?, attempts = ?, next_attempt_ms = ?, last_error = ? "
				 "WHERE tenant_id = ? AND id = ? AND state <> 'done'",
				 p, 5, EVCS_DB_IDEMPOTENT, simple_cb, k);
	return r ? submit_failed(k, r) : EVCS_OK;
}

/* ---- dispatch ------------------------------------------------------------------------------- */

static const struct {
	const char *name;
	op_fn fn;
} ops[] = {
    {"cec.partner.list", op_partner_list},   {"cec.partner.put", op_partner_put},
    {"cec.partner.token", op_partner_token}, {"cec.catalog", op_catalog},
    {"cec.session.open", op_session_open},   {"cec.session.get", op_session_get},
    {"cec.stats", op_stats},                 {"cec.orders", op_orders},
    {"cec.outbox.put", op_outbox_put},       {"cec.outbox.pending", op_outbox_pending},
    {"cec.outbox.done", op_outbox_done},     {"cec.outbox.retry", op_outbox_retry},
};

int cec_store(cec_ctx_t *c, const char *op, const char *args_json, evcs_store_done done, void *ud)
{
	op_fn fn = NULL;
	for (size_t i = 0; i < sizeof ops / sizeof ops[0] && !fn; i++)
		if (!strcmp(ops[i].name, op))
			fn = ops[i].fn;
	if (!fn)
		return EVCS_ENOTSUP;
	call_t *k = calloc(1, sizeof *k);
	if (!k)
		return EVCS_ENOMEM;
	*k = (call_t){.c = c, .done = done, .ud = ud, .next = c->calls};
	if (c->calls)
		c->calls->prev = k;
	c->calls = k;
	json_t *args = json_loads(args_json && *args_json ? args_json : "{}", JSON_REJECT_DUPLICATES, NULL);
	int r = json_is_object(args) ? fn(k, args) : fail(k, EVCS_EINVAL, NULL, "arguments must be a JSON object");
	json_decref(args);
	if (r != EVCS_OK) {
		k->done = NULL;
		call_unlink_free(k);
	}
	return r;
}

void cec_store_free(cec_ctx_t *c)
{
	/* Calls still in the data layer: their callbacks are dropped by the core once the plugin is
	 * unloaded (after cleanup), so nothing will touch these again. */
	while (c->calls) {
		call_t *k = c->calls;
		if (k->timer)
			c->api->timer_del(k->timer);
		k->done = NULL;
		call_unlink_free(k);
	}
}
