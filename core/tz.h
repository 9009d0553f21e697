/*
 * tz.h: local time per tenant from the IANA time zone database (DST-correct).
 *
 * Zones are read from the system's compiled tz database (TZif files under /usr/share/zoneinfo,
 * Debian's tzdata) by tz.c, never from a fixed offset and never through the process-wide TZ
 * environment (localtime_r with setenv is not safe next to worker threads). Each tenant may name
 * its zone (tenants.timezone); otherwise [core] timezone applies (default Asia/Shanghai).
 * Threading: evcs_tz_offset_at on a loaded zone is pure and may be called from any thread; the
 * per-tenant cache lives on the core context and is used on the loop thread only.
 */
#ifndef EVCS_TZ_H
#define EVCS_TZ_H

#include <stddef.h>
#include <stdint.h>

struct evcs_core;
typedef struct evcs_tz evcs_tz_t;

/* Load a zone by IANA name ("Asia/Shanghai", "Europe/Berlin", "UTC"). NULL with err set for an
 * unknown name, a name that tries to leave the database directory, or an unreadable file. */
evcs_tz_t *evcs_tz_load(const char *name, char *err, size_t errlen);
void evcs_tz_free(evcs_tz_t *z);
const char *evcs_tz_name(const evcs_tz_t *z);
/* UTC offset in seconds in force at unix time t (seconds). */
int evcs_tz_offset_at(const evcs_tz_t *z, int64_t t);

/* The zone of a tenant (its own, else the installation default); never NULL once the core is
 * set up. Loop thread only. */
const evcs_tz_t *evcs_core_tenant_tz(struct evcs_core *core, int64_t tenant_id);

#endif
