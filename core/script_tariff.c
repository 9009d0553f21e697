/*
 * core/script_tariff.c: the pure, Lua-free half of the scripting engine:
 * exact decimal money, the single rounding primitive (evcs_mul_div), the
 * split of meter samples into half-hour pieces, and the JSON forms of
 * sessions, tariffs and bills used by evcsctl and the API.
 *
 * No global state of its own (zones come from tz.h's shared cache); every
 * function is thread-safe. Local time is a zone (tz.h) at each instant. Errors come back as a
 * status plus an optional malloc'd message.
 */
#include "script.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const period_names[4] = {"sharp", "peak", "flat", "valley"};

const char *evcs_period_name(int p)
{
	return p >= 0 && p < 4 ? period_names[p] : "?";
}

const char *evcs_bill_kind_name(int kind)
{
	static const char *const n[] = {"?", "energy", "service", "fee", "discount", "adjust"};
	return kind >= 1 && kind <= 5 ? n[kind] : "?";
}

const char *evcs_alarm_severity_name(int sev)
{
	static const char *const n[] = {"?", "info", "warning", "major", "critical"};
	return sev >= 1 && sev <= 4 ? n[sev] : "?";
}

static void set_err(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(char **err, const char *fmt, ...)
{
	if (!err)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *m = NULL;
	if (vasprintf(&m, fmt, ap) < 0)
		m = NULL;
	va_end(ap);
	free(*err);
	*err = m;
}

/* ---- exact decimals --------------------------------------------------- */
int evcs_decimal_parse(const char *s, int scale, int64_t *out)
{
	if (!s || scale < 0 || scale > 9)
		return EVCS_EINVAL;
	int neg = 0;
	if (*s == '-') {
		neg = 1;
		s++;
	}
	if (!isdigit((unsigned char)*s))
		return EVCS_EINVAL;
	int64_t v = 0;
	for (; isdigit((unsigned char)*s); s++) {
		if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *s - '0', &v))
			return EVCS_EINVAL;
	}
	int frac = 0;
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return EVCS_EINVAL;
		for (; isdigit((unsigned char)*s); s++) {
			/* more digits than the unit can hold would need rounding: refuse,
			 * unless they are trailing zeros */
			if (frac == scale) {
				if (*s != '0')
					return EVCS_EINVAL;
				continue;
			}
			if (__builtin_mul_overflow(v, 10, &v) ||
			    __builtin_add_overflow(v, *s - '0', &v))
				return EVCS_EINVAL;
			frac++;
		}
	}
	if (*s)
		return EVCS_EINVAL;
	for (; frac < scale; frac++)
		if (__builtin_mul_overflow(v, 10, &v))
			return EVCS_EINVAL;
	*out = neg ? -v : v;
	return EVCS_OK;
}

char *evcs_decimal_format(int64_t v, int scale, char *buf, size_t len)
{
	uint64_t p = 1;
	for (int i = 0; i < scale; i++)
		p *= 10;
	uint64_t a = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	if (scale == 0)
		snprintf(buf, len, "%s%" PRIu64, v < 0 ? "-" : "", a);
	else
		snprintf(buf, len, "%s%" PRIu64 ".%0*" PRIu64, v < 0 ? "-" : "", a / p, scale,
			 a % p);
	return buf;
}

int evcs_mul_div(int64_t a, int64_t b, int64_t c, int64_t *out)
{
	if (c <= 0)
		return EVCS_EINVAL;
	__int128 n = (__int128)a * b;
	int neg = n < 0;
	unsigned __int128 un = neg ? (unsigned __int128)(-n) : (unsigned __int128)n;
	unsigned __int128 q = un / (unsigned __int128)c, r = un % (unsigned __int128)c;
	/* half-up on the magnitude = ties away from zero */
	if (r * 2 >= (unsigned __int128)c)
		q++;
	if (q > (unsigned __int128)INT64_MAX)
		return EVCS_EINVAL;
	*out = neg ? -(int64_t)q : (int64_t)q;
	return EVCS_OK;
}

