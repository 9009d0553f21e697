/*
 * plugins/ykc/codec.c: YKC framing (CRC-16/MODBUS, §2.5 stream scanner, frame
 * builder) and the field encodings of §3 (BCD, CP56Time2a, VIN, trade numbers).
 * Pure functions over caller memory; no allocation, no global mutable state.
 */
#include "codec.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Reflected CRC-16/MODBUS table (poly 0xA001); crc("123456789") = 0x4B37. */
static const uint16_t crc_table[256] = {
	0x0000, 0xC0C1, 0xC181, 0x0140, 0xC301, 0x03C0, 0x0280, 0xC241,
	0xC601, 0x06C0, 0x0780, 0xC741, 0x0500, 0xC5C1, 0xC481, 0x0440,
	0xCC01, 0x0CC0, 0x0D80, 0xCD41, 0x0F00, 0xCFC1, 0xCE81, 0x0E40,
	0x0A00, 0xCAC1, 0xCB81, 0x0B40, 0xC901, 0x09C0, 0x0880, 0xC841,
	0xD801, 0x18C0, 0x1980, 0xD941, 0x1B00, 0xDBC1, 0xDA81, 0x1A40,
	0x1E00, 0xDEC1, 0xDF81, 0x1F40, 0xDD01, 0x1DC0, 0x1C80, 0xDC41,
	0x1400, 0xD4C1, 0xD581, 0x1540, 0xD701, 0x17C0, 0x1680, 0xD641,
	0xD201, 0x12C0, 0x1380, 0xD341, 0x1100, 0xD1C1, 0xD081, 0x1040,
	0xF001, 0x30C0, 0x3180, 0xF141, 0x3300, 0xF3C1, 0xF281, 0x3240,
	0x3600, 0xF6C1, 0xF781, 0x3740, 0xF501, 0x35C0, 0x3480, 0xF441,
	0x3C00, 0xFCC1, 0xFD81, 0x3D40, 0xFF01, 0x3FC0, 0x3E80, 0xFE41,
	0xFA01, 0x3AC0, 0x3B80, 0xFB41, 0x3900, 0xF9C1, 0xF881, 0x3840,
	0x2800, 0xE8C1, 0xE981, 0x2940, 0xEB01, 0x2BC0, 0x2A80, 0xEA41,
	0xEE01, 0x2EC0, 0x2F80, 0xEF41, 0x2D00, 0xEDC1, 0xEC81, 0x2C40,
	0xE401, 0x24C0, 0x2580, 0xE541, 0x2700, 0xE7C1, 0xE681, 0x2640,
	0x2200, 0xE2C1, 0xE381, 0x2340, 0xE101, 0x21C0, 0x2080, 0xE041,
	0xA001, 0x60C0, 0x6180, 0xA141, 0x6300, 0xA3C1, 0xA281, 0x6240,
	0x6600, 0xA6C1, 0xA781, 0x6740, 0xA501, 0x65C0, 0x6480, 0xA441,
	0x6C00, 0xACC1, 0xAD81, 0x6D40, 0xAF01, 0x6FC0, 0x6E80, 0xAE41,
	0xAA01, 0x6AC0, 0x6B80, 0xAB41, 0x6900, 0xA9C1, 0xA881, 0x6840,
	0x7800, 0xB8C1, 0xB981, 0x7940, 0xBB01, 0x7BC0, 0x7A80, 0xBA41,
	0xBE01, 0x7EC0, 0x7F80, 0xBF41, 0x7D00, 0xBDC1, 0xBC81, 0x7C40,
	0xB401, 0x74C0, 0x7580, 0xB541, 0x7700, 0xB7C1, 0xB681, 0x7640,
	0x7200, 0xB2C1, 0xB381, 0x7340, 0xB101, 0x71C0, 0x7080, 0xB041,
	0x5000, 0x90C1, 0x9181, 0x5140, 0x9301, 0x53C0, 0x5280, 0x9241,
	0x9601, 0x56C0, 0x5780, 0x9741, 0x5500, 0x95C1, 0x9481, 0x5440,
	0x9C01, 0x5CC0, 0x5D80, 0x9D41, 0x5F00, 0x9FC1, 0x9E81, 0x5E40,
	0x5A00, 0x9AC1, 0x9B81, 0x5B40, 0x9901, 0x59C0, 0x5880, 0x9841,
	0x8801, 0x48C0, 0x4980, 0x8941, 0x4B00, 0x8BC1, 0x8A81, 0x4A40,
	0x4E00, 0x8EC1, 0x8F81, 0x4F40, 0x8D01, 0x4DC0, 0x4C80, 0x8C41,
	0x4400, 0x84C1, 0x8581, 0x4540, 0x8701, 0x47C0, 0x4680, 0x8641,
	0x8201, 0x42C0, 0x4380, 0x8341, 0x4100, 0x81C1, 0x8081, 0x4040,
};

