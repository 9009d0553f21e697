/*
 * api_crud.c: table-driven resources of the operator API. Each resource is a descriptor
 * (table, read expressions, writable fields with their validation, filters, foreign-key
 * constraint -> field map); five generic handlers list/get/create/update/delete any of them.
 * SQL text is built only from descriptor strings; every value is bound. Tenant-owned tables go
 * through evcs_db_query/txn with the `tenant_id = ?` marker, platform tables (tenants, unclaimed
 * piles) through *_platform. Every change writes its audit row in the same transaction and
 * answers with the row as stored (read back inside that transaction).
 */
#include "api.h"
#include "tz.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum ftype { FT_INT = 1, FT_STR, FT_JSON, FT_BOOL, FT_ENUM };
#define FF_REQ 0x1u    /* required on create */
#define FF_RO 0x2u     /* output only */
#define FF_FIXED 0x4u  /* settable on create only */
#define FF_FILTER 0x8u /* ?name=value equality filter on lists */
#define FF_NULL 0x10u  /* accepts null */
#define FF_SECRET 0x20u /* write-only: reads show "set"/"unset" (its expr), audit rows the same */

struct api_field {
	const char *name;
	int type;
	unsigned flags;
	const char *expr;    /* read expression; NULL = alias.name */
	int64_t min, max;    /* INT: value range; STR: length range */
	const char *allowed; /* ENUM: "a|b|c"; STR: allowed characters ("" = any) */
	const char *kind;    /* JSON: "object" or "array" */
};

struct api_resource {
	const char *name;  /* audit object_type and messages */
	const char *table;
	const char *from;  /* FROM clause with alias */
	const char *alias;
	const char *id_param; /* path parameter of the id */
	const api_field_t *fields;
	size_t nfields;
	const char *time_col; /* since_ms / until_ms filter; NULL = none */
	const char *fkmap;    /* constraint=field;... */
	const char *updated;  /* column bumped on update, or NULL */
	int platform;
	int no_id_filter; /* table without tenant_id in alias (unclaimed) */
};

#define DIGITS "0123456789"
#define HEXU "0123456789ABCDEF"
#define N(a) (sizeof(a) / sizeof((a)[0]))

static const api_field_t station_f[] = {
    {"id", FT_INT, FF_RO, NULL, 0, 0, NULL, NULL},
    {"name", FT_STR, FF_REQ | FF_FILTER, NULL, 1, 128, "", NULL},
    {"address", FT_STR, 0, NULL, 0, 255, "", NULL},
    {"area_code", FT_STR, FF_FILTER, NULL, 0, 6, DIGITS, NULL},
    {"lat_e6", FT_INT, FF_NULL, NULL, -90000000, 90000000, NULL, NULL},
    {"lng_e6", FT_INT, FF_NULL, NULL, -180000000, 180000000, NULL, NULL},
    {"coord_system", FT_ENUM, 0, NULL, 0, 0, "gcj02|wgs84|bd09", NULL},
    {"station_type", FT_INT, 0, NULL, 1, 255, NULL, NULL},
    {"status", FT_ENUM, FF_FILTER, NULL, 0, 0, "building|open|closed|maintenance", NULL},
    {"opening_hours", FT_STR, 0, NULL, 0, 255, "", NULL},
    {"facilities", FT_JSON, 0, NULL, 0, 0, NULL, "array"},
    {"photos", FT_JSON, 0, NULL, 0, 0, NULL, "array"},
    {"service_tel", FT_STR, 0, NULL, 0, 32, DIGITS "+-() ", NULL},
    {"remark", FT_STR, 0, NULL, 0, 512, "", NULL},
    {"created_ms", FT_INT, FF_RO, NULL, 0, 0, NULL, NULL},
    {"updated_ms", FT_INT, FF_RO, NULL, 0, 0, NULL, NULL},
};
const api_resource_t api_res_stations = {
    "station", "stations", "stations t", "t", "station_id", station_f, N(station_f), NULL, "",
    "updated_ms", 0, 0};

