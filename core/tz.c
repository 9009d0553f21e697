/*
 * tz.c: IANA time zones read from compiled TZif files (RFC 8536) and the POSIX TZ rule of their
 * footer; the process-wide cache of loaded zones. Contract in tz.h.
 *
 * A zone is its transition table (unix second -> local time type) plus, when the file has one,
 * the footer rule for every instant after the last transition. Lookups are binary searches on
 * the table, or the rule's two switch instants of the year computed with integer civil-date
 * arithmetic: no libc time zone state is used, so everything here is thread-safe.
 */
#include "tz.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TZIF_MAX_BYTES (1u << 20)
#define TZ_MAX_TIMES 100000u
#define TZ_MAX_TYPES 256u
#define TZ_MAX_CHARS 4096u
#define TZ_MAX_OFFSET (26 * 3600)

struct tz_type {
	int32_t off;
	uint8_t isdst;
};

/* one switch date of a POSIX rule: Jn (1..365, no Feb 29), n (0..365), Mm.w.d */
struct tz_date {
	char kind; /* 'J', 'n', 'M' */
	int n, m, w, d;
	int32_t time; /* seconds after local midnight, -167 h .. 167 h */
};

struct evcs_tz {
	char name[EVCS_TZ_NAME_MAX + 8];
	size_t ntrans;
	int64_t *trans;
	uint8_t *tidx;
	size_t ntypes;
	struct tz_type *types;
	int has_rule; /* footer rule for t >= the last transition (or always, without one) */
	int rule_dst; /* the rule has a DST part */
	int32_t std_off, dst_off;
	struct tz_date start, end;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int evcs_tz_valid_name(const char *name)
{
	if (!name || !*name || name[0] == '/' || strlen(name) > EVCS_TZ_NAME_MAX ||
	    strstr(name, ".."))
		return 0;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("/_+-.", *p))
			return 0;
	return 1;
}

