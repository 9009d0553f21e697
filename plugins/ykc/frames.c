/*
 * plugins/ykc/frames.c: the §4 frame catalogue as data. One field table per frame
 * type drives decoding (body -> struct + warnings), encoding (struct -> body, with
 * refusal of values that do not fit), field presence for partial bodies, the
 * server tolerance policy (§6.3) and the `fields` JSON object (§7.2).
 * Decode/encode never allocate; only evcs_ykc_json_fields() does (jansson).
 */
#include "codec.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

enum kind { K_BCD, K_U8, K_U16, K_U24, K_U32, K_U40, K_TEMP, K_HEX, K_ASCII, K_CP56, K_SLOTS };

struct field {
	const char *name;
	uint8_t off, len, kind, dec; /* dec: decimals of a scaled integer (0 = plain int) */
	uint16_t mem;                /* offset of the member inside the union struct */
	bool (*valid)(uint64_t v);   /* spec range; NULL = any value */
	uint8_t warn;                /* warning code when !valid */
	bool number;                 /* BCD pile/gun/trade number: warn on A-F nibbles */
};

/* offsetof plus a compile-time check that the member has the size the kind implies,
 * so a table row cannot silently point at a member of the wrong type. */
#define MEM(st, mb, sz) \
	((uint16_t)(offsetof(st, mb) + 0 * sizeof(char[(sizeof(((st *)0)->mb) == (sz)) ? 1 : -1])))
#define FLD(nm, o, l, k, d, st, mb, sz, v, w, num) \
	{ nm, o, l, k, d, MEM(st, mb, sz), v, w, num }
#define BCD(nm, o, l, st, mb) FLD(nm, o, l, K_BCD, 0, st, mb, 2 * (l) + 1, NULL, 0, false)
#define NUMBER(nm, o, l, st, mb) FLD(nm, o, l, K_BCD, 0, st, mb, 2 * (l) + 1, NULL, 0, true)
#define U8(nm, o, st, mb, v) FLD(nm, o, 1, K_U8, 0, st, mb, 1, v, EVCS_YKC_W_RANGE, false)
#define U8W(nm, o, st, mb, v, w) FLD(nm, o, 1, K_U8, 0, st, mb, 1, v, w, false)
#define U16(nm, o, st, mb, d) FLD(nm, o, 2, K_U16, d, st, mb, 2, NULL, 0, false)
#define U16V(nm, o, st, mb, v) FLD(nm, o, 2, K_U16, 0, st, mb, 2, v, EVCS_YKC_W_RANGE, false)
#define U24(nm, o, st, mb) FLD(nm, o, 3, K_U24, 0, st, mb, 4, NULL, 0, false)
#define U32(nm, o, st, mb, d) FLD(nm, o, 4, K_U32, d, st, mb, 4, NULL, 0, false)
#define U40(nm, o, st, mb, d) FLD(nm, o, 5, K_U40, d, st, mb, 8, NULL, 0, false)
#define TEMP(nm, o, st, mb) FLD(nm, o, 1, K_TEMP, 0, st, mb, 2, NULL, 0, false)
#define HEX(nm, o, l, st, mb) FLD(nm, o, l, K_HEX, 0, st, mb, l, NULL, 0, false)
#define ASCII(nm, o, l, st, mb) FLD(nm, o, l, K_ASCII, 0, st, mb, (l) + 1, NULL, 0, false)
#define CP56(nm, o, st, mb) \
	FLD(nm, o, 7, K_CP56, 0, st, mb, sizeof(struct evcs_ykc_cp56), NULL, 0, false)
#define SLOTS(nm, o, st, mb) FLD(nm, o, 48, K_SLOTS, 0, st, mb, 48, NULL, 0, false)

#define PILE(o, st) NUMBER("pile", o, 7, st, pile)
#define GUN(o, st) NUMBER("gun", o, 1, st, gun)
#define TRADE(st) NUMBER("trade_no", 0, 16, st, trade_no)
#define TPG(st) TRADE(st), PILE(16, st), GUN(23, st)

/* Spec ranges (§4). Out-of-range values are warnings, never errors (§7.3). */
static bool v0(uint64_t v) { return v == 0; }
static bool v01(uint64_t v) { return v <= 1; }
static bool v02(uint64_t v) { return v <= 2; }
static bool v03(uint64_t v) { return v <= 3; }
static bool v12(uint64_t v) { return v == 1 || v == 2; }
static bool v13(uint64_t v) { return v >= 1 && v <= 3; }
static bool v05(uint64_t v) { return v <= 5; }
static bool vpct(uint64_t v) { return v <= 100; }
static bool vpermille(uint64_t v) { return v <= 1000; }
static bool vcarrier(uint64_t v) { return v == 0 || v == 2 || v == 3 || v == 4; }
static bool vproto(uint64_t v) { return v == 15 || v == 16; }
static bool vbattery(uint64_t v) { return (v >= 1 && v <= 8) || v == 0xFF; }
static bool vmonth(uint64_t v) { return v >= 1 && v <= 12; }
static bool vday(uint64_t v) { return v >= 1 && v <= 31; }
static bool vauthfail(uint64_t v) { return v <= 0x0B; }
static bool vtradeflag(uint64_t v) { return v == 1 || v == 2 || v == 4 || v == 5; }
/* §5: the table spans 0x40-0x90; 0 is the spec sample's "unspecified". */
static bool vstop(uint64_t v) { return v == 0 || (v >= 0x40 && v <= 0x90); }
static bool vpower(uint64_t v) { return v >= 30 && v <= 100; }
static bool vlock(uint64_t v) { return v == 0 || v == 0x55 || v == 0xFF; }
static bool vspace(uint64_t v) { return v == 0 || v == 0xFF; }
static bool vaction(uint64_t v) { return v == 0x55 || v == 0xFF; }
static bool vhwfault(uint64_t v) { return (v & 0xE000) == 0; } /* Bit1..Bit13 only */

#define ST struct evcs_ykc_login
static const struct field f_login[] = {
	PILE(0, ST),
	U8("pile_type", 7, ST, pile_type, v01),
	U8("gun_count", 8, ST, gun_count, NULL),
	U8W("protocol_version", 9, ST, protocol_version, vproto, EVCS_YKC_W_PROTO_VERSION),
	ASCII("program_version", 10, 8, ST, program_version),
	U8("network", 18, ST, network, v03),
	BCD("sim", 19, 10, ST, sim),
	U8("carrier", 29, ST, carrier, vcarrier),
};
#undef ST
#define ST struct evcs_ykc_pile_result
static const struct field f_pile_result01[] = { PILE(0, ST), U8("result", 7, ST, result, v01) };
#undef ST
#define ST struct evcs_ykc_heartbeat
static const struct field f_heartbeat[] = { PILE(0, ST), GUN(7, ST),
					    U8("gun_state", 8, ST, gun_state, v01) };
#undef ST
#define ST struct evcs_ykc_heartbeat_reply
static const struct field f_heartbeat_reply[] = { PILE(0, ST), GUN(7, ST), U8("ack", 8, ST, ack, v0) };
#undef ST
#define ST struct evcs_ykc_model_verify
static const struct field f_model_verify[] = { PILE(0, ST), BCD("model", 7, 2, ST, model),
					       U8("result", 9, ST, result, v01) };
