/*
 * tests/test_ykc_codec.c: the YKC codec (plugins/ykc/codec.h) against
 * shared/docs/ykc.md: CRC, framing and resync (§2), field encodings (§3), every
 * frame type of §4 round-tripped in both CRC orders, the tolerance cases of §6,
 * the JSON contract of §7 (known answers copied from the reference verbatim) and
 * the `evcsctl ykc` CLI run in-process with stdout captured.
 */
#include "codec.h"
#include "fuzz/seeds/ykc_samples.h"
#include "testutil.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------- */

static size_t unhex(const char *s, uint8_t *out)
{
	size_t n = 0;
	int hi = -1;
	for (; *s; s++) {
		int v;
		if (*s >= '0' && *s <= '9')
			v = *s - '0';
		else if (*s >= 'A' && *s <= 'F')
			v = *s - 'A' + 10;
		else if (*s >= 'a' && *s <= 'f')
			v = *s - 'a' + 10;
		else
			continue;
		if (hi < 0)
			hi = v;
		else {
			out[n++] = (uint8_t)(hi << 4 | v);
			hi = -1;
		}
	}
	return n;
}

static char *decode_str(const uint8_t *b, size_t n, enum evcs_ykc_proto proto)
{
	json_t *o = evcs_ykc_json_decode(b, n, proto, NULL);
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s;
}

static json_t *decode_obj(const char *hex, enum evcs_ykc_proto proto, const char **err)
{
	uint8_t b[1024];
	size_t n = unhex(hex, b);
	return evcs_ykc_json_decode(b, n, proto, err);
}

static const char *jstr(json_t *o, const char *path1, const char *path2)
{
	json_t *v = json_object_get(o, path1);
	if (path2)
		v = json_object_get(v, path2);
	/* never NULL, so a missing key fails the comparison instead of crashing */
	return json_is_string(v) ? json_string_value(v) : "(missing)";
}

static int build(uint8_t type, unsigned n, enum evcs_ykc_crc_order order, uint8_t *out)
{
	struct evcs_ykc_msg m;
	static const uint8_t seq[2] = { 0x71, 0xAD };
	ykc_sample(type, &m, n);
	return evcs_ykc_encode_frame(&m, seq, order, out, EVCS_YKC_MAX_FRAME, NULL);
}

/* Frame with the given body bytes wrapped in a correct header and CRC. */
static size_t wrap(uint8_t type, const uint8_t *body, size_t n, uint8_t *out)
{
	static const uint8_t seq[2] = { 0x01, 0x00 };
	int rc = evcs_ykc_frame_build(out, EVCS_YKC_MAX_FRAME, seq, 0, type, body, n, EVCS_YKC_CRC_LE);
	CU_ASSERT_FATAL(rc > 0);
	return (size_t)rc;
}

/* ---- §2.4 CRC ------------------------------------------------------------ */

static void test_crc_check_value(void)
{
	CU_ASSERT_EQUAL(evcs_ykc_crc16((const uint8_t *)"123456789", 9), 0x4B37);
	CU_ASSERT_EQUAL(evcs_ykc_crc16(NULL, 0), 0xFFFF);
	const uint8_t data[] = "123456789";
	uint8_t le[2] = { 0x37, 0x4B }, be[2] = { 0x4B, 0x37 }, bad[2] = { 0x37, 0x4C };
	enum evcs_ykc_crc_order o = EVCS_YKC_CRC_BE;
	CU_ASSERT_TRUE(evcs_ykc_crc_match(data, 9, le, &o));
	CU_ASSERT_EQUAL(o, EVCS_YKC_CRC_LE);
	CU_ASSERT_TRUE(evcs_ykc_crc_match(data, 9, be, &o));
	CU_ASSERT_EQUAL(o, EVCS_YKC_CRC_BE);
	CU_ASSERT_FALSE(evcs_ykc_crc_match(data, 9, bad, &o));
}

static void test_crc_equal_bytes_report_le(void)
{
	/* Find a body whose CRC has two equal bytes: both orders match, "le" wins. */
	uint8_t cov[6] = { 0x00, 0x00, 0x00, 0x03, 0, 0 };
	bool found = false;
	for (unsigned i = 0; i < 65536 && !found; i++) {
		cov[4] = (uint8_t)i;
		cov[5] = (uint8_t)(i >> 8);
		uint16_t c = evcs_ykc_crc16(cov, 6);
		if ((c & 0xFF) == (c >> 8)) {
			uint8_t w[2] = { (uint8_t)c, (uint8_t)c };
			enum evcs_ykc_crc_order o = EVCS_YKC_CRC_BE;
			CU_ASSERT_TRUE(evcs_ykc_crc_match(cov, 6, w, &o));
			CU_ASSERT_EQUAL(o, EVCS_YKC_CRC_LE);
			found = true;
		}
	}
	CU_ASSERT_TRUE(found);
}

/* ---- §2.6 example frames --------------------------------------------------- */

static const char HB_LE[] = "68 0D 07 00 00 03 32 01 06 00 01 92 36 01 00 E2 E8";
static const char HB_BE[] = "68 0D 07 00 00 03 32 01 06 00 01 92 36 01 00 E8 E2";
static const char HBR_BE[] = "68 0D 07 00 00 04 32 01 06 00 01 92 36 01 00 32 53";

static void test_spec_2_6_frames(void)
{
	uint8_t want[32], got[64];
	size_t wn;
	struct evcs_ykc_msg m = { 0 };
	const uint8_t seq[2] = { 0x07, 0x00 };
	m.type = 0x03;
	strcpy(m.u.heartbeat.pile, "32010600019236");
	strcpy(m.u.heartbeat.gun, "01");
	wn = unhex(HB_LE, want);
	CU_ASSERT_EQUAL(evcs_ykc_encode_frame(&m, seq, EVCS_YKC_CRC_LE, got, sizeof(got), NULL), (int)wn);
	CU_ASSERT_EQUAL(memcmp(got, want, wn), 0);
	CU_ASSERT_EQUAL(evcs_ykc_crc16(got + 2, 13), 0xE8E2);
	wn = unhex(HB_BE, want);
	CU_ASSERT_EQUAL(evcs_ykc_encode_frame(&m, seq, EVCS_YKC_CRC_BE, got, sizeof(got), NULL), (int)wn);
	CU_ASSERT_EQUAL(memcmp(got, want, wn), 0);

	/* The platform's answer echoes the seq bytes and the pile's CRC order. */
	struct evcs_ykc_scan s;
	struct evcs_ykc_frame f;
	evcs_ykc_scan_init(&s, want, wn, 0);
	CU_ASSERT_TRUE_FATAL(evcs_ykc_scan_next(&s, &f));
	CU_ASSERT_EQUAL(f.crc_order, EVCS_YKC_CRC_BE);
	struct evcs_ykc_msg req, ans = { 0 };
	CU_ASSERT_EQUAL(evcs_ykc_decode_frame(&f, EVCS_YKC_PROTO_16, &req, NULL), EVCS_YKC_OK);
	ans.type = 0x04;
	strcpy(ans.u.heartbeat_reply.pile, req.u.heartbeat.pile);
	strcpy(ans.u.heartbeat_reply.gun, req.u.heartbeat.gun);
	wn = unhex(HBR_BE, want);
	CU_ASSERT_EQUAL(evcs_ykc_encode_frame(&ans, f.seq, f.crc_order, got, sizeof(got), NULL), (int)wn);
	CU_ASSERT_EQUAL(memcmp(got, want, wn), 0);
	CU_ASSERT_EQUAL(evcs_ykc_crc16(got + 2, 13), 0x3253);
}

/* ---- §4: every type, both orders, through the whole pipeline -------------- */

static void roundtrip_one(uint8_t type, unsigned cards, enum evcs_ykc_crc_order order)
{
	uint8_t frame[EVCS_YKC_MAX_FRAME], again[EVCS_YKC_MAX_FRAME];
	int size = build(type, cards, order, frame);
	CU_ASSERT_FATAL(size >= EVCS_YKC_OVERHEAD);
	struct evcs_ykc_scan s;
	struct evcs_ykc_frame f;
	evcs_ykc_scan_init(&s, frame, (size_t)size, 0);
	CU_ASSERT_TRUE_FATAL(evcs_ykc_scan_next(&s, &f));
	CU_ASSERT_EQUAL(f.size, (size_t)size);
	CU_ASSERT_EQUAL(f.type, type);
	CU_ASSERT_EQUAL(s.skipped, 0);
	CU_ASSERT_EQUAL(evcs_ykc_scan_keep(&s), 0);
	/* a CRC whose two bytes are equal reads as "le" whichever order wrote it */
	if (frame[size - 1] != frame[size - 2])
		CU_ASSERT_EQUAL(f.crc_order, order);
	struct evcs_ykc_msg m;
	struct evcs_ykc_warnings w;
	CU_ASSERT_EQUAL(evcs_ykc_decode_frame(&f, EVCS_YKC_PROTO_16, &m, &w), EVCS_YKC_OK);
	CU_ASSERT_EQUAL(w.n, 0);
	if (w.n) {
		char buf[160];
		evcs_ykc_warning_str(&w.w[0], buf, sizeof(buf));
		fprintf(stderr, "type 0x%02X: %s\n", type, buf);
	}
	const char *bad = NULL;
	int size2 = evcs_ykc_encode_frame(&m, f.seq, f.crc_order, again, sizeof(again), &bad);
	CU_ASSERT_EQUAL(size2, size);
	CU_ASSERT_EQUAL(memcmp(again, frame, (size_t)size), 0);
	const char *err = "unset";
	json_t *o = evcs_ykc_json_decode(frame, (size_t)size, EVCS_YKC_PROTO_16, &err);
	CU_ASSERT_PTR_NULL(err);
	CU_ASSERT_STRING_EQUAL(jstr(o, "name", NULL), evcs_ykc_type_name(type, EVCS_YKC_PROTO_16));
	CU_ASSERT_PTR_NULL(json_object_get(o, "warnings"));
	CU_ASSERT_TRUE(json_is_object(json_object_get(o, "fields")));
	json_decref(o);
}

static void test_roundtrip_every_type(void)
{
	for (size_t i = 0; i < YKC_NTYPES; i++) {
		roundtrip_one(ykc_all_types[i], 1, EVCS_YKC_CRC_LE);
		roundtrip_one(ykc_all_types[i], 1, EVCS_YKC_CRC_BE);
		roundtrip_one(ykc_all_types[i], 30, EVCS_YKC_CRC_LE); /* longest lists */
		roundtrip_one(ykc_all_types[i], 30, EVCS_YKC_CRC_BE);
	}
}