static const api_field_t pile_f[] = {
    {"id", FT_INT, FF_RO, NULL, 0, 0, NULL, NULL},
    {"serial", FT_STR, FF_REQ | FF_FIXED | FF_FILTER, NULL, 1, EVCS_ID_MAX, NULL, NULL},
    {"station_id", FT_INT, FF_NULL | FF_FILTER, NULL, 1, INT64_MAX, NULL, NULL},
    {"name", FT_STR, 0, NULL, 0, 64, "", NULL},
    {"protocol", FT_STR, FF_FILTER, NULL, 1, 16, "abcdefghijklmnopqrstuvwxyz0123456789_", NULL},
    {"vendor", FT_STR, 0, NULL, 0, 64, "", NULL},
    {"model", FT_STR, 0, NULL, 0, 64, "", NULL},
    {"rated_power_w", FT_INT, 0, NULL, 0, 100000000, NULL, NULL},
    {"current_type", FT_ENUM, FF_FILTER, NULL, 0, 0, "dc|ac", NULL},
    {"gun_count", FT_INT, FF_FIXED, NULL, 1, 99, NULL, NULL},
    {"tariff_id", FT_INT, FF_NULL | FF_FILTER, NULL, 1, INT64_MAX, NULL, NULL},
    {"status", FT_ENUM, FF_FILTER, NULL, 0, 0, "enabled|disabled", NULL},
    {"protocol_version", FT_INT, FF_RO, NULL, 0, 0, NULL, NULL},
    {"program_version", FT_STR, FF_RO, NULL, 0, 0, NULL, NULL},
    {"sim", FT_STR, FF_RO, NULL, 0, 0, NULL, NULL},
    {"tariff_model_on_pile", FT_STR, FF_RO, NULL, 0, 0, NULL, NULL},
    {"online", FT_BOOL, FF_RO | FF_FILTER, "COALESCE(pp.online, 0)", 0, 1, NULL, NULL},
    {"last_seen_ms", FT_INT, FF_RO, "pp.last_seen_ms", 0, 0, NULL, NULL},
    {"peer", FT_STR, FF_RO, "pp.peer", 0, 0, NULL, NULL},
    {"created_ms", FT_INT, FF_RO, NULL, 0, 0, NULL, NULL},
    {"updated_ms", FT_INT, FF_RO, NULL, 0, 0, NULL, NULL},
};
const api_resource_t api_res_piles = {
    "pile", "piles", "piles t LEFT JOIN pile_presence pp ON pp.pile_id = t.id", "t", "pile_id",
    pile_f, N(pile_f), NULL,
    "fk_piles_station=station_id;fk_piles_tariff=tariff_id;"
    "uk_piles_serial=serial",
    "updated_ms", 0, 0};

static const api_field_t connector_f[] = {
    {"id", FT_INT, FF_RO, NULL, 0, 0, NULL, NULL},
    {"pile_id", FT_INT, FF_REQ | FF_FIXED | FF_FILTER, NULL, 1, INT64_MAX, NULL, NULL},
    {"gun_no", FT_INT, FF_REQ | FF_FIXED | FF_FILTER, NULL, 1, 99, NULL, NULL},
    {"connector_type", FT_INT, 0, NULL, 1, 255, NULL, NULL},
    {"rated_power_w", FT_INT, 0, NULL, 0, 100000000, NULL, NULL},
    {"status", FT_INT, FF_RO | FF_FILTER, NULL, 0, 3, NULL, NULL},
    {"plugged", FT_INT, FF_RO, NULL, 0, 0, NULL, NULL},
    {"gun_returned", FT_INT, FF_RO, NULL, 0, 0, NULL, NULL},
    {"fault_code", FT_INT, FF_RO, NULL, 0, 0, NULL, NULL},
    {"status_ms", FT_INT, FF_RO, NULL, 0, 0, NULL, NULL},
    {"current_session_id", FT_INT, FF_RO, NULL, 0, 0, NULL, NULL},
};
const api_resource_t api_res_connectors = {
    "connector", "connectors", "connectors t", "t", "connector_id", connector_f, N(connector_f),
    NULL, "fk_connectors_pile=pile_id", NULL, 0, 0};

#define RATE(n) {n, FT_INT, FF_REQ, NULL, 0, 4294967295LL, NULL, NULL}
static const api_field_t tariff_f[] = {
    {"id", FT_INT, FF_RO, NULL, 0, 0, NULL, NULL},
    {"name", FT_STR, FF_REQ | FF_FIXED | FF_FILTER, NULL, 1, 64, "", NULL},
    {"version", FT_INT, FF_RO, NULL, 0, 0, NULL, NULL},
    {"model", FT_STR, FF_RO | FF_FILTER, NULL, 4, 4, DIGITS, NULL},
    RATE("sharp_elec_rate"), RATE("sharp_service_rate"), RATE("peak_elec_rate"),
    RATE("peak_service_rate"), RATE("flat_elec_rate"), RATE("flat_service_rate"),
    RATE("valley_elec_rate"), RATE("valley_service_rate"),
    {"slots", FT_STR, FF_REQ, NULL, 48, 48, "0123", NULL},
    {"script_id", FT_INT, FF_NULL, NULL, 1, INT64_MAX, NULL, NULL},
    {"state", FT_ENUM, FF_RO | FF_FILTER, NULL, 0, 0, "draft|active|retired", NULL},
    {"created_ms", FT_INT, FF_RO, NULL, 0, 0, NULL, NULL},
};
const api_resource_t api_res_tariffs = {
    "tariff", "tariffs", "tariffs t", "t", "tariff_id", tariff_f, N(tariff_f), NULL,
    "fk_tariffs_script=script_id;ck_tariffs_slots=slots;ck_tariffs_model=model", NULL, 0, 0};