#undef ST
#define ST struct evcs_ykc_tariff
static const struct field f_tariff[] = {
	PILE(0, ST),
	BCD("model", 7, 2, ST, model),
	U32("sharp_elec_rate", 9, ST, sharp_elec_rate, 5),
	U32("sharp_service_rate", 13, ST, sharp_service_rate, 5),
	U32("peak_elec_rate", 17, ST, peak_elec_rate, 5),
	U32("peak_service_rate", 21, ST, peak_service_rate, 5),
	U32("flat_elec_rate", 25, ST, flat_elec_rate, 5),
	U32("flat_service_rate", 29, ST, flat_service_rate, 5),
	U32("valley_elec_rate", 33, ST, valley_elec_rate, 5),
	U32("valley_service_rate", 37, ST, valley_service_rate, 5),
	U8("loss_ratio", 41, ST, loss_ratio, NULL),
	SLOTS("slots", 42, ST, slots),
};
#undef ST
#define ST struct evcs_ykc_pile_gun
static const struct field f_pile_gun[] = { PILE(0, ST), GUN(7, ST) };
#undef ST
#define ST struct evcs_ykc_realtime
static const struct field f_realtime[] = {
	TPG(ST),
	U8("status", 24, ST, status, v03),
	U8("gun_returned", 25, ST, gun_returned, v02),
	U8("plugged", 26, ST, plugged, v01),
	U16("voltage_v", 27, ST, voltage_v, 1),
	U16("current_a", 29, ST, current_a, 1),
	TEMP("gun_temp_c", 31, ST, gun_temp_c),
	HEX("gun_line_code", 32, 8, ST, gun_line_code),
	U8("soc", 40, ST, soc, vpct),
	TEMP("batt_max_temp_c", 41, ST, batt_max_temp_c),
	U16("charged_min", 42, ST, charged_min, 0),
	U16("remaining_min", 44, ST, remaining_min, 0),
	U32("kwh", 46, ST, kwh, 4),
	U32("loss_kwh", 50, ST, loss_kwh, 4),
	U32("amount_yuan", 54, ST, amount_yuan, 4),
	U16V("hw_fault", 58, ST, hw_fault, vhwfault),
};
#undef ST
#define ST struct evcs_ykc_bms_handshake
static const struct field f_bms_handshake[] = {
	TPG(ST),
	HEX("bms_proto", 24, 3, ST, bms_proto),
	U8("battery_type", 27, ST, battery_type, vbattery),
	U16("rated_ah", 28, ST, rated_ah, 1),
	U16("rated_v", 30, ST, rated_v, 1),
	HEX("maker", 32, 4, ST, maker),
	HEX("pack_no", 36, 4, ST, pack_no),
	U8("mfg_year", 40, ST, mfg_year, NULL),
	U8("mfg_month", 41, ST, mfg_month, vmonth),
	U8("mfg_day", 42, ST, mfg_day, vday),
	U24("cycles", 43, ST, cycles),
	U8("ownership", 46, ST, ownership, v01),
	U8("reserved", 47, ST, reserved, NULL),
	HEX("vin", 48, 17, ST, vin),
	HEX("bms_sw", 65, 8, ST, bms_sw),
};
#undef ST
#define ST struct evcs_ykc_bms_params
static const struct field f_bms_params[] = {
	TPG(ST),
	U16("cell_max_v", 24, ST, cell_max_v, 2),
	U16("max_current_raw", 26, ST, max_current_raw, 0),
	U16("rated_kwh", 28, ST, rated_kwh, 1),
	U16("max_total_v", 30, ST, max_total_v, 1),
	TEMP("max_temp_c", 32, ST, max_temp_c),
	U16V("soc_permille", 33, ST, soc_permille, vpermille),
	U16("batt_v", 35, ST, batt_v, 1),
	U16("out_v_max", 37, ST, out_v_max, 1),
	U16("out_v_min", 39, ST, out_v_min, 1),
	U16("out_i_max_raw", 41, ST, out_i_max_raw, 0),
	U16("out_i_min_raw", 43, ST, out_i_min_raw, 0),
};
#undef ST
#define ST struct evcs_ykc_bms_charge_end
static const struct field f_bms_charge_end[] = {
	TPG(ST),
	U8("end_soc", 24, ST, end_soc, vpct),
	U16("cell_min_v", 25, ST, cell_min_v, 2),
	U16("cell_max_v", 27, ST, cell_max_v, 2),
	TEMP("temp_min_c", 29, ST, temp_min_c),
	TEMP("temp_max_c", 30, ST, temp_max_c),
	U16("minutes", 31, ST, minutes, 0),
	U16("out_kwh", 33, ST, out_kwh, 1),
	U32("charger_no", 35, ST, charger_no, 0),
};
#undef ST
#define ST struct evcs_ykc_bms_error
static const struct field f_bms_error[] = { TPG(ST), HEX("error_bits", 24, 8, ST, error_bits) };
#undef ST
#define ST struct evcs_ykc_abort
static const struct field f_abort[] = {
	TPG(ST),
	U8("reason", 24, ST, reason, NULL),
	U16("fault", 25, ST, fault, 0),
	U8("error", 27, ST, error, NULL),
};
#undef ST
#define ST struct evcs_ykc_bms_demand
static const struct field f_bms_demand[] = {
	TPG(ST),
	U16("bms_v_req", 24, ST, bms_v_req, 1),
	U16("bms_i_req_raw", 26, ST, bms_i_req_raw, 0),
	U8("mode", 28, ST, mode, v12),
	U16("bms_v_meas", 29, ST, bms_v_meas, 1),
	U16("bms_i_meas_raw", 31, ST, bms_i_meas_raw, 0),
	U16("cell_max_raw", 33, ST, cell_max_raw, 0),
	U8("soc", 35, ST, soc, vpct),
	U16("remain_min", 36, ST, remain_min, 0),
	U16("out_v", 38, ST, out_v, 1),
	U16("out_i_raw", 40, ST, out_i_raw, 0),
	U16("minutes", 42, ST, minutes, 0),
};
#undef ST
#define ST struct evcs_ykc_bms_info
static const struct field f_bms_info[] = {
	TPG(ST),
	U8("cell_max_no", 24, ST, cell_max_no, NULL),
	TEMP("temp_max_c", 25, ST, temp_max_c),
	U8("temp_max_point", 26, ST, temp_max_point, NULL),
	TEMP("temp_min_c", 27, ST, temp_min_c),
	U8("temp_min_point", 28, ST, temp_min_point, NULL),
	HEX("flags", 29, 2, ST, flags),
};
#undef ST
#define ST struct evcs_ykc_start_request
#define START_REQUEST_COMMON                                                   \
	PILE(0, ST), GUN(7, ST), U8("start_mode", 8, ST, start_mode, v13),    \
	U8("need_password", 9, ST, need_password, v01),                        \
	HEX("card", 10, 8, ST, card), HEX("password_md5", 18, 16, ST, password_md5), \
	HEX("vin", 34, 17, ST, vin)
static const struct field f_start_request[] = { START_REQUEST_COMMON };
static const struct field f_parallel_start_request[] = {
	START_REQUEST_COMMON,
	U8("parallel_role", 51, ST, parallel_role, v01),
	BCD("parallel_no", 52, 6, ST, parallel_no),
};
#undef ST
#define ST struct evcs_ykc_start_auth
#define START_AUTH_COMMON                                                      \
	TPG(ST), BCD("logical_card", 24, 8, ST, logical_card),                 \
	U32("balance_yuan", 32, ST, balance_yuan, 2),                          \
	U8("auth_ok", 36, ST, auth_ok, v01), U8("fail_reason", 37, ST, fail_reason, vauthfail)