static void test_layout_sizes(void)
{
	static const struct { uint8_t type; int size; } want[] = {
		{ 0x01, 30 }, { 0x02, 8 },   { 0x03, 9 },   { 0x04, 9 },   { 0x05, 9 },  { 0x06, 10 },
		{ 0x09, 7 },  { 0x0A, 90 },  { 0x12, 8 },   { 0x13, 60 },  { 0x15, 73 }, { 0x17, 45 },
		{ 0x19, 39 }, { 0x1B, 32 },  { 0x1D, 28 },  { 0x21, 28 },  { 0x23, 44 }, { 0x25, 31 },
		{ 0x31, 51 }, { 0x32, 38 },  { 0x33, 26 },  { 0x34, 44 },  { 0x35, 10 }, { 0x36, 8 },
		{ 0x3B, 158 }, { 0x40, 17 }, { 0x41, 16 },  { 0x42, 20 },  { 0x43, 9 },  { 0x44, 8 },
		{ 0x45, 7 },  { 0x46, 8 },   { 0x47, 7 },   { 0x48, 8 },   { 0x51, 8 },  { 0x52, 9 },
		{ 0x55, 14 }, { 0x56, 14 },  { 0x57, 8 },   { 0x58, 90 },  { 0x61, 16 }, { 0x62, 13 },
		{ 0x63, 13 }, { 0x91, 8 },   { 0x92, 8 },   { 0x93, 8 },   { 0x94, 94 }, { 0xA1, 58 },
		{ 0xA2, 44 }, { 0xA3, 33 },  { 0xA4, 50 },  { 0xF0, 9 },   { 0xF1, 8 },
	};
	CU_ASSERT_EQUAL(sizeof(want) / sizeof(want[0]), YKC_NTYPES);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		CU_ASSERT_EQUAL(evcs_ykc_layout_size(want[i].type), want[i].size);
		/* a fixed layout encodes to exactly its size */
		uint8_t f[EVCS_YKC_MAX_FRAME];
		int n = build(want[i].type, 1, EVCS_YKC_CRC_LE, f);
		int expect = want[i].size;
		switch (want[i].type) {
		case 0x44: expect += 16; break;
		case 0x45: expect += 10; break;
		case 0x46: case 0x48: expect += 8; break;
		case 0x47: expect += 9; break;
		case 0xF0: expect += f[6 + 8]; break;
		}
		CU_ASSERT_EQUAL(n, expect + 8);
	}
	CU_ASSERT_EQUAL(evcs_ykc_layout_size(0x3D), -ENOENT);
	CU_ASSERT_PTR_NULL(evcs_ykc_type_name(0xA1, EVCS_YKC_PROTO_15));
	CU_ASSERT_STRING_EQUAL(evcs_ykc_type_name(0xA1, EVCS_YKC_PROTO_16), "parallel_start_request");
	CU_ASSERT_STRING_EQUAL(evcs_ykc_type_name(0x3B, EVCS_YKC_PROTO_15), "transaction_record");
}

/* Every byte of every fixed layout lands in a field: arbitrary body bytes with
 * valid BCD, ASCII, slots and CP56 re-encode to themselves. */
static void test_every_body_byte_is_covered(void)
{
	for (size_t i = 0; i < YKC_NTYPES; i++) {
		uint8_t type = ykc_all_types[i];
		uint8_t frame[EVCS_YKC_MAX_FRAME], body[EVCS_YKC_MAX_BODY], out[EVCS_YKC_MAX_BODY];
		int size = build(type, 3, EVCS_YKC_CRC_LE, frame);
		size_t n = (size_t)size - 8;
		memcpy(body, frame + 6, n);
		/* perturb every byte that is not text/BCD/slot/time by xor-ing a pattern,
		 * then check the field table puts it back where it came from */
		struct evcs_ykc_msg m;
		/* text and tariff-slot bytes have values the perturbation would make invalid */
		size_t keep_lo = 0, keep_hi = 0, keep2_lo = 0, keep2_hi = 0;
		if (type == 0x0A || type == 0x58)
			keep_lo = 42, keep_hi = 90;
		if (type == 0x94)
			keep_lo = 10, keep_hi = 26, keep2_lo = 28, keep2_hi = 92;
		if (type == 0x01)
			keep_lo = 10, keep_hi = 18;
		if (type == 0xF0)
			keep_lo = 9, keep_hi = n;
		for (unsigned pass = 0; pass < 2; pass++) {
			CU_ASSERT_EQUAL(evcs_ykc_decode_body(type, body, n, EVCS_YKC_PROTO_16, &m, NULL), EVCS_YKC_OK);
			CU_ASSERT_EQUAL(evcs_ykc_encode_body(&m, out, sizeof(out), NULL), (int)n);
			CU_ASSERT_EQUAL(memcmp(out, body, n), 0);
			if (memcmp(out, body, n) != 0)
				fprintf(stderr, "type 0x%02X does not round-trip\n", type);
			for (size_t k = 0; k < n; k++)
				if (!(k >= keep_lo && k < keep_hi) && !(k >= keep2_lo && k < keep2_hi))
					body[k] = (uint8_t)(body[k] ^ ((k * 37u + 11u) & 0x11u)); /* BCD stays decimal */
			if (type == 0x44 || type == 0x46 || type == 0x48)
				body[7] = frame[6 + 7]; /* keep the count honest */
			if (type == 0xF0)
				body[8] = frame[6 + 8];
		}
	}
}

/* ---- §2.5 stream splitting ------------------------------------------------ */

struct seen {
	size_t n;
	size_t off[512], size[512];
	size_t skipped;
};

/* Feed `in` in chunks of the given sizes (cycled) through a connection-style
 * buffer that keeps the unconsumed tail, like the server does. */
static void split_chunked(const uint8_t *in, size_t len, const size_t *chunks, size_t nchunks,
			  struct seen *out)
{
	uint8_t buf[4096];
	size_t have = 0, pos = 0, base = 0, c = 0; /* base: stream offset of buf[0] */
	memset(out, 0, sizeof(*out));
	while (pos < len || have) {
		size_t take = chunks[c++ % nchunks];
		if (take > len - pos)
			take = len - pos;
		memcpy(buf + have, in + pos, take);
		have += take;
		pos += take;
		struct evcs_ykc_scan s;
		struct evcs_ykc_frame f;
		evcs_ykc_scan_init(&s, buf, have, 0);
		while (evcs_ykc_scan_next(&s, &f)) {
			CU_ASSERT_FATAL(out->n < 512);
			out->off[out->n] = base + f.offset;
			out->size[out->n++] = f.size;
		}
		out->skipped += s.skipped;
		size_t keep = evcs_ykc_scan_keep(&s);
		CU_ASSERT(keep < EVCS_YKC_MAX_FRAME);
		memmove(buf, buf + s.pos, keep);
		base += s.pos;
		have = keep;
		if (pos == len)
			break;
	}
	/* skipped + leftover + consumed = input length */
	size_t consumed = 0;
	for (size_t i = 0; i < out->n; i++)
		consumed += out->size[i];
	CU_ASSERT_EQUAL(out->skipped + have + consumed, len);
}

static size_t make_stream(uint8_t *s)
{
	size_t n = 0;
	static const uint8_t garbage[] = { 0xFF, 0x00, 0x68, 0x02, 0x68, 0x01, 0x13, 0x68, 0x68 };
	memcpy(s + n, garbage, sizeof(garbage));
	n += sizeof(garbage);
	for (size_t i = 0; i < YKC_NTYPES; i++) {
		n += (size_t)build(ykc_all_types[i], (unsigned)i % 5 + 1,
				   (i & 1) ? EVCS_YKC_CRC_BE : EVCS_YKC_CRC_LE, s + n);
		if (i % 7 == 3) { /* a bogus candidate that swallows the next real frame */
			s[n++] = 0x68;
			s[n++] = 0x20;
		}
		if (i % 11 == 5)
			s[n++] = 0x55;
	}
	/* a frame with a corrupted CRC, then a partial tail */
	int k = build(0x03, 1, EVCS_YKC_CRC_LE, s + n);
	s[n + (size_t)k - 1] ^= 0xFF;
	n += (size_t)k;
	k = build(0x13, 1, EVCS_YKC_CRC_LE, s + n);
	n += 20; /* only 20 of its bytes */
	return n;
}

static void test_split_chunking_is_invisible(void)
{
	static uint8_t stream[65536];
	size_t len = make_stream(stream);
	struct seen whole, ones, mixed;
	size_t all[] = { len };
	size_t one[] = { 1 };
	size_t mix[] = { 3, 1, 17, 64, 2, 250, 5, 7 };
	split_chunked(stream, len, all, 1, &whole);
	split_chunked(stream, len, one, 1, &ones);
	split_chunked(stream, len, mix, sizeof(mix) / sizeof(mix[0]), &mixed);
	CU_ASSERT_EQUAL(whole.n, YKC_NTYPES);
	CU_ASSERT_EQUAL(ones.n, whole.n);
	CU_ASSERT_EQUAL(mixed.n, whole.n);
	CU_ASSERT_EQUAL(ones.skipped, whole.skipped);
	CU_ASSERT_EQUAL(mixed.skipped, whole.skipped);
	for (size_t i = 0; i < whole.n && i < ones.n && i < mixed.n; i++) {
		CU_ASSERT_EQUAL(ones.off[i], whole.off[i]);
		CU_ASSERT_EQUAL(mixed.off[i], whole.off[i]);
		CU_ASSERT_EQUAL(ones.size[i], whole.size[i]);
		CU_ASSERT_EQUAL(mixed.size[i], whole.size[i]);
	}
	/* The JSON split object obeys the same accounting. */
	json_t *o = evcs_ykc_json_split(stream, len, EVCS_YKC_PROTO_16);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "frames")), whole.n);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "skipped_bytes")), (json_int_t)whole.skipped);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "leftover_bytes")), 20);
	json_decref(o);
}

static void test_split_resync_after_garbage(void)
{
	uint8_t b[64];
	size_t n = unhex("FF 00 11 22", b);
	n += unhex(HB_LE, b + n);
	struct evcs_ykc_scan s;
	struct evcs_ykc_frame f;
	evcs_ykc_scan_init(&s, b, n, 0);
	CU_ASSERT_TRUE_FATAL(evcs_ykc_scan_next(&s, &f));
	CU_ASSERT_EQUAL(f.offset, 4);
	CU_ASSERT_EQUAL(f.size, 17);
	CU_ASSERT_EQUAL(f.crc_order, EVCS_YKC_CRC_LE);
	CU_ASSERT_EQUAL(f.seq[0], 0x07);
	CU_ASSERT_EQUAL(f.seq[1], 0x00);
	CU_ASSERT_EQUAL(f.body_len, 9);
	CU_ASSERT_EQUAL(f.body, b + 10);
	CU_ASSERT_FALSE(evcs_ykc_scan_next(&s, &f));
	CU_ASSERT_EQUAL(s.skipped, 4);
	CU_ASSERT_EQUAL(evcs_ykc_scan_keep(&s), 0);
}

