/*
 * cec_proto.c: T/CEC 102 part 4 transport (see cec_proto.h for the contract).
 * Crypto is OpenSSL EVP/HMAC, JSON is jansson; nothing here logs.
 */
#include "cec_proto.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ status */

int evcs_cec_fail(cec_status_t *st, int ret, const char *fmt, ...)
{
	if (st) {
		va_list ap;
		st->ret = ret;
		va_start(ap, fmt);
		vsnprintf(st->msg, sizeof st->msg, fmt, ap);
		va_end(ap);
	}
	return ret;
}

const char *evcs_cec_ret_text(int ret)
{
	switch (ret) {
	case CEC_RET_BUSY: return "system busy";
	case CEC_RET_OK: return "";
	case CEC_RET_SIG: return "signature error";
	case CEC_RET_TOKEN: return "token error";
	case CEC_RET_POST: return "invalid POST parameters";
	case CEC_RET_BIZ: return "invalid business parameters";
	case CEC_RET_SYSTEM: return "system error";
	default: return "error";
	}
}

static int ok(cec_status_t *st)
{
	if (st) {
		st->ret = CEC_RET_OK;
		st->msg[0] = '\0';
	}
	return CEC_RET_OK;
}

/* ----------------------------------------------------------------- profile */

void evcs_cec_profile_default(cec_profile_t *p)
{
	memset(p, 0, sizeof *p);
	p->sig_accept_any_case = true;
	p->accept_unsigned_errors = true;
	p->token_ttl = 7200;
	p->tokens_per_partner = 4;
	p->utc_offset_sec = 8 * 3600;
	p->energy_decimals = 3;
	p->seq_prefix_check = true;
	p->page_size_default = 10;
	p->page_size_max = 100;
	p->station_ids_max = 50;
	p->stats_max_days = 31;
}

int evcs_cec_profile_preset(cec_profile_t *p, const char *name)
{
	if (!strcmp(name, "cec2016")) {
		evcs_cec_profile_default(p);
	} else if (!strcmp(name, "orise")) {
		/* ORISE (§9): lowercase Sig compared case-sensitively, lowercase id keys, SubPeriod,
		 * PriceType, FailReasonMsg, StarTime, Vin, 7-day tokens, 7-day stats span. */
		p->sig_lower_out = true;
		p->lower_camel_ids = true;
		p->sub_period = true;
		p->policy_price_type = true;
		p->equip_auth_fail_msg = true;
		p->stats_star_time = true;
		p->order_vin = true;
		p->qr_url_connector = true;
		p->token_ttl = 7 * 86400;
		p->stats_max_days = 7;
	} else if (!strcmp(name, "xj")) {
		/* DiDi/XJ 1.4.0 via AC: Service* spellings, ElectMoney in the status query reply,
		 * strict uppercase Sig, 7200 s tokens. */
		p->spell_service = true;
		p->elect_money_query = true;
		p->sig_accept_any_case = false;
		p->token_ttl = 7200;
	} else if (!strcmp(name, "cjv")) {
		/* cecJsonVerify (2021 field set): array status push, extra StationInfo fields,
		 * 3-decimal energy, AccountDate. */
		p->status_push_array = true;
		p->station_extra = true;
		p->energy_decimals = 3;
		p->order_account_date = true;
	} else if (!strcmp(name, "sh")) {
		/* Shanghai regulator: extended status push, ElectMoney, ToU order summary. */
		p->status_push_live = true;
		p->elect_money_push = true;
		p->order_tou_summary = true;
		p->station_extra = true;
	} else {
		return -1;
	}
	return 0;
}

struct flag_desc {
	const char *name;
	size_t off;
	char kind; /* 'b' bool, 'i' int, 'u' unsigned, 'l' int64, 's' int32 */
};
#define FB(f) {#f, offsetof(cec_profile_t, f), 'b'}
static const struct flag_desc profile_fields[] = {
	FB(sig_lower_out), FB(sig_accept_any_case), FB(accept_unsigned_errors), FB(accept_plain_data),
	{"token_ttl", offsetof(cec_profile_t, token_ttl), 'l'},
	{"tokens_per_partner", offsetof(cec_profile_t, tokens_per_partner), 'u'},
	{"utc_offset_sec", offsetof(cec_profile_t, utc_offset_sec), 's'},
	FB(spell_service), FB(elect_money_query), FB(elect_money_push), FB(sub_period), FB(lower_camel_ids),
	FB(status_push_array), FB(status_push_live), FB(station_extra), FB(policy_price_type),
	FB(equip_auth_fail_msg), FB(stats_star_time), FB(order_tou_summary), FB(order_vin),
	FB(order_account_date),
	{"energy_decimals", offsetof(cec_profile_t, energy_decimals), 'i'},
	FB(seq_prefix_check), FB(qr_url_connector), FB(unknown_connector_4004),
	{"page_size_default", offsetof(cec_profile_t, page_size_default), 'u'},
	{"page_size_max", offsetof(cec_profile_t, page_size_max), 'u'},
	{"station_ids_max", offsetof(cec_profile_t, station_ids_max), 'u'},
	{"stats_max_days", offsetof(cec_profile_t, stats_max_days), 'u'},
};
#undef FB

const char *evcs_cec_profile_key_name(size_t i)
{
	return i < sizeof profile_fields / sizeof profile_fields[0] ? profile_fields[i].name : NULL;
}

char evcs_cec_profile_key_kind(size_t i)
{
	return i < sizeof profile_fields / sizeof profile_fields[0] ? profile_fields[i].kind : 0;
}