static const struct field f_start_auth[] = { START_AUTH_COMMON };
static const struct field f_parallel_start_auth[] = { START_AUTH_COMMON,
						      BCD("parallel_no", 38, 6, ST, parallel_no) };
#undef ST
#define ST struct evcs_ykc_remote_start_reply
#define RS_REPLY_COMMON \
	TPG(ST), U8("result", 24, ST, result, v01), U8("fail_reason", 25, ST, fail_reason, v05)
static const struct field f_remote_start_reply[] = { RS_REPLY_COMMON };
static const struct field f_parallel_remote_start_reply[] = {
	RS_REPLY_COMMON,
	U8("parallel_role", 26, ST, parallel_role, v01),
	BCD("parallel_no", 27, 6, ST, parallel_no),
};
#undef ST
#define ST struct evcs_ykc_remote_start
#define RS_COMMON                                                              \
	TPG(ST), BCD("logical_card", 24, 8, ST, logical_card),                 \
	HEX("physical_card", 32, 8, ST, physical_card),                        \
	U32("balance_yuan", 40, ST, balance_yuan, 2)
static const struct field f_remote_start[] = { RS_COMMON };
static const struct field f_parallel_remote_start[] = { RS_COMMON,
							BCD("parallel_no", 44, 6, ST, parallel_no) };
#undef ST
#define ST struct evcs_ykc_remote_stop_reply
static const struct field f_remote_stop_reply[] = {
	PILE(0, ST), GUN(7, ST), U8("result", 8, ST, result, v01),
	U8("fail_reason", 9, ST, fail_reason, v03),
};
#undef ST
#define ST struct evcs_ykc_record
static const struct field f_record[] = {
	TPG(ST),
	CP56("start", 24, ST, start),
	CP56("end", 31, ST, end),
	U32("sharp_price", 38, ST, sharp_price, 5),
	U32("sharp_kwh", 42, ST, sharp_kwh, 4),
	U32("sharp_loss_kwh", 46, ST, sharp_loss_kwh, 4),
	U32("sharp_amount", 50, ST, sharp_amount, 4),
	U32("peak_price", 54, ST, peak_price, 5),
	U32("peak_kwh", 58, ST, peak_kwh, 4),
	U32("peak_loss_kwh", 62, ST, peak_loss_kwh, 4),
	U32("peak_amount", 66, ST, peak_amount, 4),
	U32("flat_price", 70, ST, flat_price, 5),
	U32("flat_kwh", 74, ST, flat_kwh, 4),
	U32("flat_loss_kwh", 78, ST, flat_loss_kwh, 4),
	U32("flat_amount", 82, ST, flat_amount, 4),
	U32("valley_price", 86, ST, valley_price, 5),
	U32("valley_kwh", 90, ST, valley_kwh, 4),
	U32("valley_loss_kwh", 94, ST, valley_loss_kwh, 4),
	U32("valley_amount", 98, ST, valley_amount, 4),
	U40("meter_start_kwh", 102, ST, meter_start_kwh, 4),
	U40("meter_stop_kwh", 107, ST, meter_stop_kwh, 4),
	U32("total_kwh", 112, ST, total_kwh, 4),
	U32("total_loss_kwh", 116, ST, total_loss_kwh, 4),
	U32("total_amount_yuan", 120, ST, total_amount_yuan, 4),
	HEX("vin", 124, 17, ST, vin),
	U8("trade_flag", 141, ST, trade_flag, vtradeflag),
	CP56("trade_time", 142, ST, trade_time),
	U8W("stop_reason", 149, ST, stop_reason, vstop, EVCS_YKC_W_STOP_REASON),
	HEX("physical_card", 150, 8, ST, physical_card),
};
#undef ST
#define ST struct evcs_ykc_record_ack
static const struct field f_record_ack[] = { TRADE(ST), U8("result", 16, ST, result, v01) };
#undef ST
#define ST struct evcs_ykc_balance_reply
static const struct field f_balance_reply[] = { PILE(0, ST), HEX("physical_card", 7, 8, ST, physical_card),
						U8("result", 15, ST, result, v02) };
#undef ST
#define ST struct evcs_ykc_balance_update
static const struct field f_balance_update[] = {
	PILE(0, ST), GUN(7, ST), HEX("physical_card", 8, 8, ST, physical_card),
	U32("balance_yuan", 16, ST, balance_yuan, 2),
};
#undef ST
#define ST struct evcs_ykc_card_sync_reply
static const struct field f_card_sync_reply[] = { PILE(0, ST), U8("result", 7, ST, result, v01),
						  U8("fail_reason", 8, ST, fail_reason, v02) };
#undef ST
#define ST struct evcs_ykc_card_sync
static const struct field f_card_sync[] = { PILE(0, ST), U8("count", 7, ST, count, NULL) };
#undef ST
#define ST struct evcs_ykc_card_clear_reply
static const struct field f_card_clear_reply[] = { PILE(0, ST) };
#undef ST
#define ST struct evcs_ykc_card_list
static const struct field f_card_list[] = { PILE(0, ST), U8("count", 7, ST, count, NULL) };
#undef ST
#define ST struct evcs_ykc_card_query_reply
static const struct field f_card_query_reply[] = { PILE(0, ST) };
#undef ST
#define ST struct evcs_ykc_work_params
static const struct field f_work_params[] = { PILE(0, ST), U8("disabled", 7, ST, disabled, v01),
					      U8("max_power_pct", 8, ST, max_power_pct, vpower) };
#undef ST
#define ST struct evcs_ykc_time_sync
static const struct field f_time_sync[] = { PILE(0, ST), CP56("time", 7, ST, time) };
#undef ST
#define ST struct evcs_ykc_ground_lock_status
static const struct field f_lock_status[] = {
	PILE(0, ST), GUN(7, ST), U8("lock_state", 8, ST, lock_state, vlock),
	U8("space_state", 9, ST, space_state, vspace), U8("battery_pct", 10, ST, battery_pct, vpct),
	U8("alarm", 11, ST, alarm, vlock), HEX("reserved", 12, 4, ST, reserved),
};
#undef ST
#define ST struct evcs_ykc_ground_lock_command
static const struct field f_lock_command[] = { PILE(0, ST), GUN(7, ST), U8("action", 8, ST, action, vaction),
					       HEX("reserved", 9, 4, ST, reserved) };
#undef ST
#define ST struct evcs_ykc_ground_lock_reply
static const struct field f_lock_reply[] = { PILE(0, ST), GUN(7, ST), U8("result", 8, ST, result, v01),
					     HEX("reserved", 9, 4, ST, reserved) };
#undef ST
#define ST struct evcs_ykc_reboot
static const struct field f_reboot[] = { PILE(0, ST), U8("control", 7, ST, control, v12) };
#undef ST
#define ST struct evcs_ykc_upgrade_reply
static const struct field f_upgrade_reply[] = { PILE(0, ST), U8("status", 7, ST, status, v03) };
#undef ST
#define ST struct evcs_ykc_upgrade
static const struct field f_upgrade[] = {
	PILE(0, ST),
	U8("pile_model", 7, ST, pile_model, v12),
	U16("power_kw", 8, ST, power_kw, 0),
	ASCII("server", 10, 16, ST, server),
	U16("port", 26, ST, port, 0),
	ASCII("user", 28, 16, ST, user),
	ASCII("password", 44, 16, ST, password),
	ASCII("path", 60, 32, ST, path),
	U8("control", 92, ST, control, v12),
	U8("timeout_min", 93, ST, timeout_min, NULL),
};
#undef ST
#define ST struct evcs_ykc_qr_prefix
static const struct field f_qr_prefix[] = { PILE(0, ST), U8("qr_format", 7, ST, qr_format, v01),
					    U8("prefix_len", 8, ST, prefix_len, NULL) };