static void test_split_false_start_short_len(void)
{
	/* §7.4: "68 02" then a complete frame: both bytes skipped, no leftover. */
	uint8_t b[64];
	size_t n = unhex("68 02", b);
	n += unhex(HB_LE, b + n);
	json_t *o = evcs_ykc_json_split(b, n, EVCS_YKC_PROTO_16);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "frames")), 1);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_array_get(json_object_get(o, "frames"), 0), "offset")), 2);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "skipped_bytes")), 2);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "leftover_bytes")), 0);
	json_decref(o);
	/* A lone trailing 0x68 (and 0x68 + len >= 4 but incomplete) is kept. */
	uint8_t t[] = { 0x00, 0x68 };
	struct evcs_ykc_scan s;
	struct evcs_ykc_frame f;
	evcs_ykc_scan_init(&s, t, 2, 0);
	CU_ASSERT_FALSE(evcs_ykc_scan_next(&s, &f));
	CU_ASSERT_EQUAL(s.skipped, 1);
	CU_ASSERT_EQUAL(evcs_ykc_scan_keep(&s), 1);
	/* trailing 68 03: not a frame start, both skipped */
	uint8_t u[] = { 0x68, 0x03 };
	evcs_ykc_scan_init(&s, u, 2, 0);
	CU_ASSERT_FALSE(evcs_ykc_scan_next(&s, &f));
	CU_ASSERT_EQUAL(s.skipped, 2);
	CU_ASSERT_EQUAL(evcs_ykc_scan_keep(&s), 0);
}

static void test_split_crc_mismatch_rescans_next_byte(void)
{
	/* A bogus candidate 68 0D whose 17 bytes cover the start of a real frame. */
	uint8_t b[64];
	size_t n = unhex("68 0D", b);
	n += unhex(HB_BE, b + n);
	struct evcs_ykc_scan s;
	struct evcs_ykc_frame f;
	evcs_ykc_scan_init(&s, b, n, 0);
	CU_ASSERT_TRUE_FATAL(evcs_ykc_scan_next(&s, &f));
	CU_ASSERT_EQUAL(f.offset, 2);
	CU_ASSERT_EQUAL(f.crc_order, EVCS_YKC_CRC_BE);
	CU_ASSERT_EQUAL(s.skipped, 2);
	/* A corrupted frame is not reported at all; only its 0x68 is skipped, the rest
	 * is hunted through byte by byte. */
	n = unhex("68 0D 07 00 00 03 32 01 06 00 01 92 36 01 01 E2 E8", b);
	evcs_ykc_scan_init(&s, b, n, 0);
	CU_ASSERT_FALSE(evcs_ykc_scan_next(&s, &f));
	CU_ASSERT_EQUAL(s.skipped, n);
	CU_ASSERT_EQUAL(evcs_ykc_scan_keep(&s), 0);
}

static void test_split_partial_timeout_skip(void)
{
	/* A false 68 FF holds back the heartbeat behind it until the timeout gives up
	 * the candidate. */
	uint8_t b[64];
	size_t n = unhex("68 FF", b);
	n += unhex(HB_LE, b + n);
	struct evcs_ykc_scan s;
	struct evcs_ykc_frame f;
	evcs_ykc_scan_init(&s, b, n, 0);
	CU_ASSERT_FALSE(evcs_ykc_scan_next(&s, &f));
	CU_ASSERT_EQUAL(evcs_ykc_scan_keep(&s), n);
	evcs_ykc_scan_skip_candidate(&s);
	CU_ASSERT_TRUE(evcs_ykc_scan_next(&s, &f));
	CU_ASSERT_EQUAL(f.offset, 2);
	CU_ASSERT_EQUAL(s.skipped, 2);
}

/* ---- §6 tolerance ------------------------------------------------------ */

static void test_tolerate_len_byte_is_body_length(void)
{
	/* JCPP 0x04: length byte = body length (9), CRC over the real frame. */
	uint8_t f0[EVCS_YKC_MAX_FRAME];
	int k = build(0x04, 1, EVCS_YKC_CRC_LE, f0);
	f0[1] = 9;
	CU_ASSERT_EQUAL(k, 17);
	struct evcs_ykc_scan s;
	struct evcs_ykc_frame f;
	evcs_ykc_scan_init(&s, f0, (size_t)k, 0);
	CU_ASSERT_FALSE(evcs_ykc_scan_next(&s, &f)); /* strict: resync skips it */
	CU_ASSERT_EQUAL(s.skipped, (size_t)k);
	evcs_ykc_scan_init(&s, f0, (size_t)k, EVCS_YKC_SCAN_LEN_COMPAT);
	CU_ASSERT_TRUE_FATAL(evcs_ykc_scan_next(&s, &f));
	CU_ASSERT_TRUE(f.len_compat);
	CU_ASSERT_EQUAL(f.size, 17);
	CU_ASSERT_EQUAL(f.body_len, 9);
	struct evcs_ykc_msg m;
	CU_ASSERT_EQUAL(evcs_ykc_decode_frame(&f, EVCS_YKC_PROTO_16, &m, NULL), EVCS_YKC_OK);
	CU_ASSERT_STRING_EQUAL(m.u.heartbeat_reply.gun, "02");
	/* the same for a JCPP 0x0A tariff (len byte 90 instead of 94) */
	uint8_t f1[EVCS_YKC_MAX_FRAME];
	k = build(0x0A, 1, EVCS_YKC_CRC_LE, f1);
	f1[1] = 90;
	uint8_t two[2 * EVCS_YKC_MAX_FRAME];
	memcpy(two, f1, (size_t)k);
	memcpy(two + k, f0, 17);
	evcs_ykc_scan_init(&s, two, (size_t)k + 17, EVCS_YKC_SCAN_LEN_COMPAT);
	CU_ASSERT_TRUE(evcs_ykc_scan_next(&s, &f) && f.type == 0x0A && f.body_len == 90 && f.offset == 0);
	CU_ASSERT_TRUE(evcs_ykc_scan_next(&s, &f) && f.type == 0x04 && f.offset == (size_t)k);
	CU_ASSERT_EQUAL(s.skipped, 0);
	/* compat waits for len + 8 bytes before giving up on a candidate */
	evcs_ykc_scan_init(&s, f1, (size_t)k - 1, EVCS_YKC_SCAN_LEN_COMPAT);
	CU_ASSERT_FALSE(evcs_ykc_scan_next(&s, &f));
	CU_ASSERT_EQUAL(evcs_ykc_scan_keep(&s), (size_t)k - 1);
	/* The JSON decoder sees it as bad_length with a good CRC (the n-bytes rule). */
	const char *err = NULL;
	json_t *o = evcs_ykc_json_decode(f0, 17, EVCS_YKC_PROTO_16, &err);
	CU_ASSERT_STRING_EQUAL(err, "bad_length");
	CU_ASSERT_TRUE(json_is_true(json_object_get(o, "crc_ok")));
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "gun"), "02");
	json_decref(o);
}

static void test_tolerate_long_and_short_bodies(void)
{
	struct evcs_ykc_tolerance tol;
	struct evcs_ykc_msg m;
	uint8_t frame[EVCS_YKC_MAX_FRAME], body[EVCS_YKC_MAX_BODY + 8];
	evcs_ykc_tolerance_default(&tol);

	/* 0x19 with 40 bytes (JCPP): layout decoded, surplus ignored, acted on. */
	int k = build(0x19, 1, EVCS_YKC_CRC_LE, frame);
	memcpy(body, frame + 6, (size_t)k - 8);
	body[39] = 0xEE;
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x19, body, 40, EVCS_YKC_PROTO_16, &m, NULL), EVCS_YKC_BODY_LONG);
	CU_ASSERT_EQUAL(m.u.bms_charge_end.charger_no, 1);
	CU_ASSERT_EQUAL(evcs_ykc_tolerate(&tol, &m), EVCS_YKC_ACT_WARN);
	tol.accept_long = false;
	CU_ASSERT_EQUAL(evcs_ykc_tolerate(&tol, &m), EVCS_YKC_DROP);
	tol.accept_long = true;
	size_t fl = wrap(0x19, body, 40, frame);
	const char *err = NULL;
	json_t *o = evcs_ykc_json_decode(frame, fl, EVCS_YKC_PROTO_16, &err);
	CU_ASSERT_STRING_EQUAL(err, "bad_body_length");
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(o, "fields"), "charger_no")), 1);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "body_length")), 40);
	json_decref(o);

	/* 0x25 with each 2-bit flag as a byte: 45 bytes. */
	memset(body, 0, sizeof(body));
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x25, body, 45, EVCS_YKC_PROTO_16, &m, NULL), EVCS_YKC_BODY_LONG);
	/* 0x92 with a 4-byte control: 11 bytes. */
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x92, body, 11, EVCS_YKC_PROTO_16, &m, NULL), EVCS_YKC_BODY_LONG);

	/* 0x32 with 36 bytes (JCPP): fields wholly inside are set, the rest absent. */
	k = build(0x32, 1, EVCS_YKC_CRC_LE, frame);
	memcpy(body, frame + 6, 36);
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x32, body, 36, EVCS_YKC_PROTO_16, &m, NULL), EVCS_YKC_BODY_SHORT);
	CU_ASSERT_TRUE(evcs_ykc_field_present(&m, "balance_yuan"));
	CU_ASSERT_FALSE(evcs_ykc_field_present(&m, "auth_ok"));
	CU_ASSERT_EQUAL(m.u.start_auth.balance_yuan, 100000);
	CU_ASSERT_EQUAL(evcs_ykc_tolerate(&tol, &m), EVCS_YKC_DROP); /* handler needs it all */
	fl = wrap(0x32, body, 36, frame);
	o = evcs_ykc_json_decode(frame, fl, EVCS_YKC_PROTO_16, &err);
	CU_ASSERT_STRING_EQUAL(err, "bad_body_length");
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "balance_yuan"), "1000.00");
	CU_ASSERT_PTR_NULL(json_object_get(json_object_get(o, "fields"), "auth_ok"));
	json_decref(o);

	/* the spec's 0xA2 sample carries type 0x32: a 0x32 six bytes too long */
	k = build(0xA2, 1, EVCS_YKC_CRC_LE, frame);
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x32, frame + 6, 44, EVCS_YKC_PROTO_16, &m, NULL), EVCS_YKC_BODY_LONG);
	CU_ASSERT_EQUAL(m.u.start_auth.auth_ok, 1);

	/* 0x03 short: pile and gun present is enough; without the gun it is not. */
	k = build(0x03, 1, EVCS_YKC_CRC_LE, frame);
	memcpy(body, frame + 6, 9);
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x03, body, 8, EVCS_YKC_PROTO_16, &m, NULL), EVCS_YKC_BODY_SHORT);
	CU_ASSERT_TRUE(evcs_ykc_field_present(&m, "gun"));
	CU_ASSERT_FALSE(evcs_ykc_field_present(&m, "gun_state"));
	CU_ASSERT_EQUAL(evcs_ykc_tolerate(&tol, &m), EVCS_YKC_ACT_WARN);
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x03, body, 7, EVCS_YKC_PROTO_16, &m, NULL), EVCS_YKC_BODY_SHORT);
	CU_ASSERT_EQUAL(evcs_ykc_tolerate(&tol, &m), EVCS_YKC_DROP);
	tol.accept_short = false;
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x03, body, 8, EVCS_YKC_PROTO_16, &m, NULL), EVCS_YKC_BODY_SHORT);
	CU_ASSERT_EQUAL(evcs_ykc_tolerate(&tol, &m), EVCS_YKC_DROP);
	tol.accept_short = true;

	/* 0x3B one byte short: quarantine, never a session. */
	k = build(0x3B, 1, EVCS_YKC_CRC_LE, frame);
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x3B, frame + 6, 157, EVCS_YKC_PROTO_16, &m, NULL), EVCS_YKC_BODY_SHORT);
	CU_ASSERT_EQUAL(evcs_ykc_tolerate(&tol, &m), EVCS_YKC_QUARANTINE);
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x3B, frame + 6, 158, EVCS_YKC_PROTO_16, &m, NULL), EVCS_YKC_OK);
	CU_ASSERT_EQUAL(evcs_ykc_tolerate(&tol, &m), EVCS_YKC_ACT);
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x3B, frame + 6, 159, EVCS_YKC_PROTO_16, &m, NULL), EVCS_YKC_BODY_LONG);

	/* unknown type */
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x3D, body, 20, EVCS_YKC_PROTO_16, &m, NULL), EVCS_YKC_UNKNOWN_TYPE);
	CU_ASSERT_EQUAL(evcs_ykc_tolerate(&tol, &m), EVCS_YKC_DROP);
	/* 1.6-only frames on a 1.5 session unless the pile announced 16 / compat */
	CU_ASSERT_EQUAL(evcs_ykc_session_proto(EVCS_YKC_PROTO_15, 15, false), EVCS_YKC_PROTO_15);
	CU_ASSERT_EQUAL(evcs_ykc_session_proto(EVCS_YKC_PROTO_15, 16, false), EVCS_YKC_PROTO_16);
	CU_ASSERT_EQUAL(evcs_ykc_session_proto(EVCS_YKC_PROTO_15, 15, true), EVCS_YKC_PROTO_16);
	CU_ASSERT_EQUAL(evcs_ykc_session_proto(EVCS_YKC_PROTO_16, 15, false), EVCS_YKC_PROTO_16);
	k = build(0xA1, 1, EVCS_YKC_CRC_LE, frame);
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0xA1, frame + 6, 58, EVCS_YKC_PROTO_15, &m, NULL), EVCS_YKC_UNKNOWN_TYPE);
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0xA1, frame + 6, 58, EVCS_YKC_PROTO_16, &m, NULL), EVCS_YKC_OK);
}