static const api_field_t driver_f[] = {
    {"id", FT_INT, FF_RO, NULL, 0, 0, NULL, NULL},
    {"phone", FT_STR, FF_NULL | FF_FILTER, NULL, 3, 20, DIGITS "+", NULL},
    {"name", FT_STR, FF_FILTER, NULL, 0, 64, "", NULL},
    {"status", FT_ENUM, FF_FILTER, NULL, 0, 0, "active|blocked", NULL},
    {"created_ms", FT_INT, FF_RO, NULL, 0, 0, NULL, NULL},
};
const api_resource_t api_res_drivers = {
    "driver", "drivers", "drivers t", "t", "driver_id", driver_f, N(driver_f), NULL,
    "uk_drivers_phone=phone", NULL, 0, 0};

static const api_field_t card_f[] = {
    {"id", FT_INT, FF_RO, NULL, 0, 0, NULL, NULL},
    {"driver_id", FT_INT, FF_NULL | FF_FILTER, NULL, 1, INT64_MAX, NULL, NULL},
    {"logical_no", FT_STR, FF_REQ | FF_FILTER, NULL, 16, 16, DIGITS, NULL},
    {"physical_no", FT_STR, FF_REQ | FF_FILTER, NULL, 16, 16, HEXU, NULL},
    {"status", FT_ENUM, FF_FILTER, NULL, 0, 0, "active|blocked|lost", NULL},
    {"offline", FT_BOOL, FF_FILTER, NULL, 0, 1, NULL, NULL},
    {"created_ms", FT_INT, FF_RO, NULL, 0, 0, NULL, NULL},
};
const api_resource_t api_res_cards = {
    "card", "rfid_cards", "rfid_cards t", "t", "card_id", card_f, N(card_f), NULL,
    "fk_cards_driver=driver_id;ck_cards_physical=physical_no", NULL, 0, 0};

#define ROI(n) {n, FT_INT, FF_RO, NULL, 0, 0, NULL, NULL}
#define ROIF(n) {n, FT_INT, FF_RO | FF_FILTER, NULL, 1, INT64_MAX, NULL, NULL}
#define ROS(n) {n, FT_STR, FF_RO, NULL, 0, 0, NULL, NULL}
static const api_field_t session_f[] = {
    ROI("id"), ROIF("station_id"), ROIF("pile_id"),
    {"pile_serial", FT_STR, FF_RO, "p.serial", 0, 0, NULL, NULL},
    ROI("connector_id"), ROI("gun_no"),
    {"trade_no", FT_STR, FF_RO | FF_FILTER, NULL, 1, EVCS_ID_MAX, NULL, NULL},
    {"state", FT_ENUM, FF_RO | FF_FILTER, NULL, 0, 0,
     "pending|starting|charging|stopping|finished|failed|abnormal", NULL},
    {"start_mode", FT_ENUM, FF_RO | FF_FILTER, NULL, 0, 0,
     "app|card|offline_card|vin|operator|partner", NULL},
    ROIF("driver_id"), ROIF("card_id"), ROS("vin"), ROI("tariff_id"), ROI("requested_ms"),
    ROI("start_ms"), ROI("end_ms"), ROI("stop_reason"), ROS("stop_reason_text"),
    ROI("meter_start"), ROI("meter_stop"), ROI("sharp_kwh"), ROI("sharp_amount"),
    ROI("peak_kwh"), ROI("peak_amount"), ROI("flat_kwh"), ROI("flat_amount"),
    ROI("valley_kwh"), ROI("valley_amount"), ROI("total_kwh"), ROI("elec_amount"),
    ROI("service_amount"), ROI("total_amount"), ROI("pile_amount"),
    {"bill", FT_JSON, FF_RO, NULL, 0, 0, NULL, NULL},
    {"amount_mismatch", FT_BOOL, FF_RO, NULL, 0, 0, NULL, NULL},
    ROI("live_kwh"), ROI("live_amount"), ROI("live_soc"),
    {"settle_state", FT_ENUM, FF_RO | FF_FILTER, NULL, 0, 0, "unsettled|settled|failed|free",
     NULL},
};
const api_resource_t api_res_sessions = {
    "session", "charging_sessions",
    "charging_sessions t JOIN piles p ON p.id = t.pile_id", "t", "session_id", session_f,
    N(session_f), "requested_ms", "", NULL, 0, 0};