#undef ST

/* Variable parts. */
enum var { V_FIXED, V_SYNC, V_CLEAR_REPLY, V_LIST8, V_QUERY_REPLY, V_QR };

struct ftype {
	uint8_t type;
	const char *name;
	bool v16;            /* 1.6 only (§1.7) */
	uint8_t var;
	uint16_t size;       /* fixed layout N, or the fixed part of a variable body */
	uint16_t essential;  /* §6.3: bytes a handler needs from a short body */
	uint8_t spec_max;    /* card lists: the spec's maximum count (0 = none) */
	const struct field *f;
	uint8_t nf;
};

#define T(ty, nm, v16, var, size, ess, mx, tab) \
	{ ty, nm, v16, var, size, ess, mx, tab, (uint8_t)(sizeof(tab) / sizeof(tab[0])) }
static const struct ftype types[] = {
	T(0x01, "login", false, V_FIXED, 30, 10, 0, f_login),
	T(0x02, "login_reply", false, V_FIXED, 8, 8, 0, f_pile_result01),
	T(0x03, "heartbeat", false, V_FIXED, 9, 8, 0, f_heartbeat),
	T(0x04, "heartbeat_reply", false, V_FIXED, 9, 9, 0, f_heartbeat_reply),
	T(0x05, "billing_model_verify", false, V_FIXED, 9, 9, 0, f_model_verify),
	T(0x06, "billing_model_verify_reply", false, V_FIXED, 10, 10, 0, f_model_verify),
	T(0x09, "billing_model_request", false, V_FIXED, 7, 7, 0, f_model_verify),
	T(0x0A, "billing_model_reply", false, V_FIXED, 90, 90, 0, f_tariff),
	T(0x12, "read_realtime", false, V_FIXED, 8, 8, 0, f_pile_gun),
	T(0x13, "realtime_data", false, V_FIXED, 60, 60, 0, f_realtime),
	T(0x15, "bms_handshake", false, V_FIXED, 73, 24, 0, f_bms_handshake),
	T(0x17, "bms_params", false, V_FIXED, 45, 24, 0, f_bms_params),
	T(0x19, "bms_charge_end", false, V_FIXED, 39, 24, 0, f_bms_charge_end),
	T(0x1B, "bms_error", false, V_FIXED, 32, 24, 0, f_bms_error),
	T(0x1D, "bms_abort", false, V_FIXED, 28, 24, 0, f_abort),
	T(0x21, "charger_abort", false, V_FIXED, 28, 24, 0, f_abort),
	T(0x23, "bms_demand", false, V_FIXED, 44, 24, 0, f_bms_demand),
	T(0x25, "bms_info", false, V_FIXED, 31, 24, 0, f_bms_info),
	T(0x31, "start_request", false, V_FIXED, 51, 51, 0, f_start_request),
	T(0x32, "start_auth", false, V_FIXED, 38, 38, 0, f_start_auth),
	T(0x33, "remote_start_reply", false, V_FIXED, 26, 26, 0, f_remote_start_reply),
	T(0x34, "remote_start", false, V_FIXED, 44, 44, 0, f_remote_start),
	T(0x35, "remote_stop_reply", false, V_FIXED, 10, 10, 0, f_remote_stop_reply),
	T(0x36, "remote_stop", false, V_FIXED, 8, 8, 0, f_pile_gun),
	T(0x3B, "transaction_record", false, V_FIXED, 158, 158, 0, f_record),
	T(0x40, "transaction_record_ack", false, V_FIXED, 17, 17, 0, f_record_ack),
	T(0x41, "balance_update_reply", false, V_FIXED, 16, 16, 0, f_balance_reply),
	T(0x42, "balance_update", false, V_FIXED, 20, 20, 0, f_balance_update),
	T(0x43, "card_sync_reply", false, V_FIXED, 9, 9, 0, f_card_sync_reply),
	T(0x44, "card_sync", false, V_SYNC, 8, 8, EVCS_YKC_SYNC_MAX, f_card_sync),
	T(0x45, "card_clear_reply", false, V_CLEAR_REPLY, 7, 7, 0, f_card_clear_reply),
	T(0x46, "card_clear", false, V_LIST8, 8, 8, EVCS_YKC_CLEAR_MAX, f_card_list),
	T(0x47, "card_query_reply", false, V_QUERY_REPLY, 7, 7, 0, f_card_query_reply),
	T(0x48, "card_query", false, V_LIST8, 8, 8, EVCS_YKC_QUERY_MAX, f_card_list),
	T(0x51, "work_params_reply", false, V_FIXED, 8, 8, 0, f_pile_result01),
	T(0x52, "work_params", false, V_FIXED, 9, 9, 0, f_work_params),
	T(0x55, "time_sync_reply", false, V_FIXED, 14, 14, 0, f_time_sync),
	T(0x56, "time_sync", false, V_FIXED, 14, 14, 0, f_time_sync),
	T(0x57, "tariff_set_reply", false, V_FIXED, 8, 8, 0, f_pile_result01),
	T(0x58, "tariff_set", false, V_FIXED, 90, 90, 0, f_tariff),
	T(0x61, "ground_lock_status", false, V_FIXED, 16, 16, 0, f_lock_status),
	T(0x62, "ground_lock_command", false, V_FIXED, 13, 13, 0, f_lock_command),
	T(0x63, "ground_lock_reply", false, V_FIXED, 13, 13, 0, f_lock_reply),
	T(0x91, "reboot_reply", false, V_FIXED, 8, 8, 0, f_pile_result01),
	T(0x92, "reboot", false, V_FIXED, 8, 8, 0, f_reboot),
	T(0x93, "upgrade_reply", false, V_FIXED, 8, 8, 0, f_upgrade_reply),
	T(0x94, "upgrade", false, V_FIXED, 94, 94, 0, f_upgrade),
	T(0xA1, "parallel_start_request", true, V_FIXED, 58, 58, 0, f_parallel_start_request),
	T(0xA2, "parallel_start_auth", true, V_FIXED, 44, 44, 0, f_parallel_start_auth),
	T(0xA3, "parallel_remote_start_reply", true, V_FIXED, 33, 33, 0, f_parallel_remote_start_reply),
	T(0xA4, "parallel_remote_start", true, V_FIXED, 50, 50, 0, f_parallel_remote_start),
	T(0xF0, "qr_prefix", true, V_QR, 9, 9, 0, f_qr_prefix),
	T(0xF1, "qr_prefix_reply", true, V_FIXED, 8, 8, 0, f_pile_result01),
};

