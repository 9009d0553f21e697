/*
 * plugins/ykc/json.c: the decoder output contract of §7: one `decode` object per
 * frame (good or bad, with the §7.3 error precedence and the n-bytes rule) and
 * the `split` stream object (§7.4). Allocates (jansson); for tooling and logs,
 * never the session hot path. Callers own the returned reference.
 */
#include "codec.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct report {
	const char *error; /* first code by precedence */
	json_t *problems;
};

static void problem(struct report *r, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void problem(struct report *r, const char *code, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (!r->error)
		r->error = code;
	json_array_append_new(r->problems, json_string(buf));
}

static void body_problem(struct report *r, uint8_t type, const char *name,
			 const struct evcs_ykc_msg *m, size_t n)
{
	int base = evcs_ykc_layout_size(type);
	switch (type) {
	case 0x44:
	case 0x46:
	case 0x48:
		if (n < (size_t)base)
			problem(r, "bad_body_length", "body is %zu bytes, %s needs at least %d", n, name, base);
		else
		{
			unsigned count = type == 0x44 ? m->u.card_sync.count : m->u.card_list.count;
			problem(r, "bad_body_length", "count %u needs a %u-byte body, body is %zu bytes", count,
				(unsigned)base + (type == 0x44 ? 16u : 8u) * count, n);
		}
		return;
	case 0x45:
	case 0x47:
		problem(r, "bad_body_length", "body is %zu bytes, %s needs %d + %d per card and at least one card",
			n, name, base, type == 0x45 ? 10 : 9);
		return;
	case 0xF0:
		if (n < (size_t)base)
			problem(r, "bad_body_length", "body is %zu bytes, %s needs at least %d", n, name, base);
		else
			problem(r, "bad_body_length", "prefix_len %u needs a %u-byte body, body is %zu bytes",
				m->u.qr_prefix.prefix_len, (unsigned)(base + m->u.qr_prefix.prefix_len), n);
		return;
	}
	problem(r, "bad_body_length", "body is %zu bytes, the %s layout has %d", n, name, base);
}

json_t *evcs_ykc_json_decode(const uint8_t *b, size_t n, enum evcs_ykc_proto proto,
			     const char **error_code)
{
	struct report r = { NULL, json_array() };
	char hex[8];
	uint8_t len = n >= 2 ? b[1] : 0;
	const char *name = n >= 6 ? evcs_ykc_type_name(b[5], proto) : NULL;
	bool crc_ok = false;
	enum evcs_ykc_crc_order order = EVCS_YKC_CRC_LE;
	struct evcs_ykc_msg m;
	struct evcs_ykc_warnings w;
	bool have_body = false;

	/* Conditions in §7.3 precedence order; every one found is listed. */
	if (n == 0)
		problem(&r, "truncated", "empty input");
	else if (b[0] != EVCS_YKC_START)
		problem(&r, "bad_start", "first byte is %02X, not 68", b[0]);
	if (n > 0 && n < EVCS_YKC_OVERHEAD)
		problem(&r, "truncated", "%zu bytes; a frame has at least 8", n);
	else if (n >= 2 && n < (size_t)len + 4)
		problem(&r, "truncated", "length byte %02X means %u bytes on the wire, input has %zu",
			len, len + 4u, n);
	if (n >= 2 && len < EVCS_YKC_MIN_LEN)
		problem(&r, "bad_length", "length byte %02X is below the minimum 04", len);
	if (n >= 2 && n > (size_t)len + 4)
		problem(&r, "bad_length",
			"length byte %02X means %u bytes on the wire, input has %zu (length byte too small or trailing bytes)",
			len, len + 4u, n);
	if (n >= EVCS_YKC_OVERHEAD) {
		/* n-bytes rule (§7.3): the whole input is the frame, CRC in its last two bytes. */
		crc_ok = evcs_ykc_crc_match(b + 2, n - 4, b + n - 2, &order);
		if (!crc_ok)
			problem(&r, "crc_mismatch",
				"CRC mismatch: wire %02X%02X, CRC-16/MODBUS over seq..body = %04X (neither order)",
				b[n - 2], b[n - 1], evcs_ykc_crc16(b + 2, n - 4));
	}
	if (n >= 5 && b[4] != 0)
		problem(&r, "encrypted", "encryption flag %02X: encrypted bodies are not supported", b[4]);
	if (n >= 6 && !name) {
		if (evcs_ykc_type_name(b[5], EVCS_YKC_PROTO_16))
			problem(&r, "unknown_type", "type 0x%02X (%s) exists only in V1.6", b[5],
				evcs_ykc_type_name(b[5], EVCS_YKC_PROTO_16));
		else if (b[5] == 0x3D)
			problem(&r, "unknown_type", "type 0x3D is not a V1.5/V1.6 frame (it is the YKC 1.7 record)");
		else
			problem(&r, "unknown_type", "type 0x%02X is not a V1.5/V1.6 frame", b[5]);
	}
	if (n >= EVCS_YKC_OVERHEAD && name && b[4] == 0) {
		enum evcs_ykc_status st = evcs_ykc_decode_body(b[5], b + 6, n - 8, proto, &m, &w);
		have_body = true;
		if (st != EVCS_YKC_OK)
			body_problem(&r, b[5], name, &m, n - 8);
	}

	json_t *o = json_object();
	if (r.error) {
		json_object_set_new(o, "error", json_string(r.error));
		json_object_set_new(o, "problems", r.problems);
	} else {
		json_decref(r.problems);
	}
	if (n >= 6) {
		snprintf(hex, sizeof(hex), "0x%02X", b[5]);
		json_object_set_new(o, "frame_type", json_string(hex));
		if (name)
			json_object_set_new(o, "name", json_string(name));
		json_object_set_new(o, "direction",
				    json_string(evcs_ykc_from_pile(b[5]) ? "pile->platform" : "platform->pile"));
	}
	if (n >= 4) {
		snprintf(hex, sizeof(hex), "%02X%02X", b[2], b[3]);
		json_object_set_new(o, "seq_hex", json_string(hex));
	}
	if (n >= 5)
		json_object_set_new(o, "encrypted", json_boolean(b[4] != 0));
	json_object_set_new(o, "crc_ok", json_boolean(crc_ok));
	json_object_set_new(o, "crc_order",
			    crc_ok ? json_string(order == EVCS_YKC_CRC_LE ? "le" : "be") : json_null());
	if (n >= EVCS_YKC_OVERHEAD)
		json_object_set_new(o, "body_length", json_integer((json_int_t)(n - 8)));
	if (have_body && crc_ok) {
		json_object_set_new(o, "fields", evcs_ykc_json_fields(&m));
		json_t *wa = evcs_ykc_json_warnings(&w);
		if (wa)
			json_object_set_new(o, "warnings", wa);
	}
	if (error_code)
		*error_code = r.error;
	return o;
}

json_t *evcs_ykc_json_split(const uint8_t *buf, size_t n, enum evcs_ykc_proto proto)
{
	struct evcs_ykc_scan s;
	struct evcs_ykc_frame f;
	json_t *frames = json_array();
	evcs_ykc_scan_init(&s, buf, n, 0);
	while (evcs_ykc_scan_next(&s, &f)) {
		json_t *fo = evcs_ykc_json_decode(f.raw, f.size, proto, NULL);
		json_object_set_new(fo, "offset", json_integer((json_int_t)f.offset));
		json_array_append_new(frames, fo);
	}
	size_t keep = evcs_ykc_scan_keep(&s);
	char *hex = malloc(2 * keep + 1);
	if (!hex) {
		json_decref(frames);
		return NULL;
	}
	evcs_ykc_bcd_decode(buf + s.pos, keep, hex);
	json_t *o = json_object();
	json_object_set_new(o, "frames", frames);
	json_object_set_new(o, "skipped_bytes", json_integer((json_int_t)s.skipped));
	json_object_set_new(o, "leftover_bytes", json_integer((json_int_t)keep));
	json_object_set_new(o, "leftover_hex", json_string(hex));
	free(hex);
	return o;
}
