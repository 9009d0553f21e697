/*
 * tests/test_cec_proto.c: T/CEC 102 part 4 transport (plugins/cec/cec_proto.h).
 * Known-answer vectors:
 *  - CEC part 4 appendix (cec.md §4): secrets 1234567890abcdef, OperatorID 123456789,
 *    TimeStamp 20160729142400, Seq 0001 -> Data il7B0BSE..., Sig 745166E8...; the plaintext
 *    (with its trailing comma) as restored in public copies and checked with the openssl CLI.
 *  - DiDi/XJ query_token request and response (cec.md §4, reproduced in AC
 *    tcec-core/src/test/resources/published-crypto-vectors.json), also checked with openssl.
 */
#include "cec_proto.h"
#include "testutil.h"

#include <string.h>

#define SECRET "1234567890abcdef"

static const cec_keys_t K = {SECRET, SECRET, SECRET};

static const char APPX_PLAIN[] =
	"{\"total\":1,\"stationStatusInfo\":{\"operationID\":\"123456789\",\"stationID\":\"111111111111111\","
	"\"connectorStatusInfos\":{\"connectorID\":1,\"equipmentID\":\"10000000000000000000001\",\"status\":4,"
	"\"currentA\":0,\"currentB\":0,\"currentC\":0,\"voltageA\":0,\"voltageB\":0,\"voltageC\":0,\"soc\":10,}}}";
static const char APPX_DATA[] =
	"il7B0BSEjFdzpyKzfOFpvg/Se1CP802RItKYFPfSLRxJ3jf0bVl9hvYOEktPAYW2nd7S8MBcyHYyacHKbISq5iTmDzG+ivnR+SZJv3USN"
	"TYVMz9rCQVSxd0cLlqsJauko79NnwQJbzDTyLooYoIwz75qBOH2/xOMirpeEqRJrF/EQjWekJmGk9RtboXePu2rka+Xm51syBPhiXJA"
	"q0GfbfaFu9tNqs/e2Vjja/ltE1M0lqvxfXQ6da6HrThsm5id4ClZFIi0acRfrsPLRixS/IQYtksxghvJwbqOsbIsITail9Ayy4tKcog"
	"eEZiOO+4Ed264NSKmk7l3wKwJLAFjCFogBx8GE3OBz4pqcAn/ydA=";
static const char APPX_SIG[] = "745166E8C43C84D37FFEC0F529C4136F";

static const char XJ_REQ_PLAIN[] = "{\"OperatorID\":\"123456789\",\n\"OperatorSecret\":\"1234567890abcdef\"}";
static const char XJ_REQ_DATA[] = "mYvffpNoFf4E/ZTC1tOw41TC5OlkEobfAYCm5N8hEusaLUaUIqOrXtdbMrSck0DSmfM7mRuOGMoCQzH0nWPGuw==";
static const char XJ_REQ_SIG[] = "D2D584A14F3F284445DF85D0E8C0697C";
static const char XJ_RESP_PLAIN[] = "{\r\n  \"OperatorID\": \"123456789\",\r\n  \"SuccStat\": 0,\r\n  \"AccessToken\": "
				    "\"kVnStIRknCCOBdXgJrmu8rb3pcccifKW2NcQrysKKIzb7iQBxkkjeq3WoGdjgrIL\",\r\n  "
				    "\"TokenAvailableTime\": 7200,\r\n  \"FailReason\": 0\r\n}";
static const char XJ_RESP_DATA[] =
	"uxeKP0ezR5yL8xSg4/ZCDh/N91/u86NXFxd2DrwZVW8zCPYcpl59Twz/yQZ3RaO4rDDrGmkvQignmNEJ+k4PGxdmIC+4fpJ8rU6osSob"
	"Y+AeA0uueuQ5+eQiWBL6p6v5XMMm91brtK8yfFELYUWQzVcxABnAwK/+dyxtUhqLIxUpkwTEU/4ktN40df9IzzlLO5uvUknPGYu9yL0"
	"pp5w9vdRxmA1RiiTDNCysz6klr9bunGV3VJa2qpLcgeZMf/oG";
static const char XJ_RESP_SIG[] = "58E52010C7DEE87FE183B0AFA5B2BE30";

static cec_profile_t prof(void)
{
	cec_profile_t p;
	evcs_cec_profile_default(&p);
	return p;
}

/* Envelope JSON text with the given field values; NULL leaves the field out. */
static char *envelope(const char *op, const char *data, const char *ts, const char *seq, const char *sig)
{
	json_t *o = json_object();
	if (op)
		json_object_set_new(o, "OperatorID", json_string(op));
	if (data)
		json_object_set_new(o, "Data", json_string(data));
	if (ts)
		json_object_set_new(o, "TimeStamp", json_string(ts));
	if (seq)
		json_object_set_new(o, "Seq", json_string(seq));
	if (sig)
		json_object_set_new(o, "Sig", json_string(sig));
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

/* A correctly signed envelope for a plaintext under keys k. */
static char *signed_env(const cec_keys_t *k, const char *op, const char *plain, const char *ts, const char *seq)
{
	char *d = evcs_cec_encrypt(k, plain, strlen(plain));
	char sig[33];
	evcs_cec_sign_request(k->sig_secret, op, d, ts, seq, false, sig);
	char *e = envelope(op, d, ts, seq, sig);
	free(d);
	return e;
}

/* ---------------------------------------------------------------- KATs */

static void test_kat_appendix_encrypt(void)
{
	char *d = evcs_cec_encrypt(&K, APPX_PLAIN, strlen(APPX_PLAIN));
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	CU_ASSERT_STRING_EQUAL(d, APPX_DATA);
	free(d);
}

static void test_kat_appendix_decrypt(void)
{
	unsigned char *pt;
	size_t n;
	CU_ASSERT_EQUAL_FATAL(evcs_cec_decrypt(&K, APPX_DATA, strlen(APPX_DATA), &pt, &n), 0);
	CU_ASSERT_EQUAL(n, strlen(APPX_PLAIN));
	CU_ASSERT_EQUAL(memcmp(pt, APPX_PLAIN, n), 0);
	CU_ASSERT_EQUAL(pt[n], '\0');
	free(pt);
}

static void test_kat_appendix_sig(void)
{
	char sig[33];
	CU_ASSERT_EQUAL(evcs_cec_sign_request(SECRET, "123456789", APPX_DATA, "20160729142400", "0001", false, sig), 0);
	CU_ASSERT_STRING_EQUAL(sig, APPX_SIG);
	CU_ASSERT_EQUAL(evcs_cec_sign_request(SECRET, "123456789", APPX_DATA, "20160729142400", "0001", true, sig), 0);
	CU_ASSERT_STRING_EQUAL(sig, "745166e8c43c84d37ffec0f529c4136f");
	/* One of the OCR-damaged public copies of Data (jfObV19) must not verify. */
	char bad[sizeof APPX_DATA];
	memcpy(bad, APPX_DATA, sizeof bad);
	char *at = strstr(bad, "jf0bVl9");
	CU_ASSERT_PTR_NOT_NULL_FATAL(at);
	memcpy(at, "jfObV19", 7);
	evcs_cec_sign_request(SECRET, "123456789", bad, "20160729142400", "0001", false, sig);
	CU_ASSERT_STRING_NOT_EQUAL(sig, APPX_SIG);
}

/* The appendix envelope passes the envelope and signature checks, but its plaintext is not
 * valid JSON (trailing comma), so opening it is a business-parameter error, never a 500. */
static void test_kat_appendix_envelope(void)
{
	char *body = envelope("123456789", APPX_DATA, "20160729142400", "0001", APPX_SIG);
	cec_request_t req;
	cec_status_t st;
	cec_profile_t p = prof();
	CU_ASSERT_EQUAL_FATAL(evcs_cec_request_parse(body, strlen(body), &req, &st), 0);
	CU_ASSERT_STRING_EQUAL(req.operator_id, "123456789");
	CU_ASSERT_EQUAL(evcs_cec_request_verify(&req, &p, &K, &st), 0);
	json_t *data = NULL;
	CU_ASSERT_EQUAL(evcs_cec_request_open(&req, &K, &data, &st), CEC_RET_BIZ);
	CU_ASSERT_PTR_NULL(data);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "JSON"));
	evcs_cec_request_clear(&req);
	free(body);
}

static void test_kat_xj_token_request(void)
{
	char *d = evcs_cec_encrypt(&K, XJ_REQ_PLAIN, strlen(XJ_REQ_PLAIN));
	CU_ASSERT_STRING_EQUAL(d, XJ_REQ_DATA);
	free(d);
	char sig[33];
	evcs_cec_sign_request(SECRET, "123456789", XJ_REQ_DATA, "20180120165755", "0001", false, sig);
	CU_ASSERT_STRING_EQUAL(sig, XJ_REQ_SIG);

	cec_request_t req;
	cec_status_t st;
	cec_profile_t p = prof();
	char *body = envelope("123456789", XJ_REQ_DATA, "20180120165755", "0001", XJ_REQ_SIG);
	CU_ASSERT_EQUAL_FATAL(evcs_cec_request_parse(body, strlen(body), &req, &st), 0);
	CU_ASSERT_EQUAL(evcs_cec_request_verify(&req, &p, &K, &st), 0);
	json_t *data;
	CU_ASSERT_EQUAL_FATAL(evcs_cec_request_open(&req, &K, &data, &st), 0);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(data, "OperatorSecret")), SECRET);
	json_decref(data);
	evcs_cec_request_clear(&req);
	free(body);
}