/* Record sizes of the card lists. */
static size_t rec_size(uint8_t var)
{
	switch (var) {
	case V_SYNC: return 16;
	case V_CLEAR_REPLY: return 10;
	case V_LIST8: return 8;
	case V_QUERY_REPLY: return 9;
	default: return 0;
	}
}
static size_t rec_cap(uint8_t var)
{
	switch (var) {
	case V_SYNC: return EVCS_YKC_SYNC_MAX;
	case V_CLEAR_REPLY: return EVCS_YKC_CLEAR_REPLY_CAP;
	case V_LIST8: return EVCS_YKC_CARDS8_CAP;
	case V_QUERY_REPLY: return EVCS_YKC_QUERY_REPLY_CAP;
	default: return 0;
	}
}

static const struct ftype *find_type(uint8_t type, enum evcs_ykc_proto proto)
{
	/* Sorted by type; a linear scan of 53 bytes is cheaper than being clever. */
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (types[i].type == type)
			return (types[i].v16 && proto != EVCS_YKC_PROTO_16) ? NULL : &types[i];
		if (types[i].type > type)
			break;
	}
	return NULL;
}

const char *evcs_ykc_type_name(uint8_t type, enum evcs_ykc_proto proto)
{
	const struct ftype *t = find_type(type, proto);
	return t ? t->name : NULL;
}

int evcs_ykc_layout_size(uint8_t type)
{
	const struct ftype *t = find_type(type, EVCS_YKC_PROTO_16);
	return t ? t->size : -ENOENT;
}

int evcs_ykc_essential_size(uint8_t type)
{
	const struct ftype *t = find_type(type, EVCS_YKC_PROTO_16);
	return t ? t->essential : -ENOENT;
}

/* ---- warnings ---------------------------------------------------------- */

static void warn(struct evcs_ykc_warnings *w, enum evcs_ykc_warn_code code, const char *field,
		 uint64_t value)
{
	if (!w)
		return;
	if (w->n >= EVCS_YKC_MAX_WARNINGS) {
		w->lost++;
		return;
	}
	w->w[w->n].code = code;
	w->w[w->n].field = field;
	w->w[w->n].value = value;
	w->n++;
}

int evcs_ykc_warning_str(const struct evcs_ykc_warning *w, char *buf, size_t cap)
{
	const char *f = w->field ? w->field : "?";
	unsigned long long v = (unsigned long long)w->value;
	switch (w->code) {
	case EVCS_YKC_W_RANGE:
		return snprintf(buf, cap, "%s: value %llu (0x%llX) is outside the spec's range", f, v, v);
	case EVCS_YKC_W_BCD_HEX:
		return snprintf(buf, cap, "%s: non-decimal BCD nibble", f);
	case EVCS_YKC_W_CP56:
		return snprintf(buf, cap, "%s: invalid CP56Time2a date", f);
	case EVCS_YKC_W_ASCII_HIGH:
		return snprintf(buf, cap, "%s: byte 0x%02llX is not ASCII (shown as U+FFFD)", f, v);
	case EVCS_YKC_W_ASCII_NUL:
		return snprintf(buf, cap, "%s: NUL byte inside the text at offset %llu", f, v);
	case EVCS_YKC_W_COUNT_MAX:
		return snprintf(buf, cap, "%s: %llu cards is above the spec maximum", f, v);
	case EVCS_YKC_W_STOP_REASON:
		return snprintf(buf, cap, "%s: 0x%02llX is not in the stop-reason table", f, v);
	case EVCS_YKC_W_PROTO_VERSION:
		return snprintf(buf, cap, "%s: %llu is neither 15 (V1.5) nor 16 (V1.6)", f, v);
	}
	return snprintf(buf, cap, "%s: warning %d", f, (int)w->code);
}

/* ---- field decode/encode ------------------------------------------------ */

static uint64_t get_le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = n; i-- > 0;)
		v = (v << 8) | p[i];
	return v;
}

static void put_le(uint8_t *p, size_t n, uint64_t v)
{
	for (size_t i = 0; i < n; i++, v >>= 8)
		p[i] = (uint8_t)(v & 0xFF);
}

static bool cp56_zero(const uint8_t *b)
{
	for (int i = 0; i < 7; i++)
		if (b[i])
			return false;
	return true;
}

static bool cp56_valid(const struct evcs_ykc_cp56 *t)
{
	return t->ms <= 59999 && t->minute <= 59 && t->hour <= 23 && t->mday >= 1 && t->mday <= 31 &&
	       t->month >= 1 && t->month <= 12 && !(t->min_flags & 0x80);
}

static uint64_t read_uint(const struct field *f, const uint8_t *base)
{
	const uint8_t *p = base + f->mem;
	switch (f->kind) {
	case K_U8: return *p;
	case K_U16: { uint16_t v; memcpy(&v, p, 2); return v; }
	case K_U24:
	case K_U32: { uint32_t v; memcpy(&v, p, 4); return v; }
	case K_U40: { uint64_t v; memcpy(&v, p, 8); return v; }
	default: return 0;
	}
}

static void ascii_check(const char *field, const uint8_t *b, size_t len, struct evcs_ykc_warnings *w)
{
	size_t end = len;
	while (end > 0 && b[end - 1] == 0)
		end--;
	for (size_t i = 0; i < end; i++) {
		if (b[i] >= 0x80) {
			warn(w, EVCS_YKC_W_ASCII_HIGH, field, b[i]);
			break;
		}
	}
	/* A NUL inside the text cannot survive a C-string round trip: flag it. */
	for (size_t i = 0; i < end; i++) {
		if (b[i] == 0) {
			warn(w, EVCS_YKC_W_ASCII_NUL, field, i);
			break;
		}
	}
}

static void decode_field(const struct field *f, const uint8_t *body, uint8_t *base,
			 struct evcs_ykc_warnings *w)
{
	const uint8_t *p = body + f->off;
	uint8_t *m = base + f->mem;
	switch (f->kind) {
	case K_BCD:
		evcs_ykc_bcd_decode(p, f->len, (char *)m);
		if (f->number) {
			for (size_t i = 0; i < f->len; i++) {
				if ((p[i] >> 4) > 9 || (p[i] & 0x0F) > 9) {
					warn(w, EVCS_YKC_W_BCD_HEX, f->name, 0);
					break;
				}
			}
		}
		return;
	case K_U8: *m = *p; break;
	case K_U16: { uint16_t v = (uint16_t)get_le(p, 2); memcpy(m, &v, 2); break; }
	case K_U24:
	case K_U32: { uint32_t v = (uint32_t)get_le(p, f->len); memcpy(m, &v, 4); break; }
	case K_U40: { uint64_t v = get_le(p, 5); memcpy(m, &v, 8); break; }
	case K_TEMP: { int16_t v = (int16_t)(*p - 50); memcpy(m, &v, 2); return; }
	case K_HEX: memcpy(m, p, f->len); return;
	case K_ASCII:
		memcpy(m, p, f->len);
		m[f->len] = 0;
		ascii_check(f->name, p, f->len, w);
		return;
	case K_CP56: {
		struct evcs_ykc_cp56 t;
		evcs_ykc_cp56_decode(p, &t);
		memcpy(m, &t, sizeof(t));
		if (!cp56_zero(p) && !cp56_valid(&t))
			warn(w, EVCS_YKC_W_CP56, f->name, 0);
		return;
	}
	case K_SLOTS:
		memcpy(m, p, 48);
		for (size_t i = 0; i < 48; i++) {
			if (p[i] > 3) {
				warn(w, EVCS_YKC_W_RANGE, f->name, p[i]);
				break;
			}
		}
		return;
	}
	if (f->valid) {
		uint64_t v = read_uint(f, base);
		if (!f->valid(v))
			warn(w, (enum evcs_ykc_warn_code)f->warn, f->name, v);
	}
}