static void test_tolerate_card_list_counts(void)
{
	struct evcs_ykc_tolerance tol;
	struct evcs_ykc_msg m;
	struct evcs_ykc_warnings w;
	uint8_t frame[EVCS_YKC_MAX_FRAME], body[EVCS_YKC_MAX_BODY];
	evcs_ykc_tolerance_default(&tol);

	/* 0x44 with the count written as 4 bytes (JCPP): 8+3+16 bytes, count 1. */
	int k = build(0x44, 1, EVCS_YKC_CRC_LE, frame);
	memcpy(body, frame + 6, 8);
	body[8] = body[9] = body[10] = 0;
	memcpy(body + 11, frame + 6 + 8, 16);
	CU_ASSERT_EQUAL(k, 8 + 24);
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x44, body, 27, EVCS_YKC_PROTO_16, &m, &w), EVCS_YKC_BODY_COUNT);
	CU_ASSERT_EQUAL(m.u.card_sync.count, 1);
	CU_ASSERT_EQUAL(m.u.card_sync.n, 1); /* as many whole entries as the body holds */
	CU_ASSERT_EQUAL(evcs_ykc_tolerate(&tol, &m), EVCS_YKC_ACT_WARN);
	size_t fl = wrap(0x44, body, 27, frame);
	const char *err;
	json_t *o = evcs_ykc_json_decode(frame, fl, EVCS_YKC_PROTO_16, &err);
	CU_ASSERT_STRING_EQUAL(err, "bad_body_length");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(json_object_get(o, "problems"), 0)),
			       "count 1 needs a 24-byte body, body is 27 bytes");
	json_decref(o);

	/* 0x44 count 3, body holds 2 */
	k = build(0x44, 3, EVCS_YKC_CRC_LE, frame);
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x44, frame + 6, 8 + 32, EVCS_YKC_PROTO_16, &m, &w), EVCS_YKC_BODY_COUNT);
	CU_ASSERT_EQUAL(m.u.card_sync.n, 2);
	CU_ASSERT_STRING_EQUAL(m.u.card_sync.cards[1].logical_card, "0000001000000574");

	/* 0x48 with the count before the pile number */
	k = build(0x48, 2, EVCS_YKC_CRC_LE, frame);
	body[0] = 2;
	memcpy(body + 1, frame + 6, 7);
	memcpy(body + 8, frame + 6 + 8, 16);
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x48, body, 24, EVCS_YKC_PROTO_16, &m, &w), EVCS_YKC_BODY_COUNT);

	/* the 0x45 spec sample: 9 bytes per card instead of 10 */
	memset(body, 0, sizeof(body));
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x45, body, 7 + 18, EVCS_YKC_PROTO_16, &m, &w), EVCS_YKC_BODY_COUNT);
	CU_ASSERT_EQUAL(m.u.card_clear_reply.n, 1);
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x45, body, 7, EVCS_YKC_PROTO_16, &m, &w), EVCS_YKC_BODY_SHORT);
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x47, body, 7, EVCS_YKC_PROTO_16, &m, &w), EVCS_YKC_BODY_SHORT);
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x47, body, 7 + 27, EVCS_YKC_PROTO_16, &m, &w), EVCS_YKC_OK);
	CU_ASSERT_EQUAL(m.u.card_query_reply.n, 3);
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x47, body, 7 + 28, EVCS_YKC_PROTO_16, &m, &w), EVCS_YKC_BODY_COUNT);
	tol.accept_count = false;
	CU_ASSERT_EQUAL(evcs_ykc_tolerate(&tol, &m), EVCS_YKC_DROP);

	/* count above the spec maximum is only a warning (§7.3) */
	struct evcs_ykc_msg big = { 0 };
	big.type = 0x46;
	strcpy(big.u.card_list.pile, YKC_PILE);
	uint8_t b2[EVCS_YKC_MAX_BODY];
	big.u.card_list.n = 25;
	CU_ASSERT_EQUAL(evcs_ykc_encode_body(&big, b2, sizeof(b2), NULL), -ERANGE); /* encoder keeps to 24 */
	memset(body, 0, sizeof(body));
	unhex("32010600019236 19", body);
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x46, body, 8 + 25 * 8, EVCS_YKC_PROTO_16, &m, &w), EVCS_YKC_OK);
	CU_ASSERT_EQUAL(m.u.card_list.n, 25);
	CU_ASSERT_EQUAL(w.n, 1);
	CU_ASSERT_EQUAL(w.w[0].code, EVCS_YKC_W_COUNT_MAX);
	fl = wrap(0x46, body, 8 + 25 * 8, frame);
	o = evcs_ykc_json_decode(frame, fl, EVCS_YKC_PROTO_16, &err);
	CU_ASSERT_PTR_NULL(err);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "warnings")), 1);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(json_object_get(o, "fields"), "cards")), 25);
	json_decref(o);
}

static void test_card_list_json_shapes(void)
{
	uint8_t frame[EVCS_YKC_MAX_FRAME];
	char *s;
	int k = build(0x44, 2, EVCS_YKC_CRC_LE, frame);
	json_t *o = evcs_ykc_json_decode(frame, (size_t)k, EVCS_YKC_PROTO_16, NULL);
	s = json_dumps(json_object_get(o, "fields"), JSON_COMPACT | JSON_PRESERVE_ORDER);
	CU_ASSERT_STRING_EQUAL(s, "{\"pile\":\"32010600019236\",\"count\":2,\"cards\":[[\"0000001000000573\","
				  "\"10171E252C333A41\"],[\"0000001000000574\",\"11181F262D343B42\"]]}");
	free(s);
	json_decref(o);
	k = build(0x45, 2, EVCS_YKC_CRC_LE, frame);
	o = evcs_ykc_json_decode(frame, (size_t)k, EVCS_YKC_PROTO_16, NULL);
	s = json_dumps(json_object_get(o, "fields"), JSON_COMPACT | JSON_PRESERVE_ORDER);
	CU_ASSERT_STRING_EQUAL(s, "{\"pile\":\"32010600019236\",\"cards\":[[\"20272E353C434A51\",0,1],"
				  "[\"21282F363D444B52\",1,0]]}");
	free(s);
	json_decref(o);
	k = build(0x48, 2, EVCS_YKC_CRC_LE, frame);
	o = evcs_ykc_json_decode(frame, (size_t)k, EVCS_YKC_PROTO_16, NULL);
	s = json_dumps(json_object_get(o, "fields"), JSON_COMPACT | JSON_PRESERVE_ORDER);
	CU_ASSERT_STRING_EQUAL(s, "{\"pile\":\"32010600019236\",\"count\":2,\"cards\":[\"30373E454C535A61\","
				  "\"31383F464D545B62\"]}");
	free(s);
	json_decref(o);
	k = build(0x47, 1, EVCS_YKC_CRC_LE, frame);
	o = evcs_ykc_json_decode(frame, (size_t)k, EVCS_YKC_PROTO_16, NULL);
	s = json_dumps(json_object_get(o, "fields"), JSON_COMPACT | JSON_PRESERVE_ORDER);
	CU_ASSERT_STRING_EQUAL(s, "{\"pile\":\"32010600019236\",\"cards\":[[\"40474E555C636A71\",0]]}");
	free(s);
	json_decref(o);
}