int evcs_bill_mismatch(int64_t platform_total, int64_t pile_amount, int64_t tolerance)
{
	if (pile_amount < 0)
		return 0;
	__int128 d = (__int128)platform_total - pile_amount;
	if (d < 0)
		d = -d;
	return d > tolerance;
}

/* ---- pieces ------------------------------------------------------------- */
static int64_t floordiv(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

struct piece_vec {
	evcs_energy_piece_t *v;
	size_t n, cap;
};

#define MAX_SPAN_S (62LL * 86400)

static int piece_add(struct piece_vec *pv, const evcs_tariff_model_t *m, const evcs_tz_t *z,
		     int64_t t0, int64_t t1, int64_t kwh)
{
	int64_t lt = t0 + evcs_tz_offset_at(z, t0);
	int64_t day = floordiv(lt, 86400);
	int slot = (int)((lt - day * 86400) / 1800);
	if (pv->n) {
		evcs_energy_piece_t *last = &pv->v[pv->n - 1];
		int64_t lday = floordiv(last->t0 + evcs_tz_offset_at(z, last->t0), 86400);
		if (last->slot == slot && lday == day && last->t1 == t0) {
			last->t1 = t1;
			last->kwh += kwh;
			return 0;
		}
	}
	if (pv->n == pv->cap) {
		size_t nc = pv->cap ? pv->cap * 2 : 16;
		evcs_energy_piece_t *nv = realloc(pv->v, nc * sizeof(*nv));
		if (!nv)
			return EVCS_ENOMEM;
		pv->v = nv;
		pv->cap = nc;
	}
	evcs_energy_piece_t *p = &pv->v[pv->n++];
	memset(p, 0, sizeof(*p));
	p->t0 = t0;
	p->t1 = t1;
	p->kwh = kwh;
	p->slot = slot;
	p->period = m->slots[slot] & 3;
	time_t tt = (time_t)(day * 86400);
	struct tm tm;
	gmtime_r(&tt, &tm);
	p->year = tm.tm_year + 1900;
	p->month = tm.tm_mon + 1;
	p->day = tm.tm_mday;
	p->wday = tm.tm_wday == 0 ? 7 : tm.tm_wday;
	return 0;
}

int evcs_session_pieces(const evcs_session_t *s, const evcs_tariff_model_t *m,
			evcs_energy_piece_t **out, size_t *n, int64_t period_kwh[4], char **err)
{
	*out = NULL;
	*n = 0;
	if (s->nsamples < 2) {
		set_err(err, "session needs at least 2 meter samples (got %zu)", s->nsamples);
		return EVCS_EINVAL;
	}
	const evcs_meter_sample_t *sm = s->samples;
	for (size_t i = 1; i < s->nsamples; i++)
		if (sm[i].ts < sm[i - 1].ts) {
			set_err(err, "meter sample %zu is earlier than sample %zu", i, i - 1);
			return EVCS_EINVAL;
		}
	if (sm[s->nsamples - 1].ts - sm[0].ts > MAX_SPAN_S) {
		set_err(err, "meter samples span more than 62 days");
		return EVCS_EINVAL;
	}
	const evcs_tz_t *z = s->tz ? s->tz : evcs_tz_fixed(s->tz_offset_min * 60);
	if (!z) {
		set_err(err, "tz_offset_min %d is out of range", s->tz_offset_min);
		return EVCS_EINVAL;
	}
	struct piece_vec pv = {0};
	int64_t pk[4] = {0, 0, 0, 0};
	int rc = 0;
	for (size_t i = 0; i + 1 < s->nsamples && rc == 0; i++) {
		int64_t t0 = sm[i].ts, t1 = sm[i + 1].ts;
		int64_t d = sm[i + 1].kwh - sm[i].kwh;
		if (d < 0)
			d = 0;
		if (t1 == t0) {
			/* a jump at one instant belongs to the slot of that instant */
			rc = piece_add(&pv, m, z, t0, t1, d);
			continue;
		}
		int64_t cur = t0, done = 0;
		while (cur < t1 && rc == 0) {
			/* the next local half-hour boundary, or the next change of UTC offset
			 * (a DST switch) when that comes first */
			int off_s = evcs_tz_offset_at(z, cur);
			int64_t b = (floordiv(cur + off_s, 1800) + 1) * 1800 - off_s;
			int64_t ch = evcs_tz_next_change(z, cur, b - 1);
			if (ch < b)
				b = ch;
			int64_t end = b < t1 ? b : t1;
			/* cumulative share at `end`, floor: the last piece gets the rest,
			 * so the pieces of one interval sum to d exactly */
			int64_t cum = end == t1 ? d
					      : (int64_t)((__int128)d * (end - t0) / (t1 - t0));
			rc = piece_add(&pv, m, z, cur, end, cum - done);
			done = cum;
			cur = end;
		}
	}
	if (rc) {
		free(pv.v);
		set_err(err, "out of memory");
		return rc;
	}
	/* drop empty pieces unless everything is empty (keeps the time span) */
	size_t k = 0;
	int64_t total = 0;
	for (size_t i = 0; i < pv.n; i++)
		total += pv.v[i].kwh;
	for (size_t i = 0; i < pv.n; i++) {
		if (total != 0 && pv.v[i].kwh == 0)
			continue;
		pk[pv.v[i].period] += pv.v[i].kwh;
		pv.v[k++] = pv.v[i];
	}
	*out = pv.v;
	*n = k;
	if (period_kwh)
		memcpy(period_kwh, pk, sizeof(pk));
	return EVCS_OK;
}

/* ---- JSON: tariff ------------------------------------------------------- */
char *evcs_tariff_to_json(const evcs_tariff_model_t *m)
{
	json_t *o = json_object();
	char buf[32], key[32];
	json_object_set_new(o, "model", json_string(m->model));
	for (int p = 0; p < 4; p++) {
		snprintf(key, sizeof(key), "%s_elec_rate", period_names[p]);
		json_object_set_new(o, key, json_string(evcs_decimal_format(m->elec[p], 5, buf, sizeof(buf))));
		snprintf(key, sizeof(key), "%s_service_rate", period_names[p]);
		json_object_set_new(o, key,
				    json_string(evcs_decimal_format(m->service[p], 5, buf, sizeof(buf))));
	}
	json_object_set_new(o, "loss_ratio", json_integer(0));
	json_t *sl = json_array();
	for (int i = 0; i < EVCS_SLOTS; i++)
		json_array_append_new(sl, json_integer(m->slots[i]));
	json_object_set_new(o, "slots", sl);
	char *r = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return r;
}

/* An amount field: JSON integer = raw units, JSON string = decimal in the
 * natural unit (yuan, kWh). Reals are refused: they cannot be exact. */
static int json_units(json_t *v, int scale, int64_t *out, const char *what, char **err)
{
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 0;
	}
	if (json_is_string(v) && evcs_decimal_parse(json_string_value(v), scale, out) == 0)
		return 0;
	set_err(err, "%s: expected an integer (raw units) or a decimal string with at most %d decimals",
		what, scale);
	return EVCS_EINVAL;
}