/* ---- civil dates (Howard Hinnant's algorithms) -------------------------------------------- */
static int64_t floordiv(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = floordiv(y, 400);
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int64_t year_of_days(int64_t z)
{
	z += 719468;
	int64_t era = floordiv(z, 146097);
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	int m = (int)(mp < 10 ? mp + 3 : mp - 9);
	return yoe + era * 400 + (m <= 2);
}

static int is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int month_days(int64_t y, int m)
{
	static const int md[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && is_leap(y) ? 29 : md[m - 1];
}

/* days since the epoch of a rule date in year y */
static int64_t rule_day(int64_t y, const struct tz_date *r)
{
	int64_t jan1 = days_from_civil(y, 1, 1);
	if (r->kind == 'J')
		return jan1 + r->n - 1 + (is_leap(y) && r->n >= 60);
	if (r->kind == 'n')
		return jan1 + r->n;
	int64_t first = days_from_civil(y, r->m, 1);
	int wd = (int)(((first + 4) % 7 + 7) % 7); /* 1970-01-01 was a Thursday; 0 = Sunday */
	int day = 1 + (r->d - wd + 7) % 7 + (r->w - 1) * 7;
	while (day > month_days(y, r->m))
		day -= 7;
	return first + day - 1;
}

static int rule_isdst(const evcs_tz_t *z, int64_t t)
{
	if (!z->rule_dst)
		return 0;
	int64_t y = year_of_days(floordiv(t + z->std_off, 86400));
	int64_t s = rule_day(y, &z->start) * 86400 + z->start.time - z->std_off;
	int64_t e = rule_day(y, &z->end) * 86400 + z->end.time - z->dst_off;
	if (s < e)
		return t >= s && t < e;
	return !(t >= e && t < s);
}

/* ---- lookups -------------------------------------------------------------------------------- */
static struct tz_type type_at(const evcs_tz_t *z, int64_t t)
{
	if (z->has_rule && (z->ntrans == 0 || t >= z->trans[z->ntrans - 1])) {
		int dst = rule_isdst(z, t);
		struct tz_type r = {dst ? z->dst_off : z->std_off, (uint8_t)dst};
		return r;
	}
	if (z->ntrans == 0 || t < z->trans[0])
		return z->types[0];
	size_t lo = 0, hi = z->ntrans; /* last i with trans[i] <= t */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (z->trans[mid] <= t)
			lo = mid;
		else
			hi = mid;
	}
	return z->types[z->tidx[lo]];
}

const char *evcs_tz_name(const evcs_tz_t *z) { return z ? z->name : "?"; }

int evcs_tz_offset_at(const evcs_tz_t *z, int64_t t) { return z ? type_at(z, t).off : 0; }

int evcs_tz_is_dst_at(const evcs_tz_t *z, int64_t t) { return z ? type_at(z, t).isdst : 0; }

int64_t evcs_tz_local_to_utc(const evcs_tz_t *z, int64_t local)
{
	int o1 = evcs_tz_offset_at(z, local - 86400), o2 = evcs_tz_offset_at(z, local + 86400);
	int64_t t1 = local - o1, t2 = local - o2;
	int ok1 = evcs_tz_offset_at(z, t1) == o1, ok2 = evcs_tz_offset_at(z, t2) == o2;
	if (ok1 && ok2)
		return t1 < t2 ? t1 : t2;
	if (ok2)
		return t2;
	return t1; /* valid, or in the gap: read with the offset before it */
}

int64_t evcs_tz_next_change(const evcs_tz_t *z, int64_t t, int64_t limit)
{
	if (limit <= t)
		return limit + 1;
	int o = evcs_tz_offset_at(z, t);
	if (evcs_tz_offset_at(z, limit) == o)
		return limit + 1;
	int64_t lo = t, hi = limit; /* off(lo) == o, off(hi) != o */
	while (hi - lo > 1) {
		int64_t mid = lo + (hi - lo) / 2;
		if (evcs_tz_offset_at(z, mid) == o)
			lo = mid;
		else
			hi = mid;
	}
	return hi;
}

/* ---- POSIX TZ strings (the TZif footer) ----------------------------------------------------- */
static const char *posix_name(const char *p)
{
	if (*p == '<') {
		const char *e = strchr(p, '>');
		if (!e || e - p < 2)
			return NULL;
		for (const char *q = p + 1; q < e; q++)
			if (!isalnum((unsigned char)*q) && *q != '+' && *q != '-')
				return NULL;
		return e + 1;
	}
	const char *q = p;
	while (isalpha((unsigned char)*q))
		q++;
	return q - p >= 3 ? q : NULL;
}

/* [+-]hh[:mm[:ss]] with hh <= maxh; *out in seconds */
static const char *posix_hms(const char *p, int maxh, int32_t *out)
{
	int sign = 1;
	if (*p == '+' || *p == '-')
		sign = *p++ == '-' ? -1 : 1;
	if (!isdigit((unsigned char)*p))
		return NULL;
	int v[3] = {0, 0, 0};
	for (int i = 0; i < 3; i++) {
		if (i > 0) {
			if (*p != ':')
				break;
			p++;
		}
		if (!isdigit((unsigned char)*p))
			return NULL;
		int n = 0, k = 0;
		while (isdigit((unsigned char)*p) && k < 3) {
			n = n * 10 + (*p++ - '0');
			k++;
		}
		if (isdigit((unsigned char)*p) || (i == 0 && n > maxh) || (i > 0 && (k != 2 || n > 59)))
			return NULL;
		v[i] = n;
	}
	*out = sign * (v[0] * 3600 + v[1] * 60 + v[2]);
	return p;
}

static const char *posix_num(const char *p, int lo, int hi, int *out)
{
	if (!isdigit((unsigned char)*p))
		return NULL;
	int n = 0;
	while (isdigit((unsigned char)*p)) {
		n = n * 10 + (*p++ - '0');
		if (n > hi)
			return NULL;
	}
	if (n < lo)
		return NULL;
	*out = n;
	return p;
}

static const char *posix_date(const char *p, struct tz_date *d)
{
	memset(d, 0, sizeof *d);
	if (*p == 'J') {
		d->kind = 'J';
		p = posix_num(p + 1, 1, 365, &d->n);
	} else if (*p == 'M') {
		d->kind = 'M';
		if (!(p = posix_num(p + 1, 1, 12, &d->m)) || *p != '.' ||
		    !(p = posix_num(p + 1, 1, 5, &d->w)) || *p != '.' ||
		    !(p = posix_num(p + 1, 0, 6, &d->d)))
			return NULL;
	} else {
		d->kind = 'n';
		p = posix_num(p, 0, 365, &d->n);
	}
	if (!p)
		return NULL;
	d->time = 7200;
	if (*p == '/')
		p = posix_hms(p + 1, 167, &d->time);
	return p;
}

static int parse_posix(evcs_tz_t *z, const char *s)
{
	int32_t off;
	const char *p = posix_name(s);
	if (!p || !(p = posix_hms(p, 24, &off)))
		return -1;
	z->std_off = -off;
	z->dst_off = z->std_off;
	z->rule_dst = 0;
	z->has_rule = 1;
	if (!*p)
		return 0;
	if (!(p = posix_name(p)))
		return -1;
	z->rule_dst = 1;
	z->dst_off = z->std_off + 3600;
	if (*p && *p != ',') {
		if (!(p = posix_hms(p, 24, &off)))
			return -1;
		z->dst_off = -off;
	}
	if (*p != ',' || !(p = posix_date(p + 1, &z->start)) || *p != ',' ||
	    !(p = posix_date(p + 1, &z->end)) || *p)
		return -1;
	return 0;
}

/* ---- TZif ---------------------------------------------------------------------------------- */
static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct tzif_counts {
	uint32_t isut, isstd, leap, time, type, chars;
};

static int tzif_header(const unsigned char *p, size_t len, struct tzif_counts *c, int *version)
{
	if (len < 44 || memcmp(p, "TZif", 4) != 0)
		return -1;
	*version = p[4] == 0 ? 1 : p[4] - '0';
	if (*version < 1 || *version > 9)
		return -1;
	c->isut = be32(p + 20);
	c->isstd = be32(p + 24);
	c->leap = be32(p + 28);
	c->time = be32(p + 32);
	c->type = be32(p + 36);
	c->chars = be32(p + 40);
	if (c->time > TZ_MAX_TIMES || c->type == 0 || c->type > TZ_MAX_TYPES ||
	    c->chars > TZ_MAX_CHARS || c->leap > TZ_MAX_TIMES ||
	    (c->isut != 0 && c->isut != c->type) || (c->isstd != 0 && c->isstd != c->type))
		return -1;
	return 0;
}

static size_t tzif_block_len(const struct tzif_counts *c, int tsize)
{
	return (size_t)c->time * (size_t)(tsize + 1) + (size_t)c->type * 6 + c->chars +
	       (size_t)c->leap * (size_t)(tsize + 4) + c->isstd + c->isut;
}

static int tzif_block(evcs_tz_t *z, const unsigned char *p, const struct tzif_counts *c,
		      int tsize, char *err, size_t errlen)
{
	if (c->leap) {
		seterr(err, errlen, "time zone '%s' counts leap seconds (a \"right/\" zone)", z->name);
		return -1;
	}
	z->ntrans = c->time;
	z->ntypes = c->type;
	z->trans = calloc(c->time ? c->time : 1, sizeof *z->trans);
	z->tidx = calloc(c->time ? c->time : 1, 1);
	z->types = calloc(c->type, sizeof *z->types);
	if (!z->trans || !z->tidx || !z->types) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	for (uint32_t i = 0; i < c->time; i++) {
		z->trans[i] = tsize == 8 ? be64(p + (size_t)i * 8) : (int32_t)be32(p + (size_t)i * 4);
		if (i && z->trans[i] <= z->trans[i - 1])
			goto bad;
	}
	p += (size_t)c->time * (size_t)tsize;
	for (uint32_t i = 0; i < c->time; i++) {
		z->tidx[i] = p[i];
		if (p[i] >= c->type)
			goto bad;
	}
	p += c->time;
	for (uint32_t i = 0; i < c->type; i++) {
		int32_t off = (int32_t)be32(p + (size_t)i * 6);
		if (off < -TZ_MAX_OFFSET || off > TZ_MAX_OFFSET || p[i * 6 + 4] > 1 ||
		    p[i * 6 + 5] >= c->chars)
			goto bad;
		z->types[i].off = off;
		z->types[i].isdst = p[i * 6 + 4];
	}
	return 0;
bad:
	seterr(err, errlen, "time zone '%s': malformed TZif data", z->name);
	return -1;
}

evcs_tz_t *evcs_tz_parse(const char *name, const void *data, size_t len, char *err,
			 size_t errlen)
{
	const unsigned char *p = data;
	evcs_tz_t *z = calloc(1, sizeof *z);
	if (!z) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(z->name, sizeof z->name, "%s", name ? name : "?");
	struct tzif_counts c;
	int version;
	if (!p || tzif_header(p, len, &c, &version) < 0)
		goto notzif;
	size_t b1 = tzif_block_len(&c, 4);
	if (b1 > len - 44)
		goto notzif;
	if (version == 1) {
		if (tzif_block(z, p + 44, &c, 4, err, errlen) < 0)
			goto fail;
		return z;
	}
	p += 44 + b1;
	len -= 44 + b1;
	if (tzif_header(p, len, &c, &version) < 0)
		goto notzif;
	size_t b2 = tzif_block_len(&c, 8);
	if (b2 > len - 44)
		goto notzif;
	if (tzif_block(z, p + 44, &c, 8, err, errlen) < 0)
		goto fail;
	const char *f = (const char *)p + 44 + b2;
	size_t fl = len - 44 - b2;
	/* footer: "\n" POSIX-TZ "\n"; an empty rule means none */
	if (fl < 2 || f[0] != '\n')
		goto notzif;
	const char *e = memchr(f + 1, '\n', fl - 1);
	if (!e || e - f - 1 > 128)
		goto notzif;
	if (e > f + 1) {
		char rule[130];
		memcpy(rule, f + 1, (size_t)(e - f - 1));
		rule[e - f - 1] = 0;
		if (parse_posix(z, rule) < 0) {
			seterr(err, errlen, "time zone '%s': unsupported footer rule '%s'", z->name,
			       rule);
			goto fail;
		}
	}
	return z;
notzif:
	seterr(err, errlen, "time zone '%s': not a valid TZif file", z->name);
fail:
	evcs_tz_free(z);
	return NULL;
}

void evcs_tz_free(evcs_tz_t *z)
{
	if (!z)
		return;
	free(z->trans);
	free(z->tidx);
	free(z->types);
	free(z);
}

evcs_tz_t *evcs_tz_load(const char *name, char *err, size_t errlen)
{
	if (!evcs_tz_valid_name(name)) {
		seterr(err, errlen, "'%s' is not a time zone name (like Asia/Shanghai)",
		       name ? name : "");
		return NULL;
	}
	const char *dir = getenv("TZDIR");
	if (!dir || !*dir)
		dir = "/usr/share/zoneinfo";
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		if (fd < 0 && e != ENOENT && e != ENOTDIR)
			seterr(err, errlen, "time zone '%s': %s: %s", name, path, strerror(e));
		else
			seterr(err, errlen, "unknown time zone '%s' (not in %s)", name, dir);
		return NULL;
	}
	if (st.st_size <= 0 || st.st_size > (off_t)TZIF_MAX_BYTES) {
		close(fd);
		seterr(err, errlen, "time zone '%s': not a valid TZif file", name);
		return NULL;
	}
	size_t len = (size_t)st.st_size, got = 0;
	unsigned char *buf = malloc(len);
	while (buf && got < len) {
		ssize_t r = read(fd, buf + got, len - got);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			break;
		}
		got += (size_t)r;
	}
	close(fd);
	if (!buf || got != len) {
		free(buf);
		seterr(err, errlen, "time zone '%s': cannot read %s", name, path);
		return NULL;
	}
	evcs_tz_t *z = evcs_tz_parse(name, buf, len, err, errlen);
	free(buf);
	return z;
}