static void test_kat_xj_token_response(void)
{
	unsigned char *pt;
	size_t n;
	CU_ASSERT_EQUAL_FATAL(evcs_cec_decrypt(&K, XJ_RESP_DATA, strlen(XJ_RESP_DATA), &pt, &n), 0);
	CU_ASSERT_EQUAL(n, strlen(XJ_RESP_PLAIN));
	CU_ASSERT_EQUAL(memcmp(pt, XJ_RESP_PLAIN, n), 0);
	free(pt);
	char sig[33];
	evcs_cec_sign_response(SECRET, 0, "", XJ_RESP_DATA, false, sig);
	CU_ASSERT_STRING_EQUAL(sig, XJ_RESP_SIG);

	/* As a client: parse the whole reply and read the token out of it. */
	char body[1024];
	snprintf(body, sizeof body, "{\"Ret\":0,\"Msg\":\"\",\"Data\":\"%s\",\"Sig\":\"%s\"}", XJ_RESP_DATA,
		 XJ_RESP_SIG);
	cec_profile_t p = prof();
	cec_response_t r;
	cec_status_t st;
	CU_ASSERT_EQUAL_FATAL(evcs_cec_response_parse(body, strlen(body), &p, &K, &r, &st), 0);
	CU_ASSERT_EQUAL(r.ret, 0);
	char *tok;
	int64_t ttl;
	int fr;
	CU_ASSERT_EQUAL(evcs_cec_token_reply_parse(r.data, &tok, &ttl, &fr, &st), 0);
	CU_ASSERT_STRING_EQUAL(tok, "kVnStIRknCCOBdXgJrmu8rb3pcccifKW2NcQrysKKIzb7iQBxkkjeq3WoGdjgrIL");
	CU_ASSERT_EQUAL(ttl, 7200);
	free(tok);
	evcs_cec_response_clear(&r);
}

/* --------------------------------------------------------------- base64 */

static void test_b64_padding(void)
{
	static const struct {
		const char *in, *out;
	} v[] = {{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		char *e = evcs_cec_b64_encode(v[i].in, strlen(v[i].in));
		CU_ASSERT_STRING_EQUAL(e, v[i].out);
		free(e);
		if (!*v[i].out)
			continue;
		unsigned char *d;
		size_t n;
		CU_ASSERT_EQUAL(evcs_cec_b64_decode(v[i].out, strlen(v[i].out), &d, &n), 0);
		CU_ASSERT_EQUAL(n, strlen(v[i].in));
		CU_ASSERT_EQUAL(memcmp(d, v[i].in, n), 0);
		free(d);
	}
}

static void test_b64_no_line_breaks(void)
{
	unsigned char buf[200];
	memset(buf, 0xA5, sizeof buf);
	char *e = evcs_cec_b64_encode(buf, sizeof buf);
	CU_ASSERT_EQUAL(strlen(e), 268u);
	CU_ASSERT_PTR_NULL(strchr(e, '\n'));
	free(e);
}

static void test_b64_rejects(void)
{
	static const char *bad[] = {
		"Zm9",       /* truncated: length not a multiple of 4 */
		"Zm9vY",     /* truncated */
		"Zm9v\nYg==", /* line break (the text says none) */
		"Zm9vYg=\n",
		"Zm=vYg==",  /* '=' inside */
		"Zg=a",
		"====",
		"Zm9v Yg=",
		"Zm9v-_==",  /* URL-safe alphabet is not standard Base64 */
		"Zg===",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		unsigned char *d = (unsigned char *)"x";
		size_t n = 7;
		CU_ASSERT_EQUAL(evcs_cec_b64_decode(bad[i], strlen(bad[i]), &d, &n), CEC_E_BASE64);
		CU_ASSERT_PTR_NULL(d);
		CU_ASSERT_EQUAL(n, 0);
	}
}

/* ------------------------------------------------------------------ AES */

static void test_aes_full_block_padding(void)
{
	/* A plaintext of exactly 16 bytes gets a whole extra block of 0x10 (PKCS#5). */
	char *d = evcs_cec_encrypt(&K, "0123456789abcdef", 16);
	unsigned char *ct;
	size_t n;
	CU_ASSERT_EQUAL(evcs_cec_b64_decode(d, strlen(d), &ct, &n), 0);
	CU_ASSERT_EQUAL(n, 32);
	free(ct);
	unsigned char *pt;
	CU_ASSERT_EQUAL(evcs_cec_decrypt(&K, d, strlen(d), &pt, &n), 0);
	CU_ASSERT_EQUAL(n, 16);
	free(pt);
	free(d);
	/* Empty plaintext is one block of padding. */
	d = evcs_cec_encrypt(&K, "", 0);
	CU_ASSERT_EQUAL(strlen(d), 24u);
	CU_ASSERT_EQUAL(evcs_cec_decrypt(&K, d, strlen(d), &pt, &n), 0);
	CU_ASSERT_EQUAL(n, 0);
	free(pt);
	free(d);
}

static void test_aes_roundtrip_utf8(void)
{
	const char *s = "{\"StationName\":\"上海浦东充电站\",\"x\":\"\\u4e2d\"}";
	char *d = evcs_cec_encrypt(&K, s, strlen(s));
	unsigned char *pt;
	size_t n;
	CU_ASSERT_EQUAL(evcs_cec_decrypt(&K, d, strlen(d), &pt, &n), 0);
	CU_ASSERT_EQUAL(n, strlen(s));
	CU_ASSERT_STRING_EQUAL((char *)pt, s);
	free(pt);
	free(d);
}

static void test_aes_wrong_key(void)
{
	/* Wrong key or wrong IV: the fixture decrypts to a bad padding with these keys. */
	cec_keys_t wk = {"fedcba0987654321", SECRET, SECRET};
	unsigned char *pt;
	size_t n;
	CU_ASSERT_EQUAL(evcs_cec_decrypt(&wk, APPX_DATA, strlen(APPX_DATA), &pt, &n), CEC_E_PADDING);
	CU_ASSERT_PTR_NULL(pt);
	/* A wrong IV only garbles the first block; padding survives, content does not. */
	cec_keys_t wiv = {SECRET, "0000000000000000", SECRET};
	CU_ASSERT_EQUAL(evcs_cec_decrypt(&wiv, APPX_DATA, strlen(APPX_DATA), &pt, &n), 0);
	CU_ASSERT_NOT_EQUAL(memcmp(pt, APPX_PLAIN, 16), 0);
	CU_ASSERT_EQUAL(memcmp(pt + 16, APPX_PLAIN + 16, n - 16), 0);
	free(pt);
}

static void test_aes_bad_padding(void)
{
	/* 32-byte plaintext -> the last block is all padding (0x10); flipping bit 5 of the last
	 * byte of the previous ciphertext block turns that byte into 0x30, an invalid pad. */
	const char *s = "0123456789abcdef0123456789abcdef";
	char *d = evcs_cec_encrypt(&K, s, 32);
	unsigned char *ct;
	size_t n;
	CU_ASSERT_EQUAL_FATAL(evcs_cec_b64_decode(d, strlen(d), &ct, &n), 0);
	CU_ASSERT_EQUAL_FATAL(n, 48);
	ct[31] ^= 0x20;
	char *t = evcs_cec_b64_encode(ct, n);
	unsigned char *pt;
	CU_ASSERT_EQUAL(evcs_cec_decrypt(&K, t, strlen(t), &pt, &n), CEC_E_PADDING);
	free(t);
	/* Ciphertext cut to a non-multiple of 16. */
	t = evcs_cec_b64_encode(ct, 47);
	CU_ASSERT_EQUAL(evcs_cec_decrypt(&K, t, strlen(t), &pt, &n), CEC_E_LENGTH);
	free(t);
	free(ct);
	/* Truncated Base64 of a valid ciphertext. */
	CU_ASSERT_EQUAL(evcs_cec_decrypt(&K, d, strlen(d) - 1, &pt, &n), CEC_E_BASE64);
	free(d);
}

static void test_aes_key_length(void)
{
	cec_keys_t k15 = {"123456789012345", SECRET, SECRET};
	cec_keys_t k17 = {SECRET, "1234567890abcdefg", SECRET};
	CU_ASSERT_PTR_NULL(evcs_cec_encrypt(&k15, "x", 1));
	unsigned char *pt;
	size_t n;
	CU_ASSERT_EQUAL(evcs_cec_decrypt(&k17, APPX_DATA, strlen(APPX_DATA), &pt, &n), CEC_E_KEY);
	cec_status_t st;
	CU_ASSERT_EQUAL(evcs_cec_keys_check(&k15, &st), CEC_RET_SYSTEM);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "DataSecret"));
	CU_ASSERT_EQUAL(evcs_cec_keys_check(&k17, &st), CEC_RET_SYSTEM);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "DataSecretIV"));
	cec_keys_t nosig = {SECRET, SECRET, ""};
	CU_ASSERT_EQUAL(evcs_cec_keys_check(&nosig, &st), CEC_RET_SYSTEM);
	CU_ASSERT_EQUAL(evcs_cec_keys_check(&K, &st), 0);
}