static void test_odd_but_valid_values(void)
{
	uint8_t frame[EVCS_YKC_MAX_FRAME];
	struct evcs_ykc_msg m;
	struct evcs_ykc_warnings w;
	const char *err;

	/* SIM with hex nibbles: kept upper case, no warning. */
	int k = build(0x01, 1, EVCS_YKC_CRC_LE, frame);
	json_t *o = evcs_ykc_json_decode(frame, (size_t)k, EVCS_YKC_PROTO_16, &err);
	CU_ASSERT_PTR_NULL(err);
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "sim"), "898604D11722D0348606");
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "program_version"), "GV.95r13");
	CU_ASSERT_PTR_NULL(json_object_get(o, "warnings"));
	json_decref(o);

	/* protocol_version 15 accepted, 17 warned; pile with a hex nibble warned */
	frame[6 + 9] = 15;
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x01, frame + 6, 30, EVCS_YKC_PROTO_15, &m, &w), EVCS_YKC_OK);
	CU_ASSERT_EQUAL(w.n, 0);
	frame[6 + 9] = 17;
	frame[6 + 6] = 0x3A;
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x01, frame + 6, 30, EVCS_YKC_PROTO_15, &m, &w), EVCS_YKC_OK);
	CU_ASSERT_EQUAL(w.n, 2);
	CU_ASSERT_EQUAL(w.w[0].code, EVCS_YKC_W_BCD_HEX);
	CU_ASSERT_EQUAL(w.w[1].code, EVCS_YKC_W_PROTO_VERSION);
	CU_ASSERT_STRING_EQUAL(m.u.login.pile, "3201060001923A");

	/* VIN reversed in 0x31, normal in 0x3B */
	k = build(0x31, 1, EVCS_YKC_CRC_LE, frame);
	o = evcs_ykc_json_decode(frame, (size_t)k, EVCS_YKC_PROTO_16, NULL);
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "vin_text"), "LSVAU2180N2183294");
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "vin"), "343932333831324E30383132554156534C"); /* reversed on the wire */
	json_decref(o);
	k = build(0x3B, 1, EVCS_YKC_CRC_LE, frame);
	o = evcs_ykc_json_decode(frame, (size_t)k, EVCS_YKC_PROTO_16, NULL);
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "vin_text"), "LSVAU2180N2183294");
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "vin"), "4C53564155323138304E32313833323934");
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "start"), "2024-05-01T08:30:15.250");
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "meter_start_kwh"), "12345.6789");
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "flat_price"), "0.90000");
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "flat_amount"), "0.1485");
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "sharp_kwh"), "0.0000");
	json_decref(o);

	/* out-of-range values are warnings with exit status 0: 240 % power */
	uint8_t body[9];
	unhex("32010600019236 00 F0", body);
	size_t fl = wrap(0x52, body, 9, frame);
	o = evcs_ykc_json_decode(frame, fl, EVCS_YKC_PROTO_16, &err);
	CU_ASSERT_PTR_NULL(err);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(o, "fields"), "max_power_pct")), 240);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "warnings")), 1);
	json_decref(o);

	/* 0x13 with loss_kwh 0 while kwh > 0 is normal */
	struct evcs_ykc_msg rt;
	ykc_sample(0x13, &rt, 1);
	rt.u.realtime.loss_kwh = 0;
	static const uint8_t seq[2] = { 0, 0 };
	k = evcs_ykc_encode_frame(&rt, seq, EVCS_YKC_CRC_LE, frame, sizeof(frame), NULL);
	o = evcs_ykc_json_decode(frame, (size_t)k, EVCS_YKC_PROTO_16, &err);
	CU_ASSERT_PTR_NULL(err);
	CU_ASSERT_PTR_NULL(json_object_get(o, "warnings"));
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "voltage_v"), "373.2");
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "current_a"), "101.2");
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "kwh"), "8.8000");
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "amount_yuan"), "9.3280");
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "loss_kwh"), "0.0000");
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(o, "fields"), "gun_temp_c")), 34);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(o, "fields"), "batt_max_temp_c")), -5);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(o, "fields"), "hw_fault")), 0x1001);
	json_decref(o);

	/* stop reason outside §5 is a warning; 0 is "unspecified" */
	k = build(0x3B, 1, EVCS_YKC_CRC_LE, frame);
	frame[6 + 149] = 0x00;
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x3B, frame + 6, 158, EVCS_YKC_PROTO_16, &m, &w), EVCS_YKC_OK);
	CU_ASSERT_EQUAL(w.n, 0);
	frame[6 + 149] = 0x91;
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x3B, frame + 6, 158, EVCS_YKC_PROTO_16, &m, &w), EVCS_YKC_OK);
	CU_ASSERT_EQUAL(w.n, 1);
	CU_ASSERT_EQUAL(w.w[0].code, EVCS_YKC_W_STOP_REASON);
	/* an invalid CP56 date warns; all-zero bytes do not */
	frame[6 + 149] = 0x45;
	memset(frame + 6 + 24, 0, 7);
	frame[6 + 31 + 2] = 61; /* end minute 61 */
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x3B, frame + 6, 158, EVCS_YKC_PROTO_16, &m, &w), EVCS_YKC_OK);
	CU_ASSERT_EQUAL(w.n, 1);
	CU_ASSERT_EQUAL(w.w[0].code, EVCS_YKC_W_CP56);
	CU_ASSERT_STRING_EQUAL(w.w[0].field, "end");
	o = evcs_ykc_json_fields(&m);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "start")), "2000-00-00T00:00:00");
	json_decref(o);

	/* ASCII with a byte >= 0x80 becomes U+FFFD and warns */
	k = build(0x01, 1, EVCS_YKC_CRC_LE, frame);
	frame[6 + 10] = 0xC7;
	CU_ASSERT_EQUAL(evcs_ykc_decode_body(0x01, frame + 6, 30, EVCS_YKC_PROTO_16, &m, &w), EVCS_YKC_OK);
	CU_ASSERT_EQUAL(w.n, 1);
	CU_ASSERT_EQUAL(w.w[0].code, EVCS_YKC_W_ASCII_HIGH);
	o = evcs_ykc_json_fields(&m);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "program_version")), "\xEF\xBF\xBDV.95r13");
	json_decref(o);
}

/* ---- §7.3 error codes ---------------------------------------------------- */

static void expect_error(const char *hex, enum evcs_ykc_proto proto, const char *code, bool fields)
{
	const char *err = NULL;
	json_t *o = decode_obj(hex, proto, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err);
	CU_ASSERT_STRING_EQUAL(err, code);
	CU_ASSERT_STRING_EQUAL(jstr(o, "error", NULL), code);
	CU_ASSERT_TRUE(json_array_size(json_object_get(o, "problems")) >= 1);
	CU_ASSERT_EQUAL(json_object_get(o, "fields") != NULL, fields);
	if (strcmp(err, code) != 0)
		fprintf(stderr, "%s: got %s\n", hex, err);
	json_decref(o);
}

static void test_error_codes(void)
{
	/* bad_start */
	expect_error("69 0D 07 00 00 03 32 01 06 00 01 92 36 01 00 E2 E8", EVCS_YKC_PROTO_16, "bad_start", true);
	/* truncated: fewer than 8 bytes, and fewer than len + 4 */
	expect_error("68 0D 07 00", EVCS_YKC_PROTO_16, "truncated", false);
	expect_error("", EVCS_YKC_PROTO_16, "truncated", false);
	expect_error("68 0D 07 00 00 03 32 01 06 00 01 92 36 01 00 E2", EVCS_YKC_PROTO_16, "truncated", false);
	/* bad_length: len < 4; trailing bytes */
	/* (the n-bytes rule: the CRC still checks, so the fields are shown) */
	expect_error("68 03 07 00 00 03 32 01 06 00 01 92 36 01 00 E2 E8", EVCS_YKC_PROTO_16, "bad_length", true);
	expect_error("68 0D 07 00 00 03 32 01 06 00 01 92 36 01 00 E2 E8 55", EVCS_YKC_PROTO_16, "bad_length", false);
	/* crc_mismatch */
	expect_error("68 0D 07 00 00 03 32 01 06 00 01 92 36 01 01 E2 E8", EVCS_YKC_PROTO_16, "crc_mismatch", false);
	/* encrypted: CRC fine, no fields */
	uint8_t f[EVCS_YKC_MAX_FRAME], body[16];
	char hex[200];
	unhex("32 01 06 00 01 92 36 01 00", body);
	static const uint8_t seq[2] = { 7, 0 };
	int k = evcs_ykc_frame_build(f, sizeof(f), seq, 1, 0x03, body, 9, EVCS_YKC_CRC_LE);
	for (int i = 0; i < k; i++)
		sprintf(hex + 2 * i, "%02X", f[i]);
	expect_error(hex, EVCS_YKC_PROTO_16, "encrypted", false);
	/* encrypted beats unknown_type, and both are listed */
	k = evcs_ykc_frame_build(f, sizeof(f), seq, 1, 0x3D, body, 9, EVCS_YKC_CRC_LE);
	json_t *o = evcs_ykc_json_decode(f, (size_t)k, EVCS_YKC_PROTO_16, NULL);
	CU_ASSERT_STRING_EQUAL(jstr(o, "error", NULL), "encrypted");
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "problems")), 2);
	CU_ASSERT_PTR_NULL(json_object_get(o, "name"));
	CU_ASSERT_STRING_EQUAL(jstr(o, "direction", NULL), "pile->platform");
	json_decref(o);
	/* unknown_type, with the 1.7 hint */
	k = evcs_ykc_frame_build(f, sizeof(f), seq, 0, 0x3D, body, 9, EVCS_YKC_CRC_BE);
	o = evcs_ykc_json_decode(f, (size_t)k, EVCS_YKC_PROTO_16, NULL);
	CU_ASSERT_STRING_EQUAL(jstr(o, "error", NULL), "unknown_type");
	CU_ASSERT_PTR_NOT_NULL(strstr(json_string_value(json_array_get(json_object_get(o, "problems"), 0)), "1.7"));
	CU_ASSERT_STRING_EQUAL(jstr(o, "crc_order", NULL), "be");
	CU_ASSERT_PTR_NULL(json_object_get(o, "fields"));
	json_decref(o);
	/* --proto 1.5 makes 0xA1-0xA4, 0xF0/0xF1 unknown */
	static const uint8_t v16[] = { 0xA1, 0xA2, 0xA3, 0xA4, 0xF0, 0xF1 };
	for (size_t i = 0; i < sizeof(v16); i++) {
		k = build(v16[i], 1, EVCS_YKC_CRC_LE, f);
		const char *err = NULL;
		o = evcs_ykc_json_decode(f, (size_t)k, EVCS_YKC_PROTO_15, &err);
		CU_ASSERT_STRING_EQUAL(err, "unknown_type");
		json_decref(o);
		o = evcs_ykc_json_decode(f, (size_t)k, EVCS_YKC_PROTO_16, &err);
		CU_ASSERT_PTR_NULL(err);
		json_decref(o);
	}
	/* bad_body_length with the fields inside the body */
	k = evcs_ykc_frame_build(f, sizeof(f), seq, 0, 0x03, body, 8, EVCS_YKC_CRC_LE);
	for (int i = 0; i < k; i++)
		sprintf(hex + 2 * i, "%02X", f[i]);
	expect_error(hex, EVCS_YKC_PROTO_16, "bad_body_length", true);
	/* 0xF0 with prefix_len disagreeing */
	uint8_t qb[32];
	unhex("32010600019236 00 05 41424344", qb);
	k = evcs_ykc_frame_build(f, sizeof(f), seq, 0, 0xF0, qb, 13, EVCS_YKC_CRC_LE);
	o = evcs_ykc_json_decode(f, (size_t)k, EVCS_YKC_PROTO_16, NULL);
	CU_ASSERT_STRING_EQUAL(jstr(o, "error", NULL), "bad_body_length");
	CU_ASSERT_PTR_NULL(json_object_get(json_object_get(o, "fields"), "prefix"));
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(o, "fields"), "prefix_len")), 5);
	json_decref(o);
}

