/*
 * plugins/ykc/codec.h: YKC (云快充) 1.5/1.6 frame codec shared by the ykc plugin,
 * the simulator, `evcsctl ykc` and the tests. Reference: shared/docs/ykc.md
 * (section numbers below, "§2.5", refer to it).
 *
 * Contract
 * - Pure functions over caller memory: no globals, no locks, safe from any thread.
 * - Hot path (CRC, stream scanning, body decode/encode, frame build) never allocates.
 *   Frames found by the scanner borrow the caller's buffer; they are valid until the
 *   caller moves or frees it. Only the JSON functions (evcs_ykc_json_*) allocate; they
 *   return new jansson references that the caller must json_decref().
 * - Errors: int functions return >= 0 on success and a negative errno on failure:
 *   -EINVAL (malformed argument, e.g. a BCD string of the wrong length or with a
 *   non-hex character), -ERANGE (a value that does not fit its wire field, §3.2),
 *   -ENOSPC (output buffer too small), -EMSGSIZE (body larger than a frame can carry),
 *   -ENOENT (frame type not in §4.1 for the chosen protocol version).
 * - Structs hold wire values: money and energy as the wire integers (see the unit
 *   converters at the end), BCD as digit strings with leading zeros (nibbles A-F kept
 *   as upper case), opaque bytes as byte arrays in wire order, ASCII as NUL-terminated
 *   strings, temperatures in °C (raw - 50), CP56Time2a with its flag bits kept so a
 *   decoded frame re-encodes byte for byte (§8).
 */
#ifndef EVCS_YKC_CODEC_H
#define EVCS_YKC_CODEC_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define EVCS_YKC_START 0x68
#define EVCS_YKC_MIN_LEN 4      /* smallest legal length byte (§2.1) */
#define EVCS_YKC_OVERHEAD 8     /* 0x68, len, seq(2), enc, type, crc(2) */
#define EVCS_YKC_MAX_BODY 251   /* len 255 - 4 */
#define EVCS_YKC_MAX_FRAME 259  /* len 255 + 4 */
/* Scanner input never needs more than this many kept bytes plus one read. */
#define EVCS_YKC_MAX_PARTIAL (EVCS_YKC_MAX_FRAME + 4)

enum evcs_ykc_proto { EVCS_YKC_PROTO_15 = 15, EVCS_YKC_PROTO_16 = 16 };

/* Which CRC byte comes first on the wire (§2.4). "le" wins when both match. */
enum evcs_ykc_crc_order { EVCS_YKC_CRC_LE = 0, EVCS_YKC_CRC_BE = 1 };

/* ------------------------------------------------------------------------ */
/* CRC-16/MODBUS over seq..body (§2.4).                                      */

uint16_t evcs_ykc_crc16(const uint8_t *p, size_t n);
/* True when wire[0..1] equals crc16(covered) in either order; *order set ("le" first). */
bool evcs_ykc_crc_match(const uint8_t *covered, size_t n, const uint8_t wire[2],
			enum evcs_ykc_crc_order *order);

/* ------------------------------------------------------------------------ */
/* Stream scanning (§2.5), zero-copy.                                        */

/* A CRC-valid frame inside the scanned buffer. Pointers borrow that buffer. */
struct evcs_ykc_frame {
	size_t offset;          /* position of the 0x68 in the scanned buffer */
	size_t size;            /* bytes on the wire: len + 4 (len + 8 for len_compat) */
	const uint8_t *raw;     /* the frame's first byte (0x68) */
	uint8_t len;            /* the length byte as sent */
	uint8_t seq[2];         /* sequence bytes in wire order; echo them verbatim */
	uint8_t enc;            /* encryption flag; != 0 means drop (§2.3) */
	uint8_t type;
	const uint8_t *body;
	size_t body_len;        /* N */
	enum evcs_ykc_crc_order crc_order;
	bool len_compat;        /* matched only as "length byte = body length" (§6.2) */
};

/* Retry a failed candidate at len + 8 bytes: JCPP-built piles whose length byte
 * counts only the body (§6.2, §6.3). Off by default; per-pile compatibility flag. */
#define EVCS_YKC_SCAN_LEN_COMPAT 0x1u