static const api_field_t alarm_f[] = {
    ROI("id"), ROIF("pile_id"), ROI("gun_no"), ROIF("session_id"),
    {"code", FT_STR, FF_RO | FF_FILTER, NULL, 1, 64, "", NULL},
    {"severity", FT_ENUM, FF_RO | FF_FILTER, NULL, 0, 0, "info|warning|major|critical", NULL},
    ROS("message"),
    {"details", FT_JSON, FF_RO, NULL, 0, 0, NULL, NULL},
    {"source", FT_STR, FF_RO | FF_FILTER, NULL, 1, 32, "", NULL},
    {"state", FT_ENUM, FF_RO | FF_FILTER, NULL, 0, 0, "raised|acknowledged|cleared", NULL},
    ROI("raised_ms"), ROI("acked_ms"), ROI("acked_by"), ROI("cleared_ms"),
};
const api_resource_t api_res_alarms = {
    "alarm", "alarms", "alarms t", "t", "alarm_id", alarm_f, N(alarm_f), "raised_ms", "", NULL,
    0, 0};

static const api_field_t audit_f[] = {
    ROI("id"), ROIF("user_id"), ROI("token_id"), ROS("actor"),
    {"action", FT_STR, FF_RO | FF_FILTER, NULL, 1, 64, "", NULL},
    {"object_type", FT_STR, FF_RO | FF_FILTER, NULL, 1, 32, "", NULL},
    {"object_id", FT_STR, FF_RO | FF_FILTER, NULL, 1, 64, "", NULL},
    ROS("peer"),
    {"details", FT_JSON, FF_RO, NULL, 0, 0, NULL, NULL},
    ROI("ts_ms"),
};
const api_resource_t api_res_audit = {
    "audit", "audit_log", "audit_log t", "t", "audit_id", audit_f, N(audit_f), "ts_ms", "", NULL,
    0, 0};