static void test_error_n_bytes_rule(void)
{
	/* A length byte that is too small, CRC right over the whole input: the CRC is
	 * reported ok (a badly set length byte, not corruption). */
	uint8_t f[64];
	size_t n = unhex(HB_LE, f);
	f[1] = 0x0C;
	const char *err;
	json_t *o = evcs_ykc_json_decode(f, n, EVCS_YKC_PROTO_16, &err);
	CU_ASSERT_STRING_EQUAL(err, "bad_length");
	CU_ASSERT_TRUE(json_is_true(json_object_get(o, "crc_ok")));
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "body_length")), 9);
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "pile"), "32010600019236");
	json_decref(o);
	/* Too large: truncated, but the CRC of what is there still checks. */
	f[1] = 0x0E;
	o = evcs_ykc_json_decode(f, n, EVCS_YKC_PROTO_16, &err);
	CU_ASSERT_STRING_EQUAL(err, "truncated");
	CU_ASSERT_TRUE(json_is_true(json_object_get(o, "crc_ok")));
	json_decref(o);
	/* Trailing garbage: bad_length and crc_mismatch (CRC looked for at the end). */
	n = unhex(HB_LE, f);
	f[n++] = 0x55;
	o = evcs_ykc_json_decode(f, n, EVCS_YKC_PROTO_16, &err);
	CU_ASSERT_STRING_EQUAL(err, "bad_length");
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "problems")), 3); /* + body length */
	CU_ASSERT_TRUE(json_is_null(json_object_get(o, "crc_order")));
	CU_ASSERT_PTR_NULL(json_object_get(o, "fields"));
	json_decref(o);
	/* A trailing 00 after an "le" frame is a CRC-16/MODBUS property: CRC(data + lo)
	 * is always 0x00hi, so the n-bytes check passes and the body is one byte long. */
	f[n - 1] = 0x00;
	o = evcs_ykc_json_decode(f, n, EVCS_YKC_PROTO_16, &err);
	CU_ASSERT_STRING_EQUAL(err, "bad_length");
	CU_ASSERT_TRUE(json_is_true(json_object_get(o, "crc_ok")));
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "body_length")), 10);
	json_decref(o);
}

/* ---- §7 known answers ------------------------------------------------------ */

static void test_json_spec_examples(void)
{
	uint8_t b[64];
	size_t n = unhex(HB_LE, b);
	char *s = decode_str(b, n, EVCS_YKC_PROTO_16);
	CU_ASSERT_STRING_EQUAL(s, "{\"frame_type\":\"0x03\",\"name\":\"heartbeat\",\"direction\":\"pile->platform\","
				  "\"seq_hex\":\"0700\",\"encrypted\":false,\"crc_ok\":true,\"crc_order\":\"le\","
				  "\"body_length\":9,\"fields\":{\"pile\":\"32010600019236\",\"gun\":\"01\",\"gun_state\":0}}");
	free(s);
	n = unhex("68 0D 07 00 00 03 32 01 06 00 01 92 36 01 01 E2 E8", b);
	s = decode_str(b, n, EVCS_YKC_PROTO_16);
	CU_ASSERT_STRING_EQUAL(s, "{\"error\":\"crc_mismatch\",\"problems\":[\"CRC mismatch: wire E2E8, CRC-16/MODBUS "
				  "over seq..body = 2823 (neither order)\"],\"frame_type\":\"0x03\",\"name\":\"heartbeat\","
				  "\"direction\":\"pile->platform\",\"seq_hex\":\"0700\",\"encrypted\":false,"
				  "\"crc_ok\":false,\"crc_order\":null,\"body_length\":9}");
	free(s);
	n = unhex("FF 00", b);
	n += unhex(HB_LE, b + n);
	n += unhex("68 0D 07 00 00", b + n);
	json_t *o = evcs_ykc_json_split(b, n, EVCS_YKC_PROTO_16);
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	CU_ASSERT_STRING_EQUAL(s, "{\"frames\":[{\"frame_type\":\"0x03\",\"name\":\"heartbeat\",\"direction\":"
				  "\"pile->platform\",\"seq_hex\":\"0700\",\"encrypted\":false,\"crc_ok\":true,"
				  "\"crc_order\":\"le\",\"body_length\":9,\"fields\":{\"pile\":\"32010600019236\","
				  "\"gun\":\"01\",\"gun_state\":0},\"offset\":2}],\"skipped_bytes\":2,"
				  "\"leftover_bytes\":5,\"leftover_hex\":\"680D070000\"}");
	free(s);
	json_decref(o);
}

static void test_json_value_rules(void)
{
	uint8_t frame[EVCS_YKC_MAX_FRAME];
	/* tariff: the spec's sample rate 40 0D 03 00 = "2.00000", slots as 48 ints */
	int k = build(0x0A, 1, EVCS_YKC_CRC_LE, frame);
	CU_ASSERT_EQUAL(memcmp(frame + 6 + 9, "\x40\x0D\x03\x00", 4), 0);
	json_t *o = evcs_ykc_json_decode(frame, (size_t)k, EVCS_YKC_PROTO_16, NULL);
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "sharp_elec_rate"), "2.00000");
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "valley_service_rate"), "0.30000");
	CU_ASSERT_EQUAL(json_array_size(json_object_get(json_object_get(o, "fields"), "slots")), 48);
	json_decref(o);
	/* 0x23 derived values from the reference */
	k = build(0x23, 1, EVCS_YKC_CRC_LE, frame);
	o = evcs_ykc_json_decode(frame, (size_t)k, EVCS_YKC_PROTO_16, NULL);
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "cell_max_v"), "3.44");
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(o, "fields"), "cell_max_group")), 0);
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "bms_i_req_a"), "196.0");
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "bms_i_meas_a"), "-12.5");
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "out_i_a"), "-125.0");
	json_decref(o);
	/* 0x17 derived currents: -300.0 and 0.0, SOC in permille */
	k = build(0x17, 1, EVCS_YKC_CRC_LE, frame);
	o = evcs_ykc_json_decode(frame, (size_t)k, EVCS_YKC_PROTO_16, NULL);
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "out_i_max_a"), "-300.0");
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "out_i_min_a"), "0.0");
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "max_current_a"), "-250.0");
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "cell_max_v"), "4.20");
	json_decref(o);
	/* 0x34 spec sample values */
	k = build(0x34, 1, EVCS_YKC_CRC_LE, frame);
	o = evcs_ykc_json_decode(frame, (size_t)k, EVCS_YKC_PROTO_16, NULL);
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "logical_card"), "0000001000000573");
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "physical_card"), "00000000D14B0A54");
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "balance_yuan"), "1000.00");
	json_decref(o);
	/* max balance */
	k = build(0x42, 1, EVCS_YKC_CRC_LE, frame);
	o = evcs_ykc_json_decode(frame, (size_t)k, EVCS_YKC_PROTO_16, NULL);
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "balance_yuan"), "42949672.95");
	json_decref(o);
	/* 0xF0 keeps exactly prefix_len bytes, 0x94 trims NUL padding */
	k = build(0xF0, 1, EVCS_YKC_CRC_LE, frame);
	o = evcs_ykc_json_decode(frame, (size_t)k, EVCS_YKC_PROTO_16, NULL);
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "prefix"), "https://qr.example.com/gunDetail?no=");
	json_decref(o);
	k = build(0x94, 1, EVCS_YKC_CRC_LE, frame);
	o = evcs_ykc_json_decode(frame, (size_t)k, EVCS_YKC_PROTO_16, NULL);
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "path"), "/fw/ykc/dc120-v2.bin");
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "password"), "0123456789abcdef");
	json_decref(o);
	/* 0x15 identifiers as hex in wire order */
	k = build(0x15, 1, EVCS_YKC_CRC_LE, frame);
	o = evcs_ykc_json_decode(frame, (size_t)k, EVCS_YKC_PROTO_16, NULL);
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "bms_proto"), "010100");
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "maker"), "4341544C");
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(o, "fields"), "cycles")), 0x012345);
	CU_ASSERT_STRING_EQUAL(jstr(o, "fields", "rated_ah"), "150.0");
	json_decref(o);
}

/* ---- §3 encodings and refusals --------------------------------------------- */

static void test_cp56_examples(void)
{
	struct evcs_ykc_cp56 t;
	char buf[40];
	uint8_t b[7], again[7];
	unhex("98 B7 0E 11 10 03 14", b);
	evcs_ykc_cp56_decode(b, &t);
	evcs_ykc_cp56_format(&t, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "2020-03-16T17:14:47");
	CU_ASSERT_EQUAL(t.wday, 0);
	CU_ASSERT_EQUAL(evcs_ykc_cp56_encode(&t, again), 0);
	CU_ASSERT_EQUAL(memcmp(again, b, 7), 0);
	unhex("92 3B 1E 08 61 05 18", b);
	evcs_ykc_cp56_decode(b, &t);
	evcs_ykc_cp56_format(&t, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "2024-05-01T08:30:15.250");
	CU_ASSERT_EQUAL(t.wday, 3);
	CU_ASSERT_EQUAL(evcs_ykc_cp56_encode(&t, again), 0);
	CU_ASSERT_EQUAL(memcmp(again, b, 7), 0);
	/* flag and reserved bits survive a round trip */
	unhex("92 3B BB FE 61 F5 98", b);
	evcs_ykc_cp56_decode(b, &t);
	CU_ASSERT_EQUAL(t.minute, 59);
	CU_ASSERT_EQUAL(t.min_flags, 0x80);
	CU_ASSERT_EQUAL(t.hour, 30);
	CU_ASSERT_EQUAL(t.hour_flags, 0xE0);
	CU_ASSERT_EQUAL(evcs_ykc_cp56_encode(&t, again), 0);
	CU_ASSERT_EQUAL(memcmp(again, b, 7), 0);
	/* from struct tm (2024-05-01 08:30:15.250, a Wednesday) */
	struct tm tm = { 0 };
	tm.tm_year = 124;
	tm.tm_mon = 4;
	tm.tm_mday = 1;
	tm.tm_hour = 8;
	tm.tm_min = 30;
	tm.tm_sec = 15;
	tm.tm_wday = 3;
	CU_ASSERT_EQUAL(evcs_ykc_cp56_from_tm(&tm, 250, &t), 0);
	CU_ASSERT_EQUAL(evcs_ykc_cp56_encode(&t, again), 0);
	CU_ASSERT_EQUAL(memcmp(again, "\x92\x3B\x1E\x08\x61\x05\x18", 7), 0);
	struct tm back;
	unsigned ms;
	evcs_ykc_cp56_to_tm(&t, &back, &ms);
	CU_ASSERT_EQUAL(back.tm_year, 124);
	CU_ASSERT_EQUAL(back.tm_mon, 4);
	CU_ASSERT_EQUAL(back.tm_sec, 15);
	CU_ASSERT_EQUAL(ms, 250);
	tm.tm_year = 99;
	CU_ASSERT_EQUAL(evcs_ykc_cp56_from_tm(&tm, 0, &t), -ERANGE);
	/* Sunday is 7 */
	tm.tm_year = 124;
	tm.tm_mday = 5;
	tm.tm_wday = 0;
	CU_ASSERT_EQUAL(evcs_ykc_cp56_from_tm(&tm, 0, &t), 0);
	CU_ASSERT_EQUAL(t.wday, 7);
}