/* ------------------------------------------------------------ signature */

static void test_sig_matching(void)
{
	CU_ASSERT_TRUE(evcs_cec_sig_matches(APPX_SIG, APPX_SIG, false));
	CU_ASSERT_TRUE(evcs_cec_sig_matches(APPX_SIG, "745166e8c43c84d37ffec0f529c4136f", true));
	CU_ASSERT_FALSE(evcs_cec_sig_matches(APPX_SIG, "745166e8c43c84d37ffec0f529c4136f", false));
	CU_ASSERT_FALSE(evcs_cec_sig_matches(APPX_SIG, "745166E8C43C84D37FFEC0F529C4136E", true));
	CU_ASSERT_FALSE(evcs_cec_sig_matches(APPX_SIG, "745166E8C43C84D37FFEC0F529C4136", true));
	CU_ASSERT_FALSE(evcs_cec_sig_matches(APPX_SIG, "745166E8C43C84D37FFEC0F529C4136FF", true));
	CU_ASSERT_FALSE(evcs_cec_sig_matches(APPX_SIG, "745166E8C43C84D37FFEC0F529C4136G", true));
	CU_ASSERT_FALSE(evcs_cec_sig_matches(APPX_SIG, "", true));
}

static void test_sig_response_parts(void)
{
	/* Ret is rendered in decimal, including negative values; Msg and Data follow with no separators. */
	char a[33], b[33];
	const char *parts[] = {"-1", "busy", "XYZ"};
	evcs_cec_sign(SECRET, parts, 3, false, a);
	evcs_cec_sign_response(SECRET, -1, "busy", "XYZ", false, b);
	CU_ASSERT_STRING_EQUAL(a, b);
	const char *one[] = {"-1busyXYZ"};
	evcs_cec_sign(SECRET, one, 1, false, a);
	CU_ASSERT_STRING_EQUAL(a, b);
	evcs_cec_sign_response(SECRET, 4001, NULL, NULL, false, a);
	const char *e[] = {"4001"};
	evcs_cec_sign(SECRET, e, 1, false, b);
	CU_ASSERT_STRING_EQUAL(a, b);
}

/* ---------------------------------------------------------- request env */

static void test_env_missing_fields(void)
{
	const char *names[] = {"OperatorID", "Data", "TimeStamp", "Seq", "Sig"};
	for (int miss = 0; miss < 5; miss++) {
		char *b = envelope(miss == 0 ? NULL : "123456789", miss == 1 ? NULL : APPX_DATA,
				   miss == 2 ? NULL : "20160729142400", miss == 3 ? NULL : "0001",
				   miss == 4 ? NULL : APPX_SIG);
		cec_request_t req;
		cec_status_t st;
		CU_ASSERT_EQUAL(evcs_cec_request_parse(b, strlen(b), &req, &st), CEC_RET_POST);
		CU_ASSERT_EQUAL(st.ret, CEC_RET_POST);
		CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, names[miss]));
		CU_ASSERT_PTR_NULL(req.data);
		free(b);
	}
	/* Empty strings and wrong types count as missing/invalid envelope fields too. */
	const char *bodies[] = {
		"", "not json", "[]", "{\"OperatorID\":\"123456789\",\"Data\":\"\",\"TimeStamp\":\"20160729142400\","
				      "\"Seq\":\"0001\",\"Sig\":\"x\"}",
		"{\"OperatorID\":123456789,\"Data\":\"QQ==\",\"TimeStamp\":\"20160729142400\",\"Seq\":\"0001\","
		"\"Sig\":\"x\"}",
		"{\"OperatorID\":\"123456789\",\"Data\":null,\"TimeStamp\":\"20160729142400\",\"Seq\":\"0001\","
		"\"Sig\":\"x\"}",
		"{\"OperatorID\":\"123456789\",\"Data\":7,\"TimeStamp\":\"20160729142400\",\"Seq\":\"0001\",\"Sig\":\"x\"}",
	};
	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
		cec_request_t req;
		cec_status_t st;
		CU_ASSERT_EQUAL(evcs_cec_request_parse(bodies[i], strlen(bodies[i]), &req, &st), CEC_RET_POST);
	}
}

static void test_env_formats(void)
{
	static const struct {
		const char *op, *ts, *seq, *needle;
	} v[] = {
		{"12345678", "20160729142400", "0001", "OperatorID"},
		{"1234567890", "20160729142400", "0001", "OperatorID"},
		{"1234-6789", "20160729142400", "0001", "OperatorID"},
		{"123456789", "2016072914240", "0001", "TimeStamp"},
		{"123456789", "201607291424000", "0001", "TimeStamp"},
		{"123456789", "2016-07-29 14:24", "0001", "TimeStamp"},
		{"123456789", "20161329142400", "0001", "TimeStamp"}, /* month 13 */
		{"123456789", "20170229142400", "0001", "TimeStamp"}, /* not a leap year */
		{"123456789", "20160729246000", "0001", "TimeStamp"},
		{"123456789", "1469773440", "0001", "TimeStamp"},     /* epoch seconds, as one Go client sends */
		{"123456789", "20160729142400", "001", "Seq"},
		{"123456789", "20160729142400", "00001", "Seq"},
		{"123456789", "20160729142400", "00a1", "Seq"},
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		char *b = envelope(v[i].op, APPX_DATA, v[i].ts, v[i].seq, APPX_SIG);
		cec_request_t req;
		cec_status_t st;
		CU_ASSERT_EQUAL(evcs_cec_request_parse(b, strlen(b), &req, &st), CEC_RET_POST);
		CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, v[i].needle));
		free(b);
	}
	/* Leap day and key case are fine. */
	const char *okb = "{\"operatorid\":\"123456789\",\"DATA\":\"QQ==\",\"timestamp\":\"20160229235959\","
			  "\"seq\":\"9999\",\"sig\":\"00\",\"extra\":1}";
	cec_request_t req;
	cec_status_t st;
	CU_ASSERT_EQUAL(evcs_cec_request_parse(okb, strlen(okb), &req, &st), 0);
	CU_ASSERT_STRING_EQUAL(req.timestamp, "20160229235959");
	CU_ASSERT_STRING_EQUAL(req.data, "QQ==");
	evcs_cec_request_clear(&req);
}

static void test_env_sig_errors(void)
{
	cec_profile_t p = prof();
	cec_status_t st;
	cec_request_t req;
	/* Tampered Sig, wrong-length Sig, tampered Data, tampered Seq: all 4001. */
	const char *sigs[] = {"745166E8C43C84D37FFEC0F529C4136E", "745166E8", ""};
	for (int i = 0; i < 2; i++) {
		char *b = envelope("123456789", APPX_DATA, "20160729142400", "0001", sigs[i]);
		CU_ASSERT_EQUAL_FATAL(evcs_cec_request_parse(b, strlen(b), &req, &st), 0);
		CU_ASSERT_EQUAL(evcs_cec_request_verify(&req, &p, &K, &st), CEC_RET_SIG);
		evcs_cec_request_clear(&req);
		free(b);
	}
	char *b = envelope("123456789", APPX_DATA, "20160729142400", "0002", APPX_SIG);
	CU_ASSERT_EQUAL(evcs_cec_request_parse(b, strlen(b), &req, &st), 0);
	CU_ASSERT_EQUAL(evcs_cec_request_verify(&req, &p, &K, &st), CEC_RET_SIG);
	CU_ASSERT_EQUAL(st.ret, CEC_RET_SIG);
	evcs_cec_request_clear(&req);
	free(b);
	/* Right envelope, wrong SigSecret. */
	b = envelope("123456789", APPX_DATA, "20160729142400", "0001", APPX_SIG);
	cec_keys_t other = {SECRET, SECRET, "another-secret"};
	CU_ASSERT_EQUAL(evcs_cec_request_parse(b, strlen(b), &req, &st), 0);
	CU_ASSERT_EQUAL(evcs_cec_request_verify(&req, &p, &other, &st), CEC_RET_SIG);
	evcs_cec_request_clear(&req);
	free(b);
}