static int tariff_from_obj(json_t *o, evcs_tariff_model_t *m, char **err)
{
	if (!json_is_object(o)) {
		set_err(err, "tariff: expected an object");
		return EVCS_EINVAL;
	}
	memset(m, 0, sizeof(*m));
	const char *model = json_string_value(json_object_get(o, "model"));
	if (!model || strlen(model) != 4 || strspn(model, "0123456789") != 4) {
		set_err(err, "tariff.model: expected 4 decimal digits");
		return EVCS_EINVAL;
	}
	memcpy(m->model, model, 5);
	char key[32];
	for (int p = 0; p < 4; p++) {
		for (int k = 0; k < 2; k++) {
			snprintf(key, sizeof(key), "%s_%s_rate", period_names[p], k ? "service" : "elec");
			int64_t v;
			if (json_units(json_object_get(o, key), 5, &v, key, err))
				return EVCS_EINVAL;
			if (v < 0 || v > UINT32_MAX) {
				set_err(err, "tariff.%s: out of range", key);
				return EVCS_EINVAL;
			}
			(k ? m->service : m->elec)[p] = v;
		}
	}
	json_t *sl = json_object_get(o, "slots");
	if (!json_is_array(sl) || json_array_size(sl) != EVCS_SLOTS) {
		set_err(err, "tariff.slots: expected an array of 48 periods");
		return EVCS_EINVAL;
	}
	for (int i = 0; i < EVCS_SLOTS; i++) {
		json_t *x = json_array_get(sl, (size_t)i);
		if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > 3) {
			set_err(err, "tariff.slots[%d]: expected 0..3", i);
			return EVCS_EINVAL;
		}
		m->slots[i] = (uint8_t)json_integer_value(x);
	}
	return 0;
}