static const api_field_t tenant_f[] = {
    {"id", FT_INT, FF_RO, NULL, 0, 0, NULL, NULL},
    {"name", FT_STR, FF_REQ | FF_FILTER, NULL, 1, 128, "", NULL},
    {"status", FT_ENUM, FF_FILTER, NULL, 0, 0, "active|suspended|expired|deleted", NULL},
    {"expires_ms", FT_INT, FF_NULL, NULL, 0, INT64_MAX, NULL, NULL},
    {"plan", FT_STR, FF_FILTER, NULL, 1, 32, "", NULL},
    {"max_piles", FT_INT, 0, NULL, 0, 100000000, NULL, NULL},
    {"settings", FT_JSON, 0, NULL, 0, 0, NULL, "object"},
    /* an IANA zone name; api_op_tenant_create/update check that the zone exists */
    {"timezone", FT_STR, FF_NULL, NULL, 1, 64,
     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/_+-.", NULL},
    {"created_ms", FT_INT, FF_RO, NULL, 0, 0, NULL, NULL},
    {"updated_ms", FT_INT, FF_RO, NULL, 0, 0, NULL, NULL},
};
const api_resource_t api_res_tenants = {
    "tenant", "tenants", "tenants t", "t", "tenant_id", tenant_f, N(tenant_f), NULL,
    "uk_tenants_name=name;ck_tenants_quota=max_piles", "updated_ms", 1, 0};

static const api_field_t token_f[] = {
    ROI("id"), ROIF("user_id"), {"username", FT_STR, FF_RO, "u.username", 0, 0, NULL, NULL},
    ROS("name"), {"role", FT_STR, FF_RO, "COALESCE(t.role, u.role)", 0, 0, NULL, NULL},
    ROI("created_ms"), ROI("expires_ms"), ROI("last_used_ms"), ROI("revoked_ms"),
};
const api_resource_t api_res_tokens = {
    "token", "api_tokens", "api_tokens t JOIN api_users u ON u.id = t.user_id", "t", "token_id",
    token_f, N(token_f), NULL, "", NULL, 0, 0};

static const api_field_t unclaimed_f[] = {
    {"serial", FT_STR, FF_RO, NULL, 0, 0, NULL, NULL},
    ROI("first_seen_ms"), ROI("last_seen_ms"), ROS("peer"), ROI("attempts"),
    {"login", FT_JSON, FF_RO, NULL, 0, 0, NULL, NULL},
};
const api_resource_t api_res_unclaimed = {
    "unclaimed_pile", "unclaimed_piles", "unclaimed_piles t", "t", "serial", unclaimed_f,
    N(unclaimed_f), "last_seen_ms", "", NULL, 1, 1};

const char *api_crud_fkmap(const api_resource_t *r) { return r->fkmap; }

/* What the audit row keeps of a request body: secrets only as "set"/"unset". New reference. */
static json_t *audit_body(const api_resource_t *r, json_t *body)
{
	json_t *d = json_copy(body);
	for (size_t i = 0; d && i < r->nfields; i++) {
		const api_field_t *f = &r->fields[i];
		json_t *v = json_object_get(d, f->name);
		if (!(f->flags & FF_SECRET) || !v)
			continue;
		int set = json_is_string(v) && json_string_length(v) > 0;
		json_object_set_new(d, f->name, json_string(set ? "set" : "unset"));
	}
	return d;
}

/* ---- SQL building ------------------------------------------------------------------------- */
static void select_cols(const api_resource_t *r, sb_t *sql)
{
	sb_add(sql, "SELECT ");
	for (size_t i = 0; i < r->nfields; i++) {
		const api_field_t *f = &r->fields[i];
		if (f->expr)
			sb_addf(sql, "%s%s", i ? ", " : "", f->expr);
		else
			sb_addf(sql, "%s%s.%s", i ? ", " : "", r->alias, f->name);
	}
	sb_addf(sql, " FROM %s WHERE ", r->from);
}

void api_crud_select_by_id_sql(const api_resource_t *r, sb_t *sql)
{
	select_cols(r, sql);
	if (r->platform)
		sb_addf(sql, "%s.id = ?", r->alias);
	else
		sb_addf(sql, "%s.tenant_id = ? AND %s.id = ?", r->alias, r->alias);
}

json_t *api_crud_row(const api_resource_t *r, const evcs_db_result_t *res, size_t row)
{
	json_t *o = json_object();
	for (size_t i = 0; i < r->nfields && i < res->ncols; i++) {
		const api_field_t *f = &r->fields[i];
		const char *v = evcs_db_cell(res, row, (unsigned)i);
		json_t *j;
		if (!v)
			j = json_null();
		else if (f->type == FT_INT)
			j = json_integer(strtoll(v, NULL, 10));
		else if (f->type == FT_BOOL)
			j = json_boolean(strcmp(v, "0") != 0);
		else if (f->type == FT_JSON) {
			j = json_loads(v, JSON_DECODE_ANY, NULL);
			if (!j)
				j = json_string(v);
		} else
			j = json_string(v);
		json_object_set_new(o, f->name, j);
	}
	return o;
}

static const api_field_t *field_of(const api_resource_t *r, const char *name)
{
	for (size_t i = 0; i < r->nfields; i++)
		if (!strcmp(r->fields[i].name, name))
			return &r->fields[i];
	return NULL;
}

static int enum_has(const char *allowed, const char *v)
{
	size_t vl = strlen(v);
	for (const char *p = allowed; *p;) {
		const char *e = strchr(p, '|');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == vl && !strncmp(p, v, l))
			return 1;
		if (!e)
			break;
		p = e + 1;
	}
	return 0;
}

static size_t utf8_len(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			n++;
	return n;
}

/* Checks one value; 0 or -1 with msg set. */
static int check_value(const api_field_t *f, json_t *v, char *msg, size_t ml)
{
	if (json_is_null(v)) {
		if (f->flags & FF_NULL)
			return 0;
		snprintf(msg, ml, "%s may not be null", f->name);
		return -1;
	}
	switch (f->type) {
	case FT_INT:
		if (!json_is_integer(v) || json_integer_value(v) < f->min ||
		    json_integer_value(v) > f->max) {
			snprintf(msg, ml, "%s must be an integer %lld..%lld", f->name,
				 (long long)f->min, (long long)f->max);
			return -1;
		}
		return 0;
	case FT_BOOL:
		if (!json_is_boolean(v)) {
			snprintf(msg, ml, "%s must be true or false", f->name);
			return -1;
		}
		return 0;
	case FT_JSON:
		if ((!strcmp(f->kind, "array") && !json_is_array(v)) ||
		    (!strcmp(f->kind, "object") && !json_is_object(v))) {
			snprintf(msg, ml, "%s must be a JSON %s", f->name, f->kind);
			return -1;
		}
		return 0;
	case FT_ENUM:
		if (!json_is_string(v) || !enum_has(f->allowed, json_string_value(v))) {
			snprintf(msg, ml, "%s must be one of %s", f->name, f->allowed);
			return -1;
		}
		return 0;
	case FT_STR: {
		if (!json_is_string(v)) {
			snprintf(msg, ml, "%s must be a string", f->name);
			return -1;
		}
		const char *s = json_string_value(v);
		size_t l = utf8_len(s);
		if (strlen(s) != json_string_length(v) || (int64_t)l < f->min ||
		    (int64_t)l > f->max) {
			snprintf(msg, ml, "%s must be %lld..%lld characters", f->name,
				 (long long)f->min, (long long)f->max);
			return -1;
		}
		if (f->allowed && *f->allowed && strspn(s, f->allowed) != strlen(s)) {
			snprintf(msg, ml, "%s may contain only [%s]", f->name, f->allowed);
			return -1;
		}
		for (const char *p = s; *p; p++)
			if ((unsigned char)*p < 0x20) {
				snprintf(msg, ml, "%s contains control characters", f->name);
				return -1;
			}
		return 0;
	}
	}
	return -1;
}