int evcs_cec_profile_set(cec_profile_t *p, const char *key, const char *value, char *err, size_t errlen)
{
	for (size_t i = 0; i < sizeof profile_fields / sizeof profile_fields[0]; i++) {
		const struct flag_desc *f = &profile_fields[i];
		if (strcmp(f->name, key))
			continue;
		char *base = (char *)p + f->off;
		if (f->kind == 'b') {
			bool b;
			if (!strcasecmp(value, "yes") || !strcasecmp(value, "true") || !strcmp(value, "1"))
				b = true;
			else if (!strcasecmp(value, "no") || !strcasecmp(value, "false") || !strcmp(value, "0"))
				b = false;
			else {
				snprintf(err, errlen, "%s: expected yes or no, got '%s'", key, value);
				return -1;
			}
			memcpy(base, &b, sizeof b);
			return 0;
		}
		char *end;
		errno = 0;
		long long v = strtoll(value, &end, 10);
		if (errno || end == value || *end || (f->kind != 'l' && f->kind != 's' && v < 0)) {
			snprintf(err, errlen, "%s: expected a number, got '%s'", key, value);
			return -1;
		}
		if (f->kind == 'l') {
			int64_t x = v;
			memcpy(base, &x, sizeof x);
		} else if (f->kind == 's' || f->kind == 'i') {
			if (v < INT32_MIN || v > INT32_MAX)
				goto range;
			int x = (int)v;
			memcpy(base, &x, sizeof x);
		} else {
			if (v > UINT32_MAX)
				goto range;
			unsigned x = (unsigned)v;
			memcpy(base, &x, sizeof x);
		}
		if (!strcmp(key, "energy_decimals") && p->energy_decimals != 2 && p->energy_decimals != 3) {
			p->energy_decimals = 3;
			snprintf(err, errlen, "energy_decimals: must be 2 or 3");
			return -1;
		}
		return 0;
range:
		snprintf(err, errlen, "%s: value out of range", key);
		return -1;
	}
	snprintf(err, errlen, "unknown CEC profile key '%s'", key);
	return -1;
}

/* -------------------------------------------------------------------- keys */

int evcs_cec_keys_check(const cec_keys_t *k, cec_status_t *st)
{
	if (!k || !k->data_secret || strlen(k->data_secret) != 16)
		return evcs_cec_fail(st, CEC_RET_SYSTEM, "partner DataSecret must be exactly 16 bytes");
	if (!k->data_secret_iv || strlen(k->data_secret_iv) != 16)
		return evcs_cec_fail(st, CEC_RET_SYSTEM, "partner DataSecretIV must be exactly 16 bytes");
	if (!k->sig_secret || !*k->sig_secret)
		return evcs_cec_fail(st, CEC_RET_SYSTEM, "partner SigSecret is empty");
	return ok(st);
}

/* ------------------------------------------------------------------ base64 */

const char *evcs_cec_crypto_strerror(int e)
{
	switch (e) {
	case 0: return "ok";
	case CEC_E_BASE64: return "not valid Base64";
	case CEC_E_LENGTH: return "ciphertext length not a positive multiple of 16";
	case CEC_E_PADDING: return "bad padding (wrong key or tampered data)";
	case CEC_E_KEY: return "key or IV not 16 bytes";
	default: return "internal crypto failure";
	}
}

char *evcs_cec_b64_encode(const void *buf, size_t len)
{
	if (len > INT_MAX / 4 * 3 - 3)
		return NULL;
	size_t olen = 4 * ((len + 2) / 3) + 1;
	unsigned char *out = malloc(olen);
	if (!out)
		return NULL;
	/* EVP_EncodeBlock writes padded Base64 with no line breaks and a NUL. */
	EVP_EncodeBlock(out, buf, (int)len);
	return (char *)out;
}

static bool b64_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

int evcs_cec_b64_decode(const char *b64, size_t len, unsigned char **out, size_t *outlen)
{
	*out = NULL;
	*outlen = 0;
	if (len == 0 || len % 4 || len > INT_MAX)
		return CEC_E_BASE64;
	/* EVP_DecodeBlock silently trims surrounding whitespace and counts '=' as zero bytes,
	 * so the alphabet and padding are checked here and the padding subtracted below. */
	size_t pad = 0;
	if (b64[len - 1] == '=')
		pad = (b64[len - 2] == '=') ? 2 : 1;
	for (size_t i = 0; i < len - pad; i++)
		if (!b64_char((unsigned char)b64[i]))
			return CEC_E_BASE64;
	unsigned char *buf = malloc(len / 4 * 3 + 1);
	if (!buf)
		return CEC_E_INTERNAL;
	int n = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)len);
	if (n < 0 || (size_t)n < pad) {
		free(buf);
		return CEC_E_BASE64;
	}
	*out = buf;
	*outlen = (size_t)n - pad;
	return 0;
}

/* ------------------------------------------------------------------- AES */

static int key_bytes(const cec_keys_t *k)
{
	if (!k || !k->data_secret || !k->data_secret_iv || strlen(k->data_secret) != 16 ||
	    strlen(k->data_secret_iv) != 16)
		return CEC_E_KEY;
	return 0;
}

char *evcs_cec_encrypt(const cec_keys_t *k, const void *plain, size_t len)
{
	if (key_bytes(k) || len > INT_MAX - 32)
		return NULL;
	unsigned char *ct = malloc(len + 16);
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	char *res = NULL;
	int n1 = 0, n2 = 0;
	if (!ct || !c)
		goto out;
	/* Key and IV are the literal 16 bytes of the configured strings (§3). PKCS#7 padding is
	 * EVP's default, which adds a whole block when len is a multiple of 16. */
	if (EVP_EncryptInit_ex(c, EVP_aes_128_cbc(), NULL, (const unsigned char *)k->data_secret,
			       (const unsigned char *)k->data_secret_iv) != 1 ||
	    EVP_EncryptUpdate(c, ct, &n1, plain, (int)len) != 1 || EVP_EncryptFinal_ex(c, ct + n1, &n2) != 1)
		goto out;
	res = evcs_cec_b64_encode(ct, (size_t)n1 + (size_t)n2);
out:
	EVP_CIPHER_CTX_free(c);
	free(ct);
	return res;
}

int evcs_cec_decrypt(const cec_keys_t *k, const char *b64, size_t b64len, unsigned char **plain, size_t *len)
{
	*plain = NULL;
	*len = 0;
	if (key_bytes(k))
		return CEC_E_KEY;
	unsigned char *ct;
	size_t ctlen;
	int e = evcs_cec_b64_decode(b64, b64len, &ct, &ctlen);
	if (e)
		return e;
	if (ctlen == 0 || ctlen % 16) {
		free(ct);
		return CEC_E_LENGTH;
	}
	unsigned char *pt = malloc(ctlen + 1);
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n1 = 0, n2 = 0;
	e = CEC_E_INTERNAL;
	if (!pt || !c)
		goto out;
	if (EVP_DecryptInit_ex(c, EVP_aes_128_cbc(), NULL, (const unsigned char *)k->data_secret,
			       (const unsigned char *)k->data_secret_iv) != 1 ||
	    EVP_DecryptUpdate(c, pt, &n1, ct, (int)ctlen) != 1)
		goto out;
	if (EVP_DecryptFinal_ex(c, pt + n1, &n2) != 1) {
		e = CEC_E_PADDING;
		goto out;
	}
	pt[n1 + n2] = '\0';
	*plain = pt;
	*len = (size_t)n1 + (size_t)n2;
	pt = NULL;
	e = 0;
out:
	EVP_CIPHER_CTX_free(c);
	free(pt);
	free(ct);
	return e;
}