int evcs_tariff_from_json(const char *text, evcs_tariff_model_t *out, char **err)
{
	json_error_t je;
	json_t *o = json_loads(text, 0, &je);
	if (!o) {
		set_err(err, "tariff JSON line %d: %s", je.line, je.text);
		return EVCS_EINVAL;
	}
	evcs_tariff_model_t m;
	int rc = tariff_from_obj(o, &m, err);
	json_decref(o);
	if (rc == 0)
		*out = m;
	return rc;
}

/* ---- JSON: session -------------------------------------------------------- */
struct session_priv {
	json_t *root;
	evcs_meter_sample_t *samples;
	const char **tags;
	evcs_tariff_model_t tariff;
};

/* "+08:00" / "-05:30": seconds east of UTC; -1 when s is not one */
static int fixed_offset(const char *s, int *off)
{
	int hh, mm, n = 0;
	if ((s[0] == '+' || s[0] == '-') && sscanf(s + 1, "%2d:%2d%n", &hh, &mm, &n) == 2 &&
	    s[1 + n] == 0 && hh >= 0 && hh <= 15 && mm >= 0 && mm < 60) {
		*off = (s[0] == '-' ? -1 : 1) * (hh * 3600 + mm * 60);
		return 0;
	}
	return -1;
}

/* The session's zone: "tz_offset_min" (fixed), "tz" (IANA name or fixed offset), else local. */
static int parse_tz(json_t *o, const evcs_tz_t *local, const evcs_tz_t **z, char **err)
{
	*z = local;
	json_t *v = json_object_get(o, "tz_offset_min");
	if (v) {
		if (!json_is_integer(v) || json_integer_value(v) < -900 || json_integer_value(v) > 900) {
			set_err(err, "tz_offset_min: expected minutes in -900..900");
			return EVCS_EINVAL;
		}
		*z = evcs_tz_fixed((int)json_integer_value(v) * 60);
		return *z ? 0 : EVCS_ENOMEM;
	}
	v = json_object_get(o, "tz");
	if (!v)
		return 0;
	const char *tz = json_string_value(v);
	int off;
	if (tz && (!strcmp(tz, "Z") || fixed_offset(tz, &off) == 0)) {
		*z = evcs_tz_fixed(!strcmp(tz, "Z") ? 0 : off);
		return *z ? 0 : EVCS_ENOMEM;
	}
	char why[256] = "expected a string";
	if (tz && (*z = evcs_tz_get(tz, why, sizeof why)))
		return 0;
	set_err(err, "tz: %s (use an IANA zone like Asia/Shanghai or Europe/Berlin, or +08:00)",
		why);
	return EVCS_EINVAL;
}

