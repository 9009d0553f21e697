/*
 * tests/fuzz/fuzz_ykc_body.c: libFuzzer target for the body decoders (§8). Random
 * bytes rarely carry a right CRC, so this target wraps fuzzer bytes in a correct
 * header and CRC: byte 0 picks the type (a §4 type, or the raw byte when its top
 * bit is set), byte 1 the CRC order, protocol version and sequence bytes, and the
 * rest (at most 251 bytes) is the body. It reaches the field tables, the count
 * fields, and the BCD, ASCII and CP56 paths. Asserts: the splitter finds exactly
 * this frame; the JSON verdict matches the decoder; a clean decode without
 * warnings re-encodes to the same body and frame bytes.
 */
#include "codec.h"
#include "ykc_samples.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c)                                                                      \
	do {                                                                          \
		if (!(c)) {                                                           \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
			abort();                                                      \
		}                                                                     \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t type = (data[0] & 0x80) ? data[0] : ykc_all_types[data[0] % YKC_NTYPES];
	uint8_t ctl = data[1];
	enum evcs_ykc_crc_order order = (ctl & 1) ? EVCS_YKC_CRC_BE : EVCS_YKC_CRC_LE;
	enum evcs_ykc_proto proto = (ctl & 2) ? EVCS_YKC_PROTO_15 : EVCS_YKC_PROTO_16;
	uint8_t seq[2] = { (uint8_t)(ctl >> 2), (uint8_t)(ctl * 7) };
	const uint8_t *body = data + 2;
	size_t n = size - 2;
	if (n > EVCS_YKC_MAX_BODY)
		n = EVCS_YKC_MAX_BODY;

	uint8_t frame[EVCS_YKC_MAX_FRAME];
	int fl = evcs_ykc_frame_build(frame, sizeof(frame), seq, 0, type, body, n, order);
	CHECK(fl == (int)n + 8);

	struct evcs_ykc_scan s;
	struct evcs_ykc_frame f;
	evcs_ykc_scan_init(&s, frame, (size_t)fl, 0);
	CHECK(evcs_ykc_scan_next(&s, &f));
	CHECK(f.offset == 0 && f.size == (size_t)fl && f.body_len == n && f.type == type);
	CHECK(s.skipped == 0 && evcs_ykc_scan_keep(&s) == 0);

	struct evcs_ykc_msg m;
	struct evcs_ykc_warnings w;
	enum evcs_ykc_status st = evcs_ykc_decode_frame(&f, proto, &m, &w);
	CHECK(m.avail <= n);
	struct evcs_ykc_tolerance tol;
	evcs_ykc_tolerance_default(&tol);
	enum evcs_ykc_verdict v = evcs_ykc_tolerate(&tol, &m);
	CHECK((v == EVCS_YKC_ACT) == (st == EVCS_YKC_OK));
	(void)evcs_ykc_field_present(&m, "pile");
	(void)evcs_ykc_field_present(&m, "cards");
	for (unsigned i = 0; i < w.n; i++) {
		char buf[160];
		CHECK(evcs_ykc_warning_str(&w.w[i], buf, sizeof(buf)) > 0);
	}

	const char *err = "unset";
	json_t *o = evcs_ykc_json_decode(frame, (size_t)fl, proto, &err);
	CHECK(o != NULL);
	CHECK((err == NULL) == (st == EVCS_YKC_OK));
	CHECK(json_is_true(json_object_get(o, "crc_ok")));
	char *js = json_dumps(o, JSON_COMPACT);
	CHECK(js != NULL);
	free(js);
	json_decref(o);

	/* Re-encoding must never overrun, whatever the decoded struct holds. */
	uint8_t out[EVCS_YKC_MAX_FRAME];
	const char *bad = NULL;
	int k = evcs_ykc_encode_frame(&m, f.seq, f.crc_order, out, sizeof(out), &bad);
	if (st == EVCS_YKC_UNKNOWN_TYPE)
		return 0;
	if (st == EVCS_YKC_OK && w.n == 0 && w.lost == 0) {
		if (k != fl || memcmp(out, frame, (size_t)fl) != 0) {
			fprintf(stderr, "type 0x%02X: re-encode mismatch (rc %d, field %s)\n", type, k,
				bad ? bad : "-");
			abort();
		}
	}
	return 0;
}