/* --------------------------------------------------------------- signature */

int evcs_cec_sign(const char *sig_secret, const char *const *parts, size_t nparts, bool lower, char out[33])
{
	size_t total = 0;
	for (size_t i = 0; i < nparts; i++)
		total += strlen(parts[i]);
	/* HMAC() is the one-shot call that is not deprecated in OpenSSL 3, so the parts are
	 * joined first rather than fed to the deprecated HMAC_CTX. */
	unsigned char *buf = malloc(total + 1);
	if (!buf)
		return CEC_E_INTERNAL;
	size_t off = 0;
	for (size_t i = 0; i < nparts; i++) {
		size_t l = strlen(parts[i]);
		memcpy(buf + off, parts[i], l);
		off += l;
	}
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	unsigned char *r = HMAC(EVP_md5(), sig_secret, (int)strlen(sig_secret), buf, total, md, &mdlen);
	free(buf);
	if (!r || mdlen != 16)
		return CEC_E_INTERNAL;
	const char *hex = lower ? "0123456789abcdef" : "0123456789ABCDEF";
	for (unsigned i = 0; i < 16; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[32] = '\0';
	return 0;
}

int evcs_cec_sign_request(const char *sig_secret, const char *operator_id, const char *data, const char *timestamp,
			  const char *seq, bool lower, char out[33])
{
	const char *parts[] = {operator_id, data, timestamp, seq};
	return evcs_cec_sign(sig_secret, parts, 4, lower, out);
}

int evcs_cec_sign_response(const char *sig_secret, int ret, const char *msg, const char *data, bool lower,
			   char out[33])
{
	char rbuf[16];
	snprintf(rbuf, sizeof rbuf, "%d", ret);
	const char *parts[] = {rbuf, msg ? msg : "", data ? data : ""};
	return evcs_cec_sign(sig_secret, parts, 3, lower, out);
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool evcs_cec_sig_matches(const char *expected, const char *received, bool any_case)
{
	if (!expected || !received || strlen(expected) != 32 || strlen(received) != 32)
		return false;
	char a[32], b[32];
	for (int i = 0; i < 32; i++) {
		if (!is_hex(received[i]))
			return false;
		a[i] = expected[i];
		b[i] = received[i];
		if (any_case) {
			if (a[i] >= 'a' && a[i] <= 'f')
				a[i] = (char)(a[i] - 'a' + 'A');
			if (b[i] >= 'a' && b[i] <= 'f')
				b[i] = (char)(b[i] - 'a' + 'A');
		}
	}
	return CRYPTO_memcmp(a, b, 32) == 0;
}

/* -------------------------------------------------------------------- time */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil), so
 * no timegm()/TZ state is touched and the code stays thread-safe. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
	z += 719468;
	const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	const unsigned doe = (unsigned)(z - era * 146097);
	const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	const unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int)((int64_t)yoe + era * 400 + (*m <= 2));
}

static int64_t floordiv(int64_t a, int64_t b)
{
	int64_t q = a / b;
	if ((a % b) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

char *evcs_cec_time_format(int64_t epoch, int32_t utc_offset, enum cec_time_fmt f, char *buf)
{
	int64_t t = epoch + utc_offset;
	if (f == CEC_TF_HMS)
		t = epoch;
	int64_t days = floordiv(t, 86400);
	int64_t sod = t - days * 86400;
	int y;
	unsigned m, d;
	civil_from_days(days, &y, &m, &d);
	int hh = (int)(sod / 3600), mi = (int)(sod / 60 % 60), ss = (int)(sod % 60);
	/* Years outside 0..9999 cannot be written in these fixed-width formats. */
	if (y < 0)
		y = 0;
	if (y > 9999)
		y = 9999;
	/* Formatted into a roomy buffer: the compiler cannot see the field ranges. */
	char tmp[64];
	switch (f) {
	case CEC_TF_STAMP: snprintf(tmp, sizeof tmp, "%04d%02u%02u%02d%02d%02d", y, m, d, hh, mi, ss); break;
	case CEC_TF_DATETIME:
		snprintf(tmp, sizeof tmp, "%04d-%02u-%02u %02d:%02d:%02d", y, m, d, hh, mi, ss);
		break;
	case CEC_TF_DATE: snprintf(tmp, sizeof tmp, "%04d-%02u-%02u", y, m, d); break;
	case CEC_TF_HMS: snprintf(tmp, sizeof tmp, "%02d%02d%02d", hh, mi, ss); break;
	default: tmp[0] = '\0'; break;
	}
	memcpy(buf, tmp, 20);
	buf[19] = '\0';
	return buf;
}

static int digits(const char *s, size_t n, int *v)
{
	int x = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		x = x * 10 + (s[i] - '0');
	}
	*v = x;
	return 0;
}

int evcs_cec_time_parse(const char *s, enum cec_time_fmt f, int32_t utc_offset, int64_t *epoch)
{
	int y = 1970, mo = 1, d = 1, h = 0, mi = 0, se = 0;
	size_t len = s ? strlen(s) : 0;
	switch (f) {
	case CEC_TF_STAMP:
		if (len != 14 || digits(s, 4, &y) || digits(s + 4, 2, &mo) || digits(s + 6, 2, &d) ||
		    digits(s + 8, 2, &h) || digits(s + 10, 2, &mi) || digits(s + 12, 2, &se))
			return -1;
		break;
	case CEC_TF_DATETIME:
		if (len != 19 || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':' ||
		    digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &d) || digits(s + 11, 2, &h) ||
		    digits(s + 14, 2, &mi) || digits(s + 17, 2, &se))
			return -1;
		break;
	case CEC_TF_DATE:
		if (len != 10 || s[4] != '-' || s[7] != '-' || digits(s, 4, &y) || digits(s + 5, 2, &mo) ||
		    digits(s + 8, 2, &d))
			return -1;
		break;
	case CEC_TF_HMS:
		if (len != 6 || digits(s, 2, &h) || digits(s + 2, 2, &mi) || digits(s + 4, 2, &se))
			return -1;
		if (h > 23 || mi > 59 || se > 59)
			return -1;
		*epoch = h * 3600 + mi * 60 + se;
		return 0;
	default: return -1;
	}
	static const unsigned char mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 59)
		return -1;
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (mo == 2 && d == 29 && !leap)
		return -1;
	*epoch = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se - utc_offset;
	return 0;
}