int api_crud_validate(api_ctx_t *c, const api_resource_t *r, json_t *body, int creating)
{
	const char *k;
	json_t *v;
	char msg[256];
	json_object_foreach(body, k, v)
	{
		const api_field_t *f = field_of(r, k);
		if (!f) {
			api_error(c, 400, "unknown_field", k, "unknown field %s", k);
			return -1;
		}
		if (f->flags & FF_RO) {
			api_error(c, 400, "read_only", k, "%s is read-only", k);
			return -1;
		}
		if (!creating && (f->flags & FF_FIXED)) {
			api_error(c, 400, "immutable", k, "%s cannot be changed", k);
			return -1;
		}
		if (check_value(f, v, msg, sizeof msg) < 0) {
			api_error(c, 400, "invalid", k, "%s", msg);
			return -1;
		}
	}
	if (creating)
		for (size_t i = 0; i < r->nfields; i++)
			if ((r->fields[i].flags & FF_REQ) && !json_object_get(body, r->fields[i].name)) {
				api_error(c, 400, "required", r->fields[i].name, "%s is required",
					  r->fields[i].name);
				return -1;
			}
	if (!creating && json_object_size(body) == 0) {
		api_error(c, 400, "invalid", "body", "nothing to change");
		return -1;
	}
	return 0;
}

static evcs_db_param_t value_param(api_ctx_t *c, const api_field_t *f, json_t *v)
{
	if (json_is_null(v))
		return EVCS_DB_NULL;
	switch (f->type) {
	case FT_INT: return EVCS_DB_INT(json_integer_value(v));
	case FT_BOOL: return EVCS_DB_INT(json_is_true(v));
	case FT_JSON: return EVCS_DB_STR(api_keep(c, json_dumps(v, JSON_COMPACT)));
	default: return EVCS_DB_STR(json_string_value(v));
	}
}

int api_crud_insert_sql(api_ctx_t *c, const api_resource_t *r, json_t *body, sb_t *sql,
			evcs_db_param_t *p, size_t cap)
{
	size_t n = 0;
	sb_addf(sql, "INSERT INTO %s SET ", r->table);
	int first = 1;
	if (!r->platform) {
		sb_add(sql, "tenant_id = ?");
		first = 0;
	}
	for (size_t i = 0; i < r->nfields; i++) {
		json_t *v = json_object_get(body, r->fields[i].name);
		if (!v || (r->fields[i].flags & FF_RO))
			continue;
		if (n >= cap)
			return -1;
		sb_addf(sql, "%s%s = ?", first ? "" : ", ", r->fields[i].name);
		first = 0;
		p[n++] = value_param(c, &r->fields[i], v);
	}
	if (first)
		sb_add(sql, "id = NULL");
	return (int)n;
}

/* ---- handlers ------------------------------------------------------------------------------- */
static const api_resource_t *res_of(api_ctx_t *c) { return c->route->ud; }

static void list_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		    void *ud)
{
	api_ctx_t *c = ud;
	if (!api_db_begin(c, status, errmsg))
		return;
	const api_resource_t *r = res_of(c);
	json_t *items = json_array();
	for (size_t i = 0; i < res[0].nrows; i++)
		json_array_append_new(items, api_crud_row(r, &res[0], i));
	int64_t *pg = c->op;
	api_reply_json(c, 200, api_page_wrap(items, pg[0], pg[1]));
}