static void test_env_sig_case_profiles(void)
{
	cec_status_t st;
	cec_request_t req;
	char *b = envelope("123456789", APPX_DATA, "20160729142400", "0001", "745166e8c43c84d37ffec0f529c4136f");
	CU_ASSERT_EQUAL_FATAL(evcs_cec_request_parse(b, strlen(b), &req, &st), 0);
	cec_profile_t p = prof();
	CU_ASSERT_EQUAL(evcs_cec_request_verify(&req, &p, &K, &st), 0); /* tolerant default */
	p.sig_accept_any_case = false;
	CU_ASSERT_EQUAL(evcs_cec_request_verify(&req, &p, &K, &st), CEC_RET_SIG); /* AC-strict */
	p.sig_lower_out = true;
	CU_ASSERT_EQUAL(evcs_cec_request_verify(&req, &p, &K, &st), 0); /* ORISE: lowercase only */
	evcs_cec_request_clear(&req);
	free(b);
	b = envelope("123456789", APPX_DATA, "20160729142400", "0001", APPX_SIG);
	CU_ASSERT_EQUAL_FATAL(evcs_cec_request_parse(b, strlen(b), &req, &st), 0);
	CU_ASSERT_EQUAL(evcs_cec_request_verify(&req, &p, &K, &st), CEC_RET_SIG);
	evcs_cec_request_clear(&req);
	free(b);
}

static void test_env_plain_data_profile(void)
{
	/* CPIT/CJV debugging form: Data as an object. Refused (4003) unless the profile allows it;
	 * then Sig covers the compact serialisation. */
	const char *compact = "{\"PageNo\":1}";
	char sig[33];
	evcs_cec_sign_request(SECRET, "123456789", compact, "20160729142400", "0001", false, sig);
	char body[256];
	snprintf(body, sizeof body,
		 "{\"OperatorID\":\"123456789\",\"Data\":{ \"PageNo\" : 1 },\"TimeStamp\":\"20160729142400\","
		 "\"Seq\":\"0001\",\"Sig\":\"%s\"}",
		 sig);
	cec_request_t req;
	cec_status_t st;
	cec_profile_t p = prof();
	CU_ASSERT_EQUAL_FATAL(evcs_cec_request_parse(body, strlen(body), &req, &st), 0);
	CU_ASSERT_TRUE(req.data_plain);
	CU_ASSERT_EQUAL(evcs_cec_request_verify(&req, &p, &K, &st), CEC_RET_POST);
	p.accept_plain_data = true;
	CU_ASSERT_EQUAL(evcs_cec_request_verify(&req, &p, &K, &st), 0);
	json_t *d;
	CU_ASSERT_EQUAL_FATAL(evcs_cec_request_open(&req, &K, &d, &st), 0);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(d, "PageNo")), 1);
	json_decref(d);
	evcs_cec_request_clear(&req);
}

static void test_env_open_errors(void)
{
	cec_status_t st;
	cec_request_t req;
	json_t *d;
	/* Valid signature, but Data is encrypted with another DataSecret -> 4004. */
	cec_keys_t other = {"fedcba0987654321", SECRET, SECRET};
	char *b = signed_env(&other, "123456789", "{\"a\":1}", "20240101000000", "0001");
	CU_ASSERT_EQUAL_FATAL(evcs_cec_request_parse(b, strlen(b), &req, &st), 0);
	CU_ASSERT_EQUAL(evcs_cec_request_open(&req, &K, &d, &st), CEC_RET_BIZ);
	evcs_cec_request_clear(&req);
	free(b);
	/* Encrypted but not an object. */
	b = signed_env(&K, "123456789", "[1,2]", "20240101000000", "0001");
	CU_ASSERT_EQUAL_FATAL(evcs_cec_request_parse(b, strlen(b), &req, &st), 0);
	CU_ASSERT_EQUAL(evcs_cec_request_open(&req, &K, &d, &st), CEC_RET_BIZ);
	evcs_cec_request_clear(&req);
	free(b);
	/* Data that is not Base64 at all. */
	b = envelope("123456789", "%%%%", "20240101000000", "0001", APPX_SIG);
	CU_ASSERT_EQUAL_FATAL(evcs_cec_request_parse(b, strlen(b), &req, &st), 0);
	CU_ASSERT_EQUAL(evcs_cec_request_open(&req, &K, &d, &st), CEC_RET_BIZ);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "Base64"));
	evcs_cec_request_clear(&req);
	free(b);
}

/* --------------------------------------------------------- accept() paths */

struct partners {
	cec_profile_t p;
	cec_keys_t k;
	int mode; /* 0 normal, 1 lookup fails, 2 bad keys */
};

static int lookup(void *ud, const char *opid, cec_partner_t *out)
{
	struct partners *ps = ud;
	static const cec_keys_t badk = {"short", SECRET, SECRET};
	if (ps->mode == 1)
		return -1;
	if (strcmp(opid, "123456789"))
		return 0;
	out->profile = &ps->p;
	out->keys = ps->mode == 2 ? &badk : &ps->k;
	out->operator_secret = "opsecret-0000001";
	return 1;
}

static void test_accept_paths(void)
{
	struct partners ps = {.k = K};
	evcs_cec_profile_default(&ps.p);
	cec_token_store_t *ts = evcs_cec_tokens_new();
	char tok[CEC_TOKEN_LEN + 1], hdr[128];
	CU_ASSERT_EQUAL_FATAL(evcs_cec_tokens_issue(ts, "123456789", 1000, 7200, 4, tok), 0);
	snprintf(hdr, sizeof hdr, "Bearer %s", tok);
	char *good = signed_env(&K, "123456789", "{\"PageNo\":2}", "20240101000000", "0001");
	cec_inbound_t in;

	CU_ASSERT_EQUAL(evcs_cec_accept(good, strlen(good), hdr, false, lookup, &ps, ts, 1000, &in), 0);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(in.data, "PageNo")), 2);
	CU_ASSERT_TRUE(in.have_partner);
	evcs_cec_inbound_clear(&in);

	/* 4003: incomplete envelope. */
	CU_ASSERT_EQUAL(evcs_cec_accept("{}", 2, hdr, false, lookup, &ps, ts, 1000, &in), CEC_RET_POST);
	CU_ASSERT_EQUAL(in.st.ret, CEC_RET_POST);
	evcs_cec_inbound_clear(&in);
	/* 4004: unknown OperatorID (ORISE). */
	char *stranger = signed_env(&K, "987654321", "{}", "20240101000000", "0001");
	CU_ASSERT_EQUAL(evcs_cec_accept(stranger, strlen(stranger), hdr, false, lookup, &ps, ts, 1000, &in),
			CEC_RET_BIZ);
	CU_ASSERT_PTR_NOT_NULL(strstr(in.st.msg, "OperatorID"));
	evcs_cec_inbound_clear(&in);
	free(stranger);
	/* 500: lookup failure and broken partner keys are ours, not the caller's. */
	ps.mode = 1;
	CU_ASSERT_EQUAL(evcs_cec_accept(good, strlen(good), hdr, false, lookup, &ps, ts, 1000, &in), CEC_RET_SYSTEM);
	evcs_cec_inbound_clear(&in);
	ps.mode = 2;
	CU_ASSERT_EQUAL(evcs_cec_accept(good, strlen(good), hdr, false, lookup, &ps, ts, 1000, &in), CEC_RET_SYSTEM);
	evcs_cec_inbound_clear(&in);
	ps.mode = 0;
	/* 4001 before 4002: a bad signature with no token is a signature error. */
	cec_keys_t wrongsig = {SECRET, SECRET, "nope"};
	char *badsig = signed_env(&wrongsig, "123456789", "{}", "20240101000000", "0001");
	CU_ASSERT_EQUAL(evcs_cec_accept(badsig, strlen(badsig), NULL, false, lookup, &ps, ts, 1000, &in), CEC_RET_SIG);
	evcs_cec_inbound_clear(&in);
	free(badsig);
	/* 4002: no header, malformed header, unknown token, expired token, another operator's token. */
	CU_ASSERT_EQUAL(evcs_cec_accept(good, strlen(good), NULL, false, lookup, &ps, ts, 1000, &in), CEC_RET_TOKEN);
	evcs_cec_inbound_clear(&in);
	CU_ASSERT_EQUAL(evcs_cec_accept(good, strlen(good), tok, false, lookup, &ps, ts, 1000, &in), CEC_RET_TOKEN);
	evcs_cec_inbound_clear(&in);
	char fake[128];
	snprintf(fake, sizeof fake, "Bearer %064d", 7);
	CU_ASSERT_EQUAL(evcs_cec_accept(good, strlen(good), fake, false, lookup, &ps, ts, 1000, &in), CEC_RET_TOKEN);
	evcs_cec_inbound_clear(&in);
	CU_ASSERT_EQUAL(evcs_cec_accept(good, strlen(good), hdr, false, lookup, &ps, ts, 1000 + 7200, &in),
			CEC_RET_TOKEN);
	evcs_cec_inbound_clear(&in);
	char tok2[CEC_TOKEN_LEN + 1], hdr2[128];
	evcs_cec_tokens_issue(ts, "555555555", 1000, 7200, 4, tok2);
	snprintf(hdr2, sizeof hdr2, "bearer %s", tok2);
	CU_ASSERT_EQUAL(evcs_cec_accept(good, strlen(good), hdr2, false, lookup, &ps, ts, 1000, &in), CEC_RET_TOKEN);
	evcs_cec_inbound_clear(&in);
	/* The token route needs no Authorization. */
	CU_ASSERT_EQUAL(evcs_cec_accept(good, strlen(good), NULL, true, lookup, &ps, ts, 1000, &in), 0);
	evcs_cec_inbound_clear(&in);
	/* 4004: signed correctly, token fine, Data not decryptable with the partner's key. */
	cec_keys_t otherdata = {"fedcba0987654321", SECRET, SECRET};
	char *wrongdata = signed_env(&otherdata, "123456789", "{}", "20240101000000", "0001");
	CU_ASSERT_EQUAL(evcs_cec_accept(wrongdata, strlen(wrongdata), hdr, false, lookup, &ps, ts, 1000, &in),
			CEC_RET_BIZ);
	evcs_cec_inbound_clear(&in);
	free(wrongdata);
	free(good);
	evcs_cec_tokens_free(ts);
}