/* unix seconds: JSON integer, or "YYYY-MM-DD[T ]HH:MM[:SS][Z|+HH:MM]" (no zone
 * = the session's local time, in its zone at that wall-clock time) */
static int parse_time(json_t *v, const evcs_tz_t *z, int64_t *out, const char *what, char **err)
{
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 0;
	}
	const char *s = json_string_value(v);
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	int n = 0;
	char sep;
	if (s && sscanf(s, "%4d-%2d-%2d%c%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &sep,
			&tm.tm_hour, &tm.tm_min, &n) == 6 &&
	    (sep == 'T' || sep == ' ')) {
		const char *r = s + n;
		int k = 0;
		if (*r == ':' && sscanf(r, ":%2d%n", &tm.tm_sec, &k) == 1)
			r += k;
		int explicit = 0, zone = 0, hh, mm;
		if (*r == 'Z') {
			explicit = 1;
			r++;
		} else if ((*r == '+' || *r == '-') && sscanf(r + 1, "%2d:%2d%n", &hh, &mm, &k) == 2) {
			explicit = 1;
			zone = (*r == '-' ? -1 : 1) * (hh * 60 + mm);
			r += 1 + k;
		}
		if (*r == 0 && tm.tm_mon >= 1 && tm.tm_mon <= 12 && tm.tm_mday >= 1 &&
		    tm.tm_mday <= 31 && tm.tm_hour < 24 && tm.tm_min < 60 && tm.tm_sec < 61) {
			tm.tm_year -= 1900;
			tm.tm_mon -= 1;
			int64_t local = (int64_t)timegm(&tm);
			*out = explicit ? local - (int64_t)zone * 60 : evcs_tz_local_to_utc(z, local);
			return 0;
		}
	}
	set_err(err, "%s: expected unix seconds or \"YYYY-MM-DD HH:MM:SS[+08:00]\"", what);
	return EVCS_EINVAL;
}

static const char *opt_str(json_t *o, const char *k, int *bad)
{
	json_t *v = json_object_get(o, k);
	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_string(v))
		*bad = 1;
	return json_string_value(v);
}

int evcs_session_from_json(const char *text, evcs_session_t *out, char **err)
{
	return evcs_session_from_json_in(text, NULL, out, err);
}

