/*
 * tests/test_tz.c: IANA time zones (core/tz.h) read from the system's tz database, and local
 * time wherever the core uses it outside the database: offsets across DST switches (checked
 * against values taken from `TZ=... date` on Debian 12, tzdata 2025b, and hard-coded here),
 * the footer rule after the last transition (Europe/Berlin in 2040), names that are refused,
 * malformed TZif data, agreement with the C library over 130 years for zones with odd rules,
 * the tariff's half-hour slots on both of Berlin's 2026 switch nights, os.date/os.time/
 * evcs.date in a tenant's script, `evcsctl script --timezone` and [core] timezone checks.
 * The dashboard day boundary (needs MariaDB) is in tests/test_tz_api.c.
 */
#include "config.h"
#include "script.h"
#include "testutil.h"
#include "tz.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const evcs_tz_t *zone(const char *name)
{
	char err[256] = "";
	const evcs_tz_t *z = evcs_tz_get(name, err, sizeof err);
	if (!z)
		fprintf(stderr, "zone %s: %s\n", name, err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(z);
	return z;
}

/* ---- offsets: values verified with `TZ=ZONE date -d @T '+%F %T %z'` -------------------- */
struct known {
	const char *zone;
	long long t;
	int off_s, dst;
};

static void test_offsets_known_values(void)
{
	static const struct known k[] = {
	    /* China: +08:00 all year, no DST since 1991 (but the table knows 1988's CDT) */
	    {"Asia/Shanghai", 1768478400LL, 28800, 0}, /* 2026-01-15 20:00:00 +0800 CST */
	    {"Asia/Shanghai", 1784116800LL, 28800, 0}, /* 2026-07-15 20:00:00 +0800 CST */
	    {"Asia/Shanghai", 583718400LL, 32400, 1},  /* 1988-07-01 09:00:00 +0900 CDT */
	    /* Berlin, 2026: CET -> CEST on 29 March at 01:00 UTC, back on 25 October */
	    {"Europe/Berlin", 1774745999LL, 3600, 0}, /* 2026-03-29 01:59:59 +0100 CET */
	    {"Europe/Berlin", 1774746000LL, 7200, 1}, /* 2026-03-29 03:00:00 +0200 CEST */
	    {"Europe/Berlin", 1792889999LL, 7200, 1}, /* 2026-10-25 02:59:59 +0200 CEST */
	    {"Europe/Berlin", 1792890000LL, 3600, 0}, /* 2026-10-25 02:00:00 +0100 CET */
	    /* Berlin, 2040: past the file's last transition (2037), the footer rule
	     * CET-1CEST,M3.5.0,M10.5.0/3 decides */
	    {"Europe/Berlin", 2210241600LL, 3600, 0}, /* 2040-01-15 13:00:00 +0100 CET */
	    {"Europe/Berlin", 2225966400LL, 7200, 1}, /* 2040-07-15 14:00:00 +0200 CEST */
	    {"Europe/Berlin", 2216249999LL, 3600, 0}, /* 2040-03-25 01:59:59 +0100 CET */
	    {"Europe/Berlin", 2216250000LL, 7200, 1}, /* 2040-03-25 03:00:00 +0200 CEST */
	    {"Europe/Berlin", 2234998799LL, 7200, 1}, /* 2040-10-28 02:59:59 +0200 CEST */
	    {"Europe/Berlin", 2234998800LL, 3600, 0}, /* 2040-10-28 02:00:00 +0100 CET */
	    /* New York, 2026: second Sunday of March, first Sunday of November */
	    {"America/New_York", 1772953199LL, -18000, 0}, /* 2026-03-08 01:59:59 -0500 EST */
	    {"America/New_York", 1772953200LL, -14400, 1}, /* 2026-03-08 03:00:00 -0400 EDT */
	    {"America/New_York", 1793512799LL, -14400, 1}, /* 2026-11-01 01:59:59 -0400 EDT */
	    {"America/New_York", 1793512800LL, -18000, 0}, /* 2026-11-01 01:00:00 -0500 EST */
	    {"America/New_York", 2382782400LL, -14400, 1}, /* 2045-07-04 08:00:00 -0400 EDT */
	    {"UTC", 1782864000LL, 0, 0},                   /* 2026-07-01 00:00:00 +0000 UTC */
	    /* southern hemisphere and a 30-minute DST, both from footer rules */
	    {"Australia/Sydney", 2208988800LL, 39600, 1}, /* 2040-01-01 11:00:00 +1100 AEDT */
	    {"Australia/Sydney", 2224713600LL, 36000, 0}, /* 2040-07-01 10:00:00 +1000 AEST */
	    {"Australia/Lord_Howe", 2208988800LL, 39600, 1}, /* 2040-01-01 11:00:00 +1100 */
	};
	for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
		const evcs_tz_t *z = zone(k[i].zone);
		int off = evcs_tz_offset_at(z, k[i].t);
		if (off != k[i].off_s)
			fprintf(stderr, "%s @%lld: %d, want %d\n", k[i].zone, k[i].t, off, k[i].off_s);
		CU_ASSERT_EQUAL(off, k[i].off_s);
		CU_ASSERT_EQUAL(evcs_tz_is_dst_at(z, k[i].t), k[i].dst);
	}
	CU_ASSERT_STRING_EQUAL(evcs_tz_name(zone("Europe/Berlin")), "Europe/Berlin");
}