static void test_inbound_reply(void)
{
	struct partners ps = {.k = K};
	evcs_cec_profile_default(&ps.p);
	char *good = signed_env(&K, "123456789", "{}", "20240101000000", "0001");
	cec_inbound_t in;
	CU_ASSERT_EQUAL(evcs_cec_accept(good, strlen(good), NULL, true, lookup, &ps, NULL, 0, &in), 0);
	json_t *data = json_pack("{s:i}", "Status", 0);
	char *resp = evcs_cec_inbound_reply(&in, 0, "", data);
	cec_response_t r;
	cec_status_t st;
	CU_ASSERT_EQUAL_FATAL(evcs_cec_response_parse(resp, strlen(resp), &ps.p, &K, &r, &st), 0);
	CU_ASSERT_TRUE(json_equal(r.data, data));
	evcs_cec_response_clear(&r);
	free(resp);
	/* An error reply carries no Data even if some was given, and is signed. */
	resp = evcs_cec_inbound_reply(&in, CEC_RET_BIZ, "ConnectorID missing", data);
	json_t *env = json_loads(resp, 0, NULL);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(env, "Data")), "");
	char want[33];
	evcs_cec_sign_response(SECRET, 4004, "ConnectorID missing", "", false, want);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(env, "Sig")), want);
	json_decref(env);
	free(resp);
	evcs_cec_inbound_clear(&in);
	/* Unknown caller: nothing to sign with, Sig is empty. */
	memset(&in, 0, sizeof in);
	resp = evcs_cec_inbound_reply(&in, CEC_RET_POST, "missing envelope field Sig", NULL);
	env = json_loads(resp, 0, NULL);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(env, "Ret")), 4003);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(env, "Sig")), "");
	json_decref(env);
	free(resp);
	json_decref(data);
	free(good);
}

/* --------------------------------------------------------- response env */

static void test_response_roundtrip_and_tamper(void)
{
	cec_profile_t p = prof();
	json_t *data = json_pack("{s:s, s:i}", "StartChargeSeq", "123456789201805081628123456", "SuccStat", 0);
	char *body = evcs_cec_response_build(&p, &K, 0, "成功", data);
	cec_response_t r;
	cec_status_t st;
	CU_ASSERT_EQUAL_FATAL(evcs_cec_response_parse(body, strlen(body), &p, &K, &r, &st), 0);
	CU_ASSERT_STRING_EQUAL(r.msg, "成功");
	CU_ASSERT_TRUE(json_equal(r.data, data));
	evcs_cec_response_clear(&r);
	/* Tamper with Msg: the MAC covers it. */
	json_t *env = json_loads(body, 0, NULL);
	json_object_set_new(env, "Msg", json_string("ok"));
	char *t = json_dumps(env, JSON_COMPACT);
	CU_ASSERT_EQUAL(evcs_cec_response_parse(t, strlen(t), &p, &K, &r, &st), CEC_RET_SIG);
	free(t);
	/* An extra OperatorID is ignored (AC), the MAC does not cover it. */
	json_object_set_new(env, "Msg", json_string("成功"));
	json_object_set_new(env, "OperatorID", json_string("123456789"));
	t = json_dumps(env, JSON_COMPACT);
	CU_ASSERT_EQUAL(evcs_cec_response_parse(t, strlen(t), &p, &K, &r, &st), 0);
	evcs_cec_response_clear(&r);
	free(t);
	/* Wrong data key -> 4004 locally. */
	cec_keys_t wk = {"fedcba0987654321", SECRET, SECRET};
	CU_ASSERT_EQUAL(evcs_cec_response_parse(body, strlen(body), &p, &wk, &r, &st), CEC_RET_BIZ);
	json_decref(env);
	free(body);
	json_decref(data);
	/* Not an envelope. */
	CU_ASSERT_EQUAL(evcs_cec_response_parse("<html>", 6, &p, &K, &r, &st), CEC_RET_POST);
	CU_ASSERT_EQUAL(evcs_cec_response_parse("{\"Msg\":\"\"}", 10, &p, &K, &r, &st), CEC_RET_POST);
	const char *badret[] = {"{\"Ret\":\"0.5\",\"Sig\":\"\"}", "{\"Ret\":0.0,\"Sig\":\"\"}",
				"{\"Ret\":\"ok\",\"Sig\":\"\"}", "{\"Ret\":99999999999,\"Sig\":\"\"}"};
	for (size_t i = 0; i < 4; i++)
		CU_ASSERT_EQUAL(evcs_cec_response_parse(badret[i], strlen(badret[i]), &p, &K, &r, &st), CEC_RET_POST);
}

static void test_response_unsigned_errors(void)
{
	cec_profile_t p = prof();
	cec_response_t r;
	cec_status_t st;
	/* ORISE: {"Ret":4002,"Msg":"...","Data":null,"Sig":null} */
	const char *orise = "{\"Ret\":4002,\"Msg\":\"token error\",\"Data\":null,\"Sig\":null}";
	CU_ASSERT_EQUAL(evcs_cec_response_parse(orise, strlen(orise), &p, &K, &r, &st), 0);
	CU_ASSERT_EQUAL(r.ret, 4002);
	CU_ASSERT_TRUE(r.unsigned_error);
	CU_ASSERT_PTR_NULL(r.data);
	evcs_cec_response_clear(&r);
	p.accept_unsigned_errors = false;
	CU_ASSERT_EQUAL(evcs_cec_response_parse(orise, strlen(orise), &p, &K, &r, &st), CEC_RET_SIG);
	/* A success reply is never accepted unsigned. */
	p.accept_unsigned_errors = true;
	const char *s0 = "{\"Ret\":0,\"Msg\":\"\",\"Data\":\"\",\"Sig\":\"\"}";
	CU_ASSERT_EQUAL(evcs_cec_response_parse(s0, strlen(s0), &p, &K, &r, &st), CEC_RET_SIG);
	/* Our own signed error with empty Data, and Ret sent as a string. */
	char *body = evcs_cec_response_build(&p, &K, CEC_RET_BUSY, "busy", NULL);
	CU_ASSERT_EQUAL(evcs_cec_response_parse(body, strlen(body), &p, &K, &r, &st), 0);
	CU_ASSERT_EQUAL(r.ret, -1);
	CU_ASSERT_FALSE(r.unsigned_error);
	evcs_cec_response_clear(&r);
	free(body);
	char sig[33], b2[128];
	evcs_cec_sign_response(SECRET, 500, "", "", false, sig);
	snprintf(b2, sizeof b2, "{\"Ret\":\"500\",\"Sig\":\"%s\"}", sig);
	CU_ASSERT_EQUAL(evcs_cec_response_parse(b2, strlen(b2), &p, &K, &r, &st), 0);
	CU_ASSERT_EQUAL(r.ret, 500);
	evcs_cec_response_clear(&r);
}

/* ------------------------------------------------------ client direction */