uint16_t evcs_ykc_crc16(const uint8_t *p, size_t n)
{
	uint16_t crc = 0xFFFF;
	for (size_t i = 0; i < n; i++)
		crc = (uint16_t)((crc >> 8) ^ crc_table[(crc ^ p[i]) & 0xFF]);
	return crc;
}

bool evcs_ykc_crc_match(const uint8_t *covered, size_t n, const uint8_t wire[2],
			enum evcs_ykc_crc_order *order)
{
	uint16_t crc = evcs_ykc_crc16(covered, n);
	uint8_t lo = (uint8_t)(crc & 0xFF), hi = (uint8_t)(crc >> 8);
	/* "le" is checked first so a CRC with two equal bytes reports "le" (§2.4). */
	if (wire[0] == lo && wire[1] == hi) {
		if (order)
			*order = EVCS_YKC_CRC_LE;
		return true;
	}
	if (wire[0] == hi && wire[1] == lo) {
		if (order)
			*order = EVCS_YKC_CRC_BE;
		return true;
	}
	return false;
}

/* ---- stream scanner (§2.5) --------------------------------------------- */

void evcs_ykc_scan_init(struct evcs_ykc_scan *s, const uint8_t *buf, size_t len, unsigned flags)
{
	s->buf = buf;
	s->len = len;
	s->pos = 0;
	s->skipped = 0;
	s->flags = flags;
}

void evcs_ykc_scan_skip_candidate(struct evcs_ykc_scan *s)
{
	if (s->pos < s->len) {
		s->pos++;
		s->skipped++;
	}
}

static void fill_frame(struct evcs_ykc_frame *f, const uint8_t *p, size_t off, size_t size,
		       enum evcs_ykc_crc_order order, bool compat)
{
	f->offset = off;
	f->size = size;
	f->raw = p;
	f->len = p[1];
	f->seq[0] = p[2];
	f->seq[1] = p[3];
	f->enc = p[4];
	f->type = p[5];
	f->body = p + 6;
	f->body_len = size - EVCS_YKC_OVERHEAD;
	f->crc_order = order;
	f->len_compat = compat;
}

bool evcs_ykc_scan_next(struct evcs_ykc_scan *s, struct evcs_ykc_frame *f)
{
	while (s->pos < s->len) {
		const uint8_t *p = s->buf + s->pos;
		size_t avail = s->len - s->pos;
		if (p[0] != EVCS_YKC_START) {
			/* step 1: hunt for the next 0x68 in one go */
			const uint8_t *q = memchr(p, EVCS_YKC_START, avail);
			size_t drop = q ? (size_t)(q - p) : avail;
			s->pos += drop;
			s->skipped += drop;
			continue;
		}
		if (avail < 2)
			return false; /* step 2: wait for the length byte */
		size_t len = p[1];
		if (len < EVCS_YKC_MIN_LEN) { /* step 3 */
			s->pos++;
			s->skipped++;
			continue;
		}
		size_t size = len + 4;
		if (avail < size)
			return false; /* step 4 */
		enum evcs_ykc_crc_order order;
		if (evcs_ykc_crc_match(p + 2, len, p + len + 2, &order)) { /* step 5 */
			fill_frame(f, p, s->pos, size, order, false);
			s->pos += size;
			return true;
		}
		if (s->flags & EVCS_YKC_SCAN_LEN_COMPAT) {
			/* The length byte counted only the body: the frame is len + 8 bytes. */
			size_t csize = len + EVCS_YKC_OVERHEAD;
			if (avail < csize)
				return false;
			if (evcs_ykc_crc_match(p + 2, len + 4, p + len + 6, &order)) {
				fill_frame(f, p, s->pos, csize, order, true);
				s->pos += csize;
				return true;
			}
		}
		/* A real frame may start inside the bogus candidate: skip only the 0x68. */
		s->pos++;
		s->skipped++;
	}
	return false;
}

