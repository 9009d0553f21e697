/*
 * cec_proto.h: T/CEC 102 part 4 transport layer: AES/Base64 data encryption,
 * HMAC-MD5 signatures, request/response envelopes, Ret codes, access tokens,
 * TimeStamp/Seq generation, per-partner protocol profiles, and the exact decimal
 * and tolerant-key JSON helpers that cec_model.h builds on.
 * Reference: /work/shared/docs/cec.md (section numbers below are that file's).
 *
 * Contract
 * - No daemon dependencies: OpenSSL, jansson and libc (pthreads for the token
 *   store) only. Nothing here logs; every failure is returned as a Ret code plus a
 *   human-readable message in a cec_status_t that the caller logs once.
 * - Memory: functions returning char * or json_t * hand ownership to the caller
 *   (free() / json_decref()); NULL means failure. Pointers inside cec_keys_t,
 *   cec_partner_t and profiles are borrowed and must outlive the call.
 * - Threading: everything is reentrant except cec_stamp_t (one per sending
 *   thread or under the caller's lock). cec_token_store_t is internally locked.
 * - Ret codes (§2.3): bad input never yields 500; 500 (CEC_RET_SYSTEM) means an
 *   internal failure (allocation, OpenSSL, a broken partner configuration, a
 *   failing lookup callback).
 */
#ifndef EVCS_CEC_PROTO_H
#define EVCS_CEC_PROTO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ---- Ret codes (§2.3, ORISE HlhtRet.java) ---- */
enum cec_ret {
	CEC_RET_BUSY = -1,     /* system busy, retry later */
	CEC_RET_OK = 0,        /* Data holds the business reply */
	CEC_RET_SIG = 4001,    /* Sig mismatch or malformed */
	CEC_RET_TOKEN = 4002,  /* Bearer token missing, unknown, expired or not the caller's */
	CEC_RET_POST = 4003,   /* envelope field missing or malformed */
	CEC_RET_BIZ = 4004,    /* Data undecryptable, not JSON, or a business field invalid; unknown OperatorID */
	CEC_RET_SYSTEM = 500,  /* internal failure only */
};

#define CEC_MSG_MAX 192

typedef struct cec_status {
	int ret;               /* enum cec_ret */
	char msg[CEC_MSG_MAX]; /* names the offending field; ASCII */
} cec_status_t;

