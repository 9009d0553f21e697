/*
 * tests/fuzz/fuzz_ykc_split.c: libFuzzer target for the §2.5 stream scanner and
 * everything it feeds (§8). Input: byte 0 seeds the chunk sizes, the rest is the
 * TCP stream. Asserts: skipped + leftover + consumed = input length; chunked and
 * whole scanning agree frame for frame; every good frame without warnings
 * re-encodes to the same bytes in the same CRC order; the JSON `split` view
 * agrees with the scanner and the struct decoder.
 * Build: tests/fuzz/run-fuzz.sh (clang -fsanitize=fuzzer,address,undefined).
 */
#include "codec.h"

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

#define MAXF 1024 /* libFuzzer -max_len defaults to 4096: at most 512 frames */

struct result {
	size_t n, off[MAXF], size[MAXF];
	bool good[MAXF]; /* decoded cleanly: known type, plain, right body size */
	size_t skipped, leftover;
};

static bool check_frame(const struct evcs_ykc_frame *f)
{
	struct evcs_ykc_msg m;
	struct evcs_ykc_warnings w;
	uint8_t again[EVCS_YKC_MAX_FRAME];
	enum evcs_ykc_status st = evcs_ykc_decode_frame(f, EVCS_YKC_PROTO_16, &m, &w);
	bool good = st == EVCS_YKC_OK && f->enc == 0;
	if (!good || w.n != 0)
		return good;
	const char *bad = NULL;
	int k = evcs_ykc_encode_frame(&m, f->seq, f->crc_order, again, sizeof(again), &bad);
	if (k != (int)f->size || memcmp(again, f->raw, f->size) != 0) {
		fprintf(stderr, "type 0x%02X re-encode mismatch (rc %d, field %s)\n", f->type, k,
			bad ? bad : "-");
		abort();
	}
	return good;
}

static void scan_whole(const uint8_t *d, size_t n, unsigned flags, struct result *r, bool deep)
{
	struct evcs_ykc_scan s;
	struct evcs_ykc_frame f;
	memset(r, 0, sizeof(*r));
	evcs_ykc_scan_init(&s, d, n, flags);
	size_t consumed = 0;
	while (evcs_ykc_scan_next(&s, &f)) {
		CHECK(f.raw == d + f.offset && f.offset + f.size <= n);
		CHECK(f.raw[0] == EVCS_YKC_START);
		CHECK(flags || f.size == (size_t)f.len + 4);
		CHECK(r->n < MAXF);
		r->off[r->n] = f.offset;
		r->size[r->n++] = f.size;
		consumed += f.size;
		if (deep)
			r->good[r->n - 1] = check_frame(&f);
	}
	r->skipped = s.skipped;
	r->leftover = evcs_ykc_scan_keep(&s);
	CHECK(r->leftover == 0 || d[s.pos] == EVCS_YKC_START);
	CHECK(r->leftover < EVCS_YKC_MAX_PARTIAL);
	CHECK(r->skipped + r->leftover + consumed == n);
}

/* The server's way: append each read to the kept tail and rescan. */
static void scan_chunked(const uint8_t *d, size_t n, uint8_t seed, struct result *r)
{
	uint8_t buf[EVCS_YKC_MAX_PARTIAL + 512];
	size_t have = 0, pos = 0, base = 0;
	uint32_t x = seed * 2654435761u + 1;
	memset(r, 0, sizeof(*r));
	while (pos < n) {
		x = x * 1103515245u + 12345u;
		size_t take = 1 + (x >> 16) % ((seed & 1) ? 7 : 300);
		if (take > n - pos)
			take = n - pos;
		if (take > sizeof(buf) - have)
			take = sizeof(buf) - have;
		memcpy(buf + have, d + pos, take);
		have += take;
		pos += take;
		struct evcs_ykc_scan s;
		struct evcs_ykc_frame f;
		evcs_ykc_scan_init(&s, buf, have, 0);
		while (evcs_ykc_scan_next(&s, &f)) {
			CHECK(r->n < MAXF);
			r->off[r->n] = base + f.offset;
			r->size[r->n++] = f.size;
		}
		r->skipped += s.skipped;
		size_t keep = evcs_ykc_scan_keep(&s);
		CHECK(keep < EVCS_YKC_MAX_FRAME);
		memmove(buf, buf + s.pos, keep);
		base += s.pos;
		have = keep;
	}
	r->leftover = have;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct result whole, chunked, compat;
	if (size < 1)
		return 0;
	uint8_t seed = data[0];
	const uint8_t *d = data + 1;
	size_t n = size - 1;
	scan_whole(d, n, 0, &whole, true);
	scan_chunked(d, n, seed, &chunked);
	CHECK(chunked.n == whole.n);
	CHECK(chunked.skipped == whole.skipped);
	CHECK(chunked.leftover == whole.leftover);
	for (size_t i = 0; i < whole.n; i++)
		CHECK(chunked.off[i] == whole.off[i] && chunked.size[i] == whole.size[i]);
	/* The JSON stream view obeys the same accounting. */
	json_t *o = evcs_ykc_json_split(d, n, EVCS_YKC_PROTO_16);
	CHECK(o != NULL);
	json_t *frames = json_object_get(o, "frames");
	CHECK(json_array_size(frames) == whole.n);
	for (size_t i = 0; i < whole.n; i++) {
		/* the JSON verdict and the struct decoder agree, frame by frame */
		json_t *fo = json_array_get(frames, i);
		CHECK((json_object_get(fo, "error") == NULL) == whole.good[i]);
		CHECK((size_t)json_integer_value(json_object_get(fo, "offset")) == whole.off[i]);
	}
	CHECK((size_t)json_integer_value(json_object_get(o, "skipped_bytes")) == whole.skipped);
	CHECK((size_t)json_integer_value(json_object_get(o, "leftover_bytes")) == whole.leftover);
	char *s = json_dumps(o, JSON_COMPACT);
	CHECK(s != NULL);
	free(s);
	json_decref(o);
	/* The JCPP length-compat mode keeps the same accounting. */
	scan_whole(d, n, EVCS_YKC_SCAN_LEN_COMPAT, &compat, false);
	/* The whole input as one frame (the `decode` n-bytes rule) never fails to render. */
	o = evcs_ykc_json_decode(d, n, (seed & 2) ? EVCS_YKC_PROTO_15 : EVCS_YKC_PROTO_16, NULL);
	CHECK(o != NULL);
	json_decref(o);
	return 0;
}