/* ---- frame builder ------------------------------------------------------ */

int evcs_ykc_frame_build(uint8_t *out, size_t cap, const uint8_t seq[2], uint8_t enc,
			 uint8_t type, const uint8_t *body, size_t n, enum evcs_ykc_crc_order order)
{
	if (n > EVCS_YKC_MAX_BODY)
		return -EMSGSIZE;
	if (cap < n + EVCS_YKC_OVERHEAD)
		return -ENOSPC;
	if (n && body != out + 6)
		memmove(out + 6, body, n);
	out[0] = EVCS_YKC_START;
	out[1] = (uint8_t)(n + 4);
	out[2] = seq[0];
	out[3] = seq[1];
	out[4] = enc;
	out[5] = type;
	uint16_t crc = evcs_ykc_crc16(out + 2, n + 4);
	uint8_t lo = (uint8_t)(crc & 0xFF), hi = (uint8_t)(crc >> 8);
	out[n + 6] = order == EVCS_YKC_CRC_LE ? lo : hi;
	out[n + 7] = order == EVCS_YKC_CRC_LE ? hi : lo;
	return (int)(n + EVCS_YKC_OVERHEAD);
}

/* ---- CP56Time2a (§3.3) ------------------------------------------------- */

void evcs_ykc_cp56_decode(const uint8_t b[7], struct evcs_ykc_cp56 *t)
{
	t->ms = (uint16_t)(b[0] | (b[1] << 8));
	t->minute = b[2] & 0x3F;
	t->min_flags = b[2] & 0xC0;
	t->hour = b[3] & 0x1F;
	t->hour_flags = b[3] & 0xE0;
	t->mday = b[4] & 0x1F;
	t->wday = (uint8_t)(b[4] >> 5);
	t->month = b[5] & 0x0F;
	t->mon_flags = b[5] & 0xF0;
	t->year = b[6] & 0x7F;
	t->year_flags = b[6] & 0x80;
}

int evcs_ykc_cp56_encode(const struct evcs_ykc_cp56 *t, uint8_t b[7])
{
	if (t->minute > 0x3F || t->hour > 0x1F || t->mday > 0x1F || t->wday > 7 ||
	    t->month > 0x0F || t->year > 0x7F || (t->min_flags & ~0xC0) ||
	    (t->hour_flags & ~0xE0) || (t->mon_flags & ~0xF0) || (t->year_flags & ~0x80))
		return -ERANGE;
	b[0] = (uint8_t)(t->ms & 0xFF);
	b[1] = (uint8_t)(t->ms >> 8);
	b[2] = (uint8_t)(t->minute | t->min_flags);
	b[3] = (uint8_t)(t->hour | t->hour_flags);
	b[4] = (uint8_t)(t->mday | (t->wday << 5));
	b[5] = (uint8_t)(t->month | t->mon_flags);
	b[6] = (uint8_t)(t->year | t->year_flags);
	return 0;
}

int evcs_ykc_cp56_from_tm(const struct tm *tm, unsigned ms, struct evcs_ykc_cp56 *t)
{
	int year = tm->tm_year + 1900 - 2000;
	if (year < 0 || year > 127 || ms > 999 || tm->tm_sec < 0 || tm->tm_sec > 60 ||
	    tm->tm_min < 0 || tm->tm_min > 59 || tm->tm_hour < 0 || tm->tm_hour > 23 ||
	    tm->tm_mday < 1 || tm->tm_mday > 31 || tm->tm_mon < 0 || tm->tm_mon > 11)
		return -ERANGE;
	memset(t, 0, sizeof(*t));
	/* A leap second is folded into :59.999 (the field tops out at 59999 ms). */
	unsigned msec = tm->tm_sec >= 60 ? 59999u : (unsigned)tm->tm_sec * 1000u + ms;
	t->ms = (uint16_t)msec;
	t->minute = (uint8_t)tm->tm_min;
	t->hour = (uint8_t)tm->tm_hour;
	t->mday = (uint8_t)tm->tm_mday;
	t->wday = (tm->tm_wday >= 0 && tm->tm_wday <= 6) ? (uint8_t)(tm->tm_wday == 0 ? 7 : tm->tm_wday) : 0;
	t->month = (uint8_t)(tm->tm_mon + 1);
	t->year = (uint8_t)year;
	return 0;
}