struct evcs_ykc_scan {
	const uint8_t *buf;
	size_t len;
	size_t pos;      /* next byte to examine; when next() returns false: keep buf[pos..len) */
	size_t skipped;  /* bytes discarded so far in this buffer (garbage, rejected 0x68s) */
	unsigned flags;
};

void evcs_ykc_scan_init(struct evcs_ykc_scan *s, const uint8_t *buf, size_t len, unsigned flags);
/* Next CRC-valid frame (consumed), or false when only an incomplete candidate (or
 * nothing) remains. The remainder buf[pos..len) is empty or starts with 0x68 and
 * is shorter than a frame; move it to the front of the next read. Feeding the same
 * bytes in any chunking gives the same frames and skip counts. */
bool evcs_ykc_scan_next(struct evcs_ykc_scan *s, struct evcs_ykc_frame *f);
static inline size_t evcs_ykc_scan_keep(const struct evcs_ykc_scan *s) { return s->len - s->pos; }
/* Partial-frame timeout (§2.5): give up the kept candidate's 0x68 (counted as
 * skipped) so the next evcs_ykc_scan_next() rescans from the byte after it. */
void evcs_ykc_scan_skip_candidate(struct evcs_ykc_scan *s);

/* ------------------------------------------------------------------------ */
/* Building frames.                                                          */

/* Write 0x68, len, seq (verbatim), enc, type, body and the CRC in `order` into out.
 * body may point at out + 6 (encode-in-place). Returns the frame size (n + 8). */
int evcs_ykc_frame_build(uint8_t *out, size_t cap, const uint8_t seq[2], uint8_t enc,
			 uint8_t type, const uint8_t *body, size_t n, enum evcs_ykc_crc_order order);
/* Platform-originated frames: 16-bit counter per connection from 0, little-endian,
 * wrapping (§2.2). Answers copy the request's two bytes instead. */
static inline void evcs_ykc_seq_from_counter(uint16_t counter, uint8_t seq[2])
{
	seq[0] = (uint8_t)(counter & 0xFF);
	seq[1] = (uint8_t)(counter >> 8);
}

/* ------------------------------------------------------------------------ */
/* Field types.                                                              */

/* CP56Time2a (§3.3). Flag/reserved bits are kept in their wire positions so a
 * re-encode reproduces the input; evcs_ykc_cp56_from_tm leaves them clear. */
struct evcs_ykc_cp56 {
	uint16_t ms;        /* milliseconds within the minute (seconds * 1000 + ms) */
	uint8_t minute;     /* 0-59 (6 bits) */
	uint8_t hour;       /* 0-23 (5 bits) */
	uint8_t mday;       /* 1-31 (5 bits) */
	uint8_t wday;       /* 1-7, 1 = Monday; 0 = unused (3 bits) */
	uint8_t month;      /* 1-12 (4 bits) */
	uint8_t year;       /* year - 2000 (7 bits) */
	uint8_t min_flags;  /* byte 2 bits 6-7 (0x80 = IV) */
	uint8_t hour_flags; /* byte 3 bits 5-7 (0x80 = SU) */
	uint8_t mon_flags;  /* byte 5 bits 4-7 */
	uint8_t year_flags; /* byte 6 bit 7 */
};

void evcs_ykc_cp56_decode(const uint8_t b[7], struct evcs_ykc_cp56 *t);
int evcs_ykc_cp56_encode(const struct evcs_ykc_cp56 *t, uint8_t b[7]); /* -ERANGE: bits don't fit */
/* Broken-down local time (caller picks the zone, default Asia/Shanghai §3.3). Sets
 * the day of week from tm_wday; flags clear. -ERANGE outside 2000-2127. */
int evcs_ykc_cp56_from_tm(const struct tm *tm, unsigned ms, struct evcs_ykc_cp56 *t);
/* Fills tm fields (tm_isdst = -1) and *ms; no calendar check. */
void evcs_ykc_cp56_to_tm(const struct evcs_ykc_cp56 *t, struct tm *tm, unsigned *ms);
/* "YYYY-MM-DDTHH:MM:SS[.mmm]" (§7.2); buf >= 32 bytes. */
void evcs_ykc_cp56_format(const struct evcs_ykc_cp56 *t, char *buf, size_t cap);

/* BCD: 2 characters per byte, high nibble first, A-F for non-decimal nibbles. */
void evcs_ykc_bcd_decode(const uint8_t *b, size_t nbytes, char *out /* 2n + 1 */);
/* Needs exactly 2 * nbytes hex characters (either case): -EINVAL otherwise. */
int evcs_ykc_bcd_encode(const char *s, uint8_t *b, size_t nbytes);