static void test_names_refused(void)
{
	static const char *const bad[] = {"../../../etc/passwd", "/etc/localtime",
					  "Europe/../Europe/Berlin", "", "Europe/Berlin ",
					  "Europe\\Berlin", "Asia/Shanghai;rm"};
	char err[256];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CU_ASSERT_FALSE(evcs_tz_valid_name(bad[i]));
		err[0] = 0;
		CU_ASSERT_PTR_NULL(evcs_tz_get(bad[i], err, sizeof err));
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "is not a time zone name"));
		CU_ASSERT_PTR_NULL(evcs_tz_load(bad[i], NULL, 0));
	}
	CU_ASSERT_FALSE(evcs_tz_valid_name(NULL));
	CU_ASSERT_PTR_NULL(evcs_tz_get(NULL, err, sizeof err));
	char longname[80];
	memset(longname, 'A', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	CU_ASSERT_FALSE(evcs_tz_valid_name(longname));
	/* well-formed but unknown, a directory, a data file that is not TZif */
	CU_ASSERT_PTR_NULL(evcs_tz_get("Mars/Olympus_Mons", err, sizeof err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown time zone 'Mars/Olympus_Mons'"));
	CU_ASSERT_PTR_NULL(evcs_tz_get("Europe", err, sizeof err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown time zone"));
	CU_ASSERT_PTR_NULL(evcs_tz_get("zone.tab", err, sizeof err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a valid TZif file"));
	/* leap-second zones: unix time has no leap seconds */
	CU_ASSERT_PTR_NULL(evcs_tz_get("right/Europe/Berlin", err, sizeof err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "leap seconds"));
	CU_ASSERT_PTR_NULL(evcs_tz_cached("Mars/Olympus_Mons"));
}

static void test_cache_and_fixed(void)
{
	const evcs_tz_t *a = zone("America/New_York");
	CU_ASSERT_PTR_EQUAL(evcs_tz_get("America/New_York", NULL, 0), a);
	CU_ASSERT_PTR_EQUAL(evcs_tz_cached("America/New_York"), a);
	CU_ASSERT_PTR_NULL(evcs_tz_cached("America/Chicago"));
	const evcs_tz_t *f = evcs_tz_fixed(-5 * 3600 - 1800);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_STRING_EQUAL(evcs_tz_name(f), "-05:30");
	CU_ASSERT_EQUAL(evcs_tz_offset_at(f, 0), -19800);
	CU_ASSERT_EQUAL(evcs_tz_offset_at(f, 4000000000LL), -19800);
	CU_ASSERT_PTR_EQUAL(evcs_tz_fixed(-19800), f);
	CU_ASSERT_PTR_NULL(evcs_tz_fixed(27 * 3600));
	/* an owned copy is independent of the cache */
	evcs_tz_t *own = evcs_tz_load("America/New_York", NULL, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(own);
	CU_ASSERT_PTR_NOT_EQUAL(own, a);
	CU_ASSERT_EQUAL(evcs_tz_offset_at(own, 1772953200LL), -14400);
	evcs_tz_free(own);
}

static void test_local_to_utc_gap_and_overlap(void)
{
	const evcs_tz_t *b = zone("Europe/Berlin");
	/* local wall-clock seconds "as if UTC": 2026-03-29 00:00 = 1774742400; that midnight is
	 * CET, 23:00 UTC the day before */
	CU_ASSERT_EQUAL(evcs_tz_local_to_utc(b, 1774742400LL), 1774738800LL);
	/* 02:30 does not exist: read as CET, i.e. 01:30 UTC = 03:30 CEST */
	CU_ASSERT_EQUAL(evcs_tz_local_to_utc(b, 1774751400LL), 1774747800LL);
	/* 03:00 CEST is the switch itself */
	CU_ASSERT_EQUAL(evcs_tz_local_to_utc(b, 1774753200LL), 1774746000LL);
	/* 2026-10-25 02:30 happens twice (00:30 and 01:30 UTC): the earlier one */
	CU_ASSERT_EQUAL(evcs_tz_local_to_utc(b, 1792895400LL), 1792888200LL);
	/* 03:00 after the switch: 02:00 UTC */
	CU_ASSERT_EQUAL(evcs_tz_local_to_utc(b, 1792897200LL), 1792893600LL);
	/* Shanghai: plain -8 h */
	CU_ASSERT_EQUAL(evcs_tz_local_to_utc(zone("Asia/Shanghai"), 1768478400LL + 28800),
			1768478400LL);
	/* next change: the switch instant, exactly */
	CU_ASSERT_EQUAL(evcs_tz_next_change(b, 1774745000LL, 1774746500LL), 1774746000LL);
	CU_ASSERT_EQUAL(evcs_tz_next_change(b, 1774746000LL, 1774747000LL), 1774747001LL);
	CU_ASSERT_EQUAL(evcs_tz_next_change(b, 2234998000LL, 2234999000LL), 2234998800LL);
}

/* ---- malformed input never crashes ---------------------------------------------------------- */
static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	unsigned char *b = malloc(1 << 20);
	*len = fread(b, 1, 1 << 20, f);
	fclose(f);
	return b;
}

static void test_malformed_tzif(void)
{
	size_t len;
	unsigned char *b = slurp("/usr/share/zoneinfo/Europe/Berlin", &len);
	char err[256];
	evcs_tz_t *z = evcs_tz_parse("Berlin", b, len, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(z);
	CU_ASSERT_EQUAL(evcs_tz_offset_at(z, 2225966400LL), 7200);
	evcs_tz_free(z);
	/* every truncation is refused */
	size_t refused = 0;
	for (size_t n = 0; n < len; n++) {
		z = evcs_tz_parse("cut", b, n, err, sizeof err);
		refused += z == NULL;
		evcs_tz_free(z);
	}
	CU_ASSERT_EQUAL(refused, len);
	/* a broken footer rule */
	unsigned char *c = malloc(len + 8);
	memcpy(c, b, len);
	size_t at = len - 2; /* the footer ends "...M10.5.0/3\n" */
	c[at] = 'x';
	CU_ASSERT_PTR_NULL(evcs_tz_parse("badfoot", c, len, err, sizeof err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "footer"));
	/* flipped bytes anywhere: refused or parsed, never a crash, and lookups stay in range */
	for (size_t i = 0; i < len; i += 7) {
		memcpy(c, b, len);
		c[i] ^= 0xA5;
		z = evcs_tz_parse("flip", c, len, NULL, 0);
		if (z) {
			int o = evcs_tz_offset_at(z, 1792890000LL);
			CU_ASSERT(o >= -26 * 3600 && o <= 26 * 3600);
			evcs_tz_free(z);
		}
	}
	CU_ASSERT_PTR_NULL(evcs_tz_parse("null", NULL, 0, err, sizeof err));
	free(c);
	free(b);
}

/* ---- agreement with the C library (single-threaded test, so TZ may be set here) -------- */
static int libc_offset(long long t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	localtime_r(&tt, &tm);
	return (int)tm.tm_gmtoff;
}

static void test_agrees_with_libc(void)
{
	static const char *const zones[] = {
	    "Asia/Shanghai",    "Europe/Berlin",     "America/New_York",   "Australia/Sydney",
	    "Australia/Lord_Howe", "Europe/Dublin",  "Antarctica/Troll",   "America/Nuuk",
	    "Asia/Gaza",        "America/Santiago",  "Pacific/Chatham",    "America/St_Johns",
	    "Asia/Tehran",      "Africa/Casablanca", "America/Sao_Paulo",  "Asia/Jerusalem",
	    "Pacific/Apia",     "Asia/Kolkata",      "Europe/London",      "UTC"};
	char *old = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
	long long checked = 0, bad = 0;
	for (size_t i = 0; i < sizeof zones / sizeof zones[0]; i++) {
		const evcs_tz_t *z = zone(zones[i]);
		setenv("TZ", zones[i], 1);
		tzset();
		const long long step = 3 * 86400 + 3607;
		for (long long t = 31536000LL; t < 4102444800LL; t += step) {
			int mine = evcs_tz_offset_at(z, t), theirs = libc_offset(t);
			checked++;
			if (mine != theirs && bad++ < 5)
				fprintf(stderr, "%s @%lld: %d, libc %d\n", zones[i], t, mine, theirs);
			if (evcs_tz_offset_at(z, t + step) != mine) {
				/* around the switch: both sides of it */
				int64_t ch = evcs_tz_next_change(z, t, t + step);
				for (int64_t u = ch - 1; u <= ch; u++) {
					checked++;
					if (evcs_tz_offset_at(z, u) != libc_offset(u) && bad++ < 5)
						fprintf(stderr, "%s @%lld (switch): %d, libc %d\n",
							zones[i], (long long)u, evcs_tz_offset_at(z, u),
							libc_offset(u));
				}
			}
		}
	}
	if (old)
		setenv("TZ", old, 1);
	else
		unsetenv("TZ");
	tzset();
	free(old);
	CU_ASSERT(checked > 200000);
	CU_ASSERT_EQUAL(bad, 0);
}

/* ---- tariff slots on DST nights ------------------------------------------------------------ */
/* 00:00-02:00 flat, 02:00-03:00 sharp, 03:00-24:00 valley (local time) */
static evcs_tariff_model_t night_model(void)
{
	evcs_tariff_model_t m = {.model = "0042"};
	for (int i = 0; i < 48; i++)
		m.slots[i] = i < 4 ? EVCS_FLAT : i < 6 ? EVCS_SHARP : EVCS_VALLEY;
	return m;
}

static void test_pieces_berlin_dst_nights(void)
{
	evcs_tariff_model_t m = night_model();
	const evcs_tz_t *b = zone("Europe/Berlin");
	evcs_energy_piece_t *p;
	size_t n;
	int64_t pk[4];
	/* spring: 00:00-02:00 UTC = 01:00 CET .. 04:00 CEST, 4 kWh evenly. The local hour
	 * 02:00-03:00 does not exist, so nothing is sharp. */
	evcs_meter_sample_t sp[] = {{1774742400LL, 0}, {1774749600LL, 40000}};
	evcs_session_t s = {.tz = b, .samples = sp, .nsamples = 2};
	CU_ASSERT_EQUAL_FATAL(evcs_session_pieces(&s, &m, &p, &n, pk, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(n, 4);
	static const int spring_slots[4] = {2, 3, 6, 7}; /* 01:00 01:30 | 03:00 03:30 */
	for (size_t i = 0; i < n; i++) {
		CU_ASSERT_EQUAL(p[i].slot, spring_slots[i]);
		CU_ASSERT_EQUAL(p[i].kwh, 10000);
		CU_ASSERT_EQUAL(p[i].t1 - p[i].t0, 1800);
		CU_ASSERT_EQUAL(p[i].day, 29);
		CU_ASSERT_EQUAL(p[i].wday, 7); /* a Sunday */
	}
	CU_ASSERT_EQUAL(pk[EVCS_FLAT], 20000);
	CU_ASSERT_EQUAL(pk[EVCS_SHARP], 0);
	CU_ASSERT_EQUAL(pk[EVCS_VALLEY], 20000);
	free(p);
	/* autumn: 00:00-02:00 UTC = 02:00 CEST .. 03:00 CET: the hour 02:00-03:00 twice, all of
	 * it sharp (a fixed +01:00 would say 01:00-03:00, half flat) */
	evcs_meter_sample_t au[] = {{1792886400LL, 0}, {1792893600LL, 40000}};
	s.samples = au;
	CU_ASSERT_EQUAL_FATAL(evcs_session_pieces(&s, &m, &p, &n, pk, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(n, 4);
	static const int autumn_slots[4] = {4, 5, 4, 5};
	for (size_t i = 0; i < n; i++) {
		CU_ASSERT_EQUAL(p[i].slot, autumn_slots[i]);
		CU_ASSERT_EQUAL(p[i].kwh, 10000);
		CU_ASSERT_EQUAL(p[i].day, 25);
	}
	CU_ASSERT_EQUAL(p[2].t0, 1792890000LL); /* the switch starts the third piece */
	CU_ASSERT_EQUAL(pk[EVCS_SHARP], 40000);
	free(p);
	/* Chatham springs forward at 02:45 local (+12:45 -> +13:45), inside a half hour: the
	 * piece is cut at the switch (02:30-02:45 is slot 5, then 03:45-04:00 is slot 7) */
	evcs_meter_sample_t ch[] = {{1790430300LL, 0}, {1790432100LL, 3000}};
	evcs_session_t sc = {.tz = zone("Pacific/Chatham"), .samples = ch, .nsamples = 2};
	CU_ASSERT_EQUAL_FATAL(evcs_session_pieces(&sc, &m, &p, &n, pk, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	CU_ASSERT_EQUAL(p[0].slot, 5);
	CU_ASSERT_EQUAL(p[0].t1, 1790431200LL);
	CU_ASSERT_EQUAL(p[0].kwh, 1500);
	CU_ASSERT_EQUAL(p[1].slot, 7);
	CU_ASSERT_EQUAL(p[1].kwh, 1500);
	CU_ASSERT_EQUAL(p[1].day, 27);
	free(p);
	/* the same instants as a fixed +01:00 session: what a constant offset gets wrong */
	s.tz = NULL;
	s.tz_offset_min = 60;
	CU_ASSERT_EQUAL_FATAL(evcs_session_pieces(&s, &m, &p, &n, pk, NULL), 0);
	CU_ASSERT_EQUAL(pk[EVCS_FLAT], 20000);
	CU_ASSERT_EQUAL(pk[EVCS_SHARP], 20000);
	free(p);
}

#define NIGHT_TARIFF                                                                           \
	"local function R(e) return { elec = e, service = 0 } end\n"                          \
	"function tariff() return { model = '0042', rates = { sharp = R(300000), peak = "     \
	"R(200000), flat = R(100000), valley = R(50000) }, slots = evcs.slots{ { '00:00', "    \
	"'02:00', 'flat' }, { '02:00', '03:00', 'sharp' }, { '03:00', '24:00', 'valley' } } } " \
	"end\n"                                                                                \
	"function quote(s) return { items = evcs.standard_items(s, s.tariff) } end\n"        \
	"tests = { map = function() evcs.expect_eq(tariff().slots[5], evcs.SHARP, '02:00') end }\n"

static evcs_script_engine_t *engine(const evcs_tz_t *def)
{
	evcs_script_limits_t l;
	evcs_script_limits_default(&l);
	l.wall_ms = 60000;
	l.tz = def;
	evcs_script_engine_t *e = evcs_script_engine_new(&l);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	return e;
}

static void test_quote_berlin_autumn_night(void)
{
	evcs_script_engine_t *e = engine(zone("Europe/Berlin"));
	char *err = NULL;
	CU_ASSERT_EQUAL_FATAL(evcs_script_load(e, 5, "tariff", NIGHT_TARIFF, strlen(NIGHT_TARIFF),
					       NULL, &err),
			      0);
	/* local times without an offset are read in the session's zone */
	const char *js = "{\"tz\":\"Europe/Berlin\",\"start\":\"2026-10-25 02:00:00\","
			 "\"stop\":\"2026-10-25T03:00:00+01:00\",\"samples\":[[\"2026-10-25 "
			 "02:00\",0],[\"2026-10-25T02:00:00Z\",\"4.0000\"]]}";
	evcs_session_t s;
	CU_ASSERT_EQUAL_FATAL(evcs_session_from_json(js, &s, &err), 0);
	CU_ASSERT_PTR_EQUAL(s.tz, zone("Europe/Berlin"));
	CU_ASSERT_EQUAL(s.start, 1792886400LL); /* 02:00 CEST = 00:00 UTC (the first 02:00) */
	CU_ASSERT_EQUAL(s.stop, 1792893600LL);
	evcs_bill_t bill;
	CU_ASSERT_EQUAL_FATAL(evcs_script_quote(e, 5, &s, &bill, &err), 0);
	CU_ASSERT_EQUAL(bill.period_kwh[EVCS_SHARP], 40000);
	CU_ASSERT_EQUAL(bill.total, 4 * 300000); /* 4 kWh at 3 yuan */
	evcs_session_clear(&s);
	/* the same night for a tenant in Shanghai: 08:00-10:00 local, all valley */
	js = "{\"tz\":\"Asia/Shanghai\",\"start\":1792886400,\"stop\":1792893600,"
	     "\"samples\":[[1792886400,0],[1792893600,40000]]}";
	CU_ASSERT_EQUAL_FATAL(evcs_session_from_json(js, &s, &err), 0);
	CU_ASSERT_EQUAL_FATAL(evcs_script_quote(e, 5, &s, &bill, &err), 0);
	CU_ASSERT_EQUAL(bill.period_kwh[EVCS_VALLEY], 40000);
	CU_ASSERT_EQUAL(bill.total, 4 * 50000);
	evcs_session_clear(&s);
	/* unknown and hostile zone names in a session are refused with a reason */
	CU_ASSERT_EQUAL(evcs_session_from_json("{\"start\":1,\"stop\":2,\"tz\":\"../../etc/passwd\"}",
					       &s, &err),
			EVCS_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "not a time zone name"));
	free(err);
	err = NULL;
	evcs_script_engine_free(e);
}

/* ---- scripts see their tenant's zone -------------------------------------------------------- */
static const evcs_tz_t *tenant_zone(int64_t tenant, void *ud)
{
	(void)ud;
	return tenant == 7 ? evcs_tz_get("Europe/Berlin", NULL, 0)
			   : tenant == 8 ? evcs_tz_get("America/New_York", NULL, 0) : NULL;
}

/* self-tests run at load, in the tenant's zone: the load fails when one assertion does */
#define BERLIN_CHECKS                                                                         \
	"tests = { berlin = function()\n"                                                     \
	"  local d = os.date('*t', 1774746000)\n" /* 2026-03-29 03:00 CEST */                \
	"  evcs.expect_eq(d.hour, 3, 'hour after the switch')\n"                             \
	"  evcs.expect_eq(d.isdst, true, 'isdst')\n"                                          \
	"  evcs.expect_eq(os.date('*t', 1774745999).hour, 1, 'hour before')\n"               \
	"  evcs.expect_eq(os.date('!*t', 1774746000).hour, 1, 'UTC')\n"                      \
	"  evcs.expect_eq(os.time{year=2026, month=3, day=29, hour=2, min=30}, 1774747800, "  \
	"'gap')\n"                                                                            \
	"  evcs.expect_eq(os.time{year=2026, month=10, day=25, hour=12}, 1792926000, 'CET')\n" \
	"  local e = evcs.date(2225966400)\n" /* 2040-07-15 14:00 CEST (footer rule) */      \
	"  evcs.expect_eq(e.hour, 14, 'evcs.date hour')\n"                                    \
	"  evcs.expect_eq(e.slot, 29, 'evcs.date slot')\n"                                    \
	"  evcs.expect_eq(e.utc_offset_min, 120, 'offset')\n"                                 \
	"  evcs.expect_eq(evcs.date(2225966400, 480).hour, 20, 'explicit offset')\n"          \
	"end }\n"

static void test_script_local_time_per_tenant(void)
{
	evcs_script_engine_t *e = engine(NULL);
	evcs_script_engine_set_tz(e, tenant_zone, NULL);
	char *err = NULL;
	int rc = evcs_script_load(e, 7, "clock", BERLIN_CHECKS, strlen(BERLIN_CHECKS), NULL, &err);
	if (rc)
		fprintf(stderr, "%s\n", err);
	CU_ASSERT_EQUAL(rc, 0);
	free(err);
	err = NULL;
	/* the same checks fail for New York and for the default (Asia/Shanghai) */
	CU_ASSERT_EQUAL(evcs_script_load(e, 8, "clock", BERLIN_CHECKS, strlen(BERLIN_CHECKS), NULL,
					 &err),
			EVCS_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "hour after the switch"));
	free(err);
	err = NULL;
	CU_ASSERT_EQUAL(evcs_script_load(e, 9, "clock", BERLIN_CHECKS, strlen(BERLIN_CHECKS), NULL,
					 &err),
			EVCS_EINVAL);
	free(err);
	evcs_script_engine_free(e);
}

/* ---- evcsctl script --timezone ---------------------------------------------------------- */
static int run_cli(char **argv, int argc, char *out, size_t outlen)
{
	char path[] = "/tmp/test_tz_cli.XXXXXX";
	int fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	fflush(stdout);
	int saved = dup(1);
	dup2(fd, 1);
	int rc = evcs_script_cli_main(argc, argv);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	lseek(fd, 0, SEEK_SET);
	ssize_t n = read(fd, out, outlen - 1);
	out[n > 0 ? n : 0] = 0;
	close(fd);
	unlink(path);
	return rc;
}

static void test_cli_timezone(void)
{
	char script[] = "/tmp/test_tz_tariff.XXXXXX", session[] = "/tmp/test_tz_session.XXXXXX";
	int f1 = mkstemp(script), f2 = mkstemp(session);
	CU_ASSERT_FATAL(f1 >= 0 && f2 >= 0);
	CU_ASSERT(write(f1, NIGHT_TARIFF, strlen(NIGHT_TARIFF)) == (ssize_t)strlen(NIGHT_TARIFF));
	/* no zone in the session: --timezone decides how its local times and slots are read */
	const char *js = "{\"start\":\"2026-10-25 02:00\",\"stop\":\"2026-10-25 02:00:00Z\","
			 "\"samples\":[[\"2026-10-25 02:00\",0],[\"2026-10-25 02:00:00Z\",40000]]}";
	CU_ASSERT(write(f2, js, strlen(js)) == (ssize_t)strlen(js));
	close(f1);
	close(f2);
	char out[8192];
	char *a1[] = {"script", "quote", "--timezone", "Europe/Berlin", script, session};
	CU_ASSERT_EQUAL(run_cli(a1, 6, out, sizeof out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"total\": 1200000"));
	/* as Shanghai: 02:00 local is 18:00 UTC the day before, 8 hours of 03:00+ valley */
	char *a2[] = {"script", "quote", "--timezone", "Asia/Shanghai", script, session};
	CU_ASSERT_EQUAL(run_cli(a2, 6, out, sizeof out), 0);
	CU_ASSERT_PTR_NULL(strstr(out, "\"total\": 1200000"));
	char *a3[] = {"script", "slots", "--timezone", "America/New_York", script};
	CU_ASSERT_EQUAL(run_cli(a3, 5, out, sizeof out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "local time America/New_York"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "02:00-03:00 sharp"));
	char *a4[] = {"script", "slots", "--timezone", "../etc/passwd", script};
	CU_ASSERT_EQUAL(run_cli(a4, 5, out, sizeof out), 2);
	char *a5[] = {"script", "slots", "--timezone", "Mars/Base", script};
	CU_ASSERT_EQUAL(run_cli(a5, 5, out, sizeof out), 2);
	unlink(script);
	unlink(session);
}

/* ---- [core] timezone ---------------------------------------------------------------------- */
static void test_conf_default_zone(void)
{
	char err[512];
	const evcs_tz_t *z = NULL;
	evcs_conf_t *c = evcs_conf_parse("[core]\nlog_level = info\ntimezone = Europe/Berlin\n",
					 "t.conf", err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(evcs_tz_conf_default(c, &z, err, sizeof err), 0);
	CU_ASSERT_PTR_EQUAL(z, zone("Europe/Berlin"));
	evcs_conf_free(c);
	c = evcs_conf_parse("[core]\nlog_level = info\n", "t.conf", err, sizeof err);
	CU_ASSERT_EQUAL(evcs_tz_conf_default(c, &z, err, sizeof err), 0);
	CU_ASSERT_STRING_EQUAL(evcs_tz_name(z), "Asia/Shanghai");
	evcs_conf_free(c);
	c = evcs_conf_parse("[core]\nlog_level = info\n\ntimezone = Europe/Berlln\n", "t.conf", err,
			    sizeof err);
	CU_ASSERT_EQUAL(evcs_tz_conf_default(c, &z, err, sizeof err), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:4: [core] timezone: unknown time zone"));
	evcs_conf_free(c);
	c = evcs_conf_parse("[core]\ntimezone = +08:00\n", "t.conf", err, sizeof err);
	CU_ASSERT_EQUAL(evcs_tz_conf_default(c, &z, err, sizeof err), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:2:"));
	evcs_conf_free(c);
	/* before the core sets up its tenants, every tenant gets the built-in default */
	CU_ASSERT_STRING_EQUAL(evcs_tz_name(evcs_core_tenant_tz(NULL, 3)), "Asia/Shanghai");
}

static void register_tests(void)
{
	CU_pSuite s = CU_add_suite("tz", NULL, NULL);
	EVCS_ADD(s, test_offsets_known_values);
	EVCS_ADD(s, test_names_refused);
	EVCS_ADD(s, test_cache_and_fixed);
	EVCS_ADD(s, test_local_to_utc_gap_and_overlap);
	EVCS_ADD(s, test_malformed_tzif);
	EVCS_ADD(s, test_agrees_with_libc);
	EVCS_ADD(s, test_pieces_berlin_dst_nights);
	EVCS_ADD(s, test_quote_berlin_autumn_night);
	EVCS_ADD(s, test_script_local_time_per_tenant);
	EVCS_ADD(s, test_cli_timezone);
	EVCS_ADD(s, test_conf_default_zone);
}

EVCS_TEST_MAIN(register_tests)