static int encode_field(const struct field *f, const uint8_t *base, uint8_t *body)
{
	uint8_t *p = body + f->off;
	const uint8_t *m = base + f->mem;
	switch (f->kind) {
	case K_BCD:
		return evcs_ykc_bcd_encode((const char *)m, p, f->len);
	case K_U8:
	case K_U16:
	case K_U24:
	case K_U32:
	case K_U40: {
		uint64_t v = read_uint(f, base);
		if (f->len < 8 && v >> (8 * f->len))
			return -ERANGE;
		put_le(p, f->len, v);
		return 0;
	}
	case K_TEMP: {
		int16_t v;
		memcpy(&v, m, 2);
		if (v < -50 || v > 205)
			return -ERANGE;
		*p = (uint8_t)(v + 50);
		return 0;
	}
	case K_HEX:
		memcpy(p, m, f->len);
		return 0;
	case K_ASCII: {
		size_t l = strnlen((const char *)m, (size_t)f->len + 1);
		if (l > f->len)
			return -ERANGE;
		memcpy(p, m, l);
		memset(p + l, 0, f->len - l);
		return 0;
	}
	case K_CP56: {
		struct evcs_ykc_cp56 t;
		memcpy(&t, m, sizeof(t));
		return evcs_ykc_cp56_encode(&t, p);
	}
	case K_SLOTS:
		/* A tariff slot outside 0-3 would bill at an undefined rate: refuse it. */
		for (size_t i = 0; i < 48; i++)
			if (m[i] > 3)
				return -ERANGE;
		memcpy(p, m, 48);
		return 0;
	}
	return -EINVAL;
}

/* ---- body decode --------------------------------------------------------- */

static void decode_fixed_part(const struct ftype *t, const uint8_t *body, size_t avail,
			      uint8_t *base, struct evcs_ykc_warnings *w)
{
	for (size_t i = 0; i < t->nf; i++)
		if ((size_t)t->f[i].off + t->f[i].len <= avail)
			decode_field(&t->f[i], body, base, w);
}

static void decode_record(uint8_t var, struct evcs_ykc_msg *m, size_t i, const uint8_t *r,
			  struct evcs_ykc_warnings *w)
{
	switch (var) {
	case V_SYNC:
		evcs_ykc_bcd_decode(r, 8, m->u.card_sync.cards[i].logical_card);
		memcpy(m->u.card_sync.cards[i].physical_card, r + 8, 8);
		break;
	case V_CLEAR_REPLY:
		memcpy(m->u.card_clear_reply.cards[i].physical_card, r, 8);
		m->u.card_clear_reply.cards[i].cleared = r[8];
		m->u.card_clear_reply.cards[i].fail_reason = r[9];
		if (r[8] > 1)
			warn(w, EVCS_YKC_W_RANGE, "cards", r[8]);
		/* §6.1: the spec's reason codes contradict; 0 none, 1 bad number, else log. */
		if (r[9] > 1)
			warn(w, EVCS_YKC_W_RANGE, "cards", r[9]);
		break;
	case V_LIST8:
		memcpy(m->u.card_list.cards[i], r, 8);
		break;
	case V_QUERY_REPLY:
		memcpy(m->u.card_query_reply.cards[i].physical_card, r, 8);
		m->u.card_query_reply.cards[i].exists = r[8];
		if (r[8] > 1)
			warn(w, EVCS_YKC_W_RANGE, "cards", r[8]);
		break;
	}
}

static void set_entries(struct evcs_ykc_msg *m, uint8_t var, uint8_t n)
{
	switch (var) {
	case V_SYNC: m->u.card_sync.n = n; break;
	case V_CLEAR_REPLY: m->u.card_clear_reply.n = n; break;
	case V_LIST8: m->u.card_list.n = n; break;
	case V_QUERY_REPLY: m->u.card_query_reply.n = n; break;
	}
}

static enum evcs_ykc_status decode_list(const struct ftype *t, const uint8_t *body, size_t n,
					struct evcs_ykc_msg *m, struct evcs_ykc_warnings *w)
{
	size_t base = t->size, rs = rec_size(t->var), cap = rec_cap(t->var);
	bool counted = t->var == V_SYNC || t->var == V_LIST8;
	if (counted && n >= base) {
		unsigned count = body[7];
		if (t->spec_max && count > t->spec_max)
			warn(w, EVCS_YKC_W_COUNT_MAX, "count", count);
	}
	if (n < base || (!counted && n < base + rs))
		return EVCS_YKC_BODY_SHORT;
	size_t entries = (n - base) / rs;
	if (entries > cap)
		entries = cap;
	for (size_t i = 0; i < entries; i++)
		decode_record(t->var, m, i, body + base + i * rs, w);
	set_entries(m, t->var, (uint8_t)entries);
	if ((n - base) % rs != 0)
		return EVCS_YKC_BODY_COUNT;
	if (counted && n != base + rs * body[7])
		return EVCS_YKC_BODY_COUNT;
	if ((n - base) / rs > cap)
		return EVCS_YKC_BODY_LONG;
	return EVCS_YKC_OK;
}

enum evcs_ykc_status evcs_ykc_decode_body(uint8_t type, const uint8_t *body, size_t n,
					  enum evcs_ykc_proto proto, struct evcs_ykc_msg *m,
					  struct evcs_ykc_warnings *w)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	if (w) {
		w->n = 0;
		w->lost = 0;
	}
	const struct ftype *t = find_type(type, proto);
	if (!t) {
		m->status = EVCS_YKC_UNKNOWN_TYPE;
		return m->status;
	}
	m->avail = (uint16_t)(n < 0xFFFF ? n : 0xFFFF);
	uint8_t *base = (uint8_t *)&m->u;
	size_t fixed = n < t->size ? n : t->size;
	decode_fixed_part(t, body, fixed, base, w);
	enum evcs_ykc_status st;
	switch (t->var) {
	case V_FIXED:
		st = n == t->size ? EVCS_YKC_OK : n > t->size ? EVCS_YKC_BODY_LONG : EVCS_YKC_BODY_SHORT;
		if (n > t->size)
			m->avail = t->size;
		break;
	case V_QR: {
		if (n < t->size) {
			st = EVCS_YKC_BODY_SHORT;
			break;
		}
		size_t pl = m->u.qr_prefix.prefix_len;
		if (pl > EVCS_YKC_QR_PREFIX_MAX || n < t->size + pl) {
			/* the prefix does not lie wholly inside the body: leave it out */
			st = EVCS_YKC_BODY_SHORT;
			break;
		}
		memcpy(m->u.qr_prefix.prefix, body + t->size, pl);
		m->u.qr_prefix.prefix[pl] = '\0';
		for (size_t i = 0; i < pl; i++) {
			if ((uint8_t)body[t->size + i] >= 0x80) {
				warn(w, EVCS_YKC_W_ASCII_HIGH, "prefix", body[t->size + i]);
				break;
			}
		}
		st = n == t->size + pl ? EVCS_YKC_OK : EVCS_YKC_BODY_LONG;
		break;
	}
	default:
		st = decode_list(t, body, n, m, w);
		break;
	}
	m->status = st;
	return st;
}

/* ---- body encode --------------------------------------------------------- */