/* VIN text (§3.4): NULs dropped; reversed = true for 0x31/0xA1 where the pile sends it
 * reversed. out >= 18 bytes. */
void evcs_ykc_vin_text(const uint8_t vin[17], bool reversed, char out[18]);

/* Trade number (§3.1): pile(14) + gun(2) + yyMMddHHmmss + 4-digit counter (the
 * caller's per-gun, per-second counter, 0-9999). out >= 33 bytes. */
int evcs_ykc_trade_no(char out[33], const char *pile, const char *gun, const struct tm *local,
		      unsigned counter);

/* ------------------------------------------------------------------------ */
/* Per-frame structs (§4). Member names are the canonical §4 names.          */
/* Money: *_rate, *_price = 0.00001 yuan; *_amount*, amount_yuan = 0.0001 yuan;
 * balance_yuan = 0.01 yuan. Energy *_kwh = 0.0001 kWh (0x19 out_kwh and 0x17
 * rated_kwh: 0.1 kWh). Voltages 0.1 V unless noted, currents 0.1 A.           */

#define EVCS_YKC_PILE_LEN 15  /* 14 digits + NUL */
#define EVCS_YKC_GUN_LEN 3
#define EVCS_YKC_TRADE_LEN 33

struct evcs_ykc_login { /* 0x01 */
	char pile[15];
	uint8_t pile_type, gun_count, protocol_version;
	char program_version[9];
	uint8_t network;
	char sim[21];
	uint8_t carrier;
};
/* 0x02 login_reply, 0x51, 0x57, 0x91, 0xF1 (all "pile + result") */
struct evcs_ykc_pile_result {
	char pile[15];
	uint8_t result;
};
struct evcs_ykc_heartbeat { /* 0x03 */
	char pile[15], gun[3];
	uint8_t gun_state;
};
struct evcs_ykc_heartbeat_reply { /* 0x04 */
	char pile[15], gun[3];
	uint8_t ack; /* always 0 */
};
struct evcs_ykc_model_verify { /* 0x05, 0x06 (result only in 0x06), 0x09 (pile only) */
	char pile[15];
	char model[5];
	uint8_t result;
};
struct evcs_ykc_tariff { /* 0x0A billing_model_reply, 0x58 tariff_set */
	char pile[15];
	char model[5];
	uint32_t sharp_elec_rate, sharp_service_rate, peak_elec_rate, peak_service_rate;
	uint32_t flat_elec_rate, flat_service_rate, valley_elec_rate, valley_service_rate;
	uint8_t loss_ratio;
	uint8_t slots[48]; /* 0 sharp, 1 peak, 2 flat, 3 valley per half hour from 00:00 */
};
struct evcs_ykc_pile_gun { /* 0x12 read_realtime, 0x36 remote_stop */
	char pile[15];
	char gun[3];
};
struct evcs_ykc_realtime { /* 0x13 */
	char trade_no[33], pile[15], gun[3];
	uint8_t status, gun_returned, plugged;
	uint16_t voltage_v, current_a;  /* 0.1 V, 0.1 A */
	int16_t gun_temp_c;
	uint8_t gun_line_code[8];
	uint8_t soc;
	int16_t batt_max_temp_c;
	uint16_t charged_min, remaining_min;
	uint32_t kwh, loss_kwh;         /* 0.0001 kWh */
	uint32_t amount_yuan;           /* 0.0001 yuan */
	uint16_t hw_fault;
};
struct evcs_ykc_bms_handshake { /* 0x15 */
	char trade_no[33], pile[15], gun[3];
	uint8_t bms_proto[3];
	uint8_t battery_type;
	uint16_t rated_ah, rated_v;     /* 0.1 Ah, 0.1 V */
	uint8_t maker[4], pack_no[4];
	uint8_t mfg_year, mfg_month, mfg_day;
	uint32_t cycles;                /* u24 */
	uint8_t ownership, reserved;
	uint8_t vin[17];                /* normal order */
	uint8_t bms_sw[8];
};
struct evcs_ykc_bms_params { /* 0x17 */
	char trade_no[33], pile[15], gun[3];
	uint16_t cell_max_v;            /* 0.01 V */
	uint16_t max_current_raw;       /* A = raw * 0.1 - 400 */
	uint16_t rated_kwh;             /* 0.1 kWh */
	uint16_t max_total_v;
	int16_t max_temp_c;
	uint16_t soc_permille;
	uint16_t batt_v, out_v_max, out_v_min;
	uint16_t out_i_max_raw, out_i_min_raw;
};
struct evcs_ykc_bms_charge_end { /* 0x19 */
	char trade_no[33], pile[15], gun[3];
	uint8_t end_soc;
	uint16_t cell_min_v, cell_max_v; /* 0.01 V */
	int16_t temp_min_c, temp_max_c;
	uint16_t minutes;
	uint16_t out_kwh;                /* 0.1 kWh */
	uint32_t charger_no;
};
struct evcs_ykc_bms_error { /* 0x1B */
	char trade_no[33], pile[15], gun[3];
	uint8_t error_bits[8];
};
struct evcs_ykc_abort { /* 0x1D bms_abort, 0x21 charger_abort */
	char trade_no[33], pile[15], gun[3];
	uint8_t reason;
	uint16_t fault;
	uint8_t error;
};
struct evcs_ykc_bms_demand { /* 0x23 */
	char trade_no[33], pile[15], gun[3];
	uint16_t bms_v_req, bms_i_req_raw;
	uint8_t mode;
	uint16_t bms_v_meas, bms_i_meas_raw, cell_max_raw;
	uint8_t soc;
	uint16_t remain_min, out_v, out_i_raw, minutes;
};
struct evcs_ykc_bms_info { /* 0x25 */
	char trade_no[33], pile[15], gun[3];
	uint8_t cell_max_no;
	int16_t temp_max_c;
	uint8_t temp_max_point;
	int16_t temp_min_c;
	uint8_t temp_min_point;
	uint8_t flags[2];
};
struct evcs_ykc_start_request { /* 0x31; 0xA1 adds the parallel_* members */
	char pile[15], gun[3];
	uint8_t start_mode, need_password;
	uint8_t card[8];
	uint8_t password_md5[16];
	uint8_t vin[17];                /* REVERSED on the wire; evcs_ykc_vin_text(.., true, ..) */
	uint8_t parallel_role;
	char parallel_no[13];
};
struct evcs_ykc_start_auth { /* 0x32; 0xA2 adds parallel_no */
	char trade_no[33], pile[15], gun[3];
	char logical_card[17];
	uint32_t balance_yuan;          /* 0.01 yuan */
	uint8_t auth_ok, fail_reason;
	char parallel_no[13];
};
struct evcs_ykc_remote_start_reply { /* 0x33; 0xA3 adds the parallel_* members */
	char trade_no[33], pile[15], gun[3];
	uint8_t result, fail_reason;
	uint8_t parallel_role;
	char parallel_no[13];
};
struct evcs_ykc_remote_start { /* 0x34; 0xA4 adds parallel_no */
	char trade_no[33], pile[15], gun[3];
	char logical_card[17];
	uint8_t physical_card[8];
	uint32_t balance_yuan;          /* 0.01 yuan */
	char parallel_no[13];
};
struct evcs_ykc_remote_stop_reply { /* 0x35 */
	char pile[15], gun[3];
	uint8_t result, fail_reason;
};
struct evcs_ykc_record { /* 0x3B */
	char trade_no[33], pile[15], gun[3];
	struct evcs_ykc_cp56 start, end;
	uint32_t sharp_price, sharp_kwh, sharp_loss_kwh, sharp_amount;
	uint32_t peak_price, peak_kwh, peak_loss_kwh, peak_amount;
	uint32_t flat_price, flat_kwh, flat_loss_kwh, flat_amount;
	uint32_t valley_price, valley_kwh, valley_loss_kwh, valley_amount;
	uint64_t meter_start_kwh, meter_stop_kwh; /* u40, 0.0001 kWh */
	uint32_t total_kwh, total_loss_kwh, total_amount_yuan;
	uint8_t vin[17];                /* normal order */
	uint8_t trade_flag;
	struct evcs_ykc_cp56 trade_time;
	uint8_t stop_reason;
	uint8_t physical_card[8];
};
struct evcs_ykc_record_ack { /* 0x40 */
	char trade_no[33];
	uint8_t result;
};
struct evcs_ykc_balance_reply { /* 0x41 */
	char pile[15];
	uint8_t physical_card[8];
	uint8_t result;
};
struct evcs_ykc_balance_update { /* 0x42 */
	char pile[15], gun[3];
	uint8_t physical_card[8];
	uint32_t balance_yuan;          /* 0.01 yuan */
};
struct evcs_ykc_card_sync_reply { /* 0x43 */
	char pile[15];
	uint8_t result, fail_reason;
};