static void test_client_request_roundtrip(void)
{
	/* We sign a push with the ORISE profile (lowercase); an ORISE-strict receiver accepts it. */
	cec_profile_t p = prof();
	evcs_cec_profile_preset(&p, "orise");
	json_t *data = json_pack("{s:{s:s, s:i}}", "ConnectorStatusInfo", "ConnectorID", "C1", "Status", 3);
	json_object_set_new(data, "Money", evcs_cec_json_dec(1234567, 5, 2));
	cec_stamp_t stamp = {0};
	char ts[15], seq[5];
	CU_ASSERT_EQUAL(evcs_cec_stamp_next(&stamp, 1700000000, p.utc_offset_sec, ts, seq), 0);
	cec_status_t st;
	char *body = evcs_cec_request_build(&p, &K, "MA1G55M8X", data, ts, seq, &st);
	CU_ASSERT_PTR_NOT_NULL_FATAL(body);
	cec_request_t req;
	CU_ASSERT_EQUAL_FATAL(evcs_cec_request_parse(body, strlen(body), &req, &st), 0);
	CU_ASSERT_STRING_EQUAL(req.timestamp, "20231115061320");
	CU_ASSERT_STRING_EQUAL(req.seq, "0001");
	p.sig_accept_any_case = false;
	CU_ASSERT_EQUAL(evcs_cec_request_verify(&req, &p, &K, &st), 0);
	json_t *d;
	CU_ASSERT_EQUAL_FATAL(evcs_cec_request_open(&req, &K, &d, &st), 0);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(d, "ConnectorStatusInfo"), "Status")), 3);
	/* The decimal went over the wire as the number 12.35. */
	int64_t m;
	CU_ASSERT_EQUAL(evcs_cec_json_get_dec(json_object_get(d, "Money"), 5, &m), 0);
	CU_ASSERT_EQUAL(m, 1235000);
	json_decref(d);
	evcs_cec_request_clear(&req);
	free(body);
	/* Broken keys: no body, and a 500-class reason. */
	cec_keys_t bad = {"x", SECRET, SECRET};
	CU_ASSERT_PTR_NULL(evcs_cec_request_build(&p, &bad, "MA1G55M8X", data, ts, seq, &st));
	CU_ASSERT_EQUAL(st.ret, CEC_RET_SYSTEM);
	json_decref(data);
}

static void test_stamp_sequence(void)
{
	cec_stamp_t s = {0};
	char ts[15], seq[5];
	CU_ASSERT_EQUAL(evcs_cec_stamp_next(&s, 1469773440 - 8 * 3600, 8 * 3600, ts, seq), 0);
	CU_ASSERT_STRING_EQUAL(ts, "20160729062400");
	CU_ASSERT_STRING_EQUAL(seq, "0001");
	evcs_cec_stamp_next(&s, 1469773440 - 8 * 3600, 8 * 3600, ts, seq);
	CU_ASSERT_STRING_EQUAL(seq, "0002");
	evcs_cec_stamp_next(&s, 1469773441 - 8 * 3600, 8 * 3600, ts, seq);
	CU_ASSERT_STRING_EQUAL(seq, "0001");
	CU_ASSERT_STRING_EQUAL(ts, "20160729062401");
	for (int i = 2; i <= 9999; i++)
		CU_ASSERT_EQUAL_FATAL(evcs_cec_stamp_next(&s, 1469773441 - 8 * 3600, 8 * 3600, ts, seq), 0);
	CU_ASSERT_STRING_EQUAL(seq, "9999");
	CU_ASSERT_EQUAL(evcs_cec_stamp_next(&s, 1469773441 - 8 * 3600, 8 * 3600, ts, seq), -1);
	CU_ASSERT_EQUAL(evcs_cec_stamp_next(&s, 1469773442 - 8 * 3600, 8 * 3600, ts, seq), 0);
	CU_ASSERT_STRING_EQUAL(seq, "0001");
}

/* ---------------------------------------------------------------- time */

static void test_time_format_parse(void)
{
	char buf[20];
	int64_t t;
	/* 2016-07-29 14:24:00 in UTC+8 is 06:24:00 UTC (epoch 1469773440). */
	CU_ASSERT_EQUAL(evcs_cec_time_parse("20160729142400", CEC_TF_STAMP, 8 * 3600, &t), 0);
	CU_ASSERT_EQUAL(t, 1469773440);
	CU_ASSERT_STRING_EQUAL(evcs_cec_time_format(t, 8 * 3600, CEC_TF_DATETIME, buf), "2016-07-29 14:24:00");
	CU_ASSERT_STRING_EQUAL(evcs_cec_time_format(t, 8 * 3600, CEC_TF_DATE, buf), "2016-07-29");
	CU_ASSERT_STRING_EQUAL(evcs_cec_time_format(t, 0, CEC_TF_STAMP, buf), "20160729062400");
	CU_ASSERT_EQUAL(evcs_cec_time_parse("2000-02-29 23:59:59", CEC_TF_DATETIME, 0, &t), 0);
	CU_ASSERT_EQUAL(t, 951868799);
	CU_ASSERT_EQUAL(evcs_cec_time_parse("1900-02-29", CEC_TF_DATE, 0, &t), -1);
	CU_ASSERT_EQUAL(evcs_cec_time_parse("2024-04-31", CEC_TF_DATE, 0, &t), -1);
	CU_ASSERT_EQUAL(evcs_cec_time_parse("2024-4-30", CEC_TF_DATE, 0, &t), -1);
	CU_ASSERT_EQUAL(evcs_cec_time_parse("2024-04-30 24:00:00", CEC_TF_DATETIME, 0, &t), -1);
	CU_ASSERT_EQUAL(evcs_cec_time_parse("2024-04-30T10:00:00", CEC_TF_DATETIME, 0, &t), -1);
	CU_ASSERT_EQUAL(evcs_cec_time_parse("235960", CEC_TF_HMS, 0, &t), -1);
	CU_ASSERT_EQUAL(evcs_cec_time_parse("073000", CEC_TF_HMS, 0, &t), 0);
	CU_ASSERT_EQUAL(t, 27000);
	CU_ASSERT_STRING_EQUAL(evcs_cec_time_format(27000, 8 * 3600, CEC_TF_HMS, buf), "073000");
	/* Before 1970 and across the date line in local time. */
	CU_ASSERT_STRING_EQUAL(evcs_cec_time_format(-1, 0, CEC_TF_DATETIME, buf), "1969-12-31 23:59:59");
	CU_ASSERT_STRING_EQUAL(evcs_cec_time_format(16 * 3600, 8 * 3600, CEC_TF_DATETIME, buf), "1970-01-02 00:00:00");
}

/* ------------------------------------------------------------- decimals */

static void test_decimal_format(void)
{
	char b[40];
	static const struct {
		int64_t v;
		unsigned scale, dec;
		const char *out;
	} v[] = {
		{1234567, 5, 2, "12.35"},   /* 12.34567 yuan -> 12.35 */
		{1234499, 5, 2, "12.34"},
		{1235000, 5, 2, "12.35"},
		{500, 5, 2, "0.01"},        /* exactly half rounds away from zero */
		{499, 5, 2, "0.00"},
		{-500, 5, 2, "-0.01"},
		{-499, 5, 2, "0.00"},       /* no "-0.00" */
		{100000, 5, 4, "1.0000"},
		{123456, 4, 3, "12.346"},
		{123456, 4, 2, "12.35"},
		{60000, 3, 1, "60.0"},      /* 60000 W -> 60.0 kW */
		{7040, 3, 1, "7.0"},
		{7050, 3, 1, "7.1"},
		{121473701, 6, 6, "121.473701"},
		{-33, 6, 6, "-0.000033"},
		{5, 0, 2, "5.00"},
		{0, 5, 2, "0.00"},
		{INT64_MAX, 5, 2, "92233720368547.76"},
		{INT64_MIN, 5, 2, "-92233720368547.76"},
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		CU_ASSERT_EQUAL(evcs_cec_dec_format(v[i].v, v[i].scale, v[i].dec, b, sizeof b), 0);
		CU_ASSERT_STRING_EQUAL(b, v[i].out);
	}
	CU_ASSERT_EQUAL(evcs_cec_dec_format(12345, 5, 2, b, 4), -1); /* buffer too small */
}

static void test_decimal_dumps(void)
{
	json_t *o = json_object();
	json_object_set_new(o, "TotalMoney", evcs_cec_json_dec(1230000, 5, 2));
	json_object_set_new(o, "Arr", json_pack("[o,o]", evcs_cec_json_dec(1, 4, 3), evcs_cec_json_dec(-5, 1, 1)));
	json_object_set_new(o, "Name", json_string("cecdec:1.00"));
	json_object_set_new(o, "Odd", json_string("\x1f" "cecdec:abc"));
	char *s = evcs_cec_dumps(o);
	CU_ASSERT_STRING_EQUAL(s, "{\"TotalMoney\":12.30,\"Arr\":[0.000,-0.5],\"Name\":\"cecdec:1.00\","
				  "\"Odd\":\"\\u001Fcecdec:abc\"}");
	/* jansson reads our output back as numbers. */
	json_t *back = json_loads(s, 0, NULL);
	CU_ASSERT_TRUE(json_is_real(json_object_get(back, "TotalMoney")));
	json_decref(back);
	free(s);
	json_decref(o);
}