void evcs_ykc_cp56_to_tm(const struct evcs_ykc_cp56 *t, struct tm *tm, unsigned *ms)
{
	memset(tm, 0, sizeof(*tm));
	tm->tm_year = 2000 + t->year - 1900;
	tm->tm_mon = t->month - 1;
	tm->tm_mday = t->mday;
	tm->tm_hour = t->hour;
	tm->tm_min = t->minute;
	tm->tm_sec = t->ms / 1000;
	tm->tm_wday = t->wday == 7 ? 0 : t->wday;
	tm->tm_isdst = -1;
	if (ms)
		*ms = t->ms % 1000;
}

void evcs_ykc_cp56_format(const struct evcs_ykc_cp56 *t, char *buf, size_t cap)
{
	unsigned msec = t->ms % 1000u;
	if (msec)
		snprintf(buf, cap, "%04u-%02u-%02uT%02u:%02u:%02u.%03u", 2000u + t->year, t->month,
			 t->mday, t->hour, t->minute, t->ms / 1000u, msec);
	else
		snprintf(buf, cap, "%04u-%02u-%02uT%02u:%02u:%02u", 2000u + t->year, t->month,
			 t->mday, t->hour, t->minute, t->ms / 1000u);
}

/* ---- BCD, VIN, trade number -------------------------------------------- */

static const char hexdig[] = "0123456789ABCDEF";

void evcs_ykc_bcd_decode(const uint8_t *b, size_t nbytes, char *out)
{
	for (size_t i = 0; i < nbytes; i++) {
		out[2 * i] = hexdig[b[i] >> 4];
		out[2 * i + 1] = hexdig[b[i] & 0x0F];
	}
	out[2 * nbytes] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int evcs_ykc_bcd_encode(const char *s, uint8_t *b, size_t nbytes)
{
	/* Check everything before writing so a refused value leaves b untouched. */
	for (size_t i = 0; i < 2 * nbytes; i++)
		if (hexval(s[i]) < 0)
			return -EINVAL; /* also catches a string that ends early */
	if (s[2 * nbytes] != '\0')
		return -EINVAL;
	for (size_t i = 0; i < nbytes; i++)
		b[i] = (uint8_t)((hexval(s[2 * i]) << 4) | hexval(s[2 * i + 1]));
	return 0;
}

void evcs_ykc_vin_text(const uint8_t vin[17], bool reversed, char out[18])
{
	size_t k = 0;
	for (size_t i = 0; i < 17; i++) {
		uint8_t c = reversed ? vin[16 - i] : vin[i];
		if (c)
			out[k++] = (char)c;
	}
	out[k] = '\0';
}

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return s[n] == '\0';
}

int evcs_ykc_trade_no(char out[33], const char *pile, const char *gun, const struct tm *tm,
		      unsigned counter)
{
	if (!all_digits(pile, 14) || !all_digits(gun, 2) || counter > 9999)
		return -EINVAL;
	int year = tm->tm_year + 1900;
	if (year < 2000 || year > 2099 || tm->tm_mon < 0 || tm->tm_mon > 11 || tm->tm_mday < 1 ||
	    tm->tm_mday > 31 || tm->tm_hour < 0 || tm->tm_hour > 23 || tm->tm_min < 0 ||
	    tm->tm_min > 59 || tm->tm_sec < 0 || tm->tm_sec > 60)
		return -ERANGE;
	int sec = tm->tm_sec > 59 ? 59 : tm->tm_sec;
	snprintf(out, 33, "%s%s%02d%02d%02d%02d%02d%02d%04u", pile, gun, year % 100, tm->tm_mon + 1,
		 tm->tm_mday, tm->tm_hour, tm->tm_min, sec, counter);
	return 0;
}