/* Card lists. `n` entries are valid; `count` is the wire count byte (decode only:
 * the encoder writes n). Array sizes are what a 255-length frame can hold. */
#define EVCS_YKC_SYNC_MAX 15        /* 0x44, spec maximum and frame capacity */
#define EVCS_YKC_CLEAR_MAX 24       /* 0x46 spec maximum */
#define EVCS_YKC_QUERY_MAX 26       /* 0x48 spec maximum */
#define EVCS_YKC_CARDS8_CAP 30      /* 0x46/0x48 frame capacity */
#define EVCS_YKC_CLEAR_REPLY_CAP 24 /* 0x45 frame capacity */
#define EVCS_YKC_QUERY_REPLY_CAP 27 /* 0x47 frame capacity */
struct evcs_ykc_card_sync { /* 0x44 */
	char pile[15];
	uint8_t count, n;
	struct {
		char logical_card[17];
		uint8_t physical_card[8];
	} cards[EVCS_YKC_SYNC_MAX];
};
struct evcs_ykc_card_clear_reply { /* 0x45 */
	char pile[15];
	uint8_t n;
	struct {
		uint8_t physical_card[8];
		uint8_t cleared, fail_reason;
	} cards[EVCS_YKC_CLEAR_REPLY_CAP];
};
struct evcs_ykc_card_list { /* 0x46 card_clear, 0x48 card_query */
	char pile[15];
	uint8_t count, n;
	uint8_t cards[EVCS_YKC_CARDS8_CAP][8];
};
struct evcs_ykc_card_query_reply { /* 0x47 */
	char pile[15];
	uint8_t n;
	struct {
		uint8_t physical_card[8];
		uint8_t exists;
	} cards[EVCS_YKC_QUERY_REPLY_CAP];
};
struct evcs_ykc_work_params { /* 0x52 */
	char pile[15];
	uint8_t disabled, max_power_pct;
};
struct evcs_ykc_time_sync { /* 0x55, 0x56 */
	char pile[15];
	struct evcs_ykc_cp56 time;
};
struct evcs_ykc_ground_lock_status { /* 0x61 */
	char pile[15], gun[3];
	uint8_t lock_state, space_state, battery_pct, alarm;
	uint8_t reserved[4];
};
struct evcs_ykc_ground_lock_command { /* 0x62 */
	char pile[15], gun[3];
	uint8_t action; /* 0x55 raise, 0xFF lower */
	uint8_t reserved[4];
};
struct evcs_ykc_ground_lock_reply { /* 0x63 */
	char pile[15], gun[3];
	uint8_t result;
	uint8_t reserved[4];
};
struct evcs_ykc_reboot { /* 0x92 */
	char pile[15];
	uint8_t control;
};
struct evcs_ykc_upgrade_reply { /* 0x93 */
	char pile[15];
	uint8_t status;
};
struct evcs_ykc_upgrade { /* 0x94 */
	char pile[15];
	uint8_t pile_model;
	uint16_t power_kw;
	char server[17];
	uint16_t port;
	char user[17], password[17], path[33];
	uint8_t control, timeout_min;
};
#define EVCS_YKC_QR_PREFIX_MAX 242
struct evcs_ykc_qr_prefix { /* 0xF0 */
	char pile[15];
	uint8_t qr_format;
	uint8_t prefix_len;
	char prefix[EVCS_YKC_QR_PREFIX_MAX + 1]; /* prefix_len bytes, then NUL; may hold NULs */
};