int evcs_ykc_encode_body(const struct evcs_ykc_msg *m, uint8_t *out, size_t cap,
			 const char **bad_field)
{
	const char *dummy;
	if (!bad_field)
		bad_field = &dummy;
	*bad_field = NULL;
	const struct ftype *t = find_type(m->type, EVCS_YKC_PROTO_16);
	if (!t)
		return -ENOENT;
	size_t size = t->size, entries = 0;
	switch (t->var) {
	case V_SYNC:
		entries = m->u.card_sync.n;
		if (entries > EVCS_YKC_SYNC_MAX)
			goto bad_count;
		break;
	case V_CLEAR_REPLY:
		entries = m->u.card_clear_reply.n;
		if (entries < 1 || entries > EVCS_YKC_CLEAR_REPLY_CAP)
			goto bad_count;
		break;
	case V_LIST8:
		entries = m->u.card_list.n;
		if (entries > t->spec_max)
			goto bad_count;
		break;
	case V_QUERY_REPLY:
		entries = m->u.card_query_reply.n;
		if (entries < 1 || entries > EVCS_YKC_QUERY_REPLY_CAP)
			goto bad_count;
		break;
	case V_QR:
		if (m->u.qr_prefix.prefix_len > EVCS_YKC_QR_PREFIX_MAX) {
			*bad_field = "prefix_len";
			return -ERANGE;
		}
		size += m->u.qr_prefix.prefix_len;
		break;
	}
	size += entries * rec_size(t->var);
	if (size > EVCS_YKC_MAX_BODY)
		return -EMSGSIZE;
	if (cap < size)
		return -ENOSPC;
	const uint8_t *base = (const uint8_t *)&m->u;
	for (size_t i = 0; i < t->nf; i++) {
		/* shared tables (0x05/0x06/0x09) hold fields past a shorter layout */
		if ((size_t)t->f[i].off + t->f[i].len > t->size)
			continue;
		int rc = encode_field(&t->f[i], base, out);
		if (rc < 0) {
			*bad_field = t->f[i].name;
			return rc;
		}
	}
	uint8_t *r = out + t->size;
	for (size_t i = 0; i < entries; i++, r += rec_size(t->var)) {
		switch (t->var) {
		case V_SYNC:
			if (evcs_ykc_bcd_encode(m->u.card_sync.cards[i].logical_card, r, 8) < 0) {
				*bad_field = "cards";
				return -EINVAL;
			}
			memcpy(r + 8, m->u.card_sync.cards[i].physical_card, 8);
			break;
		case V_CLEAR_REPLY:
			memcpy(r, m->u.card_clear_reply.cards[i].physical_card, 8);
			r[8] = m->u.card_clear_reply.cards[i].cleared;
			r[9] = m->u.card_clear_reply.cards[i].fail_reason;
			break;
		case V_LIST8:
			memcpy(r, m->u.card_list.cards[i], 8);
			break;
		case V_QUERY_REPLY:
			memcpy(r, m->u.card_query_reply.cards[i].physical_card, 8);
			r[8] = m->u.card_query_reply.cards[i].exists;
			break;
		}
	}
	if (t->var == V_SYNC || t->var == V_LIST8)
		out[7] = (uint8_t)entries; /* the count byte always tells the truth */
	if (t->var == V_QR)
		memcpy(out + t->size, m->u.qr_prefix.prefix, m->u.qr_prefix.prefix_len);
	return (int)size;

bad_count:
	*bad_field = "cards";
	return -ERANGE;
}

int evcs_ykc_encode_frame(const struct evcs_ykc_msg *m, const uint8_t seq[2],
			  enum evcs_ykc_crc_order order, uint8_t *out, size_t cap,
			  const char **bad_field)
{
	if (cap < EVCS_YKC_OVERHEAD)
		return -ENOSPC;
	int n = evcs_ykc_encode_body(m, out + 6, cap - EVCS_YKC_OVERHEAD, bad_field);
	if (n < 0)
		return n;
	return evcs_ykc_frame_build(out, cap, seq, 0, m->type, out + 6, (size_t)n, order);
}

/* ---- presence and tolerance ---------------------------------------------- */

bool evcs_ykc_field_present(const struct evcs_ykc_msg *m, const char *name)
{
	const struct ftype *t = find_type(m->type, EVCS_YKC_PROTO_16);
	if (!t || m->status == EVCS_YKC_UNKNOWN_TYPE)
		return false;
	for (size_t i = 0; i < t->nf; i++)
		if (strcmp(t->f[i].name, name) == 0)
			return (size_t)t->f[i].off + t->f[i].len <= m->avail;
	if (t->var == V_QR && strcmp(name, "prefix") == 0)
		return (size_t)t->size + m->u.qr_prefix.prefix_len <= m->avail;
	if (t->var != V_FIXED && t->var != V_QR && strcmp(name, "cards") == 0)
		return m->avail >= t->size;
	return false;
}

void evcs_ykc_tolerance_default(struct evcs_ykc_tolerance *t)
{
	t->accept_long = true;
	t->accept_short = true;
	t->accept_count = true;
	t->nack_short_record = true;
}

enum evcs_ykc_verdict evcs_ykc_tolerate(const struct evcs_ykc_tolerance *t,
					const struct evcs_ykc_msg *m)
{
	switch (m->status) {
	case EVCS_YKC_OK:
		return EVCS_YKC_ACT;
	case EVCS_YKC_BODY_LONG:
		return t->accept_long ? EVCS_YKC_ACT_WARN : EVCS_YKC_DROP;
	case EVCS_YKC_BODY_COUNT:
		return t->accept_count ? EVCS_YKC_ACT_WARN : EVCS_YKC_DROP;
	case EVCS_YKC_BODY_SHORT: {
		/* §6.3: a short record never opens or closes a session; it is evidence. */
		if (m->type == 0x3B)
			return EVCS_YKC_QUARANTINE;
		int ess = evcs_ykc_essential_size(m->type);
		return (t->accept_short && ess >= 0 && m->avail >= (unsigned)ess) ? EVCS_YKC_ACT_WARN
										  : EVCS_YKC_DROP;
	}
	case EVCS_YKC_UNKNOWN_TYPE:
		break;
	}
	return EVCS_YKC_DROP;
}

/* ---- `fields` JSON (§7.2 value rules) ------------------------------------ */

/* Left-pad to at least d + 1 digits and put the point d places from the right. */
static void fmt_dec(char *buf, size_t cap, uint64_t v, unsigned d, bool neg)
{
	char digits[32];
	int len = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)v);
	char padded[40];
	int pad = (int)d + 1 - len;
	int k = 0;
	for (int i = 0; i < pad; i++)
		padded[k++] = '0';
	memcpy(padded + k, digits, (size_t)len);
	k += len;
	padded[k] = '\0';
	if (d == 0)
		snprintf(buf, cap, "%s%s", neg ? "-" : "", padded);
	else
		snprintf(buf, cap, "%s%.*s.%s", neg ? "-" : "", k - (int)d, padded, padded + k - (int)d);
}

static json_t *json_dec(uint64_t v, unsigned d)
{
	char buf[48];
	fmt_dec(buf, sizeof(buf), v, d, false);
	return json_string(buf);
}

/* BMS currents: A = raw * 0.1 - 400, i.e. (raw - 4000) tenths (§3.8). */
static json_t *json_current(uint16_t raw)
{
	char buf[48];
	int64_t x = (int64_t)raw - 4000;
	fmt_dec(buf, sizeof(buf), (uint64_t)(x < 0 ? -x : x), 1, x < 0);
	return json_string(buf);
}