void api_crud_list(api_ctx_t *c)
{
	const api_resource_t *r = res_of(c);
	int64_t *pg = calloc(2, sizeof *pg);
	if (!pg) {
		api_error(c, 503, "unavailable", NULL, "out of memory");
		return;
	}
	c->op = pg;
	c->op_free = free;
	if (api_page(c, &pg[0], &pg[1]) < 0)
		return;
	evcs_db_param_t p[24];
	size_t n = 0;
	sb_t sql = {0};
	select_cols(r, &sql);
	if (r->platform)
		sb_add(&sql, "1 = 1");
	else
		sb_addf(&sql, "%s.tenant_id = ?", r->alias);
	char msg[256];
	for (size_t i = 0; i < r->nfields; i++) {
		const api_field_t *f = &r->fields[i];
		if (!(f->flags & FF_FILTER))
			continue;
		const char *q = evcs_http_req_query(c->req, f->name);
		if (!q)
			continue;
		json_t *v;
		if (f->type == FT_INT || f->type == FT_BOOL) {
			char *end;
			errno = 0;
			long long x = strtoll(q, &end, 10);
			if (f->type == FT_BOOL && (!strcmp(q, "true") || !strcmp(q, "false"))) {
				x = !strcmp(q, "true");
				end = (char *)q + strlen(q);
			}
			if (!*q || *end || errno) {
				free(sql.s);
				api_error(c, 400, "invalid", f->name, "%s must be an integer", f->name);
				return;
			}
			v = f->type == FT_BOOL ? json_boolean(x) : json_integer(x);
		} else {
			v = json_string(q);
		}
		int bad = !v || (f->type != FT_BOOL && check_value(f, v, msg, sizeof msg) < 0);
		if (f->type == FT_BOOL && v && !json_is_boolean(v))
			bad = 1;
		if (bad) {
			json_decref(v);
			free(sql.s);
			api_error(c, 400, "invalid", f->name, "%s", v ? msg : "bad value");
			return;
		}
		if (f->expr)
			sb_addf(&sql, " AND %s = ?", f->expr);
		else
			sb_addf(&sql, " AND %s.%s = ?", r->alias, f->name);
		if (f->type == FT_STR || f->type == FT_ENUM)
			p[n++] = EVCS_DB_STR(api_keep(c, strdup(q)));
		else
			p[n++] = EVCS_DB_INT(f->type == FT_BOOL ? json_is_true(v)
							       : json_integer_value(v));
		json_decref(v);
	}
	if (r->time_col) {
		static const char *const tk[2] = {"since_ms", "until_ms"};
		for (int i = 0; i < 2; i++) {
			const char *q = evcs_http_req_query(c->req, tk[i]);
			if (!q)
				continue;
			char *end;
			errno = 0;
			long long x = strtoll(q, &end, 10);
			if (!*q || *end || errno || x < 0) {
				free(sql.s);
				api_error(c, 400, "invalid", tk[i], "%s must be unix milliseconds", tk[i]);
				return;
			}
			sb_addf(&sql, " AND %s.%s %s ?", r->alias, r->time_col, i ? "<" : ">=");
			p[n++] = EVCS_DB_INT(x);
		}
	}
	sb_addf(&sql, " ORDER BY %s.%s DESC LIMIT ? OFFSET ?", r->alias,
		r->no_id_filter ? r->time_col : "id");
	p[n++] = EVCS_DB_INT(pg[0] + 1);
	p[n++] = EVCS_DB_INT(pg[1]);
	api_query(c, r->platform, sql.s, p, n, list_cb);
	free(sql.s);
}

static void get_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		   void *ud)
{
	api_ctx_t *c = ud;
	if (api_ctx_gone(c))
		return;
	if (status != EVCS_OK) {
		api_db_error(c, status, errmsg, res_of(c)->fkmap);
		return;
	}
	const evcs_db_result_t *last = &res[nres - 1];
	if (last->nrows != 1) {
		api_error(c, 404, "not_found", NULL, "no such %s", res_of(c)->name);
		return;
	}
	int created = c->op == (void *)1;
	c->op = NULL;
	json_t *row = api_crud_row(res_of(c), last, 0);
	if (res_of(c) == &api_res_tenants && c->route->fn != api_crud_get) /* committed: local time */
		evcs_core_tz_tenant_stored(c->core, json_integer_value(json_object_get(row, "id")),
					   json_string_value(json_object_get(row, "timezone")));
	api_reply_json(c, created ? 201 : 200, row);
}

void api_crud_get(api_ctx_t *c)
{
	const api_resource_t *r = res_of(c);
	int64_t id = api_param_id(c, r->id_param);
	if (!id)
		return;
	sb_t sql = {0};
	api_crud_select_by_id_sql(r, &sql);
	evcs_db_param_t p[] = {EVCS_DB_INT(id)};
	api_query(c, r->platform, sql.s, p, 1, get_cb);
	free(sql.s);
}