/* Body decode outcome; everything but OK is `bad_body_length` in §7.3 terms. The
 * server applies §6.3 to it with evcs_ykc_tolerate(). */
enum evcs_ykc_status {
	EVCS_YKC_OK = 0,
	EVCS_YKC_BODY_LONG,     /* layout fully decoded, surplus ignored */
	EVCS_YKC_BODY_SHORT,    /* only fields wholly inside the body are set (see avail) */
	EVCS_YKC_BODY_COUNT,    /* card list: count/entries disagree; whole entries decoded */
	EVCS_YKC_UNKNOWN_TYPE,  /* nothing decoded */
};

/* Decoded (or to-be-encoded) body. Set `type` and the matching union member to
 * encode; zero-initialise first so unused bytes (reserved, padding) are zero. */
struct evcs_ykc_msg {
	uint8_t type;
	enum evcs_ykc_status status; /* decode only */
	uint16_t avail;              /* decode only: body bytes the layout could use */
	union {
		struct evcs_ykc_login login;                    /* 0x01 */
		struct evcs_ykc_pile_result pile_result;        /* 0x02 0x51 0x57 0x91 0xF1 */
		struct evcs_ykc_heartbeat heartbeat;            /* 0x03 */
		struct evcs_ykc_heartbeat_reply heartbeat_reply; /* 0x04 */
		struct evcs_ykc_model_verify model;             /* 0x05 0x06 0x09 */
		struct evcs_ykc_tariff tariff;                  /* 0x0A 0x58 */
		struct evcs_ykc_pile_gun pile_gun;              /* 0x12 0x36 */
		struct evcs_ykc_realtime realtime;              /* 0x13 */
		struct evcs_ykc_bms_handshake bms_handshake;    /* 0x15 */
		struct evcs_ykc_bms_params bms_params;          /* 0x17 */
		struct evcs_ykc_bms_charge_end bms_charge_end;  /* 0x19 */
		struct evcs_ykc_bms_error bms_error;            /* 0x1B */
		struct evcs_ykc_abort abort_;                   /* 0x1D 0x21 */
		struct evcs_ykc_bms_demand bms_demand;          /* 0x23 */
		struct evcs_ykc_bms_info bms_info;              /* 0x25 */
		struct evcs_ykc_start_request start_request;    /* 0x31 0xA1 */
		struct evcs_ykc_start_auth start_auth;          /* 0x32 0xA2 */
		struct evcs_ykc_remote_start_reply remote_start_reply; /* 0x33 0xA3 */
		struct evcs_ykc_remote_start remote_start;      /* 0x34 0xA4 */
		struct evcs_ykc_remote_stop_reply remote_stop_reply; /* 0x35 */
		struct evcs_ykc_record record;                  /* 0x3B */
		struct evcs_ykc_record_ack record_ack;          /* 0x40 */
		struct evcs_ykc_balance_reply balance_reply;    /* 0x41 */
		struct evcs_ykc_balance_update balance_update;  /* 0x42 */
		struct evcs_ykc_card_sync_reply card_sync_reply; /* 0x43 */
		struct evcs_ykc_card_sync card_sync;            /* 0x44 */
		struct evcs_ykc_card_clear_reply card_clear_reply; /* 0x45 */
		struct evcs_ykc_card_list card_list;            /* 0x46 0x48 */
		struct evcs_ykc_card_query_reply card_query_reply; /* 0x47 */
		struct evcs_ykc_work_params work_params;        /* 0x52 */
		struct evcs_ykc_time_sync time_sync;            /* 0x55 0x56 */
		struct evcs_ykc_ground_lock_status ground_lock_status;   /* 0x61 */
		struct evcs_ykc_ground_lock_command ground_lock_command; /* 0x62 */
		struct evcs_ykc_ground_lock_reply ground_lock_reply;     /* 0x63 */
		struct evcs_ykc_reboot reboot;                  /* 0x92 */
		struct evcs_ykc_upgrade_reply upgrade_reply;    /* 0x93 */
		struct evcs_ykc_upgrade upgrade;                /* 0x94 */
		struct evcs_ykc_qr_prefix qr_prefix;            /* 0xF0 */
	} u;
};