static json_t *json_hex(const uint8_t *b, size_t n)
{
	char buf[2 * 256 + 1];
	evcs_ykc_bcd_decode(b, n, buf); /* same nibble rendering */
	return json_string(buf);
}

/* Text with bytes >= 0x80 as U+FFFD (§7.2); embedded NULs kept (json_stringn). */
static json_t *json_text(const uint8_t *b, size_t n)
{
	char buf[3 * 256 + 1];
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (b[i] >= 0x80) {
			buf[k++] = (char)0xEF;
			buf[k++] = (char)0xBF;
			buf[k++] = (char)0xBD;
		} else {
			buf[k++] = (char)b[i];
		}
	}
	return json_stringn(buf, k);
}

static json_t *json_field(const struct field *f, const uint8_t *base)
{
	const uint8_t *m = base + f->mem;
	switch (f->kind) {
	case K_BCD:
		return json_string((const char *)m);
	case K_U8:
	case K_U16:
	case K_U24:
	case K_U32:
	case K_U40: {
		uint64_t v = read_uint(f, base);
		return f->dec ? json_dec(v, f->dec) : json_integer((json_int_t)v);
	}
	case K_TEMP: {
		int16_t v;
		memcpy(&v, m, 2);
		return json_integer(v);
	}
	case K_HEX:
		return json_hex(m, f->len);
	case K_ASCII: {
		size_t end = f->len;
		while (end > 0 && m[end - 1] == 0)
			end--;
		return json_text(m, end);
	}
	case K_CP56: {
		struct evcs_ykc_cp56 t;
		char buf[48];
		memcpy(&t, m, sizeof(t));
		evcs_ykc_cp56_format(&t, buf, sizeof(buf));
		return json_string(buf);
	}
	case K_SLOTS: {
		json_t *a = json_array();
		for (size_t i = 0; i < 48; i++)
			json_array_append_new(a, json_integer(m[i]));
		return a;
	}
	}
	return json_null();
}

static bool have(const struct ftype *t, const char *name, size_t avail)
{
	for (size_t i = 0; i < t->nf; i++)
		if (strcmp(t->f[i].name, name) == 0)
			return (size_t)t->f[i].off + t->f[i].len <= avail;
	return false;
}

static void vin_text_field(json_t *o, const uint8_t *vin, bool reversed)
{
	char txt[18];
	evcs_ykc_vin_text(vin, reversed, txt);
	json_object_set_new(o, "vin_text", json_text((const uint8_t *)txt, strlen(txt)));
}

static void derived(json_t *o, const struct ftype *t, const struct evcs_ykc_msg *m, size_t avail)
{
	switch (t->type) {
	case 0x15:
		if (have(t, "vin", avail))
			vin_text_field(o, m->u.bms_handshake.vin, false);
		break;
	case 0x3B:
		if (have(t, "vin", avail))
			vin_text_field(o, m->u.record.vin, false);
		break;
	case 0x31:
	case 0xA1:
		if (have(t, "vin", avail))
			vin_text_field(o, m->u.start_request.vin, true);
		break;
	case 0x17:
		if (have(t, "max_current_raw", avail))
			json_object_set_new(o, "max_current_a", json_current(m->u.bms_params.max_current_raw));
		if (have(t, "out_i_max_raw", avail))
			json_object_set_new(o, "out_i_max_a", json_current(m->u.bms_params.out_i_max_raw));
		if (have(t, "out_i_min_raw", avail))
			json_object_set_new(o, "out_i_min_a", json_current(m->u.bms_params.out_i_min_raw));
		break;
	case 0x23:
		if (have(t, "bms_i_req_raw", avail))
			json_object_set_new(o, "bms_i_req_a", json_current(m->u.bms_demand.bms_i_req_raw));
		if (have(t, "bms_i_meas_raw", avail))
			json_object_set_new(o, "bms_i_meas_a", json_current(m->u.bms_demand.bms_i_meas_raw));
		if (have(t, "out_i_raw", avail))
			json_object_set_new(o, "out_i_a", json_current(m->u.bms_demand.out_i_raw));
		if (have(t, "cell_max_raw", avail)) {
			uint16_t raw = m->u.bms_demand.cell_max_raw;
			json_object_set_new(o, "cell_max_v", json_dec(raw & 0x0FFFu, 2));
			json_object_set_new(o, "cell_max_group", json_integer(raw >> 12));
		}
		break;
	}
}

static json_t *cards_json(const struct ftype *t, const struct evcs_ykc_msg *m)
{
	json_t *a = json_array();
	switch (t->var) {
	case V_SYNC:
		for (size_t i = 0; i < m->u.card_sync.n; i++)
			json_array_append_new(a, json_pack("[so]", m->u.card_sync.cards[i].logical_card,
							   json_hex(m->u.card_sync.cards[i].physical_card, 8)));
		break;
	case V_CLEAR_REPLY:
		for (size_t i = 0; i < m->u.card_clear_reply.n; i++)
			json_array_append_new(a, json_pack("[oii]",
							   json_hex(m->u.card_clear_reply.cards[i].physical_card, 8),
							   m->u.card_clear_reply.cards[i].cleared,
							   m->u.card_clear_reply.cards[i].fail_reason));
		break;
	case V_LIST8:
		for (size_t i = 0; i < m->u.card_list.n; i++)
			json_array_append_new(a, json_hex(m->u.card_list.cards[i], 8));
		break;
	case V_QUERY_REPLY:
		for (size_t i = 0; i < m->u.card_query_reply.n; i++)
			json_array_append_new(a, json_pack("[oi]",
							   json_hex(m->u.card_query_reply.cards[i].physical_card, 8),
							   m->u.card_query_reply.cards[i].exists));
		break;
	}
	return a;
}

json_t *evcs_ykc_json_fields(const struct evcs_ykc_msg *m)
{
	json_t *o = json_object();
	const struct ftype *t = find_type(m->type, EVCS_YKC_PROTO_16);
	if (!o || !t || m->status == EVCS_YKC_UNKNOWN_TYPE)
		return o;
	const uint8_t *base = (const uint8_t *)&m->u;
	size_t avail = m->avail;
	for (size_t i = 0; i < t->nf; i++)
		if ((size_t)t->f[i].off + t->f[i].len <= avail)
			json_object_set_new(o, t->f[i].name, json_field(&t->f[i], base));
	derived(o, t, m, avail);
	if (t->var == V_QR) {
		if (avail >= t->size && (size_t)t->size + m->u.qr_prefix.prefix_len <= avail)
			json_object_set_new(o, "prefix", json_text((const uint8_t *)m->u.qr_prefix.prefix,
								  m->u.qr_prefix.prefix_len));
	} else if (t->var != V_FIXED && avail >= t->size) {
		json_object_set_new(o, "cards", cards_json(t, m));
	}
	return o;
}

json_t *evcs_ykc_json_warnings(const struct evcs_ykc_warnings *w)
{
	if (!w || (w->n == 0 && w->lost == 0))
		return NULL;
	json_t *a = json_array();
	char buf[160];
	for (unsigned i = 0; i < w->n; i++) {
		evcs_ykc_warning_str(&w->w[i], buf, sizeof(buf));
		json_array_append_new(a, json_string(buf));
	}
	if (w->lost) {
		snprintf(buf, sizeof(buf), "%u more warnings not shown", w->lost);
		json_array_append_new(a, json_string(buf));
	}
	return a;
}