static void test_trade_number(void)
{
	char out[33];
	struct tm tm = { 0 };
	tm.tm_year = 120;
	tm.tm_mon = 0;
	tm.tm_mday = 6;
	tm.tm_hour = 18;
	tm.tm_min = 3;
	tm.tm_sec = 42;
	/* the spec's example 32010600019236 01 200106180342 3060 */
	CU_ASSERT_EQUAL(evcs_ykc_trade_no(out, "32010600019236", "01", &tm, 3060), 0);
	CU_ASSERT_STRING_EQUAL(out, "32010600019236012001061803423060");
	CU_ASSERT_EQUAL(strlen(out), 32);
	CU_ASSERT_EQUAL(evcs_ykc_trade_no(out, "32010600019236", "01", &tm, 7), 0);
	CU_ASSERT_STRING_EQUAL(out + 28, "0007");
	CU_ASSERT_EQUAL(evcs_ykc_trade_no(out, "32010600019236", "01", &tm, 10000), -EINVAL);
	CU_ASSERT_EQUAL(evcs_ykc_trade_no(out, "3201060001923", "01", &tm, 1), -EINVAL);
	CU_ASSERT_EQUAL(evcs_ykc_trade_no(out, "3201060001923A", "01", &tm, 1), -EINVAL);
	CU_ASSERT_EQUAL(evcs_ykc_trade_no(out, "32010600019236", "1", &tm, 1), -EINVAL);
	/* it encodes as a 16-byte BCD trade number */
	uint8_t b[16];
	CU_ASSERT_EQUAL(evcs_ykc_trade_no(out, "32010600019236", "01", &tm, 3060), 0);
	CU_ASSERT_EQUAL(evcs_ykc_bcd_encode(out, b, 16), 0);
	CU_ASSERT_EQUAL(b[15], 0x60);
}

static void test_encoder_refuses_values_that_do_not_fit(void)
{
	uint8_t out[EVCS_YKC_MAX_FRAME];
	struct evcs_ykc_msg m;
	const char *bad;

	ykc_sample(0x15, &m, 1);
	m.u.bms_handshake.cycles = 0x1000000;
	CU_ASSERT_EQUAL(evcs_ykc_encode_body(&m, out, sizeof(out), &bad), -ERANGE);
	CU_ASSERT_STRING_EQUAL(bad, "cycles");
	m.u.bms_handshake.cycles = 0xFFFFFF;
	CU_ASSERT_EQUAL(evcs_ykc_encode_body(&m, out, sizeof(out), &bad), 73);
	CU_ASSERT_PTR_NULL(bad);

	ykc_sample(0x3B, &m, 1);
	m.u.record.meter_stop_kwh = 1ull << 40;
	CU_ASSERT_EQUAL(evcs_ykc_encode_body(&m, out, sizeof(out), &bad), -ERANGE);
	CU_ASSERT_STRING_EQUAL(bad, "meter_stop_kwh");
	ykc_sample(0x3B, &m, 1);
	m.u.record.trade_time.minute = 64;
	CU_ASSERT_EQUAL(evcs_ykc_encode_body(&m, out, sizeof(out), &bad), -ERANGE);
	CU_ASSERT_STRING_EQUAL(bad, "trade_time");
	ykc_sample(0x3B, &m, 1);
	strcpy(m.u.record.trade_no, "3201060001923601200106180342306"); /* 31 digits */
	CU_ASSERT_EQUAL(evcs_ykc_encode_body(&m, out, sizeof(out), &bad), -EINVAL);
	CU_ASSERT_STRING_EQUAL(bad, "trade_no");

	ykc_sample(0x13, &m, 1);
	m.u.realtime.gun_temp_c = 206;
	CU_ASSERT_EQUAL(evcs_ykc_encode_body(&m, out, sizeof(out), &bad), -ERANGE);
	CU_ASSERT_STRING_EQUAL(bad, "gun_temp_c");
	m.u.realtime.gun_temp_c = -51;
	CU_ASSERT_EQUAL(evcs_ykc_encode_body(&m, out, sizeof(out), &bad), -ERANGE);
	m.u.realtime.gun_temp_c = -50;
	CU_ASSERT_EQUAL(evcs_ykc_encode_body(&m, out, sizeof(out), &bad), 60);
	CU_ASSERT_EQUAL(out[31], 0);

	ykc_sample(0x03, &m, 1);
	strcpy(m.u.heartbeat.pile, "3201060001923G");
	CU_ASSERT_EQUAL(evcs_ykc_encode_body(&m, out, sizeof(out), &bad), -EINVAL);
	CU_ASSERT_STRING_EQUAL(bad, "pile");
	strcpy(m.u.heartbeat.pile, "3201060001923a"); /* hex nibble: allowed, case-insensitive */
	CU_ASSERT_EQUAL(evcs_ykc_encode_body(&m, out, sizeof(out), &bad), 9);
	CU_ASSERT_EQUAL(out[6], 0x3A);

	ykc_sample(0x94, &m, 1);
	memset(m.u.upgrade.server, 'x', 17); /* no NUL within 17 bytes: too long */
	CU_ASSERT_EQUAL(evcs_ykc_encode_body(&m, out, sizeof(out), &bad), -ERANGE);
	CU_ASSERT_STRING_EQUAL(bad, "server");
	ykc_sample(0x94, &m, 1);
	memset(m.u.upgrade.server, 'x', 16); /* exactly 16 fits, no padding */
	m.u.upgrade.server[16] = 0;
	CU_ASSERT_EQUAL(evcs_ykc_encode_body(&m, out, sizeof(out), &bad), 94);

	ykc_sample(0x58, &m, 1);
	m.u.tariff.slots[47] = 4;
	CU_ASSERT_EQUAL(evcs_ykc_encode_body(&m, out, sizeof(out), &bad), -ERANGE);
	CU_ASSERT_STRING_EQUAL(bad, "slots");

	ykc_sample(0x44, &m, 1);
	m.u.card_sync.n = 16;
	CU_ASSERT_EQUAL(evcs_ykc_encode_body(&m, out, sizeof(out), &bad), -ERANGE);
	ykc_sample(0x48, &m, 26);
	CU_ASSERT_EQUAL(evcs_ykc_encode_body(&m, out, sizeof(out), &bad), 8 + 26 * 8);
	m.u.card_list.n = 27;
	CU_ASSERT_EQUAL(evcs_ykc_encode_body(&m, out, sizeof(out), &bad), -ERANGE);
	ykc_sample(0x45, &m, 1);
	m.u.card_clear_reply.n = 0;
	CU_ASSERT_EQUAL(evcs_ykc_encode_body(&m, out, sizeof(out), &bad), -ERANGE);
	ykc_sample(0x44, &m, 1);
	strcpy(m.u.card_sync.cards[0].logical_card, "123");
	CU_ASSERT_EQUAL(evcs_ykc_encode_body(&m, out, sizeof(out), &bad), -EINVAL);
	CU_ASSERT_STRING_EQUAL(bad, "cards");

	ykc_sample(0xF0, &m, 1);
	m.u.qr_prefix.prefix_len = 243;
	CU_ASSERT_EQUAL(evcs_ykc_encode_body(&m, out, sizeof(out), &bad), -ERANGE);
	m.u.qr_prefix.prefix_len = 242;
	memset(m.u.qr_prefix.prefix, 'q', 242);
	static const uint8_t seq0[2] = { 0, 0 };
	CU_ASSERT_EQUAL(evcs_ykc_encode_frame(&m, seq0, EVCS_YKC_CRC_LE, out, sizeof(out), &bad), 259);
	CU_ASSERT_EQUAL(out[1], 255);

	/* output space and unknown types */
	ykc_sample(0x3B, &m, 1);
	CU_ASSERT_EQUAL(evcs_ykc_encode_body(&m, out, 157, &bad), -ENOSPC);
	m.type = 0x3D;
	CU_ASSERT_EQUAL(evcs_ykc_encode_body(&m, out, sizeof(out), &bad), -ENOENT);
	CU_ASSERT_EQUAL(evcs_ykc_frame_build(out, sizeof(out), seq0, 0, 0x03, out, 252, EVCS_YKC_CRC_LE), -EMSGSIZE);
	CU_ASSERT_EQUAL(evcs_ykc_frame_build(out, 16, seq0, 0, 0x03, out + 6, 9, EVCS_YKC_CRC_LE), -ENOSPC);
}

static void test_money_and_energy_units(void)
{
	uint32_t w;
	uint64_t w64;
	CU_ASSERT_EQUAL(evcs_ykc_rate_to_money(150000), 150000);          /* 1.50000 yuan */
	CU_ASSERT_EQUAL(evcs_ykc_amount_to_money(93280), 932800);         /* 9.3280 yuan */
	CU_ASSERT_EQUAL(evcs_ykc_balance_to_money(100000), 100000000);    /* 1000.00 yuan */
	CU_ASSERT_EQUAL(evcs_ykc_balance_to_money(UINT32_MAX), 4294967295000ll);
	CU_ASSERT_EQUAL(evcs_ykc_energy_to_core(88000), 88000);
	CU_ASSERT_EQUAL(evcs_ykc_rate_from_money(150000, &w), 0);
	CU_ASSERT_EQUAL(w, 150000);
	CU_ASSERT_EQUAL(evcs_ykc_rate_from_money(-1, &w), -ERANGE);
	CU_ASSERT_EQUAL(evcs_ykc_rate_from_money(4294967296ll, &w), -ERANGE);
	CU_ASSERT_EQUAL(evcs_ykc_amount_from_money(932809, &w), 0);
	CU_ASSERT_EQUAL(w, 93280);
	CU_ASSERT_EQUAL(evcs_ykc_amount_from_money(42949672959ll, &w), 0);
	CU_ASSERT_EQUAL(w, UINT32_MAX);
	CU_ASSERT_EQUAL(evcs_ykc_amount_from_money(42949672960ll, &w), -ERANGE);
	CU_ASSERT_EQUAL(evcs_ykc_balance_from_money(100000999, &w), 0); /* rounds down */
	CU_ASSERT_EQUAL(w, 100000);
	CU_ASSERT_EQUAL(evcs_ykc_balance_from_money(4294967295999ll, &w), 0);
	CU_ASSERT_EQUAL(evcs_ykc_balance_from_money(4294967296000ll, &w), -ERANGE);
	CU_ASSERT_EQUAL(evcs_ykc_balance_from_money(-1000, &w), -ERANGE);
	CU_ASSERT_EQUAL(evcs_ykc_energy_from_core(4294967296ll, &w), -ERANGE);
	CU_ASSERT_EQUAL(evcs_ykc_meter_from_core(0xFFFFFFFFFFll, &w64), 0);
	CU_ASSERT_EQUAL(evcs_ykc_meter_from_core(0x10000000000ll, &w64), -ERANGE);
}