int evcs_cec_stamp_next(cec_stamp_t *s, int64_t now, int32_t utc_offset, char ts[15], char seq[5])
{
	if (now != s->sec) {
		s->sec = now;
		s->seq = 0;
	}
	if (s->seq >= 9999)
		return -1;
	s->seq++;
	char buf[20];
	evcs_cec_time_format(now, utc_offset, CEC_TF_STAMP, buf);
	memcpy(ts, buf, 15);
	snprintf(seq, 5, "%04u", s->seq);
	return 0;
}

/* ---------------------------------------------------------------- decimals */

/* Control character so that no text the core stores can collide with it in practice; jansson
 * escapes it as \u001F, which is what evcs_cec_dumps looks for. */
#define DEC_MARK "\x1f" "cecdec:"
#define DEC_MARK_LEN 8
#define DEC_MARK_ESC "\"\\u001Fcecdec:"

int evcs_cec_dec_format(int64_t value, unsigned scale, unsigned decimals, char *buf, size_t len)
{
	if (scale > 12 || decimals > 12)
		return -1;
	bool neg = value < 0;
	/* Work on the magnitude as unsigned so INT64_MIN does not overflow. */
	uint64_t mag = neg ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
	uint64_t p10[13] = {1};
	for (int i = 1; i <= 12; i++)
		p10[i] = p10[i - 1] * 10;
	if (decimals < scale) {
		uint64_t div = p10[scale - decimals];
		uint64_t q = mag / div, r = mag % div;
		if (r * 2 >= div) /* half away from zero (四舍五入) */
			q++;
		mag = q;
	} else if (decimals > scale) {
		uint64_t mul = p10[decimals - scale];
		if (mag > UINT64_MAX / mul)
			return -1;
		mag *= mul;
	}
	uint64_t ip = mag / p10[decimals], fp = mag % p10[decimals];
	int n;
	if (decimals)
		n = snprintf(buf, len, "%s%" PRIu64 ".%0*" PRIu64, neg && mag ? "-" : "", ip, (int)decimals, fp);
	else
		n = snprintf(buf, len, "%s%" PRIu64, neg && mag ? "-" : "", ip);
	return (n < 0 || (size_t)n >= len) ? -1 : 0;
}

json_t *evcs_cec_json_dec(int64_t value, unsigned scale, unsigned decimals)
{
	char buf[64];
	memcpy(buf, DEC_MARK, DEC_MARK_LEN);
	if (evcs_cec_dec_format(value, scale, decimals, buf + DEC_MARK_LEN, sizeof buf - DEC_MARK_LEN))
		return NULL;
	return json_string(buf);
}

static bool dec_text(const char *s, size_t n)
{
	size_t i = 0, dig = 0;
	if (i < n && s[i] == '-')
		i++;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
		dig++;
	if (!dig)
		return false;
	if (i < n && s[i] == '.') {
		i++;
		size_t fd = 0;
		for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			fd++;
		if (!fd)
			return false;
	}
	return i == n;
}

char *evcs_cec_dumps(const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!s)
		return NULL;
	/* Replace each "\u001Fcecdec:12.30" by 12.30. The result is never longer than the input,
	 * so it is rewritten in place. */
	const size_t mlen = strlen(DEC_MARK_ESC);
	char *r = s, *w = s;
	for (;;) {
		char *m = strstr(r, DEC_MARK_ESC);
		if (!m) {
			memmove(w, r, strlen(r) + 1);
			break;
		}
		char *num = m + mlen, *q = strchr(num, '"');
		size_t pre = (size_t)(m - r);
		memmove(w, r, pre);
		w += pre;
		if (q && dec_text(num, (size_t)(q - num))) {
			memmove(w, num, (size_t)(q - num));
			w += q - num;
			r = q + 1;
		} else {
			/* Not ours after all: copy verbatim. */
			memmove(w, m, mlen);
			w += mlen;
			r = num;
		}
	}
	return s;
}

/* Exact decimal text to units of 10^-scale, rounding half away from zero. */
static int parse_dec_text(const char *s, size_t n, unsigned scale, int64_t *out)
{
	size_t i = 0;
	bool neg = false;
	if (i < n && (s[i] == '-' || s[i] == '+'))
		neg = s[i++] == '-';
	uint64_t v = 0;
	size_t dig = 0;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, dig++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	unsigned fd = 0;
	bool round_up = false;
	if (i < n && s[i] == '.') {
		i++;
		for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, dig++) {
			if (fd < scale) {
				if (v > (UINT64_MAX - 9) / 10)
					return -1;
				v = v * 10 + (uint64_t)(s[i] - '0');
				fd++;
			} else if (fd == scale) {
				round_up = s[i] >= '5';
				fd++;
			}
		}
	}
	if (!dig || i != n)
		return -1;
	for (unsigned k = fd > scale ? scale : fd; k < scale; k++) {
		if (v > UINT64_MAX / 10)
			return -1;
		v *= 10;
	}
	if (round_up)
		v++;
	if (v > (uint64_t)INT64_MAX)
		return -1;
	*out = neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