void api_crud_create(api_ctx_t *c)
{
	const api_resource_t *r = res_of(c);
	if (api_crud_validate(c, r, c->body, 1) < 0)
		return;
	evcs_db_param_t p[32];
	sb_t ins = {0}, sel = {0};
	int n = api_crud_insert_sql(c, r, c->body, &ins, p, 32);
	api_crud_select_by_id_sql(r, &sel);
	evcs_db_txn_t *t = evcs_db_txn_new(c->core->db);
	evcs_db_param_t ref[] = {EVCS_DB_REFID(0)};
	char action[64];
	snprintf(action, sizeof action, "%s.create", r->name);
	json_t *ad = audit_body(r, c->body);
	if (t) {
		if (r->platform) {
			evcs_db_txn_add_platform(t, ins.s, p, (size_t)n, 0);
			api_txn_audit(c, t, action, r->name, EVCS_DB_REFID(0), ad);
			evcs_db_txn_add_platform(t, sel.s, ref, 1, EVCS_DB_REQUIRE_ROW);
		} else {
			evcs_db_txn_add(t, c->tenant, ins.s, p, (size_t)n, 0);
			api_txn_audit(c, t, action, r->name, EVCS_DB_REFID(0), ad);
			evcs_db_txn_add(t, c->tenant, sel.s, ref, 1, EVCS_DB_REQUIRE_ROW);
		}
	}
	json_decref(ad);
	free(ins.s);
	free(sel.s);
	c->op = (void *)1; /* 201 */
	api_txn_submit(c, t, get_cb);
}

void api_crud_update(api_ctx_t *c)
{
	const api_resource_t *r = res_of(c);
	int64_t id = api_param_id(c, r->id_param);
	if (!id || api_crud_validate(c, r, c->body, 0) < 0)
		return;
	evcs_db_param_t p[32];
	size_t n = 0;
	sb_t up = {0}, sel = {0};
	sb_addf(&up, "UPDATE %s SET ", r->table);
	int first = 1;
	for (size_t i = 0; i < r->nfields && n < 30; i++) {
		json_t *v = json_object_get(c->body, r->fields[i].name);
		if (!v)
			continue;
		sb_addf(&up, "%s%s = ?", first ? "" : ", ", r->fields[i].name);
		first = 0;
		p[n++] = value_param(c, &r->fields[i], v);
	}
	if (r->updated)
		sb_addf(&up, ", %s = CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)", r->updated);
	sb_add(&up, r->platform ? " WHERE id = ?" : " WHERE tenant_id = ? AND id = ?");
	p[n++] = EVCS_DB_INT(id);
	api_crud_select_by_id_sql(r, &sel);
	evcs_db_param_t idp[] = {EVCS_DB_INT(id)};
	char action[64], oid[24];
	snprintf(action, sizeof action, "%s.update", r->name);
	snprintf(oid, sizeof oid, "%lld", (long long)id);
	evcs_db_txn_t *t = evcs_db_txn_new(c->core->db);
	json_t *ad = audit_body(r, c->body);
	if (t) {
		if (r->platform) {
			evcs_db_txn_add_platform(t, up.s, p, n, 0);
			api_txn_audit(c, t, action, r->name, EVCS_DB_STR(oid), ad);
			evcs_db_txn_add_platform(t, sel.s, idp, 1, EVCS_DB_REQUIRE_ROW);
		} else {
			evcs_db_txn_add(t, c->tenant, up.s, p, n, 0);
			api_txn_audit(c, t, action, r->name, EVCS_DB_STR(oid), ad);
			evcs_db_txn_add(t, c->tenant, sel.s, idp, 1, EVCS_DB_REQUIRE_ROW);
		}
	}
	json_decref(ad);
	free(up.s);
	free(sel.s);
	api_txn_submit(c, t, get_cb);
}

static void delete_cb(int status, const evcs_db_result_t *res, size_t nres, const char *errmsg,
		      void *ud)
{
	api_ctx_t *c = ud;
	if (api_ctx_gone(c))
		return;
	if (status != EVCS_OK) {
		api_db_error(c, status, errmsg, res_of(c)->fkmap);
		return;
	}
	api_reply_json(c, 204, NULL);
}

void api_crud_delete(api_ctx_t *c)
{
	const api_resource_t *r = res_of(c);
	int64_t id = api_param_id(c, r->id_param);
	if (!id)
		return;
	sb_t del = {0};
	sb_addf(&del, "DELETE FROM %s WHERE tenant_id = ? AND id = ?", r->table);
	evcs_db_param_t p[] = {EVCS_DB_INT(id)};
	char action[64], oid[24];
	snprintf(action, sizeof action, "%s.delete", r->name);
	snprintf(oid, sizeof oid, "%lld", (long long)id);
	evcs_db_txn_t *t = evcs_db_txn_new(c->core->db);
	if (t) {
		evcs_db_txn_add(t, c->tenant, del.s, p, 1, EVCS_DB_REQUIRE_ROW);
		api_txn_audit(c, t, action, r->name, EVCS_DB_STR(oid), NULL);
	}
	free(del.s);
	api_txn_submit(c, t, delete_cb);
}