static void test_decimal_input(void)
{
	int64_t v;
	json_t *j = json_loads("[12.35, 0.1, \"7.125\", 3, \"-0.005\", 1e30, \"1.2.3\", true, 0.30000000000000004]",
			       0, NULL);
	CU_ASSERT_EQUAL(evcs_cec_json_get_dec(json_array_get(j, 0), 5, &v), 0);
	CU_ASSERT_EQUAL(v, 1235000);
	CU_ASSERT_EQUAL(evcs_cec_json_get_dec(json_array_get(j, 1), 4, &v), 0);
	CU_ASSERT_EQUAL(v, 1000);
	CU_ASSERT_EQUAL(evcs_cec_json_get_dec(json_array_get(j, 2), 2, &v), 0);
	CU_ASSERT_EQUAL(v, 713); /* 7.125 -> 7.13 half away from zero */
	CU_ASSERT_EQUAL(evcs_cec_json_get_dec(json_array_get(j, 3), 5, &v), 0);
	CU_ASSERT_EQUAL(v, 300000);
	CU_ASSERT_EQUAL(evcs_cec_json_get_dec(json_array_get(j, 4), 2, &v), 0);
	CU_ASSERT_EQUAL(v, -1);
	CU_ASSERT_EQUAL(evcs_cec_json_get_dec(json_array_get(j, 5), 2, &v), -1);
	CU_ASSERT_EQUAL(evcs_cec_json_get_dec(json_array_get(j, 6), 2, &v), -1);
	CU_ASSERT_EQUAL(evcs_cec_json_get_dec(json_array_get(j, 7), 2, &v), -1);
	CU_ASSERT_EQUAL(evcs_cec_json_get_dec(json_array_get(j, 8), 4, &v), 0);
	CU_ASSERT_EQUAL(v, 3000);
	json_decref(j);
	json_t *m = evcs_cec_json_dec(4242, 2, 2);
	CU_ASSERT_EQUAL(evcs_cec_json_get_dec(m, 2, &v), 0);
	CU_ASSERT_EQUAL(v, 4242);
	json_decref(m);
}

static void test_jget_case(void)
{
	json_t *o = json_loads("{\"stationID\":\"S1\",\"ServicePrice\":1}", 0, NULL);
	CU_ASSERT_STRING_EQUAL(json_string_value(evcs_cec_jget(o, "StationID")), "S1");
	CU_ASSERT_PTR_NULL(evcs_cec_jget(o, "Station"));
	CU_ASSERT_PTR_NOT_NULL(evcs_cec_jget_any(o, "SevicePrice", "ServicePrice", (const char *)NULL));
	CU_ASSERT_PTR_NULL(evcs_cec_jget_any(o, "SevicePrice", (const char *)NULL));
	CU_ASSERT_PTR_NULL(evcs_cec_jget(json_array_get(o, 0), "x"));
	json_decref(o);
}

/* ---------------------------------------------------------------- tokens */

static void test_tokens_lifecycle(void)
{
	cec_token_store_t *ts = evcs_cec_tokens_new();
	char a[CEC_TOKEN_LEN + 1], b[CEC_TOKEN_LEN + 1];
	CU_ASSERT_EQUAL(evcs_cec_tokens_issue(ts, "123456789", 100, 60, 4, a), 0);
	CU_ASSERT_EQUAL(strlen(a), CEC_TOKEN_LEN);
	CU_ASSERT_EQUAL(strspn(a, "0123456789abcdef"), CEC_TOKEN_LEN);
	CU_ASSERT_EQUAL(evcs_cec_tokens_issue(ts, "123456789", 110, 60, 4, b), 0);
	CU_ASSERT_STRING_NOT_EQUAL(a, b);
	/* Both live at once (rotation without a gap). */
	CU_ASSERT_EQUAL(evcs_cec_tokens_check(ts, "123456789", a, 120), 0);
	CU_ASSERT_EQUAL(evcs_cec_tokens_check(ts, "123456789", b, 120), 0);
	/* Expiry is exclusive at issued+ttl. */
	CU_ASSERT_EQUAL(evcs_cec_tokens_check(ts, "123456789", a, 159), 0);
	CU_ASSERT_EQUAL(evcs_cec_tokens_check(ts, "123456789", a, 160), CEC_RET_TOKEN);
	CU_ASSERT_EQUAL(evcs_cec_tokens_check(ts, "123456789", b, 160), 0);
	/* Bound to its operator. */
	CU_ASSERT_EQUAL(evcs_cec_tokens_check(ts, "987654321", b, 120), CEC_RET_TOKEN);
	CU_ASSERT_EQUAL(evcs_cec_tokens_check(ts, "123456789", NULL, 120), CEC_RET_TOKEN);
	CU_ASSERT_EQUAL(evcs_cec_tokens_check(ts, "123456789", "abc", 120), CEC_RET_TOKEN);
	CU_ASSERT_EQUAL(evcs_cec_tokens_prune(ts, 160), 1);
	CU_ASSERT_EQUAL(evcs_cec_tokens_prune(ts, 1000), 0);
	CU_ASSERT_EQUAL(evcs_cec_tokens_issue(ts, "123456789", 100, 0, 4, a), CEC_RET_SYSTEM);
	evcs_cec_tokens_free(ts);
}

static void test_tokens_bounded(void)
{
	cec_token_store_t *ts = evcs_cec_tokens_new();
	char t[5][CEC_TOKEN_LEN + 1], other[CEC_TOKEN_LEN + 1];
	evcs_cec_tokens_issue(ts, "111111111", 1, 3600, 2, other);
	for (int i = 0; i < 5; i++)
		evcs_cec_tokens_issue(ts, "123456789", 10 + i, 3600, 3, t[i]);
	/* Only the 3 newest survive; the other operator's token is untouched. */
	CU_ASSERT_EQUAL(evcs_cec_tokens_check(ts, "123456789", t[0], 20), CEC_RET_TOKEN);
	CU_ASSERT_EQUAL(evcs_cec_tokens_check(ts, "123456789", t[1], 20), CEC_RET_TOKEN);
	for (int i = 2; i < 5; i++)
		CU_ASSERT_EQUAL(evcs_cec_tokens_check(ts, "123456789", t[i], 20), 0);
	CU_ASSERT_EQUAL(evcs_cec_tokens_check(ts, "111111111", other, 20), 0);
	CU_ASSERT_EQUAL(evcs_cec_tokens_prune(ts, 20), 4);
	/* Growth beyond the initial capacity. */
	for (int i = 0; i < 100; i++) {
		char op[16];
		snprintf(op, sizeof op, "%09u", (unsigned)i % 1000000000u);
		CU_ASSERT_EQUAL(evcs_cec_tokens_issue(ts, op, 30, 3600, 1, other), 0);
	}
	CU_ASSERT_EQUAL(evcs_cec_tokens_check(ts, "000000099", other, 40), 0);
	CU_ASSERT_EQUAL(evcs_cec_tokens_prune(ts, 40), 104);
	evcs_cec_tokens_free(ts);
}

static void test_bearer(void)
{
	char h[128];
	snprintf(h, sizeof h, "Bearer abc");
	CU_ASSERT_STRING_EQUAL(evcs_cec_bearer(h), "abc");
	CU_ASSERT_STRING_EQUAL(evcs_cec_bearer("  bearer\tXYZ"), "XYZ");
	CU_ASSERT_PTR_NULL(evcs_cec_bearer("Bearer"));
	CU_ASSERT_PTR_NULL(evcs_cec_bearer("Bearer "));
	CU_ASSERT_PTR_NULL(evcs_cec_bearer("Basic abc"));
	CU_ASSERT_PTR_NULL(evcs_cec_bearer("Bearerabc"));
	CU_ASSERT_PTR_NULL(evcs_cec_bearer("Bearer abc def"));
	CU_ASSERT_PTR_NULL(evcs_cec_bearer(NULL));
}

static void test_token_serve(void)
{
	struct partners ps = {.k = K};
	evcs_cec_profile_default(&ps.p);
	ps.p.token_ttl = 600;
	cec_token_store_t *ts = evcs_cec_tokens_new();
	static const struct {
		const char *plain;
		int succ, fail;
	} v[] = {
		{"{\"OperatorID\":\"123456789\",\"OperatorSecret\":\"opsecret-0000001\"}", 0, 0},
		{"{\"OperatorID\":\"123456789\",\"OperatorSecret\":\"opsecret-0000002\"}", 1, 2},
		{"{\"OperatorID\":\"123456789\",\"OperatorSecret\":\"opsecret-000000\"}", 1, 2},
		{"{\"OperatorID\":\"999999999\",\"OperatorSecret\":\"opsecret-0000001\"}", 1, 1},
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		char *body = signed_env(&K, "123456789", v[i].plain, "20240101000000", "0001");
		cec_inbound_t in;
		CU_ASSERT_EQUAL_FATAL(evcs_cec_accept(body, strlen(body), NULL, true, lookup, &ps, ts, 50, &in), 0);
		cec_status_t st;
		json_t *reply = evcs_cec_token_serve(&in, ts, 50, &st);
		CU_ASSERT_PTR_NOT_NULL_FATAL(reply);
		CU_ASSERT_EQUAL(json_integer_value(json_object_get(reply, "SuccStat")), v[i].succ);
		CU_ASSERT_EQUAL(json_integer_value(json_object_get(reply, "FailReason")), v[i].fail);
		const char *tok = json_string_value(json_object_get(reply, "AccessToken"));
		if (v[i].succ == 0) {
			CU_ASSERT_EQUAL(json_integer_value(json_object_get(reply, "TokenAvailableTime")), 600);
			CU_ASSERT_EQUAL(evcs_cec_tokens_check(ts, "123456789", tok, 649), 0);
			CU_ASSERT_EQUAL(evcs_cec_tokens_check(ts, "123456789", tok, 650), CEC_RET_TOKEN);
		} else {
			CU_ASSERT_STRING_EQUAL(tok, "");
			CU_ASSERT_EQUAL(json_integer_value(json_object_get(reply, "TokenAvailableTime")), 0);
		}
		json_decref(reply);
		evcs_cec_inbound_clear(&in);
		free(body);
	}
	CU_ASSERT_EQUAL(evcs_cec_tokens_prune(ts, 60), 1);
	/* Missing OperatorSecret is a 4004. */
	char *body = signed_env(&K, "123456789", "{\"OperatorID\":\"123456789\"}", "20240101000000", "0001");
	cec_inbound_t in;
	CU_ASSERT_EQUAL_FATAL(evcs_cec_accept(body, strlen(body), NULL, true, lookup, &ps, ts, 50, &in), 0);
	cec_status_t st;
	CU_ASSERT_PTR_NULL(evcs_cec_token_serve(&in, ts, 50, &st));
	CU_ASSERT_EQUAL(st.ret, CEC_RET_BIZ);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "OperatorSecret"));
	evcs_cec_inbound_clear(&in);
	free(body);
	evcs_cec_tokens_free(ts);
}