/* Warnings (§7.2): values a strict reader flags but that never make a frame bad. */
enum evcs_ykc_warn_code {
	EVCS_YKC_W_RANGE = 1,     /* enumeration/value outside the spec's range */
	EVCS_YKC_W_BCD_HEX,       /* non-decimal nibble in pile/gun/trade number */
	EVCS_YKC_W_CP56,          /* invalid CP56Time2a date (all-zero bytes exempt) */
	EVCS_YKC_W_ASCII_HIGH,    /* ASCII byte >= 0x80 (rendered as U+FFFD) */
	EVCS_YKC_W_ASCII_NUL,     /* NUL before the end of an ASCII field's text */
	EVCS_YKC_W_COUNT_MAX,     /* card count above the spec maximum */
	EVCS_YKC_W_STOP_REASON,   /* 0x3B stop_reason not in §5 */
	EVCS_YKC_W_PROTO_VERSION, /* login protocol_version neither 15 nor 16 */
};
struct evcs_ykc_warning {
	enum evcs_ykc_warn_code code;
	const char *field; /* canonical name, static storage */
	uint64_t value;
};
#define EVCS_YKC_MAX_WARNINGS 32
struct evcs_ykc_warnings {
	unsigned n;
	unsigned lost; /* warnings beyond the array */
	struct evcs_ykc_warning w[EVCS_YKC_MAX_WARNINGS];
};
/* Human-readable text of one warning (as printed in `warnings`). Returns snprintf's value. */
int evcs_ykc_warning_str(const struct evcs_ykc_warning *w, char *buf, size_t cap);