/* ---- the shared cache ------------------------------------------------------------------------ */
struct cached {
	evcs_tz_t *z;
	int fixed;
	int offset;
	struct cached *next;
};

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct cached *cache;

static const evcs_tz_t *cache_find(const char *name)
{
	for (struct cached *c = cache; c; c = c->next)
		if (!c->fixed && !strcmp(c->z->name, name))
			return c->z;
	return NULL;
}

static const evcs_tz_t *cache_put(evcs_tz_t *z, int fixed, int offset)
{
	struct cached *c = calloc(1, sizeof *c);
	if (!c) {
		evcs_tz_free(z);
		return NULL;
	}
	c->z = z;
	c->fixed = fixed;
	c->offset = offset;
	c->next = cache;
	cache = c;
	return z;
}

const evcs_tz_t *evcs_tz_cached(const char *name)
{
	if (!evcs_tz_valid_name(name))
		return NULL;
	pthread_mutex_lock(&cache_mu);
	const evcs_tz_t *z = cache_find(name);
	pthread_mutex_unlock(&cache_mu);
	return z;
}

const evcs_tz_t *evcs_tz_get(const char *name, char *err, size_t errlen)
{
	const evcs_tz_t *z = evcs_tz_cached(name);
	if (z)
		return z;
	/* load outside the lock; a racing loader of the same name loses and frees its copy */
	evcs_tz_t *nz = evcs_tz_load(name, err, errlen);
	if (!nz)
		return NULL;
	pthread_mutex_lock(&cache_mu);
	z = cache_find(name);
	if (z)
		evcs_tz_free(nz);
	else if (!(z = cache_put(nz, 0, 0)))
		seterr(err, errlen, "out of memory");
	pthread_mutex_unlock(&cache_mu);
	return z;
}

const evcs_tz_t *evcs_tz_fixed(int offset_s)
{
	if (offset_s < -TZ_MAX_OFFSET || offset_s > TZ_MAX_OFFSET)
		return NULL;
	const evcs_tz_t *r = NULL;
	pthread_mutex_lock(&cache_mu);
	for (struct cached *c = cache; c && !r; c = c->next)
		if (c->fixed && c->offset == offset_s)
			r = c->z;
	if (!r) {
		evcs_tz_t *z = calloc(1, sizeof *z);
		struct tz_type *t = calloc(1, sizeof *t);
		if (z && t) {
			int a = offset_s < 0 ? -offset_s : offset_s;
			snprintf(z->name, sizeof z->name, "%c%02d:%02d", offset_s < 0 ? '-' : '+',
				 a / 3600, a / 60 % 60);
			t->off = offset_s;
			z->types = t;
			z->ntypes = 1;
			r = cache_put(z, 1, offset_s);
		} else {
			free(z);
			free(t);
		}
	}
	pthread_mutex_unlock(&cache_mu);
	return r;
}