/* Set st (may be NULL) and return ret, so validators can `return evcs_cec_fail(...)`. */
int evcs_cec_fail(cec_status_t *st, int ret, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Short English text for a Ret code ("signature error", ...); never NULL. */
const char *evcs_cec_ret_text(int ret);

/* ---- per-partner protocol profile ----
 * One per partner. evcs_cec_profile_default() gives the 2016 text as cec.md §9/§11
 * recommends (strict, standard spellings on output; tolerant on input). Each flag
 * names the implementation it copes with. */
typedef struct cec_profile {
	/* Signatures (§9 "Sig hex case"). */
	bool sig_lower_out;          /* ORISE emits lowercase hex (Hutool digestHex) and compares case-sensitively */
	bool sig_accept_any_case;    /* default on (§9 "accept either case on input"); off = only the output case (AC) */
	bool accept_unsigned_errors; /* default on: ORISE error replies carry Sig=null, Data=null (§9) */
	bool accept_plain_data;      /* CPIT/Shenzhen examples and CJV schema_base.json send Data as a plain JSON
				      * object (§9). ? The sources do not say what Sig covers then; we assume the
				      * compact serialisation of that object. Default off. */
	int64_t token_ttl;           /* seconds: XJ 7200, ORISE up to 7 days (§5); default 7200 */
	unsigned tokens_per_partner; /* ORISE keeps several valid tokens per partner (§5); default 4 */
	int32_t utc_offset_sec;      /* TimeStamp and all dates are local time (§2.1); default +8 h (China, no DST) */

	/* Output spellings and shapes (§9, §10). Input always accepts every spelling. */
	bool spell_service;          /* XJ 1.4.0: Service{Price,Money} instead of the standard Sevice* */
	bool elect_money_query;      /* XJ: ElectMoney in the query_equip_charge_status reply */
	bool elect_money_push;       /* SH: ElectMoney in pushes (notification_equip_charge_status) */
	bool sub_period;             /* ORISE NotificationChargeOrderInfoData: SubPeriod instead of SumPeriod */
	bool lower_camel_ids;        /* ORISE: stationID / connectorID in StationStatusInfo / ConnectorStatusInfo */
	bool status_push_array;      /* CJV 2021: notification_stationStatus carries a ConnectorStatusInfos array */
	bool status_push_live;       /* SH: CurrentA-C, VoltageA-C, SOC inside ConnectorStatusInfo */
	bool station_extra;          /* CJV/XJ/SH extra StationInfo fields, copied from cec_station_t.extra */
	bool policy_price_type;      /* ORISE PriceType (0 cusp,1 peak,2 flat,3 valley) in PolicyInfos */
	bool equip_auth_fail_msg;    /* ORISE FailReasonMsg in the query_equip_auth reply */
	bool stats_star_time;        /* ORISE serialises StationStats.StartTime as "StarTime" */
	bool order_tou_summary;      /* SH OrderInfo: Cusp/Peak/Flat/Valley Elect, ElectPrice, ServicePrice, Money */
	bool order_vin;              /* ORISE adds Vin to notification_charge_order_info */
	bool order_account_date;     /* CJV adds AccountDate (yyyy-MM-dd) to notification_charge_order_info */
	int energy_decimals;         /* TotalPower/DetailPower decimals: 2 (2016 text) or 3 (CJV; §9 recommends 3) */

	/* Input validation. */
	bool seq_prefix_check;       /* default on: 27-char *Seq starts with the caller's OperatorID (§8) */
	bool qr_url_connector;       /* ORISE accepts a QR-code URL as ConnectorID and extracts the id (§8.1) */
	bool unknown_connector_4004; /* start/stop: answer 4004 instead of the standard FailReason 1 "no such device" */
	unsigned page_size_default;  /* §7.1/§9: treat a missing PageSize as 10 */
	unsigned page_size_max;      /* §11.6: larger PageSize is clamped to this (default 100) */
	unsigned station_ids_max;    /* §7.3: at most 50 StationIDs (4004 beyond) */
	unsigned stats_max_days;     /* query_station_stats span limit in days, 0 = none (ORISE refuses > 7); default 31 */
} cec_profile_t;

void evcs_cec_profile_default(cec_profile_t *p);
/* Apply one named preset on top of *p: "cec2016" (the default), "orise", "xj", "cjv", "sh".
 * Returns 0, or -1 if the name is unknown. */
int evcs_cec_profile_preset(cec_profile_t *p, const char *name);
/* Set one flag from configuration text: key is the field name above (e.g. "sig_lower_out"),
 * value "yes|no|true|false|1|0" or a decimal for the numeric fields. Returns 0 or -1 with err filled. */
int evcs_cec_profile_set(cec_profile_t *p, const char *key, const char *value, char *err, size_t errlen);
/* The i-th key evcs_cec_profile_set() accepts, NULL past the end (the operator API's partner
 * routes, partner_api.c, accept exactly these). */
const char *evcs_cec_profile_key_name(size_t i);
/* The kind of key i: 'b' boolean, 'l' int64, 's' int32, 'i' non-negative int32, 'u' uint32; 0 past the end. */
char evcs_cec_profile_key_kind(size_t i);

/* ---- keys (§3, §4) ----
 * data_secret and data_secret_iv are used as their literal 16 bytes (not hex, not hashed);
 * sig_secret is any length. A partnership has two sets (§1): the one we verify incoming
 * requests with, and the one we sign our pushes with; they may be equal. */
typedef struct cec_keys {
	const char *data_secret;    /* DataSecret, exactly 16 bytes */
	const char *data_secret_iv; /* DataSecretIV, exactly 16 bytes */
	const char *sig_secret;     /* SigSecret */
} cec_keys_t;

/* 0 if usable, else CEC_RET_SYSTEM with the reason (a configuration error, not the caller's fault). */
int evcs_cec_keys_check(const cec_keys_t *k, cec_status_t *st);

/* ---- data encryption (§3) ---- */
enum cec_crypto_err {
	CEC_E_INTERNAL = -1, /* OpenSSL or allocation failure */
	CEC_E_BASE64 = -2,   /* not canonical padded Base64 (bad character, bad length, misplaced '=') */
	CEC_E_LENGTH = -3,   /* ciphertext empty or not a multiple of 16 bytes */
	CEC_E_PADDING = -4,  /* PKCS#7 padding wrong: wrong key/IV or tampered data */
	CEC_E_KEY = -5,      /* DataSecret/DataSecretIV not 16 bytes */
};
const char *evcs_cec_crypto_strerror(int e);

/* Base64 without line breaks, '=' padded (EVP_EncodeBlock). Returns malloc'd NUL-terminated text. */
char *evcs_cec_b64_encode(const void *buf, size_t len);
/* Strict standard Base64: length a multiple of 4, alphabet A-Za-z0-9+/, at most two '=' only at
 * the end. Line breaks are refused: the text says "no line breaks" (§3) and the Sig covers Data
 * byte for byte, so a re-wrapped Data would fail the signature anyway. Output malloc'd. */
int evcs_cec_b64_decode(const char *b64, size_t len, unsigned char **out, size_t *outlen);
/* AES-128-CBC + PKCS#7, then Base64. NULL only on internal failure or bad key length. */
char *evcs_cec_encrypt(const cec_keys_t *k, const void *plain, size_t len);
/* Inverse; *plain is malloc'd and NUL-terminated (the terminator is not counted in *len). */
int evcs_cec_decrypt(const cec_keys_t *k, const char *b64, size_t b64len, unsigned char **plain, size_t *len);

/* ---- signature (§4) ----
 * HMAC-MD5(sig_secret, parts[0] + parts[1] + ...) as 32 hex digits + NUL.
 * Returns 0 or CEC_E_INTERNAL. */
int evcs_cec_sign(const char *sig_secret, const char *const *parts, size_t nparts, bool lower, char out[33]);
/* Request Sig: OperatorID + Data + TimeStamp + Seq. */
int evcs_cec_sign_request(const char *sig_secret, const char *operator_id, const char *data, const char *timestamp,
			  const char *seq, bool lower, char out[33]);
/* Response Sig: decimal Ret + Msg + Data (Data "" when absent). */
int evcs_cec_sign_response(const char *sig_secret, int ret, const char *msg, const char *data, bool lower,
			   char out[33]);
/* Constant-time comparison of a received Sig with the expected one (any case given);
 * any_case folds the received one first. False on wrong length or non-hex. */
bool evcs_cec_sig_matches(const char *expected, const char *received, bool any_case);

/* ---- time and sequence (§2.1) ---- */
enum cec_time_fmt {
	CEC_TF_STAMP,    /* yyyyMMddHHmmss (envelope TimeStamp) */
	CEC_TF_DATETIME, /* yyyy-MM-dd HH:mm:ss */
	CEC_TF_DATE,     /* yyyy-MM-dd */
	CEC_TF_HMS,      /* HHmmss (policy StartTime); epoch = seconds since midnight */
};
/* Format epoch seconds as local time at utc_offset. buf needs 20 bytes. Returns buf. */
char *evcs_cec_time_format(int64_t epoch, int32_t utc_offset, enum cec_time_fmt f, char *buf);
/* Parse and validate (real calendar date, 00-23:00-59:00-59). Returns 0 or -1. */
int evcs_cec_time_parse(const char *s, enum cec_time_fmt f, int32_t utc_offset, int64_t *epoch);

/* Seq generator: "0001" at each new second, counting up within the second (ORISE SeqUtil). */
typedef struct cec_stamp {
	int64_t sec;
	unsigned seq;
} cec_stamp_t;
/* Fills ts (15 bytes) and seq (5 bytes). Returns 0, or -1 when 9999 requests were already
 * stamped in this second (caller waits for the next second). */
int evcs_cec_stamp_next(cec_stamp_t *s, int64_t now, int32_t utc_offset, char ts[15], char seq[5]);

/* ---- exact decimals in JSON (§11.7) ----
 * jansson only has binary doubles, which would put noise such as 12.300000000000001 on the
 * wire. A CEC decimal is therefore held in the json_t tree as a marked string and turned into
 * a bare JSON number with fixed decimals by evcs_cec_dumps(). Always serialise CEC bodies
 * with evcs_cec_dumps(); json_dumps() would emit the marked strings. */
/* value is in units of 10^-scale; rendered with `decimals` places, rounding half away from zero. */
int evcs_cec_dec_format(int64_t value, unsigned scale, unsigned decimals, char *buf, size_t len);
json_t *evcs_cec_json_dec(int64_t value, unsigned scale, unsigned decimals);
/* Compact UTF-8 JSON with decimal markers replaced. malloc'd; NULL on failure. */
char *evcs_cec_dumps(const json_t *j);
/* Read a decimal (JSON number, or a numeric string as some partners send) into units of
 * 10^-scale, rounding half away from zero. Exact for inputs of up to 15 significant digits.
 * Also accepts a marker string made by evcs_cec_json_dec. Returns 0 or -1. */
int evcs_cec_json_get_dec(const json_t *v, unsigned scale, int64_t *out);

/* Case-insensitive member lookup (ORISE emits stationID, §9); NULL if absent. */
json_t *evcs_cec_jget(const json_t *obj, const char *key);
/* First present member among NULL-terminated alternative spellings (SevicePrice/ServicePrice...). */
json_t *evcs_cec_jget_any(const json_t *obj, ...) __attribute__((sentinel));

/* ---- request envelope (§2.1) ---- */
#define CEC_OPID_LEN 9

typedef struct cec_request {
	char operator_id[CEC_OPID_LEN + 1];
	char timestamp[15];
	char seq[5];
	char sig[33];     /* as received, validated only as to length by verify */
	char *data;       /* malloc'd Data text (for a plain-object Data: its compact serialisation) */
	bool data_plain;  /* Data was a JSON object, not an encrypted string */
} cec_request_t;

/* Parse an incoming request body. Envelope keys are matched case-insensitively and unknown
 * keys are ignored. Returns 0, or CEC_RET_POST (not JSON, field missing/empty/wrong type,
 * OperatorID not 9 alphanumerics, TimeStamp not a valid 14-digit time, Seq not 4 digits),
 * CEC_RET_SYSTEM on allocation failure. On error req->data is NULL. */
int evcs_cec_request_parse(const char *body, size_t len, cec_request_t *req, cec_status_t *st);
void evcs_cec_request_clear(cec_request_t *req);
/* Check Sig with the partner's incoming keys: 0, CEC_RET_SIG, CEC_RET_POST (plain Data the
 * profile does not allow), CEC_RET_SYSTEM. */
int evcs_cec_request_verify(const cec_request_t *req, const cec_profile_t *p, const cec_keys_t *k,
			    cec_status_t *st);
/* Decrypt and parse Data into a JSON object (*data owned by caller): 0 or CEC_RET_BIZ. */
int evcs_cec_request_open(const cec_request_t *req, const cec_keys_t *k, json_t **data, cec_status_t *st);

/* Client direction: a signed, encrypted request body for `data` (a JSON object, serialised by
 * evcs_cec_dumps). operator_id is OUR organisation code; keys are the partner's set for our
 * pushes. ts/seq from evcs_cec_stamp_next. malloc'd; NULL on failure (st says why). */
char *evcs_cec_request_build(const cec_profile_t *p, const cec_keys_t *k, const char *operator_id,
			     const json_t *data, const char *ts, const char *seq, cec_status_t *st);

/* ---- response envelope (§2.2) ---- */
/* Server direction: {"Ret":..,"Msg":..,"Data":..,"Sig":..}. data may be NULL (Data ""), e.g. on
 * errors; k NULL (caller unknown, so no key to sign with) yields Sig "". Ret 0 with data is the
 * only case that encrypts. malloc'd; NULL on internal failure. */
char *evcs_cec_response_build(const cec_profile_t *p, const cec_keys_t *k, int ret, const char *msg,
			      const json_t *data);

typedef struct cec_response {
	int ret;       /* the partner's Ret */
	char *msg;     /* malloc'd, "" if absent */
	json_t *data;  /* decrypted business reply, NULL if Data was empty/absent */
	bool unsigned_error; /* accepted without Sig under accept_unsigned_errors */
} cec_response_t;

/* Client direction: parse the partner's reply to our request, whatever the HTTP status (§2).
 * Returns 0 when the envelope is well formed and authentic (r->ret is then the partner's Ret),
 * or a local failure: CEC_RET_POST (not an envelope), CEC_RET_SIG (bad or missing Sig),
 * CEC_RET_BIZ (Data undecryptable or not JSON), CEC_RET_SYSTEM. An extra OperatorID member is
 * ignored: the MAC does not cover it (AC). */
int evcs_cec_response_parse(const char *body, size_t len, const cec_profile_t *p, const cec_keys_t *k,
			    cec_response_t *r, cec_status_t *st);
void evcs_cec_response_clear(cec_response_t *r);

/* ---- tokens (§5) ---- */
#define CEC_TOKEN_LEN 64 /* hex of 32 random bytes */

typedef struct cec_token_store cec_token_store_t;
cec_token_store_t *evcs_cec_tokens_new(void);
void evcs_cec_tokens_free(cec_token_store_t *ts);
/* Issue a fresh random token for operator_id valid for ttl seconds from now. Older tokens of
 * that operator stay valid (rotation without a gap) but at most keep_max are kept, the oldest
 * dropped first. Returns 0 or CEC_RET_SYSTEM. */
int evcs_cec_tokens_issue(cec_token_store_t *ts, const char *operator_id, int64_t now, int64_t ttl,
			  unsigned keep_max, char out[CEC_TOKEN_LEN + 1]);
/* 0 if token is live and belongs to operator_id, else CEC_RET_TOKEN. */
int evcs_cec_tokens_check(cec_token_store_t *ts, const char *operator_id, const char *token, int64_t now);
/* Drop expired tokens; returns how many remain. */
size_t evcs_cec_tokens_prune(cec_token_store_t *ts, int64_t now);
/* Extract the token from an Authorization header value ("Bearer <t>", scheme case-insensitive).
 * Returns a pointer into header (NUL-terminated there) or NULL. */
const char *evcs_cec_bearer(const char *header);

/* query_token request Data (client direction). */
json_t *evcs_cec_token_request(const char *our_operator_id, const char *operator_secret);
/* query_token reply Data: success (SuccStat 0, FailReason 0) when token != NULL, else
 * SuccStat 1 with fail_reason (1 no such operator, 2 wrong secret, 3-99 custom), empty token, 0 s. */
json_t *evcs_cec_token_reply(const char *operator_id, const char *token, int64_t ttl, int fail_reason);
/* Parse a query_token reply (client direction). Returns 0 with *token (malloc'd) and *ttl on
 * success, CEC_RET_BIZ with *fail_reason set if the partner refused or the reply is malformed. */
int evcs_cec_token_reply_parse(const json_t *data, char **token, int64_t *ttl, int *fail_reason, cec_status_t *st);

/* ---- one-call server side ---- */
typedef struct cec_partner {
	const cec_profile_t *profile;
	const cec_keys_t *keys;      /* the set for requests this partner sends us */
	const char *operator_secret; /* the OperatorSecret it must present to our query_token */
	void *user;                  /* caller's partner object, passed through */
} cec_partner_t;
/* Return 1 and fill *out if operator_id is a configured partner, 0 if unknown, <0 on failure. */
typedef int (*cec_partner_fn)(void *ud, const char *operator_id, cec_partner_t *out);

typedef struct cec_inbound {
	cec_status_t st;      /* ret/msg to answer with when the return value is not 0 */
	cec_request_t req;
	cec_partner_t partner; /* valid when have_partner */
	bool have_partner;
	json_t *data;          /* decrypted business Data when 0 is returned */
} cec_inbound_t;

/* Runs the §4 order of checks on one request: envelope (4003), partner lookup (unknown
 * OperatorID 4004 as ORISE), keys (500), signature (4001), token unless is_token_route (4002),
 * decrypt/parse (4004). Returns the Ret code (also in in->st.ret). authorization is the raw
 * header value or NULL. Reply with evcs_cec_inbound_reply either way. */
int evcs_cec_accept(const char *body, size_t len, const char *authorization, bool is_token_route,
		    cec_partner_fn lookup, void *ud, cec_token_store_t *tokens, int64_t now, cec_inbound_t *in);
/* The signed response for this inbound request (unsigned if the partner is unknown). */
char *evcs_cec_inbound_reply(const cec_inbound_t *in, int ret, const char *msg, const json_t *data);
void evcs_cec_inbound_clear(cec_inbound_t *in);
/* Our query_token implementation on an accepted token-route request: checks the Data's
 * OperatorID equals the envelope's and the OperatorSecret (constant time), issues a token with
 * the profile's TTL. Returns the reply Data (SuccStat 1 + FailReason on refusal), or NULL with
 * st set (4004 for missing fields, 500 internal). */
json_t *evcs_cec_token_serve(cec_inbound_t *in, cec_token_store_t *tokens, int64_t now, cec_status_t *st);

#endif