int evcs_cec_json_get_dec(const json_t *v, unsigned scale, int64_t *out)
{
	if (!v || scale > 12)
		return -1;
	if (json_is_integer(v)) {
		int64_t x = json_integer_value(v);
		for (unsigned i = 0; i < scale; i++) {
			if (x > INT64_MAX / 10 || x < INT64_MIN / 10)
				return -1;
			x *= 10;
		}
		*out = x;
		return 0;
	}
	if (json_is_real(v)) {
		/* jansson only gives the double; %.15g recovers the sender's decimal text for any
		 * value of up to 15 significant digits, which is then read exactly. */
		char buf[40];
		snprintf(buf, sizeof buf, "%.15g", json_real_value(v));
		/* Exponent forms (huge or tiny values), inf and nan are refused by the parser. */
		return parse_dec_text(buf, strlen(buf), scale, out);
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t n = json_string_length(v);
		if (n > DEC_MARK_LEN && !memcmp(s, DEC_MARK, DEC_MARK_LEN)) {
			s += DEC_MARK_LEN;
			n -= DEC_MARK_LEN;
		}
		return parse_dec_text(s, n, scale, out);
	}
	return -1;
}

/* --------------------------------------------------------------- JSON keys */

json_t *evcs_cec_jget(const json_t *obj, const char *key)
{
	if (!json_is_object(obj))
		return NULL;
	json_t *v = json_object_get(obj, key);
	if (v)
		return v;
	const char *k;
	json_t *val;
	json_object_foreach((json_t *)obj, k, val)
	{
		if (!strcasecmp(k, key))
			return val;
	}
	return NULL;
}

json_t *evcs_cec_jget_any(const json_t *obj, ...)
{
	va_list ap;
	va_start(ap, obj);
	json_t *v = NULL;
	const char *k;
	while (!v && (k = va_arg(ap, const char *)) != NULL)
		v = evcs_cec_jget(obj, k);
	va_end(ap);
	return v;
}

/* ---------------------------------------------------------------- envelope */

void evcs_cec_request_clear(cec_request_t *req)
{
	free(req->data);
	memset(req, 0, sizeof *req);
}

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static bool alnum9(const char *s)
{
	if (strlen(s) != CEC_OPID_LEN)
		return false;
	for (int i = 0; i < CEC_OPID_LEN; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
			return false;
	}
	return true;
}

static int env_string(const json_t *root, const char *key, const char **out, cec_status_t *st)
{
	json_t *v = evcs_cec_jget(root, key);
	if (!v || json_is_null(v))
		return evcs_cec_fail(st, CEC_RET_POST, "missing envelope field %s", key);
	if (!json_is_string(v))
		return evcs_cec_fail(st, CEC_RET_POST, "envelope field %s must be a string", key);
	if (json_string_length(v) == 0)
		return evcs_cec_fail(st, CEC_RET_POST, "empty envelope field %s", key);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return evcs_cec_fail(st, CEC_RET_POST, "envelope field %s contains NUL", key);
	*out = json_string_value(v);
	return 0;
}

int evcs_cec_request_parse(const char *body, size_t len, cec_request_t *req, cec_status_t *st)
{
	memset(req, 0, sizeof *req);
	json_error_t jerr;
	json_t *root = body ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
	if (!json_is_object(root)) {
		json_decref(root);
		return evcs_cec_fail(st, CEC_RET_POST, "request body is not a JSON object");
	}
	int r;
	const char *opid = "", *ts = "", *seq = "", *sig = "", *data = "";
	/* All five must be present (4003) before any is judged on format. */
	if ((r = env_string(root, "OperatorID", &opid, st)))
		goto out;
	json_t *dv = evcs_cec_jget(root, "Data");
	if (json_is_object(dv)) {
		req->data_plain = true;
	} else if ((r = env_string(root, "Data", &data, st))) {
		goto out;
	}
	if ((r = env_string(root, "TimeStamp", &ts, st)) || (r = env_string(root, "Seq", &seq, st)) ||
	    (r = env_string(root, "Sig", &sig, st)))
		goto out;
	r = CEC_RET_POST;
	if (!alnum9(opid)) {
		evcs_cec_fail(st, r, "OperatorID must be 9 letters or digits");
		goto out;
	}
	int64_t t;
	if (evcs_cec_time_parse(ts, CEC_TF_STAMP, 0, &t)) {
		evcs_cec_fail(st, r, "TimeStamp must be yyyyMMddHHmmss");
		goto out;
	}
	if (strlen(seq) != 4 || !all_digits(seq, 4)) {
		evcs_cec_fail(st, r, "Seq must be 4 digits");
		goto out;
	}
	snprintf(req->operator_id, sizeof req->operator_id, "%s", opid);
	snprintf(req->timestamp, sizeof req->timestamp, "%s", ts);
	snprintf(req->seq, sizeof req->seq, "%s", seq);
	/* A Sig of the wrong length is a signature error (4001), judged in verify. */
	snprintf(req->sig, sizeof req->sig, "%.32s", strlen(sig) == 32 ? sig : "");
	req->data = req->data_plain ? json_dumps(dv, JSON_COMPACT) : strdup(data);
	if (!req->data) {
		r = evcs_cec_fail(st, CEC_RET_SYSTEM, "out of memory");
		goto out;
	}
	r = ok(st);
out:
	json_decref(root);
	if (r)
		evcs_cec_request_clear(req);
	return r;
}

int evcs_cec_request_verify(const cec_request_t *req, const cec_profile_t *p, const cec_keys_t *k,
			    cec_status_t *st)
{
	if (req->data_plain && !p->accept_plain_data)
		return evcs_cec_fail(st, CEC_RET_POST, "Data must be an encrypted string");
	if (!k || !k->sig_secret)
		return evcs_cec_fail(st, CEC_RET_SYSTEM, "no SigSecret configured");
	char want[33];
	if (evcs_cec_sign_request(k->sig_secret, req->operator_id, req->data, req->timestamp, req->seq,
				  p->sig_lower_out, want))
		return evcs_cec_fail(st, CEC_RET_SYSTEM, "HMAC failed");
	if (!evcs_cec_sig_matches(want, req->sig, p->sig_accept_any_case))
		/* Also the answer for the OperatorID=..Data=.. signing forms some clients use (§9). */
		return evcs_cec_fail(st, CEC_RET_SIG, "Sig does not match HMAC-MD5(OperatorID+Data+TimeStamp+Seq)");
	return ok(st);
}

static int parse_plain(const unsigned char *txt, size_t len, json_t **data, cec_status_t *st)
{
	json_error_t jerr;
	json_t *j = json_loadb((const char *)txt, len, 0, &jerr);
	if (!json_is_object(j)) {
		json_decref(j);
		return evcs_cec_fail(st, CEC_RET_BIZ, "Data is not a JSON object after decryption");
	}
	*data = j;
	return ok(st);
}

