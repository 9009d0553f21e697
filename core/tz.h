/*
 * tz.h: local time per tenant from the IANA time zone database (DST-correct).
 *
 * Zones are read from the system's compiled tz database (TZif files under /usr/share/zoneinfo,
 * Debian's tzdata; $TZDIR overrides the directory) by tz.c, never from a fixed offset and never
 * through the process-wide TZ environment (localtime_r with setenv is not safe next to worker
 * threads). A zone holds the file's 64-bit transition table (version 2/3/4 data; version 1
 * files fall back to the 32-bit table) and the POSIX TZ footer rule that covers every instant
 * after the last transition (e.g. Europe/Berlin's DST in 2040, "CET-1CEST,M3.5.0,M10.5.0/3").
 * Files with leap-second records ("right/...") are refused: unix time has no leap seconds.
 *
 * Each tenant may name its zone (tenants.timezone, schema/009); otherwise [core] timezone
 * applies (default Asia/Shanghai). tz_tenant.c keeps the per-tenant cache on the core context.
 *
 * Names: 1..64 characters of [A-Za-z0-9/_+-.], no leading '/', no "..": anything else is
 * refused before the file system is touched. Unknown names, directories and files that are not
 * TZif are refused with a message.
 *
 * Threading: evcs_tz_offset_at and the other queries on a zone are pure and may be called from
 * any thread. evcs_tz_get/evcs_tz_fixed/evcs_tz_cached use a process-wide cache under a mutex
 * (any thread); zones they return live until the process exits. The per-tenant functions
 * (evcs_core_*) are loop thread only.
 */
#ifndef EVCS_TZ_H
#define EVCS_TZ_H

#include <stddef.h>
#include <stdint.h>

struct evcs_core;
struct evcs_conf;
typedef struct evcs_tz evcs_tz_t;

#define EVCS_TZ_NAME_MAX 64
#define EVCS_TZ_DEFAULT "Asia/Shanghai"

/* ---- zones -------------------------------------------------------------------------------- */
/* 1 when name is syntactically a zone name (see "Names" above), else 0. */
int evcs_tz_valid_name(const char *name);

/* Load a zone by IANA name ("Asia/Shanghai", "Europe/Berlin", "UTC"): a new zone the caller
 * frees. NULL with err set for an unknown name, a name that tries to leave the database
 * directory, or an unreadable/malformed file. Blocking file I/O: not on the loop thread. */
evcs_tz_t *evcs_tz_load(const char *name, char *err, size_t errlen);
/* Parse TZif bytes (tests, fuzzing). name is what evcs_tz_name reports. */
evcs_tz_t *evcs_tz_parse(const char *name, const void *data, size_t len, char *err,
			 size_t errlen);
void evcs_tz_free(evcs_tz_t *z);

/* The shared, cached zone of that name (loaded on first use: blocking file I/O the first time;
 * later calls only look up). Never freed. NULL with err set as for evcs_tz_load. */
const evcs_tz_t *evcs_tz_get(const char *name, char *err, size_t errlen);
/* Only the cache: NULL when the name has not been loaded successfully yet. Never blocks. */
const evcs_tz_t *evcs_tz_cached(const char *name);
/* A shared zone with one fixed offset (seconds east of UTC, |offset| <= 26 h), named like
 * "+08:00". For sessions and scripts that state an offset instead of a zone. NULL when out of
 * range or out of memory. */
const evcs_tz_t *evcs_tz_fixed(int offset_s);

const char *evcs_tz_name(const evcs_tz_t *z);
/* UTC offset in seconds in force at unix time t (seconds). */
int evcs_tz_offset_at(const evcs_tz_t *z, int64_t t);
/* 1 when the local time type at t is daylight saving time. */
int evcs_tz_is_dst_at(const evcs_tz_t *z, int64_t t);
/* Unix time of a local wall-clock time given as seconds since 1970-01-01 00:00 local (i.e. what
 * timegm() makes of the local fields). A time that occurs twice (DST ends) maps to the earlier
 * instant; a time that does not exist (DST starts) is read with the offset before the gap, so
 * it lands that much after the switch (02:30 on Berlin's spring night -> 03:30 CEST). */
int64_t evcs_tz_local_to_utc(const evcs_tz_t *z, int64_t local);
/* First instant in (t, limit] at which the offset differs from the one at t, or limit + 1 when
 * none. Assumes at most one change in the range (tz data has none closer than days). */
int64_t evcs_tz_next_change(const evcs_tz_t *z, int64_t t, int64_t limit);

/* ---- the installation default and tenants (tz_tenant.c) --------------------------------- */
/* [core] timezone of conf (default Asia/Shanghai) as a shared zone. -1 with
 * "file:line: [core] timezone: ..." in err when it names no zone. Blocking (start-up, check). */
int evcs_tz_conf_default(const struct evcs_conf *conf, const evcs_tz_t **out, char *err,
			 size_t errlen);

/* Set up core->tz: the default zone from [core] timezone (error: -1 with err), then start the
 * asynchronous load of every tenant's tenants.timezone (when there is a database) and a
 * periodic refresh. Until a tenant's zone is loaded the default applies. */
int evcs_core_tz_init(struct evcs_core *core, char *err, size_t errlen);
void evcs_core_tz_free(struct evcs_core *core);
/* Re-read tenants.timezone now (asynchronous; SIGHUP and the periodic timer call it). */
void evcs_core_tz_refresh(struct evcs_core *core);
/* SIGHUP, before the new configuration is swapped in: take its [core] timezone and re-read the
 * tenants. -1 with err (nothing changed) when it names no zone: the reload is refused. */
int evcs_core_tz_reload(struct evcs_core *core, const struct evcs_conf *nconf, char *err,
			size_t errlen);
/* The operator API stored a tenant row: zone name from the row (NULL = the default). Uses the
 * zone cache only (the API validated the name off the loop); an uncached name triggers a
 * refresh. */
void evcs_core_tz_tenant_stored(struct evcs_core *core, int64_t tenant_id, const char *name);

/* The zone of a tenant (its own, else the installation default); never NULL once the core is
 * set up (before evcs_core_tz_init: the Asia/Shanghai zone, else a fixed +08:00). Loop thread
 * only. For session pricing: evcs_session_t.tz = evcs_core_tenant_tz(core, tenant). */
const evcs_tz_t *evcs_core_tenant_tz(struct evcs_core *core, int64_t tenant_id);
/* The installation default zone (same fallbacks). Loop thread only. */
const evcs_tz_t *evcs_core_default_tz(struct evcs_core *core);

#endif