/* ------------------------------------------------------------------------ */
/* Type catalogue and body codec.                                           */

/* §4.1 name ("heartbeat"), or NULL when the type is unknown for proto. */
const char *evcs_ykc_type_name(uint8_t type, enum evcs_ykc_proto proto);
/* Odd types come from the pile (§1.1). */
static inline bool evcs_ykc_from_pile(uint8_t type) { return (type & 1) != 0; }
/* Layout size N (fixed types) or the fixed part (card lists, 0xF0); -ENOENT if unknown. */
int evcs_ykc_layout_size(uint8_t type);
/* True if `name` is a field of m's type lying wholly inside the decoded bytes. */
bool evcs_ykc_field_present(const struct evcs_ykc_msg *m, const char *name);

/* Decode a body. m is fully overwritten; w (may be NULL) is reset then filled.
 * Returns m->status. Never allocates; any input is safe. */
enum evcs_ykc_status evcs_ykc_decode_body(uint8_t type, const uint8_t *body, size_t n,
					  enum evcs_ykc_proto proto, struct evcs_ykc_msg *m,
					  struct evcs_ykc_warnings *w);
static inline enum evcs_ykc_status evcs_ykc_decode_frame(const struct evcs_ykc_frame *f,
							 enum evcs_ykc_proto proto,
							 struct evcs_ykc_msg *m,
							 struct evcs_ykc_warnings *w)
{
	return evcs_ykc_decode_body(f->type, f->body, f->body_len, proto, m, w);
}
/* Encode m's body into out. Returns N, or a negative errno; *bad_field (may be NULL)
 * names the offending field. Any type in §4 is accepted regardless of version. */
int evcs_ykc_encode_body(const struct evcs_ykc_msg *m, uint8_t *out, size_t cap,
			 const char **bad_field);
/* encode_body + frame_build, enc = 0. Returns the frame size or a negative errno. */
int evcs_ykc_encode_frame(const struct evcs_ykc_msg *m, const uint8_t seq[2],
			  enum evcs_ykc_crc_order order, uint8_t *out, size_t cap,
			  const char **bad_field);

/* ------------------------------------------------------------------------ */
/* Server tolerance (§6.3). The decoder is strict; this is the lenient policy.  */
/* Real piles and platforms differ from the spec (§6.2): JCPP-built stacks send
 * 0x19 with 40 bytes, 0x25 with 45, 0x92 with 11 (longer), 0x32 with 36 (shorter),
 * card counts as 4 bytes or before the pile number, and length bytes that count
 * only the body (see EVCS_YKC_SCAN_LEN_COMPAT). Each deviation class can be
 * switched off per deployment or per pile, because a pile copying those bugs would
 * otherwise be cut off; defaults follow §6.3.                                   */

struct evcs_ykc_tolerance {
	bool accept_long;      /* act on bodies longer than the layout (default true) */
	bool accept_short;     /* act on short bodies holding the essential fields (default true) */
	bool accept_count;     /* act on card lists whose count disagrees (default true) */
	bool nack_short_record; /* answer a short 0x3B with 0x40 result 1 (default true) */
};
void evcs_ykc_tolerance_default(struct evcs_ykc_tolerance *t);
enum evcs_ykc_verdict {
	EVCS_YKC_ACT = 0,      /* clean: handle normally */
	EVCS_YKC_ACT_WARN,     /* tolerated deviation: handle, warn once per pile and type */
	EVCS_YKC_DROP,         /* log and drop (unknown type, essentials missing) */
	EVCS_YKC_QUARANTINE,   /* short 0x3B: store raw durably, alarm, maybe 0x40 result 1 */
};
/* Version to decode a session's frames with (§1.7, §6.3): 1.6 when the listener is
 * 1.6, the pile announced 16 in its login, or the per-pile compatibility flag is set. */
