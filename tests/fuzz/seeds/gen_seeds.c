/*
 * tests/fuzz/seeds/gen_seeds.c: writes the §8 seed corpora.
 *   gen_seeds SPLIT_DIR BODY_DIR
 * SPLIT_DIR (fuzz_ykc_split: chunk-seed byte + stream): one valid frame of every
 * §4 type in both CRC orders, the §6.1/§6.2 malformations (length byte = body
 * length, bodies a byte short or long, wrong counts, encryption flag, len < 4),
 * every frame cut at every byte, and a multi-frame stream with garbage.
 * BODY_DIR (fuzz_ykc_body: type selector, control byte, body): every type's body,
 * one byte short and long, and card lists with wrong counts.
 */
#include "codec.h"
#include "ykc_samples.h"

#include <stdio.h>
#include <stdlib.h>

static unsigned nfiles;

static void put(const char *dir, const char *tag, unsigned a, unsigned b, const uint8_t *p1,
		size_t n1, const uint8_t *p2, size_t n2)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s-%02x-%u", dir, tag, a, b);
	FILE *f = fopen(path, "wb");
	if (!f) {
		perror(path);
		exit(1);
	}
	if (n1)
		fwrite(p1, 1, n1, f);
	if (n2)
		fwrite(p2, 1, n2, f);
	fclose(f);
	nfiles++;
}

static int frame_of(uint8_t type, unsigned cards, enum evcs_ykc_crc_order o, uint8_t *out)
{
	struct evcs_ykc_msg m;
	static const uint8_t seq[2] = { 0x07, 0x00 };
	ykc_sample(type, &m, cards);
	int k = evcs_ykc_encode_frame(&m, seq, o, out, EVCS_YKC_MAX_FRAME, NULL);
	if (k < 0) {
		fprintf(stderr, "gen_seeds: cannot encode 0x%02X: %d\n", type, k);
		exit(1);
	}
	return k;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: gen_seeds SPLIT_DIR BODY_DIR\n");
		return 2;
	}
	const char *sd = argv[1], *bd = argv[2];
	static const uint8_t one[1] = { 0x00 }, slow[1] = { 0x01 };
	static const uint8_t seq[2] = { 0x07, 0x00 };
	uint8_t fr[EVCS_YKC_MAX_FRAME + 8], mod[EVCS_YKC_MAX_FRAME + 8];
	static uint8_t stream[65536];
	size_t sn = 0;

	for (size_t i = 0; i < YKC_NTYPES; i++) {
		uint8_t t = ykc_all_types[i];
		for (int o = 0; o < 2; o++) {
			int k = frame_of(t, 2, (enum evcs_ykc_crc_order)o, fr);
			size_t n = (size_t)k - 8;
			put(sd, "valid", t, (unsigned)o, one, 1, fr, (size_t)k);
			/* body target: type selector i, control = order */
			uint8_t hdr[2] = { (uint8_t)i, (uint8_t)o };
			put(bd, "valid", t, (unsigned)o, hdr, 2, fr + 6, n);
			put(bd, "short", t, (unsigned)o, hdr, 2, fr + 6, n - 1);
			put(bd, "long", t, (unsigned)o, hdr, 2, fr + 6, n + 1); /* + a CRC byte */
			if (o == 0) {
				/* cut at every byte */
				for (int c = 1; c < k; c++)
					put(sd, "cut", t, (unsigned)c, slow, 1, fr, (size_t)c);
				/* length byte = body length (JCPP), CRC over the true frame */
				memcpy(mod, fr, (size_t)k);
				mod[1] = (uint8_t)n;
				put(sd, "jcpplen", t, 0, one, 1, mod, (size_t)k);
				/* a byte short and a byte long, CRC recomputed */
				int s = evcs_ykc_frame_build(mod, sizeof(mod), seq, 0, t, fr + 6, n - 1, EVCS_YKC_CRC_LE);
				put(sd, "short", t, 0, one, 1, mod, (size_t)s);
				memcpy(mod + 6, fr + 6, n);
				mod[6 + n] = 0xEE;
				s = evcs_ykc_frame_build(mod, sizeof(mod), seq, 0, t, mod + 6, n + 1, EVCS_YKC_CRC_BE);
				if (s > 0)
					put(sd, "long", t, 0, one, 1, mod, (size_t)s);
				/* encryption flag set */
				s = evcs_ykc_frame_build(mod, sizeof(mod), seq, 1, t, fr + 6, n, EVCS_YKC_CRC_LE);
				put(sd, "enc", t, 0, one, 1, mod, (size_t)s);
			}
			if (sn + (size_t)k + 4 < sizeof(stream)) {
				memcpy(stream + sn, fr, (size_t)k);
				sn += (size_t)k;
				if (i % 5 == 0) {
					stream[sn++] = 0x68;
					stream[sn++] = 0x02;
				}
			}
		}
	}
	/* card lists with counts that disagree with their bodies */
	static const uint8_t lists[] = { 0x44, 0x46, 0x48 };
	for (size_t i = 0; i < sizeof(lists); i++) {
		int k = frame_of(lists[i], 3, EVCS_YKC_CRC_LE, fr);
		size_t n = (size_t)k - 8;
		memcpy(mod, fr + 6, n);
		mod[7] = 5;
		int s = evcs_ykc_frame_build(fr, sizeof(fr), seq, 0, lists[i], mod, n, EVCS_YKC_CRC_LE);
		put(sd, "count", lists[i], 0, one, 1, fr, (size_t)s);
		uint8_t hdr[2] = { 0, 0 };
		for (size_t j = 0; j < YKC_NTYPES; j++)
			if (ykc_all_types[j] == lists[i])
				hdr[0] = (uint8_t)j;
		put(bd, "count", lists[i], 0, hdr, 2, mod, n);
		/* count written as four bytes (JCPP) */
		memmove(mod + 11, mod + 8, n - 8);
		mod[7] = 3;
		mod[8] = mod[9] = mod[10] = 0;
		put(bd, "count4", lists[i], 0, hdr, 2, mod, n + 3);
	}
	/* len < 4, and a stream with garbage, false starts and a partial tail */
	static const uint8_t tiny[] = { 0x00, 0x68, 0x02, 0x68, 0x03, 0x00, 0x68 };
	put(sd, "tiny", 0, 0, NULL, 0, tiny, sizeof(tiny));
	stream[sn++] = 0x68;
	stream[sn++] = 0x40;
	stream[sn++] = 0x01;
	put(sd, "stream", 0, 0, one, 1, stream, sn);
	put(sd, "stream", 0, 1, slow, 1, stream, sn);
	printf("gen_seeds: %u files\n", nfiles);
	return 0;
}