static void test_bcd_and_vin_helpers(void)
{
	uint8_t b[10];
	char s[21];
	unhex("89 86 04 D1 17 22 D0 34 86 06", b);
	evcs_ykc_bcd_decode(b, 10, s);
	CU_ASSERT_STRING_EQUAL(s, "898604D11722D0348606");
	uint8_t again[10];
	CU_ASSERT_EQUAL(evcs_ykc_bcd_encode(s, again, 10), 0);
	CU_ASSERT_EQUAL(memcmp(again, b, 10), 0);
	CU_ASSERT_EQUAL(evcs_ykc_bcd_encode("0102", again, 1), -EINVAL); /* too long */
	CU_ASSERT_EQUAL(evcs_ykc_bcd_encode("0", again, 1), -EINVAL);    /* too short */
	uint8_t vin[17] = { 0 };
	char txt[18];
	evcs_ykc_vin_text(vin, false, txt);
	CU_ASSERT_STRING_EQUAL(txt, "");
	memcpy(vin, "ABC", 3);
	evcs_ykc_vin_text(vin, true, txt);
	CU_ASSERT_STRING_EQUAL(txt, "CBA");
	uint8_t seq[2];
	evcs_ykc_seq_from_counter(0x1234, seq);
	CU_ASSERT_EQUAL(seq[0], 0x34);
	CU_ASSERT_EQUAL(seq[1], 0x12);
}

/* ---- CLI in-process ------------------------------------------------------------ */

struct cli_run {
	int rc;
	char out[65536];
	char err[8192];
};

static void slurp(FILE *f, char *buf, size_t cap)
{
	rewind(f);
	size_t n = fread(buf, 1, cap - 1, f);
	buf[n] = '\0';
}

/* Run evcs_ykc_cli_main with stdout/stderr captured in temp files and stdin from
 * `in` (may be NULL). */
static void run_cli(struct cli_run *r, const char *in, int argc, char **argv)
{
	FILE *fo = tmpfile(), *fe = tmpfile(), *fi = tmpfile();
	CU_ASSERT_FATAL(fo && fe && fi);
	if (in)
		fputs(in, fi);
	rewind(fi);
	fflush(stdout);
	fflush(stderr);
	int so = dup(1), se = dup(2), si = dup(0);
	dup2(fileno(fo), 1);
	dup2(fileno(fe), 2);
	dup2(fileno(fi), 0);
	clearerr(stdin);
	r->rc = evcs_ykc_cli_main(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	dup2(si, 0);
	close(so);
	close(se);
	close(si);
	clearerr(stdin);
	slurp(fo, r->out, sizeof(r->out));
	slurp(fe, r->err, sizeof(r->err));
	fclose(fo);
	fclose(fe);
	fclose(fi);
}

#define ARGV(...) ((char *[]){ __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ __VA_ARGS__ }) / sizeof(char *)))
#define CLI(r, in, ...) run_cli((r), (in), ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

static const char GOOD_JSON[] =
	"{\"frame_type\":\"0x03\",\"name\":\"heartbeat\",\"direction\":\"pile->platform\",\"seq_hex\":\"0700\","
	"\"encrypted\":false,\"crc_ok\":true,\"crc_order\":\"le\",\"body_length\":9,\"fields\":{\"pile\":"
	"\"32010600019236\",\"gun\":\"01\",\"gun_state\":0}}\n";
static const char BAD_JSON[] =
	"{\"error\":\"crc_mismatch\",\"problems\":[\"CRC mismatch: wire E2E8, CRC-16/MODBUS over seq..body = 2823 "
	"(neither order)\"],\"frame_type\":\"0x03\",\"name\":\"heartbeat\",\"direction\":\"pile->platform\","
	"\"seq_hex\":\"0700\",\"encrypted\":false,\"crc_ok\":false,\"crc_order\":null,\"body_length\":9}\n";

static void test_cli_decode(void)
{
	static struct cli_run r;
	CLI(&r, NULL, "ykc", "decode", "68 0D 07 00 00 03 32 01 06 00 01 92 36 01 00 E2 E8");
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_STRING_EQUAL(r.out, GOOD_JSON);
	/* lower case and whitespace inside the argument; several arguments in order */
	CLI(&r, NULL, "ykc", "decode", "--proto", "1.5", "680d0700000332010600019236 0100e2e8",
	    "68 0D 07 00 00 03 32 01 06 00 01 92 36 01 01 E2 E8");
	CU_ASSERT_EQUAL(r.rc, 1);
	char both[2048];
	snprintf(both, sizeof(both), "%s%s", GOOD_JSON, BAD_JSON);
	CU_ASSERT_STRING_EQUAL(r.out, both);
	/* bad hex still prints an error object and exits 2 */
	CLI(&r, NULL, "ykc", "decode", "680", "68 0D");
	CU_ASSERT_EQUAL(r.rc, 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "{\"error\":\"bad_hex\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "{\"error\":\"truncated\""));
	CLI(&r, NULL, "ykc", "decode", "zz");
	CU_ASSERT_EQUAL(r.rc, 2);
	CU_ASSERT_STRING_EQUAL(r.out, "{\"error\":\"bad_hex\",\"problems\":[\"non-hex character 'z' at position 0\"]}\n");
	CLI(&r, NULL, "ykc", "decode");
	CU_ASSERT_EQUAL(r.rc, 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "\"bad_hex\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.err, "usage"));
	/* --proto 1.5 vs 1.6 */
	uint8_t f[EVCS_YKC_MAX_FRAME];
	char hex[2 * EVCS_YKC_MAX_FRAME + 1];
	int k = build(0xA3, 1, EVCS_YKC_CRC_BE, f);
	for (int i = 0; i < k; i++)
		sprintf(hex + 2 * i, "%02X", f[i]);
	CLI(&r, NULL, "ykc", "decode", "--proto=1.5", hex);
	CU_ASSERT_EQUAL(r.rc, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "\"error\":\"unknown_type\""));
	CLI(&r, NULL, "ykc", "decode", hex);
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "\"name\":\"parallel_remote_start_reply\""));
	CLI(&r, NULL, "ykc", "decode", "--proto", "1.7", hex);
	CU_ASSERT_EQUAL(r.rc, 2);
	CU_ASSERT_STRING_EQUAL(r.out, "");
	/* a warning does not change the exit status */
	uint8_t body[9];
	unhex("32010600019236 00 F0", body);
	k = (int)wrap(0x52, body, 9, f);
	for (int i = 0; i < k; i++)
		sprintf(hex + 2 * i, "%02X", f[i]);
	CLI(&r, NULL, "ykc", "decode", hex);
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "\"warnings\":["));
}

static void test_cli_split_and_usage(void)
{
	static struct cli_run r;
	CLI(&r, "FF 00 68 0D 07 00 00 03 32 01 06 00 01 92 36 01 00 E2 E8\n68 0D 07 00 00\n", "ykc", "split");
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_STRING_EQUAL(r.out,
			       "{\"frames\":[{\"frame_type\":\"0x03\",\"name\":\"heartbeat\",\"direction\":"
			       "\"pile->platform\",\"seq_hex\":\"0700\",\"encrypted\":false,\"crc_ok\":true,"
			       "\"crc_order\":\"le\",\"body_length\":9,\"fields\":{\"pile\":\"32010600019236\","
			       "\"gun\":\"01\",\"gun_state\":0},\"offset\":2}],\"skipped_bytes\":2,"
			       "\"leftover_bytes\":5,\"leftover_hex\":\"680D070000\"}\n");
	CLI(&r, "", "ykc", "split");
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_STRING_EQUAL(r.out, "{\"frames\":[],\"skipped_bytes\":0,\"leftover_bytes\":0,\"leftover_hex\":\"\"}\n");
	CLI(&r, "68 0", "ykc", "split");
	CU_ASSERT_EQUAL(r.rc, 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "\"error\":\"bad_hex\""));
	CLI(&r, "6802", "ykc", "split", "extra");
	CU_ASSERT_EQUAL(r.rc, 2);
	CU_ASSERT_STRING_EQUAL(r.out, "");
	/* help at every level goes to stdout with status 0 */
	CLI(&r, NULL, "ykc", "--help");
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "usage:"));
	CLI(&r, NULL, "ykc", "-h");
	CU_ASSERT_EQUAL(r.rc, 0);
	CLI(&r, NULL, "ykc", "decode", "--help");
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "decode"));
	CLI(&r, NULL, "ykc", "split", "-h");
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "split"));
	/* unknown subcommand or none: usage on stderr, status 2 */
	CLI(&r, NULL, "ykc", "frobnicate");
	CU_ASSERT_EQUAL(r.rc, 2);
	CU_ASSERT_STRING_EQUAL(r.out, "");
	CU_ASSERT_PTR_NOT_NULL(strstr(r.err, "usage:"));
	CLI(&r, NULL, "ykc");
	CU_ASSERT_EQUAL(r.rc, 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.err, "usage:"));
}

static void register_tests(void)
{
	CU_pSuite s = CU_add_suite("ykc_framing", NULL, NULL);
	EVCS_ADD(s, test_crc_check_value);
	EVCS_ADD(s, test_crc_equal_bytes_report_le);
	EVCS_ADD(s, test_spec_2_6_frames);
	EVCS_ADD(s, test_split_chunking_is_invisible);
	EVCS_ADD(s, test_split_resync_after_garbage);
	EVCS_ADD(s, test_split_false_start_short_len);
	EVCS_ADD(s, test_split_crc_mismatch_rescans_next_byte);
	EVCS_ADD(s, test_split_partial_timeout_skip);
	s = CU_add_suite("ykc_frames", NULL, NULL);
	EVCS_ADD(s, test_roundtrip_every_type);
	EVCS_ADD(s, test_layout_sizes);
	EVCS_ADD(s, test_every_body_byte_is_covered);
	EVCS_ADD(s, test_card_list_json_shapes);
	EVCS_ADD(s, test_odd_but_valid_values);
	EVCS_ADD(s, test_encoder_refuses_values_that_do_not_fit);
	EVCS_ADD(s, test_cp56_examples);
	EVCS_ADD(s, test_trade_number);
	EVCS_ADD(s, test_money_and_energy_units);
	EVCS_ADD(s, test_bcd_and_vin_helpers);
	s = CU_add_suite("ykc_tolerance", NULL, NULL);
	EVCS_ADD(s, test_tolerate_len_byte_is_body_length);
	EVCS_ADD(s, test_tolerate_long_and_short_bodies);
	EVCS_ADD(s, test_tolerate_card_list_counts);
	s = CU_add_suite("ykc_json", NULL, NULL);
	EVCS_ADD(s, test_error_codes);
	EVCS_ADD(s, test_error_n_bytes_rule);
	EVCS_ADD(s, test_json_spec_examples);
	EVCS_ADD(s, test_json_value_rules);
	EVCS_ADD(s, test_cli_decode);
	EVCS_ADD(s, test_cli_split_and_usage);
}

EVCS_TEST_MAIN(register_tests)