static inline enum evcs_ykc_proto evcs_ykc_session_proto(enum evcs_ykc_proto listener,
							  uint8_t announced, bool compat_v16)
{
	return (listener == EVCS_YKC_PROTO_16 || announced == 16 || compat_v16) ? EVCS_YKC_PROTO_16
										: EVCS_YKC_PROTO_15;
}
/* Bytes from the body start that a handler needs before it may act on a short
 * body (pile+gun for 0x03, the whole layout for 0x3B, ...); -ENOENT if unknown. */
int evcs_ykc_essential_size(uint8_t type);
enum evcs_ykc_verdict evcs_ykc_tolerate(const struct evcs_ykc_tolerance *t,
					const struct evcs_ykc_msg *m);

/* ------------------------------------------------------------------------ */
/* Units: core money = int64 0.00001 yuan, core energy = int64 0.0001 kWh.   */

static inline int64_t evcs_ykc_rate_to_money(uint32_t rate) { return (int64_t)rate; }
static inline int64_t evcs_ykc_amount_to_money(uint32_t amount) { return (int64_t)amount * 10; }
static inline int64_t evcs_ykc_balance_to_money(uint32_t bal) { return (int64_t)bal * 1000; }
static inline int64_t evcs_ykc_energy_to_core(uint64_t e) { return (int64_t)e; }
/* Core -> wire. Rounding is toward zero (a pile is never told more than the
 * account holds); negative or too large values are refused with -ERANGE. */
static inline int evcs_ykc_rate_from_money(int64_t money, uint32_t *out)
{
	if (money < 0 || money > (int64_t)UINT32_MAX)
		return -ERANGE;
	*out = (uint32_t)money;
	return 0;
}
static inline int evcs_ykc_amount_from_money(int64_t money, uint32_t *out)
{
	if (money < 0 || money / 10 > (int64_t)UINT32_MAX)
		return -ERANGE;
	*out = (uint32_t)(money / 10);
	return 0;
}
static inline int evcs_ykc_balance_from_money(int64_t money, uint32_t *out)
{
	if (money < 0 || money / 1000 > (int64_t)UINT32_MAX)
		return -ERANGE;
	*out = (uint32_t)(money / 1000);
	return 0;
}
static inline int evcs_ykc_energy_from_core(int64_t e, uint32_t *out)
{
	if (e < 0 || e > (int64_t)UINT32_MAX)
		return -ERANGE;
	*out = (uint32_t)e;
	return 0;
}
/* Meter readings in 0x3B are 40-bit. */
static inline int evcs_ykc_meter_from_core(int64_t e, uint64_t *out)
{
	if (e < 0 || e > (int64_t)0xFFFFFFFFFFll)
		return -ERANGE;
	*out = (uint64_t)e;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* JSON (§7), jansson. Allocates; for tooling, logs and hook payloads.       */

struct json_t;
/* §7.2/§7.3 object for n input bytes taken as one frame (the n-bytes rule).
 * *error_code (may be NULL) gets the static `error` string or NULL when good. */
struct json_t *evcs_ykc_json_decode(const uint8_t *buf, size_t n, enum evcs_ykc_proto proto,
				    const char **error_code);
/* §7.4 stream object for buf split in one pass (no partial-frame timeout). */
struct json_t *evcs_ykc_json_split(const uint8_t *buf, size_t n, enum evcs_ykc_proto proto);
/* The `fields` object of a decoded message (only fields inside m->avail). */
struct json_t *evcs_ykc_json_fields(const struct evcs_ykc_msg *m);
/* Array of warning strings, or NULL when w is empty. */
struct json_t *evcs_ykc_json_warnings(const struct evcs_ykc_warnings *w);

/* `evcsctl ykc ...`: argv[0] = "ykc", argv[1] = decode | split. Returns the exit status. */
int evcs_ykc_cli_main(int argc, char **argv);

#endif