int evcs_cec_request_open(const cec_request_t *req, const cec_keys_t *k, json_t **data, cec_status_t *st)
{
	*data = NULL;
	if (req->data_plain)
		return parse_plain((const unsigned char *)req->data, strlen(req->data), data, st);
	unsigned char *pt;
	size_t n;
	int e = evcs_cec_decrypt(k, req->data, strlen(req->data), &pt, &n);
	if (e == CEC_E_INTERNAL || e == CEC_E_KEY)
		return evcs_cec_fail(st, CEC_RET_SYSTEM, "decrypt: %s", evcs_cec_crypto_strerror(e));
	if (e)
		return evcs_cec_fail(st, CEC_RET_BIZ, "Data cannot be decrypted: %s", evcs_cec_crypto_strerror(e));
	int r = parse_plain(pt, n, data, st);
	OPENSSL_cleanse(pt, n);
	free(pt);
	return r;
}

char *evcs_cec_request_build(const cec_profile_t *p, const cec_keys_t *k, const char *operator_id,
			     const json_t *data, const char *ts, const char *seq, cec_status_t *st)
{
	if (evcs_cec_keys_check(k, st))
		return NULL;
	char *plain = evcs_cec_dumps(data);
	if (!plain) {
		evcs_cec_fail(st, CEC_RET_SYSTEM, "cannot serialise Data");
		return NULL;
	}
	char *enc = evcs_cec_encrypt(k, plain, strlen(plain));
	free(plain);
	char sig[33];
	char *res = NULL;
	if (!enc || evcs_cec_sign_request(k->sig_secret, operator_id, enc, ts, seq, p->sig_lower_out, sig)) {
		evcs_cec_fail(st, CEC_RET_SYSTEM, "encryption or signing failed");
		goto out;
	}
	json_t *env = json_pack("{s:s, s:s, s:s, s:s, s:s}", "OperatorID", operator_id, "Data", enc, "TimeStamp",
				ts, "Seq", seq, "Sig", sig);
	res = env ? json_dumps(env, JSON_COMPACT) : NULL;
	json_decref(env);
	if (!res)
		evcs_cec_fail(st, CEC_RET_SYSTEM, "cannot build request envelope");
	else
		ok(st);
out:
	free(enc);
	return res;
}

char *evcs_cec_response_build(const cec_profile_t *p, const cec_keys_t *k, int ret, const char *msg,
			      const json_t *data)
{
	char *enc = NULL;
	if (!msg)
		msg = "";
	if (data && k) {
		char *plain = evcs_cec_dumps(data);
		if (!plain)
			return NULL;
		enc = evcs_cec_encrypt(k, plain, strlen(plain));
		free(plain);
		if (!enc)
			return NULL;
	}
	char sig[33] = "";
	if (k && k->sig_secret && evcs_cec_sign_response(k->sig_secret, ret, msg, enc ? enc : "",
							  p ? p->sig_lower_out : false, sig)) {
		free(enc);
		return NULL;
	}
	json_t *env = json_pack("{s:i, s:s, s:s, s:s}", "Ret", ret, "Msg", msg, "Data", enc ? enc : "", "Sig", sig);
	char *res = env ? json_dumps(env, JSON_COMPACT) : NULL;
	json_decref(env);
	free(enc);
	return res;
}

void evcs_cec_response_clear(cec_response_t *r)
{
	free(r->msg);
	json_decref(r->data);
	memset(r, 0, sizeof *r);
}

/* Optional string member: absent/null gives "", a string its value; other types fail. */
static int opt_str(const json_t *root, const char *key, const char **out)
{
	json_t *v = evcs_cec_jget(root, key);
	if (!v || json_is_null(v)) {
		*out = "";
		return 0;
	}
	if (!json_is_string(v))
		return -1;
	*out = json_string_value(v);
	return 0;
}

int evcs_cec_response_parse(const char *body, size_t len, const cec_profile_t *p, const cec_keys_t *k,
			    cec_response_t *r, cec_status_t *st)
{
	memset(r, 0, sizeof *r);
	json_error_t jerr;
	json_t *root = body ? json_loadb(body, len, 0, &jerr) : NULL;
	int rc;
	const char *msg, *data, *sig;
	if (!json_is_object(root)) {
		rc = evcs_cec_fail(st, CEC_RET_POST, "response is not a JSON object");
		goto out;
	}
	json_t *rv = evcs_cec_jget(root, "Ret");
	int64_t retv = 0;
	/* Some partners send Ret as a string; evcs_cec_json_get_dec with scale 0 reads both
	 * forms, and fractional values are refused explicitly. */
	if (json_is_real(rv) || evcs_cec_json_get_dec(rv, 0, &retv) || retv < INT_MIN || retv > INT_MAX ||
	    (json_is_string(rv) && strchr(json_string_value(rv), '.'))) {
		rc = evcs_cec_fail(st, CEC_RET_POST, "response has no integer Ret");
		goto out;
	}
	r->ret = (int)retv;
	if (opt_str(root, "Msg", &msg) || opt_str(root, "Data", &data) || opt_str(root, "Sig", &sig)) {
		rc = evcs_cec_fail(st, CEC_RET_POST, "response Msg/Data/Sig must be strings");
		goto out;
	}
	if (!*sig && r->ret != CEC_RET_OK && p->accept_unsigned_errors) {
		r->unsigned_error = true;
	} else {
		char want[33];
		if (!k || !k->sig_secret) {
			rc = evcs_cec_fail(st, CEC_RET_SYSTEM, "no SigSecret configured");
			goto out;
		}
		if (evcs_cec_sign_response(k->sig_secret, r->ret, msg, data, p->sig_lower_out, want)) {
			rc = evcs_cec_fail(st, CEC_RET_SYSTEM, "HMAC failed");
			goto out;
		}
		if (!evcs_cec_sig_matches(want, sig, p->sig_accept_any_case)) {
			rc = evcs_cec_fail(st, CEC_RET_SIG, "response Sig does not match HMAC-MD5(Ret+Msg+Data)");
			goto out;
		}
	}
	r->msg = strdup(msg);
	if (!r->msg) {
		rc = evcs_cec_fail(st, CEC_RET_SYSTEM, "out of memory");
		goto out;
	}
	if (*data) {
		unsigned char *pt;
		size_t n;
		int e = evcs_cec_decrypt(k, data, strlen(data), &pt, &n);
		if (e) {
			rc = evcs_cec_fail(st, (e == CEC_E_INTERNAL || e == CEC_E_KEY) ? CEC_RET_SYSTEM : CEC_RET_BIZ,
					   "response Data cannot be decrypted: %s", evcs_cec_crypto_strerror(e));
			goto out;
		}
		rc = parse_plain(pt, n, &r->data, st);
		free(pt);
		if (rc)
			goto out;
	}
	rc = ok(st);
out:
	json_decref(root);
	if (rc)
		evcs_cec_response_clear(r);
	return rc;
}