int evcs_session_from_json_in(const char *text, const evcs_tz_t *local, evcs_session_t *out,
			      char **err)
{
	if (!local)
		local = evcs_tz_get(EVCS_TZ_DEFAULT, NULL, 0);
	if (!local)
		local = evcs_tz_fixed(8 * 3600);
	json_error_t je;
	json_t *o = json_loads(text, 0, &je);
	if (!o) {
		set_err(err, "session JSON line %d: %s", je.line, je.text);
		return EVCS_EINVAL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		set_err(err, "session JSON: expected an object");
		return EVCS_EINVAL;
	}
	struct session_priv *pv = calloc(1, sizeof(*pv));
	if (!pv) {
		json_decref(o);
		return EVCS_ENOMEM;
	}
	pv->root = o;
	evcs_session_t s;
	memset(&s, 0, sizeof(s));
	s.priv = pv;
	s.pile_amount = -1;
	int bad = 0;
	json_t *v;
	if ((v = json_object_get(o, "tenant"))) {
		if (!json_is_integer(v))
			goto badfield_tenant;
		s.tenant_id = json_integer_value(v);
	}
	s.pile = opt_str(o, "pile", &bad);
	s.trade_no = opt_str(o, "trade_no", &bad);
	s.driver_id = opt_str(o, "driver_id", &bad);
	s.member = opt_str(o, "member", &bad);
	s.fleet = opt_str(o, "fleet", &bad);
	if (bad) {
		set_err(err, "pile, trade_no, driver_id, member, fleet must be strings");
		goto fail;
	}
	if ((v = json_object_get(o, "gun")) && json_is_integer(v))
		s.gun = (int)json_integer_value(v);
	if (parse_tz(o, local, &s.tz, err))
		goto fail;
	if (parse_time(json_object_get(o, "start"), s.tz, &s.start, "start", err) ||
	    parse_time(json_object_get(o, "stop"), s.tz, &s.stop, "stop", err))
		goto fail;
	s.tz_offset_min = evcs_tz_offset_at(s.tz, s.start) / 60;
	if (s.stop < s.start) {
		set_err(err, "stop is before start");
		goto fail;
	}
	json_t *kwh = json_object_get(o, "kwh");
	if (kwh) {
		if (!json_is_object(kwh)) {
			set_err(err, "kwh: expected {\"sharp\":..,\"peak\":..,\"flat\":..,\"valley\":..}");
			goto fail;
		}
		const char *k;
		json_object_foreach(kwh, k, v) {
			int p = -1;
			for (int i = 0; i < 4; i++)
				if (!strcmp(k, period_names[i]))
					p = i;
			if (p < 0) {
				set_err(err, "kwh.%s: unknown period (sharp, peak, flat, valley)", k);
				goto fail;
			}
			char what[32];
			snprintf(what, sizeof(what), "kwh.%s", k);
			if (json_units(v, 4, &s.period_kwh[p], what, err))
				goto fail;
			if (s.period_kwh[p] < 0) {
				set_err(err, "%s: negative energy", what);
				goto fail;
			}
		}
	}
	json_t *sm = json_object_get(o, "samples");
	if (sm) {
		if (!json_is_array(sm) || json_array_size(sm) > 100000) {
			set_err(err, "samples: expected an array of [time, kwh] (at most 100000)");
			goto fail;
		}
		size_t n = json_array_size(sm);
		pv->samples = calloc(n ? n : 1, sizeof(*pv->samples));
		if (!pv->samples)
			goto fail;
		for (size_t i = 0; i < n; i++) {
			json_t *e = json_array_get(sm, i), *t, *q;
			if (json_is_array(e) && json_array_size(e) == 2) {
				t = json_array_get(e, 0);
				q = json_array_get(e, 1);
			} else if (json_is_object(e)) {
				t = json_object_get(e, "ts");
				q = json_object_get(e, "kwh");
			} else {
				set_err(err, "samples[%zu]: expected [time, kwh] or {\"ts\":..,\"kwh\":..}", i);
				goto fail;
			}
			char what[48];
			snprintf(what, sizeof(what), "samples[%zu]", i);
			if (parse_time(t, s.tz, &pv->samples[i].ts, what, err) ||
			    json_units(q, 4, &pv->samples[i].kwh, what, err))
				goto fail;
		}
		s.samples = pv->samples;
		s.nsamples = n;
	}
	json_t *tags = json_object_get(o, "tags");
	if (tags) {
		if (!json_is_array(tags)) {
			set_err(err, "tags: expected an array of strings");
			goto fail;
		}
		size_t n = json_array_size(tags);
		pv->tags = calloc(n ? n : 1, sizeof(char *));
		if (!pv->tags)
			goto fail;
		for (size_t i = 0; i < n; i++) {
			pv->tags[i] = json_string_value(json_array_get(tags, i));
			if (!pv->tags[i]) {
				set_err(err, "tags[%zu]: expected a string", i);
				goto fail;
			}
		}
		s.tags = pv->tags;
		s.ntags = n;
	}
	if ((v = json_object_get(o, "idle_minutes"))) {
		if (!json_is_integer(v) || json_integer_value(v) < 0) {
			set_err(err, "idle_minutes: expected a non-negative integer");
			goto fail;
		}
		s.idle_minutes = json_integer_value(v);
	}
	if ((v = json_object_get(o, "peak_power_w"))) {
		if (!json_is_integer(v) || json_integer_value(v) < 0) {
			set_err(err, "peak_power_w: expected a non-negative integer (watts)");
			goto fail;
		}
		s.peak_power_w = json_integer_value(v);
	} else if ((v = json_object_get(o, "peak_kw"))) {
		if (json_units(v, 3, &s.peak_power_w, "peak_kw", err))
			goto fail;
	}
	if ((v = json_object_get(o, "pile_amount")) && !json_is_null(v)) {
		if (json_units(v, 5, &s.pile_amount, "pile_amount", err))
			goto fail;
	}
	if ((v = json_object_get(o, "tariff"))) {
		if (tariff_from_obj(v, &pv->tariff, err))
			goto fail;
		s.tariff = &pv->tariff;
	}
	*out = s;
	return EVCS_OK;
badfield_tenant:
	set_err(err, "tenant: expected an integer");
fail:
	if (err && !*err)
		set_err(err, "out of memory");
	evcs_session_clear(&s);
	return EVCS_EINVAL;
}