static void test_token_client_side(void)
{
	json_t *rq = evcs_cec_token_request("MA1G55M8X", "acb93539fc9bg78k");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(rq, "OperatorSecret")), "acb93539fc9bg78k");
	json_decref(rq);
	json_t *refused = evcs_cec_token_reply("MA1G55M8X", NULL, 0, 2);
	char *tok;
	int64_t ttl;
	int fr;
	cec_status_t st;
	CU_ASSERT_EQUAL(evcs_cec_token_reply_parse(refused, &tok, &ttl, &fr, &st), CEC_RET_BIZ);
	CU_ASSERT_EQUAL(fr, 2);
	CU_ASSERT_PTR_NULL(tok);
	json_decref(refused);
	json_t *noTtl = json_pack("{s:i, s:s}", "SuccStat", 0, "AccessToken", "x");
	CU_ASSERT_EQUAL(evcs_cec_token_reply_parse(noTtl, &tok, &ttl, &fr, &st), CEC_RET_BIZ);
	json_decref(noTtl);
}

/* ----------------------------------------------------------- misc/profile */

static void test_ret_texts(void)
{
	CU_ASSERT_STRING_EQUAL(evcs_cec_ret_text(CEC_RET_SIG), "signature error");
	CU_ASSERT_STRING_EQUAL(evcs_cec_ret_text(CEC_RET_TOKEN), "token error");
	CU_ASSERT_STRING_EQUAL(evcs_cec_ret_text(CEC_RET_POST), "invalid POST parameters");
	CU_ASSERT_STRING_EQUAL(evcs_cec_ret_text(CEC_RET_BIZ), "invalid business parameters");
	CU_ASSERT_STRING_EQUAL(evcs_cec_ret_text(CEC_RET_SYSTEM), "system error");
	CU_ASSERT_STRING_EQUAL(evcs_cec_ret_text(CEC_RET_BUSY), "system busy");
	CU_ASSERT_EQUAL(CEC_RET_SIG, 4001);
	CU_ASSERT_EQUAL(CEC_RET_TOKEN, 4002);
	CU_ASSERT_EQUAL(CEC_RET_POST, 4003);
	CU_ASSERT_EQUAL(CEC_RET_BIZ, 4004);
	CU_ASSERT_EQUAL(CEC_RET_SYSTEM, 500);
	CU_ASSERT_EQUAL(CEC_RET_BUSY, -1);
}

static void test_profile_config(void)
{
	cec_profile_t p = prof();
	char err[128];
	CU_ASSERT_FALSE(p.sig_lower_out);
	CU_ASSERT_TRUE(p.sig_accept_any_case);
	CU_ASSERT_EQUAL(p.energy_decimals, 3);
	CU_ASSERT_EQUAL(p.page_size_default, 10);
	CU_ASSERT_EQUAL(p.utc_offset_sec, 28800);
	CU_ASSERT_EQUAL(evcs_cec_profile_set(&p, "sig_lower_out", "yes", err, sizeof err), 0);
	CU_ASSERT_TRUE(p.sig_lower_out);
	CU_ASSERT_EQUAL(evcs_cec_profile_set(&p, "token_ttl", "604800", err, sizeof err), 0);
	CU_ASSERT_EQUAL(p.token_ttl, 604800);
	CU_ASSERT_EQUAL(evcs_cec_profile_set(&p, "utc_offset_sec", "-3600", err, sizeof err), 0);
	CU_ASSERT_EQUAL(p.utc_offset_sec, -3600);
	CU_ASSERT_EQUAL(evcs_cec_profile_set(&p, "page_size_max", "-1", err, sizeof err), -1);
	CU_ASSERT_EQUAL(evcs_cec_profile_set(&p, "energy_decimals", "4", err, sizeof err), -1);
	CU_ASSERT_EQUAL(p.energy_decimals, 3);
	CU_ASSERT_EQUAL(evcs_cec_profile_set(&p, "energy_decimals", "2", err, sizeof err), 0);
	CU_ASSERT_EQUAL(p.energy_decimals, 2);
	CU_ASSERT_EQUAL(evcs_cec_profile_set(&p, "spell_service", "maybe", err, sizeof err), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "spell_service"));
	CU_ASSERT_EQUAL(evcs_cec_profile_set(&p, "no_such_key", "1", err, sizeof err), -1);
	CU_ASSERT_EQUAL(evcs_cec_profile_preset(&p, "cec2016"), 0);
	CU_ASSERT_FALSE(p.sig_lower_out);
	CU_ASSERT_EQUAL(evcs_cec_profile_preset(&p, "orise"), 0);
	CU_ASSERT_TRUE(p.sig_lower_out && p.lower_camel_ids && p.sub_period && p.stats_star_time);
	CU_ASSERT_EQUAL(evcs_cec_profile_preset(&p, "xj"), 0);
	CU_ASSERT_TRUE(p.spell_service && p.elect_money_query);
	CU_ASSERT_EQUAL(evcs_cec_profile_preset(&p, "nope"), -1);
}

static void register_tests(void)
{
	CU_pSuite s = CU_add_suite("cec_kat", NULL, NULL);
	EVCS_ADD(s, test_kat_appendix_encrypt);
	EVCS_ADD(s, test_kat_appendix_decrypt);
	EVCS_ADD(s, test_kat_appendix_sig);
	EVCS_ADD(s, test_kat_appendix_envelope);
	EVCS_ADD(s, test_kat_xj_token_request);
	EVCS_ADD(s, test_kat_xj_token_response);
	s = CU_add_suite("cec_crypto", NULL, NULL);
	EVCS_ADD(s, test_b64_padding);
	EVCS_ADD(s, test_b64_no_line_breaks);
	EVCS_ADD(s, test_b64_rejects);
	EVCS_ADD(s, test_aes_full_block_padding);
	EVCS_ADD(s, test_aes_roundtrip_utf8);
	EVCS_ADD(s, test_aes_wrong_key);
	EVCS_ADD(s, test_aes_bad_padding);
	EVCS_ADD(s, test_aes_key_length);
	EVCS_ADD(s, test_sig_matching);
	EVCS_ADD(s, test_sig_response_parts);
	s = CU_add_suite("cec_envelope", NULL, NULL);
	EVCS_ADD(s, test_env_missing_fields);
	EVCS_ADD(s, test_env_formats);
	EVCS_ADD(s, test_env_sig_errors);
	EVCS_ADD(s, test_env_sig_case_profiles);
	EVCS_ADD(s, test_env_plain_data_profile);
	EVCS_ADD(s, test_env_open_errors);
	EVCS_ADD(s, test_accept_paths);
	EVCS_ADD(s, test_inbound_reply);
	EVCS_ADD(s, test_response_roundtrip_and_tamper);
	EVCS_ADD(s, test_response_unsigned_errors);
	EVCS_ADD(s, test_client_request_roundtrip);
	EVCS_ADD(s, test_stamp_sequence);
	s = CU_add_suite("cec_values", NULL, NULL);
	EVCS_ADD(s, test_time_format_parse);
	EVCS_ADD(s, test_decimal_format);
	EVCS_ADD(s, test_decimal_dumps);
	EVCS_ADD(s, test_decimal_input);
	EVCS_ADD(s, test_jget_case);
	s = CU_add_suite("cec_tokens", NULL, NULL);
	EVCS_ADD(s, test_tokens_lifecycle);
	EVCS_ADD(s, test_tokens_bounded);
	EVCS_ADD(s, test_bearer);
	EVCS_ADD(s, test_token_serve);
	EVCS_ADD(s, test_token_client_side);
	s = CU_add_suite("cec_misc", NULL, NULL);
	EVCS_ADD(s, test_ret_texts);
	EVCS_ADD(s, test_profile_config);
}

EVCS_TEST_MAIN(register_tests)