/* ------------------------------------------------------------------ tokens */

struct tok {
	char token[CEC_TOKEN_LEN + 1];
	char opid[CEC_OPID_LEN + 1];
	int64_t issued;
	int64_t expires;
};

struct cec_token_store {
	pthread_mutex_t lock;
	struct tok *v;
	size_t n, cap;
};

cec_token_store_t *evcs_cec_tokens_new(void)
{
	cec_token_store_t *ts = calloc(1, sizeof *ts);
	if (!ts)
		return NULL;
	if (pthread_mutex_init(&ts->lock, NULL)) {
		free(ts);
		return NULL;
	}
	return ts;
}

void evcs_cec_tokens_free(cec_token_store_t *ts)
{
	if (!ts)
		return;
	OPENSSL_cleanse(ts->v, ts->cap * sizeof *ts->v);
	free(ts->v);
	pthread_mutex_destroy(&ts->lock);
	free(ts);
}

static void tok_remove(cec_token_store_t *ts, size_t i)
{
	ts->v[i] = ts->v[--ts->n];
	OPENSSL_cleanse(&ts->v[ts->n], sizeof ts->v[ts->n]);
}

static size_t prune_locked(cec_token_store_t *ts, int64_t now)
{
	for (size_t i = 0; i < ts->n;)
		if (ts->v[i].expires <= now)
			tok_remove(ts, i);
		else
			i++;
	return ts->n;
}

size_t evcs_cec_tokens_prune(cec_token_store_t *ts, int64_t now)
{
	pthread_mutex_lock(&ts->lock);
	size_t n = prune_locked(ts, now);
	pthread_mutex_unlock(&ts->lock);
	return n;
}

int evcs_cec_tokens_issue(cec_token_store_t *ts, const char *operator_id, int64_t now, int64_t ttl,
			  unsigned keep_max, char out[CEC_TOKEN_LEN + 1])
{
	unsigned char rnd[CEC_TOKEN_LEN / 2];
	if (!operator_id || strlen(operator_id) > CEC_OPID_LEN || ttl <= 0 || RAND_bytes(rnd, sizeof rnd) != 1)
		return CEC_RET_SYSTEM;
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < sizeof rnd; i++) {
		out[2 * i] = hex[rnd[i] >> 4];
		out[2 * i + 1] = hex[rnd[i] & 15];
	}
	out[CEC_TOKEN_LEN] = '\0';
	OPENSSL_cleanse(rnd, sizeof rnd);
	if (keep_max == 0)
		keep_max = 1;
	int rc = CEC_RET_SYSTEM;
	pthread_mutex_lock(&ts->lock);
	prune_locked(ts, now);
	/* Bound the tokens per operator so a partner calling query_token in a loop cannot grow
	 * the store: drop its oldest until there is room for the new one. */
	for (;;) {
		size_t count = 0, oldest = SIZE_MAX;
		for (size_t i = 0; i < ts->n; i++) {
			if (strcmp(ts->v[i].opid, operator_id))
				continue;
			count++;
			if (oldest == SIZE_MAX || ts->v[i].issued < ts->v[oldest].issued)
				oldest = i;
		}
		if (count < keep_max)
			break;
		tok_remove(ts, oldest);
	}
	if (ts->n == ts->cap) {
		size_t ncap = ts->cap ? ts->cap * 2 : 16;
		struct tok *nv = realloc(ts->v, ncap * sizeof *nv);
		if (!nv)
			goto out;
		ts->v = nv;
		ts->cap = ncap;
	}
	struct tok *t = &ts->v[ts->n++];
	memcpy(t->token, out, sizeof t->token);
	snprintf(t->opid, sizeof t->opid, "%s", operator_id);
	t->issued = now;
	t->expires = now + ttl;
	rc = CEC_RET_OK;
out:
	pthread_mutex_unlock(&ts->lock);
	return rc;
}

int evcs_cec_tokens_check(cec_token_store_t *ts, const char *operator_id, const char *token, int64_t now)
{
	if (!token || strlen(token) != CEC_TOKEN_LEN || !operator_id)
		return CEC_RET_TOKEN;
	int rc = CEC_RET_TOKEN;
	pthread_mutex_lock(&ts->lock);
	for (size_t i = 0; i < ts->n; i++) {
		const struct tok *t = &ts->v[i];
		if (CRYPTO_memcmp(t->token, token, CEC_TOKEN_LEN) == 0) {
			if (t->expires > now && !strcmp(t->opid, operator_id))
				rc = CEC_RET_OK;
			break;
		}
	}
	pthread_mutex_unlock(&ts->lock);
	return rc;
}