void evcs_session_clear(evcs_session_t *s)
{
	struct session_priv *pv = s->priv;
	if (pv) {
		json_decref(pv->root);
		free(pv->samples);
		free(pv->tags);
		free(pv);
	}
	memset(s, 0, sizeof(*s));
	s->pile_amount = -1;
}

/* ---- JSON: bill ------------------------------------------------------------ */
static char *bill_json(const evcs_bill_t *b, size_t flags)
{
	json_t *o = evcs_bill_to_tree(b);
	char *r = o ? json_dumps(o, flags | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	return r;
}

char *evcs_bill_to_json(const evcs_bill_t *b) { return bill_json(b, JSON_INDENT(2)); }
char *evcs_bill_to_json_compact(const evcs_bill_t *b) { return bill_json(b, JSON_COMPACT); }

json_t *evcs_bill_to_tree(const evcs_bill_t *b)
{
	char buf[32];
	json_t *o = json_object();
	if (!o)
		return NULL;
	json_object_set_new(o, "total", json_integer(b->total));
	json_object_set_new(o, "total_yuan", json_string(evcs_decimal_format(b->total, 5, buf, sizeof(buf))));
	json_object_set_new(o, "energy_kwh", json_string(evcs_decimal_format(b->energy_kwh, 4, buf, sizeof(buf))));
	json_t *pk = json_object();
	for (int p = 0; p < 4; p++)
		json_object_set_new(pk, period_names[p],
				    json_string(evcs_decimal_format(b->period_kwh[p], 4, buf, sizeof(buf))));
	json_object_set_new(o, "period_kwh", pk);
	json_t *items = json_array();
	for (size_t i = 0; i < b->nitems; i++) {
		const evcs_bill_item_t *it = &b->items[i];
		json_t *x = json_object();
		json_object_set_new(x, "kind", json_string(evcs_bill_kind_name(it->kind)));
		json_object_set_new(x, "period", it->period >= 0 ? json_string(evcs_period_name(it->period))
								 : json_null());
		json_object_set_new(x, "label", json_string(it->label));
		json_object_set_new(x, "unit", json_string(it->unit));
		json_object_set_new(x, "qty", json_integer(it->qty));
		json_object_set_new(x, "unit_price", json_integer(it->unit_price));
		json_object_set_new(x, "amount", json_integer(it->amount));
		json_object_set_new(x, "amount_yuan",
				    json_string(evcs_decimal_format(it->amount, 5, buf, sizeof(buf))));
		json_array_append_new(items, x);
	}
	json_object_set_new(o, "items", items);
	json_object_set_new(o, "tariff_model", json_string(b->tariff.model));
	char slots[EVCS_SLOTS + 1];
	for (int i = 0; i < EVCS_SLOTS; i++)
		slots[i] = (char)('0' + (b->tariff.slots[i] & 3));
	slots[EVCS_SLOTS] = 0;
	json_object_set_new(o, "tariff_slots", json_string(slots));
	json_object_set_new(o, "script_sha256", json_string(b->script_sha256));
	return o;
}