const char *evcs_cec_bearer(const char *header)
{
	if (!header)
		return NULL;
	while (*header == ' ' || *header == '\t')
		header++;
	if (strncasecmp(header, "Bearer", 6) || (header[6] != ' ' && header[6] != '\t'))
		return NULL;
	const char *t = header + 6;
	while (*t == ' ' || *t == '\t')
		t++;
	if (!*t)
		return NULL;
	/* Trailing whitespace would make an otherwise valid token fail the length check; a
	 * token never contains whitespace, so anything after it is refused as well. */
	for (const char *q = t; *q; q++)
		if (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
			return NULL;
	return t;
}

json_t *evcs_cec_token_request(const char *our_operator_id, const char *operator_secret)
{
	return json_pack("{s:s, s:s}", "OperatorID", our_operator_id, "OperatorSecret", operator_secret);
}

json_t *evcs_cec_token_reply(const char *operator_id, const char *token, int64_t ttl, int fail_reason)
{
	bool good = token != NULL;
	return json_pack("{s:s, s:i, s:s, s:I, s:i}", "OperatorID", operator_id ? operator_id : "", "SuccStat",
			 good ? 0 : 1, "AccessToken", good ? token : "", "TokenAvailableTime",
			 (json_int_t)(good ? ttl : 0), "FailReason", good ? 0 : fail_reason);
}

int evcs_cec_token_reply_parse(const json_t *data, char **token, int64_t *ttl, int *fail_reason, cec_status_t *st)
{
	*token = NULL;
	*ttl = 0;
	*fail_reason = 0;
	json_t *ss = evcs_cec_jget(data, "SuccStat"), *fr = evcs_cec_jget(data, "FailReason");
	json_t *tk = evcs_cec_jget(data, "AccessToken"), *tt = evcs_cec_jget(data, "TokenAvailableTime");
	if (json_is_integer(fr))
		*fail_reason = (int)json_integer_value(fr);
	if (!json_is_integer(ss))
		return evcs_cec_fail(st, CEC_RET_BIZ, "query_token reply: SuccStat missing");
	if (json_integer_value(ss) != 0)
		return evcs_cec_fail(st, CEC_RET_BIZ, "query_token refused: FailReason %d", *fail_reason);
	if (!json_is_string(tk) || !json_string_length(tk))
		return evcs_cec_fail(st, CEC_RET_BIZ, "query_token reply: AccessToken missing");
	if (!json_is_integer(tt) || json_integer_value(tt) <= 0)
		return evcs_cec_fail(st, CEC_RET_BIZ, "query_token reply: TokenAvailableTime missing");
	*token = strdup(json_string_value(tk));
	if (!*token)
		return evcs_cec_fail(st, CEC_RET_SYSTEM, "out of memory");
	*ttl = json_integer_value(tt);
	return ok(st);
}

/* --------------------------------------------------------------- one call */

int evcs_cec_accept(const char *body, size_t len, const char *authorization, bool is_token_route,
		    cec_partner_fn lookup, void *ud, cec_token_store_t *tokens, int64_t now, cec_inbound_t *in)
{
	memset(in, 0, sizeof *in);
	cec_status_t *st = &in->st;
	int r = evcs_cec_request_parse(body, len, &in->req, st);
	if (r)
		return r;
	int found = lookup(ud, in->req.operator_id, &in->partner);
	if (found < 0)
		return evcs_cec_fail(st, CEC_RET_SYSTEM, "partner lookup failed");
	if (found == 0 || !in->partner.profile)
		return evcs_cec_fail(st, CEC_RET_BIZ, "unknown OperatorID %s", in->req.operator_id);
	in->have_partner = true;
	if ((r = evcs_cec_keys_check(in->partner.keys, st)))
		return r;
	if ((r = evcs_cec_request_verify(&in->req, in->partner.profile, in->partner.keys, st)))
		return r;
	if (!is_token_route) {
		const char *tok = evcs_cec_bearer(authorization);
		if (!tok)
			return evcs_cec_fail(st, CEC_RET_TOKEN, "missing Authorization: Bearer token");
		if (!tokens || evcs_cec_tokens_check(tokens, in->req.operator_id, tok, now))
			return evcs_cec_fail(st, CEC_RET_TOKEN, "token unknown, expired or not issued to this OperatorID");
	}
	return evcs_cec_request_open(&in->req, in->partner.keys, &in->data, st);
}

char *evcs_cec_inbound_reply(const cec_inbound_t *in, int ret, const char *msg, const json_t *data)
{
	/* Without a known partner there is no key to sign with; the reply goes out unsigned,
	 * which partners must tolerate for errors anyway (§9). */
	const cec_keys_t *k = NULL;
	const cec_profile_t *p = NULL;
	if (in->have_partner && evcs_cec_keys_check(in->partner.keys, NULL) == 0) {
		k = in->partner.keys;
		p = in->partner.profile;
	}
	return evcs_cec_response_build(p, k, ret, msg, ret == CEC_RET_OK ? data : NULL);
}

void evcs_cec_inbound_clear(cec_inbound_t *in)
{
	evcs_cec_request_clear(&in->req);
	json_decref(in->data);
	memset(in, 0, sizeof *in);
}

json_t *evcs_cec_token_serve(cec_inbound_t *in, cec_token_store_t *tokens, int64_t now, cec_status_t *st)
{
	json_t *op = evcs_cec_jget(in->data, "OperatorID"), *sec = evcs_cec_jget(in->data, "OperatorSecret");
	if (!json_is_string(op) || !json_string_length(op)) {
		evcs_cec_fail(st, CEC_RET_BIZ, "OperatorID missing in Data");
		return NULL;
	}
	if (!json_is_string(sec) || !json_string_length(sec)) {
		evcs_cec_fail(st, CEC_RET_BIZ, "OperatorSecret missing in Data");
		return NULL;
	}
	const char *opid = json_string_value(op);
	ok(st);
	if (strcmp(opid, in->req.operator_id) || !in->have_partner)
		return evcs_cec_token_reply(opid, NULL, 0, 1);
	const char *want = in->partner.operator_secret;
	const char *got = json_string_value(sec);
	size_t wl = want ? strlen(want) : 0, gl = strlen(got);
	/* Compare in constant time over the expected length; the length itself is not secret. */
	bool good = want && wl == gl && wl > 0 && CRYPTO_memcmp(want, got, wl) == 0;
	if (!good)
		return evcs_cec_token_reply(opid, NULL, 0, 2);
	const cec_profile_t *p = in->partner.profile;
	char tok[CEC_TOKEN_LEN + 1];
	if (evcs_cec_tokens_issue(tokens, opid, now, p->token_ttl, p->tokens_per_partner, tok)) {
		evcs_cec_fail(st, CEC_RET_SYSTEM, "cannot issue token");
		return NULL;
	}
	json_t *reply = evcs_cec_token_reply(opid, tok, p->token_ttl, 0);
	OPENSSL_cleanse(tok, sizeof tok);
	if (!reply)
		evcs_cec_fail(st, CEC_RET_SYSTEM, "out of memory");
	return reply;
}
